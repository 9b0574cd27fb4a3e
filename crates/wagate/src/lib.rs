//! wagate: a self-hosted WhatsApp gateway.
//!
//! The crate is laid out by layer: `domain` holds the validated types,
//! `store` the persistence seam, `session` the per-session supervisors and
//! the whatsapp-rust adapter, `events` the realtime hub, and `http` the API;
//! `messages` the content of the messages the API sends, `outbox` the
//! per-session workers that send them;
//! `dashboard` is the web UI served at `/`; `metrics` what Prometheus
//! scrapes.
//! `app` wires them together; `cli` and `config` are the process's edges.

pub mod admin;
pub mod app;
pub mod cli;
pub mod config;
pub mod dashboard;
pub mod domain;
pub mod egress;
pub mod events;
pub mod group_commit;
pub mod http;
pub mod hub;
pub mod json;
pub mod media_cache;
pub mod messages;
pub mod metrics;
pub mod outbox;
pub mod retention;
pub mod secret;
pub mod serve;
pub mod session;
pub mod store;
pub mod telemetry;
pub mod webhooks;

//! wagate: a self-hosted WhatsApp gateway.
//!
//! The crate is laid out by layer, each naming only its own and those
//! below it (the order is written once, in `docs/ARCHITECTURE.md`,
//! "Layers", and `tests/layers.rs` holds the code to it). Bottom up:
//! `domain` holds the validated types; `messages` the content of the
//! messages the API sends and receives; `events` the event types, counted
//! by `metrics` and published by the realtime `hub`; `store` the
//! persistence seam; `webhooks` the delivery of events; `session` the
//! per-session supervisors, the protocol seam and the whatsapp-rust
//! adapter; `outbox` the per-session workers that send, run with the
//! supervisors by `session::manager`; `config` the configuration; `app`
//! the state every handler reaches; `http` the API, `dashboard` the web UI
//! served at `/`, `metrics::scrape` what Prometheus scrapes; `serve` wires
//! and runs them; `cli` is the process's edge.

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

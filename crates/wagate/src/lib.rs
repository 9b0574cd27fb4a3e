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
//! supervisors by `session::manager`; `cluster` the NATS link between
//! the nodes of several (`--nats`); `config` the configuration; `app`
//! the state every handler reaches; `http` the API, `dashboard` the web UI
//! served at `/`, `metrics::scrape` what Prometheus scrapes; `serve` wires
//! and runs them; `cli` is the process's edge.

// whatsapp-rust's chat actions (`archive_chat` and the rest) are futures
// nested deeper than the default limit of 128 layout queries allows.
#![recursion_limit = "256"]

pub mod admin;
mod app;
mod cli;
mod cluster;
mod config;
mod dashboard;
mod domain;
mod egress;
mod events;
mod group_commit;
mod http;
mod hub;
mod json;
mod media_cache;
mod messages;
mod metrics;
mod outbox;
mod retention;
mod secret;
mod serve;
mod session;
mod store;
mod telemetry;
mod webhooks;

// The public surface, on purpose: what the binary (`main.rs`), the
// integration tests and the fuzz targets use; everything else is
// crate-private, so the compiler reports what nothing uses. Each item is
// named by the module that defines it.
pub use app::{AppState, TOKEN_CACHE_TTL};
pub use cli::Cli;
pub use config::Config;
pub use dashboard::accounts;
pub use dashboard::auth::{SESSION_COOKIE, hash_cookie, start_session};
pub use domain::account::{Email, Role};
pub use domain::ids::{EventId, OrgId, SessionId, TokenId};
pub use domain::webhook::DeliveryStatus;
pub use events::{Envelope, EventData};
pub use http::ws::CLOSE_TOKEN_REVOKED;
pub use metrics::scrape::{PATH as METRICS_PATH, router as metrics_router};
pub use secret::Secret;
pub use serve::{Application, build_app};
pub use session::whatsapp::WhatsAppEngine;
pub use store::sqlite::SqliteStore;
pub use store::webhooks::{AfterFailure, AttemptResult, DeliveryQuery};
pub use store::{Store, connect as connect_store};
pub use telemetry::init as init_telemetry;

//! API tests: every endpoint, every way of getting a request wrong. Each
//! answer must be a 4xx in the error envelope, never a 5xx. Sessions are
//! created with `start: false`, so nothing here talks to WhatsApp.

// The whole crate is test code: its helpers, too, may fail the test by
// panicking (clippy.toml only exempts `#[test]` functions and `cfg(test)`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;
#[path = "../common/prometheus.rs"]
mod prometheus;

mod auth;
mod authz;
mod docs;
mod lifecycle;
mod linking;
mod metrics;
mod realtime;
mod sessions;
#[path = "../../src/store/test_postgres.rs"]
mod test_postgres;
#[path = "../support/tools.rs"]
mod tools;
mod webhook_delivery;
#[path = "../support/webhook_receiver.rs"]
mod webhook_receiver;
mod webhooks;

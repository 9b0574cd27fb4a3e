//! End to end: the gateway, with the real whatsapp-rust client, against
//! the wasim simulator on loopback. Everything waits on events with
//! timeouts; nothing sleeps to synchronise.

// The whole crate is test code: its helpers, too, may fail the test by
// panicking (clippy.toml only exempts `#[test]` functions and `cfg(test)`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;
#[path = "../common/prometheus.rs"]
mod prometheus;

mod actions;
mod chat_state;
mod chats;
mod cluster;
mod contacts;
mod contract;
mod crash;
mod deliveries;
mod group_pictures;
mod group_requests;
mod groups;
mod history;
mod linking;
mod messaging;
mod one_process;
mod postgres;
mod presence_calls;
mod receiving;
mod resilience;
mod secrets;
#[path = "../../src/store/test_postgres.rs"]
mod test_postgres;
#[path = "../support/tools.rs"]
mod tools;
#[path = "../support/webhook_receiver.rs"]
mod webhook_receiver;

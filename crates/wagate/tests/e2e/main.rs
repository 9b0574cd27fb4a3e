//! End to end: the gateway, with the real whatsapp-rust client, against
//! the wasim simulator on loopback. Everything waits on events with
//! timeouts; nothing sleeps to synchronise.

mod helpers;
#[path = "../common/prometheus.rs"]
mod prometheus;

mod actions;
mod contract;
mod crash;
mod deliveries;
mod linking;
mod messaging;
mod postgres;
mod receiving;
mod resilience;
mod secrets;
#[path = "../../src/store/test_postgres.rs"]
mod test_postgres;
#[path = "../support/tools.rs"]
mod tools;
#[path = "../support/webhook_receiver.rs"]
mod webhook_receiver;

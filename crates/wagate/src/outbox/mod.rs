//! Sending: the per-session outbox worker and its pacing. The narrow face
//! of a connection it sends through is `session/messenger.rs`, below it.

mod pacing;
mod prepare;
mod worker;

pub use pacing::{Pacer, PacingPolicy};
pub use worker::{OutboxError, OutboxInputs, OutboxPolicy, OutboxWorker};

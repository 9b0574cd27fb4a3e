//! Sending: the per-session outbox worker and its pacing. The narrow face
//! of a connection it sends through is `session/messenger.rs`, below it.

mod pacing;
mod prepare;
mod worker;

pub(crate) use pacing::PacingPolicy;
pub(crate) use worker::{OutboxInputs, OutboxPolicy, OutboxWorker};

//! Sending: the per-session outbox worker, its pacing, and the narrow
//! face of a connection it sends through.

mod messenger;
mod pacing;
mod prepare;
mod worker;

pub use messenger::{ClientMessenger, ContactCheck, Messenger, SendFailure, Typing};
pub use pacing::{Pacer, PacingPolicy};
pub use worker::{OutboxError, OutboxInputs, OutboxPolicy, OutboxWorker};

//! Webhooks: an organization's HTTP endpoints that receive its events.
//! Every event is queued for each matching webhook in the transaction
//! that logs it (`store/sqlite/webhooks.rs`), so nothing is lost across a
//! crash; the [`Dispatcher`] delivers the queue in order per (webhook,
//! session), signed as the Standard Webhooks specification says.

mod dispatcher;
pub(crate) mod manage;
mod signature;

pub(crate) use dispatcher::{DeliveryPolicy, Dispatcher};
pub(crate) use signature::sign;

//! Webhooks: an organization's HTTP endpoints that receive its events.
//! Every event is queued for each matching webhook in the transaction
//! that logs it (`store/sqlite/webhooks.rs`), so nothing is lost across a
//! crash; the [`Dispatcher`] delivers the queue in order per (webhook,
//! session), signed as the Standard Webhooks specification says.

mod dispatcher;
pub mod manage;
mod signature;

use crate::domain::named_enum;

pub use dispatcher::{DeliveryPolicy, Dispatcher};
pub use signature::{SECRET_PREFIX, generate_secret, sign};

named_enum! {
    error UnknownReason;
    /// Why the gateway disabled a webhook.
    pub enum DisabledReason {
        /// The receiver answered `410 Gone`: it asked for no more deliveries.
        Gone = "gone",
        /// Every attempt failed for longer than `webhook_disable_after_secs`.
        Failing = "failing",
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown webhook disabled reason")]
pub struct UnknownReason;

impl From<&str> for UnknownReason {
    fn from(_: &str) -> Self {
        Self
    }
}

named_enum! {
    error UnknownDeliveryStatus;
    /// Where a delivery stands.
    pub enum DeliveryStatus {
        /// Not delivered yet: due, being retried, or waiting behind an earlier
        /// event of the same session.
        Pending = "pending",
        /// The receiver answered 2xx.
        Delivered = "delivered",
        /// Retries ran out; later events of the session went on without it.
        Failed = "failed",
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown delivery status")]
pub struct UnknownDeliveryStatus;

impl From<&str> for UnknownDeliveryStatus {
    fn from(_: &str) -> Self {
        Self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::named::assert_names_round_trip;

    #[test]
    fn names_round_trip() {
        assert_names_round_trip::<DisabledReason>();
        assert_names_round_trip::<DeliveryStatus>();
    }
}

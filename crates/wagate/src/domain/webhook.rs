//! A webhook's states as the store keeps them and the API shows them:
//! why the gateway disabled one, where a delivery stands; and its secret's
//! form. Shared by the store, the events and the webhook layer above them.

use super::named_enum;
use crate::secret::Secret;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;

pub(crate) const SECRET_PREFIX: &str = "whsec_";

/// Random bytes behind a new secret (the specification asks for 24 to 64).
pub(crate) const SECRET_BYTES: usize = 32;

/// A new `whsec_` secret.
pub(crate) fn generate_secret() -> Secret<String> {
    let mut key = [0u8; SECRET_BYTES];
    rand::rng().fill_bytes(&mut key);
    Secret::new(format!("{SECRET_PREFIX}{}", STANDARD.encode(key)))
}

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

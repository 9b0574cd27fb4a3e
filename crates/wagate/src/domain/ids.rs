//! Identifiers. Each is its own type so a session id can never be passed
//! where an organization id is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
#[error("not a valid identifier: expected a UUID")]
pub struct ParseIdError;

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
        )]
        #[serde(transparent)]
        #[schema(value_type = String, format = Uuid)]
        pub struct $name(Uuid);

        impl $name {
            /// Time-ordered (UUIDv7): ids sort in creation order, which
            /// ties between rows created in the same millisecond need.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<Uuid> for $name {
            fn from(value: Uuid) -> Self {
                Self(value)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self).map_err(|_| ParseIdError)
            }
        }
    };
}

uuid_id!(
    /// A linked (or to-be-linked) WhatsApp number.
    SessionId
);
uuid_id!(
    /// The tenant that owns sessions and tokens.
    OrgId
);
uuid_id!(
    /// An API token's public identifier (never the token itself).
    TokenId
);
uuid_id!(
    /// One published event; ids sort in the order events were logged, so a
    /// client resumes with "everything after the last id I saw".
    EventId
);
uuid_id!(
    /// A message the gateway sent or received (not its WhatsApp id).
    MessageId
);
uuid_id!(
    /// A webhook endpoint of an organization.
    WebhookId
);
uuid_id!(
    /// One event's delivery to one webhook, across all its attempts.
    DeliveryId
);

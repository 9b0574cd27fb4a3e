//! Validated domain types. A value of one of these types is valid by
//! construction, so handlers parse input into them before doing any work.

mod account;
mod ids;
mod label;
mod message_status;
pub(crate) mod named;
mod pace;
mod phone;
mod session_status;
mod token;
mod webhook;

pub use account::{Email, InvalidEmail, Role, UnknownRole, UserId};
pub use ids::{DeliveryId, EventId, MessageId, OrgId, ParseIdError, SessionId, TokenId, WebhookId};
pub use label::{InvalidLabel, Label};
pub use message_status::{Direction, Failure, FailureReason, MessageStatus};
pub use named::UnknownStatus;
pub(crate) use named::named_enum;
pub use pace::{InvalidPace, MAX_PER_MINUTE, PerMinute, SessionPace};
pub use phone::{InvalidPhone, Phone};
pub use session_status::{IllegalTransition, SessionStatus, StatusReason, Transition};
pub use token::{ApiToken, TokenHash};
/// For the signing tests, which check a new secret's length.
#[cfg(test)]
pub(crate) use webhook::SECRET_BYTES;
pub use webhook::{
    DeliveryStatus, DisabledReason, SECRET_PREFIX, UnknownDeliveryStatus, UnknownReason,
    generate_secret,
};

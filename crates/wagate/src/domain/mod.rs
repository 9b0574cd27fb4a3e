//! Validated domain types. A value of one of these types is valid by
//! construction, so handlers parse input into them before doing any work.

mod account;
mod ids;
mod label;
mod message_status;
mod pace;
mod phone;
mod session_status;
mod token;

pub use account::{Email, InvalidEmail, Role, UnknownRole, UserId};
pub use ids::{DeliveryId, EventId, MessageId, OrgId, ParseIdError, SessionId, TokenId, WebhookId};
pub use label::{InvalidLabel, Label};
pub use message_status::{Direction, Failure, FailureReason, MessageStatus};
pub use pace::{InvalidPace, MAX_PER_MINUTE, PerMinute, SessionPace};
pub use phone::{InvalidPhone, Phone};
pub use session_status::{
    IllegalTransition, SessionStatus, StatusReason, Transition, UnknownStatus,
};
pub use token::{ApiToken, TokenHash};

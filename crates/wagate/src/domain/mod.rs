//! Validated domain types. A value of one of these types is valid by
//! construction, so handlers parse input into them before doing any work.

pub(crate) mod account;
mod behaviour;
mod chat;
pub(crate) mod group;
mod history;
pub(crate) mod ids;
mod label;
mod message_status;
pub(crate) mod named;
mod pace;
mod phone;
mod session_status;
mod token;
pub(crate) mod webhook;

pub(crate) use account::{Email, InvalidEmail, Role, UserId};
pub(crate) use behaviour::{
    CallOutcome, ContactPresence, PresenceState, SessionBehaviour, check_call_reply,
};
pub(crate) use chat::{ChatChange, ChatSetting, ContactField, Mute};
pub(crate) use group::{
    GroupInfo, GroupMember, GroupRole, GroupSettings, JoinRequest, ParticipantOutcome,
    ParticipantsAction, PictureChange,
};
pub(crate) use history::{HistoryScope, HistorySyncType};
pub(crate) use ids::{
    DeliveryId, EventId, MessageId, OrgId, ParseIdError, SessionId, TokenId, WebhookId,
};
pub(crate) use label::Label;
pub(crate) use message_status::{Direction, Failure, FailureReason, MessageStatus};
pub(crate) use named::UnknownStatus;
pub(crate) use named::named_enum;
pub(crate) use pace::{PerMinute, SessionPace};
pub(crate) use phone::{PHONE_PATTERN, Phone};
pub(crate) use session_status::{IllegalTransition, SessionStatus, StatusReason, Transition};
pub(crate) use token::{ApiToken, TokenHash};
/// For the signing tests, which check a new secret's length.
#[cfg(test)]
pub(crate) use webhook::SECRET_BYTES;
pub(crate) use webhook::{DeliveryStatus, DisabledReason, SECRET_PREFIX, generate_secret};

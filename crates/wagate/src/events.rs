//! What happened, as the event log keeps it and every client receives it:
//! the event types, their data and the [`Envelope`] around them. The
//! realtime hub that publishes them is `hub.rs`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::{
    DisabledReason, EventId, Failure, MessageId, MessageStatus, OrgId, SessionId, SessionStatus,
    StatusReason, WebhookId,
};
use crate::messages::{IncomingContent, IncomingMessage};

/// The event names a client can filter on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum EventType {
    #[serde(rename = "session.status")]
    SessionStatus,
    #[serde(rename = "session.qr")]
    SessionQr,
    #[serde(rename = "session.pairing_code")]
    SessionPairingCode,
    #[serde(rename = "message.status")]
    MessageStatus,
    #[serde(rename = "message.received")]
    MessageReceived,
    #[serde(rename = "message.reaction")]
    MessageReaction,
    #[serde(rename = "message.poll_vote")]
    MessagePollVote,
    #[serde(rename = "message.edited")]
    MessageEdited,
    #[serde(rename = "message.revoked")]
    MessageRevoked,
    #[serde(rename = "webhook.disabled")]
    WebhookDisabled,
    /// Sent to one webhook on request; never fanned out, never on the
    /// realtime socket, and not a type a filter can name.
    #[serde(rename = "webhook.test")]
    WebhookTest,
}

impl EventType {
    /// The types filters can name (every type but `webhook.test`).
    pub const ALL: [Self; 10] = [
        Self::SessionStatus,
        Self::SessionQr,
        Self::SessionPairingCode,
        Self::MessageStatus,
        Self::MessageReceived,
        Self::MessageReaction,
        Self::MessagePollVote,
        Self::MessageEdited,
        Self::MessageRevoked,
        Self::WebhookDisabled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SessionStatus => "session.status",
            Self::SessionQr => "session.qr",
            Self::SessionPairingCode => "session.pairing_code",
            Self::MessageStatus => "message.status",
            Self::MessageReceived => "message.received",
            Self::MessageReaction => "message.reaction",
            Self::MessagePollVote => "message.poll_vote",
            Self::MessageEdited => "message.edited",
            Self::MessageRevoked => "message.revoked",
            Self::WebhookDisabled => "webhook.disabled",
            Self::WebhookTest => "webhook.test",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "event", content = "data")]
pub enum EventData {
    #[serde(rename = "session.status")]
    Status {
        status: SessionStatus,
        previous: SessionStatus,
        reason: Option<StatusReason>,
    },
    #[serde(rename = "session.qr")]
    Qr {
        code: String,
        expires_at: DateTime<Utc>,
    },
    #[serde(rename = "session.pairing_code")]
    PairingCode {
        code: String,
        expires_at: DateTime<Utc>,
    },
    /// An outgoing message changed status (its first event is `pending`).
    #[serde(rename = "message.status")]
    MessageStatus {
        #[schema(value_type = String, format = Uuid)]
        message_id: MessageId,
        /// The WhatsApp message id.
        wa_id: String,
        chat: String,
        status: MessageStatus,
        previous: Option<MessageStatus>,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        failure: Option<Failure>,
    },
    /// A message reached the session (text, media, location, contacts,
    /// poll), from someone else or from this account's own phone
    /// (`from_me`). `content.type` says which shape it has.
    #[serde(rename = "message.received")]
    MessageReceived(Box<IncomingMessage>),
    /// Someone reacted to a message (`content.type` is `reaction`; an empty
    /// `emoji` removes their reaction).
    #[serde(rename = "message.reaction")]
    MessageReaction(Box<IncomingMessage>),
    /// Someone voted on a poll (`content.type` is `poll_vote`; the
    /// options they chose replace their earlier vote).
    #[serde(rename = "message.poll_vote")]
    MessagePollVote(Box<IncomingMessage>),
    /// Someone edited a message they sent (`content.type` is `edit`).
    #[serde(rename = "message.edited")]
    MessageEdited(Box<IncomingMessage>),
    /// Someone deleted a message for everyone (`content.type` is `revoke`).
    #[serde(rename = "message.revoked")]
    MessageRevoked(Box<IncomingMessage>),
    /// The gateway disabled a webhook: it answered `410 Gone`, or kept
    /// failing for longer than allowed. Its pending deliveries wait until
    /// it is enabled again. `session_id` is the session whose delivery
    /// failed last.
    #[serde(rename = "webhook.disabled")]
    WebhookDisabled {
        #[schema(value_type = String, format = Uuid)]
        webhook_id: WebhookId,
        reason: DisabledReason,
        /// The receiver's last status code, if it answered.
        status_code: Option<u16>,
    },
    /// A test delivery, asked for with `POST /webhooks/{id}/test` or from
    /// the dashboard: sent to that webhook only, whatever its filters,
    /// signed and retried like any event. `session_id` is the nil UUID:
    /// no session is involved.
    #[serde(rename = "webhook.test")]
    WebhookTest {
        #[schema(value_type = String, format = Uuid)]
        webhook_id: WebhookId,
    },
}

impl EventData {
    pub fn event_type(&self) -> EventType {
        match self {
            Self::Status { .. } => EventType::SessionStatus,
            Self::Qr { .. } => EventType::SessionQr,
            Self::PairingCode { .. } => EventType::SessionPairingCode,
            Self::MessageStatus { .. } => EventType::MessageStatus,
            Self::WebhookDisabled { .. } => EventType::WebhookDisabled,
            Self::WebhookTest { .. } => EventType::WebhookTest,
            Self::MessageReceived(_) => EventType::MessageReceived,
            Self::MessageReaction(_) => EventType::MessageReaction,
            Self::MessagePollVote(_) => EventType::MessagePollVote,
            Self::MessageEdited(_) => EventType::MessageEdited,
            Self::MessageRevoked(_) => EventType::MessageRevoked,
        }
    }

    /// The event reporting an incoming message, by what it is.
    pub fn incoming(message: IncomingMessage) -> Self {
        let message = Box::new(message);
        match message.content {
            IncomingContent::Reaction { .. } => Self::MessageReaction(message),
            IncomingContent::PollVote { .. } => Self::MessagePollVote(message),
            IncomingContent::Edit { .. } => Self::MessageEdited(message),
            IncomingContent::Revoke { .. } => Self::MessageRevoked(message),
            _ => Self::MessageReceived(message),
        }
    }
}

/// What a realtime client receives, one JSON text frame per event; also
/// what the event log keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Envelope {
    #[schema(value_type = String, format = Uuid)]
    pub id: EventId,
    #[serde(flatten)]
    pub data: EventData,
    #[schema(value_type = String, format = Uuid)]
    pub session_id: SessionId,
    #[schema(value_type = String, format = Uuid)]
    pub org_id: OrgId,
    pub at: DateTime<Utc>,
}

impl Envelope {
    /// A new event. The store stamps the final id and time when it logs
    /// it, inside the transaction of the change it reports.
    pub fn new(org_id: OrgId, session_id: SessionId, data: EventData) -> Self {
        Self {
            id: EventId::new(),
            data,
            session_id,
            org_id,
            at: Utc::now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_has_the_documented_shape() -> Result<(), serde_json::Error> {
        let envelope = Envelope::new(
            OrgId::new(),
            SessionId::new(),
            EventData::Status {
                status: SessionStatus::Starting,
                previous: SessionStatus::Stopped,
                reason: None,
            },
        );
        let value = serde_json::to_value(&envelope)?;
        for key in ["id", "event", "session_id", "org_id", "at", "data"] {
            assert!(value.get(key).is_some(), "missing {key}: {value}");
        }
        assert_eq!(value["event"], "session.status");
        assert_eq!(value["data"]["status"], "starting");
        assert_eq!(value["data"]["previous"], "stopped");
        Ok(())
    }
}

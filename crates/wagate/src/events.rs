//! What happened, as the event log keeps it and every client receives it:
//! the event types, their data and the [`Envelope`] around them. The
//! realtime hub that publishes them is `hub.rs`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::{
    CallOutcome, ChatSetting, ContactField, ContactPresence, DisabledReason, EventId, Failure,
    HistorySyncType, MessageId, MessageStatus, OrgId, ParticipantsAction, PictureChange, SessionId,
    SessionStatus, StatusReason, WebhookId,
};
use crate::messages::{IncomingContent, IncomingMessage, Sender};

/// Declares the events once: each `EventData` variant with its name and
/// the `EventType` that names it, so the tag an event is serialized with,
/// the type a filter names and `EventType::as_str` cannot drift apart.
/// The first list holds the types filters can name; the second, the rest.
macro_rules! events {
    (
        [$(
            $(#[$($meta:tt)*])*
            $variant:ident $body:tt => $ty:ident = $name:tt,
        )+]
        [$(
            $(#[$($other_meta:tt)*])*
            $other_variant:ident $other_body:tt => $other_ty:ident = $other_name:tt,
        )+]
    ) => {
        /// The event names a client can filter on.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
        pub enum EventType {
            $(#[serde(rename = $name)] $ty,)+
            $(#[serde(rename = $other_name)] $other_ty,)+
        }

        impl EventType {
            /// The types filters can name (every type but `webhook.test`).
            pub const ALL: [Self; [$($name),+].len()] = [$(Self::$ty),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$ty => $name,)+
                    $(Self::$other_ty => $other_name,)+
                }
            }
        }

        // The names and attributes are matched as `tt`s: a `literal` or
        // `meta` fragment reaches the derives wrapped in an invisible
        // group, which utoipa does not look into.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
        #[serde(tag = "event", content = "data")]
        pub enum EventData {
            $($(#[$($meta)*])* #[serde(rename = $name)] $variant $body,)+
            $($(#[$($other_meta)*])* #[serde(rename = $other_name)] $other_variant $other_body,)+
        }

        impl EventData {
            pub fn event_type(&self) -> EventType {
                match self {
                    $(Self::$variant { .. } => EventType::$ty,)+
                    $(Self::$other_variant { .. } => EventType::$other_ty,)+
                }
            }
        }
    };
}

events! {
    [
        Status {
            status: SessionStatus,
            previous: SessionStatus,
            reason: Option<StatusReason>,
        } => SessionStatus = "session.status",
        Qr {
            code: String,
            expires_at: DateTime<Utc>,
        } => SessionQr = "session.qr",
        PairingCode {
            code: String,
            expires_at: DateTime<Utc>,
        } => SessionPairingCode = "session.pairing_code",
        /// An outgoing message changed status (its first event is `pending`).
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
        } => MessageStatus = "message.status",
        /// A message reached the session (text, media, location, contacts,
        /// poll), from someone else or from this account's own phone
        /// (`from_me`). `content.type` says which shape it has.
        MessageReceived(Box<IncomingMessage>) => MessageReceived = "message.received",
        /// Someone reacted to a message (`content.type` is `reaction`; an empty
        /// `emoji` removes their reaction).
        MessageReaction(Box<IncomingMessage>) => MessageReaction = "message.reaction",
        /// Someone voted on a poll (`content.type` is `poll_vote`; the
        /// options they chose replace their earlier vote).
        MessagePollVote(Box<IncomingMessage>) => MessagePollVote = "message.poll_vote",
        /// Someone edited a message they sent (`content.type` is `edit`).
        MessageEdited(Box<IncomingMessage>) => MessageEdited = "message.edited",
        /// Someone deleted a message for everyone (`content.type` is `revoke`).
        MessageRevoked(Box<IncomingMessage>) => MessageRevoked = "message.revoked",
        /// Someone calls this number (voice or video; `group` is the group's
        /// JID for a group call). With the session's `reject_calls` on, a
        /// `call.rejected` follows.
        CallReceived {
            /// WhatsApp's call id.
            call_id: String,
            /// The caller.
            from: Sender,
            video: bool,
            group: Option<String>,
        } => CallReceived = "call.received",
        /// The session rejected a call (its `reject_calls` setting): the
        /// caller sees it declined.
        CallRejected {
            call_id: String,
            from: Sender,
        } => CallRejected = "call.rejected",
        /// A call that rang the session ended without the session taking
        /// it: the caller gave up (`missed`, or `missed_offline` when it
        /// rang while the session was offline), or the phone answered or
        /// declined it (`answered_elsewhere`, `rejected_elsewhere`).
        CallEnded {
            call_id: String,
            from: Sender,
            outcome: CallOutcome,
        } => CallEnded = "call.ended",
        /// A contact the session subscribed to
        /// (`POST /sessions/{id}/contacts/{contact}/presence/subscribe`)
        /// came online, went offline (`last_seen` when they share it), or
        /// types, records or stopped in a chat (`chat`: their chat with
        /// the number, or a group's).
        PresenceUpdate {
            contact: Sender,
            state: ContactPresence,
            last_seen: Option<DateTime<Utc>>,
            chat: Option<String>,
        } => PresenceUpdate = "presence.update",
        /// The number is in a group now: it was added (`by` names who added
        /// it), made the group, or joined through an invite. The group is
        /// in `GET /sessions/{id}/groups` from then on.
        GroupJoined {
            /// The group's JID, `<digits>@g.us`.
            group: String,
            subject: Option<String>,
            /// Who added the number; `null` when it joined on its own.
            by: Option<Sender>,
        } => GroupJoined = "group.joined",
        /// The number is no longer in a group: it left (`removed` false), an
        /// admin (`by`) removed it, or the group was deleted. The group is
        /// gone from the list.
        GroupLeft {
            group: String,
            by: Option<Sender>,
            removed: bool,
        } => GroupLeft = "group.left",
        /// People were added to a group, removed, promoted to admin,
        /// demoted, or asked to join (`requested`). Each person is named by
        /// `phone` and `lid` where known; `by` is who did it.
        GroupParticipants {
            group: String,
            action: ParticipantsAction,
            by: Option<Sender>,
            participants: Vec<Sender>,
        } => GroupParticipants = "group.participants",
        /// A group's subject, description, settings or picture changed, or
        /// its invite link was reset. `changes` holds only what changed.
        GroupUpdated {
            group: String,
            by: Option<Sender>,
            changes: GroupUpdate,
        } => GroupUpdated = "group.updated",
        /// A chat was archived or unarchived, pinned or unpinned, muted or
        /// unmuted, or read (or marked unread): on the phone or another of
        /// the account's devices (WhatsApp's app state reported it), or
        /// through the API. `setting` says which; the rest is the chat's
        /// state after the change.
        ChatUpdated {
            /// The chat's JID.
            chat: String,
            setting: ChatSetting,
            archived: bool,
            pinned: bool,
            muted: bool,
            /// When the mute ends; `null` when not muted or muted for ever.
            muted_until: Option<DateTime<Utc>>,
            unread: u64,
        } => ChatUpdated = "chat.updated",
        /// A contact's name or picture changed: the name they gave
        /// themselves (`push_name`, from their messages, or from history
        /// for a contact the session already had), the name the account's
        /// user saved for them (`saved_name`, from WhatsApp's app state),
        /// or their profile picture (`picture`, WhatsApp's notification).
        /// `changed` says which; the rest is the contact after the change.
        ContactUpdated {
            /// The contact's key: `<phone>@s.whatsapp.net`, or `<lid>@lid`
            /// while the number is not known.
            contact: String,
            /// The phone number, digits only.
            phone: Option<String>,
            /// The LID's digits.
            lid: Option<String>,
            changed: ContactField,
            saved_name: Option<String>,
            push_name: Option<String>,
            /// The profile picture's id; `null` when there is none (or it
            /// is not known).
            picture_id: Option<String>,
        } => ContactUpdated = "contact.updated",
        /// A chunk of the history the phone sends after a link (or that was
        /// asked for) was stored, as far as the session's `history`
        /// setting keeps it: its chats, messages (from both directions,
        /// each stored once, marked `from_history`) and push names. Its
        /// messages do not come as `message.received` events.
        HistorySync {
            sync_type: HistorySyncType,
            /// The chunk's place in its sync, as WhatsApp numbers it.
            chunk_order: Option<u32>,
            /// How far the sync is, 0 to 100, when WhatsApp says.
            progress: Option<u32>,
            /// Chats in the chunk that were stored or updated.
            chats: u64,
            /// Messages stored that the session did not have yet.
            messages: u64,
            /// Push names stored.
            push_names: u64,
        } => HistorySync = "history.sync",
        /// The gateway disabled a webhook: it answered `410 Gone`, or kept
        /// failing for longer than allowed. Its pending deliveries wait until
        /// it is enabled again. `session_id` is the session whose delivery
        /// failed last.
        WebhookDisabled {
            #[schema(value_type = String, format = Uuid)]
            webhook_id: WebhookId,
            reason: DisabledReason,
            /// The receiver's last status code, if it answered.
            status_code: Option<u16>,
        } => WebhookDisabled = "webhook.disabled",
    ]
    // Sent to one webhook on request; never fanned out, never on the
    // realtime socket, and not a type a filter can name.
    [
        /// A test delivery, asked for with `POST /webhooks/{id}/test` or from
        /// the dashboard: sent to that webhook only, whatever its filters,
        /// signed and retried like any event. `session_id` is the nil UUID:
        /// no session is involved.
        WebhookTest {
            #[schema(value_type = String, format = Uuid)]
            webhook_id: WebhookId,
        } => WebhookTest = "webhook.test",
    ]
}

/// What changed in a group (`group.updated`); only what changed is there.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GroupUpdate {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub subject: Option<String>,
    /// The new description; `""` when it was deleted.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub description: Option<String>,
    /// Only admins send messages.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub announce: Option<bool>,
    /// Only admins edit the group's info.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub locked: Option<bool>,
    /// Disappearing messages after this many seconds; 0: off.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ephemeral: Option<u32>,
    /// Admins approve who joins by link.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub approval: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub picture: Option<PictureChange>,
    /// The invite link was reset: the old one no longer works.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub invite_reset: Option<bool>,
}

impl GroupUpdate {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl EventType {
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl EventData {
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

    /// One event of every kind. The match makes a new variant a compile
    /// error here until it has a sample.
    fn one_of_each() -> Vec<EventData> {
        let message = || {
            Box::new(IncomingMessage {
                message_id: MessageId::new(),
                wa_id: "3EB0AAAA".into(),
                chat: "15551234567@s.whatsapp.net".into(),
                sender: crate::messages::Sender {
                    phone: Some("15551234567".into()),
                    lid: None,
                },
                push_name: None,
                timestamp: Utc::now(),
                from_me: false,
                kind: "text".into(),
                content: IncomingContent::Text { body: "hi".into() },
                reply_to: None,
            })
        };
        let samples = vec![
            EventData::Status {
                status: SessionStatus::Working,
                previous: SessionStatus::Starting,
                reason: None,
            },
            EventData::Qr {
                code: "2@abc".into(),
                expires_at: Utc::now(),
            },
            EventData::PairingCode {
                code: "ABCD-EFGH".into(),
                expires_at: Utc::now(),
            },
            EventData::MessageStatus {
                message_id: MessageId::new(),
                wa_id: "3EB0AAAA".into(),
                chat: "15551234567@s.whatsapp.net".into(),
                status: MessageStatus::Sent,
                previous: Some(MessageStatus::Pending),
                failure: None,
            },
            EventData::MessageReceived(message()),
            EventData::MessageReaction(message()),
            EventData::MessagePollVote(message()),
            EventData::MessageEdited(message()),
            EventData::MessageRevoked(message()),
            EventData::CallReceived {
                call_id: "CA11".into(),
                from: crate::messages::Sender {
                    phone: Some("15551234567".into()),
                    lid: None,
                },
                video: false,
                group: None,
            },
            EventData::CallRejected {
                call_id: "CA11".into(),
                from: crate::messages::Sender::default(),
            },
            EventData::CallEnded {
                call_id: "CA11".into(),
                from: crate::messages::Sender::default(),
                outcome: CallOutcome::Missed,
            },
            EventData::PresenceUpdate {
                contact: crate::messages::Sender {
                    phone: Some("15551234567".into()),
                    lid: None,
                },
                state: ContactPresence::Composing,
                last_seen: None,
                chat: Some("15551234567@s.whatsapp.net".into()),
            },
            EventData::GroupJoined {
                group: "120363000000000001@g.us".into(),
                subject: Some("Team".into()),
                by: None,
            },
            EventData::GroupLeft {
                group: "120363000000000001@g.us".into(),
                by: None,
                removed: false,
            },
            EventData::GroupParticipants {
                group: "120363000000000001@g.us".into(),
                action: ParticipantsAction::Added,
                by: Some(crate::messages::Sender::default()),
                participants: vec![crate::messages::Sender {
                    phone: Some("15551234567".into()),
                    lid: Some("123456789012345".into()),
                }],
            },
            EventData::GroupUpdated {
                group: "120363000000000001@g.us".into(),
                by: None,
                changes: GroupUpdate {
                    subject: Some("New".into()),
                    invite_reset: Some(true),
                    ..GroupUpdate::default()
                },
            },
            EventData::ChatUpdated {
                chat: "15551234567@s.whatsapp.net".into(),
                setting: ChatSetting::Muted,
                archived: false,
                pinned: true,
                muted: true,
                muted_until: Some(Utc::now()),
                unread: 3,
            },
            EventData::ContactUpdated {
                contact: "15551234567@s.whatsapp.net".into(),
                phone: Some("15551234567".into()),
                lid: Some("123456789012345".into()),
                changed: ContactField::SavedName,
                saved_name: Some("Ana".into()),
                push_name: Some("ana".into()),
                picture_id: None,
            },
            EventData::HistorySync {
                sync_type: HistorySyncType::InitialBootstrap,
                chunk_order: Some(1),
                progress: Some(20),
                chats: 3,
                messages: 60,
                push_names: 0,
            },
            EventData::WebhookDisabled {
                webhook_id: WebhookId::new(),
                reason: DisabledReason::Gone,
                status_code: Some(410),
            },
            EventData::WebhookTest {
                webhook_id: WebhookId::new(),
            },
        ];
        for sample in &samples {
            match sample {
                EventData::Status { .. }
                | EventData::Qr { .. }
                | EventData::PairingCode { .. }
                | EventData::MessageStatus { .. }
                | EventData::MessageReceived(_)
                | EventData::MessageReaction(_)
                | EventData::MessagePollVote(_)
                | EventData::MessageEdited(_)
                | EventData::MessageRevoked(_)
                | EventData::CallReceived { .. }
                | EventData::CallRejected { .. }
                | EventData::CallEnded { .. }
                | EventData::PresenceUpdate { .. }
                | EventData::GroupJoined { .. }
                | EventData::GroupLeft { .. }
                | EventData::GroupParticipants { .. }
                | EventData::GroupUpdated { .. }
                | EventData::ChatUpdated { .. }
                | EventData::ContactUpdated { .. }
                | EventData::HistorySync { .. }
                | EventData::WebhookDisabled { .. }
                | EventData::WebhookTest { .. } => {}
            }
        }
        samples
    }

    #[test]
    fn each_event_is_serialized_with_its_types_name() -> Result<(), serde_json::Error> {
        let mut types = Vec::new();
        for data in one_of_each() {
            let event_type = data.event_type();
            let envelope = Envelope::new(OrgId::new(), SessionId::new(), data);
            let value = serde_json::to_value(&envelope)?;
            assert_eq!(value["event"], event_type.as_str(), "{value}");
            assert_eq!(serde_json::to_value(event_type)?, value["event"]);
            assert_eq!(serde_json::from_value::<Envelope>(value)?, envelope);
            assert!(!types.contains(&event_type), "{event_type:?} twice");
            types.push(event_type);
        }
        // Every type is some event's, and filters name all but the test.
        assert_eq!(types.len(), EventType::ALL.len() + 1);
        for event_type in EventType::ALL {
            assert!(types.contains(&event_type), "no event is {event_type:?}");
            assert_eq!(EventType::parse(event_type.as_str()), Some(event_type));
        }
        assert_eq!(EventType::parse("webhook.test"), None);
        Ok(())
    }
}

//! Messages: the outbox of what users asked to send, their statuses and
//! history, the idempotency keys of send requests, and what the sessions
//! received.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::domain::{Direction, Failure, MessageId, MessageStatus, OrgId, SessionId};
use crate::events::Envelope;
use crate::messages::{Inbound, MediaRef, Sender};

#[derive(Debug, Clone, PartialEq)]
pub struct MessageRecord {
    pub id: MessageId,
    pub org_id: OrgId,
    pub session_id: SessionId,
    pub direction: Direction,
    /// The WhatsApp message id.
    pub wa_id: String,
    /// The chat's JID.
    pub chat: String,
    pub kind: String,
    /// What was asked for, as JSON (never media bytes).
    pub content: serde_json::Value,
    pub status: MessageStatus,
    pub failure: Option<Failure>,
    /// Incoming messages only: who wrote it and when.
    pub received: Option<Received>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What only an incoming message has.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub sender: Sender,
    pub push_name: Option<String>,
    pub from_me: bool,
    /// WhatsApp's timestamp: when the sender sent it.
    pub sent_at: DateTime<Utc>,
    /// The WhatsApp id of the message it quotes.
    pub reply_to: Option<String>,
    /// Stored from the history the phone sent after a link (or that was
    /// asked for), not received live.
    pub from_history: bool,
}

/// An incoming message to record, with the gateway id it gets if it is new.
#[derive(Debug, Clone)]
pub struct NewIncoming {
    pub id: MessageId,
    pub org_id: OrgId,
    pub session_id: SessionId,
    pub inbound: Inbound,
}

/// One step of a message's status history.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusStep {
    pub status: MessageStatus,
    pub failure: Option<Failure>,
    pub at: DateTime<Utc>,
}

/// A message to accept into the outbox.
#[derive(Debug, Clone)]
pub struct NewOutgoing {
    pub id: MessageId,
    pub org_id: OrgId,
    pub session_id: SessionId,
    pub wa_id: String,
    pub chat: String,
    pub kind: String,
    pub content: serde_json::Value,
    /// Media bytes that came with the request.
    pub media: Option<Vec<u8>>,
}

/// An `Idempotency-Key` and a fingerprint of the request it came with.
#[derive(Debug, Clone)]
pub struct IdempotencyClaim {
    pub key: String,
    pub request_hash: String,
}

/// What accepting a message did.
#[derive(Debug, Clone, PartialEq)]
pub enum Accepted {
    /// Stored, with its `pending` event (to publish).
    Created {
        message: MessageRecord,
        event: Box<Envelope>,
    },
    /// The idempotency key was used before, for this same request: the
    /// first message, and nothing new.
    Replayed(MessageRecord),
    /// The idempotency key was used before for a different request.
    KeyReused,
}

/// An outbox entry due for an attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxItem {
    pub message: MessageRecord,
    pub media: Option<Vec<u8>>,
    /// The prepared WhatsApp message, once built.
    pub wire: Option<Vec<u8>>,
    pub attempts: u32,
}

/// What the outbox holds, over every session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxDepth {
    pub pending: u64,
    pub oldest: Option<DateTime<Utc>>,
}

/// A poll a session sent or received: what opening and naming the votes
/// on it takes.
#[derive(Clone, PartialEq)]
pub struct StoredPoll {
    pub direction: Direction,
    pub chat: String,
    /// Who created it, when it came in.
    pub sender: Sender,
    pub options: Vec<String>,
    /// The WhatsApp message as sent, for a poll this session sent: it
    /// carries the secret the votes are encrypted with.
    pub wire: Option<Vec<u8>>,
}

/// The secret it may carry opens every vote: never in a log.
impl std::fmt::Debug for StoredPoll {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredPoll")
            .field("direction", &self.direction)
            .field("options", &self.options.len())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct MessageQuery {
    pub chat: Option<String>,
    pub direction: Option<Direction>,
    pub status: Option<MessageStatus>,
    pub limit: u32,
    /// Only messages older than this one (the previous page's last).
    pub before: Option<MessageId>,
    /// Only messages newer than this one: the `limit` closest to it, still
    /// newest first (a page towards the present).
    pub after: Option<MessageId>,
}

#[async_trait]
pub trait MessageStore: Send + Sync {
    /// Stores an outgoing message with its history's first step and its
    /// `pending` event, and claims the idempotency key, in one transaction.
    async fn accept(
        &self,
        new: NewOutgoing,
        claim: Option<IdempotencyClaim>,
    ) -> Result<Accepted, StoreError>;

    async fn get_message(
        &self,
        org: OrgId,
        session: SessionId,
        id: MessageId,
    ) -> Result<Option<(MessageRecord, Vec<StatusStep>)>, StoreError>;

    /// Newest first.
    async fn list_messages(
        &self,
        org: OrgId,
        session: SessionId,
        query: &MessageQuery,
    ) -> Result<Vec<MessageRecord>, StoreError>;

    /// Pending outgoing messages due by `now`, oldest first; with
    /// `after`, only those accepted after that one (an index range, so a
    /// backlog before it is not read again).
    async fn due(
        &self,
        session: SessionId,
        now: DateTime<Utc>,
        after: Option<MessageId>,
        limit: u32,
    ) -> Result<Vec<OutboxItem>, StoreError>;

    /// The earliest time a pending message of the session is due, if any.
    async fn next_due(&self, session: SessionId) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Keeps the built WhatsApp message, so every attempt sends the same
    /// bytes, and drops the request's media bytes.
    async fn set_wire(
        &self,
        session: SessionId,
        id: MessageId,
        wire: &[u8],
    ) -> Result<(), StoreError>;

    /// Records an attempt and when the next one is due.
    async fn record_attempt(
        &self,
        session: SessionId,
        id: MessageId,
        attempts: u32,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Moves one message to `status` (through every status in between),
    /// with history steps and events, in one transaction. Returns the
    /// events to publish: none when the move is not forward (a late or
    /// repeated receipt).
    async fn advance(
        &self,
        session: SessionId,
        id: MessageId,
        status: MessageStatus,
        failure: Option<Failure>,
    ) -> Result<Vec<Envelope>, StoreError>;

    /// Like [`advance`](Self::advance), for outgoing messages named by
    /// their WhatsApp ids (acks and receipts name them so).
    async fn advance_by_wa_ids(
        &self,
        session: SessionId,
        wa_ids: &[String],
        status: MessageStatus,
        failure: Option<Failure>,
    ) -> Result<Vec<Envelope>, StoreError>;

    /// Makes every pending message of the session due by `at`: on start,
    /// nothing is in flight any more, whatever the last process recorded.
    async fn requeue(&self, session: SessionId, at: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Whether the session ever sent a message to `chat` (pacing gives new
    /// chats a lower budget).
    async fn has_sent_to(&self, session: SessionId, chat: &str) -> Result<bool, StoreError>;

    /// The outbox of every session: how many outgoing messages are still
    /// pending, and when the oldest of them was accepted.
    async fn outbox_depth(&self) -> Result<OutboxDepth, StoreError>;

    /// Fails pending messages accepted before `before` as expired.
    async fn expire(
        &self,
        session: SessionId,
        before: DateTime<Utc>,
    ) -> Result<Vec<Envelope>, StoreError>;

    /// Records incoming messages with their events, all in one
    /// transaction (all or nothing, so WhatsApp is told they arrived only
    /// once all are stored), through the store's group-commit writer: the
    /// batches of all sessions waiting at that moment share it. A message
    /// already recorded under the same WhatsApp id (redelivered, or seen
    /// under both a LID and a phone number) is skipped: no row, no event.
    /// Returns the events to publish.
    async fn record_incoming(&self, batch: Vec<NewIncoming>) -> Result<Vec<Envelope>, StoreError>;

    /// A message with the reference to its attachment, if it has one the
    /// gateway can download.
    async fn media_ref(
        &self,
        org: OrgId,
        session: SessionId,
        id: MessageId,
    ) -> Result<Option<(MessageRecord, Option<MediaRef>)>, StoreError>;

    /// The poll with this WhatsApp id that the session sent or received
    /// (the one it sent, if both).
    async fn poll(&self, session: SessionId, wa_id: &str)
    -> Result<Option<StoredPoll>, StoreError>;

    /// Forgets idempotency keys claimed before `before`.
    async fn prune_idempotency_keys(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
}

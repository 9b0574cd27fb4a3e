//! The seam between a session's supervisor and the WhatsApp protocol. The
//! supervisor only sees these traits and [`EngineEvent`]s, which is what
//! lets its state machine be tested without a network.

use crate::domain::ChatChange;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use tokio::sync::mpsc;

use super::group_events::GroupNotice;
use super::messenger::Messenger;
use crate::domain::{
    CallOutcome, ContactPresence, HistoryScope, HistorySyncType, MessageStatus, Phone, SessionId,
};
use crate::messages::{Inbound, MediaRef, Sender};
use crate::store::contacts::{ContactChange, Person};
use crate::store::{HistoryChat, StoreError, StoredPoll};

/// What the protocol reports, reduced to what the supervisor acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineEvent {
    /// A QR code to show; it rotates after `valid_for`.
    QrCode {
        code: String,
        valid_for: Duration,
    },
    /// The server's QR codes for this connection are used up.
    QrCodesExhausted,
    PairingCode {
        code: String,
        valid_for: Duration,
    },
    /// A phone linked this device; a reconnect follows.
    Paired {
        phone: String,
    },
    /// Logged in and live.
    Connected,
    /// The device was unlinked (from the phone, or on connect).
    LoggedOut,
    TemporarilyBanned {
        expires_in: Duration,
    },
    ClientOutdated,
    /// WhatsApp closed the connection because another one of the same
    /// device logged in (`conflict type="replaced"`).
    Replaced,
    /// The account's own profile name changed (or arrived): the client
    /// announces itself `available` when it does, so the session's own
    /// presence is said again.
    PushNameChanged,
    /// Someone calls this number: the offer, ringing now.
    IncomingCall(CallOffer),
    /// A call that rang ended without the session taking it.
    CallEnded {
        call_id: String,
        from: Sender,
        outcome: CallOutcome,
    },
    /// A contact the session subscribed to came online, went offline, or
    /// types in a chat.
    Presence(PresenceNotice),
    /// A group the number is in (or was in, or comes into) changed: one
    /// action of a `w:gp2` notification, or a group's picture.
    Group(Box<GroupNotice>),
    /// The account's app state changed a chat's settings (archived,
    /// pinned, muted, read), on the phone or another device, or echoing
    /// this session's own change.
    Chat {
        chat: String,
        change: ChatChange,
    },
    /// A contact's saved name changed in the account's app state, or
    /// their profile picture changed (WhatsApp's notification).
    Contact {
        person: Person,
        change: ContactChange,
    },
}

/// A contact's presence, as the supervisor reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceNotice {
    pub contact: Sender,
    pub state: ContactPresence,
    pub last_seen: Option<DateTime<Utc>>,
    /// The chat they type in.
    pub chat: Option<String>,
}

/// A call offer as the supervisor acts on it (reports, maybe rejects).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallOffer {
    /// WhatsApp's call id.
    pub call_id: String,
    /// Who the offer came from, as WhatsApp addressed it (a JID).
    pub peer: String,
    /// Who started the call (a JID).
    pub creator: String,
    /// The caller, by phone and LID as far as known.
    pub from: Sender,
    pub video: bool,
    /// The group's JID, for a group call.
    pub group: Option<String>,
}

/// What WhatsApp reports about sent messages, by WhatsApp message id. It
/// goes to the session's outbox, not through the supervisor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The server accepted the message, or refused it with `error`.
    ServerAck { wa_id: String, error: Option<u16> },
    /// The recipient's phone got, read or played these messages.
    Receipt {
        wa_ids: Vec<String>,
        status: MessageStatus,
    },
}

/// Where a session's incoming messages go. The engine calls it before it
/// tells WhatsApp they arrived, so an `Err` (nothing stored) makes
/// WhatsApp deliver them again rather than lose them. It must be
/// idempotent: a message can arrive more than once.
#[async_trait]
pub trait InboundSink: Send + Sync + 'static {
    async fn record(&self, batch: Vec<Inbound>) -> Result<(), InboundError>;

    /// The poll with this WhatsApp id that the session sent or received,
    /// to open and name the votes on it.
    async fn poll(&self, wa_id: &str) -> Result<Option<StoredPoll>, InboundError>;

    /// How much of the history after a link the session keeps now (its
    /// `history` setting): the engine does not decode a chunk it would
    /// drop.
    fn history_scope(&self) -> HistoryScope {
        HistoryScope::None
    }

    /// Stores a decoded history-sync chunk (idempotent: messages are
    /// stored once by WhatsApp id).
    async fn history(&self, chunk: HistoryChunk) -> Result<(), InboundError> {
        let _ = chunk;
        Ok(())
    }
}

/// One history-sync chunk the phone sent, decoded: its chats (each with
/// its messages, either direction) and push names.
#[derive(Debug, Clone)]
pub struct HistoryChunk {
    pub sync_type: HistorySyncType,
    pub chunk_order: Option<u32>,
    pub progress: Option<u32>,
    pub chats: Vec<HistoryChat>,
    /// `(JID, push name)`.
    pub push_names: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
#[error("could not record incoming messages")]
pub struct InboundError(#[from] pub StoreError);

/// Why an attachment could not be downloaded.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// WhatsApp's CDN no longer has the file under this reference (it
    /// expires some weeks after sending).
    #[error("the media is no longer on WhatsApp's servers")]
    Expired,
    /// The stored reference cannot be used (it is not what was stored).
    #[error("the stored media reference is invalid")]
    InvalidReference,
    /// The CDN could not be reached, or the file did not check out.
    #[error("the download failed: {0}")]
    Failed(String),
    /// This link cannot download (test doubles).
    #[error("this connection cannot download media")]
    Unsupported,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    pub phone: Option<String>,
    pub push_name: Option<String>,
    /// The account's LID, `<digits>@lid`, once known.
    pub lid: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("could not open the device store: {0}")]
    DeviceStore(String),
    #[error("WhatsApp refused the pairing code request: {0}")]
    PairingCode(String),
    #[error("a pairing code issued earlier is still valid")]
    PairingCodeOutstanding,
    #[error(transparent)]
    Config(#[from] super::server::SimulatorNeedsLoopback),
}

/// Opens per-session connections and owns the sessions' device keys.
#[async_trait]
pub trait Engine: Send + Sync + 'static {
    /// Prepares a client for `session` whose events go to `events`, whose
    /// reports on sent messages go to `deliveries` and whose incoming
    /// messages are stored through `inbound`. Opening does not connect.
    async fn open(
        &self,
        session: SessionId,
        events: mpsc::UnboundedSender<EngineEvent>,
        deliveries: mpsc::UnboundedSender<Delivery>,
        inbound: Arc<dyn InboundSink>,
    ) -> Result<Arc<dyn Link>, EngineError>;

    /// Deletes the session's device keys. The session must have no open link.
    async fn wipe(&self, session: SessionId) -> Result<(), StoreError>;
}

/// One session's client.
#[async_trait]
pub trait Link: Send + Sync + 'static {
    /// Makes one connection and resolves when it has ended, for whatever
    /// reason. Reconnecting is the supervisor's decision.
    fn connect(&self) -> BoxFuture<'static, ()>;

    async fn request_pairing_code(&self, phone: &Phone) -> Result<String, EngineError>;

    /// The linked number and profile name, once known.
    fn identity(&self) -> Identity;

    /// Unlinks the device (telling WhatsApp when connected) and disconnects.
    async fn logout(&self);

    /// Closes the connection for good, flushing state.
    async fn disconnect(&self);

    /// What sends messages through this link; `None` for links that
    /// cannot (test doubles).
    fn messenger(&self) -> Option<Arc<dyn Messenger>>;

    /// What the client holds in its caches, by its own estimate; `None`
    /// for links that cannot tell.
    async fn memory(&self) -> Option<ClientMemory> {
        None
    }

    /// Downloads and decrypts an attachment a message pointed at.
    async fn download(&self, _media: &MediaRef) -> Result<Vec<u8>, DownloadError> {
        Err(DownloadError::Unsupported)
    }

    /// Frames received from WhatsApp so far (over every connection of this
    /// link), for the liveness watch; `None` for links that cannot tell,
    /// which are then never suspected.
    fn frames_received(&self) -> Option<u64> {
        None
    }

    /// Pings WhatsApp on the open connection; `Err` if no answer came
    /// within `timeout`.
    fn ping(&self, _timeout: Duration) -> BoxFuture<'static, Result<(), NoAnswer>> {
        Box::pin(async { Ok(()) })
    }

    /// Ends the open connection (the future `connect` gave resolves)
    /// without ending the session: the supervisor connects again.
    async fn drop_connection(&self) {}
}

/// A ping WhatsApp did not answer in time, or could not be sent.
#[derive(Debug, thiserror::Error)]
#[error("WhatsApp did not answer a ping: {0}")]
pub struct NoAnswer(pub String);

/// A client's own estimate of the heap it holds (whatsapp-rust's
/// `memory_report()`), in total and by collection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientMemory {
    /// Estimated retained bytes over every part.
    pub total_bytes: u64,
    pub parts: Vec<MemoryPart>,
}

/// One collection of a client: a cache, a store cache, a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryPart {
    pub name: &'static str,
    pub entries: u64,
    /// Estimated retained bytes; 0 for collections that only count.
    pub bytes: u64,
}

//! The seam between a session's supervisor and the WhatsApp protocol. The
//! supervisor only sees these traits and [`EngineEvent`]s, which is what
//! lets its state machine be tested without a network.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use tokio::sync::mpsc;

use crate::domain::{MessageStatus, Phone, SessionId};
use crate::outbox::Messenger;

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

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    pub phone: Option<String>,
    pub push_name: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("could not open the device store: {0}")]
    DeviceStore(String),
    #[error("could not remove the device store: {0}")]
    Wipe(#[source] std::io::Error),
    #[error("WhatsApp refused the pairing code request: {0}")]
    PairingCode(String),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// Opens per-session connections and owns the sessions' device keys.
#[async_trait]
pub trait Engine: Send + Sync + 'static {
    /// Prepares a client for `session` whose events go to `events` and
    /// whose reports on sent messages go to `deliveries`. Opening does not
    /// connect.
    async fn open(
        &self,
        session: SessionId,
        events: mpsc::UnboundedSender<EngineEvent>,
        deliveries: mpsc::UnboundedSender<Delivery>,
    ) -> Result<Arc<dyn Link>, EngineError>;

    /// Deletes the session's device keys. The session must have no open link.
    async fn wipe(&self, session: SessionId) -> Result<(), EngineError>;
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
}

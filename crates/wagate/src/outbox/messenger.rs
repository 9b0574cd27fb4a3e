//! The narrow face of a live WhatsApp connection that the outbox sends
//! through. Implemented by whatsapp-rust's `Client`; a test double stands
//! in for narrow unit tests only.

use std::sync::Arc;

use async_trait::async_trait;
use whatsapp_rust::Client;
use whatsapp_rust::Jid;
use whatsapp_rust::send::{SendError, SendOptions};
use whatsapp_rust::waproto::whatsapp as wa;

use crate::messages::{MediaKind, UploadedMedia};

/// Why an attempt to send failed, as the outbox acts on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendFailure {
    /// Worth another try: the connection dropped, a query timed out.
    #[error("transient: {0}")]
    Transient(String),
    /// Will never succeed as asked.
    #[error("refused: {0}")]
    Invalid(String),
}

#[async_trait]
pub trait Messenger: Send + Sync {
    /// Sends `message` to `chat` under the WhatsApp id `wa_id`. Sending the
    /// same id again is what a resend is: the recipient shows it once.
    async fn send(&self, chat: &Jid, wa_id: &str, message: wa::Message) -> Result<(), SendFailure>;

    /// This account's own JID (no device): the author of what it sent.
    fn own_jid(&self) -> Option<Jid>;

    /// Encrypts and uploads a media file to WhatsApp's CDN.
    async fn upload(
        &self,
        bytes: Vec<u8>,
        kind: MediaKind,
        mime_type: String,
    ) -> Result<UploadedMedia, SendFailure>;
}

pub struct ClientMessenger {
    client: Arc<Client>,
}

impl ClientMessenger {
    pub fn new(client: Arc<Client>) -> Self {
        Self { client }
    }
}

#[async_trait]
impl Messenger for ClientMessenger {
    async fn send(&self, chat: &Jid, wa_id: &str, message: wa::Message) -> Result<(), SendFailure> {
        self.client
            .send_message_with_options(
                chat.clone(),
                message,
                SendOptions::default().with_message_id(wa_id),
            )
            .await
            .map(|_| ())
            .map_err(classify)
    }

    fn own_jid(&self) -> Option<Jid> {
        self.client.pn().map(|jid| jid.to_non_ad())
    }

    async fn upload(
        &self,
        bytes: Vec<u8>,
        kind: MediaKind,
        mime_type: String,
    ) -> Result<UploadedMedia, SendFailure> {
        // A failed upload (the CDN unreachable, a dropped connection) is
        // worth another try; nothing was sent yet.
        crate::messages::upload(&self.client, bytes, kind, mime_type)
            .await
            .map_err(|e| SendFailure::Transient(e.to_string()))
    }
}

fn classify(error: SendError) -> SendFailure {
    match error {
        SendError::InvalidRequest(reason) => SendFailure::Invalid(reason),
        // Not logged in, a dropped connection, a failed query, an internal
        // error mid-encryption: the message did not go out as a whole, and
        // the same id may be sent again.
        other => SendFailure::Transient(other.to_string()),
    }
}

//! The narrow face of a live WhatsApp connection: what the outbox sends
//! through, and the few calls the API makes straight on a `working`
//! session (read receipts, typing, contact checks). Implemented by
//! whatsapp-rust's `Client`; a test double stands in for narrow unit tests
//! only.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use whatsapp_rust::Client;
use whatsapp_rust::Jid;
use whatsapp_rust::features::{AppStateError, BlockingError, ChatStateType, PresenceStatus};
use whatsapp_rust::http::HttpRequest;
use whatsapp_rust::send::{SendError, SendOptions};
use whatsapp_rust::waproto::whatsapp as wa;

use crate::domain::{ChatChange, Mute, PresenceState};
use crate::messages::{MediaKind, UploadedMedia};

/// Why an attempt to send failed, as the outbox acts on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum SendFailure {
    /// Worth another try: the connection dropped, a query timed out.
    #[error("transient: {0}")]
    Transient(String),
    /// Will never succeed as asked.
    #[error("refused: {0}")]
    Invalid(String),
    /// The session runs on another node, which did not answer (`--nats`).
    /// Only the API's calls through another node meet it; worth another
    /// try.
    #[error("the node that runs the session did not answer")]
    OwnerUnreachable,
}

/// What the chat shows this account doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Typing {
    /// "typing…"
    Composing,
    /// "recording audio…"
    Recording,
    /// Stops either.
    Paused,
}

/// Whether one number has WhatsApp, as WhatsApp answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ContactCheck {
    /// The number as asked (digits).
    pub phone: String,
    pub on_whatsapp: bool,
    /// The JID to send to, when it has WhatsApp.
    pub jid: Option<String>,
    /// Its LID, when WhatsApp told it.
    pub lid: Option<String>,
    pub business: bool,
}

/// What WhatsApp says of a person now: their about text and profile
/// picture.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactProfile {
    /// `None` when they have none or do not share it.
    pub about: Option<String>,
    /// `None` when they have none or do not share it.
    pub picture: Option<ProfilePicture>,
}

/// A profile picture as WhatsApp names it: an id that changes with the
/// picture, and where to fetch it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfilePicture {
    pub id: String,
    pub url: String,
}

/// The oldest message a session has of a chat, as an on-demand history
/// request names it to the phone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OldestMessage {
    /// Its WhatsApp id.
    pub wa_id: String,
    /// Written by this account.
    pub from_me: bool,
    /// When it was sent, unix milliseconds.
    pub timestamp_ms: i64,
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

    /// Sends read receipts for `wa_ids` in `chat`; in a group, `sender` is
    /// who wrote them.
    async fn mark_read(
        &self,
        chat: &Jid,
        sender: Option<&Jid>,
        wa_ids: &[String],
    ) -> Result<(), SendFailure>;

    /// Shows `typing` in `chat`.
    async fn typing(&self, chat: &Jid, typing: Typing) -> Result<(), SendFailure>;

    /// Asks WhatsApp which of `phones` (digits) have an account.
    async fn check_contacts(&self, phones: &[String]) -> Result<Vec<ContactCheck>, SendFailure>;

    /// Changes a chat's settings in the account's app state (archive, pin,
    /// mute, read), so the phone and every other device show it.
    async fn change_chat(&self, chat: &Jid, change: ChatChange) -> Result<(), SendFailure>;

    /// Asks the phone for up to `count` messages of `chat` older than
    /// `oldest` (the oldest the session has); they come later as an
    /// on-demand history chunk.
    async fn request_history(
        &self,
        chat: &Jid,
        oldest: &OldestMessage,
        count: u32,
    ) -> Result<(), SendFailure>;

    /// Tells WhatsApp this device is online or not.
    async fn set_presence(&self, presence: PresenceState) -> Result<(), SendFailure>;

    /// Asks WhatsApp for `contact`'s presence (online, last seen, typing)
    /// from now on, for as long as this connection lasts; or, with
    /// `subscribe` false, no longer.
    async fn subscribe_presence(&self, contact: &Jid, subscribe: bool) -> Result<(), SendFailure>;

    /// Rejects a ringing call; `peer` and `creator` are JIDs as the offer
    /// named them.
    async fn reject_call(
        &self,
        call_id: &str,
        peer: &str,
        creator: &str,
    ) -> Result<(), SendFailure>;

    /// `contact`'s about text and profile picture, as WhatsApp answers
    /// now.
    async fn contact_profile(&self, contact: &Jid) -> Result<ContactProfile, SendFailure>;

    /// The bytes of a profile picture WhatsApp named (`picture.url`).
    async fn download_picture(&self, picture: &ProfilePicture) -> Result<Vec<u8>, SendFailure>;

    /// Blocks `contact` (or, with `block` false, unblocks them): they can
    /// no longer write to or call the number.
    async fn block(&self, contact: &Jid, block: bool) -> Result<(), SendFailure>;

    /// Group calls on this connection (`session/groups.rs`); `None` where
    /// a test double has none.
    fn groups(&self) -> Option<Arc<dyn super::groups::GroupOps>> {
        None
    }
}

pub(crate) struct ClientMessenger {
    client: Arc<Client>,
}

impl ClientMessenger {
    pub(crate) fn new(client: Arc<Client>) -> Self {
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

    fn groups(&self) -> Option<Arc<dyn super::groups::GroupOps>> {
        Some(Arc::new(super::groups::ClientGroups::new(Arc::clone(
            &self.client,
        ))))
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

    async fn mark_read(
        &self,
        chat: &Jid,
        sender: Option<&Jid>,
        wa_ids: &[String],
    ) -> Result<(), SendFailure> {
        let ids: Vec<&str> = wa_ids.iter().map(String::as_str).collect();
        self.client
            .mark_as_read(chat, sender, &ids)
            .await
            .map_err(|e| SendFailure::Transient(e.to_string()))
    }

    async fn typing(&self, chat: &Jid, typing: Typing) -> Result<(), SendFailure> {
        let state = match typing {
            Typing::Composing => ChatStateType::Composing,
            Typing::Recording => ChatStateType::Recording,
            Typing::Paused => ChatStateType::Paused,
        };
        self.client
            .chatstate()
            .send(chat, state)
            .await
            .map_err(|e| SendFailure::Transient(e.to_string()))
    }

    async fn request_history(
        &self,
        chat: &Jid,
        oldest: &OldestMessage,
        count: u32,
    ) -> Result<(), SendFailure> {
        let count = i32::try_from(count)
            .map_err(|_| SendFailure::Invalid(format!("cannot ask for {count} messages")))?;
        self.client
            .fetch_message_history(
                chat,
                &oldest.wa_id,
                oldest.from_me,
                oldest.timestamp_ms,
                count,
            )
            .await
            .map(|_| ())
            .map_err(|e| SendFailure::Transient(e.to_string()))
    }

    async fn change_chat(&self, chat: &Jid, change: ChatChange) -> Result<(), SendFailure> {
        // Each call boxed, so this future holds one pointer rather than the
        // largest of the library's (deep) chat-action futures.
        type Call<'a> = std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<(), AppStateError>> + Send + 'a>,
        >;
        let actions = self.client.chat_actions();
        let call: Call<'_> = match change {
            ChatChange::Archive(true) => Box::pin(actions.archive_chat(chat, None)),
            ChatChange::Archive(false) => Box::pin(actions.unarchive_chat(chat, None)),
            ChatChange::Pin(true) => Box::pin(actions.pin_chat(chat)),
            ChatChange::Pin(false) => Box::pin(actions.unpin_chat(chat)),
            ChatChange::Mute(Mute::Forever) => Box::pin(actions.mute_chat(chat)),
            ChatChange::Mute(Mute::Until(at)) => {
                Box::pin(actions.mute_chat_until(chat, at.timestamp_millis()))
            }
            ChatChange::Mute(Mute::Off) => Box::pin(actions.unmute_chat(chat)),
            ChatChange::Read(read) => Box::pin(actions.mark_chat_as_read(chat, read, None)),
        };
        let done = call.await;
        done.map_err(|e| match e {
            AppStateError::InvalidRequest(reason) => SendFailure::Invalid(reason),
            other => SendFailure::Transient(other.to_string()),
        })
    }

    async fn set_presence(&self, presence: PresenceState) -> Result<(), SendFailure> {
        let status = match presence {
            PresenceState::Available => PresenceStatus::Available,
            PresenceState::Unavailable => PresenceStatus::Unavailable,
        };
        self.client
            .presence()
            .set(status)
            .await
            .map_err(|e| SendFailure::Transient(e.to_string()))
    }

    async fn subscribe_presence(&self, contact: &Jid, subscribe: bool) -> Result<(), SendFailure> {
        let presence = self.client.presence();
        let sent = if subscribe {
            presence.subscribe(contact.clone()).await
        } else {
            presence.unsubscribe(contact).await
        };
        sent.map_err(|e| SendFailure::Transient(e.to_string()))
    }

    async fn reject_call(
        &self,
        call_id: &str,
        peer: &str,
        creator: &str,
    ) -> Result<(), SendFailure> {
        let jid = |s: &str| {
            s.parse::<Jid>()
                .map_err(|_| SendFailure::Invalid(format!("not a JID: {s}")))
        };
        self.client
            .voip()
            .reject_call(call_id, &jid(peer)?, &jid(creator)?)
            .await
            .map_err(|e| SendFailure::Transient(e.to_string()))
    }

    async fn contact_profile(&self, contact: &Jid) -> Result<ContactProfile, SendFailure> {
        let contacts = self.client.contacts();
        let info = contacts
            .get_user_info(std::slice::from_ref(contact))
            .await
            .map_err(|e| SendFailure::Transient(e.to_string()))?;
        let about = info
            .values()
            .find(|i| i.jid.user == contact.user)
            .and_then(|i| i.status.clone())
            .filter(|s| !s.is_empty());
        let picture = contacts
            .get_profile_picture(contact, false)
            .await
            .map_err(|e| SendFailure::Transient(e.to_string()))?
            .map(|p| ProfilePicture {
                id: p.id,
                url: p.url,
            });
        Ok(ContactProfile { about, picture })
    }

    async fn download_picture(&self, picture: &ProfilePicture) -> Result<Vec<u8>, SendFailure> {
        let response = self
            .client
            .http_client
            .execute(HttpRequest::get(picture.url.clone()))
            .await
            .map_err(|e| SendFailure::Transient(e.to_string()))?;
        match response.status_code {
            200 => Ok(response.body),
            // Gone since WhatsApp named it (changed, or no longer shown).
            401 | 403 | 404 | 410 => Err(SendFailure::Invalid(format!(
                "the picture is no longer there ({})",
                response.status_code
            ))),
            status => Err(SendFailure::Transient(format!(
                "fetching the picture answered {status}"
            ))),
        }
    }

    async fn block(&self, contact: &Jid, block: bool) -> Result<(), SendFailure> {
        let blocking = self.client.blocking();
        let done = if block {
            blocking.block(contact).await
        } else {
            blocking.unblock(contact).await
        };
        done.map_err(|e| match e {
            // No LID for the number yet: WhatsApp takes a block only with
            // both ids.
            BlockingError::InvalidJid(reason) => SendFailure::Invalid(reason),
            other => SendFailure::Transient(other.to_string()),
        })
    }

    async fn check_contacts(&self, phones: &[String]) -> Result<Vec<ContactCheck>, SendFailure> {
        let jids: Vec<Jid> = phones.iter().map(|p| Jid::pn(p.as_str())).collect();
        let found = self
            .client
            .contacts()
            .is_on_whatsapp(&jids)
            .await
            .map_err(|e| SendFailure::Transient(e.to_string()))?;
        // One answer per number asked, in the order asked; a number the
        // server did not mention has no account.
        Ok(phones
            .iter()
            .map(|phone| {
                let hit = found.iter().find(|r| {
                    r.jid.user == *phone || r.pn_jid.as_ref().is_some_and(|pn| pn.user == *phone)
                });
                match hit {
                    Some(r) if r.is_registered => ContactCheck {
                        phone: phone.clone(),
                        on_whatsapp: true,
                        jid: Some(r.pn_jid.as_ref().unwrap_or(&r.jid).to_non_ad().to_string()),
                        lid: r
                            .lid
                            .as_ref()
                            .or(r.jid.is_lid().then_some(&r.jid))
                            .map(|l| l.to_non_ad().to_string()),
                        business: r.is_business,
                    },
                    _ => ContactCheck {
                        phone: phone.clone(),
                        on_whatsapp: false,
                        jid: None,
                        lid: None,
                        business: false,
                    },
                }
            })
            .collect())
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

//! What an incoming WhatsApp message says, in the JSON shapes the API and
//! the events show, and the media reference kept to download it later.
//! [`decode`] is pure: the whatsapp-rust adapter calls it on every message
//! its durability hook is handed, before anything is stored.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use whatsapp_rust::wacore::poll;
use whatsapp_rust::waproto::whatsapp as wa;
use whatsapp_rust::waproto::whatsapp::message::protocol_message::Type as ProtocolType;

use super::content::MediaKind;
use crate::domain::MessageId;

/// Who wrote a message. Either may be unknown: WhatsApp addresses people by
/// phone number or by LID (a privacy id), and tells the other only
/// sometimes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Sender {
    /// The phone number, digits only (`15551234567`).
    pub phone: Option<String>,
    /// The LID, its user part only (`123456789012345`, from `...@lid`).
    pub lid: Option<String>,
}

/// The message a reaction, a poll vote, an edit or a revoke is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Target {
    /// Its WhatsApp message id.
    pub wa_id: String,
    /// Whether this session's account wrote it.
    pub from_me: bool,
    /// Its gateway id, when the gateway has it (sent through the API or
    /// received earlier).
    #[schema(value_type = Option<String>, format = Uuid)]
    pub message_id: Option<MessageId>,
    /// The key as the sender wrote it: `from_me` there is from the
    /// sender's side, and `participant` names a group message's author.
    /// Turned into [`Target::from_me`] by [`Target::resolve_author`].
    #[serde(skip)]
    pub key: TargetKey,
}

/// A target's key, from the side of whoever sent the reaction, edit or
/// revoke.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetKey {
    pub from_me: bool,
    /// A group message's author (a JID).
    pub participant: Option<String>,
}

impl Target {
    /// Sets [`Target::from_me`] from the key: `sent_by_me` says whether
    /// this account sent the message that points at the target, and
    /// `is_me` recognises this account's user part (number or LID).
    pub fn resolve_author(&mut self, sent_by_me: bool, is_me: impl Fn(&str) -> bool) {
        self.from_me = if sent_by_me {
            self.key.from_me
        } else if self.key.from_me {
            // The sender's own message.
            false
        } else {
            match &self.key.participant {
                // One-to-one: not the sender's, so ours.
                None => true,
                Some(jid) => is_me(jid.split(['@', ':']).next().unwrap_or_default()),
            }
        };
    }
}

/// What an incoming message says, one shape per `type`. Text, media,
/// location, contacts and poll mirror the shapes a send request uses
/// (without what only sending needs, such as `source`).
#[derive(Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum IncomingContent {
    Text {
        body: String,
    },
    /// Download the bytes from `GET /sessions/{id}/messages/{message_id}/media`.
    Media {
        #[schema(value_type = String, example = "image")]
        kind: MediaKind,
        mime_type: Option<String>,
        caption: Option<String>,
        /// Documents only.
        file_name: Option<String>,
        /// In bytes.
        size: Option<u64>,
        /// Audio, voice notes and video.
        seconds: Option<u32>,
        /// Hex SHA-256 of the decrypted file.
        sha256: Option<String>,
    },
    Location {
        latitude: f64,
        longitude: f64,
        name: Option<String>,
        address: Option<String>,
    },
    /// One contact card or several.
    Contacts {
        vcards: Vec<String>,
    },
    Poll {
        question: String,
        options: Vec<String>,
        selectable_count: u32,
    },
    /// A vote on the poll `target`: the options the voter has chosen now,
    /// replacing their earlier vote on it (empty: they took their vote
    /// back). `null` when the vote could not be opened: the gateway does
    /// not know the poll (it was sent before this number was linked, or
    /// from another device the gateway never saw it from).
    PollVote {
        target: Target,
        selected_options: Option<Vec<String>>,
    },
    /// An empty `emoji` takes the sender's reaction away.
    Reaction {
        target: Target,
        emoji: String,
    },
    /// `body` is the new text (or caption).
    Edit {
        target: Target,
        body: Option<String>,
    },
    /// The sender deleted `target` for everyone.
    Revoke {
        target: Target,
    },
}

impl IncomingContent {
    /// The `kind` column and field: the outgoing kinds' names, plus `edit`
    /// and `revoke`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Text { .. } => "text",
            Self::Media { kind, .. } => kind.as_str(),
            Self::Location { .. } => "location",
            Self::Contacts { .. } => "contact",
            Self::Poll { .. } => "poll",
            Self::PollVote { .. } => "poll_vote",
            Self::Reaction { .. } => "reaction",
            Self::Edit { .. } => "edit",
            Self::Revoke { .. } => "revoke",
        }
    }

    pub fn target(&self) -> Option<&Target> {
        match self {
            Self::Reaction { target, .. }
            | Self::PollVote { target, .. }
            | Self::Edit { target, .. }
            | Self::Revoke { target } => Some(target),
            _ => None,
        }
    }

    pub fn target_mut(&mut self) -> Option<&mut Target> {
        match self {
            Self::Reaction { target, .. }
            | Self::PollVote { target, .. }
            | Self::Edit { target, .. }
            | Self::Revoke { target } => Some(target),
            _ => None,
        }
    }
}

/// Says what a message is without what it says: bodies are private, and a
/// `{:?}` ends up in logs.
impl fmt::Debug for IncomingContent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IncomingContent")
            .field("kind", &self.kind())
            .finish_non_exhaustive()
    }
}

/// Where an attachment is on WhatsApp's CDN and how to open it: kept with
/// the message (never shown) so the file can be fetched on first request.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaRef {
    pub kind: MediaKind,
    pub direct_path: String,
    /// Hex.
    pub media_key: String,
    /// Hex.
    pub file_sha256: String,
    /// Hex.
    pub file_enc_sha256: String,
    pub file_length: u64,
    pub mime_type: Option<String>,
}

impl fmt::Debug for MediaRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key opens the file: never in a log.
        f.debug_struct("MediaRef")
            .field("kind", &self.kind)
            .field("file_length", &self.file_length)
            .finish_non_exhaustive()
    }
}

/// An incoming message, decoded, before the gateway gives it an id.
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound {
    pub wa_id: String,
    /// The chat's JID, without device; a one-to-one chat by phone number
    /// when the number is known.
    pub chat: String,
    pub sender: Sender,
    pub push_name: Option<String>,
    /// When the sender sent it (WhatsApp's timestamp).
    pub timestamp: DateTime<Utc>,
    /// Written by this session's account (from the phone or another
    /// companion).
    pub from_me: bool,
    pub content: IncomingContent,
    pub media: Option<MediaRef>,
    /// The WhatsApp id of the message this one quotes.
    pub reply_to: Option<String>,
}

/// The payload of `message.received`, `message.reaction`,
/// `message.edited` and `message.revoked`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IncomingMessage {
    /// The gateway's id for the message (as in `GET /sessions/{id}/messages`).
    #[schema(value_type = String, format = Uuid)]
    pub message_id: MessageId,
    /// The WhatsApp message id.
    pub wa_id: String,
    /// The chat's JID: a person (`15551234567@s.whatsapp.net`, or
    /// `...@lid` when the number is not known) or a group (`...@g.us`).
    pub chat: String,
    pub sender: Sender,
    /// The sender's profile name, as their phone sent it.
    pub push_name: Option<String>,
    /// When the sender sent it.
    pub timestamp: DateTime<Utc>,
    /// Written by this session's own account, from the phone or another
    /// linked device.
    pub from_me: bool,
    /// `text`, `image`, `video`, `audio`, `voice`, `document`, `sticker`,
    /// `location`, `contact`, `poll`, `poll_vote`, `reaction`, `edit` or
    /// `revoke`.
    pub kind: String,
    pub content: IncomingContent,
    /// The WhatsApp id of the message this one quotes, if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reply_to: Option<String>,
}

/// The message inside the wrappers that only change how it is shown
/// (sent from this account's phone, disappearing, view once, a document
/// with a caption). Bounded: a peer could nest wrappers without end.
fn unwrap(message: &wa::Message) -> &wa::Message {
    let mut m = message;
    for _ in 0..6 {
        let inner = [
            m.device_sent_message
                .as_option()
                .and_then(|d| d.message.as_option()),
            m.ephemeral_message
                .as_option()
                .and_then(|w| w.message.as_option()),
            m.view_once_message
                .as_option()
                .and_then(|w| w.message.as_option()),
            m.view_once_message_v2
                .as_option()
                .and_then(|w| w.message.as_option()),
            m.view_once_message_v2_extension
                .as_option()
                .and_then(|w| w.message.as_option()),
            m.document_with_caption_message
                .as_option()
                .and_then(|w| w.message.as_option()),
        ]
        .into_iter()
        .flatten()
        .next();
        match inner {
            Some(inner) => m = inner,
            None => break,
        }
    }
    m
}

/// The content and media reference of a message, or `None` for what is not
/// a user message (key shares, sender-key distribution, history-sync
/// notices, settings) or a kind the gateway does not model.
pub(crate) fn decode(message: &wa::Message) -> Option<(IncomingContent, Option<MediaRef>)> {
    let m = unwrap(message);
    if let Some(body) = &m.conversation {
        return Some((IncomingContent::Text { body: body.clone() }, None));
    }
    if let Some(ext) = m.extended_text_message.as_option() {
        return Some((
            IncomingContent::Text {
                body: ext.text.clone().unwrap_or_default(),
            },
            None,
        ));
    }
    if let Some(image) = m.image_message.as_option() {
        let media = Media {
            kind: MediaKind::Image,
            mime_type: image.mimetype.clone(),
            caption: image.caption.clone(),
            file_name: None,
            seconds: None,
            direct_path: image.direct_path.as_deref(),
            media_key: image.media_key.as_deref(),
            file_sha256: image.file_sha256.as_deref(),
            file_enc_sha256: image.file_enc_sha256.as_deref(),
            file_length: image.file_length,
        };
        return Some(media.into_parts());
    }
    if let Some(video) = m.video_message.as_option().or(m.ptv_message.as_option()) {
        let media = Media {
            kind: MediaKind::Video,
            mime_type: video.mimetype.clone(),
            caption: video.caption.clone(),
            file_name: None,
            seconds: video.seconds,
            direct_path: video.direct_path.as_deref(),
            media_key: video.media_key.as_deref(),
            file_sha256: video.file_sha256.as_deref(),
            file_enc_sha256: video.file_enc_sha256.as_deref(),
            file_length: video.file_length,
        };
        return Some(media.into_parts());
    }
    if let Some(audio) = m.audio_message.as_option() {
        let media = Media {
            kind: if audio.ptt.unwrap_or(false) {
                MediaKind::Voice
            } else {
                MediaKind::Audio
            },
            mime_type: audio.mimetype.clone(),
            caption: None,
            file_name: None,
            seconds: audio.seconds,
            direct_path: audio.direct_path.as_deref(),
            media_key: audio.media_key.as_deref(),
            file_sha256: audio.file_sha256.as_deref(),
            file_enc_sha256: audio.file_enc_sha256.as_deref(),
            file_length: audio.file_length,
        };
        return Some(media.into_parts());
    }
    if let Some(doc) = m.document_message.as_option() {
        let media = Media {
            kind: MediaKind::Document,
            mime_type: doc.mimetype.clone(),
            caption: doc.caption.clone(),
            file_name: doc.file_name.clone(),
            seconds: None,
            direct_path: doc.direct_path.as_deref(),
            media_key: doc.media_key.as_deref(),
            file_sha256: doc.file_sha256.as_deref(),
            file_enc_sha256: doc.file_enc_sha256.as_deref(),
            file_length: doc.file_length,
        };
        return Some(media.into_parts());
    }
    if let Some(sticker) = m.sticker_message.as_option() {
        let media = Media {
            kind: MediaKind::Sticker,
            mime_type: sticker.mimetype.clone(),
            caption: None,
            file_name: None,
            seconds: None,
            direct_path: sticker.direct_path.as_deref(),
            media_key: sticker.media_key.as_deref(),
            file_sha256: sticker.file_sha256.as_deref(),
            file_enc_sha256: sticker.file_enc_sha256.as_deref(),
            file_length: sticker.file_length,
        };
        return Some(media.into_parts());
    }
    if let Some(location) = m.location_message.as_option() {
        return Some((
            IncomingContent::Location {
                latitude: location.degrees_latitude.unwrap_or_default(),
                longitude: location.degrees_longitude.unwrap_or_default(),
                name: location.name.clone(),
                address: location.address.clone(),
            },
            None,
        ));
    }
    if let Some(contact) = m.contact_message.as_option() {
        return Some((
            IncomingContent::Contacts {
                vcards: contact.vcard.iter().cloned().collect(),
            },
            None,
        ));
    }
    if let Some(array) = m.contacts_array_message.as_option() {
        return Some((
            IncomingContent::Contacts {
                vcards: array
                    .contacts
                    .iter()
                    .filter_map(|c| c.vcard.clone())
                    .collect(),
            },
            None,
        ));
    }
    if let Some(reaction) = m.reaction_message.as_option() {
        let target = target_of(reaction.key.as_option())?;
        return Some((
            IncomingContent::Reaction {
                target,
                emoji: reaction.text.clone().unwrap_or_default(),
            },
            None,
        ));
    }
    if let Some(poll) = [
        &m.poll_creation_message,
        &m.poll_creation_message_v2,
        &m.poll_creation_message_v3,
        &m.poll_creation_message_v5,
        &m.poll_creation_message_v6,
    ]
    .into_iter()
    .find_map(|p| p.as_option())
    {
        return Some((
            IncomingContent::Poll {
                question: poll.name.clone().unwrap_or_default(),
                options: poll
                    .options
                    .iter()
                    .map(|o| o.option_name.clone().unwrap_or_default())
                    .collect(),
                selectable_count: poll.selectable_options_count.unwrap_or(0),
            },
            None,
        ));
    }
    if let Some(update) = m.poll_update_message.as_option() {
        // Opened later, by whoever has the poll's secret (see
        // [`poll_vote_cipher`]).
        let target = target_of(update.poll_creation_message_key.as_option())?;
        return Some((
            IncomingContent::PollVote {
                target,
                selected_options: None,
            },
            None,
        ));
    }
    if let Some(protocol) = m.protocol_message.as_option() {
        let target = target_of(protocol.key.as_option())?;
        return match protocol.r#type {
            Some(ProtocolType::MessageEdit) => Some((
                IncomingContent::Edit {
                    target,
                    body: protocol.edited_message.as_option().and_then(edited_text),
                },
                None,
            )),
            Some(ProtocolType::Revoke) => Some((IncomingContent::Revoke { target }, None)),
            // Key shares, history-sync notices, ephemeral settings: the
            // client's business, not a message.
            _ => None,
        };
    }
    None
}

/// The WhatsApp id a message quotes, wherever its kind keeps the context.
pub(crate) fn reply_to(message: &wa::Message) -> Option<String> {
    let m = unwrap(message);
    [
        m.extended_text_message
            .as_option()
            .and_then(|x| x.context_info.as_option()),
        m.image_message
            .as_option()
            .and_then(|x| x.context_info.as_option()),
        m.video_message
            .as_option()
            .and_then(|x| x.context_info.as_option()),
        m.audio_message
            .as_option()
            .and_then(|x| x.context_info.as_option()),
        m.document_message
            .as_option()
            .and_then(|x| x.context_info.as_option()),
        m.sticker_message
            .as_option()
            .and_then(|x| x.context_info.as_option()),
        m.location_message
            .as_option()
            .and_then(|x| x.context_info.as_option()),
        m.contact_message
            .as_option()
            .and_then(|x| x.context_info.as_option()),
    ]
    .into_iter()
    .flatten()
    .find_map(|ctx| ctx.stanza_id.clone())
}

/// The encrypted vote of a poll update message, if `message` is one: it
/// opens with a key derived from the poll's secret, which only the poll's
/// participants have.
pub(crate) fn poll_vote_cipher(message: &wa::Message) -> Option<poll::PollVoteCiphertext<'_>> {
    let vote = unwrap(message)
        .poll_update_message
        .as_option()?
        .vote
        .as_option()?;
    Some(poll::PollVoteCiphertext {
        enc_payload: vote.enc_payload.as_deref()?,
        enc_iv: vote.enc_iv.as_deref()?,
    })
}

/// The names of the options a vote chose. A vote names each option by
/// the SHA-256 of its text; `None` if one matches none of `options` (a
/// vote on another poll, or a poll the gateway recorded differently).
pub(crate) fn chosen_options(options: &[String], chosen: &[Vec<u8>]) -> Option<Vec<String>> {
    chosen
        .iter()
        .map(|hash| {
            options
                .iter()
                .find(|name| poll::compute_option_hash(name).as_slice() == hash.as_slice())
                .cloned()
        })
        .collect()
}

fn target_of(key: Option<&wa::MessageKey>) -> Option<Target> {
    let key = key?;
    let from_me = key.from_me.unwrap_or(false);
    Some(Target {
        wa_id: key.id.clone()?,
        // Until `resolve_author` knows who sent the pointer.
        from_me,
        message_id: None,
        key: TargetKey {
            from_me,
            participant: key.participant.clone(),
        },
    })
}

/// The new text of an edit: a text edit, or a media caption edit.
fn edited_text(m: &wa::Message) -> Option<String> {
    let m = unwrap(m);
    m.conversation
        .clone()
        .or_else(|| m.extended_text_message.as_option()?.text.clone())
        .or_else(|| m.image_message.as_option()?.caption.clone())
        .or_else(|| m.video_message.as_option()?.caption.clone())
        .or_else(|| m.document_message.as_option()?.caption.clone())
}

/// The fields every media message has, borrowed from whichever kind it is.
struct Media<'a> {
    kind: MediaKind,
    mime_type: Option<String>,
    caption: Option<String>,
    file_name: Option<String>,
    seconds: Option<u32>,
    direct_path: Option<&'a str>,
    media_key: Option<&'a [u8]>,
    file_sha256: Option<&'a [u8]>,
    file_enc_sha256: Option<&'a [u8]>,
    file_length: Option<u64>,
}

impl Media<'_> {
    fn into_parts(self) -> (IncomingContent, Option<MediaRef>) {
        // Without every one of these the file cannot be fetched and
        // checked; the message is still recorded, without a download.
        let reference = match (
            self.direct_path,
            self.media_key,
            self.file_sha256,
            self.file_enc_sha256,
        ) {
            (Some(path), Some(key), Some(sha), Some(enc)) => Some(MediaRef {
                kind: self.kind,
                direct_path: path.to_owned(),
                media_key: hex::encode(key),
                file_sha256: hex::encode(sha),
                file_enc_sha256: hex::encode(enc),
                file_length: self.file_length.unwrap_or(0),
                mime_type: self.mime_type.clone(),
            }),
            _ => None,
        };
        let content = IncomingContent::Media {
            kind: self.kind,
            mime_type: self.mime_type,
            caption: self.caption,
            file_name: self.file_name,
            size: self.file_length,
            seconds: self.seconds,
            sha256: self.file_sha256.map(hex::encode),
        };
        (content, reference)
    }
}

#[cfg(test)]
#[path = "incoming_tests.rs"]
mod tests;

//! From [`OutgoingMessage`] to the `waproto` message WhatsApp carries.
//! Pure functions: the worker uploads media first (see `media::upload`) and
//! passes the result in; nothing here talks to the network.
//!
//! How the worker sends what is built here:
//! - everything: `client.send_message_with_options(to.jid().clone(), built.message,
//!   SendOptions::default().with_message_id(id))` (a fixed id makes a retry
//!   idempotent). For a poll, keep [`Built::message_secret`]: it is what
//!   decrypts the votes later (`client.polls().decrypt_vote(.., secret, ..)`);
//!   the send path also stores it in the device store itself, since the
//!   message carries it.
//! - reactions: prefer `client.send_reaction(chat, reaction_key(target)?, emoji)`,
//!   which also handles community announcement groups (encrypted reactions);
//!   [`build`] gives the plain form for everything else.
//! - edits and deletes ("revokes") of this account's own messages are built
//!   here too, in WhatsApp Web's wire shape (a `protocolMessage` naming the
//!   target by key), and sent like any other message. The library's
//!   `edit_message`/`revoke_message` would pick a fresh stanza id on every
//!   call; sending the built message with the outbox's id keeps a resend
//!   after a crash one edit, and `send_message_with_options` still derives
//!   the stanza's `edit` attribute from the content.

use whatsapp_rust::Jid;
use whatsapp_rust::buffa::MessageField;
use whatsapp_rust::wacore::proto_helpers::{
    MessageBuilderExt, MessageExt, build_quote_context_with_info, build_reaction_message,
};
use whatsapp_rust::waproto::whatsapp as wa;

use super::content::{Content, MediaKind, MessageRef, OutgoingMessage};
use super::recipient::RecipientKind;

/// What an upload returned, as the message needs it. Built from
/// `whatsapp_rust::upload::UploadResponse` by `media::upload`; its own type
/// so the builders can be tested without a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedMedia {
    pub url: String,
    pub direct_path: String,
    pub media_key: [u8; 32],
    pub file_sha256: [u8; 32],
    pub file_enc_sha256: [u8; 32],
    pub file_length: u64,
    pub media_key_timestamp: i64,
    /// Audio and video only: lets the recipient play before it has all.
    pub streaming_sidecar: Option<Vec<u8>>,
    pub mimetype: String,
}

/// What the message needs besides its content.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct WireContext<'a> {
    /// The upload of a media message's bytes.
    pub media: Option<&'a UploadedMedia>,
    /// The message a reply quotes, when the store has it: WhatsApp shows
    /// the quote from this copy.
    pub quoted: Option<&'a wa::Message>,
    /// This session's own JID: the author of a quoted `from_me` message.
    pub own_jid: Option<&'a Jid>,
}

/// A message ready for `send_message`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Built {
    pub message: wa::Message,
    /// A poll's secret, needed to decrypt its votes; `None` otherwise.
    pub message_secret: Option<[u8; 32]>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WireError {
    #[error("a media message needs its upload before it can be built")]
    MissingUpload,
    #[error("the author of the referenced message is unknown")]
    UnknownSender,
    #[error("the referenced message's sender is not a JID")]
    InvalidSender,
}

/// Builds the WhatsApp message for `outgoing`.
pub(crate) fn build(
    outgoing: &OutgoingMessage,
    context: &WireContext<'_>,
) -> Result<Built, WireError> {
    let mut message_secret = None;
    let mut message = match &outgoing.content {
        Content::Text { body, link_preview } => text(body, *link_preview),
        Content::Media {
            kind,
            caption,
            file_name,
            ..
        } => {
            let upload = context.media.ok_or(WireError::MissingUpload)?;
            media(*kind, upload, caption.as_deref(), file_name.as_deref())
        }
        Content::Location {
            latitude,
            longitude,
            name,
            address,
        } => wa::Message {
            location_message: MessageField::some(wa::message::LocationMessage {
                degrees_latitude: Some(*latitude),
                degrees_longitude: Some(*longitude),
                name: name.clone(),
                address: address.clone(),
                ..Default::default()
            }),
            ..Default::default()
        },
        Content::Contacts { vcards } => contacts(vcards),
        Content::Reaction { target, emoji } => build_reaction_message(
            reaction_key(target)?,
            emoji.as_str(),
            whatsapp_rust::wacore::time::now_millis(),
        ),
        Content::Poll {
            question,
            options,
            selectable_count,
        } => {
            let secret = whatsapp_rust::wacore::reporting_token::generate_message_secret();
            message_secret = Some(secret);
            poll(question, options, *selectable_count, secret)
        }
        Content::Edit { target, body } => protocol(
            own_message_key(target, context.own_jid)?,
            wa::message::protocol_message::Type::MessageEdit,
            Some(edit_text(body)),
        ),
        Content::Revoke { target } => protocol(
            // A sender's revoke names no participant, in groups too: from_me
            // says whose message it is.
            wa::MessageKey {
                remote_jid: Some(target.chat.to_string()),
                from_me: Some(true),
                id: Some(target.wa_id.clone()),
                participant: None,
            },
            wa::message::protocol_message::Type::Revoke,
            None,
        ),
    };
    if let Some(reply_to) = &outgoing.reply_to {
        let quote = quote_context(reply_to, outgoing, context)?;
        attach_context(&mut message, quote);
    }
    Ok(Built {
        message,
        message_secret,
    })
}

/// The new content of an edited text message.
pub(crate) fn edit_text(body: &str) -> wa::Message {
    wa::Message::text(body)
}

/// The key of a message this account sent, as an edit names it: in a group
/// the author is named too (this account's phone-number JID; WhatsApp Web
/// uses the LID in LID-addressed groups).
fn own_message_key(
    target: &MessageRef,
    own_jid: Option<&Jid>,
) -> Result<wa::MessageKey, WireError> {
    let participant = if target.chat.is_group() {
        Some(
            own_jid
                .ok_or(WireError::UnknownSender)?
                .to_non_ad()
                .to_string(),
        )
    } else {
        None
    };
    Ok(wa::MessageKey {
        remote_jid: Some(target.chat.to_string()),
        from_me: Some(true),
        id: Some(target.wa_id.clone()),
        participant,
    })
}

/// A protocol message acting on the message `key` names.
fn protocol(
    key: wa::MessageKey,
    kind: wa::message::protocol_message::Type,
    edited: Option<wa::Message>,
) -> wa::Message {
    // An edit carries when it was made (the phone orders edits by it); a
    // revoke does not.
    let timestamp_ms = edited
        .is_some()
        .then(whatsapp_rust::wacore::time::now_millis);
    wa::Message {
        protocol_message: MessageField::some(wa::message::ProtocolMessage {
            key: MessageField::some(key),
            r#type: Some(kind),
            edited_message: edited.map_or_else(MessageField::none, MessageField::some),
            timestamp_ms,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The key of the message a reaction points at. As WhatsApp Web does, the
/// author is named only for someone else's message in a group.
pub(crate) fn reaction_key(target: &MessageRef) -> Result<wa::MessageKey, WireError> {
    let participant = if target.chat.is_group() && !target.from_me {
        let sender = target.sender.as_deref().ok_or(WireError::UnknownSender)?;
        Some(parse_sender(sender)?.to_non_ad().to_string())
    } else {
        None
    };
    Ok(wa::MessageKey {
        remote_jid: Some(target.chat.to_string()),
        from_me: Some(target.from_me),
        id: Some(target.wa_id.clone()),
        participant,
    })
}

fn parse_sender(sender: &str) -> Result<Jid, WireError> {
    sender.parse().map_err(|_| WireError::InvalidSender)
}

/// Who wrote the quoted message: its recorded sender, else the chat for a
/// one-to-one chat, else (our own message) this session.
fn quoted_author(reply_to: &MessageRef, own_jid: Option<&Jid>) -> Result<Jid, WireError> {
    if let Some(sender) = &reply_to.sender {
        return parse_sender(sender).map(|j| j.to_non_ad());
    }
    if reply_to.from_me {
        return own_jid.map(Jid::to_non_ad).ok_or(WireError::UnknownSender);
    }
    match reply_to.chat.kind() {
        RecipientKind::Person | RecipientKind::Lid => Ok(reply_to.chat.jid().clone()),
        RecipientKind::Group => Err(WireError::UnknownSender),
    }
}

fn quote_context(
    reply_to: &MessageRef,
    outgoing: &OutgoingMessage,
    context: &WireContext<'_>,
) -> Result<wa::ContextInfo, WireError> {
    let author = quoted_author(reply_to, context.own_jid)?;
    let chat = reply_to.chat.jid();
    let target = outgoing.to.jid();
    Ok(match context.quoted {
        Some(quoted) => {
            build_quote_context_with_info(reply_to.wa_id.as_str(), &author, chat, target, quoted)
        }
        // Without the quoted copy WhatsApp still threads the reply by id.
        None => wa::ContextInfo {
            stanza_id: Some(reply_to.wa_id.clone()),
            participant: Some(author.to_string()),
            remote_jid: (!chat.is_same_chat_as(target)).then(|| chat.to_string()),
            ..Default::default()
        },
    })
}

/// Puts a quote on the message, inside the document of a captioned
/// document (the library's helper does not look inside that wrapper).
fn attach_context(message: &mut wa::Message, context: wa::ContextInfo) {
    if let Some(wrapper) = message.document_with_caption_message.as_option_mut()
        && let Some(inner) = wrapper.message.as_option_mut()
        && let Some(document) = inner.document_message.as_option_mut()
    {
        document.context_info = MessageField::some(context);
        return;
    }
    message.set_context_info(context);
}

fn text(body: &str, link_preview: bool) -> wa::Message {
    match first_link(body).filter(|_| link_preview) {
        Some(link) => wa::Message {
            extended_text_message: MessageField::some(wa::message::ExtendedTextMessage {
                text: Some(body.to_string()),
                matched_text: Some(link.to_string()),
                ..Default::default()
            }),
            ..Default::default()
        },
        None => wa::Message::text(body),
    }
}

/// The first http(s) link in a text, as WhatsApp's preview marks it.
pub(crate) fn first_link(body: &str) -> Option<&str> {
    body.split_whitespace()
        .filter_map(|word| {
            let start = word.find("http://").or_else(|| word.find("https://"))?;
            // Sentence punctuation after a link is not part of it.
            let link =
                word[start..].trim_end_matches(['.', ',', ';', ':', '!', '?', ')', '"', '\'']);
            url::Url::parse(link)
                .ok()
                .filter(|u| u.host_str().is_some())
                .map(|_| link)
        })
        .next()
}

fn media(
    kind: MediaKind,
    upload: &UploadedMedia,
    caption: Option<&str>,
    file_name: Option<&str>,
) -> wa::Message {
    let url = Some(upload.url.clone());
    let direct_path = Some(upload.direct_path.clone());
    let media_key = Some(upload.media_key.to_vec());
    let file_sha256 = Some(upload.file_sha256.to_vec());
    let file_enc_sha256 = Some(upload.file_enc_sha256.to_vec());
    let file_length = Some(upload.file_length);
    let media_key_timestamp = Some(upload.media_key_timestamp);
    let mimetype = Some(upload.mimetype.clone());
    let caption = caption.map(str::to_string);
    match kind {
        MediaKind::Image => wa::Message {
            image_message: MessageField::some(wa::message::ImageMessage {
                url,
                direct_path,
                media_key,
                file_sha256,
                file_enc_sha256,
                file_length,
                media_key_timestamp,
                mimetype,
                caption,
                ..Default::default()
            }),
            ..Default::default()
        },
        MediaKind::Video => wa::Message {
            video_message: MessageField::some(wa::message::VideoMessage {
                url,
                direct_path,
                media_key,
                file_sha256,
                file_enc_sha256,
                file_length,
                media_key_timestamp,
                mimetype,
                caption,
                streaming_sidecar: upload.streaming_sidecar.clone(),
                ..Default::default()
            }),
            ..Default::default()
        },
        MediaKind::Audio | MediaKind::Voice => wa::Message {
            audio_message: MessageField::some(wa::message::AudioMessage {
                url,
                direct_path,
                media_key,
                file_sha256,
                file_enc_sha256,
                file_length,
                media_key_timestamp,
                mimetype,
                ptt: Some(kind == MediaKind::Voice),
                streaming_sidecar: upload.streaming_sidecar.clone(),
                ..Default::default()
            }),
            ..Default::default()
        },
        MediaKind::Sticker => wa::Message {
            sticker_message: MessageField::some(wa::message::StickerMessage {
                url,
                direct_path,
                media_key,
                file_sha256,
                file_enc_sha256,
                file_length,
                media_key_timestamp,
                mimetype,
                ..Default::default()
            }),
            ..Default::default()
        },
        MediaKind::Document => {
            let name = file_name.unwrap_or("file").to_string();
            let document = wa::message::DocumentMessage {
                url,
                direct_path,
                media_key,
                file_sha256,
                file_enc_sha256,
                file_length,
                media_key_timestamp,
                mimetype,
                title: Some(name.clone()),
                file_name: Some(name),
                caption: caption.clone(),
                ..Default::default()
            };
            // WhatsApp shows a document's caption only from this wrapper.
            if caption.is_some() {
                wa::Message {
                    document_with_caption_message: MessageField::some(
                        wa::message::FutureProofMessage {
                            message: MessageField::some(wa::Message {
                                document_message: MessageField::some(document),
                                ..Default::default()
                            }),
                        },
                    ),
                    ..Default::default()
                }
            } else {
                wa::Message {
                    document_message: MessageField::some(document),
                    ..Default::default()
                }
            }
        }
    }
}

fn contacts(vcards: &[String]) -> wa::Message {
    let contact = |vcard: &String| wa::message::ContactMessage {
        display_name: Some(vcard_display_name(vcard).unwrap_or_else(|| "Contact".to_string())),
        vcard: Some(vcard.clone()),
        ..Default::default()
    };
    match vcards {
        [one] => wa::Message {
            contact_message: MessageField::some(contact(one)),
            ..Default::default()
        },
        many => wa::Message {
            contacts_array_message: MessageField::some(wa::message::ContactsArrayMessage {
                display_name: Some(format!("{} contacts", many.len())),
                contacts: many.iter().map(contact).collect(),
                ..Default::default()
            }),
            ..Default::default()
        },
    }
}

/// The vCard's formatted name (`FN`), unfolded and unescaped (RFC 6350).
pub(crate) fn vcard_display_name(vcard: &str) -> Option<String> {
    // A line starting with a space or tab continues the previous one.
    let unfolded = vcard
        .replace("\r\n ", "")
        .replace("\r\n\t", "")
        .replace("\n ", "")
        .replace("\n\t", "");
    unfolded.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        let property = name.split(';').next()?.trim();
        // A group prefix (`item1.FN`) is allowed before the property name.
        let property = property.rsplit('.').next()?;
        if !property.eq_ignore_ascii_case("FN") {
            return None;
        }
        let value = value
            .trim()
            .replace("\\,", ",")
            .replace("\\;", ";")
            .replace("\\n", " ")
            .replace("\\\\", "\\");
        (!value.is_empty()).then_some(value)
    })
}

fn poll(
    question: &str,
    options: &[String],
    selectable_count: u32,
    secret: [u8; 32],
) -> wa::Message {
    let creation = wa::message::PollCreationMessage {
        name: Some(question.to_string()),
        options: options
            .iter()
            .map(|name| wa::message::poll_creation_message::Option {
                option_name: Some(name.clone()),
                option_hash: None,
            })
            .collect(),
        selectable_options_count: Some(selectable_count),
        ..Default::default()
    };
    // As whatsapp-rust's `Polls::create` (from WhatsApp Web): v3 for a
    // single choice, v1 for several. The secret goes on the message so the
    // voters can derive their vote keys from it.
    let mut message = if selectable_count == 1 {
        wa::Message {
            poll_creation_message_v3: MessageField::some(creation),
            ..Default::default()
        }
    } else {
        wa::Message {
            poll_creation_message: MessageField::some(creation),
            ..Default::default()
        }
    };
    message.message_context_info = MessageField::some(wa::MessageContextInfo {
        message_secret: Some(secret.to_vec()),
        ..Default::default()
    });
    message
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;

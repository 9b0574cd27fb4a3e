//! What a decrypted `Message` says, as the phone's admin view shows it: a
//! kind, the text, a JSON description of the content, the media to fetch,
//! and what the message does to an earlier one (edit, revoke, reaction).

use base64::Engine as _;
use serde_json::{Map, Value, json};
use wacore::download::MediaType;
use waproto::whatsapp as wa;
use waproto::whatsapp::message::protocol_message::Type as ProtocolType;

/// A decoded message.
pub(crate) struct Decoded {
    /// `text`, `image`, `video`, `audio`, `voice`, `document`, `sticker`,
    /// `location`, `contact`, `contacts`, `reaction`, `poll`, `edit`,
    /// `revoke` or `other`.
    pub kind: &'static str,
    /// The text, a caption, or a document's name.
    pub text: Option<String>,
    pub content: Value,
    pub media: Option<MediaRef>,
    pub effect: Option<Effect>,
}

/// What a message does to one the phone already has.
pub(crate) enum Effect {
    Edit {
        target: String,
        text: Option<String>,
    },
    Revoke {
        target: String,
    },
    /// An empty emoji takes the sender's reaction away.
    React {
        target: String,
        emoji: String,
    },
}

/// Where an attachment is and how to open it.
pub(crate) struct MediaRef {
    pub media_type: MediaType,
    pub direct_path: Option<String>,
    pub url: Option<String>,
    pub media_key: Option<Vec<u8>>,
    pub file_sha256: Option<Vec<u8>>,
    pub file_enc_sha256: Option<Vec<u8>>,
    pub file_length: Option<u64>,
}

/// The message inside the wrappers that only change how it is shown
/// (disappearing, view once, a document with a caption).
fn unwrap(m: &wa::Message) -> &wa::Message {
    let mut m = m;
    // Bounded: a peer could nest wrappers without end.
    for _ in 0..4 {
        let inner = [
            &m.ephemeral_message,
            &m.view_once_message,
            &m.view_once_message_v2,
            &m.view_once_message_v2_extension,
            &m.document_with_caption_message,
        ]
        .into_iter()
        .find_map(|w| w.as_option().and_then(|f| f.message.as_option()));
        match inner {
            Some(inner) => m = inner,
            None => break,
        }
    }
    m
}

pub(crate) fn decode(message: &wa::Message) -> Decoded {
    let m = unwrap(message);
    let mut decoded = decode_kind(m);
    if let Some(ctx) = context_info(m) {
        if let Some(id) = &ctx.stanza_id {
            decoded.content["reply_to"] = json!(id);
        }
        if let Some(p) = &ctx.participant {
            decoded.content["quoted_participant"] = json!(p);
        }
    }
    decoded
}

fn plain(kind: &'static str, text: Option<String>, content: Value) -> Decoded {
    Decoded {
        kind,
        text,
        content,
        media: None,
        effect: None,
    }
}

/// Drops the nulls so the JSON shows only what the message carried.
fn object(pairs: Vec<(&str, Value)>) -> Value {
    let map: Map<String, Value> = pairs
        .into_iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    Value::Object(map)
}

fn decode_kind(m: &wa::Message) -> Decoded {
    if let Some(text) = &m.conversation {
        return plain("text", Some(text.clone()), json!({ "text": text }));
    }
    if let Some(ext) = m.extended_text_message.as_option() {
        let content = object(vec![
            ("text", json!(ext.text)),
            ("matched_text", json!(ext.matched_text)),
            ("title", json!(ext.title)),
            ("description", json!(ext.description)),
            (
                "thumbnail_length",
                json!(ext.jpeg_thumbnail.as_ref().map(Vec::len)),
            ),
        ]);
        return plain("text", ext.text.clone(), content);
    }
    if let Some(img) = m.image_message.as_option() {
        let media = MediaRef {
            media_type: MediaType::Image,
            direct_path: img.direct_path.clone(),
            url: img.url.clone(),
            media_key: img.media_key.clone(),
            file_sha256: img.file_sha256.clone(),
            file_enc_sha256: img.file_enc_sha256.clone(),
            file_length: img.file_length,
        };
        let content = object(vec![
            ("mimetype", json!(img.mimetype)),
            ("caption", json!(img.caption)),
            ("width", json!(img.width)),
            ("height", json!(img.height)),
        ]);
        return with_media("image", img.caption.clone(), content, media);
    }
    if let Some(video) = m.video_message.as_option().or(m.ptv_message.as_option()) {
        let media = MediaRef {
            media_type: MediaType::Video,
            direct_path: video.direct_path.clone(),
            url: video.url.clone(),
            media_key: video.media_key.clone(),
            file_sha256: video.file_sha256.clone(),
            file_enc_sha256: video.file_enc_sha256.clone(),
            file_length: video.file_length,
        };
        let content = object(vec![
            ("mimetype", json!(video.mimetype)),
            ("caption", json!(video.caption)),
            ("seconds", json!(video.seconds)),
            ("gif_playback", json!(video.gif_playback)),
            // A round video note.
            ("ptv", json!(m.ptv_message.is_set().then_some(true))),
        ]);
        return with_media("video", video.caption.clone(), content, media);
    }
    if let Some(audio) = m.audio_message.as_option() {
        let media = MediaRef {
            media_type: MediaType::Audio,
            direct_path: audio.direct_path.clone(),
            url: audio.url.clone(),
            media_key: audio.media_key.clone(),
            file_sha256: audio.file_sha256.clone(),
            file_enc_sha256: audio.file_enc_sha256.clone(),
            file_length: audio.file_length,
        };
        let ptt = audio.ptt.unwrap_or(false);
        let content = object(vec![
            ("mimetype", json!(audio.mimetype)),
            ("seconds", json!(audio.seconds)),
            ("ptt", json!(ptt)),
        ]);
        let kind = if ptt { "voice" } else { "audio" };
        return with_media(kind, None, content, media);
    }
    if let Some(doc) = m.document_message.as_option() {
        let media = MediaRef {
            media_type: MediaType::Document,
            direct_path: doc.direct_path.clone(),
            url: doc.url.clone(),
            media_key: doc.media_key.clone(),
            file_sha256: doc.file_sha256.clone(),
            file_enc_sha256: doc.file_enc_sha256.clone(),
            file_length: doc.file_length,
        };
        let content = object(vec![
            ("mimetype", json!(doc.mimetype)),
            ("caption", json!(doc.caption)),
            ("file_name", json!(doc.file_name)),
            ("title", json!(doc.title)),
            ("page_count", json!(doc.page_count)),
        ]);
        let text = doc.caption.clone().or_else(|| doc.file_name.clone());
        return with_media("document", text, content, media);
    }
    if let Some(sticker) = m.sticker_message.as_option() {
        let media = MediaRef {
            // Stickers are encrypted with the image keys.
            media_type: MediaType::Sticker,
            direct_path: sticker.direct_path.clone(),
            url: sticker.url.clone(),
            media_key: sticker.media_key.clone(),
            file_sha256: sticker.file_sha256.clone(),
            file_enc_sha256: sticker.file_enc_sha256.clone(),
            file_length: sticker.file_length,
        };
        let content = object(vec![
            ("mimetype", json!(sticker.mimetype)),
            ("animated", json!(sticker.is_animated)),
            ("width", json!(sticker.width)),
            ("height", json!(sticker.height)),
        ]);
        return with_media("sticker", None, content, media);
    }
    if let Some(loc) = m.location_message.as_option() {
        let content = object(vec![
            ("latitude", json!(loc.degrees_latitude)),
            ("longitude", json!(loc.degrees_longitude)),
            ("name", json!(loc.name)),
            ("address", json!(loc.address)),
            ("url", json!(loc.url)),
            ("live", json!(loc.is_live)),
        ]);
        return plain("location", loc.name.clone(), content);
    }
    if let Some(contact) = m.contact_message.as_option() {
        return plain(
            "contact",
            contact.display_name.clone(),
            contact_json(contact),
        );
    }
    if let Some(array) = m.contacts_array_message.as_option() {
        let content = object(vec![
            ("display_name", json!(array.display_name)),
            (
                "contacts",
                Value::Array(array.contacts.iter().map(contact_json).collect()),
            ),
        ]);
        return plain("contacts", array.display_name.clone(), content);
    }
    if let Some(reaction) = m.reaction_message.as_option() {
        let target = reaction.key.as_option().and_then(|k| k.id.clone());
        let emoji = reaction.text.clone().unwrap_or_default();
        let content = object(vec![
            ("target_id", json!(target)),
            ("emoji", json!(emoji)),
            ("removed", json!(emoji.is_empty())),
            ("sender_timestamp_ms", json!(reaction.sender_timestamp_ms)),
        ]);
        let mut decoded = plain("reaction", Some(emoji.clone()), content);
        decoded.effect = target.map(|target| Effect::React { target, emoji });
        return decoded;
    }
    if let Some((version, poll)) = poll(m) {
        // Voters derive their vote key from this secret: a poll without it
        // cannot be voted on.
        let secret = m
            .message_context_info
            .as_option()
            .and_then(|c| c.message_secret.as_ref())
            .map(|s| base64::engine::general_purpose::STANDARD.encode(s));
        let content = object(vec![
            ("question", json!(poll.name)),
            (
                "options",
                json!(
                    poll.options
                        .iter()
                        .map(|o| o.option_name.clone().unwrap_or_default())
                        .collect::<Vec<_>>()
                ),
            ),
            ("selectable_count", json!(poll.selectable_options_count)),
            ("version", json!(version)),
            ("message_secret", json!(secret)),
        ]);
        return plain("poll", poll.name.clone(), content);
    }
    if let Some(protocol) = m.protocol_message.as_option() {
        let target = protocol.key.as_option().and_then(|k| k.id.clone());
        match (protocol.r#type, target) {
            (Some(ProtocolType::MessageEdit), Some(target)) => {
                let text = protocol.edited_message.as_option().and_then(edited_text);
                let content = object(vec![
                    ("target_id", json!(target)),
                    ("text", json!(text)),
                    ("timestamp_ms", json!(protocol.timestamp_ms)),
                ]);
                let mut decoded = plain("edit", text.clone(), content);
                decoded.effect = Some(Effect::Edit { target, text });
                return decoded;
            }
            (Some(ProtocolType::Revoke), Some(target)) => {
                let content = json!({ "target_id": target });
                let mut decoded = plain("revoke", None, content);
                decoded.effect = Some(Effect::Revoke { target });
                return decoded;
            }
            _ => {}
        }
    }
    if let Some(sem) = m.secret_encrypted_message.as_option()
        && sem.secret_enc_type
            == Some(wa::message::secret_encrypted_message::SecretEncType::MessageEdit)
    {
        // Reaches here only when the phone could not open it.
        let target = sem
            .target_message_key
            .as_option()
            .and_then(|k| k.id.clone());
        let content = object(vec![
            ("target_id", json!(target)),
            ("encrypted", json!(true)),
            ("undecryptable", json!(true)),
        ]);
        return plain("edit", None, content);
    }
    plain("other", None, json!({}))
}

fn with_media(
    kind: &'static str,
    text: Option<String>,
    content: Value,
    media: MediaRef,
) -> Decoded {
    Decoded {
        kind,
        text,
        content,
        media: Some(media),
        effect: None,
    }
}

fn contact_json(c: &wa::message::ContactMessage) -> Value {
    object(vec![
        ("display_name", json!(c.display_name)),
        ("vcard", json!(c.vcard)),
    ])
}

/// A poll creation in any of the versions clients send: whatsapp-rust sends
/// V3 for single-choice polls and V1 for multiple choice.
fn poll(m: &wa::Message) -> Option<(u8, &wa::message::PollCreationMessage)> {
    [
        (1, &m.poll_creation_message),
        (2, &m.poll_creation_message_v2),
        (3, &m.poll_creation_message_v3),
        (5, &m.poll_creation_message_v5),
        (6, &m.poll_creation_message_v6),
    ]
    .into_iter()
    .find_map(|(v, p)| p.as_option().map(|p| (v, p)))
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

/// The quote and mention context, wherever the message kind keeps it.
fn context_info(m: &wa::Message) -> Option<&wa::ContextInfo> {
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
    .next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_names_the_quoted_message() {
        let m = wa::Message {
            extended_text_message: buffa::MessageField::some(wa::message::ExtendedTextMessage {
                text: Some("yes".into()),
                context_info: buffa::MessageField::some(wa::ContextInfo {
                    stanza_id: Some("3EB0AA".into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let d = decode(&m);
        assert_eq!(d.kind, "text");
        assert_eq!(d.content["text"], "yes");
        assert_eq!(d.content["reply_to"], "3EB0AA");
    }

    #[test]
    fn a_voice_note_is_audio_with_ptt() {
        let m = wa::Message {
            audio_message: buffa::MessageField::some(wa::message::AudioMessage {
                ptt: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        };
        let d = decode(&m);
        assert_eq!(d.kind, "voice");
        assert!(d.media.is_some());
    }

    #[test]
    fn an_empty_reaction_removes() {
        let m = wacore::proto_helpers::build_reaction_message(
            wa::MessageKey {
                id: Some("X".into()),
                ..Default::default()
            },
            "",
            0,
        );
        let d = decode(&m);
        assert_eq!(d.kind, "reaction");
        assert_eq!(d.content["removed"], true);
        assert!(matches!(d.effect, Some(Effect::React { ref emoji, .. }) if emoji.is_empty()));
    }
}

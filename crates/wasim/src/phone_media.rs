//! A phone sending an attachment as WhatsApp clients do: the file is
//! encrypted with a fresh media key, the encrypted bytes go to the blob
//! store (as an upload to `media_conn`'s host would put them), and the
//! message carries the direct path, the key and both hashes.

use base64::Engine as _;
use buffa::MessageField;
use wacore::download::MediaType;
use waproto::whatsapp as wa;

use crate::error::SimError;
use crate::world::World;

/// The kinds of attachment a phone can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentKind {
    Image,
    Video,
    Audio,
    /// A voice note: audio with `ptt`.
    Voice,
    Document,
    Sticker,
}

/// An attachment for [`crate::SimHandle::phone_send_media`].
#[derive(Debug, Clone)]
pub struct Attachment {
    pub kind: AttachmentKind,
    pub bytes: Vec<u8>,
    pub mimetype: String,
    /// Image, video and document only.
    pub caption: Option<String>,
    /// Documents only.
    pub file_name: Option<String>,
}

/// The sent attachment's place in the blob store (for
/// [`crate::SimHandle::expire_media`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMedia {
    pub id: String,
    pub direct_path: String,
}

fn media_type(kind: AttachmentKind) -> MediaType {
    match kind {
        AttachmentKind::Image => MediaType::Image,
        AttachmentKind::Video => MediaType::Video,
        AttachmentKind::Audio | AttachmentKind::Voice => MediaType::Audio,
        AttachmentKind::Document => MediaType::Document,
        AttachmentKind::Sticker => MediaType::Sticker,
    }
}

/// Encrypts and stores the attachment; returns the message to send and
/// the blob's direct path. Call with the world locked.
pub(crate) fn upload(
    w: &mut World,
    attachment: &Attachment,
) -> Result<(wa::Message, String), SimError> {
    let encrypted = wacore::upload::encrypt_media(&attachment.bytes, media_type(attachment.kind))
        .map_err(|e| SimError::Internal(format!("encrypting the attachment: {e}")))?;
    // Named as the media endpoint names uploads: by the encrypted hash.
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(encrypted.file_enc_sha256);
    let direct_path = format!("/v/t62.7118-24/{token}.enc");
    let url = format!("https://{}{direct_path}", w.media_host);
    w.blobs
        .insert(direct_path.clone(), encrypted.data_to_upload.into());
    let length = attachment.bytes.len() as u64;
    let key = Some(encrypted.media_key.to_vec());
    let sha = Some(encrypted.file_sha256.to_vec());
    let enc_sha = Some(encrypted.file_enc_sha256.to_vec());
    let path = Some(direct_path.clone());
    let mimetype = Some(attachment.mimetype.clone());
    let mut message = wa::Message::default();
    match attachment.kind {
        AttachmentKind::Image => {
            message.image_message = MessageField::some(wa::message::ImageMessage {
                url: Some(url),
                direct_path: path,
                media_key: key,
                file_sha256: sha,
                file_enc_sha256: enc_sha,
                file_length: Some(length),
                mimetype,
                caption: attachment.caption.clone(),
                ..Default::default()
            });
        }
        AttachmentKind::Video => {
            message.video_message = MessageField::some(wa::message::VideoMessage {
                url: Some(url),
                direct_path: path,
                media_key: key,
                file_sha256: sha,
                file_enc_sha256: enc_sha,
                file_length: Some(length),
                mimetype,
                caption: attachment.caption.clone(),
                seconds: Some(1),
                ..Default::default()
            });
        }
        AttachmentKind::Audio | AttachmentKind::Voice => {
            message.audio_message = MessageField::some(wa::message::AudioMessage {
                url: Some(url),
                direct_path: path,
                media_key: key,
                file_sha256: sha,
                file_enc_sha256: enc_sha,
                file_length: Some(length),
                mimetype,
                seconds: Some(1),
                ptt: Some(attachment.kind == AttachmentKind::Voice),
                ..Default::default()
            });
        }
        AttachmentKind::Document => {
            message.document_message = MessageField::some(wa::message::DocumentMessage {
                url: Some(url),
                direct_path: path,
                media_key: key,
                file_sha256: sha,
                file_enc_sha256: enc_sha,
                file_length: Some(length),
                mimetype,
                caption: attachment.caption.clone(),
                file_name: attachment.file_name.clone(),
                ..Default::default()
            });
        }
        AttachmentKind::Sticker => {
            message.sticker_message = MessageField::some(wa::message::StickerMessage {
                url: Some(url),
                direct_path: path,
                media_key: key,
                file_sha256: sha,
                file_enc_sha256: enc_sha,
                file_length: Some(length),
                mimetype,
                ..Default::default()
            });
        }
    }
    Ok((message, direct_path))
}

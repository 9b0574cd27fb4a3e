//! Why a send request was refused, each reason with its own stable code.

use super::content::{ContentKind, MediaKind};

/// `"image.url"` etc. for a media kind's field, as a `&'static str` so it
/// fits the error envelope's `details.field`.
macro_rules! media_field {
    ($kind:expr, $field:literal) => {
        match $kind {
            MediaKind::Image => concat!("image.", $field),
            MediaKind::Video => concat!("video.", $field),
            MediaKind::Audio => concat!("audio.", $field),
            MediaKind::Voice => concat!("voice.", $field),
            MediaKind::Document => concat!("document.", $field),
            MediaKind::Sticker => concat!("sticker.", $field),
        }
    };
}
pub(crate) use media_field;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RequestError {
    // The body as a whole.
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    #[error("invalid request body: {0}")]
    InvalidBody(String),
    #[error("unknown field `{0}`")]
    UnknownField(String),
    #[error("missing field `{0}`")]
    MissingField(String),
    #[error("unknown message kind `{0}`")]
    UnknownKind(String),
    #[error(
        "the message needs exactly one of text, image, video, audio, voice, document, \
         sticker, location, contact, reaction or poll"
    )]
    NoKind,
    #[error("the message has more than one kind: {}", .0.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", "))]
    MultipleKinds(Vec<ContentKind>),

    // Addressing.
    #[error("{0}")]
    InvalidRecipient(#[from] super::recipient::InvalidRecipient),
    #[error("reply_to must be a message id (a UUID)")]
    InvalidReplyTo,
    #[error("a {0} message cannot reply to another; only text and media can")]
    ReplyNotAllowed(ContentKind),

    // Lengths, for any text field.
    #[error("{field} must not be empty")]
    Empty { field: &'static str },
    #[error("{field} must be at most {max} characters")]
    TooLong { field: &'static str, max: usize },

    // Media.
    #[error("{} needs one of url or base64, or a multipart `file` part", .0.as_str())]
    MissingMediaSource(MediaKind),
    #[error("{} takes only one of url, base64 and a multipart `file` part", .0.as_str())]
    MultipleMediaSources(MediaKind),
    #[error("{}.url is not a valid URL", .0.as_str())]
    InvalidUrl(MediaKind),
    #[error("{}.url must be an http or https URL", .0.as_str())]
    UnsupportedUrl(MediaKind),
    #[error("{}.base64 is not valid base64", .0.as_str())]
    InvalidBase64(MediaKind),
    #[error("the {} has no bytes", .0.as_str())]
    EmptyMedia(MediaKind),
    #[error("the media is larger than {limit} bytes")]
    MediaTooLarge { limit: usize },
    #[error("a caption is only allowed on image, video and document, not on {}", .0.as_str())]
    CaptionNotAllowed(MediaKind),
    #[error("file_name is only allowed on document, not on {}", .0.as_str())]
    FileNameNotAllowed(MediaKind),
    #[error("file_name must be a plain file name, without slashes or control characters")]
    InvalidFileName,
    #[error("{}.mime_type is not a mime type like image/jpeg", .0.as_str())]
    InvalidMimeType(MediaKind),
    #[error("{}.mime_type cannot be sent as {}", .0.as_str(), .0.as_str())]
    MimeTypeNotAllowed(MediaKind),

    // Location, contacts, reactions, polls.
    #[error("latitude must be a number from -90 to 90")]
    InvalidLatitude,
    #[error("longitude must be a number from -180 to 180")]
    InvalidLongitude,
    #[error("contact needs 1 to {max} vcards")]
    InvalidContactCount { max: usize },
    #[error("vcard {index} does not start with BEGIN:VCARD")]
    InvalidVcard { index: usize },
    #[error("reaction.message_id must be a message id (a UUID)")]
    InvalidMessageId,
    #[error("reaction.emoji must be a single emoji, or empty to remove the reaction")]
    InvalidEmoji,
    #[error("a poll needs {min} to {max} options")]
    InvalidPollOptionCount { min: usize, max: usize },
    #[error("poll options must be distinct")]
    DuplicatePollOptions,
    #[error("selectable_count must be from 1 to the number of options")]
    InvalidSelectableCount,

    // The envelope: JSON or multipart.
    #[error("expected Content-Type application/json or multipart/form-data")]
    UnsupportedContentType,
    #[error("request body too large")]
    BodyTooLarge,
    #[error("malformed multipart body: {0}")]
    InvalidMultipart(String),
    #[error("the multipart body needs a `message` part holding the JSON request")]
    MissingMessagePart,
    #[error("the multipart body has more than one `{0}` part")]
    DuplicatePart(&'static str),
    #[error("unexpected multipart part `{0}`; only `message` and `file` are read")]
    UnexpectedPart(String),
    #[error("a `file` part can only go with a media message, not {}", .0.as_str())]
    FileNotAllowed(ContentKind),
}

impl RequestError {
    /// The machine-readable code for the error envelope.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::MalformedJson(_) => "malformed_json",
            Self::InvalidBody(_) => "invalid_body",
            Self::UnknownField(_) => "unknown_field",
            Self::MissingField(_) => "missing_field",
            Self::UnknownKind(_) => "unknown_message_kind",
            Self::NoKind => "no_message_kind",
            Self::MultipleKinds(_) => "multiple_message_kinds",
            Self::InvalidRecipient(_) => "invalid_recipient",
            Self::InvalidReplyTo => "invalid_reply_to",
            Self::ReplyNotAllowed(_) => "reply_not_allowed",
            Self::Empty { .. } => "empty_field",
            Self::TooLong { .. } => "field_too_long",
            Self::MissingMediaSource(_) => "missing_media_source",
            Self::MultipleMediaSources(_) => "multiple_media_sources",
            Self::InvalidUrl(_) => "invalid_url",
            Self::UnsupportedUrl(_) => "unsupported_url",
            Self::InvalidBase64(_) => "invalid_base64",
            Self::EmptyMedia(_) => "empty_media",
            Self::MediaTooLarge { .. } => "media_too_large",
            Self::CaptionNotAllowed(_) => "caption_not_allowed",
            Self::FileNameNotAllowed(_) => "file_name_not_allowed",
            Self::InvalidFileName => "invalid_file_name",
            Self::InvalidMimeType(_) => "invalid_mime_type",
            Self::MimeTypeNotAllowed(_) => "mime_type_not_allowed",
            Self::InvalidLatitude => "invalid_latitude",
            Self::InvalidLongitude => "invalid_longitude",
            Self::InvalidContactCount { .. } => "invalid_contact_count",
            Self::InvalidVcard { .. } => "invalid_vcard",
            Self::InvalidMessageId => "invalid_message_id",
            Self::InvalidEmoji => "invalid_emoji",
            Self::InvalidPollOptionCount { .. } => "invalid_poll_options",
            Self::DuplicatePollOptions => "duplicate_poll_options",
            Self::InvalidSelectableCount => "invalid_selectable_count",
            Self::UnsupportedContentType => "unsupported_media_type",
            Self::BodyTooLarge => "payload_too_large",
            Self::InvalidMultipart(_) => "invalid_multipart",
            Self::MissingMessagePart => "missing_message_part",
            Self::DuplicatePart(_) => "duplicate_part",
            Self::UnexpectedPart(_) => "unexpected_part",
            Self::FileNotAllowed(_) => "file_not_allowed",
        }
    }

    /// The request field at fault, for `details.field`.
    pub(crate) fn field(&self) -> &'static str {
        match self {
            Self::MalformedJson(_)
            | Self::InvalidBody(_)
            | Self::UnknownField(_)
            | Self::MissingField(_)
            | Self::UnknownKind(_)
            | Self::NoKind
            | Self::MultipleKinds(_)
            | Self::UnsupportedContentType
            | Self::BodyTooLarge
            | Self::InvalidMultipart(_)
            | Self::UnexpectedPart(_) => "body",
            Self::MissingMessagePart => "message",
            Self::DuplicatePart(part) => part,
            Self::FileNotAllowed(_) | Self::MediaTooLarge { .. } => "file",
            Self::InvalidRecipient(_) => "to",
            Self::InvalidReplyTo | Self::ReplyNotAllowed(_) => "reply_to",
            Self::Empty { field } | Self::TooLong { field, .. } => field,
            Self::MissingMediaSource(kind) | Self::MultipleMediaSources(kind) => kind.as_str(),
            Self::InvalidUrl(kind) | Self::UnsupportedUrl(kind) => media_field!(kind, "url"),
            Self::InvalidBase64(kind) | Self::EmptyMedia(kind) => media_field!(kind, "base64"),
            Self::CaptionNotAllowed(kind) => media_field!(kind, "caption"),
            Self::FileNameNotAllowed(kind) => media_field!(kind, "file_name"),
            Self::InvalidFileName => "document.file_name",
            Self::InvalidMimeType(kind) | Self::MimeTypeNotAllowed(kind) => {
                media_field!(kind, "mime_type")
            }
            Self::InvalidLatitude => "location.latitude",
            Self::InvalidLongitude => "location.longitude",
            Self::InvalidContactCount { .. } | Self::InvalidVcard { .. } => "contact.vcards",
            Self::InvalidMessageId => "reaction.message_id",
            Self::InvalidEmoji => "reaction.emoji",
            Self::InvalidPollOptionCount { .. } | Self::DuplicatePollOptions => "poll.options",
            Self::InvalidSelectableCount => "poll.selectable_count",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_fields_are_named_after_their_kind() {
        assert_eq!(
            RequestError::UnsupportedUrl(MediaKind::Sticker).field(),
            "sticker.url"
        );
        assert_eq!(
            RequestError::InvalidBase64(MediaKind::Document).field(),
            "document.base64"
        );
        assert_eq!(
            RequestError::InvalidMimeType(MediaKind::Audio).field(),
            "audio.mime_type"
        );
    }
}

//! `POST /sessions/{id}/messages`: the request body as the API documents it,
//! and its validation into a [`ValidatedMessage`]. Every rule is checked
//! here, before anything is stored.

use std::collections::HashSet;

use base64::Engine;
use serde::Deserialize;
use serde_json::{Map, Value};
use url::Url;
use utoipa::ToSchema;
use uuid::Uuid;

use super::content::{Content, ContentKind, MediaKind, MediaSource, ValidatedMessage};
use super::error::{RequestError, media_field};
use super::recipient::{CHAT_PATTERN, Recipient};

pub(crate) const MAX_TEXT_CHARS: usize = 65_536;
/// WhatsApp cuts captions off at 1024 characters.
pub(crate) const MAX_CAPTION_CHARS: usize = 1_024;
pub(crate) const MAX_FILE_NAME_CHARS: usize = 255;
pub(crate) const MAX_LOCATION_TEXT_CHARS: usize = 1_024;
pub(crate) const MAX_VCARDS: usize = 20;
pub(crate) const MAX_VCARD_CHARS: usize = 65_536;
/// Long enough for a flag or a skin-toned family emoji (a ZWJ sequence of
/// up to 11 code points), short enough that it cannot carry a message.
pub(crate) const MAX_EMOJI_CHARS: usize = 16;
/// WhatsApp's own limits for a poll.
pub(crate) const MAX_POLL_QUESTION_CHARS: usize = 255;
pub(crate) const MAX_POLL_OPTION_CHARS: usize = 100;
pub(crate) const MIN_POLL_OPTIONS: usize = 2;
pub(crate) const MAX_POLL_OPTIONS: usize = 12;

/// The top-level keys that name a kind, in the order the contract lists them.
pub(crate) const KINDS: [(&str, ContentKind); 11] = [
    ("text", ContentKind::Text),
    ("image", ContentKind::Image),
    ("video", ContentKind::Video),
    ("audio", ContentKind::Audio),
    ("voice", ContentKind::Voice),
    ("document", ContentKind::Document),
    ("sticker", ContentKind::Sticker),
    ("location", ContentKind::Location),
    ("contact", ContentKind::Contact),
    ("reaction", ContentKind::Reaction),
    ("poll", ContentKind::Poll),
];

/// The schema of a request's `to`: built here rather than with
/// `#[schema(pattern = …)]`, which takes only a literal, so that its
/// pattern is the parser's ([`CHAT_PATTERN`]).
fn to_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    // `example`, as the document has always said, rather than OpenAPI
    // 3.1's `examples`.
    #[allow(deprecated)]
    let schema = ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "A phone number in international format (digits only, no `+`), or a\n\
             JID: `…@s.whatsapp.net` (a person), `…@g.us` (a group), `…@lid`.",
        ))
        .pattern(Some(CHAT_PATTERN))
        .example(Some("15551234567".into()))
        .build();
    schema
}

/// Send a message. Exactly one of `text`, `image`, `video`, `audio`,
/// `voice`, `document`, `sticker`, `location`, `contact`, `reaction` or
/// `poll`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 2, max_properties = 3)]
pub(crate) struct SendMessageRequest {
    // Described by `to_schema`.
    #[schema(schema_with = to_schema)]
    pub to: String,
    /// The gateway id of a message to quote. Only with text and media.
    #[schema(format = Uuid)]
    pub reply_to: Option<String>,
    pub text: Option<TextPayload>,
    pub image: Option<MediaPayload>,
    pub video: Option<MediaPayload>,
    pub audio: Option<MediaPayload>,
    /// A voice note (push-to-talk); best sent as Opus in Ogg.
    pub voice: Option<MediaPayload>,
    pub document: Option<MediaPayload>,
    /// A WebP image.
    pub sticker: Option<MediaPayload>,
    pub location: Option<LocationPayload>,
    pub contact: Option<ContactPayload>,
    pub reaction: Option<ReactionPayload>,
    pub poll: Option<PollPayload>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TextPayload {
    #[schema(min_length = 1, max_length = 65536)]
    pub body: String,
    /// Mark the first http(s) link in `body` for a preview.
    #[serde(default)]
    #[schema(default = false)]
    pub link_preview: bool,
}

/// The bytes come from exactly one of `url` and `base64`, or, with neither,
/// from the `file` part of a multipart/form-data request.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MediaPayload {
    /// An http or https URL the gateway downloads when it sends.
    #[schema(example = "https://example.com/photo.jpg")]
    pub url: Option<String>,
    /// The bytes, base64 encoded (standard alphabet, padded).
    #[schema(format = Byte)]
    pub base64: Option<String>,
    /// Only on image, video and document.
    #[schema(max_length = 1024)]
    pub caption: Option<String>,
    /// Only on document; the name the recipient sees.
    #[schema(min_length = 1, max_length = 255)]
    pub file_name: Option<String>,
    /// Overrides what the upload or the download says; must fit the kind
    /// (`image/*` for image, `image/webp` for sticker, …).
    #[schema(example = "image/jpeg")]
    pub mime_type: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LocationPayload {
    #[schema(minimum = -90, maximum = 90)]
    pub latitude: f64,
    #[schema(minimum = -180, maximum = 180)]
    pub longitude: f64,
    #[schema(max_length = 1024)]
    pub name: Option<String>,
    #[schema(max_length = 1024)]
    pub address: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ContactPayload {
    /// Each a vCard starting with `BEGIN:VCARD`.
    #[schema(min_items = 1, max_items = 20)]
    pub vcards: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReactionPayload {
    /// The gateway id of the message to react to.
    #[schema(format = Uuid)]
    pub message_id: String,
    /// One emoji; empty removes the reaction.
    #[schema(max_length = 16, example = "👍")]
    pub emoji: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PollPayload {
    #[schema(min_length = 1, max_length = 255)]
    pub question: String,
    /// Distinct, each 1 to 100 characters.
    #[schema(min_items = 2, max_items = 12)]
    pub options: Vec<String>,
    /// How many options a voter may pick, 1 to the number of options.
    #[serde(default = "one")]
    #[schema(minimum = 1, maximum = 12, default = 1)]
    pub selectable_count: u32,
}

fn one() -> u32 {
    1
}

/// Size caps for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest media file, however it comes (base64, multipart file).
    pub max_media_bytes: usize,
}

/// Room for everything in a JSON body but the media itself.
const JSON_OVERHEAD: usize = 512 * 1024;

/// The largest valid message with no media in it: a contact message with
/// every vcard at its longest (each character four bytes in UTF-8), and
/// room for the rest. A multipart body's `message` part carries no media
/// bytes, but is capped at this, not at [`JSON_OVERHEAD`]: smaller, a send
/// with long vcards was refused as too large (413) before it was validated,
/// whether valid or not (more than `MAX_VCARDS`: 422
/// `invalid_contact_count`).
const MESSAGE_PART: usize = MAX_VCARDS * MAX_VCARD_CHARS * 4 + JSON_OVERHEAD;

impl Limits {
    /// The largest JSON body: the media base64-encoded, plus the rest.
    pub fn max_json_bytes(&self) -> usize {
        self.max_media_bytes
            .div_ceil(3)
            .saturating_mul(4)
            .saturating_add(JSON_OVERHEAD)
    }

    /// The largest `message` part of a multipart body, which carries no bytes.
    pub fn max_message_part_bytes(&self) -> usize {
        MESSAGE_PART
    }
}

/// A multipart `file` part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FilePart {
    pub bytes: Vec<u8>,
    pub content_type: Option<String>,
    /// The part's `filename`: a document's name when the JSON gives none.
    pub file_name: Option<String>,
}

/// A send request, validated, with the media bytes it carried (from base64
/// or a `file` part) for the store's blob column.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ParsedRequest {
    pub message: ValidatedMessage,
    pub media: Option<Vec<u8>>,
}

/// Parses a JSON value into the request, classifying what serde refuses.
/// Unknown keys and the kind count are checked first, on the raw object, so
/// `{"to": …, "button": {…}}` says `unknown_message_kind` rather than
/// serde's generic complaint.
pub(crate) fn parse_json(mut value: Value) -> Result<SendMessageRequest, RequestError> {
    crate::json::integral_floats(&mut value);
    let Value::Object(object) = value else {
        return Err(RequestError::InvalidBody(
            "expected a JSON object".to_string(),
        ));
    };
    check_keys(&object)?;
    serde_json::from_value(Value::Object(object)).map_err(classify_serde_error)
}

fn check_keys(object: &Map<String, Value>) -> Result<(), RequestError> {
    for (key, value) in object {
        let known = key == "to" || key == "reply_to" || KINDS.iter().any(|(k, _)| k == key);
        if !known {
            return Err(if value.is_object() {
                RequestError::UnknownKind(key.clone())
            } else {
                RequestError::UnknownField(key.clone())
            });
        }
    }
    let present: Vec<ContentKind> = KINDS
        .iter()
        .filter(|(key, _)| object.get(*key).is_some_and(|v| !v.is_null()))
        .map(|(_, kind)| *kind)
        .collect();
    match present.len() {
        0 => Err(RequestError::NoKind),
        1 => Ok(()),
        _ => Err(RequestError::MultipleKinds(present)),
    }
}

/// serde_json's data errors are only told apart by their text, which is
/// serde's own stable wording ("unknown field `x`", "missing field `x`").
fn classify_serde_error(error: serde_json::Error) -> RequestError {
    let message = error.to_string();
    let quoted = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|rest| rest.split('`').next())
            .map(str::to_string)
    };
    if let Some(field) = quoted("unknown field `") {
        RequestError::UnknownField(field)
    } else if let Some(field) = quoted("missing field `") {
        RequestError::MissingField(field)
    } else {
        RequestError::InvalidBody(message)
    }
}

/// Validates a parsed request, with the multipart file if there was one.
pub(crate) fn validate(
    request: SendMessageRequest,
    file: Option<FilePart>,
    limits: &Limits,
) -> Result<ParsedRequest, RequestError> {
    let to: Recipient = request.to.parse()?;
    let reply_to = request
        .reply_to
        .as_deref()
        .map(|id| Uuid::parse_str(id).map_err(|_| RequestError::InvalidReplyTo))
        .transpose()?;

    let SendMessageRequest {
        text,
        image,
        video,
        audio,
        voice,
        document,
        sticker,
        location,
        contact,
        reaction,
        poll,
        ..
    } = request;
    let media = [
        (MediaKind::Image, image),
        (MediaKind::Video, video),
        (MediaKind::Audio, audio),
        (MediaKind::Voice, voice),
        (MediaKind::Document, document),
        (MediaKind::Sticker, sticker),
    ]
    .into_iter()
    .find_map(|(kind, payload)| payload.map(|p| (kind, p)));

    let (content, bytes) = if let Some((kind, payload)) = media {
        validate_media(kind, payload, file, limits)?
    } else {
        let content = if let Some(text) = text {
            validate_text(text)?
        } else if let Some(location) = location {
            validate_location(location)?
        } else if let Some(contact) = contact {
            validate_contact(contact)?
        } else if let Some(reaction) = reaction {
            validate_reaction(reaction)?
        } else if let Some(poll) = poll {
            validate_poll(poll)?
        } else {
            return Err(RequestError::NoKind);
        };
        if file.is_some() {
            return Err(RequestError::FileNotAllowed(content.kind()));
        }
        (content, None)
    };

    if reply_to.is_some() && !content.kind().can_reply() {
        return Err(RequestError::ReplyNotAllowed(content.kind()));
    }
    Ok(ParsedRequest {
        message: ValidatedMessage {
            to,
            reply_to,
            content,
        },
        media: bytes,
    })
}

fn check_length(value: &str, field: &'static str, max: usize) -> Result<(), RequestError> {
    if value.is_empty() {
        Err(RequestError::Empty { field })
    } else if value.chars().count() > max {
        Err(RequestError::TooLong { field, max })
    } else {
        Ok(())
    }
}

/// An optional text: absent or empty both mean none.
fn optional_text(
    value: Option<String>,
    field: &'static str,
    max: usize,
) -> Result<Option<String>, RequestError> {
    match value.filter(|v| !v.is_empty()) {
        Some(v) => check_length(&v, field, max).map(|()| Some(v)),
        None => Ok(None),
    }
}

fn validate_text(text: TextPayload) -> Result<Content<Uuid>, RequestError> {
    check_length(&text.body, "text.body", MAX_TEXT_CHARS)?;
    Ok(Content::Text {
        body: text.body,
        link_preview: text.link_preview,
    })
}

fn validate_media(
    kind: MediaKind,
    payload: MediaPayload,
    file: Option<FilePart>,
    limits: &Limits,
) -> Result<(Content<Uuid>, Option<Vec<u8>>), RequestError> {
    if payload.caption.is_some() && !kind.allows_caption() {
        return Err(RequestError::CaptionNotAllowed(kind));
    }
    if payload.file_name.is_some() && !kind.allows_file_name() {
        return Err(RequestError::FileNameNotAllowed(kind));
    }
    let caption = optional_text(
        payload.caption,
        media_field!(kind, "caption"),
        MAX_CAPTION_CHARS,
    )?;
    let mut file_name = payload.file_name.map(validate_file_name).transpose()?;
    let declared = payload
        .mime_type
        .map(|m| validate_mime(kind, &m).map(|()| m))
        .transpose()?;

    let (source, bytes, mime_type) = match (payload.url, payload.base64, file) {
        (Some(url), None, None) => (MediaSource::Url(validate_url(kind, &url)?), None, declared),
        (None, Some(encoded), None) => {
            let bytes = decode_base64(kind, &encoded, limits)?;
            let mime = declared.unwrap_or_else(|| resolve_mime(kind, None, &bytes));
            (MediaSource::Stored, Some(bytes), Some(mime))
        }
        (None, None, Some(file)) => {
            if file.bytes.is_empty() {
                return Err(RequestError::EmptyMedia(kind));
            }
            if file.bytes.len() > limits.max_media_bytes {
                return Err(RequestError::MediaTooLarge {
                    limit: limits.max_media_bytes,
                });
            }
            let mime = declared
                .unwrap_or_else(|| resolve_mime(kind, file.content_type.as_deref(), &file.bytes));
            // An uploaded file's own name is a fine default for a document;
            // one that would not pass as `file_name` is dropped, not refused.
            if kind.allows_file_name() && file_name.is_none() {
                file_name = file.file_name.and_then(|n| validate_file_name(n).ok());
            }
            (MediaSource::Stored, Some(file.bytes), Some(mime))
        }
        (None, None, None) => return Err(RequestError::MissingMediaSource(kind)),
        _ => return Err(RequestError::MultipleMediaSources(kind)),
    };
    Ok((
        Content::Media {
            kind,
            source,
            caption,
            file_name,
            mime_type,
        },
        bytes,
    ))
}

fn validate_url(kind: MediaKind, url: &str) -> Result<Url, RequestError> {
    let url = Url::parse(url).map_err(|_| RequestError::InvalidUrl(kind))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(RequestError::UnsupportedUrl(kind));
    }
    if !crate::egress::has_valid_host(&url) {
        return Err(RequestError::InvalidUrl(kind));
    }
    Ok(url)
}

fn decode_base64(kind: MediaKind, encoded: &str, limits: &Limits) -> Result<Vec<u8>, RequestError> {
    // Refuse before decoding: the decoded size follows from the length.
    if base64::decoded_len_estimate(encoded.len()) > limits.max_media_bytes.saturating_add(2) {
        return Err(RequestError::MediaTooLarge {
            limit: limits.max_media_bytes,
        });
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| RequestError::InvalidBase64(kind))?;
    if bytes.is_empty() {
        return Err(RequestError::EmptyMedia(kind));
    }
    if bytes.len() > limits.max_media_bytes {
        return Err(RequestError::MediaTooLarge {
            limit: limits.max_media_bytes,
        });
    }
    Ok(bytes)
}

fn validate_file_name(name: String) -> Result<String, RequestError> {
    check_length(&name, "document.file_name", MAX_FILE_NAME_CHARS)?;
    // The recipient's phone saves the file under this name.
    if name.contains(['/', '\\'])
        || name.chars().any(char::is_control)
        || name == "."
        || name == ".."
    {
        return Err(RequestError::InvalidFileName);
    }
    Ok(name)
}

fn validate_mime(kind: MediaKind, mime: &str) -> Result<(), RequestError> {
    let parsed: mime::Mime = mime
        .parse()
        .map_err(|_| RequestError::InvalidMimeType(kind))?;
    if kind.accepts_mime(&parsed) {
        Ok(())
    } else {
        Err(RequestError::MimeTypeNotAllowed(kind))
    }
}

/// The mime type of media bytes nobody declared: the transport's type if it
/// fits the kind, else what the bytes look like if that fits, else the
/// kind's default. A misfit is skipped rather than refused because clients
/// often send `application/octet-stream` for anything.
pub(crate) fn resolve_mime(kind: MediaKind, transport: Option<&str>, bytes: &[u8]) -> String {
    let fits = |candidate: &str| {
        candidate
            .parse::<mime::Mime>()
            .is_ok_and(|m| kind.accepts_mime(&m) && m != mime::APPLICATION_OCTET_STREAM)
    };
    if let Some(declared) = transport.map(str::trim).filter(|t| fits(t)) {
        return declared.to_string();
    }
    if let Some(sniffed) = infer::get(bytes).map(|t| t.mime_type())
        && fits(sniffed)
    {
        // A voice note is Opus in Ogg; `infer` says only `audio/ogg`.
        return if kind == MediaKind::Voice && sniffed == "audio/ogg" {
            kind.default_mime().to_string()
        } else {
            sniffed.to_string()
        };
    }
    kind.default_mime().to_string()
}

fn validate_location(location: LocationPayload) -> Result<Content<Uuid>, RequestError> {
    if !(-90.0..=90.0).contains(&location.latitude) {
        return Err(RequestError::InvalidLatitude);
    }
    if !(-180.0..=180.0).contains(&location.longitude) {
        return Err(RequestError::InvalidLongitude);
    }
    Ok(Content::Location {
        latitude: location.latitude,
        longitude: location.longitude,
        name: optional_text(location.name, "location.name", MAX_LOCATION_TEXT_CHARS)?,
        address: optional_text(
            location.address,
            "location.address",
            MAX_LOCATION_TEXT_CHARS,
        )?,
    })
}

fn validate_contact(contact: ContactPayload) -> Result<Content<Uuid>, RequestError> {
    if contact.vcards.is_empty() || contact.vcards.len() > MAX_VCARDS {
        return Err(RequestError::InvalidContactCount { max: MAX_VCARDS });
    }
    for (index, vcard) in contact.vcards.iter().enumerate() {
        let starts = vcard
            .get(..11)
            .is_some_and(|head| head.eq_ignore_ascii_case("BEGIN:VCARD"));
        if !starts {
            return Err(RequestError::InvalidVcard { index });
        }
        if vcard.chars().count() > MAX_VCARD_CHARS {
            return Err(RequestError::TooLong {
                field: "contact.vcards",
                max: MAX_VCARD_CHARS,
            });
        }
    }
    Ok(Content::Contacts {
        vcards: contact.vcards,
    })
}

fn validate_reaction(reaction: ReactionPayload) -> Result<Content<Uuid>, RequestError> {
    let target =
        Uuid::parse_str(&reaction.message_id).map_err(|_| RequestError::InvalidMessageId)?;
    let emoji = reaction.emoji;
    let plausible = emoji.chars().count() <= MAX_EMOJI_CHARS
        && !emoji
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c.is_ascii_alphabetic());
    if !plausible {
        return Err(RequestError::InvalidEmoji);
    }
    Ok(Content::Reaction { target, emoji })
}

fn validate_poll(poll: PollPayload) -> Result<Content<Uuid>, RequestError> {
    check_length(&poll.question, "poll.question", MAX_POLL_QUESTION_CHARS)?;
    if !(MIN_POLL_OPTIONS..=MAX_POLL_OPTIONS).contains(&poll.options.len()) {
        return Err(RequestError::InvalidPollOptionCount {
            min: MIN_POLL_OPTIONS,
            max: MAX_POLL_OPTIONS,
        });
    }
    for option in &poll.options {
        check_length(option, "poll.options", MAX_POLL_OPTION_CHARS)?;
    }
    // Votes name options by a hash of their text: two equal options would
    // be indistinguishable.
    let mut seen = HashSet::new();
    if !poll.options.iter().all(|o| seen.insert(o.as_str())) {
        return Err(RequestError::DuplicatePollOptions);
    }
    let count = usize::try_from(poll.selectable_count).unwrap_or(usize::MAX);
    if count == 0 || count > poll.options.len() {
        return Err(RequestError::InvalidSelectableCount);
    }
    Ok(Content::Poll {
        question: poll.question,
        options: poll.options,
        selectable_count: poll.selectable_count,
    })
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;

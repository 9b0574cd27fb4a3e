use axum::body::Body;
use axum::http::Request as HttpRequest;

use super::*;
use crate::messages::content::{Content, MediaKind, MediaSource};
use crate::messages::request::{MAX_VCARD_CHARS, MAX_VCARDS};

const LIMITS: Limits = Limits {
    max_media_bytes: 1024,
};
const BOUNDARY: &str = "XyZzY";

fn request(content_type: Option<&str>, body: impl Into<Body>) -> Request {
    let mut builder = HttpRequest::post("/api/v1/sessions/x/messages");
    if let Some(content_type) = content_type {
        builder = builder.header(CONTENT_TYPE, content_type);
    }
    builder.body(body.into()).unwrap()
}

/// A part: its name, its optional filename and content type, its bytes.
type Part<'a> = (&'a str, Option<(&'a str, &'a str)>, &'a [u8]);

fn multipart(parts: &[Part<'_>]) -> Request {
    let mut body = Vec::new();
    for (name, file, bytes) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match file {
            Some((file_name, content_type)) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file_name}\"\r\n\
                     Content-Type: {content_type}\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    request(
        Some(&format!("multipart/form-data; boundary={BOUNDARY}")),
        body,
    )
}

#[tokio::test]
async fn a_json_body_is_parsed_and_validated() {
    let body = r#"{"to": "15551234567", "text": {"body": "hi"}}"#;
    let parsed = read_request(request(Some("application/json"), body), &LIMITS)
        .await
        .unwrap();
    assert_eq!(
        parsed.message.content,
        Content::Text {
            body: "hi".into(),
            link_preview: false
        }
    );
    let charset = read_request(
        request(Some("application/json; charset=utf-8"), body),
        &LIMITS,
    )
    .await;
    assert!(charset.is_ok(), "{charset:?}");
}

#[tokio::test]
async fn other_content_types_and_bad_json_are_refused() {
    let body = r#"{"to": "15551234567", "text": {"body": "hi"}}"#;
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        assert_eq!(
            read_request(request(content_type, body), &LIMITS)
                .await
                .err(),
            Some(RequestError::UnsupportedContentType),
            "{content_type:?}"
        );
    }
    let error = read_request(request(Some("application/json"), "{\"to\":"), &LIMITS)
        .await
        .err();
    assert_eq!(error.map(|e| e.code()), Some("malformed_json"));
}

#[tokio::test]
async fn a_json_body_over_its_cap_is_refused_as_too_large() {
    let huge = format!(
        r#"{{"to": "15551234567", "text": {{"body": "{}"}}}}"#,
        "a".repeat(LIMITS.max_json_bytes())
    );
    assert_eq!(
        read_request(request(Some("application/json"), huge), &LIMITS)
            .await
            .err(),
        Some(RequestError::BodyTooLarge)
    );
}

#[tokio::test]
async fn multipart_carries_the_json_and_the_file() {
    let req = multipart(&[
        (
            "message",
            None,
            br#"{"to": "15551234567", "voice": {}}"#.as_slice(),
        ),
        ("file", Some(("note.ogg", "audio/ogg")), b"OggS\0\x02opus"),
    ]);
    let parsed = read_request(req, &LIMITS).await.unwrap();
    assert_eq!(parsed.media.as_deref(), Some(b"OggS\0\x02opus".as_slice()));
    assert_eq!(
        parsed.message.content,
        Content::Media {
            kind: MediaKind::Voice,
            source: MediaSource::Stored,
            caption: None,
            file_name: None,
            mime_type: Some("audio/ogg".into()),
        }
    );
}

#[tokio::test]
async fn multipart_without_a_message_or_with_strangers_is_refused() {
    let no_message = multipart(&[("file", Some(("a.bin", "application/pdf")), b"x")]);
    assert_eq!(
        read_request(no_message, &LIMITS).await.err(),
        Some(RequestError::MissingMessagePart)
    );
    let stranger = multipart(&[
        ("message", None, br#"{"to": "15551234567", "audio": {}}"#),
        ("extra", None, b"x"),
    ]);
    assert_eq!(
        read_request(stranger, &LIMITS).await.err(),
        Some(RequestError::UnexpectedPart("extra".into()))
    );
    let twice = multipart(&[
        ("file", Some(("a", "audio/ogg")), b"x"),
        ("file", Some(("b", "audio/ogg")), b"y"),
    ]);
    assert_eq!(
        read_request(twice, &LIMITS).await.err(),
        Some(RequestError::DuplicatePart("file"))
    );
    let no_boundary = request(Some("multipart/form-data"), "x");
    assert_eq!(
        read_request(no_boundary, &LIMITS)
            .await
            .err()
            .map(|e| e.code()),
        Some("invalid_multipart")
    );
}

#[tokio::test]
async fn a_file_part_over_the_media_cap_is_refused_while_reading() {
    let big = vec![0u8; LIMITS.max_media_bytes + 1];
    let req = multipart(&[
        ("message", None, br#"{"to": "15551234567", "document": {}}"#),
        ("file", Some(("big.bin", "application/pdf")), &big),
    ]);
    assert_eq!(
        read_request(req, &LIMITS).await.err(),
        Some(RequestError::MediaTooLarge { limit: 1024 })
    );
}

#[tokio::test]
async fn a_media_message_in_multipart_without_a_file_needs_a_source() {
    let req = multipart(&[("message", None, br#"{"to": "15551234567", "image": {}}"#)]);
    assert_eq!(
        read_request(req, &LIMITS).await.err(),
        Some(RequestError::MissingMediaSource(MediaKind::Image))
    );
}

/// The `message` part holds the largest valid message, so a multipart
/// send is validated, not refused as too large: every vcard at its
/// longest (each character four bytes) is accepted, and one vcard too
/// many is the 422 it is in JSON, not a 413.
#[tokio::test]
async fn a_multipart_contact_message_is_validated_however_long_its_vcards() {
    let card = format!(
        "BEGIN:VCARD\n{}",
        "\u{1F600}".repeat(MAX_VCARD_CHARS - "BEGIN:VCARD\n".len())
    );
    assert_eq!(card.chars().count(), MAX_VCARD_CHARS);
    let message = |count: usize| {
        serde_json::json!({"to": "15551234567", "contact": {"vcards": vec![card.as_str(); count]}})
            .to_string()
    };
    let longest = message(MAX_VCARDS);
    let parsed = read_request(multipart(&[("message", None, longest.as_bytes())]), &LIMITS)
        .await
        .map(|parsed| parsed.message.content);
    assert_eq!(
        parsed,
        Ok(Content::Contacts {
            vcards: vec![card.clone(); MAX_VCARDS]
        })
    );
    let too_many = message(MAX_VCARDS + 1);
    assert_eq!(
        read_request(
            multipart(&[("message", None, too_many.as_bytes())]),
            &LIMITS
        )
        .await
        .err(),
        Some(RequestError::InvalidContactCount { max: MAX_VCARDS })
    );
}

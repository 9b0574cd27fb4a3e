use base64::Engine;
use serde_json::json;

use super::*;

const LIMITS: Limits = Limits {
    max_media_bytes: 1024,
};

fn parse(value: Value) -> Result<ParsedRequest, RequestError> {
    validate(parse_json(value)?, None, &LIMITS)
}

fn with_file(value: Value, file: FilePart) -> Result<ParsedRequest, RequestError> {
    validate(parse_json(value)?, Some(file), &LIMITS)
}

fn code(result: Result<ParsedRequest, RequestError>) -> &'static str {
    match result {
        Ok(parsed) => panic!("expected an error, got {parsed:?}"),
        Err(e) => e.code(),
    }
}

fn content(value: Value) -> Content<Uuid> {
    match parse(value) {
        Ok(parsed) => parsed.message.content,
        Err(e) => panic!("expected a valid request, got {e:?}"),
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";

#[test]
fn a_text_message_is_validated_into_content() {
    let parsed = parse(json!({"to": "15551234567", "text": {"body": "hi"}})).unwrap();
    assert_eq!(parsed.message.to.to_string(), "15551234567@s.whatsapp.net");
    assert_eq!(parsed.message.reply_to, None);
    assert_eq!(
        parsed.message.content,
        Content::Text {
            body: "hi".into(),
            link_preview: false
        }
    );
    assert_eq!(parsed.media, None);
}

#[test]
fn unknown_fields_and_kinds_are_told_apart() {
    assert_eq!(
        parse_json(json!({"to": "15551234567", "text": {"body": "x"}, "priority": 1})).err(),
        Some(RequestError::UnknownField("priority".into()))
    );
    assert_eq!(
        parse_json(json!({"to": "15551234567", "button": {"title": "x"}})).err(),
        Some(RequestError::UnknownKind("button".into()))
    );
    assert_eq!(
        parse_json(json!({"to": "15551234567", "text": {"body": "x", "bold": true}})).err(),
        Some(RequestError::UnknownField("bold".into()))
    );
}

#[test]
fn exactly_one_kind_is_required() {
    assert_eq!(code(parse(json!({"to": "15551234567"}))), "no_message_kind");
    assert_eq!(
        code(parse(json!({"to": "15551234567", "text": null}))),
        "no_message_kind"
    );
    assert_eq!(
        parse_json(json!({
            "to": "15551234567",
            "text": {"body": "x"},
            "image": {"url": "https://example.com/a.jpg"}
        }))
        .err(),
        Some(RequestError::MultipleKinds(vec![
            ContentKind::Text,
            ContentKind::Image
        ]))
    );
}

#[test]
fn the_body_must_be_an_object_with_fields_of_the_right_type() {
    assert_eq!(code(parse(json!([1, 2]))), "invalid_body");
    assert_eq!(
        parse_json(json!({"text": {"body": "x"}})).err(),
        Some(RequestError::MissingField("to".into()))
    );
    assert_eq!(
        code(parse(json!({"to": 15551234567_u64, "text": {"body": "x"}}))),
        "invalid_body"
    );
}

#[test]
fn the_recipient_is_parsed() {
    assert_eq!(
        code(parse(json!({"to": "+15551234567", "text": {"body": "x"}}))),
        "invalid_recipient"
    );
    let group = parse(json!({"to": "120363025246125888@g.us", "text": {"body": "x"}})).unwrap();
    assert!(group.message.to.is_group());
}

#[test]
fn reply_to_is_a_uuid_and_only_for_text_and_media() {
    let id = Uuid::now_v7();
    let parsed = parse(json!({
        "to": "15551234567", "reply_to": id.to_string(), "text": {"body": "x"}
    }))
    .unwrap();
    assert_eq!(parsed.message.reply_to, Some(id));
    assert!(
        parse(json!({
            "to": "15551234567", "reply_to": id.to_string(),
            "image": {"url": "https://example.com/a.jpg"}
        }))
        .is_ok()
    );
    assert_eq!(
        code(parse(
            json!({"to": "15551234567", "reply_to": "42", "text": {"body": "x"}})
        )),
        "invalid_reply_to"
    );
    assert_eq!(
        parse(json!({
            "to": "15551234567", "reply_to": id.to_string(),
            "location": {"latitude": 1.0, "longitude": 2.0}
        }))
        .err(),
        Some(RequestError::ReplyNotAllowed(ContentKind::Location))
    );
    assert_eq!(
        code(parse(json!({
            "to": "15551234567", "reply_to": id.to_string(),
            "poll": {"question": "q", "options": ["a", "b"]}
        }))),
        "reply_not_allowed"
    );
}

#[test]
fn text_bodies_are_1_to_65536_characters() {
    assert_eq!(
        parse(json!({"to": "15551234567", "text": {"body": ""}})).err(),
        Some(RequestError::Empty { field: "text.body" })
    );
    let longest = "é".repeat(MAX_TEXT_CHARS);
    assert!(parse(json!({"to": "15551234567", "text": {"body": longest}})).is_ok());
    assert_eq!(
        code(parse(
            json!({"to": "15551234567", "text": {"body": "a".repeat(MAX_TEXT_CHARS + 1)}})
        )),
        "field_too_long"
    );
    assert_eq!(
        content(json!({"to": "15551234567", "text": {"body": "x", "link_preview": true}})),
        Content::Text {
            body: "x".into(),
            link_preview: true
        }
    );
}

#[test]
fn a_media_url_must_be_http_or_https() {
    assert_eq!(
        content(
            json!({"to": "15551234567", "image": {"url": "https://example.com/a.jpg", "caption": "c"}})
        ),
        Content::Media {
            kind: MediaKind::Image,
            source: MediaSource::Url("https://example.com/a.jpg".parse().unwrap()),
            caption: Some("c".into()),
            file_name: None,
            mime_type: None,
        }
    );
    assert!(
        parse(json!({"to": "15551234567", "video": {"url": "http://example.com/v.mp4"}})).is_ok()
    );
    for url in [
        "ftp://example.com/a.jpg",
        "file:///etc/passwd",
        "data:image/png;base64,AAAA",
    ] {
        assert_eq!(
            parse(json!({"to": "15551234567", "image": {"url": url}})).err(),
            Some(RequestError::UnsupportedUrl(MediaKind::Image)),
            "{url}"
        );
    }
    assert_eq!(
        code(parse(
            json!({"to": "15551234567", "image": {"url": "not a url"}})
        )),
        "invalid_url"
    );
}

#[test]
fn media_needs_exactly_one_source() {
    assert_eq!(
        parse(json!({"to": "15551234567", "audio": {}})).err(),
        Some(RequestError::MissingMediaSource(MediaKind::Audio))
    );
    assert_eq!(
        parse(
            json!({"to": "15551234567", "audio": {"url": "https://e.com/a", "base64": b64(b"x")}})
        )
        .err(),
        Some(RequestError::MultipleMediaSources(MediaKind::Audio))
    );
    let file = FilePart {
        bytes: b"x".to_vec(),
        content_type: None,
        file_name: None,
    };
    assert_eq!(
        with_file(
            json!({"to": "15551234567", "audio": {"url": "https://e.com/a"}}),
            file
        )
        .err(),
        Some(RequestError::MultipleMediaSources(MediaKind::Audio))
    );
}

#[test]
fn base64_media_is_decoded_and_its_type_sniffed() {
    let parsed = parse(json!({"to": "15551234567", "image": {"base64": b64(PNG)}})).unwrap();
    assert_eq!(parsed.media.as_deref(), Some(PNG));
    assert_eq!(
        parsed.message.content,
        Content::Media {
            kind: MediaKind::Image,
            source: MediaSource::Stored,
            caption: None,
            file_name: None,
            mime_type: Some("image/png".into()),
        }
    );
    assert_eq!(
        parse(json!({"to": "15551234567", "image": {"base64": "not base64!"}})).err(),
        Some(RequestError::InvalidBase64(MediaKind::Image))
    );
    assert_eq!(
        code(parse(json!({"to": "15551234567", "image": {"base64": ""}}))),
        "empty_media"
    );
}

#[test]
fn media_over_the_limit_is_refused_however_it_comes() {
    let too_big = vec![7u8; LIMITS.max_media_bytes + 1];
    assert_eq!(
        parse(json!({"to": "15551234567", "document": {"base64": b64(&too_big)}})).err(),
        Some(RequestError::MediaTooLarge { limit: 1024 })
    );
    let just_fits = vec![7u8; LIMITS.max_media_bytes];
    assert!(parse(json!({"to": "15551234567", "document": {"base64": b64(&just_fits)}})).is_ok());
    let file = FilePart {
        bytes: too_big,
        content_type: None,
        file_name: None,
    };
    assert_eq!(
        code(with_file(
            json!({"to": "15551234567", "document": {}}),
            file
        )),
        "media_too_large"
    );
}

#[test]
fn captions_only_on_image_video_and_document() {
    for kind in ["audio", "voice", "sticker"] {
        let result =
            parse(json!({"to": "15551234567", kind: {"url": "https://e.com/x", "caption": "c"}}));
        assert_eq!(code(result), "caption_not_allowed", "{kind}");
    }
    for kind in ["image", "video", "document"] {
        let result =
            parse(json!({"to": "15551234567", kind: {"url": "https://e.com/x", "caption": "c"}}));
        assert!(result.is_ok(), "{kind}: {result:?}");
    }
    assert_eq!(
        code(parse(
            json!({"to": "15551234567", "image": {"url": "https://e.com/x", "caption": "c".repeat(MAX_CAPTION_CHARS + 1)}})
        )),
        "field_too_long"
    );
}

#[test]
fn file_names_only_on_documents_and_plain() {
    assert_eq!(
        parse(
            json!({"to": "15551234567", "image": {"url": "https://e.com/x", "file_name": "a.jpg"}})
        )
        .err(),
        Some(RequestError::FileNameNotAllowed(MediaKind::Image))
    );
    for bad in ["../etc/passwd", "a\\b", "a\nb", ".."] {
        assert_eq!(
            code(parse(
                json!({"to": "15551234567", "document": {"url": "https://e.com/x", "file_name": bad}})
            )),
            "invalid_file_name",
            "{bad:?}"
        );
    }
    let ok = content(
        json!({"to": "15551234567", "document": {"url": "https://e.com/x", "file_name": "report.pdf"}}),
    );
    assert!(matches!(ok, Content::Media { file_name: Some(n), .. } if n == "report.pdf"));
}

#[test]
fn a_declared_mime_type_must_parse_and_fit_the_kind() {
    assert_eq!(
        code(parse(
            json!({"to": "15551234567", "image": {"url": "https://e.com/x", "mime_type": "jpeg"}})
        )),
        "invalid_mime_type"
    );
    assert_eq!(
        parse(json!({"to": "15551234567", "sticker": {"url": "https://e.com/x", "mime_type": "image/png"}}))
            .err(),
        Some(RequestError::MimeTypeNotAllowed(MediaKind::Sticker))
    );
    // Declared wins over sniffing.
    let parsed = parse(json!({"to": "15551234567", "document": {"base64": b64(PNG), "mime_type": "application/pdf"}}))
        .unwrap();
    assert!(matches!(
        parsed.message.content,
        Content::Media { mime_type: Some(m), .. } if m == "application/pdf"
    ));
}

#[test]
fn a_file_part_supplies_bytes_type_and_document_name() {
    let file = FilePart {
        bytes: PNG.to_vec(),
        content_type: Some("application/octet-stream".into()),
        file_name: Some("scan.png".into()),
    };
    let parsed = with_file(
        json!({"to": "15551234567", "document": {"caption": "see"}}),
        file,
    )
    .unwrap();
    assert_eq!(parsed.media.as_deref(), Some(PNG));
    assert_eq!(
        parsed.message.content,
        Content::Media {
            kind: MediaKind::Document,
            source: MediaSource::Stored,
            caption: Some("see".into()),
            file_name: Some("scan.png".into()),
            mime_type: Some("image/png".into()),
        }
    );
    let audio = FilePart {
        bytes: b"not a known format".to_vec(),
        content_type: Some("audio/mp4".into()),
        file_name: None,
    };
    let parsed = with_file(json!({"to": "15551234567", "audio": {}}), audio).unwrap();
    assert!(matches!(
        parsed.message.content,
        Content::Media { mime_type: Some(m), .. } if m == "audio/mp4"
    ));
    let empty = FilePart {
        bytes: Vec::new(),
        content_type: None,
        file_name: None,
    };
    assert_eq!(
        code(with_file(json!({"to": "15551234567", "audio": {}}), empty)),
        "empty_media"
    );
}

#[test]
fn a_file_part_with_a_non_media_kind_is_refused() {
    let file = FilePart {
        bytes: b"x".to_vec(),
        content_type: None,
        file_name: None,
    };
    assert_eq!(
        with_file(json!({"to": "15551234567", "text": {"body": "x"}}), file).err(),
        Some(RequestError::FileNotAllowed(ContentKind::Text))
    );
}

#[test]
fn mime_resolution_prefers_transport_then_bytes_then_default() {
    assert_eq!(
        resolve_mime(MediaKind::Image, Some("image/gif"), PNG),
        "image/gif"
    );
    assert_eq!(
        resolve_mime(MediaKind::Image, Some("application/octet-stream"), PNG),
        "image/png"
    );
    assert_eq!(
        resolve_mime(MediaKind::Image, Some("text/html"), b"??"),
        "image/jpeg"
    );
    assert_eq!(
        resolve_mime(MediaKind::Voice, None, b"OggS\0\x02rest"),
        "audio/ogg; codecs=opus"
    );
    assert_eq!(
        resolve_mime(MediaKind::Document, None, b"plain"),
        "application/octet-stream"
    );
    // A PNG is no sticker: the kind's default stands.
    assert_eq!(resolve_mime(MediaKind::Sticker, None, PNG), "image/webp");
}

#[test]
fn locations_are_within_range() {
    assert_eq!(
        content(
            json!({"to": "15551234567", "location": {"latitude": -90, "longitude": 180, "name": "Pole"}})
        ),
        Content::Location {
            latitude: -90.0,
            longitude: 180.0,
            name: Some("Pole".into()),
            address: None
        }
    );
    assert_eq!(
        code(parse(
            json!({"to": "15551234567", "location": {"latitude": 90.5, "longitude": 0}})
        )),
        "invalid_latitude"
    );
    assert_eq!(
        code(parse(
            json!({"to": "15551234567", "location": {"latitude": 0, "longitude": -180.01}})
        )),
        "invalid_longitude"
    );
    assert_eq!(
        code(parse(
            json!({"to": "15551234567", "location": {"latitude": 0}})
        )),
        "missing_field"
    );
}

#[test]
fn contacts_are_1_to_20_vcards() {
    let card = "BEGIN:VCARD\nVERSION:3.0\nFN:Ada\nEND:VCARD";
    assert_eq!(
        content(json!({"to": "15551234567", "contact": {"vcards": [card]}})),
        Content::Contacts {
            vcards: vec![card.into()]
        }
    );
    assert!(parse(json!({"to": "15551234567", "contact": {"vcards": vec![card; 20]}})).is_ok());
    assert_eq!(
        code(parse(
            json!({"to": "15551234567", "contact": {"vcards": vec![card; 21]}})
        )),
        "invalid_contact_count"
    );
    assert_eq!(
        code(parse(
            json!({"to": "15551234567", "contact": {"vcards": []}})
        )),
        "invalid_contact_count"
    );
    assert_eq!(
        parse(json!({"to": "15551234567", "contact": {"vcards": [card, "FN:Bob"]}})).err(),
        Some(RequestError::InvalidVcard { index: 1 })
    );
}

#[test]
fn reactions_name_a_message_and_one_emoji() {
    let id = Uuid::now_v7();
    assert_eq!(
        content(
            json!({"to": "15551234567", "reaction": {"message_id": id.to_string(), "emoji": "👍"}})
        ),
        Content::Reaction {
            target: id,
            emoji: "👍".into()
        }
    );
    assert_eq!(
        content(
            json!({"to": "15551234567", "reaction": {"message_id": id.to_string(), "emoji": ""}})
        ),
        Content::Reaction {
            target: id,
            emoji: String::new()
        },
        "an empty emoji removes the reaction"
    );
    assert!(
        parse(
            json!({"to": "15551234567", "reaction": {"message_id": id.to_string(), "emoji": "👨‍👩‍👧‍👦"}})
        )
        .is_ok()
    );
    assert_eq!(
        code(parse(
            json!({"to": "15551234567", "reaction": {"message_id": "3EB0ABC", "emoji": "👍"}})
        )),
        "invalid_message_id"
    );
    assert_eq!(
        code(parse(
            json!({"to": "15551234567", "reaction": {"message_id": id.to_string(), "emoji": "nice one"}})
        )),
        "invalid_emoji"
    );
}

#[test]
fn polls_have_2_to_12_distinct_options_and_a_sane_selectable_count() {
    assert_eq!(
        content(
            json!({"to": "15551234567", "poll": {"question": "Lunch?", "options": ["pizza", "sushi"]}})
        ),
        Content::Poll {
            question: "Lunch?".into(),
            options: vec!["pizza".into(), "sushi".into()],
            selectable_count: 1
        }
    );
    let poll = |options: Value, count: u32| {
        parse(
            json!({"to": "15551234567", "poll": {"question": "q", "options": options, "selectable_count": count}}),
        )
    };
    assert!(poll(json!(["a", "b", "c"]), 3).is_ok());
    assert_eq!(code(poll(json!(["a"]), 1)), "invalid_poll_options");
    let thirteen: Vec<String> = (0..13).map(|i| i.to_string()).collect();
    assert_eq!(code(poll(json!(thirteen), 1)), "invalid_poll_options");
    assert_eq!(code(poll(json!(["a", "a"]), 1)), "duplicate_poll_options");
    assert_eq!(code(poll(json!(["a", ""]), 1)), "empty_field");
    assert_eq!(code(poll(json!(["a", "b"]), 0)), "invalid_selectable_count");
    assert_eq!(code(poll(json!(["a", "b"]), 3)), "invalid_selectable_count");
    assert_eq!(
        code(parse(
            json!({"to": "15551234567", "poll": {"question": "", "options": ["a", "b"]}})
        )),
        "empty_field"
    );
}

#[test]
fn json_body_cap_leaves_room_for_the_base64_media() {
    let limits = Limits {
        max_media_bytes: 3 * 1024 * 1024,
    };
    assert!(limits.max_json_bytes() >= 4 * 1024 * 1024);
    assert!(limits.max_json_bytes() < 5 * 1024 * 1024);
}

#[test]
fn the_schema_states_the_limits_the_server_enforces() {
    use utoipa::PartialSchema;
    let schema = |s: utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>| {
        serde_json::to_value(s).unwrap()
    };
    let request = schema(SendMessageRequest::schema());
    assert!(request["properties"]["to"]["pattern"].is_string());
    assert_eq!(request["required"], json!(["to"]));
    let text = schema(TextPayload::schema());
    assert_eq!(text["properties"]["body"]["maxLength"], MAX_TEXT_CHARS);
    assert_eq!(text["properties"]["body"]["minLength"], 1);
    let location = schema(LocationPayload::schema());
    assert_eq!(location["properties"]["latitude"]["maximum"], 90.0);
    assert_eq!(location["properties"]["longitude"]["minimum"], -180.0);
    let contact = schema(ContactPayload::schema());
    assert_eq!(contact["properties"]["vcards"]["maxItems"], MAX_VCARDS);
    let poll = schema(PollPayload::schema());
    assert_eq!(poll["properties"]["options"]["minItems"], MIN_POLL_OPTIONS);
    assert_eq!(poll["properties"]["options"]["maxItems"], MAX_POLL_OPTIONS);
}

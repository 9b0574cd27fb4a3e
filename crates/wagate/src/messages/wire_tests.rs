use super::*;
use crate::messages::content::MediaSource;
use crate::messages::recipient::Recipient;

fn bob() -> Recipient {
    "15551234567".parse().unwrap()
}

fn group() -> Recipient {
    "120363025246125888@g.us".parse().unwrap()
}

fn upload() -> UploadedMedia {
    UploadedMedia {
        url: "https://mmg.whatsapp.net/v/t62/abc".into(),
        direct_path: "/v/t62/abc".into(),
        media_key: [1; 32],
        file_sha256: [2; 32],
        file_enc_sha256: [3; 32],
        file_length: 1234,
        media_key_timestamp: 1_700_000_000,
        streaming_sidecar: Some(vec![9, 9]),
        mimetype: "audio/ogg; codecs=opus".into(),
    }
}

fn outgoing(to: Recipient, content: Content) -> OutgoingMessage {
    OutgoingMessage {
        to,
        reply_to: None,
        content,
    }
}

fn media_content(kind: MediaKind, caption: Option<&str>, file_name: Option<&str>) -> Content {
    Content::Media {
        kind,
        source: MediaSource::Stored,
        caption: caption.map(str::to_string),
        file_name: file_name.map(str::to_string),
        mime_type: Some("x/y".into()),
    }
}

fn build_ok(message: &OutgoingMessage, context: &WireContext<'_>) -> Built {
    match build(message, context) {
        Ok(built) => built,
        Err(e) => panic!("build failed: {e}"),
    }
}

fn received(chat: Recipient, sender: Option<&str>) -> MessageRef {
    MessageRef {
        wa_id: "3EB0QUOTED".into(),
        chat,
        from_me: false,
        sender: sender.map(str::to_string),
    }
}

#[test]
fn plain_text_is_a_conversation() {
    let built = build_ok(
        &outgoing(
            bob(),
            Content::Text {
                body: "see https://example.com".into(),
                link_preview: false,
            },
        ),
        &WireContext::default(),
    );
    assert_eq!(
        built.message.conversation.as_deref(),
        Some("see https://example.com")
    );
    assert!(built.message.extended_text_message.is_unset());
    assert_eq!(built.message_secret, None);
}

#[test]
fn a_link_preview_marks_the_first_link() {
    let built = build_ok(
        &outgoing(
            bob(),
            Content::Text {
                body: "read (https://example.com/a?b=1), then http://x.org".into(),
                link_preview: true,
            },
        ),
        &WireContext::default(),
    );
    let ext = built.message.extended_text_message.as_option().unwrap();
    assert_eq!(
        ext.matched_text.as_deref(),
        Some("https://example.com/a?b=1")
    );
    assert_eq!(
        ext.text.as_deref(),
        Some("read (https://example.com/a?b=1), then http://x.org")
    );
    assert!(built.message.conversation.is_none());

    // Without a link there is nothing to preview.
    let plain = build_ok(
        &outgoing(
            bob(),
            Content::Text {
                body: "no links here".into(),
                link_preview: true,
            },
        ),
        &WireContext::default(),
    );
    assert_eq!(plain.message.conversation.as_deref(), Some("no links here"));
}

#[test]
fn first_link_ignores_non_links_and_trailing_punctuation() {
    assert_eq!(first_link("go to https://a.io."), Some("https://a.io"));
    assert_eq!(first_link("ftp://a.io and https://"), None);
    assert_eq!(first_link("x http://b.io/p!"), Some("http://b.io/p"));
}

#[test]
fn voice_is_audio_played_as_push_to_talk_with_the_upload() {
    let upload = upload();
    let context = WireContext {
        media: Some(&upload),
        ..Default::default()
    };
    let voice = build_ok(
        &outgoing(bob(), media_content(MediaKind::Voice, None, None)),
        &context,
    );
    let audio = voice.message.audio_message.as_option().unwrap();
    assert_eq!(audio.ptt, Some(true));
    assert_eq!(
        audio.url.as_deref(),
        Some("https://mmg.whatsapp.net/v/t62/abc")
    );
    assert_eq!(audio.direct_path.as_deref(), Some("/v/t62/abc"));
    assert_eq!(audio.media_key.as_deref(), Some([1u8; 32].as_slice()));
    assert_eq!(audio.file_sha256.as_deref(), Some([2u8; 32].as_slice()));
    assert_eq!(audio.file_enc_sha256.as_deref(), Some([3u8; 32].as_slice()));
    assert_eq!(audio.file_length, Some(1234));
    assert_eq!(audio.media_key_timestamp, Some(1_700_000_000));
    assert_eq!(audio.mimetype.as_deref(), Some("audio/ogg; codecs=opus"));
    assert_eq!(
        audio.streaming_sidecar.as_deref(),
        Some([9u8, 9].as_slice())
    );

    let plain = build_ok(
        &outgoing(bob(), media_content(MediaKind::Audio, None, None)),
        &context,
    );
    assert_eq!(
        plain.message.audio_message.as_option().unwrap().ptt,
        Some(false)
    );
}

#[test]
fn each_media_kind_fills_its_own_message() {
    let upload = upload();
    let context = WireContext {
        media: Some(&upload),
        ..Default::default()
    };
    let image = build_ok(
        &outgoing(bob(), media_content(MediaKind::Image, Some("cap"), None)),
        &context,
    );
    let image = image.message.image_message.as_option().unwrap();
    assert_eq!(image.caption.as_deref(), Some("cap"));
    assert_eq!(image.file_length, Some(1234));

    let video = build_ok(
        &outgoing(bob(), media_content(MediaKind::Video, Some("v"), None)),
        &context,
    );
    let video = video.message.video_message.as_option().unwrap();
    assert_eq!(video.caption.as_deref(), Some("v"));
    assert!(video.streaming_sidecar.is_some());

    let sticker = build_ok(
        &outgoing(bob(), media_content(MediaKind::Sticker, None, None)),
        &context,
    );
    assert_eq!(
        sticker
            .message
            .sticker_message
            .as_option()
            .unwrap()
            .direct_path
            .as_deref(),
        Some("/v/t62/abc")
    );

    let document = build_ok(
        &outgoing(
            bob(),
            media_content(MediaKind::Document, None, Some("a.pdf")),
        ),
        &context,
    );
    let document = document.message.document_message.as_option().unwrap();
    assert_eq!(document.file_name.as_deref(), Some("a.pdf"));
    assert_eq!(document.title.as_deref(), Some("a.pdf"));
}

#[test]
fn a_captioned_document_is_wrapped_and_a_reply_goes_inside() {
    let upload = upload();
    let mut message = outgoing(
        bob(),
        media_content(MediaKind::Document, Some("here"), None),
    );
    message.reply_to = Some(received(bob(), None));
    let built = build_ok(
        &message,
        &WireContext {
            media: Some(&upload),
            ..Default::default()
        },
    );
    assert!(built.message.document_message.is_unset());
    let wrapper = built
        .message
        .document_with_caption_message
        .as_option()
        .unwrap();
    let document = wrapper
        .message
        .as_option()
        .and_then(|m| m.document_message.as_option())
        .unwrap();
    assert_eq!(document.caption.as_deref(), Some("here"));
    assert_eq!(document.file_name.as_deref(), Some("file"));
    let quote = document.context_info.as_option().unwrap();
    assert_eq!(quote.stanza_id.as_deref(), Some("3EB0QUOTED"));
}

#[test]
fn media_without_its_upload_cannot_be_built() {
    assert_eq!(
        build(
            &outgoing(bob(), media_content(MediaKind::Image, None, None)),
            &WireContext::default()
        ),
        Err(WireError::MissingUpload)
    );
}

#[test]
fn a_reply_quotes_by_id_and_author() {
    let mut message = outgoing(
        group(),
        Content::Text {
            body: "agreed".into(),
            link_preview: false,
        },
    );
    message.reply_to = Some(received(group(), Some("15550001111:3@s.whatsapp.net")));
    let quoted = wa::Message::text("shall we?");
    let built = build_ok(
        &message,
        &WireContext {
            quoted: Some(&quoted),
            ..Default::default()
        },
    );
    // A quote needs a context, so the text becomes an extended text.
    assert!(built.message.conversation.is_none());
    let ext = built.message.extended_text_message.as_option().unwrap();
    assert_eq!(ext.text.as_deref(), Some("agreed"));
    let quote = ext.context_info.as_option().unwrap();
    assert_eq!(quote.stanza_id.as_deref(), Some("3EB0QUOTED"));
    assert_eq!(
        quote.participant.as_deref(),
        Some("15550001111@s.whatsapp.net")
    );
    assert_eq!(quote.remote_jid, None, "same chat");
    assert_eq!(
        quote
            .quoted_message
            .as_option()
            .and_then(|m| m.conversation.as_deref()),
        Some("shall we?")
    );
}

#[test]
fn a_reply_without_the_quoted_copy_still_names_id_author_and_other_chat() {
    let mut message = outgoing(
        bob(),
        Content::Text {
            body: "re".into(),
            link_preview: false,
        },
    );
    message.reply_to = Some(received(group(), Some("15550001111@s.whatsapp.net")));
    let built = build_ok(&message, &WireContext::default());
    let quote = built
        .message
        .extended_text_message
        .as_option()
        .and_then(|e| e.context_info.as_option())
        .unwrap();
    assert_eq!(quote.stanza_id.as_deref(), Some("3EB0QUOTED"));
    assert_eq!(quote.remote_jid.as_deref(), Some("120363025246125888@g.us"));
    assert!(quote.quoted_message.is_unset());
}

#[test]
fn the_author_of_a_quote_defaults_to_the_chat_or_to_us() {
    let text = Content::Text {
        body: "re".into(),
        link_preview: false,
    };
    let participant = |built: Built| {
        built
            .message
            .extended_text_message
            .as_option()
            .and_then(|e| e.context_info.as_option())
            .and_then(|c| c.participant.clone())
    };

    let mut dm = outgoing(bob(), text.clone());
    dm.reply_to = Some(received(bob(), None));
    assert_eq!(
        participant(build_ok(&dm, &WireContext::default())),
        Some("15551234567@s.whatsapp.net".into())
    );

    let own: Jid = "15559990000:7@s.whatsapp.net".parse().unwrap();
    dm.reply_to = Some(MessageRef {
        from_me: true,
        ..received(bob(), None)
    });
    assert_eq!(
        build(&dm, &WireContext::default()),
        Err(WireError::UnknownSender)
    );
    assert_eq!(
        participant(build_ok(
            &dm,
            &WireContext {
                own_jid: Some(&own),
                ..Default::default()
            }
        )),
        Some("15559990000@s.whatsapp.net".into())
    );

    let mut in_group = outgoing(group(), text);
    in_group.reply_to = Some(received(group(), None));
    assert_eq!(
        build(&in_group, &WireContext::default()),
        Err(WireError::UnknownSender)
    );
}

#[test]
fn a_reaction_keys_its_target_naming_the_author_only_in_groups() {
    let dm = build_ok(
        &outgoing(
            bob(),
            Content::Reaction {
                target: received(bob(), None),
                emoji: "👍".into(),
            },
        ),
        &WireContext::default(),
    );
    let reaction = dm.message.reaction_message.as_option().unwrap();
    assert_eq!(reaction.text.as_deref(), Some("👍"));
    assert!(reaction.sender_timestamp_ms.is_some_and(|t| t > 0));
    let key = reaction.key.as_option().unwrap();
    assert_eq!(
        key.remote_jid.as_deref(),
        Some("15551234567@s.whatsapp.net")
    );
    assert_eq!(key.from_me, Some(false));
    assert_eq!(key.id.as_deref(), Some("3EB0QUOTED"));
    assert_eq!(key.participant, None);

    let key = reaction_key(&received(group(), Some("15550001111:2@s.whatsapp.net"))).unwrap();
    assert_eq!(
        key.participant.as_deref(),
        Some("15550001111@s.whatsapp.net")
    );
    let own = reaction_key(&MessageRef {
        from_me: true,
        ..received(group(), None)
    })
    .unwrap();
    assert_eq!(own.participant, None);
    assert_eq!(own.from_me, Some(true));
    assert_eq!(
        reaction_key(&received(group(), None)),
        Err(WireError::UnknownSender)
    );
    assert_eq!(
        reaction_key(&received(group(), Some("not a jid @@"))),
        Err(WireError::InvalidSender)
    );
}

#[test]
fn an_empty_reaction_removes() {
    let built = build_ok(
        &outgoing(
            bob(),
            Content::Reaction {
                target: received(bob(), None),
                emoji: String::new(),
            },
        ),
        &WireContext::default(),
    );
    assert_eq!(
        built
            .message
            .reaction_message
            .as_option()
            .and_then(|r| r.text.as_deref()),
        Some("")
    );
}

#[test]
fn a_location_carries_coordinates_name_and_address() {
    let built = build_ok(
        &outgoing(
            bob(),
            Content::Location {
                latitude: -33.85,
                longitude: 151.21,
                name: Some("Opera House".into()),
                address: None,
            },
        ),
        &WireContext::default(),
    );
    let location = built.message.location_message.as_option().unwrap();
    assert_eq!(location.degrees_latitude, Some(-33.85));
    assert_eq!(location.degrees_longitude, Some(151.21));
    assert_eq!(location.name.as_deref(), Some("Opera House"));
    assert_eq!(location.address, None);
}

#[test]
fn one_vcard_is_a_contact_several_are_an_array() {
    let ada = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Ada Lovelace\r\nEND:VCARD".to_string();
    let bob = "BEGIN:VCARD\nN:;;;;\nEND:VCARD".to_string();
    let one = build_ok(
        &outgoing(
            self::bob(),
            Content::Contacts {
                vcards: vec![ada.clone()],
            },
        ),
        &WireContext::default(),
    );
    let contact = one.message.contact_message.as_option().unwrap();
    assert_eq!(contact.display_name.as_deref(), Some("Ada Lovelace"));
    assert_eq!(contact.vcard.as_deref(), Some(ada.as_str()));

    let two = build_ok(
        &outgoing(
            self::bob(),
            Content::Contacts {
                vcards: vec![ada, bob],
            },
        ),
        &WireContext::default(),
    );
    assert!(two.message.contact_message.is_unset());
    let array = two.message.contacts_array_message.as_option().unwrap();
    assert_eq!(array.display_name.as_deref(), Some("2 contacts"));
    let names: Vec<_> = array
        .contacts
        .iter()
        .map(|c| c.display_name.as_deref())
        .collect();
    assert_eq!(names, [Some("Ada Lovelace"), Some("Contact")]);
}

#[test]
fn vcard_names_are_unfolded_unescaped_and_may_have_parameters() {
    assert_eq!(
        vcard_display_name("BEGIN:VCARD\nFN;CHARSET=UTF-8:Doe\\, Jane\nEND:VCARD").as_deref(),
        Some("Doe, Jane")
    );
    assert_eq!(
        vcard_display_name("BEGIN:VCARD\r\nitem1.fn:Long\r\n  Name\r\nEND:VCARD").as_deref(),
        Some("Long Name")
    );
    assert_eq!(vcard_display_name("BEGIN:VCARD\nFN:\nEND:VCARD"), None);
}

#[test]
fn a_poll_carries_its_options_and_a_fresh_secret() {
    let content = |count| Content::Poll {
        question: "Lunch?".into(),
        options: vec!["pizza".into(), "sushi".into(), "salad".into()],
        selectable_count: count,
    };
    let single = build_ok(&outgoing(bob(), content(1)), &WireContext::default());
    assert!(single.message.poll_creation_message.is_unset());
    let poll = single.message.poll_creation_message_v3.as_option().unwrap();
    assert_eq!(poll.name.as_deref(), Some("Lunch?"));
    let options: Vec<_> = poll
        .options
        .iter()
        .map(|o| o.option_name.as_deref())
        .collect();
    assert_eq!(options, [Some("pizza"), Some("sushi"), Some("salad")]);
    assert_eq!(poll.selectable_options_count, Some(1));
    let secret = single.message_secret.unwrap();
    assert_eq!(
        single
            .message
            .message_context_info
            .as_option()
            .and_then(|c| c.message_secret.as_deref()),
        Some(secret.as_slice())
    );

    let multi = build_ok(&outgoing(bob(), content(2)), &WireContext::default());
    assert!(multi.message.poll_creation_message_v3.is_unset());
    assert_eq!(
        multi
            .message
            .poll_creation_message
            .as_option()
            .and_then(|p| p.selectable_options_count),
        Some(2)
    );
    assert_ne!(
        multi.message_secret,
        Some(secret),
        "each poll its own secret"
    );
}

#[test]
fn an_edit_is_the_new_text() {
    assert_eq!(edit_text("fixed").conversation.as_deref(), Some("fixed"));
}

fn own(chat: Recipient) -> MessageRef {
    MessageRef {
        wa_id: "3EB0MINE".into(),
        chat,
        from_me: true,
        sender: None,
    }
}

#[test]
fn an_edit_names_its_message_and_carries_the_new_text() {
    use whatsapp_rust::waproto::whatsapp::message::protocol_message::Type;
    let built = build_ok(
        &outgoing(
            bob(),
            Content::Edit {
                target: own(bob()),
                body: "see you at 6".into(),
            },
        ),
        &WireContext::default(),
    );
    let protocol = built.message.protocol_message.as_option();
    assert_eq!(protocol.and_then(|p| p.r#type), Some(Type::MessageEdit));
    let key = protocol.and_then(|p| p.key.as_option());
    assert_eq!(key.and_then(|k| k.id.as_deref()), Some("3EB0MINE"));
    assert_eq!(key.and_then(|k| k.from_me), Some(true));
    assert_eq!(key.and_then(|k| k.participant.as_deref()), None);
    assert_eq!(
        protocol
            .and_then(|p| p.edited_message.as_option())
            .and_then(|m| m.conversation.as_deref()),
        Some("see you at 6")
    );
    assert!(protocol.and_then(|p| p.timestamp_ms).is_some());
    assert_eq!(
        whatsapp_rust::wacore::types::message::EditAttribute::infer_from_message(&built.message),
        Some(whatsapp_rust::wacore::types::message::EditAttribute::MessageEdit),
        "the stanza's edit attribute follows from the content"
    );

    // In a group the edit names its author: this account.
    let in_group = outgoing(
        group(),
        Content::Edit {
            target: own(group()),
            body: "x".into(),
        },
    );
    assert_eq!(
        build(&in_group, &WireContext::default()).err(),
        Some(WireError::UnknownSender)
    );
    let me: Jid = "15550001111:3@s.whatsapp.net".parse().unwrap();
    let built = build_ok(
        &in_group,
        &WireContext {
            own_jid: Some(&me),
            ..WireContext::default()
        },
    );
    assert_eq!(
        built
            .message
            .protocol_message
            .as_option()
            .and_then(|p| p.key.as_option())
            .and_then(|k| k.participant.as_deref()),
        Some("15550001111@s.whatsapp.net")
    );
}

#[test]
fn a_revoke_is_the_senders_own_delete() {
    use whatsapp_rust::waproto::whatsapp::message::protocol_message::Type;
    let built = build_ok(
        &outgoing(
            group(),
            Content::Revoke {
                target: own(group()),
            },
        ),
        &WireContext::default(),
    );
    let protocol = built.message.protocol_message.as_option();
    assert_eq!(protocol.and_then(|p| p.r#type), Some(Type::Revoke));
    let key = protocol.and_then(|p| p.key.as_option());
    assert_eq!(key.and_then(|k| k.id.as_deref()), Some("3EB0MINE"));
    assert_eq!(key.and_then(|k| k.from_me), Some(true));
    assert_eq!(key.and_then(|k| k.participant.as_deref()), None);
    assert_eq!(
        whatsapp_rust::wacore::types::message::EditAttribute::infer_from_message(&built.message),
        Some(whatsapp_rust::wacore::types::message::EditAttribute::SenderRevoke)
    );
}

use whatsapp_rust::buffa::MessageField;
use whatsapp_rust::wacore::proto_helpers::build_reaction_message;

use super::*;

fn text(body: &str) -> wa::Message {
    wa::Message {
        conversation: Some(body.into()),
        ..Default::default()
    }
}

#[test]
fn text_inside_wrappers_is_text() {
    let wrapped = wa::Message {
        device_sent_message: MessageField::some(wa::message::DeviceSentMessage {
            destination_jid: Some("15551234567@s.whatsapp.net".into()),
            message: MessageField::some(wa::Message {
                ephemeral_message: MessageField::some(wa::message::FutureProofMessage {
                    message: MessageField::some(text("hi")),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let (content, media) = decode(&wrapped).unwrap();
    assert_eq!(content, IncomingContent::Text { body: "hi".into() });
    assert!(media.is_none());
}

#[test]
fn a_voice_note_is_voice_media_with_its_reference() {
    let m = wa::Message {
        audio_message: MessageField::some(wa::message::AudioMessage {
            ptt: Some(true),
            mimetype: Some("audio/ogg; codecs=opus".into()),
            seconds: Some(3),
            direct_path: Some("/v/t62/abc.enc".into()),
            media_key: Some(vec![1; 32]),
            file_sha256: Some(vec![2; 32]),
            file_enc_sha256: Some(vec![3; 32]),
            file_length: Some(1234),
            ..Default::default()
        }),
        ..Default::default()
    };
    let (content, media) = decode(&m).unwrap();
    assert_eq!(content.kind(), "voice");
    let json = serde_json::to_value(&content).unwrap();
    assert_eq!(json["type"], "media");
    assert_eq!(json["kind"], "voice");
    assert_eq!(json["seconds"], 3);
    assert_eq!(json["size"], 1234);
    assert_eq!(json["sha256"], hex::encode([2; 32]));
    let media = media.unwrap();
    assert_eq!(media.kind, MediaKind::Voice);
    assert_eq!(media.direct_path, "/v/t62/abc.enc");
    assert!(
        !format!("{media:?}").contains(&hex::encode([1; 32])),
        "the key is not logged"
    );
}

#[test]
fn media_without_a_complete_reference_is_kept_without_download() {
    let m = wa::Message {
        image_message: MessageField::some(wa::message::ImageMessage {
            caption: Some("look".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let (content, media) = decode(&m).unwrap();
    assert_eq!(content.kind(), "image");
    assert!(media.is_none());
}

#[test]
fn reactions_edits_and_revokes_name_their_target() {
    let key = wa::MessageKey {
        id: Some("3EB0TARGET".into()),
        from_me: Some(true),
        remote_jid: Some("15551234567@s.whatsapp.net".into()),
        participant: None,
    };
    let (reaction, _) = decode(&build_reaction_message(key.clone(), "👍", 0)).unwrap();
    assert_eq!(reaction.kind(), "reaction");
    assert_eq!(
        reaction.target().map(|t| (t.wa_id.as_str(), t.from_me)),
        Some(("3EB0TARGET", true))
    );

    let edit = wa::Message {
        protocol_message: MessageField::some(wa::message::ProtocolMessage {
            key: MessageField::some(key.clone()),
            r#type: Some(ProtocolType::MessageEdit),
            edited_message: MessageField::some(text("fixed")),
            ..Default::default()
        }),
        ..Default::default()
    };
    let (edit, _) = decode(&edit).unwrap();
    assert_eq!(edit.kind(), "edit");
    assert!(
        matches!(edit, IncomingContent::Edit { ref body, .. } if body.as_deref() == Some("fixed"))
    );

    let revoke = wa::Message {
        protocol_message: MessageField::some(wa::message::ProtocolMessage {
            key: MessageField::some(key),
            r#type: Some(ProtocolType::Revoke),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(decode(&revoke).map(|(c, _)| c.kind()), Some("revoke"));
}

#[test]
fn a_poll_vote_names_its_poll_and_keeps_its_cipher_for_later() {
    let key = wa::MessageKey {
        id: Some("3EB0POLL".into()),
        from_me: Some(false),
        remote_jid: Some("15551234567@s.whatsapp.net".into()),
        participant: None,
    };
    let vote = wa::Message {
        poll_update_message: MessageField::some(wa::message::PollUpdateMessage {
            poll_creation_message_key: MessageField::some(key),
            vote: MessageField::some(wa::message::PollEncValue {
                enc_payload: Some(vec![1, 2, 3]),
                enc_iv: Some(vec![4; 12]),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let (content, media) = decode(&vote).unwrap();
    assert!(media.is_none());
    assert_eq!(content.kind(), "poll_vote");
    assert!(matches!(
        content,
        IncomingContent::PollVote { ref target, selected_options: None } if target.wa_id == "3EB0POLL"
    ));
    let cipher = poll_vote_cipher(&vote).unwrap();
    assert_eq!(
        (cipher.enc_payload, cipher.enc_iv),
        (&[1, 2, 3][..], &[4; 12][..])
    );
    assert!(poll_vote_cipher(&text("hi")).is_none());
}

#[test]
fn a_vote_names_options_by_their_hash_and_refuses_a_stranger() {
    use whatsapp_rust::wacore::poll::compute_option_hash;
    let options = ["north".to_string(), "south".to_string(), "east".to_string()];
    let hash = |name: &str| compute_option_hash(name).to_vec();
    assert_eq!(
        chosen_options(&options, &[hash("east"), hash("north")]),
        Some(vec!["east".to_string(), "north".to_string()])
    );
    assert_eq!(chosen_options(&options, &[]), Some(vec![]));
    assert_eq!(chosen_options(&options, &[hash("west")]), None);
}

#[test]
fn protocol_chatter_is_not_a_message() {
    let key_share = wa::Message {
        protocol_message: MessageField::some(wa::message::ProtocolMessage {
            r#type: Some(ProtocolType::AppStateSyncKeyShare),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert!(decode(&key_share).is_none());
    assert!(decode(&wa::Message::default()).is_none());
}

#[test]
fn a_reply_names_the_quoted_message() {
    let m = wa::Message {
        extended_text_message: MessageField::some(wa::message::ExtendedTextMessage {
            text: Some("yes".into()),
            context_info: MessageField::some(wa::ContextInfo {
                stanza_id: Some("3EB0AA".into()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(reply_to(&m).as_deref(), Some("3EB0AA"));
    assert_eq!(
        decode(&m).map(|(c, _)| c),
        Some(IncomingContent::Text { body: "yes".into() })
    );
}

#[test]
fn debug_never_shows_the_body() {
    let content = IncomingContent::Text {
        body: "the secret plan".into(),
    };
    assert!(!format!("{content:?}").contains("secret"));
}

#[test]
fn a_target_is_ours_when_the_key_says_so_from_the_senders_side() {
    let mut target = Target {
        wa_id: "X".into(),
        from_me: false,
        message_id: None,
        key: TargetKey {
            from_me: true,
            participant: None,
        },
    };
    // Someone reacts to their own message: not ours.
    target.resolve_author(false, |_| false);
    assert!(!target.from_me);
    // We react (from the phone) to our own message: ours.
    target.resolve_author(true, |_| false);
    assert!(target.from_me);
    // Someone reacts to a message that is not theirs in a one-to-one chat:
    // ours; in a group, ours only if the participant is us.
    target.key.from_me = false;
    target.resolve_author(false, |_| false);
    assert!(target.from_me);
    target.key.participant = Some("15550001111:3@s.whatsapp.net".into());
    target.resolve_author(false, |user| user == "15550001111");
    assert!(target.from_me);
    target.resolve_author(false, |user| user == "15559999999");
    assert!(!target.from_me);
}

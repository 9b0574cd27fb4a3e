//! Receiving: what a phone sends to a linked session becomes one stored
//! message and one event each; media downloads; the realtime socket
//! resumes from the event log.

use reqwest::Method;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use wasim::{Attachment, AttachmentKind};
use whatsapp_rust::buffa::MessageField;
use whatsapp_rust::wacore::proto_helpers::build_reaction_message;
use whatsapp_rust::waproto::whatsapp as wa;
use whatsapp_rust::waproto::whatsapp::message::protocol_message::Type as ProtocolType;

use crate::helpers::*;
use crate::messaging::send;

/// The linked number.
const ALICE: &str = "15550003333";
/// Someone who writes to it.
const BOB: &str = "15550004444";

const INCOMING: [&str; 5] = [
    "message.received",
    "message.reaction",
    "message.poll_vote",
    "message.edited",
    "message.revoked",
];

impl Events {
    /// The next incoming-message event of `session` about WhatsApp id
    /// `wa_id`.
    pub(crate) async fn incoming(&mut self, session: &str, wa_id: &str) -> Value {
        self.wait(&format!("incoming {wa_id}"), session, |e| {
            INCOMING.contains(&e["event"].as_str().unwrap_or_default())
                && e["data"]["wa_id"] == wa_id
        })
        .await
    }
}

fn jid(phone: &str) -> String {
    format!("{phone}@s.whatsapp.net")
}

fn key_of(id: &str, chat: &str, from_me: bool) -> wa::MessageKey {
    wa::MessageKey {
        remote_jid: Some(chat.into()),
        from_me: Some(from_me),
        id: Some(id.into()),
        participant: None,
    }
}

fn text(body: &str) -> wa::Message {
    wa::Message {
        conversation: Some(body.into()),
        ..Default::default()
    }
}

fn protocol(kind: ProtocolType, key: wa::MessageKey, edited: Option<wa::Message>) -> wa::Message {
    wa::Message {
        protocol_message: MessageField::some(wa::message::ProtocolMessage {
            key: MessageField::some(key),
            r#type: Some(kind),
            edited_message: edited.map(MessageField::some).unwrap_or_default(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn poll_message(question: &str, options: &[&str]) -> wa::Message {
    wa::Message {
        poll_creation_message_v3: MessageField::some(wa::message::PollCreationMessage {
            name: Some(question.into()),
            options: options
                .iter()
                .map(|o| wa::message::poll_creation_message::Option {
                    option_name: Some((*o).into()),
                    ..Default::default()
                })
                .collect(),
            selectable_options_count: Some(1),
            ..Default::default()
        }),
        // Those it goes to derive their vote keys from it.
        message_context_info: MessageField::some(wa::MessageContextInfo {
            message_secret: Some(vec![7; 32]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn attachment(kind: AttachmentKind, mimetype: &str, len: usize) -> Attachment {
    Attachment {
        kind,
        // Not all one byte: a decryption slip would show.
        bytes: (0..len).map(|i| (i * 7 % 251) as u8).collect(),
        mimetype: mimetype.into(),
        caption: matches!(
            kind,
            AttachmentKind::Image | AttachmentKind::Video | AttachmentKind::Document
        )
        .then(|| format!("a {kind:?}")),
        file_name: (kind == AttachmentKind::Document).then(|| "report.pdf".into()),
    }
}

async fn media(gateway: &Gateway, session: &str, message: &str) -> (u16, String, Vec<u8>) {
    let response = gateway
        .http
        .get(format!(
            "{}/sessions/{session}/messages/{message}/media",
            gateway.base
        ))
        .bearer_auth(&gateway.token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let bytes = response.bytes().await.unwrap_or_default().to_vec();
    (status, content_type, bytes)
}

/// Group chats: what a member sends reaches the linked number as one event,
/// named by the group, from that member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_message_is_one_event_from_its_member() {
    const CAROL: &str = "15550005555";
    let (sim, _dir, gateway, mut events) = world(Limits::default()).await;
    let session = link_by_qr(&gateway, &mut events, &sim, ALICE).await;
    let phones = sim.handle();
    for phone in [BOB, CAROL] {
        phones
            .register_phone(phone)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let group = phones
        .create_group(&[ALICE, BOB, CAROL])
        .unwrap_or_else(|e| panic!("{e}"));

    let mut ids = Vec::new();
    for (from, body) in [(BOB, "hello team"), (CAROL, "hi"), (BOB, "again")] {
        let id = phones
            .phone_send_group(from, &group, text(body))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let event = events.incoming(&session, &id).await;
        assert_eq!(event["event"], "message.received", "{event}");
        let data = &event["data"];
        assert_eq!(data["chat"], group.as_str(), "{data}");
        assert_eq!(data["sender"]["phone"], from, "{data}");
        assert_eq!(data["from_me"], false, "{data}");
        assert_eq!(
            data["content"],
            serde_json::json!({"type": "text", "body": body})
        );
        ids.push((
            id,
            data["message_id"].as_str().unwrap_or_default().to_string(),
        ));
    }

    // A member reacts to another member's message: the target names its
    // author, and points at the gateway's copy.
    let (hello, hello_id) = &ids[0];
    let mut key = key_of(hello, &group, false);
    key.participant = Some(jid(BOB));
    let id = phones
        .phone_send_group(CAROL, &group, build_reaction_message(key, "🎉", 1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let event = events.incoming(&session, &id).await;
    assert_eq!(event["event"], "message.reaction", "{event}");
    let target = &event["data"]["content"]["target"];
    assert_eq!(target["message_id"], hello_id.as_str(), "{event}");
    assert_eq!(target["from_me"], false, "{event}");
    assert_eq!(event["data"]["chat"], group.as_str(), "{event}");
}

/// A poll the gateway sent, voted on by the phone it went to, and one it
/// received, voted on from its own phone: each vote is
/// one `message.poll_vote` naming the options chosen, opened with the
/// poll's secret, pointing at the gateway's poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn votes_on_polls_arrive_opened_and_named() {
    let (sim, _dir, gateway, mut events) = world(Limits::default()).await;
    let session = link_by_qr(&gateway, &mut events, &sim, ALICE).await;
    let phones = sim.handle();
    phones.register_phone(BOB).unwrap_or_else(|e| panic!("{e}"));

    let (status, poll) = send(
        &gateway,
        &session,
        serde_json::json!({ "to": BOB, "poll": {
            "question": "Where <b>to</b>?",
            "options": ["north", "south", "east"],
            "selectable_count": 2,
        } }),
    )
    .await;
    assert_eq!(status, 202, "{poll}");
    let poll_id = poll["id"].as_str().unwrap_or_default().to_string();
    let poll_wa = poll["wa_id"].as_str().unwrap_or_default().to_string();
    phones
        .wait_phone_message(BOB, WAIT, |m| m.id == poll_wa)
        .await
        .unwrap_or_else(|| panic!("{BOB} never got the poll"));

    // Two options, then a change of mind, then the vote taken back.
    for chosen in [&["south", "east"][..], &["north"], &[]] {
        let vote = phones
            .phone_vote(BOB, &poll_wa, chosen)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let event = events.incoming(&session, &vote).await;
        assert_eq!(event["event"], "message.poll_vote", "{event}");
        let data = &event["data"];
        assert_eq!(data["kind"], "poll_vote", "{data}");
        assert_eq!(data["sender"]["phone"], BOB, "{data}");
        assert_eq!(
            data["content"]["selected_options"],
            serde_json::json!(chosen),
            "{data}"
        );
        let target = &data["content"]["target"];
        assert_eq!(target["wa_id"], poll_wa.as_str(), "{data}");
        assert_eq!(target["message_id"], poll_id.as_str(), "{data}");
        assert_eq!(target["from_me"], true, "{data}");
    }

    // A poll someone sent this number, voted on from this number's own
    // phone: the copy reaches the session, which opens it with the secret
    // the poll came with.
    let lunch = phones
        .phone_send_message(BOB, ALICE, poll_message("Lunch?", &["yes", "no"]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let received = events.incoming(&session, &lunch).await;
    let lunch_id = received["data"]["message_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    phones
        .wait_phone_message(ALICE, WAIT, |m| m.id == lunch)
        .await
        .unwrap_or_else(|| panic!("{ALICE}'s phone never got the poll"));
    let vote = phones
        .phone_vote(ALICE, &lunch, &["no"])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let event = events.incoming(&session, &vote).await;
    let data = &event["data"];
    assert_eq!(event["event"], "message.poll_vote", "{event}");
    assert_eq!(data["from_me"], true, "{data}");
    assert_eq!(
        data["content"]["selected_options"],
        serde_json::json!(["no"]),
        "{data}"
    );
    assert_eq!(
        data["content"]["target"]["message_id"],
        lunch_id.as_str(),
        "{data}"
    );
    assert_eq!(data["content"]["target"]["from_me"], false, "{data}");

    // The votes are in the message list too, as this session received them.
    let (status, listed) = gateway
        .call(
            Method::GET,
            &format!("/sessions/{session}/messages?direction=incoming"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{listed}");
    let votes = listed["data"]
        .as_array()
        .map(|items| items.iter().filter(|m| m["kind"] == "poll_vote").count())
        .unwrap_or_default();
    assert_eq!(votes, 4, "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_a_phone_sends_is_one_event_with_its_content() {
    let (sim, _dir, gateway, mut events) = world(Limits::default()).await;
    let session = link_by_qr(&gateway, &mut events, &sim, ALICE).await;
    let phones = sim.handle();
    phones.register_phone(BOB).unwrap_or_else(|e| panic!("{e}"));

    // Text.
    let hello = phones
        .phone_send_text(BOB, ALICE, "hello <b>gateway</b>")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let event = events.incoming(&session, &hello).await;
    assert_eq!(event["event"], "message.received");
    let data = &event["data"];
    assert_eq!(data["kind"], "text");
    assert_eq!(
        data["content"],
        serde_json::json!({"type": "text", "body": "hello <b>gateway</b>"})
    );
    assert_eq!(data["chat"], jid(BOB));
    assert_eq!(data["sender"]["phone"], BOB);
    assert_eq!(data["from_me"], false);
    assert!(data["timestamp"].is_string(), "{data}");
    let hello_id = data["message_id"].as_str().unwrap_or_default().to_string();

    // Every attachment kind, downloadable byte for byte.
    let kinds = [
        (AttachmentKind::Image, "image", "image/jpeg"),
        (AttachmentKind::Video, "video", "video/mp4"),
        (AttachmentKind::Audio, "audio", "audio/mpeg"),
        (AttachmentKind::Voice, "voice", "audio/ogg; codecs=opus"),
        (AttachmentKind::Document, "document", "application/pdf"),
        (AttachmentKind::Sticker, "sticker", "image/webp"),
    ];
    let mut downloads = Vec::new();
    for (kind, name, mimetype) in kinds {
        let file = attachment(kind, mimetype, 70_000);
        let sent = phones
            .phone_send_media(BOB, ALICE, &file)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let event = events.incoming(&session, &sent.id).await;
        let data = &event["data"];
        assert_eq!(data["kind"], name, "{data}");
        assert_eq!(data["content"]["type"], "media", "{data}");
        assert_eq!(data["content"]["kind"], name, "{data}");
        assert_eq!(data["content"]["mime_type"], mimetype, "{data}");
        assert_eq!(data["content"]["size"], 70_000, "{data}");
        assert_eq!(
            data["content"]["caption"].as_str(),
            file.caption.as_deref(),
            "{data}"
        );
        let id = data["message_id"].as_str().unwrap_or_default().to_string();
        downloads.push((id, file, sent.direct_path, mimetype));
    }
    let (image_id, image, _, _) = &downloads[0];
    let (status, content_type, bytes) = media(&gateway, &session, image_id).await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "image/jpeg");
    assert!(bytes == image.bytes, "the image arrives byte for byte");
    let (doc_id, doc, _, _) = &downloads[4];
    let (status, content_type, bytes) = media(&gateway, &session, doc_id).await;
    assert_eq!((status, content_type.as_str()), (200, "application/pdf"));
    assert!(bytes == doc.bytes);

    // Location, contacts, poll.
    let location = wa::Message {
        location_message: MessageField::some(wa::message::LocationMessage {
            degrees_latitude: Some(-6.2),
            degrees_longitude: Some(106.8),
            name: Some("Monas".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let vcard = "BEGIN:VCARD\nVERSION:3.0\nFN:Carol\nTEL:+15550005555\nEND:VCARD";
    let contact = wa::Message {
        contact_message: MessageField::some(wa::message::ContactMessage {
            display_name: Some("Carol".into()),
            vcard: Some(vcard.into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let poll = poll_message("Lunch?", &["yes", "no"]);
    for (message, check) in [
        (
            location,
            serde_json::json!({"type": "location", "latitude": -6.2, "longitude": 106.8, "name": "Monas", "address": null}),
        ),
        (
            contact,
            serde_json::json!({"type": "contacts", "vcards": [vcard]}),
        ),
        (
            poll,
            serde_json::json!({"type": "poll", "question": "Lunch?", "options": ["yes", "no"], "selectable_count": 1}),
        ),
    ] {
        let id = phones
            .phone_send_message(BOB, ALICE, message)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let event = events.incoming(&session, &id).await;
        assert_eq!(event["event"], "message.received");
        assert_eq!(event["data"]["content"], check);
    }

    // A reaction, an edit and a revoke of the first text, each its own
    // event pointing at the gateway's copy.
    let chat = jid(ALICE);
    let reaction = build_reaction_message(key_of(&hello, &chat, true), "👍", 1);
    let id = phones
        .phone_send_message(BOB, ALICE, reaction)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let event = events.incoming(&session, &id).await;
    assert_eq!(event["event"], "message.reaction");
    assert_eq!(event["data"]["content"]["emoji"], "👍");
    assert_eq!(event["data"]["content"]["target"]["wa_id"], hello.as_str());
    assert_eq!(
        event["data"]["content"]["target"]["message_id"],
        hello_id.as_str()
    );
    assert_eq!(event["data"]["content"]["target"]["from_me"], false);

    let edit = protocol(
        ProtocolType::MessageEdit,
        key_of(&hello, &chat, true),
        Some(text("hello, edited")),
    );
    let id = phones
        .phone_send_message(BOB, ALICE, edit)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let event = events.incoming(&session, &id).await;
    assert_eq!(event["event"], "message.edited");
    assert_eq!(event["data"]["content"]["body"], "hello, edited");
    assert_eq!(
        event["data"]["content"]["target"]["message_id"],
        hello_id.as_str()
    );

    let revoke = protocol(ProtocolType::Revoke, key_of(&hello, &chat, true), None);
    let id = phones
        .phone_send_message(BOB, ALICE, revoke)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let event = events.incoming(&session, &id).await;
    assert_eq!(event["event"], "message.revoked");
    assert_eq!(event["data"]["content"]["target"]["wa_id"], hello.as_str());

    // The same message again under its id (as after a lost ack): no new
    // event. The marker sent after it arrives after it, so if the
    // redelivery had made an event, it would come first.
    phones
        .phone_resend_message(BOB, ALICE, &hello, text("hello <b>gateway</b>"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let marker = phones
        .phone_send_text(BOB, ALICE, "marker")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let next = events
        .wait("the marker", &session, |e| {
            INCOMING.contains(&e["event"].as_str().unwrap_or_default())
        })
        .await;
    assert_eq!(
        next["data"]["wa_id"],
        marker.as_str(),
        "no second event for a redelivery"
    );

    // What the linked number sends from its own phone is recorded too,
    // as from_me, in the chat with the recipient.
    let mine = phones
        .phone_send_text(ALICE, BOB, "sent from the phone")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let event = events.incoming(&session, &mine).await;
    assert_eq!(event["data"]["from_me"], true);
    assert_eq!(event["data"]["chat"], jid(BOB));
    assert_eq!(event["data"]["content"]["body"], "sent from the phone");

    // The list shows them, incoming, with their content, once each.
    let (status, list) = gateway
        .call(
            Method::GET,
            &format!("/sessions/{session}/messages?direction=incoming&limit=100"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{list}");
    let rows = list["data"].as_array().cloned().unwrap_or_default();
    // text, 6 media, location, contact, poll, reaction, edit, revoke,
    // marker, from_me.
    assert_eq!(rows.len(), 15, "{list}");
    assert!(rows.iter().all(|r| r["direction"] == "incoming"));
    let first = rows
        .iter()
        .find(|r| r["wa_id"] == hello.as_str())
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(first["content"]["body"], "hello <b>gateway</b>");
    assert_eq!(first["sender"]["phone"], BOB);
    assert_eq!(first["from_me"], false);
    let (_, outgoing) = gateway
        .call(
            Method::GET,
            &format!("/sessions/{session}/messages?direction=outgoing"),
            None,
        )
        .await;
    assert_eq!(outgoing["data"], serde_json::json!([]));

    // WhatsApp forgot the video: a clear 410. Not media: 404.
    let (video_id, _, video_path, _) = &downloads[1];
    assert!(phones.expire_media(video_path));
    let (status, _, body) = media(&gateway, &session, video_id).await;
    assert_eq!(status, 410, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("media_expired"));
    let (status, _, body) = media(&gateway, &session, &hello_id).await;
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("no_media"));

    // Stopped: what is cached still downloads; what is not cannot.
    let (status, _) = gateway
        .call(Method::POST, &format!("/sessions/{session}/stop"), None)
        .await;
    assert_eq!(status, 200);
    let (status, _, bytes) = media(&gateway, &session, image_id).await;
    assert_eq!(status, 200);
    assert!(bytes == image.bytes);
    let (audio_id, _, _, _) = &downloads[2];
    let (status, _, body) = media(&gateway, &session, audio_id).await;
    assert_eq!(status, 409, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("session_not_working"));
    gateway.stop().await;
}

/// The WhatsApp ids of the next `count` events.
async fn next_ids(events: &mut Events, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    while ids.len() < count {
        let event = events
            .next(&format!("event {} of {count}", ids.len() + 1))
            .await;
        ids.push(
            event["data"]["wa_id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_socket_gets_exactly_what_it_missed() {
    let (sim, _dir, gateway, mut events) = world(Limits::default()).await;
    let session = link_by_qr(&gateway, &mut events, &sim, ALICE).await;
    let phones = sim.handle();
    phones.register_phone(BOB).unwrap_or_else(|e| panic!("{e}"));

    let first = phones
        .phone_send_text(BOB, ALICE, "one")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let seen = events.incoming(&session, &first).await;
    let last_seen = seen["id"].as_str().unwrap_or_default().to_string();

    // A client that saw `first`, then dropped off while three more came.
    let mut missed = Vec::new();
    for body in ["two", "three", "four"] {
        let id = phones
            .phone_send_text(BOB, ALICE, body)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        events.incoming(&session, &id).await;
        missed.push(id);
    }
    let mut resumed = gateway
        .events_with(&format!("since={last_seen}&events=message.received"))
        .await;
    // The log's three, then one sent live after the resume: each once,
    // in order.
    let live = phones
        .phone_send_text(BOB, ALICE, "five")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let got = next_ids(&mut resumed, 4).await;
    let mut expected = missed.clone();
    expected.push(live);
    assert_eq!(got, expected);

    // A resume point older than anything kept: closed, with the reason.
    let mut stale = gateway
        .events_with("since=00000000-0000-7000-8000-000000000001")
        .await;
    match stale.frame().await {
        Some(Message::Close(Some(frame))) => {
            assert_eq!(frame.code, CloseCode::from(4410));
            assert!(
                frame.reason.contains("older than the oldest event kept"),
                "{frame:?}"
            );
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
    gateway.stop().await;
}

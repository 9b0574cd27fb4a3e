//! Every kind of message a client sends arrives decrypted at the fake phone,
//! with its content (and its attachment's bytes) intact; edits, revokes
//! and reactions apply to the message they target; a resent id shows once.

// The whole crate is test code: its helpers, too, may fail the test by
// panicking (clippy.toml only exempts `#[test]` functions and `cfg(test)`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use sha2::{Digest, Sha256};
use wacore::download::MediaType;
use wacore::types::events::Event;
use wasim::PhoneMessage;
use whatsapp_rust::Jid;
use whatsapp_rust::buffa::MessageField;
use whatsapp_rust::waproto::whatsapp as wa;
use whatsapp_rust::{RevokeType, SendOptions, UploadOptions};

const ALICE: &str = "15550001111";
const BOB: &str = "15550002222";

async fn linked(sim: &Simulator, phone: &str) -> TestClient {
    let mut client = TestClient::new(sim).await;
    client.link(&sim.handle(), phone).await;
    client
}

/// Sends and waits for the server's ack, so the next send is ordered after it.
async fn send(client: &mut TestClient, message: wa::Message) -> String {
    let sent = client
        .client
        .send_message(Jid::pn(BOB), message)
        .await
        .unwrap_or_else(|e| panic!("send failed: {e}"));
    acked(client, &sent.message_id).await;
    sent.message_id
}

async fn acked(client: &mut TestClient, id: &str) {
    let error = client
        .wait_for("the server ack", |e| match e {
            Event::ServerAck(a) if a.id == id && a.class.as_deref() == Some("message") => {
                Some(a.error.clone())
            }
            _ => None,
        })
        .await;
    assert_eq!(error, None, "the server nacked {id}");
}

/// The phone's copy of message `id`, once it is there.
async fn at_phone(sim: &SimHandle, id: &str) -> PhoneMessage {
    sim.wait_phone_message(BOB, WAIT, |m| m.id == id)
        .await
        .unwrap_or_else(|| panic!("the phone never showed {id}"))
}

fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(seed) % 251) as u8)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_location_contacts_reply_and_link_preview() {
    let sim = simulator().await;
    let handle = sim.handle();
    handle
        .register_phone(BOB)
        .unwrap_or_else(|e| panic!("registering bob: {e}"));
    let mut alice = linked(&sim, ALICE).await;

    let text = send(
        &mut alice,
        wa::Message {
            conversation: Some("plain hello".into()),
            ..Default::default()
        },
    )
    .await;
    let reply = send(
        &mut alice,
        wa::Message {
            extended_text_message: MessageField::some(wa::message::ExtendedTextMessage {
                text: Some("see https://example.com".into()),
                matched_text: Some("https://example.com".into()),
                title: Some("Example".into()),
                description: Some("An example page".into()),
                context_info: MessageField::some(wa::ContextInfo {
                    stanza_id: Some(text.clone()),
                    participant: Some(format!("{ALICE}@s.whatsapp.net")),
                    quoted_message: MessageField::some(wa::Message {
                        conversation: Some("plain hello".into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await;
    let location = send(
        &mut alice,
        wa::Message {
            location_message: MessageField::some(wa::message::LocationMessage {
                degrees_latitude: Some(52.52),
                degrees_longitude: Some(13.405),
                name: Some("Berlin".into()),
                address: Some("Alexanderplatz".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await;
    let vcard =
        "BEGIN:VCARD\nVERSION:3.0\nFN:Carol\nTEL;waid=15550003333:+1 555 000 3333\nEND:VCARD";
    let contact = send(
        &mut alice,
        wa::Message {
            contact_message: MessageField::some(wa::message::ContactMessage {
                display_name: Some("Carol".into()),
                vcard: Some(vcard.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await;
    let contacts = send(
        &mut alice,
        wa::Message {
            contacts_array_message: MessageField::some(wa::message::ContactsArrayMessage {
                display_name: Some("2 contacts".into()),
                contacts: vec![
                    wa::message::ContactMessage {
                        display_name: Some("Carol".into()),
                        vcard: Some(vcard.into()),
                        ..Default::default()
                    },
                    wa::message::ContactMessage {
                        display_name: Some("Dave".into()),
                        vcard: Some("BEGIN:VCARD\nFN:Dave\nEND:VCARD".into()),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await;

    let m = at_phone(&handle, &text).await;
    assert_eq!(
        (m.kind.as_str(), m.text.as_deref()),
        ("text", Some("plain hello"))
    );
    assert_eq!(m.chat, format!("{ALICE}@s.whatsapp.net"));
    assert_eq!(m.sender, format!("{ALICE}@s.whatsapp.net"));
    assert_eq!(m.arrivals, 1);

    let m = at_phone(&handle, &reply).await;
    assert_eq!(m.kind, "text");
    assert_eq!(m.content["reply_to"], text.as_str(), "{}", m.content);
    assert_eq!(m.content["matched_text"], "https://example.com");
    assert_eq!(m.content["title"], "Example");
    assert_eq!(m.content["description"], "An example page");

    let m = at_phone(&handle, &location).await;
    assert_eq!(m.kind, "location");
    assert_eq!(m.content["latitude"], 52.52);
    assert_eq!(m.content["longitude"], 13.405);
    assert_eq!(m.content["name"], "Berlin");
    assert_eq!(m.content["address"], "Alexanderplatz");

    let m = at_phone(&handle, &contact).await;
    assert_eq!(m.kind, "contact");
    assert_eq!(m.content["display_name"], "Carol");
    assert_eq!(m.content["vcard"], vcard);

    let m = at_phone(&handle, &contacts).await;
    assert_eq!(m.kind, "contacts");
    assert_eq!(m.content["contacts"][1]["display_name"], "Dave");
    assert_eq!(m.content["contacts"][0]["vcard"], vcard);

    alice.stop().await;
}

/// One attachment kind: uploads `bytes`, sends the message `build` makes of
/// the upload, and checks the phone opened exactly those bytes.
async fn media_round_trip(
    alice: &mut TestClient,
    sim: &SimHandle,
    bytes: Vec<u8>,
    media_type: MediaType,
    build: impl FnOnce(&whatsapp_rust::upload::UploadResponse) -> wa::Message,
) -> PhoneMessage {
    let up = alice
        .client
        .upload(bytes.clone(), media_type, UploadOptions::default())
        .await
        .unwrap_or_else(|e| panic!("upload failed: {e}"));
    let id = send(alice, build(&up)).await;
    let m = at_phone(sim, &id).await;
    assert_eq!(m.content.get("media_error"), None, "{}", m.content);
    assert_eq!(
        m.content["sha256"],
        hex::encode(Sha256::digest(&bytes)),
        "{}",
        m.content
    );
    assert_eq!(m.content["length"], bytes.len());
    let opened = sim
        .phone_media(BOB, &id)
        .unwrap_or_else(|e| panic!("no media for {id}: {e}"));
    assert!(opened[..] == bytes[..], "the phone opened other bytes");
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attachment_kind_is_downloaded_and_decrypted() {
    let sim = simulator().await;
    let handle = sim.handle();
    handle
        .register_phone(BOB)
        .unwrap_or_else(|e| panic!("registering bob: {e}"));
    let mut alice = linked(&sim, ALICE).await;

    let m = media_round_trip(
        &mut alice,
        &handle,
        pattern(150_000, 31),
        MediaType::Image,
        |up| wa::Message {
            image_message: MessageField::some(wa::message::ImageMessage {
                url: Some(up.url.clone()),
                direct_path: Some(up.direct_path.clone()),
                media_key: Some(up.media_key.to_vec()),
                file_enc_sha256: Some(up.file_enc_sha256.to_vec()),
                file_sha256: Some(up.file_sha256.to_vec()),
                file_length: Some(up.file_length),
                mimetype: Some("image/jpeg".into()),
                caption: Some("a picture".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        (m.kind.as_str(), m.text.as_deref()),
        ("image", Some("a picture"))
    );
    assert_eq!(m.content["mimetype"], "image/jpeg");

    let m = media_round_trip(
        &mut alice,
        &handle,
        pattern(90_000, 7),
        MediaType::Video,
        |up| wa::Message {
            video_message: MessageField::some(wa::message::VideoMessage {
                url: Some(up.url.clone()),
                direct_path: Some(up.direct_path.clone()),
                media_key: Some(up.media_key.to_vec()),
                file_enc_sha256: Some(up.file_enc_sha256.to_vec()),
                file_sha256: Some(up.file_sha256.to_vec()),
                file_length: Some(up.file_length),
                mimetype: Some("video/mp4".into()),
                caption: Some("a clip".into()),
                seconds: Some(3),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(m.kind, "video");
    assert_eq!(m.content["caption"], "a clip");

    let audio = |ptt: bool| {
        move |up: &whatsapp_rust::upload::UploadResponse| wa::Message {
            audio_message: MessageField::some(wa::message::AudioMessage {
                url: Some(up.url.clone()),
                direct_path: Some(up.direct_path.clone()),
                media_key: Some(up.media_key.to_vec()),
                file_enc_sha256: Some(up.file_enc_sha256.to_vec()),
                file_sha256: Some(up.file_sha256.to_vec()),
                file_length: Some(up.file_length),
                mimetype: Some("audio/ogg; codecs=opus".into()),
                seconds: Some(2),
                ptt: Some(ptt),
                ..Default::default()
            }),
            ..Default::default()
        }
    };
    let m = media_round_trip(
        &mut alice,
        &handle,
        pattern(20_000, 13),
        MediaType::Audio,
        audio(true),
    )
    .await;
    assert_eq!(m.kind, "voice");
    assert_eq!(m.content["ptt"], true);
    let m = media_round_trip(
        &mut alice,
        &handle,
        pattern(21_000, 17),
        MediaType::Audio,
        audio(false),
    )
    .await;
    assert_eq!(m.kind, "audio");
    assert_eq!(m.content["mimetype"], "audio/ogg; codecs=opus");

    let m = media_round_trip(
        &mut alice,
        &handle,
        pattern(33_333, 3),
        MediaType::Document,
        |up| wa::Message {
            document_message: MessageField::some(wa::message::DocumentMessage {
                url: Some(up.url.clone()),
                direct_path: Some(up.direct_path.clone()),
                media_key: Some(up.media_key.to_vec()),
                file_enc_sha256: Some(up.file_enc_sha256.to_vec()),
                file_sha256: Some(up.file_sha256.to_vec()),
                file_length: Some(up.file_length),
                mimetype: Some("application/pdf".into()),
                file_name: Some("report.pdf".into()),
                caption: Some("the report".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(m.kind, "document");
    assert_eq!(m.content["file_name"], "report.pdf");
    assert_eq!(m.content["caption"], "the report");
    assert_eq!(m.content["mimetype"], "application/pdf");

    let m = media_round_trip(
        &mut alice,
        &handle,
        pattern(8_000, 5),
        MediaType::Sticker,
        |up| wa::Message {
            sticker_message: MessageField::some(wa::message::StickerMessage {
                url: Some(up.url.clone()),
                direct_path: Some(up.direct_path.clone()),
                media_key: Some(up.media_key.to_vec()),
                file_enc_sha256: Some(up.file_enc_sha256.to_vec()),
                file_sha256: Some(up.file_sha256.to_vec()),
                file_length: Some(up.file_length),
                mimetype: Some("image/webp".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(m.kind, "sticker");
    assert_eq!(m.content["mimetype"], "image/webp");

    // The bytes over the admin API too, with the mimetype.
    let http = LoopbackHttpClient::new();
    let got = wacore::net::HttpClient::execute(
        &http,
        wacore::net::HttpRequest::get(format!(
            "{}/admin/phones/{BOB}/messages/{}/media",
            sim.http_url(),
            m.id
        )),
    )
    .await
    .unwrap_or_else(|e| panic!("admin media: {e}"));
    assert_eq!(got.status_code, 200);
    assert!(
        got.body == pattern(8_000, 5),
        "the admin API served other bytes"
    );

    alice.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reactions_polls_edits_and_revokes() {
    let sim = simulator().await;
    let handle = sim.handle();
    handle
        .register_phone(BOB)
        .unwrap_or_else(|e| panic!("registering bob: {e}"));
    let mut alice = linked(&sim, ALICE).await;
    let bob = Jid::pn(BOB);

    let first = send(
        &mut alice,
        wa::Message {
            conversation: Some("first draft".into()),
            ..Default::default()
        },
    )
    .await;
    let doomed = send(
        &mut alice,
        wa::Message {
            conversation: Some("regrettable".into()),
            ..Default::default()
        },
    )
    .await;
    // Its own secret, so the test can edit it the message-secret way.
    let sealed_secret = vec![9u8; 32];
    let sealed = send(
        &mut alice,
        wa::Message {
            conversation: Some("sealed draft".into()),
            message_context_info: MessageField::some(wa::MessageContextInfo {
                message_secret: Some(sealed_secret.clone()),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await;
    let key = wa::MessageKey {
        remote_jid: Some(bob.to_string()),
        from_me: Some(true),
        id: Some(first.clone()),
        participant: None,
    };
    let reaction = alice
        .client
        .send_reaction(bob.clone(), key.clone(), "👍")
        .await
        .unwrap_or_else(|e| panic!("reaction failed: {e}"));
    acked(&mut alice, &reaction.message_id).await;
    let m = at_phone(&handle, &reaction.message_id).await;
    assert_eq!(m.kind, "reaction");
    assert_eq!(m.content["target_id"], first.as_str());
    assert_eq!(m.content["emoji"], "👍");
    assert_eq!(m.content["removed"], false);
    let reactor = format!("{ALICE}@s.whatsapp.net");
    let first_at_phone = at_phone(&handle, &first).await;
    assert_eq!(
        first_at_phone.reactions.get(&reactor).map(String::as_str),
        Some("👍")
    );

    let unreact = alice
        .client
        .send_reaction(bob.clone(), key, "")
        .await
        .unwrap_or_else(|e| panic!("reaction removal failed: {e}"));
    acked(&mut alice, &unreact.message_id).await;
    let m = at_phone(&handle, &unreact.message_id).await;
    assert_eq!(m.content["removed"], true);
    assert!(at_phone(&handle, &first).await.reactions.is_empty());

    let options = ["red".to_owned(), "green".to_owned(), "blue".to_owned()];
    let (single, secret) = alice
        .client
        .polls()
        .create(bob.clone(), "Favourite colour?", &options, 1)
        .await
        .unwrap_or_else(|e| panic!("poll failed: {e}"));
    acked(&mut alice, &single.message_id).await;
    let m = at_phone(&handle, &single.message_id).await;
    assert_eq!(m.kind, "poll");
    assert_eq!(m.content["question"], "Favourite colour?");
    assert_eq!(m.content["options"], serde_json::json!(options));
    assert_eq!(m.content["selectable_count"], 1);
    assert_eq!(m.content["version"], 3, "single choice goes as V3");
    use base64::Engine as _;
    assert_eq!(
        m.content["message_secret"],
        base64::engine::general_purpose::STANDARD.encode(&secret)
    );
    let (multi, _) = alice
        .client
        .polls()
        .create(bob.clone(), "Which days?", &options[..2], 2)
        .await
        .unwrap_or_else(|e| panic!("poll failed: {e}"));
    acked(&mut alice, &multi.message_id).await;
    let m = at_phone(&handle, &multi.message_id).await;
    assert_eq!(m.content["version"], 1, "multiple choice goes as V1");
    assert_eq!(m.content["selectable_count"], 2);

    alice
        .client
        .edit_message(
            bob.clone(),
            first.clone(),
            wa::Message {
                conversation: Some("final text".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("edit failed: {e}"));
    alice
        .client
        .revoke_message(bob.clone(), doomed.clone(), RevokeType::Sender)
        .await
        .unwrap_or_else(|e| panic!("revoke failed: {e}"));
    alice
        .client
        .edit_message_encrypted(
            bob.clone(),
            sealed.clone(),
            &sealed_secret,
            wa::Message {
                conversation: Some("sealed final".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("encrypted edit failed: {e}"));
    let all = handle
        .wait_phone_messages(BOB, WAIT, |all| {
            all.iter().any(|m| m.id == first && m.edits == 1)
                && all.iter().any(|m| m.id == doomed && m.revoked)
                && all.iter().any(|m| m.id == sealed && m.edits == 1)
        })
        .await
        .unwrap_or_else(|| panic!("the edit and the revoke never applied"));
    let edited = all
        .iter()
        .find(|m| m.id == first)
        .map(|m| m.edited_text.clone());
    assert_eq!(edited, Some(Some("final text".into())));
    let sealed_at_phone = all.iter().find(|m| m.id == sealed);
    assert_eq!(
        sealed_at_phone.and_then(|m| m.edited_text.as_deref()),
        Some("sealed final")
    );
    let encrypted_edit = all
        .iter()
        .find(|m| m.kind == "edit" && m.content["target_id"] == sealed.as_str())
        .unwrap_or_else(|| panic!("no record of the encrypted edit"));
    assert_eq!(encrypted_edit.content["encrypted"], true);
    let edit = all
        .iter()
        .find(|m| m.kind == "edit" && m.content["target_id"] == first.as_str())
        .unwrap_or_else(|| panic!("no edit record"));
    assert_eq!(edit.content["target_id"], first.as_str());
    assert_eq!(edit.content["text"], "final text");
    let revoke = all
        .iter()
        .find(|m| m.kind == "revoke")
        .unwrap_or_else(|| panic!("no revoke record"));
    assert_eq!(revoke.content["target_id"], doomed.as_str());

    alice.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resent_id_shows_once_and_counts_arrivals() {
    let sim = simulator().await;
    let handle = sim.handle();
    handle
        .register_phone(BOB)
        .unwrap_or_else(|e| panic!("registering bob: {e}"));
    let mut alice = linked(&sim, ALICE).await;

    let id = "3EB0RESENT0000000001";
    for _ in 0..2 {
        let sent = alice
            .client
            .send_message_with_options(
                Jid::pn(BOB),
                wa::Message {
                    conversation: Some("once, really".into()),
                    ..Default::default()
                },
                SendOptions::default().with_message_id(id),
            )
            .await
            .unwrap_or_else(|e| panic!("send failed: {e}"));
        assert_eq!(sent.message_id, id);
        acked(&mut alice, id).await;
    }
    let all = handle
        .wait_phone_messages(BOB, WAIT, |all| {
            all.iter().any(|m| m.id == id && m.arrivals == 2)
        })
        .await
        .unwrap_or_else(|| panic!("the second arrival was not counted"));
    assert_eq!(all.iter().filter(|m| m.id == id).count(), 1, "shown twice");

    alice.stop().await;
}

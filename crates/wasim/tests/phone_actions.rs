//! What flows back from a fake phone and from the server: read and played
//! receipts, nacks, registration checks, and a companion's typing and read
//! receipts reaching the phone.

// The whole crate is test code: its helpers, too, may fail the test by
// panicking (clippy.toml only exempts `#[test]` functions and `cfg(test)`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use wacore::download::MediaType;
use wacore::types::events::Event;
use wacore::types::presence::ReceiptType;
use whatsapp_rust::Jid;
use whatsapp_rust::UploadOptions;
use whatsapp_rust::buffa::MessageField;
use whatsapp_rust::waproto::whatsapp as wa;

const ALICE: &str = "15550001111";
const BOB: &str = "15550002222";
const CAROL: &str = "15550003333";
const NOBODY: &str = "15559990000";

async fn linked(sim: &Simulator, phone: &str) -> TestClient {
    let mut client = TestClient::new(sim).await;
    client.link(&sim.handle(), phone).await;
    client
}

/// Calls the admin API; returns the status and the JSON body.
async fn admin(
    sim: &Simulator,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    use wacore::net::{HttpClient, HttpRequest};
    let url = format!("{}{path}", sim.http_url());
    let request = match body {
        Some(body) => HttpRequest::post(url)
            .with_header("content-type", "application/json")
            .with_body(body.to_string().into_bytes()),
        None if method == "POST" => HttpRequest::post(url),
        None => HttpRequest::get(url),
    };
    let response = LoopbackHttpClient::new()
        .execute(request)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let json = serde_json::from_slice(&response.body)
        .unwrap_or_else(|e| panic!("{method} {path} answered no JSON: {e}"));
    (response.status_code, json)
}

fn text(s: &str) -> wa::Message {
    wa::Message {
        conversation: Some(s.into()),
        ..Default::default()
    }
}

/// Sends and returns the id with the server's ack (error code if nacked).
async fn send(client: &mut TestClient, to: &str, message: wa::Message) -> (String, Option<String>) {
    let sent = client
        .client
        .send_message(Jid::pn(to), message)
        .await
        .unwrap_or_else(|e| panic!("send failed: {e}"));
    let id = sent.message_id;
    let ack = client
        .wait_for("the server ack", |e| match e {
            Event::ServerAck(a) if a.id == id && a.class.as_deref() == Some("message") => {
                Some(a.clone())
            }
            _ => None,
        })
        .await;
    if ack.error.is_none() {
        assert!(
            ack.timestamp.is_some(),
            "a message ack carries the server's t"
        );
    }
    (id, ack.error)
}

async fn receipt_of(client: &mut TestClient, id: &str, kind: ReceiptType) {
    let what = format!("a {kind:?} receipt for {id}");
    client
        .wait_for(&what, |e| match e {
            Event::Receipt(r) if r.r#type == kind && r.message_ids.iter().any(|m| m == id) => {
                Some(())
            }
            _ => None,
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_phone_reads_and_plays_and_the_sender_sees_it() {
    let sim = simulator().await;
    let handle = sim.handle();
    handle
        .register_phone(BOB)
        .unwrap_or_else(|e| panic!("registering bob: {e}"));
    let mut alice = linked(&sim, ALICE).await;

    let (one, _) = send(&mut alice, BOB, text("one")).await;
    let (two, _) = send(&mut alice, BOB, text("two")).await;
    let up = alice
        .client
        .upload(vec![7u8; 4000], MediaType::Audio, UploadOptions::default())
        .await
        .unwrap_or_else(|e| panic!("upload failed: {e}"));
    let voice = wa::Message {
        audio_message: MessageField::some(wa::message::AudioMessage {
            url: Some(up.url.clone()),
            direct_path: Some(up.direct_path.clone()),
            media_key: Some(up.media_key.to_vec()),
            file_enc_sha256: Some(up.file_enc_sha256.to_vec()),
            file_sha256: Some(up.file_sha256.to_vec()),
            file_length: Some(up.file_length),
            mimetype: Some("audio/ogg; codecs=opus".into()),
            ptt: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    };
    let (note, _) = send(&mut alice, BOB, voice).await;
    handle
        .wait_phone_messages(BOB, WAIT, |all| all.len() == 3)
        .await
        .unwrap_or_else(|| panic!("the phone did not get all three"));

    // One message by id.
    let read = handle
        .phone_read(BOB, std::slice::from_ref(&one))
        .unwrap_or_else(|e| panic!("read failed: {e}"));
    assert_eq!(read, vec![one.clone()]);
    receipt_of(&mut alice, &one, ReceiptType::Read).await;

    // Opening the chat reads the rest, in one receipt with a <list>.
    let (status, read) = admin(
        &sim,
        "POST",
        &format!("/admin/phones/{BOB}/read"),
        Some(serde_json::json!({ "chat": ALICE })),
    )
    .await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["read"], serde_json::json!([two, note]));
    let ids = alice
        .wait_for("the chat's read receipt", |e| match e {
            Event::Receipt(r) if r.r#type == ReceiptType::Read && r.message_ids.contains(&two) => {
                Some(r.message_ids.clone())
            }
            _ => None,
        })
        .await;
    let mut ids = ids;
    ids.sort();
    let mut expected = vec![two.clone(), note.clone()];
    expected.sort();
    // wacore lists the `<list>` items before the stanza id.
    assert_eq!(ids, expected);

    let (status, body) = admin(
        &sim,
        "POST",
        &format!("/admin/phones/{BOB}/messages/{note}/play"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    receipt_of(&mut alice, &note, ReceiptType::Played).await;
    assert!(
        handle.phone_play(BOB, &one).is_err(),
        "a text does not play"
    );
    let path = format!("/admin/phones/{BOB}/messages/nope/play");
    let (status, body) = admin(&sim, "POST", &path, None).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "no_such_message");

    let shown = handle
        .phone_messages(BOB)
        .unwrap_or_else(|e| panic!("no messages: {e}"));
    assert!(shown.iter().all(|m| m.read));
    assert!(shown.iter().any(|m| m.id == note && m.played));

    alice.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nack_fault_refuses_the_message_and_the_phone_never_sees_it() {
    let sim = simulator().await;
    let handle = sim.handle();
    handle
        .register_phone(BOB)
        .unwrap_or_else(|e| panic!("registering bob: {e}"));
    let mut alice = linked(&sim, ALICE).await;

    let (status, body) = admin(
        &sim,
        "POST",
        "/admin/faults/nack",
        Some(serde_json::json!({ "phone": BOB, "count": 1, "code": 463 })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (refused, error) = send(&mut alice, BOB, text("refused")).await;
    assert_eq!(error.as_deref(), Some("463"));

    // The fault is used up: the next one goes through with a plain ack.
    let (passed, error) = send(&mut alice, BOB, text("passed")).await;
    assert_eq!(error, None);
    let all = handle
        .wait_phone_messages(BOB, WAIT, |all| all.iter().any(|m| m.id == passed))
        .await
        .unwrap_or_else(|| panic!("the second message never arrived"));
    // The phone handles its stanzas in order: the refused one would be here.
    assert!(
        all.iter().all(|m| m.id != refused),
        "a nacked message arrived"
    );

    alice.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_check_tells_registered_from_unknown_numbers() {
    let sim = simulator().await;
    let handle = sim.handle();
    handle
        .register_phone(BOB)
        .unwrap_or_else(|e| panic!("registering bob: {e}"));
    let alice = linked(&sim, ALICE).await;
    // Using a phone gives it an account.
    handle
        .phone_send_text(CAROL, ALICE, "hi")
        .await
        .unwrap_or_else(|e| panic!("carol's phone: {e}"));

    let results = alice
        .client
        .contacts()
        .is_on_whatsapp(&[Jid::pn(CAROL), Jid::pn(NOBODY)])
        .await
        .unwrap_or_else(|e| panic!("is_on_whatsapp failed: {e}"));
    let registered = |phone: &str| {
        results
            .iter()
            .find(|r| r.jid.user == phone)
            .map(|r| r.is_registered)
    };
    assert_eq!(registered(CAROL), Some(true), "{results:?}");
    assert_eq!(registered(NOBODY), Some(false), "{results:?}");
    let carol = results.iter().find(|r| r.jid.user == CAROL);
    assert!(
        carol.is_some_and(|r| r.lid.is_some()),
        "a registered user has a LID"
    );

    alice.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_and_mark_as_read_reach_the_phone() {
    let sim = simulator().await;
    let handle = sim.handle();
    handle
        .register_phone(BOB)
        .unwrap_or_else(|e| panic!("registering bob: {e}"));
    let mut alice = linked(&sim, ALICE).await;

    let id = handle
        .phone_send_text(BOB, ALICE, "are you there?")
        .await
        .unwrap_or_else(|e| panic!("bob's phone: {e}"));
    alice
        .wait_for("bob's text", |e| match e {
            Event::Messages(batch) => batch.iter().any(|m| m.info.id == id).then_some(()),
            _ => None,
        })
        .await;

    let bob = Jid::pn(BOB);
    let chatstate = alice.client.chatstate();
    for send in [
        chatstate.send_composing(&bob).await,
        chatstate.send_recording(&bob).await,
        chatstate.send_paused(&bob).await,
    ] {
        send.unwrap_or_else(|e| panic!("chat state failed: {e}"));
    }
    alice
        .client
        .mark_as_read(&bob, None, &[id.as_str()])
        .await
        .unwrap_or_else(|e| panic!("mark_as_read failed: {e}"));

    let alice_jid = format!("{ALICE}@s.whatsapp.net");
    for state in ["composing", "recording", "paused"] {
        let got = handle
            .wait_phone_chat_state(BOB, WAIT, |s| s.state == state)
            .await
            .unwrap_or_else(|| panic!("the phone never saw {state}"));
        assert_eq!(got.from, alice_jid);
    }
    let read = handle
        .wait_phone_receipt(BOB, WAIT, |r| r.kind == "read" && r.ids.contains(&id))
        .await
        .unwrap_or_else(|| panic!("the read receipt never reached the phone"));
    assert!(read.from.starts_with(&format!("{ALICE}:")), "{}", read.from);

    // The reader's own phone learns it too: its copy shows as read.
    handle
        .wait_phone_messages(ALICE, WAIT, |all| {
            all.iter()
                .any(|m| m.id == id && m.read_by_companion && !m.read)
        })
        .await
        .unwrap_or_else(|| panic!("alice's phone never learned her companion read it"));

    // The same records through the admin API.
    let path = format!("/admin/phones/{BOB}/chat-states");
    let (_, states) = admin(&sim, "GET", &path, None).await;
    assert_eq!(states["chat_states"][0]["state"], "composing", "{states}");
    assert_eq!(states["chat_states"][0]["from"], alice_jid.as_str());
    let path = format!("/admin/phones/{BOB}/receipts");
    let (_, receipts) = admin(&sim, "GET", &path, None).await;
    let listed = receipts["receipts"].as_array().cloned().unwrap_or_default();
    assert!(
        listed
            .iter()
            .any(|r| r["type"] == "read" && r["ids"][0] == id.as_str()),
        "{receipts}"
    );

    alice.stop().await;
}

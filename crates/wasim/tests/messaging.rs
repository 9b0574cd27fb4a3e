//! End-to-end encrypted messaging through the simulator: real clients, fake
//! phones, the offline queue, and how fast a fresh link gets to Connected.

// The whole crate is test code: its helpers, too, may fail the test by
// panicking (clippy.toml only exempts `#[test]` functions and `cfg(test)`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Instant;

use common::*;
use wacore::types::events::Event;
use wacore::types::presence::ReceiptType;
use whatsapp_rust::Jid;

const ALICE: &str = "15550001111";
const BOB: &str = "15550002222";
const CAROL: &str = "15550003333";

fn text_of(event: &Event, want: &str) -> Option<(String, bool)> {
    let Event::Messages(batch) = event else {
        return None;
    };
    batch.iter().find_map(|m| {
        let text = m
            .message
            .conversation
            .clone()
            .or_else(|| m.message.extended_text_message.as_option()?.text.clone())?;
        (text == want).then(|| (m.info.id.clone(), m.info.is_offline))
    })
}

/// Sends `text` and waits for both the server's ack and the recipient's
/// delivery receipt, whichever comes first.
async fn send_and_confirm(sender: &mut TestClient, to: &str, text: &str) -> String {
    let sent = match sender.client.send_text(Jid::pn(to), text).await {
        Ok(sent) => sent,
        Err(e) => panic!("sending {text:?} to {to} failed: {e}"),
    };
    let id = sent.message_id;
    let (mut acked, mut delivered) = (false, false);
    while !(acked && delivered) {
        sender
            .wait_for("the server ack and the delivery receipt", |e| match e {
                Event::ServerAck(ack)
                    if ack.id == id && ack.class.as_deref() == Some("message") =>
                {
                    assert_eq!(ack.error, None, "the server nacked {id}");
                    acked = true;
                    Some(())
                }
                Event::Receipt(r)
                    if r.message_ids.contains(&id) && r.r#type == ReceiptType::Delivered =>
                {
                    delivered = true;
                    Some(())
                }
                _ => None,
            })
            .await;
    }
    id
}

async fn linked(sim: &Simulator, phone: &str) -> TestClient {
    let mut client = TestClient::new(sim).await;
    client.link(&sim.handle(), phone).await;
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_exchange_text_both_ways() {
    let sim = simulator().await;
    let mut alice = linked(&sim, ALICE).await;
    let mut bob = linked(&sim, BOB).await;

    let id = send_and_confirm(&mut alice, BOB, "hello bob").await;
    let (got, offline) = bob
        .wait_for("alice's text", |e| text_of(e, "hello bob"))
        .await;
    assert_eq!(got, id);
    assert!(!offline, "a live message was marked offline");

    let id = send_and_confirm(&mut bob, ALICE, "hi alice").await;
    let (got, _) = alice
        .wait_for("bob's reply", |e| text_of(e, "hi alice"))
        .await;
    assert_eq!(got, id);

    // Each client's own phone got the copy of what its companion sent.
    let copy = sim
        .handle()
        .wait_phone_message(ALICE, WAIT, |m| {
            m.from_me && m.text.as_deref() == Some("hello bob")
        })
        .await;
    let copy = copy.unwrap_or_else(|| panic!("alice's phone never saw her message"));
    assert_eq!(copy.chat, format!("{BOB}@s.whatsapp.net"));

    alice.stop().await;
    bob.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_to_an_offline_client_arrives_when_it_connects() {
    let sim = simulator().await;
    let mut alice = linked(&sim, ALICE).await;
    let bob = linked(&sim, BOB).await;
    let bob_store = bob.store.clone();
    bob.stop().await;

    let sent = match alice
        .client
        .send_text(Jid::pn(BOB), "while you were out")
        .await
    {
        Ok(sent) => sent,
        Err(e) => panic!("send failed: {e}"),
    };
    let id = sent.message_id;
    alice
        .wait_for("the server ack", |e| match e {
            Event::ServerAck(ack) if ack.id == id => Some(()),
            Event::Receipt(r) if r.message_ids.contains(&id) => {
                panic!("delivered to a client that is offline")
            }
            _ => None,
        })
        .await;

    let mut bob = TestClient::with_store(&sim, bob_store).await;
    let (got, offline) = bob
        .wait_for("the queued message", |e| text_of(e, "while you were out"))
        .await;
    assert_eq!(got, id);
    assert!(offline, "a queued message should arrive marked offline");
    alice
        .wait_for("the delivery receipt", |e| match e {
            Event::Receipt(r) if r.message_ids.contains(&id) => Some(()),
            _ => None,
        })
        .await;

    alice.stop().await;
    bob.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_admin_api_sends_and_receives_decrypted() {
    let sim = simulator().await;
    let handle = sim.handle();
    let mut alice = linked(&sim, ALICE).await;

    // A phone with no companion of its own writes first: its own session.
    let id = match handle
        .phone_send_text(CAROL, ALICE, "hi from carol's phone")
        .await
    {
        Ok(id) => id,
        Err(e) => panic!("phone send failed: {e}"),
    };
    let (got, _) = alice
        .wait_for("carol's text", |e| text_of(e, "hi from carol's phone"))
        .await;
    assert_eq!(got, id);

    send_and_confirm(&mut alice, CAROL, "hello carol").await;
    let received = handle
        .wait_phone_message(CAROL, WAIT, |m| m.text.as_deref() == Some("hello carol"))
        .await
        .unwrap_or_else(|| panic!("carol's phone never got alice's message"));
    assert!(!received.from_me);
    assert_eq!(received.chat, format!("{ALICE}@s.whatsapp.net"));
    assert!(
        received.from.starts_with(&format!("{ALICE}:")),
        "{}",
        received.from
    );
    assert_eq!(received.kind, "text");

    // The same through the admin API.
    let http = LoopbackHttpClient::new();
    let body = serde_json::json!({"to": ALICE, "text": "over http"}).to_string();
    let request =
        wacore::net::HttpRequest::post(format!("{}/admin/phones/{CAROL}/messages", sim.http_url()))
            .with_header("content-type", "application/json")
            .with_body(body.into_bytes());
    let response = wacore::net::HttpClient::execute(&http, request)
        .await
        .unwrap_or_else(|e| panic!("admin send: {e}"));
    assert_eq!(response.status_code, 200, "{:?}", response.body_string());
    alice
        .wait_for("the admin API's text", |e| text_of(e, "over http"))
        .await;
    let listed = wacore::net::HttpClient::execute(
        &http,
        wacore::net::HttpRequest::get(format!("{}/admin/phones/{CAROL}/messages", sim.http_url())),
    )
    .await
    .unwrap_or_else(|e| panic!("admin list: {e}"));
    let listed: serde_json::Value = serde_json::from_slice(&listed.body)
        .unwrap_or_else(|e| panic!("admin list is not JSON: {e}"));
    assert_eq!(listed["messages"][0]["text"], "hello carol", "{listed}");

    alice.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qr_link_reaches_connected_quickly_with_the_key_share() {
    let sim = simulator().await;
    let mut client = TestClient::new(&sim).await;
    let qr = client.next_qr().await;
    let scanned = Instant::now();
    if let Err(e) = sim.handle().scan_qr(ALICE, &qr) {
        panic!("scan refused: {e}");
    }
    client
        .wait_for("PairSuccess", |e| {
            matches!(e, Event::PairSuccess(_)).then_some(())
        })
        .await;
    let paired = scanned.elapsed();
    // The server sends the account's push name during the offline flush,
    // before Connected.
    let mut push_name = None;
    client
        .wait_for("Connected", |e| match e {
            Event::SelfPushNameUpdated(u) => {
                push_name = Some(u.new_name.clone());
                None
            }
            Event::Connected(_) => Some(()),
            _ => None,
        })
        .await;
    let connected = scanned.elapsed();
    eprintln!("link timing: scan -> PairSuccess {paired:?}, scan -> Connected {connected:?}");
    assert_eq!(push_name.as_deref(), Some("Phone 15550001111"));

    // With the push name set, the next login of the same device takes the
    // reconnect path: no app-state sync, no key-share wait.
    let store = client.store.clone();
    client.stop().await;
    let restarted = Instant::now();
    let mut again = TestClient::with_store(&sim, store).await;
    again.connected().await;
    eprintln!(
        "link timing: restart -> Connected {:?}",
        restarted.elapsed()
    );
    again.stop().await;
}

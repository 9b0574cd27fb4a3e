//! What a linked session says and does on its own: the presence it shows
//! after every connect (`unavailable` unless set otherwise, so the phone
//! keeps its notifications) and incoming calls (reported, and rejected
//! when the session's setting says so, which the calling phone sees).

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::messaging::has_whatsapp;

const ALICE: &str = "15550006161";
const BOB: &str = "15550006262";
const REPLY: &str = "I cannot take calls here; please write.";

/// The presence the simulator last got from `phone`'s linked device,
/// once it is `want`.
async fn wait_presence(sim: &wasim::Simulator, phone: &str, want: &str) {
    let seen = sim
        .handle()
        .wait_devices(WAIT, |devices| {
            devices
                .iter()
                .any(|d| d.phone == phone && d.connected && d.presence.as_deref() == Some(want))
        })
        .await;
    assert!(
        seen.is_some(),
        "{phone}'s device never said {want}: {:?}",
        sim.handle().devices()
    );
}

/// Something the device sends after whatever it sent so far, seen
/// arriving: the simulator reads a connection in order, so once the phone
/// shows this typing, every earlier presence was recorded.
async fn barrier(gateway: &Gateway, sim: &wasim::Simulator, session: &str, state: &str) {
    let (status, body) = gateway
        .call(
            Method::POST,
            &format!("/sessions/{session}/chats/{BOB}/typing"),
            Some(json!({ "state": state })),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let seen = sim
        .handle()
        .wait_phone_chat_state(BOB, WAIT, |s| s.state == state)
        .await;
    assert!(seen.is_some(), "{BOB} never saw {state}");
}

fn presence_of(sim: &wasim::Simulator, phone: &str) -> Option<String> {
    sim.handle()
        .devices()
        .into_iter()
        .find(|d| d.phone == phone)
        .and_then(|d| d.presence)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_stays_unavailable_across_reconnects_unless_set_available() {
    let (sim, _dir, gateway, mut events) = world(Limits::default()).await;
    has_whatsapp(&sim, BOB);
    let session = link_by_qr(&gateway, &mut events, &sim, ALICE).await;
    assert_eq!(gateway.session(&session).await["presence"], "unavailable");

    // After linking: the client said `available` on connecting; the last
    // word is the session's.
    wait_presence(&sim, ALICE, "unavailable").await;
    barrier(&gateway, &sim, &session, "composing").await;
    assert_eq!(presence_of(&sim, ALICE).as_deref(), Some("unavailable"));

    // After a reconnect too (a dropped connection forgets what it said).
    assert!(sim.handle().drop_all() >= 1);
    events.status(&session, "starting").await;
    events.status(&session, "working").await;
    wait_presence(&sim, ALICE, "unavailable").await;
    barrier(&gateway, &sim, &session, "paused").await;
    assert_eq!(presence_of(&sim, ALICE).as_deref(), Some("unavailable"));

    // Set available: told now, and after the next connect.
    let (status, body) = gateway
        .call(
            Method::POST,
            &format!("/sessions/{session}/presence"),
            Some(json!({ "state": "available" })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["presence"], "available");
    wait_presence(&sim, ALICE, "available").await;
    assert!(sim.handle().drop_all() >= 1);
    events.status(&session, "starting").await;
    events.status(&session, "working").await;
    wait_presence(&sim, ALICE, "available").await;
    barrier(&gateway, &sim, &session, "recording").await;
    assert_eq!(presence_of(&sim, ALICE).as_deref(), Some("available"));

    // And back, through the session's settings.
    let (status, body) = gateway
        .call(
            Method::PATCH,
            &format!("/sessions/{session}"),
            Some(json!({ "presence": "unavailable" })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["presence"], "unavailable");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_presence_that_is_not_one_is_refused() {
    let (_sim, _dir, gateway, _events) = world(Limits::default()).await;
    let session = gateway.create_session().await;
    let (status, body) = gateway
        .call(
            Method::POST,
            &format!("/sessions/{session}/presence"),
            Some(json!({ "state": "away" })),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"]["code"].is_string(), "{body}");
    let (status, body) = gateway
        .call(
            Method::POST,
            &format!("/sessions/{}/presence", uuid_nil()),
            Some(json!({ "state": "available" })),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = gateway
        .call(
            Method::PATCH,
            &format!("/sessions/{session}"),
            Some(json!({ "reject_calls_message": "  " })),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "invalid_reject_calls_message");
    gateway.stop().await;
}

fn uuid_nil() -> &'static str {
    "00000000-0000-0000-0000-000000000000"
}

fn call_id(event: &Value) -> &str {
    event["data"]["call_id"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_reported_and_rejected_when_the_session_says_so() {
    let (sim, _dir, gateway, mut events) = world(Limits::default()).await;
    has_whatsapp(&sim, BOB);
    let session = link_by_qr(&gateway, &mut events, &sim, ALICE).await;

    // By default a call rings: reported, not rejected.
    let first = sim
        .handle()
        .phone_call(BOB, ALICE, false)
        .unwrap_or_else(|e| panic!("call: {e}"));
    let received = events
        .wait("call.received", &session, |e| e["event"] == "call.received")
        .await;
    assert_eq!(call_id(&received), first, "{received}");
    assert_eq!(received["data"]["from"]["phone"], BOB, "{received}");
    assert_eq!(received["data"]["video"], false, "{received}");
    let ringing = sim
        .handle()
        .wait_phone_call(BOB, WAIT, |c| c.call_id == first && c.action == "ringing")
        .await;
    assert!(ringing.is_some(), "{BOB} never heard the device ring");

    let (status, body) = gateway
        .call(
            Method::PATCH,
            &format!("/sessions/{session}"),
            Some(json!({ "reject_calls": true, "reject_calls_message": REPLY })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reject_calls"], true);
    assert_eq!(body["reject_calls_message"], REPLY);

    let second = sim
        .handle()
        .phone_call(BOB, ALICE, true)
        .unwrap_or_else(|e| panic!("call: {e}"));
    let received = events
        .wait("call.received", &session, |e| e["event"] == "call.received")
        .await;
    assert_eq!(call_id(&received), second, "{received}");
    assert_eq!(received["data"]["video"], true, "{received}");
    // The first `call.rejected` is the second call's: the first rang on.
    let rejected = events
        .wait("call.rejected", &session, |e| e["event"] == "call.rejected")
        .await;
    assert_eq!(call_id(&rejected), second, "{rejected}");
    assert_eq!(rejected["data"]["from"]["phone"], BOB, "{rejected}");
    let seen = sim
        .handle()
        .wait_phone_call(BOB, WAIT, |c| c.call_id == second && c.action == "reject")
        .await
        .unwrap_or_else(|| panic!("{BOB} never saw the call rejected"));
    assert!(seen.from.starts_with(ALICE), "{seen:?}");
    // And the caller is answered, through the outbox like any message.
    let answer = sim
        .handle()
        .wait_phone_message(BOB, WAIT, |m| m.text.as_deref() == Some(REPLY))
        .await
        .unwrap_or_else(|| panic!("{BOB} never got the answer"));
    assert!(answer.from.starts_with(ALICE), "{answer:?}");
    let calls = sim.handle().phone_calls(BOB).unwrap_or_default();
    assert!(
        !calls
            .iter()
            .any(|c| c.call_id == first && c.action == "reject"),
        "{calls:?}"
    );
    gateway.stop().await;
}

/// The next `presence.update` about `phone` in `state`.
async fn presence_update(events: &mut Events, session: &str, phone: &str, state: &str) -> Value {
    events
        .wait("presence.update", session, |e| {
            e["event"] == "presence.update"
                && e["data"]["contact"]["phone"] == phone
                && e["data"]["state"] == state
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribed_contact_coming_online_and_typing_are_events_also_after_a_reconnect() {
    const CAROL: &str = "15550006363";
    let (sim, _dir, gateway, mut events) = world(Limits::default()).await;
    has_whatsapp(&sim, CAROL);
    let session = link_by_qr(&gateway, &mut events, &sim, ALICE).await;
    let handle = sim.handle();
    let subscribe = format!("/sessions/{session}/contacts/{CAROL}/presence/subscribe");

    let (status, body) = gateway.call(Method::POST, &subscribe, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({ "contact": format!("{CAROL}@s.whatsapp.net"), "subscribed": true, "changed": true })
    );
    // WhatsApp answers a subscription with where the contact is now.
    let now = presence_update(&mut events, &session, CAROL, "unavailable").await;
    assert_eq!(now["data"]["chat"], Value::Null, "{now}");

    handle.set_phone_presence(CAROL, true).unwrap();
    presence_update(&mut events, &session, CAROL, "available").await;
    handle
        .phone_typing(CAROL, ALICE, wasim::Typing::Composing)
        .unwrap();
    let typing = presence_update(&mut events, &session, CAROL, "composing").await;
    assert_eq!(typing["data"]["chat"], format!("{CAROL}@s.whatsapp.net"));
    handle.set_phone_presence(CAROL, false).unwrap();
    let away = presence_update(&mut events, &session, CAROL, "unavailable").await;
    assert!(away["data"]["last_seen"].is_string(), "{away}");

    // Asked again: kept, nothing changed.
    let (status, body) = gateway.call(Method::POST, &subscribe, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["changed"], false, "{body}");

    // WhatsApp forgets subscriptions with the connection; the session
    // subscribes again after it reconnects, and is answered again.
    handle.set_phone_presence(CAROL, true).unwrap();
    presence_update(&mut events, &session, CAROL, "available").await;
    assert!(handle.drop_all() >= 1);
    events.status(&session, "starting").await;
    events.status(&session, "working").await;
    presence_update(&mut events, &session, CAROL, "available").await;
    handle
        .phone_typing(CAROL, ALICE, wasim::Typing::Recording)
        .unwrap();
    presence_update(&mut events, &session, CAROL, "recording").await;

    let (status, body) = gateway
        .call(
            Method::POST,
            &format!("/sessions/{session}/contacts/{CAROL}/presence/unsubscribe"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["subscribed"], &body["changed"]),
        (&json!(false), &json!(true))
    );

    // A group is no contact.
    let (status, body) = gateway
        .call(
            Method::POST,
            &format!("/sessions/{session}/contacts/120363025246125486@g.us/presence/subscribe"),
            None,
        )
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (422, &json!("invalid_contact")),
        "{body}"
    );
}

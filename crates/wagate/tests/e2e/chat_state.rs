//! A chat's settings through WhatsApp's app state, both ways: what the
//! phone does to a chat (archive, mute) shows here with `chat.updated`, and
//! what the API does (pin, mute, read) shows on the phone, which decodes
//! the patches the session uploads.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use wasim::ChatAction;

use crate::helpers::*;

/// The linked number.
const ALICE: &str = "15550008181";
/// Someone who writes to it.
const BOB: &str = "15550008282";

const WAIT: Duration = Duration::from_secs(20);

fn jid(phone: &str) -> String {
    format!("{phone}@s.whatsapp.net")
}

/// Links Alice and has Bob write to her `count` times; the WhatsApp ids.
async fn bob_writes(
    sim: &wasim::Simulator,
    events: &mut Events,
    session: &str,
    count: usize,
) -> Vec<String> {
    let phones = sim.handle();
    phones.register_phone(BOB).unwrap_or_else(|e| panic!("{e}"));
    let mut ids = Vec::new();
    for i in 0..count {
        let id = phones
            .phone_send_text(BOB, ALICE, &format!("hello {i}"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        events.incoming(session, &id).await;
        ids.push(id);
    }
    ids
}

async fn chat_updated(events: &mut Events, session: &str, setting: &str) -> Value {
    events
        .wait(&format!("chat.updated ({setting})"), session, |e| {
            e["event"] == "chat.updated"
                && e["data"]["chat"] == jid(BOB)
                && e["data"]["setting"] == setting
        })
        .await
}

async fn bobs_chat(gateway: &Gateway, session: &str) -> Value {
    let (status, chats) = gateway
        .call(Method::GET, &format!("/sessions/{session}/chats"), None)
        .await;
    assert_eq!(status, 200, "{chats}");
    chats["data"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["id"] == jid(BOB)).cloned())
        .unwrap_or_else(|| panic!("no chat with Bob: {chats}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_archived_and_muted_on_the_phone_shows_here() {
    let (sim, _dir, gateway, mut events) = world(Limits::default()).await;
    let session = link_by_qr(&gateway, &mut events, &sim, ALICE).await;
    bob_writes(&sim, &mut events, &session, 1).await;
    let chat = bobs_chat(&gateway, &session).await;
    assert_eq!(chat["archived"], false, "{chat}");
    assert_eq!(chat["muted"], false, "{chat}");

    // The session has read the app state once: what changes next reaches
    // it by notification (one still in its first read would skip that).
    let phone = sim.handle();
    let device = device_of(&sim, ALICE);
    assert!(
        phone.wait_app_state_synced(ALICE, device, WAIT).await,
        "the session never read its app state"
    );
    phone
        .phone_chat_action(ALICE, BOB, ChatAction::Archive)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let event = chat_updated(&mut events, &session, "archived").await;
    assert_eq!(event["data"]["archived"], true, "{event}");
    assert_eq!(event["data"]["pinned"], false, "{event}");
    assert_eq!(bobs_chat(&gateway, &session).await["archived"], true);

    // Muted for eight hours on the phone: the end time comes along.
    let until_ms = chrono::Utc::now().timestamp_millis() + 8 * 3_600_000;
    phone
        .phone_chat_action(ALICE, BOB, ChatAction::Mute(Some(until_ms)))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let event = chat_updated(&mut events, &session, "muted").await;
    assert_eq!(event["data"]["muted"], true, "{event}");
    assert_eq!(event["data"]["archived"], true, "{event}");
    let chat = bobs_chat(&gateway, &session).await;
    let shown = chat["muted_until"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp_millis());
    assert_eq!(shown, Some(until_ms), "{chat}");

    // Unarchived on the phone.
    phone
        .phone_chat_action(ALICE, BOB, ChatAction::Unarchive)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let event = chat_updated(&mut events, &session, "archived").await;
    assert_eq!(event["data"]["archived"], false, "{event}");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_pinned_muted_and_read_here_shows_on_the_phone() {
    let (sim, _dir, gateway, mut events) = world(Limits::default()).await;
    let session = link_by_qr(&gateway, &mut events, &sim, ALICE).await;
    let ids = bob_writes(&sim, &mut events, &session, 2).await;
    assert_eq!(bobs_chat(&gateway, &session).await["unread"], 2);
    let phone = sim.handle();
    let chat_path = format!("/sessions/{session}/chats/{BOB}");

    let (status, body) = gateway
        .call(Method::POST, &format!("{chat_path}/pin"), None)
        .await;
    assert_eq!(status, 204, "{body}");
    let event = chat_updated(&mut events, &session, "pinned").await;
    assert_eq!(event["data"]["pinned"], true, "{event}");
    assert_eq!(bobs_chat(&gateway, &session).await["pinned"], true);
    let seen = phone.wait_phone_chat(ALICE, BOB, WAIT, |c| c.pinned).await;
    assert!(seen.is_some(), "the phone never showed the chat pinned");

    // Muted for ever, then until a time: the phone shows each.
    let (status, body) = gateway
        .call(Method::POST, &format!("{chat_path}/mute"), Some(json!({})))
        .await;
    assert_eq!(status, 204, "{body}");
    let seen = phone
        .wait_phone_chat(ALICE, BOB, WAIT, |c| c.muted && c.muted_until_ms.is_none())
        .await;
    assert!(
        seen.is_some(),
        "the phone never showed the chat muted for ever"
    );
    let until = chrono::Utc::now() + chrono::Duration::hours(2);
    let (status, body) = gateway
        .call(
            Method::POST,
            &format!("{chat_path}/mute"),
            Some(json!({ "until": until.to_rfc3339() })),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let seen = phone
        .wait_phone_chat(ALICE, BOB, WAIT, |c| {
            c.muted_until_ms == Some(until.timestamp_millis())
        })
        .await;
    assert!(seen.is_some(), "the phone never showed the mute's end");
    let (status, body) = gateway
        .call(Method::POST, &format!("{chat_path}/unmute"), None)
        .await;
    assert_eq!(status, 204, "{body}");
    let seen = phone.wait_phone_chat(ALICE, BOB, WAIT, |c| !c.muted).await;
    assert!(seen.is_some(), "the phone never showed the chat unmuted");

    // Reading resets the unread count and marks the chat read on the phone.
    let (status, body) = gateway
        .call(
            Method::POST,
            &format!("{chat_path}/read"),
            Some(json!({ "message_ids": ids })),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let event = chat_updated(&mut events, &session, "read").await;
    assert_eq!(event["data"]["unread"], 0, "{event}");
    assert_eq!(bobs_chat(&gateway, &session).await["unread"], 0);
    let seen = phone
        .wait_phone_chat(ALICE, BOB, WAIT, |c| c.read == Some(true))
        .await;
    assert!(seen.is_some(), "the phone never showed the chat read");
    // Still pinned: each setting is its own.
    assert_eq!(bobs_chat(&gateway, &session).await["pinned"], true);

    // Bad input.
    let (status, error) = gateway
        .call(
            Method::POST,
            &format!("/sessions/{session}/chats/15550009999/archive"),
            None,
        )
        .await;
    assert_eq!(status, 404, "{error}");
    assert_eq!(error["error"]["code"], "chat_not_found");
    let (status, error) = gateway
        .call(
            Method::POST,
            &format!("{chat_path}/mute"),
            Some(json!({ "until": "2001-01-01T00:00:00Z" })),
        )
        .await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["error"]["code"], "invalid_until");

    // Nothing to change it on while the session is stopped.
    let (status, _) = gateway
        .call(Method::POST, &format!("/sessions/{session}/stop"), None)
        .await;
    assert_eq!(status, 200);
    let (status, error) = gateway
        .call(Method::POST, &format!("{chat_path}/unpin"), None)
        .await;
    assert_eq!(status, 409, "{error}");
    assert_eq!(error["error"]["code"], "not_started");
    gateway.stop().await;
}

//! The chat list and a chat's messages: kept by what the session receives
//! and sends, paged both ways without gaps or repeats.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::messaging::send;

/// The linked number.
const ALICE: &str = "15550005555";
/// Two people who write to it.
const BOB: &str = "15550006666";
const CAROL: &str = "15550007777";

fn jid(phone: &str) -> String {
    format!("{phone}@s.whatsapp.net")
}

/// `GET path`, as the gateway answers it.
pub(crate) async fn get(gateway: &Gateway, path: &str) -> (u16, Value) {
    gateway.call(Method::GET, path, None).await
}

/// The text bodies of a page of messages, in its order.
pub(crate) fn bodies(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .map(|messages| {
            messages
                .iter()
                .map(|m| {
                    m["content"]["body"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chats_list_by_activity_and_page_their_messages_both_ways() {
    let (sim, _dir, gateway, mut events) = world(Limits::default()).await;
    let session = link_by_qr(&gateway, &mut events, &sim, ALICE).await;
    let phones = sim.handle();
    for phone in [BOB, CAROL] {
        phones
            .register_phone(phone)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    for i in 1..=7 {
        let id = phones
            .phone_send_text(BOB, ALICE, &format!("b{i}"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        events.incoming(&session, &id).await;
    }
    let id = phones
        .phone_send_text(CAROL, ALICE, "c1")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    events.incoming(&session, &id).await;

    // Carol wrote last; Bob has seven unread.
    let (status, chats) = get(&gateway, &format!("/sessions/{session}/chats")).await;
    assert_eq!(status, 200, "{chats}");
    assert_eq!(chats["data"][0]["id"], jid(CAROL), "{chats}");
    assert_eq!(chats["data"][1]["id"], jid(BOB), "{chats}");
    assert_eq!(chats["data"][1]["kind"], "person");
    assert_eq!(chats["data"][1]["unread"], 7);
    assert_eq!(chats["data"][1]["last_message"]["content"]["body"], "b7");
    assert_eq!(chats["next_cursor"], Value::Null);
    // One at a time, by the cursor.
    let (_, first) = get(&gateway, &format!("/sessions/{session}/chats?limit=1")).await;
    assert_eq!(first["data"][0]["id"], jid(CAROL));
    let cursor = first["next_cursor"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (_, second) = get(
        &gateway,
        &format!("/sessions/{session}/chats?limit=1&cursor={cursor}"),
    )
    .await;
    assert_eq!(second["data"][0]["id"], jid(BOB), "{second}");
    assert_eq!(second["next_cursor"], Value::Null);

    // Back from the newest, three at a time.
    let messages = format!("/sessions/{session}/chats/{BOB}/messages?limit=3");
    let mut seen = Vec::new();
    let (status, mut page) = get(&gateway, &messages).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["next_after"], Value::Null, "the newest page: {page}");
    loop {
        seen.extend(bodies(&page));
        let Some(before) = page["next_before"].as_str().map(str::to_string) else {
            break;
        };
        page = get(&gateway, &format!("{messages}&before={before}"))
            .await
            .1;
        assert!(page["next_after"].is_string(), "newer ones exist: {page}");
    }
    assert_eq!(seen, ["b7", "b6", "b5", "b4", "b3", "b2", "b1"]);
    // Forward from the oldest: the three closest to it first.
    let oldest = page["data"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (_, mut page) = get(&gateway, &format!("{messages}&after={oldest}")).await;
    let mut forward = Vec::new();
    loop {
        assert!(page["next_before"].is_string(), "older ones exist: {page}");
        let mut newest_first = bodies(&page);
        newest_first.reverse();
        forward.extend(newest_first);
        let Some(after) = page["next_after"].as_str().map(str::to_string) else {
            break;
        };
        page = get(&gateway, &format!("{messages}&after={after}")).await.1;
    }
    assert_eq!(forward, ["b2", "b3", "b4", "b5", "b6", "b7"]);

    // Answering Bob reads his chat and brings it to the top.
    let (status, sent) = send(
        &gateway,
        &session,
        json!({ "to": BOB, "text": { "body": "hi Bob" } }),
    )
    .await;
    assert_eq!(status, 202, "{sent}");
    let (_, chats) = get(&gateway, &format!("/sessions/{session}/chats")).await;
    assert_eq!(chats["data"][0]["id"], jid(BOB), "{chats}");
    assert_eq!(chats["data"][0]["unread"], 0);
    assert_eq!(chats["data"][0]["last_message"]["id"], sent["id"]);
    let (_, newest) = get(
        &gateway,
        &format!("/sessions/{session}/chats/{BOB}/messages?limit=1"),
    )
    .await;
    assert_eq!(newest["data"][0]["direction"], "outgoing", "{newest}");

    // No such chat, and no chat at all.
    let (status, body) = get(
        &gateway,
        &format!("/sessions/{session}/chats/15550009999/messages"),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "chat_not_found");
    let (status, body) = get(&gateway, &format!("/sessions/{session}/chats/bob/messages")).await;
    assert_eq!(status, 422, "{body}");
}

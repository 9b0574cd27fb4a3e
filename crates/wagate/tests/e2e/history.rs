//! History after linking: the phone's existing chats (a person, a group, a
//! person known by LID only; 200 messages) arrive as history-sync chunks,
//! are reported as `history.sync` events (not one `message.received`
//! each) and stored as chats and messages that page both ways; a live
//! message afterwards is stored once and moves its chat to the top; with
//! `history: none` nothing is kept.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use wasim::{HistoryChat, HistoryMessage, HistorySeed};

use crate::chats::{bodies, get};
use crate::helpers::*;

/// The linked number.
const ALICE: &str = "15550015555";
/// A person with an account (so a number and a LID the phone maps).
const BOB: &str = "15550016666";
const CAROL: &str = "15550017777";
const GROUP: &str = "120363000000000042@g.us";
/// A person the phone knows by LID only.
const DAVE: &str = "987654321098765@lid";

fn jid(phone: &str) -> String {
    format!("{phone}@s.whatsapp.net")
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn message(
    at: u64,
    text: String,
    from_me: bool,
    sender: Option<&str>,
    name: &str,
) -> HistoryMessage {
    HistoryMessage {
        id: Some(format!("HIST{}", text.to_uppercase())),
        from_me,
        sender: sender.map(str::to_string),
        push_name: (!from_me).then(|| name.to_string()),
        timestamp: at,
        text,
    }
}

/// Bob's chat is the oldest, then the group, then Dave's (newest): 100,
/// 60 and 40 messages, every third one written by the phone's owner.
fn seed() -> HistorySeed {
    let base = now() - 10 * 86_400;
    let bob = (0..100)
        .map(|i| {
            message(
                base + i * 60,
                format!("b{i}"),
                i.is_multiple_of(3),
                None,
                "Bob",
            )
        })
        .collect();
    let group = (0..60)
        .map(|i: u64| {
            let (who, name) = if i.is_multiple_of(2) {
                (BOB, "Bob")
            } else {
                (CAROL, "Carol")
            };
            message(
                base + 20_000 + i * 60,
                format!("g{i}"),
                i.is_multiple_of(3),
                Some(who),
                name,
            )
        })
        .collect();
    let dave = (0..40)
        .map(|i: u64| {
            message(
                base + 40_000 + i * 60,
                format!("d{i}"),
                i.is_multiple_of(3),
                None,
                "Dave",
            )
        })
        .collect();
    HistorySeed {
        chats: vec![
            HistoryChat {
                jid: jid(BOB),
                name: None,
                unread: 2,
                messages: bob,
            },
            HistoryChat {
                jid: GROUP.into(),
                name: Some("Team".into()),
                unread: 0,
                messages: group,
            },
            HistoryChat {
                jid: DAVE.into(),
                name: None,
                unread: 1,
                messages: dave,
            },
        ],
        push_names: vec![],
    }
}

/// Creates a session with `history`, links `phone` to it by QR code and
/// waits for `working`; returns the session and the `history.sync` events
/// that came meanwhile (the first chunks may come before `working`).
async fn link_with(
    gateway: &Gateway,
    events: &mut Events,
    sim: &wasim::Simulator,
    phone: &str,
    history: &str,
) -> (String, Vec<Value>) {
    let (status, body) = gateway
        .call(
            Method::POST,
            "/sessions",
            Some(json!({ "history": history })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["history"], history, "{body}");
    let id = body["id"].as_str().unwrap_or_default().to_string();
    let code = events.qr(&id).await;
    sim.handle()
        .scan_qr(phone, &code)
        .unwrap_or_else(|e| panic!("scan: {e}"));
    let mut synced = Vec::new();
    loop {
        let event = events.next("working").await;
        if event["session_id"] != id.as_str() {
            continue;
        }
        assert_ne!(event["event"], "message.received", "{event}");
        if event["event"] == "history.sync" {
            synced.push(event);
        } else if event["event"] == "session.status" && event["data"]["status"] == "working" {
            return (id, synced);
        }
    }
}

/// Every message of a chat, newest first, `limit` at a time back with
/// `before`; then oldest first forward with `after`. Both must hold each
/// message once.
async fn page_both_ways(gateway: &Gateway, session: &str, chat: &str) -> Vec<String> {
    let messages = format!("/sessions/{session}/chats/{chat}/messages?limit=30");
    let (status, mut page) = get(gateway, &messages).await;
    assert_eq!(status, 200, "{page}");
    let mut back = Vec::new();
    loop {
        for m in page["data"].as_array().into_iter().flatten() {
            assert_eq!(m["from_history"], true, "{m}");
        }
        back.extend(bodies(&page));
        let Some(before) = page["next_before"].as_str().map(str::to_string) else {
            break;
        };
        page = get(gateway, &format!("{messages}&before={before}")).await.1;
    }
    let oldest = page["data"]
        .as_array()
        .and_then(|d| d.last())
        .and_then(|m| m["id"].as_str())
        .unwrap_or_default()
        .to_string();
    let mut forward = vec![bodies(&page).last().cloned().unwrap_or_default()];
    let (_, mut page) = get(gateway, &format!("{messages}&after={oldest}")).await;
    loop {
        let mut newest_first = bodies(&page);
        newest_first.reverse();
        forward.extend(newest_first);
        let Some(after) = page["next_after"].as_str().map(str::to_string) else {
            break;
        };
        page = get(gateway, &format!("{messages}&after={after}")).await.1;
    }
    let mut reversed = back.clone();
    reversed.reverse();
    assert_eq!(forward, reversed, "forward and back disagree");
    let unique: HashSet<&String> = back.iter().collect();
    assert_eq!(unique.len(), back.len(), "a message twice: {back:?}");
    back
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_after_linking_is_stored_as_chats_and_messages() {
    let (sim, _dir, gateway, mut events) = world(Limits::default()).await;
    let phones = sim.handle();
    for phone in [BOB, CAROL] {
        phones
            .register_phone(phone)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let seeded = phones
        .seed_history(ALICE, seed())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(seeded, 200);
    let (session, mut synced) = link_with(&gateway, &mut events, &sim, ALICE, "recent").await;

    // Chunks until all 200 are stored, and none as a message.received.
    let mut stored = 0;
    let mut kinds = Vec::new();
    while stored < 200 || !kinds.contains(&"push_name".to_string()) {
        let event = if synced.is_empty() {
            events.next("history.sync events").await
        } else {
            synced.remove(0)
        };
        if event["session_id"] != session.as_str() {
            continue;
        }
        assert_ne!(event["event"], "message.received", "{event}");
        if event["event"] == "history.sync" {
            stored += event["data"]["messages"].as_u64().unwrap_or_default();
            kinds.push(
                event["data"]["sync_type"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            );
            assert!(event["data"]["chunk_order"].is_u64(), "{event}");
        }
    }
    assert_eq!(stored, 200);
    assert_eq!(kinds[0], "initial_bootstrap", "{kinds:?}");
    assert!(kinds.contains(&"recent".to_string()), "{kinds:?}");
    // Every chunk was acknowledged to the phone.
    let chunks = phones
        .wait_history_chunks(ALICE, Duration::from_secs(30), |c| {
            c.len() == 4 && c.iter().all(|c| c.acknowledged)
        })
        .await;
    assert!(chunks.is_some(), "{:?}", phones.history_chunks(ALICE));

    // Latest activity first, each with its name and last message.
    let (status, chats) = get(&gateway, &format!("/sessions/{session}/chats")).await;
    assert_eq!(status, 200, "{chats}");
    let ids: Vec<&str> = chats["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(ids, [DAVE, GROUP, jid(BOB).as_str()], "{chats}");
    let [dave, group, bob] = [&chats["data"][0], &chats["data"][1], &chats["data"][2]];
    assert_eq!(dave["name"], "Dave", "{dave}");
    assert_eq!(dave["last_message"]["content"]["body"], "d39");
    assert_eq!(dave["unread"], 1);
    assert_eq!(group["kind"], "group");
    assert_eq!(group["name"], "Team", "{group}");
    assert_eq!(group["last_message"]["content"]["body"], "g59");
    assert_eq!(bob["name"], "Bob", "{bob}");
    assert_eq!(bob["unread"], 2);
    assert_eq!(bob["last_message"]["content"]["body"], "b99");
    assert_eq!(bob["last_message"]["from_history"], true);

    // Each chat's messages, both ways, without gaps or repeats.
    let expect = |prefix: &str, n: usize| -> Vec<String> {
        (0..n).rev().map(|i| format!("{prefix}{i}")).collect()
    };
    assert_eq!(
        page_both_ways(&gateway, &session, BOB).await,
        expect("b", 100)
    );
    assert_eq!(
        page_both_ways(&gateway, &session, GROUP).await,
        expect("g", 60)
    );
    assert_eq!(
        page_both_ways(&gateway, &session, DAVE).await,
        expect("d", 40)
    );
    // Both directions and the senders kept.
    let (_, newest) = get(
        &gateway,
        &format!("/sessions/{session}/chats/{GROUP}/messages?limit=3"),
    )
    .await;
    assert_eq!(newest["data"][0]["sender"]["phone"], CAROL, "{newest}");
    assert_eq!(newest["data"][0]["push_name"], "Carol", "{newest}");
    assert_eq!(newest["data"][0]["from_me"], false, "{newest}");
    assert_eq!(newest["data"][1]["sender"]["phone"], BOB, "{newest}");
    assert_eq!(
        newest["data"][2]["from_me"], true,
        "g57 is the owner's: {newest}"
    );

    // A live message arrives once and brings Bob's chat to the top.
    let id = phones
        .phone_send_text(BOB, ALICE, "live")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let event = events.incoming(&session, &id).await;
    assert_eq!(event["event"], "message.received");
    let (_, chats) = get(&gateway, &format!("/sessions/{session}/chats")).await;
    assert_eq!(chats["data"][0]["id"], jid(BOB), "{chats}");
    assert_eq!(chats["data"][0]["unread"], 3, "{chats}");
    let (_, newest) = get(
        &gateway,
        &format!("/sessions/{session}/chats/{BOB}/messages?limit=2"),
    )
    .await;
    assert_eq!(bodies(&newest), ["live", "b99"], "{newest}");
    assert_eq!(newest["data"][0]["from_history"], false);
    assert_eq!(chats["data"].as_array().map(Vec::len), Some(3), "{chats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_history_none_nothing_is_kept() {
    let (sim, _dir, gateway, mut events) = world(Limits::default()).await;
    let phones = sim.handle();
    for phone in [BOB, CAROL] {
        phones
            .register_phone(phone)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    phones
        .seed_history(ALICE, seed())
        .unwrap_or_else(|e| panic!("{e}"));
    let (session, synced) = link_with(&gateway, &mut events, &sim, ALICE, "none").await;
    assert!(synced.is_empty(), "{synced:?}");
    let chunks = phones
        .wait_history_chunks(ALICE, Duration::from_secs(30), |c| {
            c.len() == 4 && c.iter().all(|c| c.acknowledged)
        })
        .await;
    assert!(chunks.is_some(), "{:?}", phones.history_chunks(ALICE));
    // A live message after the history: only it is stored.
    let id = phones
        .phone_send_text(BOB, ALICE, "live")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    events.incoming(&session, &id).await;
    let (_, chats) = get(&gateway, &format!("/sessions/{session}/chats")).await;
    assert_eq!(chats["data"].as_array().map(Vec::len), Some(1), "{chats}");
    let (_, messages) = get(
        &gateway,
        &format!("/sessions/{session}/chats/{BOB}/messages"),
    )
    .await;
    assert_eq!(bodies(&messages), ["live"], "{messages}");

    // The setting changes like the others.
    let (status, body) = gateway
        .call(
            Method::PATCH,
            &format!("/sessions/{session}"),
            Some(json!({ "history": "full" })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["history"], "full");
}

/// Bob's chat: 15 messages of half a year ago (`o0`..`o14`), then 25 of
/// last week (`n0`..`n24`): the bootstrap carries the newest 20, a recent
/// chunk the other 5, and the old ones go only in a full chunk.
fn old_and_new() -> HistorySeed {
    let old = now() - 180 * 86_400;
    let new = now() - 7 * 86_400;
    let messages = (0..15)
        .map(|i| message(old + i * 60, format!("o{i}"), false, None, "Bob"))
        .chain((0..25).map(|i| message(new + i * 60, format!("n{i}"), false, None, "Bob")))
        .collect();
    HistorySeed {
        chats: vec![HistoryChat {
            jid: jid(BOB),
            name: None,
            unread: 0,
            messages,
        }],
        push_names: vec![],
    }
}

/// A gateway linked to Alice's phone, its history stored.
struct Synced {
    sim: wasim::Simulator,
    _dir: DataDir,
    gateway: Gateway,
    events: Events,
    session: String,
    /// The `history.sync` events' kinds, in order.
    kinds: Vec<String>,
}

/// Links with `history` and waits until `expected` messages came in
/// `history.sync` events.
async fn link_and_sync(history: &str, expected: u64) -> Synced {
    let (sim, dir, gateway, mut events) = world(Limits::default()).await;
    let phones = sim.handle();
    phones.register_phone(BOB).unwrap_or_else(|e| panic!("{e}"));
    let seeded = phones
        .seed_history(ALICE, old_and_new())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(seeded, 40);
    let (session, mut synced) = link_with(&gateway, &mut events, &sim, ALICE, history).await;
    let mut stored = 0;
    let mut kinds = Vec::new();
    while stored < expected {
        let event = if synced.is_empty() {
            events.next("history.sync events").await
        } else {
            synced.remove(0)
        };
        if event["session_id"] == session.as_str() && event["event"] == "history.sync" {
            stored += event["data"]["messages"].as_u64().unwrap_or_default();
            kinds.push(
                event["data"]["sync_type"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            );
        }
    }
    assert_eq!(stored, expected, "{kinds:?}");
    // Every chunk the phone sent was acknowledged: with `full` the phone
    // sent a fourth, the full one.
    let chunks = if history == "full" { 4 } else { 3 };
    let sent = phones
        .wait_history_chunks(ALICE, Duration::from_secs(30), |c| {
            c.len() == chunks && c.iter().all(|c| c.acknowledged)
        })
        .await;
    assert!(sent.is_some(), "{:?}", phones.history_chunks(ALICE));
    Synced {
        sim,
        _dir: dir,
        gateway,
        events,
        session,
        kinds,
    }
}

fn old_then_new(old: usize) -> Vec<String> {
    (0..25)
        .rev()
        .map(|i| format!("n{i}"))
        .chain((0..old).rev().map(|i| format!("o{i}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_history_full_the_phone_sends_the_old_messages_too() {
    let s = link_and_sync("full", 40).await;
    assert!(s.kinds.contains(&"full".to_string()), "{:?}", s.kinds);
    assert_eq!(
        page_both_ways(&s.gateway, &s.session, BOB).await,
        old_then_new(15)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_history_recent_the_old_messages_stay_on_the_phone() {
    let s = link_and_sync("recent", 25).await;
    assert!(!s.kinds.contains(&"full".to_string()), "{:?}", s.kinds);
    assert_eq!(
        page_both_ways(&s.gateway, &s.session, BOB).await,
        old_then_new(0)
    );
}

/// Asks for `count` older messages of Bob's chat; returns the answer.
async fn ask_older(s: &Synced, count: Value) -> (u16, Value) {
    s.gateway
        .call(
            Method::POST,
            &format!("/sessions/{}/chats/{BOB}/history", s.session),
            Some(json!({ "count": count })),
        )
        .await
}

/// Waits for the session's next on-demand `history.sync` event (the push
/// names chunk may still come before it); returns it.
async fn next_sync(s: &mut Synced) -> Value {
    loop {
        let event = s.events.next("an on-demand history.sync").await;
        if event["session_id"] == s.session.as_str()
            && event["event"] == "history.sync"
            && event["data"]["sync_type"] == "on_demand"
        {
            return event;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_messages_come_on_demand() {
    // With `recent` the 15 old messages stay on the phone.
    let mut s = link_and_sync("recent", 25).await;

    let (status, body) = ask_older(&s, json!(10)).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["chat"], jid(BOB), "{body}");
    assert_eq!(body["count"], 10, "{body}");
    let event = next_sync(&mut s).await;
    assert_eq!(event["data"]["sync_type"], "on_demand", "{event}");
    assert_eq!(event["data"]["messages"], 10, "{event}");
    // The ten before the oldest stored (n0), each once.
    assert_eq!(
        page_both_ways(&s.gateway, &s.session, BOB).await,
        old_then_new(15)[..35].to_vec()
    );

    // The rest, then nothing more.
    let (status, body) = ask_older(&s, json!(100)).await;
    assert_eq!(status, 202, "{body}");
    let event = next_sync(&mut s).await;
    assert_eq!(event["data"]["messages"], 5, "{event}");
    assert_eq!(
        page_both_ways(&s.gateway, &s.session, BOB).await,
        old_then_new(15)
    );
    let (status, body) = ask_older(&s, json!(100)).await;
    assert_eq!(status, 202, "{body}");
    let event = next_sync(&mut s).await;
    assert_eq!(event["data"]["messages"], 0, "{event}");
    // Every answer was an acknowledged on-demand chunk.
    let phones = s.sim.handle();
    let chunks = phones
        .wait_history_chunks(ALICE, Duration::from_secs(30), |c| {
            c.iter().filter(|c| c.sync_type == "ON_DEMAND").count() == 3
                && c.iter().all(|c| c.acknowledged)
        })
        .await;
    assert!(chunks.is_some(), "{:?}", phones.history_chunks(ALICE));

    // Refused: a count out of range, a chat without messages, a session
    // that is not working.
    for count in [json!(0), json!(101)] {
        let (status, body) = ask_older(&s, count).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["error"]["code"], "invalid_count", "{body}");
    }
    let (status, body) = s
        .gateway
        .call(
            Method::POST,
            &format!("/sessions/{}/chats/{CAROL}/history", s.session),
            Some(json!({ "count": 5 })),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "chat_not_found", "{body}");
    let (status, body) = s
        .gateway
        .call(Method::POST, &format!("/sessions/{}/stop", s.session), None)
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = ask_older(&s, json!(5)).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"]["code"].is_string(), "{body}");
}

//! The gateway as a separate process, killed with SIGKILL while messages
//! are queued, arriving, or waiting for a webhook receiver: after a
//! restart every accepted message reaches the phone once, under the id it
//! was given when it was accepted; every message that arrived is stored
//! once; every event reaches the receiver.

use std::collections::{HashMap, HashSet};

use reqwest::Method;
use serde_json::{Value, json};

use tokio::process::Child;

use crate::deliveries::{Side, assert_all_arrived_once_in_order};
use crate::helpers::*;

const ALICE: &str = "15550007777";
const BOB: &str = "15550008888";
const MESSAGES: usize = 500;

/// Creates an organization with the admin commands; returns its token.
async fn org_with_token(dir: &DataDir, sim: &wasim::Simulator) -> String {
    admin(dir, sim, &["org", "create", "acme"]).await;
    let printed = admin(dir, sim, &["token", "create", "--org", "acme"]).await;
    printed
        .split_whitespace()
        .find(|word| word.starts_with("wag_"))
        .unwrap_or_else(|| panic!("no token in {printed:?}"))
        .to_string()
}

/// Starts `wagate serve` and waits for it to listen.
async fn serve(dir: &DataDir, sim: &wasim::Simulator, port: u16) -> Child {
    GatewayProcess::serve(
        dir,
        sim,
        port,
        &[
            ("WAGATE_LOG", "info"),
            // Webhook receivers listen on loopback; their outages are short.
            ("WAGATE_ALLOW_PRIVATE_NETWORK", "true"),
            ("WAGATE_WEBHOOK_BACKOFF_BASE_MS", "50"),
            ("WAGATE_WEBHOOK_BACKOFF_MAX_SECS", "1"),
            ("WAGATE_WEBHOOK_POLL_INTERVAL_MS", "50"),
        ],
    )
    .await
    .child
}

/// SIGKILL, and wait until the process is gone.
async fn sigkill(child: &mut Child) {
    child
        .start_kill()
        .unwrap_or_else(|e| panic!("SIGKILL: {e}"));
    let _ = child.wait().await;
}

/// `from` sends `to` `count` texts ("{prefix} {n}"), whatever the gateway
/// is doing; the task returns their ids.
fn keep_writing(
    sim: &wasim::Simulator,
    from: &'static str,
    to: &'static str,
    count: usize,
    prefix: &'static str,
) -> tokio::task::JoinHandle<Vec<String>> {
    let phones = sim.handle();
    tokio::spawn(async move {
        let mut ids = Vec::with_capacity(count);
        for n in 0..count {
            let id = phones
                .phone_send_text(from, to, &format!("{prefix} {n}"))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            ids.push(id);
        }
        ids
    })
}

/// A `wagate serve` process on a fresh data directory, with a session
/// linked to one phone number and another number on WhatsApp.
struct ProcessWorld {
    sim: wasim::Simulator,
    dir: DataDir,
    port: u16,
    child: Child,
    gateway: Gateway,
    events: Events,
    session: String,
}

async fn process_world(linked: &str, other: &str) -> ProcessWorld {
    let sim = simulator().await;
    let dir = DataDir::new().await;
    let token = org_with_token(&dir, &sim).await;
    let port = free_port();
    let child = serve(&dir, &sim, port).await;
    let gateway = Gateway::at(port, token);
    let mut events = gateway.events().await;
    let session = link_by_qr(&gateway, &mut events, &sim, linked).await;
    sim.handle()
        .register_phone(other)
        .unwrap_or_else(|e| panic!("{e}"));
    ProcessWorld {
        sim,
        dir,
        port,
        child,
        gateway,
        events,
        session,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_messages_survive_sigkill_and_reach_the_phone_once() {
    let ProcessWorld {
        sim,
        dir,
        port,
        mut child,
        gateway,
        events,
        session,
    } = process_world(ALICE, BOB).await;

    // Accept them all, then kill the process mid-delivery.
    let mut accepted: HashMap<String, String> = HashMap::new();
    for n in 0..MESSAGES {
        let text = format!("message {n}");
        let (status, body) = gateway
            .call(
                Method::POST,
                &format!("/sessions/{session}/messages"),
                Some(json!({ "to": BOB, "text": { "body": text } })),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        let wa_id = body["wa_id"].as_str().unwrap_or_default().to_string();
        accepted.insert(wa_id, text);
    }
    sigkill(&mut child).await;
    drop(events);

    let _child = serve(&dir, &sim, port).await;
    // Everything arrives: wait for the phone to hold every id.
    let ours = |all: &[wasim::PhoneMessage]| -> Vec<(String, String, u32)> {
        all.iter()
            .filter(|m| accepted.contains_key(&m.id))
            .map(|m| (m.id.clone(), m.text.clone().unwrap_or_default(), m.arrivals))
            .collect()
    };
    let arrived = sim
        .handle()
        .wait_phone_messages(BOB, WAIT, |all| ours(all).len() == MESSAGES)
        .await
        .is_some();
    let shown = ours(&sim.handle().phone_messages(BOB).unwrap_or_default());
    assert!(
        arrived,
        "after the restart the phone shows {} of {MESSAGES}",
        shown.len()
    );
    // Once each (a resend of an unacknowledged one arrives twice and is
    // shown once), each text under the one id it was accepted with.
    let ids: HashSet<&String> = shown.iter().map(|(id, _, _)| id).collect();
    assert_eq!(ids.len(), MESSAGES);
    for (id, text, _) in &shown {
        assert_eq!(accepted.get(id), Some(text));
    }
    let resent = shown
        .iter()
        .filter(|(_, _, arrivals)| *arrivals > 1)
        .count();
    eprintln!("{resent} of {MESSAGES} arrived twice (sent before the kill, unacknowledged)");
    // And none of them failed.
    let (_, pending) = gateway
        .call(
            Method::GET,
            &format!("/sessions/{session}/messages?status=failed"),
            None,
        )
        .await;
    assert_eq!(pending["data"], Value::Array(vec![]), "{pending}");
}

/// Messages the phone sends while the gateway is killed mid-stream.
const INBOUND: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_messages_survive_sigkill_each_one_event_and_a_resume_misses_none() {
    const CAROL: &str = "15550009999";
    const DAVE: &str = "15550001010";
    let ProcessWorld {
        sim,
        dir,
        port,
        mut child,
        gateway,
        mut events,
        session,
    } = process_world(CAROL, DAVE).await;

    // Dave keeps writing, whatever the gateway is doing.
    let sender = keep_writing(&sim, DAVE, CAROL, INBOUND, "inbound");

    // Some arrive; the client remembers the last event it saw; SIGKILL.
    let mut seen: Vec<String> = Vec::new();
    let mut last_event = String::new();
    while seen.len() < 20 {
        let event = events
            .wait("an incoming message", &session, |e| {
                e["event"] == "message.received"
            })
            .await;
        seen.push(
            event["data"]["wa_id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
        last_event = event["id"].as_str().unwrap_or_default().to_string();
    }
    sigkill(&mut child).await;
    drop(events);

    let _child = serve(&dir, &sim, port).await;
    let sent: HashSet<String> = sender
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .collect();
    assert_eq!(sent.len(), INBOUND);
    // Resumed after the last event seen: the log's events, then live ones,
    // until every message the phone sent was reported. Each exactly once.
    let mut resumed = gateway
        .events_with(&format!(
            "since={last_event}&events=message.received&session_id={session}"
        ))
        .await;
    let mut all: HashSet<String> = seen.iter().cloned().collect();
    assert_eq!(all.len(), seen.len());
    while all.len() < INBOUND {
        let event = resumed.next("the rest of the messages").await;
        let wa_id = event["data"]["wa_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(sent.contains(&wa_id), "an event for a message nobody sent");
        assert!(all.insert(wa_id.clone()), "{wa_id} reported twice");
    }
    // And stored once each.
    assert_eq!(incoming_wa_ids(&gateway, &session).await.len(), INBOUND);
}

/// The WhatsApp ids of every message `session` stored as received, newest
/// first, every page.
async fn incoming_wa_ids(gateway: &Gateway, session: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut before = String::new();
    loop {
        let (status, page) = gateway
            .call(
                Method::GET,
                &format!("/sessions/{session}/messages?direction=incoming&limit=100{before}"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{page}");
        ids.extend(
            page["data"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| m["wa_id"].as_str().map(str::to_string)),
        );
        match page["next_before"].as_str() {
            Some(next) => before = format!("&before={next}"),
            None => return ids,
        }
    }
}

/// Messages the phone sends while webhook deliveries are refused and the
/// gateway is killed.
const INBOUND_UNDELIVERED: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_webhook_deliveries_survive_sigkill_and_every_event_arrives_once() {
    const ERIN: &str = "15550002020";
    const FRANK: &str = "15550003030";
    let ProcessWorld {
        sim,
        dir,
        port,
        mut child,
        gateway,
        mut events,
        session,
    } = process_world(ERIN, FRANK).await;
    let mut erin = Side::subscribe(&gateway, session.clone(), ERIN, &["message.received"]).await;
    // The receiver is down: every delivery stays pending.
    erin.hook
        .answer(|_, _| axum::http::StatusCode::SERVICE_UNAVAILABLE);

    let sender = keep_writing(&sim, FRANK, ERIN, INBOUND_UNDELIVERED, "undelivered");
    // Messages are coming in, their deliveries refused: SIGKILL.
    for n in 0..20 {
        events
            .wait(&format!("incoming message {n}"), &session, |e| {
                e["event"] == "message.received"
            })
            .await;
    }
    erin.hook
        .wait_until("refused attempts", |got| got.len() >= 3)
        .await;
    assert!(erin.hook.delivered().is_empty());
    sigkill(&mut child).await;
    drop(events);
    while let Ok(request) = erin.hook.rx.try_recv() {
        erin.hook.got.push(request);
    }
    let before_restart = erin.hook.got.len();

    // Back, receiver and gateway: every message reported once, in order.
    erin.hook.answer(|_, _| axum::http::StatusCode::OK);
    let _child = serve(&dir, &sim, port).await;
    let sent = sender.await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        sent.iter().collect::<HashSet<_>>().len(),
        INBOUND_UNDELIVERED
    );
    erin.wait_for_messages("every event after the restart", &sent)
        .await;
    assert_all_arrived_once_in_order(&erin, &sent);
    // Signed: the fresh ones are checked (the PyPI verifier refuses
    // timestamps older than five minutes).
    erin.verify_since(before_restart);

    // Each message the phone sent is stored exactly once.
    let mut stored = incoming_wa_ids(&gateway, &session).await;
    stored.sort();
    let mut expected = sent;
    expected.sort();
    assert_eq!(stored, expected);
}

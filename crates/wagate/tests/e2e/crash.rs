//! The gateway as a separate process, killed with SIGKILL while messages
//! are queued: after a restart every accepted message reaches the phone,
//! once, under the id it was given when it was accepted.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use reqwest::Method;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::process::Child;

use crate::helpers::*;

const ALICE: &str = "15550007777";
const BOB: &str = "15550008888";
const MESSAGES: usize = 500;

/// Starts `wagate serve` and waits for it to listen.
async fn serve(dir: &Path, sim: &wasim::Simulator, port: u16) -> Child {
    GatewayProcess::serve(dir, sim, port, &[("WAGATE_LOG", "info")])
        .await
        .child
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_messages_survive_sigkill_and_reach_the_phone_once() {
    let sim = simulator().await;
    let dir = TempDir::new().unwrap_or_else(|e| panic!("{e}"));
    admin(dir.path(), &sim, &["org", "create", "acme"]).await;
    let printed = admin(dir.path(), &sim, &["token", "create", "--org", "acme"]).await;
    let token = printed
        .split_whitespace()
        .find(|word| word.starts_with("wag_"))
        .unwrap_or_else(|| panic!("no token in {printed:?}"))
        .to_string();

    let port = free_port();
    let mut child = serve(dir.path(), &sim, port).await;
    let gateway = Gateway::at(port, token.clone());
    let mut events = gateway.events().await;
    let session = link_by_qr(&gateway, &mut events, &sim, ALICE).await;
    sim.handle()
        .register_phone(BOB)
        .unwrap_or_else(|e| panic!("{e}"));

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
    child
        .start_kill()
        .unwrap_or_else(|e| panic!("SIGKILL: {e}"));
    let _ = child.wait().await;
    drop(events);

    let _child = serve(dir.path(), &sim, port).await;
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
    let sim = simulator().await;
    let dir = TempDir::new().unwrap_or_else(|e| panic!("{e}"));
    admin(dir.path(), &sim, &["org", "create", "acme"]).await;
    let printed = admin(dir.path(), &sim, &["token", "create", "--org", "acme"]).await;
    let token = printed
        .split_whitespace()
        .find(|word| word.starts_with("wag_"))
        .unwrap_or_else(|| panic!("no token in {printed:?}"))
        .to_string();

    let port = free_port();
    let mut child = serve(dir.path(), &sim, port).await;
    let gateway = Gateway::at(port, token.clone());
    let mut events = gateway.events().await;
    let session = link_by_qr(&gateway, &mut events, &sim, CAROL).await;
    sim.handle()
        .register_phone(DAVE)
        .unwrap_or_else(|e| panic!("{e}"));

    // Dave keeps writing, whatever the gateway is doing.
    let phones = sim.handle();
    let sender = tokio::spawn(async move {
        let mut ids = Vec::with_capacity(INBOUND);
        for n in 0..INBOUND {
            let id = phones
                .phone_send_text(DAVE, CAROL, &format!("inbound {n}"))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            ids.push(id);
        }
        ids
    });

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
    child
        .start_kill()
        .unwrap_or_else(|e| panic!("SIGKILL: {e}"));
    let _ = child.wait().await;
    drop(events);

    let _child = serve(dir.path(), &sim, port).await;
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
    let (status, list) = gateway
        .call(
            Method::GET,
            &format!("/sessions/{session}/messages?direction=incoming&limit=100"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{list}");
    let mut stored = 0;
    let mut page = list;
    loop {
        stored += page["data"].as_array().map_or(0, Vec::len);
        let Some(before) = page["next_before"].as_str().map(str::to_string) else {
            break;
        };
        page = gateway
            .call(
                Method::GET,
                &format!(
                    "/sessions/{session}/messages?direction=incoming&limit=100&before={before}"
                ),
                None,
            )
            .await
            .1;
    }
    assert_eq!(stored, INBOUND);
}

//! Several `wagate serve` processes on one PostgreSQL database, joined by
//! NATS (`--nats`), act as one gateway: sessions created through one node
//! are spread over all of them by lease, any node answers for any session
//! (the QR code of a session another node runs, a text sent from it), and
//! a realtime client on one node sees the events of sessions the others
//! run.
//!
//! Needs PostgreSQL and a NATS server on loopback (`WAGATE_TEST_NATS_URL`,
//! default `nats://127.0.0.1:4222`); without either it prints `skipped: …`
//! and passes, unless `WAGATE_REQUIRE_POSTGRES=1` (`.ci/run`, which runs
//! both), when it fails.

use std::collections::{HashMap, HashSet};
use std::sync::PoisonError;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection, Row};

use crate::helpers::*;
use crate::messaging::has_whatsapp;
use crate::webhook_receiver::Receiver;

const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];
/// Each node runs at most this many: nine sessions fill all three.
const CAPACITY: usize = 3;
/// Short, so a node's keeper passes come every second.
const LEASE_MS: &str = "3000";

const ALICE: &str = "15550007001";
const CAROL: &str = "15550007003";
const DAVE: &str = "15550007004";

/// The NATS server to use, or `None` (the test skips, having said so)
/// when none answers and none is required.
async fn nats_url() -> Option<String> {
    let url = std::env::var("WAGATE_TEST_NATS_URL")
        .unwrap_or_else(|_| "nats://127.0.0.1:4222".to_string());
    let address = url
        .trim_start_matches("nats://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let reached = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect(&address),
    )
    .await;
    if matches!(reached, Ok(Ok(_))) {
        return Some(url);
    }
    if std::env::var("WAGATE_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
        panic!("WAGATE_REQUIRE_POSTGRES=1 but no NATS server answers at {url}");
    }
    eprintln!("skipped: no NATS server at {url}; set WAGATE_TEST_NATS_URL to run this test");
    None
}

/// The first non-blank line printed after the one containing `header`.
fn printed_after(lines: &[String], header: &str) -> String {
    lines
        .iter()
        .skip_while(|line| !line.contains(header))
        .skip(1)
        .find(|line| !line.trim().is_empty())
        .map(|line| line.trim().to_string())
        .unwrap_or_else(|| panic!("nothing printed after {header:?}"))
}

/// Who owns each session, as the lease rows say.
async fn owners(dir: &DataDir) -> HashMap<String, String> {
    let url = dir
        .database_url()
        .unwrap_or_else(|| panic!("the cluster runs on PostgreSQL"));
    let mut db = PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("database: {e}"));
    let rows = sqlx::query("SELECT session_id, node FROM session_leases WHERE node IS NOT NULL")
        .fetch_all(&mut db)
        .await
        .unwrap_or_else(|e| panic!("leases: {e}"));
    rows.iter()
        .map(|row| {
            let session: String = row.try_get("session_id").unwrap_or_default();
            let node: String = row.try_get("node").unwrap_or_default();
            (session, node)
        })
        .collect()
}

/// Waits until every session of `ids` has reported `status`.
async fn all_reach(events: &mut Events, ids: &[String], status: &str) {
    let mut waiting: HashSet<&str> = ids.iter().map(String::as_str).collect();
    while !waiting.is_empty() {
        let event = events.next(&format!("{status} of {waiting:?}")).await;
        if event["event"] == "session.status" && event["data"]["status"] == status {
            waiting.remove(event["session_id"].as_str().unwrap_or_default());
        }
    }
}

async fn qr_through(gateway: &Gateway, session: &str) -> String {
    let (status, body) = gateway
        .call(Method::GET, &format!("/sessions/{session}/qr"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    body["code"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| panic!("{body}"))
}

/// Everything the nodes printed, for a failure's message.
fn printed(nodes: &[&GatewayProcess]) -> String {
    nodes
        .iter()
        .zip(NODES)
        .map(|(node, name)| {
            let lines = node.output.lock().unwrap_or_else(PoisonError::into_inner);
            format!("--- {name}\n{}", lines.join("\n"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn owned_by<'a>(owners: &'a HashMap<String, String>, node: &str) -> Vec<&'a str> {
    owners
        .iter()
        .filter(|(_, owner)| owner.as_str() == node)
        .map(|(session, _)| session.as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_on_one_database_act_as_one_gateway() {
    let Some(nats) = nats_url().await else {
        return;
    };
    let Some(dir) = DataDir::postgres().await else {
        return;
    };
    let sim = simulator().await;
    let capacity = CAPACITY.to_string();
    let env = |node: &'static str| {
        [
            ("WAGATE_LOG", "warn,wagate=info"),
            ("WAGATE_ALLOW_PRIVATE_NETWORK", "true"),
            ("WAGATE_NATS_URL", nats.as_str()),
            ("WAGATE_NODE_ID", node),
            ("WAGATE_NODE_CAPACITY", capacity.as_str()),
            ("WAGATE_LEASE_TIME_MS", LEASE_MS),
        ]
    };
    // The first creates the organization and prints its token.
    let ports = [free_port(), free_port(), free_port()];
    let a = GatewayProcess::serve(&dir, &sim, ports[0], &env(NODES[0])).await;
    let startup = a
        .output
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let token = printed_after(&startup, "API token for organization");
    let b = GatewayProcess::serve(&dir, &sim, ports[1], &env(NODES[1])).await;
    let c = GatewayProcess::serve(&dir, &sim, ports[2], &env(NODES[2])).await;
    let [via_a, via_b, via_c] = ports.map(|port| Gateway::at(port, token.clone()));
    let mut events = via_a.events().await;

    // Nine sessions, all created through A, end up three on each node
    // (each takes what it has room for), and A's socket sees every one
    // of them wait for its QR code, wherever it runs.
    let mut ids = Vec::new();
    for _ in 0..CAPACITY * NODES.len() {
        let (status, body) = via_a
            .call(Method::POST, "/sessions", Some(json!({ "label": "e2e" })))
            .await;
        assert_eq!(status, 201, "{body}\n{}", printed(&[&a, &b, &c]));
        ids.push(body["id"].as_str().unwrap_or_default().to_string());
    }
    all_reach(&mut events, &ids, "scan_qr_code").await;
    let owners = owners(&dir).await;
    for node in NODES {
        assert_eq!(
            owned_by(&owners, node).len(),
            CAPACITY,
            "{node} owns {:?} of {owners:?}",
            owned_by(&owners, node)
        );
    }
    for id in &ids {
        assert!(owners.contains_key(id), "{id} has no owner: {owners:?}");
    }

    // The QR code of a session B runs, fetched through C, links it; A's
    // socket sees it working.
    let on_b = owned_by(&owners, NODES[1])[0].to_string();
    let code = qr_through(&via_c, &on_b).await;
    sim.handle()
        .scan_qr(ALICE, &code)
        .unwrap_or_else(|e| panic!("scan: {e}"));
    events.status(&on_b, "working").await;
    assert_eq!(via_b.session(&on_b).await["status"], "working");

    // A text sent through A from a session C runs reaches the phone once.
    let on_c = owned_by(&owners, NODES[2])[0].to_string();
    let code = qr_through(&via_a, &on_c).await;
    sim.handle()
        .scan_qr(CAROL, &code)
        .unwrap_or_else(|e| panic!("scan: {e}"));
    events.status(&on_c, "working").await;
    has_whatsapp(&sim, DAVE);
    let (status, accepted) = via_a
        .call(
            Method::POST,
            &format!("/sessions/{on_c}/messages"),
            Some(json!({ "to": DAVE, "text": { "body": "through another node" } })),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    let message = accepted["id"].as_str().unwrap_or_default().to_string();
    let wa_id = accepted["wa_id"].as_str().unwrap_or_default().to_string();
    events
        .wait("the text delivered", &on_c, |e: &Value| {
            e["event"] == "message.status"
                && e["data"]["message_id"] == message.as_str()
                && e["data"]["status"] == "delivered"
        })
        .await;
    sim.handle()
        .wait_phone_message(DAVE, WAIT, |m| m.id == wa_id)
        .await
        .unwrap_or_else(|| panic!("{DAVE} never showed {wa_id}"));
    let shown = sim
        .handle()
        .phone_messages(DAVE)
        .unwrap_or_default()
        .iter()
        .filter(|m| m.id == wa_id)
        .count();
    assert_eq!(shown, 1);

    // Messages the phone sends to the session B runs reach a webhook
    // (made through A) once each, though every node's dispatcher runs:
    // only the session's owner delivers its queue.
    let mut hook = Receiver::start().await;
    let (status, created) = via_a
        .call(
            Method::POST,
            "/webhooks",
            Some(json!({ "url": hook.url, "sessions": [on_b], "events": ["message.received"] })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let mut sent = Vec::new();
    for text in ["first", "second"] {
        let wa_id = sim
            .handle()
            .phone_send_text(DAVE, ALICE, text)
            .await
            .unwrap_or_else(|e| panic!("send: {e}"));
        // In order, so the second's delivery comes after any duplicate of
        // the first would have.
        hook.wait_until(&format!("{text} delivered"), |got| {
            got.iter()
                .any(|r| r.json()["data"]["wa_id"] == wa_id.as_str())
        })
        .await;
        sent.push(wa_id);
    }
    for wa_id in &sent {
        let deliveries = hook
            .got
            .iter()
            .filter(|r| r.json()["data"]["wa_id"] == wa_id.as_str())
            .count();
        assert_eq!(deliveries, 1, "{wa_id} was delivered {deliveries} times");
    }

    drop(events);
    for node in [a, b, c] {
        node.stop().await;
    }
}

/// A node killed with `SIGKILL` holds linked sessions: once their leases
/// expire another node takes them, and they are `working` there within
/// the lease time plus 10 s, on the same linked device (no QR code). Then
/// a third node joins and the second is stopped (`SIGTERM`): the third
/// runs them, again without a new link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_sessions_work_on_another_without_relinking() {
    const ERIN: &str = "15550007005";
    const FRANK: &str = "15550007006";
    let Some(nats) = nats_url().await else {
        return;
    };
    let Some(dir) = DataDir::postgres().await else {
        return;
    };
    let sim = simulator().await;
    // No capacity: the node a session is created through takes it.
    let env = |node: &'static str| {
        [
            ("WAGATE_LOG", "warn,wagate=info"),
            ("WAGATE_NATS_URL", nats.as_str()),
            ("WAGATE_NODE_ID", node),
            ("WAGATE_LEASE_TIME_MS", LEASE_MS),
        ]
    };
    let ports = [free_port(), free_port()];
    let a = GatewayProcess::serve(&dir, &sim, ports[0], &env(NODES[0])).await;
    let startup = a
        .output
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let token = printed_after(&startup, "API token for organization");
    let b = GatewayProcess::serve(&dir, &sim, ports[1], &env(NODES[1])).await;
    let [via_a, via_b] = ports.map(|port| Gateway::at(port, token.clone()));
    let mut events = via_b.events().await;

    let mut linked = Vec::new();
    for phone in [ERIN, FRANK] {
        let (status, body) = via_a
            .call(Method::POST, "/sessions", Some(json!({ "label": "e2e" })))
            .await;
        assert_eq!(status, 201, "{body}\n{}", printed(&[&a, &b]));
        let id = body["id"].as_str().unwrap_or_default().to_string();
        events.status(&id, "scan_qr_code").await;
        let code = qr_through(&via_b, &id).await;
        sim.handle()
            .scan_qr(phone, &code)
            .unwrap_or_else(|e| panic!("scan: {e}"));
        events.status(&id, "working").await;
        linked.push((id, phone, device_of(&sim, phone)));
    }
    // Balanced, one on each node (balancing hands one over if both went
    // to the same): each move shows as the session working again.
    let settled = async {
        loop {
            let owners = owners(&dir).await;
            let placed = linked.iter().all(|(id, _, _)| owners.contains_key(id));
            if placed && NODES[..2].iter().all(|n| owned_by(&owners, n).len() == 1) {
                return owners;
            }
            events
                .next(&format!("the sessions placed: {owners:?}"))
                .await;
        }
    };
    let owners = tokio::time::timeout(WAIT, settled)
        .await
        .unwrap_or_else(|_| panic!("never one session on each node\n{}", printed(&[&a, &b])));
    // The node that owns the first is killed, and the other watched.
    let victim_name = owners
        .get(&linked[0].0)
        .cloned()
        .unwrap_or_else(|| panic!("{} has no owner", linked[0].0));
    let (mut victim, survivor, survivor_name, survivor_api) = if victim_name == NODES[0] {
        (a, b, NODES[1], via_b)
    } else {
        (b, a, NODES[0], via_a)
    };
    // Watched from the survivor, from now on.
    drop(events);
    let mut events = survivor_api.events().await;
    let moved: Vec<_> = linked
        .iter()
        .filter(|(id, _, _)| owners.get(id) == Some(&victim_name))
        .collect();

    victim
        .child
        .start_kill()
        .unwrap_or_else(|e| panic!("SIGKILL: {e}"));
    let _ = victim.child.wait().await;
    let killed = tokio::time::Instant::now();
    let mut waiting: HashSet<&str> = moved.iter().map(|(id, _, _)| id.as_str()).collect();
    while !waiting.is_empty() {
        let event = events.next(&format!("working again: {waiting:?}")).await;
        let session = event["session_id"].as_str().unwrap_or_default();
        if event["event"] == "session.status" && waiting.contains(session) {
            let status = event["data"]["status"].as_str().unwrap_or_default();
            assert_ne!(status, "scan_qr_code", "{session} was asked to link again");
            if status == "working" {
                waiting.remove(session);
            }
        }
    }
    let took = killed.elapsed();
    let lease = Duration::from_millis(LEASE_MS.parse().unwrap_or_default());
    assert!(
        took <= lease + Duration::from_secs(10),
        "back after {took:?}\n{}",
        printed(&[&survivor])
    );
    let owners = self::owners(&dir).await;
    for (id, phone, device) in &linked {
        assert_eq!(owners.get(id).map(String::as_str), Some(survivor_name));
        assert_eq!(device_of(&sim, phone), *device, "{phone} linked again");
        assert_eq!(survivor_api.session(id).await["status"], "working");
    }
    drop(events);

    // A third node joins, and the survivor is stopped (SIGTERM): it lets
    // its sessions go as it stops, and the newcomer runs them, on the
    // same linked devices.
    let port = free_port();
    let c = GatewayProcess::serve(&dir, &sim, port, &env(NODES[2])).await;
    let via_c = Gateway::at(port, token.clone());
    let mut events = via_c.events().await;
    survivor.stop().await;
    let mut waiting: HashSet<&str> = linked.iter().map(|(id, _, _)| id.as_str()).collect();
    while !waiting.is_empty() {
        let event = events.next(&format!("working on C: {waiting:?}")).await;
        let session = event["session_id"].as_str().unwrap_or_default();
        if event["event"] == "session.status" && waiting.contains(session) {
            let status = event["data"]["status"].as_str().unwrap_or_default();
            assert_ne!(status, "scan_qr_code", "{session} was asked to link again");
            if status == "working" {
                waiting.remove(session);
            }
        }
    }
    let owners = self::owners(&dir).await;
    for (id, phone, device) in &linked {
        assert_eq!(owners.get(id).map(String::as_str), Some(NODES[2]));
        assert_eq!(device_of(&sim, phone), *device, "{phone} linked again");
    }
    drop(events);
    c.stop().await;
}

/// A node joining two that run every session gets its share of them
/// handed over (balancing by count), a few at a time, each working on it
/// without a new link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_node_gets_its_share_without_relinking() {
    const PHONES: [&str; 6] = [
        "15550007011",
        "15550007012",
        "15550007013",
        "15550007014",
        "15550007015",
        "15550007016",
    ];
    let Some(nats) = nats_url().await else {
        return;
    };
    let Some(dir) = DataDir::postgres().await else {
        return;
    };
    let sim = simulator().await;
    let env = |node: &'static str| {
        [
            ("WAGATE_LOG", "warn,wagate=info"),
            ("WAGATE_NATS_URL", nats.as_str()),
            ("WAGATE_NODE_ID", node),
            ("WAGATE_LEASE_TIME_MS", LEASE_MS),
        ]
    };
    let ports = [free_port(), free_port(), free_port()];
    let a = GatewayProcess::serve(&dir, &sim, ports[0], &env(NODES[0])).await;
    let startup = a
        .output
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let token = printed_after(&startup, "API token for organization");
    let b = GatewayProcess::serve(&dir, &sim, ports[1], &env(NODES[1])).await;
    let via_a = Gateway::at(ports[0], token.clone());
    let mut events = via_a.events().await;
    let mut linked = Vec::new();
    for phone in PHONES {
        let id = link_by_qr(&via_a, &mut events, &sim, phone).await;
        linked.push((id, phone, device_of(&sim, phone)));
    }

    let c = GatewayProcess::serve(&dir, &sim, ports[2], &env(NODES[2])).await;
    // Each session handed over reconnects on its new node: wait on those
    // until C holds its share (6 sessions over 3 nodes: 2).
    let share = PHONES.len() / NODES.len();
    let handed = async {
        loop {
            let owners = owners(&dir).await;
            if owned_by(&owners, NODES[2]).len() >= share {
                break;
            }
            let event = events
                .next(&format!("sessions handed to node-c: {owners:?}"))
                .await;
            assert_ne!(
                event["data"]["status"], "scan_qr_code",
                "a session was asked to link again: {event}"
            );
        }
    };
    if tokio::time::timeout(WAIT, handed).await.is_err() {
        panic!(
            "node-c never got {share} sessions\n{}",
            printed(&[&a, &b, &c])
        );
    }
    let on_c: Vec<String> = owned_by(&owners(&dir).await, NODES[2])
        .into_iter()
        .map(str::to_string)
        .collect();
    for id in &on_c {
        if via_a.session(id).await["status"] != "working" {
            events.status(id, "working").await;
        }
    }
    for (_, phone, device) in &linked {
        assert_eq!(device_of(&sim, phone), *device, "{phone} linked again");
    }
    drop(events);
    for node in [a, b, c] {
        node.stop().await;
    }
}

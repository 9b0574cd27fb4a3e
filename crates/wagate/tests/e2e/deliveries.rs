//! Webhooks end to end: two sessions of one gateway, linked to two
//! simulated phones, exchange every kind of message both ways; each side's
//! receiver (a real HTTP server) gets what the other sent and the statuses
//! of what it sent, in order, signed as the PyPI `standardwebhooks`
//! package verifies. A receiver that goes away for a while loses nothing.

use std::collections::{HashMap, HashSet};

use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::*;
use crate::messaging::send;
use crate::webhook_receiver::{Received, Receiver, assert_python_verifies, delivered};

const ALICE: &str = "15550011111";
const BOB: &str = "15550012222";

/// What a side's webhook gets: its session's message events.
const MESSAGE_EVENTS: [&str; 5] = [
    "message.received",
    "message.reaction",
    "message.edited",
    "message.revoked",
    "message.status",
];

/// One linked session with the webhook receiver subscribed to it.
pub(crate) struct Side {
    pub session: String,
    pub phone: &'static str,
    pub hook: Receiver,
    pub secret: String,
}

impl Side {
    /// A receiver, and a webhook of `gateway` for `session`'s events of
    /// `types` pointing at it.
    pub(crate) async fn subscribe(
        gateway: &Gateway,
        session: String,
        phone: &'static str,
        types: &[&str],
    ) -> Self {
        let hook = Receiver::start().await;
        let (status, created) = gateway
            .call(
                Method::POST,
                "/webhooks",
                Some(json!({ "url": hook.url, "sessions": [session], "events": types })),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        let secret = created["secret"].as_str().unwrap_or_default().to_string();
        Self {
            session,
            phone,
            hook,
            secret,
        }
    }

    /// Every request the receiver took in since `from` verifies with the
    /// webhook's secret, under the PyPI package and the Rust crate.
    pub(crate) fn verify_since(&self, from: usize) {
        let requests: Vec<&Received> = self.hook.got[from..].iter().collect();
        assert!(
            requests.iter().all(|r| r.verifies_with(&self.secret)),
            "the standardwebhooks crate refused a delivery"
        );
        assert_python_verifies(&self.secret, &requests);
    }

    /// Waits until an event about each of `wa_ids` (received, reaction,
    /// edit, revoke) was delivered.
    pub(crate) async fn wait_for_messages(&mut self, what: &str, wa_ids: &[String]) {
        let wanted: HashSet<&String> = wa_ids.iter().collect();
        self.hook
            .wait_until(what, |got| {
                let arrived: Vec<String> = delivered(got)
                    .iter()
                    .filter(|e| e["event"] != "message.status")
                    .filter_map(|e| e["data"]["wa_id"].as_str().map(str::to_string))
                    .collect();
                wanted.iter().all(|id| arrived.contains(id))
            })
            .await;
    }

    /// Each event was delivered in the order it was logged (event ids are
    /// UUIDv7 stamped at commit): no duplicate 2xx, none out of order.
    pub(crate) fn assert_in_order(&self) {
        let delivered: Vec<&str> = self
            .hook
            .got
            .iter()
            .filter(|r| r.answered.is_success())
            .map(Received::id)
            .collect();
        assert!(
            delivered.windows(2).all(|w| w[0] < w[1]),
            "deliveries out of order or twice: {delivered:?}"
        );
        for request in &self.hook.got {
            assert_eq!(
                request.json()["id"],
                request.id(),
                "webhook-id is the event id"
            );
            assert_eq!(request.json()["session_id"], self.session.as_str());
        }
    }
}

/// Fails unless every field of `expected` (recursively) is in `actual`.
fn assert_contains(actual: &Value, expected: &Value, context: &str) {
    match (actual, expected) {
        (Value::Object(actual), Value::Object(expected)) => {
            for (key, value) in expected {
                assert_contains(
                    actual.get(key).unwrap_or(&Value::Null),
                    value,
                    &format!("{context}.{key}"),
                );
            }
        }
        _ => assert_eq!(actual, expected, "{context}"),
    }
}

/// One message a side sent, and how the other side must see it.
struct Expected {
    /// The sender's gateway id.
    id: String,
    wa_id: String,
    /// The event the receiving side gets.
    event: &'static str,
    content: Value,
    /// Shown in the chat, so the reader's read receipt names it (WhatsApp
    /// sends none for reactions, edits and revokes).
    readable: bool,
    /// Media: the bytes the receiving side must download.
    bytes: Option<Vec<u8>>,
}

impl Expected {
    /// `(id, wa_id)` as accepted; readable unless a reaction, edit or
    /// revoke.
    fn new((id, wa_id): (String, String), event: &'static str, content: Value) -> Self {
        Self {
            id,
            wa_id,
            event,
            content,
            readable: event == "message.received",
            bytes: None,
        }
    }
}

/// The gateway id and WhatsApp id of an accepted message (or edit, or
/// revoke).
fn ids_of(accepted: &Value) -> (String, String) {
    let text = |key: &str| accepted[key].as_str().unwrap_or_default().to_string();
    (text("id"), text("wa_id"))
}

async fn accept(gateway: &Gateway, from: &Side, body: Value) -> (String, String) {
    let (status, accepted) = send(gateway, &from.session, body.clone()).await;
    assert_eq!(status, 202, "{body}: {accepted}");
    ids_of(&accepted)
}

fn bytes(len: usize, salt: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 7 + salt) % 251) as u8).collect()
}

/// The receiving side's gateway id of a message it got, from its events.
fn received_id(side: &Side, wa_id: &str) -> String {
    side.hook
        .delivered()
        .iter()
        .find(|e| e["event"] != "message.status" && e["data"]["wa_id"] == wa_id)
        .and_then(|e| e["data"]["message_id"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("{} never got {wa_id}", side.phone))
}

/// A message both sides have, for a reaction.
struct Target {
    /// The reacting side's id of it.
    id_here: String,
    wa_id: String,
    /// The other side's id of it.
    id_there: String,
}

/// `from` sends `to` every kind the API sends, reacting to `react_to` (a
/// message `to` sent), or to its own first text; returns the location it
/// sent, as a target for `to` to react to.
async fn exchange(
    gateway: &Gateway,
    from: &mut Side,
    to: &mut Side,
    react_to: Option<Target>,
) -> Target {
    let (from_start, to_start) = (from.hook.got.len(), to.hook.got.len());
    let salt = from.phone.len() + usize::from(from.phone.ends_with('1'));
    let mut expected = Vec::new();

    let body = format!("hello from {}", from.phone);
    let (text_id, text_wa) = accept(
        gateway,
        from,
        json!({ "to": to.phone, "text": { "body": body } }),
    )
    .await;
    expected.push(Expected::new(
        (text_id.clone(), text_wa.clone()),
        "message.received",
        json!({ "type": "text", "body": body }),
    ));

    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let media = [
        ("image", "image/jpeg", Some("a picture"), None),
        ("video", "video/mp4", Some("a film"), None),
        ("audio", "audio/mpeg", None, None),
        ("voice", "audio/ogg; codecs=opus", None, None),
        (
            "document",
            "application/pdf",
            Some("the report"),
            Some("report.pdf"),
        ),
        ("sticker", "image/webp", None, None),
    ];
    for (n, (kind, mime, caption, file_name)) in media.into_iter().enumerate() {
        let file = bytes(9_000 + n * 1_000, salt + n);
        let mut payload = json!({ "base64": b64(&file), "mime_type": mime });
        let mut content = json!({
            "type": "media",
            "kind": kind,
            "mime_type": mime,
            "size": file.len(),
            "sha256": hex::encode(Sha256::digest(&file)),
            "caption": caption,
        });
        if let Some(caption) = caption {
            payload["caption"] = json!(caption);
        }
        if let Some(name) = file_name {
            payload["file_name"] = json!(name);
            content["file_name"] = json!(name);
        }
        let accepted = accept(gateway, from, json!({ "to": to.phone, kind: payload })).await;
        expected.push(Expected {
            bytes: Some(file),
            ..Expected::new(accepted, "message.received", content)
        });
    }

    let vcard = format!(
        "BEGIN:VCARD\nVERSION:3.0\nFN:Friend of {}\nTEL:+15550009999\nEND:VCARD",
        from.phone
    );
    let others = [
        (
            json!({ "location": { "latitude": -6.2, "longitude": 106.8, "name": "Monas" } }),
            json!({ "type": "location", "latitude": -6.2, "longitude": 106.8, "name": "Monas" }),
        ),
        (
            json!({ "contact": { "vcards": [vcard] } }),
            json!({ "type": "contacts", "vcards": [vcard] }),
        ),
        (
            json!({ "poll": { "question": "Lunch?", "options": ["yes", "no"], "selectable_count": 1 } }),
            json!({ "type": "poll", "question": "Lunch?", "options": ["yes", "no"], "selectable_count": 1 }),
        ),
    ];
    for (mut request, content) in others {
        request["to"] = json!(to.phone);
        let accepted = accept(gateway, from, request).await;
        expected.push(Expected::new(accepted, "message.received", content));
    }

    // A reaction, then an edit and a revoke of the text.
    let reacting_to_own = react_to.is_none();
    let (target_id, target_wa) = react_to
        .as_ref()
        .map(|t| (t.id_here.clone(), t.wa_id.clone()))
        .unwrap_or_else(|| (text_id.clone(), text_wa.clone()));
    let accepted = accept(
        gateway,
        from,
        json!({ "to": to.phone, "reaction": { "message_id": target_id, "emoji": "👍" } }),
    )
    .await;
    expected.push(Expected::new(
        accepted,
        "message.reaction",
        json!({ "emoji": "👍", "target": { "wa_id": target_wa, "from_me": !reacting_to_own } }),
    ));
    let edited = format!("hello again from {}", from.phone);
    let (status, edit) = gateway
        .call(
            Method::POST,
            &format!("/sessions/{}/messages/{text_id}/edit", from.session),
            Some(json!({ "text": edited })),
        )
        .await;
    assert_eq!(status, 202, "{edit}");
    expected.push(Expected::new(
        ids_of(&edit),
        "message.edited",
        json!({ "body": edited, "target": { "wa_id": text_wa } }),
    ));
    let (status, revoke) = gateway
        .call(
            Method::DELETE,
            &format!("/sessions/{}/messages/{text_id}", from.session),
            None,
        )
        .await;
    assert_eq!(status, 202, "{revoke}");
    expected.push(Expected::new(
        ids_of(&revoke),
        "message.revoked",
        json!({ "target": { "wa_id": text_wa } }),
    ));

    // The receiving side's webhook gets each, once, as its kind.
    let wanted: Vec<String> = expected.iter().map(|e| e.wa_id.clone()).collect();
    to.wait_for_messages(&format!("{} to get every kind", to.phone), &wanted)
        .await;
    let events: HashMap<String, Value> = to
        .hook
        .delivered()
        .into_iter()
        .filter(|e| e["event"] != "message.status")
        .map(|e| {
            (
                e["data"]["wa_id"].as_str().unwrap_or_default().to_string(),
                e,
            )
        })
        .collect();
    let text_there = received_id(to, &text_wa);
    for sent in &expected {
        let event = &events[&sent.wa_id];
        let context = format!("{} at {}", sent.wa_id, to.phone);
        assert_eq!(event["event"], sent.event, "{context}: {event}");
        assert_eq!(event["data"]["from_me"], false, "{context}: {event}");
        assert_eq!(
            event["data"]["sender"]["phone"], from.phone,
            "{context}: {event}"
        );
        assert_eq!(
            event["data"]["chat"],
            format!("{}@s.whatsapp.net", from.phone),
            "{context}"
        );
        assert_contains(&event["data"]["content"], &sent.content, &context);
        if let Some(file) = &sent.bytes {
            let message = event["data"]["message_id"].as_str().unwrap_or_default();
            let response = gateway
                .http
                .get(format!(
                    "{}/sessions/{}/messages/{message}/media",
                    gateway.base, to.session
                ))
                .bearer_auth(&gateway.token)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(response.status(), 200, "{context}");
            let downloaded = response.bytes().await.unwrap_or_default();
            assert!(downloaded == file.as_slice(), "{context}: the bytes differ");
        }
    }
    // The reaction, the edit and the revoke point at the receiving side's
    // copy of their target.
    let reaction_target = react_to.map_or(text_there.clone(), |t| t.id_there);
    for (kind, target) in [
        ("message.reaction", &reaction_target),
        ("message.edited", &text_there),
        ("message.revoked", &text_there),
    ] {
        let event = events
            .values()
            .find(|e| e["event"] == kind)
            .unwrap_or_else(|| panic!("no {kind}"));
        assert_eq!(
            event["data"]["content"]["target"]["message_id"],
            target.as_str(),
            "{event}"
        );
    }

    // The reader marks what it was shown as read.
    let readable: Vec<&str> = expected
        .iter()
        .filter(|e| e.readable)
        .map(|e| e.wa_id.as_str())
        .collect();
    let (status, answer) = gateway
        .call(
            Method::POST,
            &format!("/sessions/{}/chats/{}/read", to.session, from.phone),
            Some(json!({ "message_ids": readable })),
        )
        .await;
    assert_eq!(status, 204, "{answer}");

    // The sending side's webhook gets every status of what it sent, up to
    // read (delivered for what is not read), each once, in order.
    let last = |sent: &Expected| if sent.readable { "read" } else { "delivered" };
    let statuses = |got: &[Received], id: &str| -> Vec<String> {
        delivered(got)
            .iter()
            .filter(|e| e["event"] == "message.status" && e["data"]["message_id"] == id)
            .map(|e| e["data"]["status"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    from.hook
        .wait_until(&format!("{}'s statuses", from.phone), |got| {
            expected
                .iter()
                .all(|sent| statuses(got, &sent.id).iter().any(|s| s == last(sent)))
        })
        .await;
    for sent in &expected {
        let all = ["pending", "sent", "delivered", "read"];
        let upto = if sent.readable { 4 } else { 3 };
        assert_eq!(
            statuses(&from.hook.got, &sent.id),
            all[..upto],
            "{} ({})",
            sent.wa_id,
            sent.event
        );
    }

    from.verify_since(from_start);
    to.verify_since(to_start);
    let location = &expected[7];
    Target {
        id_here: received_id(to, &location.wa_id),
        wa_id: location.wa_id.clone(),
        id_there: location.id.clone(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sessions_exchange_every_kind_and_each_webhook_gets_its_side() {
    let (sim, _dir, gateway, mut events) = world(Limits::default()).await;
    let a = link_by_qr(&gateway, &mut events, &sim, ALICE).await;
    let b = link_by_qr(&gateway, &mut events, &sim, BOB).await;
    let mut alice = Side::subscribe(&gateway, a, ALICE, &MESSAGE_EVENTS).await;
    let mut bob = Side::subscribe(&gateway, b, BOB, &MESSAGE_EVENTS).await;

    // Alice to Bob; then Bob to Alice, reacting to Alice's location.
    let location = exchange(&gateway, &mut alice, &mut bob, None).await;
    exchange(&gateway, &mut bob, &mut alice, Some(location)).await;

    alice.assert_in_order();
    bob.assert_in_order();
    gateway.stop().await;
}

/// Retries come quickly: a test's outage is over in seconds.
pub(crate) fn quick_retries(config: wagate::Config) -> wagate::Config {
    wagate::Config {
        webhook_backoff_base_ms: 50,
        webhook_backoff_max_secs: 1,
        webhook_poll_interval_ms: 50,
        ..config
    }
}

/// What a receiver that came back must have got: every `message.received`
/// for `sent`, each event delivered (2xx) once, a retried event the same
/// bytes under the same `webhook-id`, and the session's order kept: no
/// event attempted while an earlier one was still undelivered. Returns how
/// many requests were retries.
pub(crate) fn assert_all_arrived_once_in_order(side: &Side, sent: &[String]) -> usize {
    let requests = &side.hook.got;
    let mut bodies: HashMap<&str, &[u8]> = HashMap::new();
    for request in requests {
        let first = *bodies.entry(request.id()).or_insert(&request.body);
        assert!(
            first == &request.body[..],
            "{} changed between attempts",
            request.id()
        );
    }
    let attempted: Vec<&str> = requests.iter().map(Received::id).collect();
    assert!(
        attempted.windows(2).all(|w| w[0] <= w[1]),
        "an event was attempted before an earlier one was delivered: {attempted:?}"
    );
    side.assert_in_order();
    let received: Vec<String> = side
        .hook
        .delivered()
        .iter()
        .filter(|e| e["event"] == "message.received")
        .filter_map(|e| e["data"]["wa_id"].as_str().map(str::to_string))
        .collect();
    let unique: HashSet<&String> = received.iter().collect();
    assert_eq!(unique.len(), received.len(), "a message reported twice");
    let expected: HashSet<&String> = sent.iter().collect();
    assert_eq!(unique, expected, "every message, none other");
    requests.len() - bodies.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_was_down_gets_every_event_once_in_order() {
    const COUNT: usize = 30;
    let sim = simulator().await;
    let dir = DataDir::new().await;
    let gateway =
        Gateway::start_with(quick_retries(config(&sim, &dir, &Limits::default())), None).await;
    let mut events = gateway.events().await;
    let session = link_by_qr(&gateway, &mut events, &sim, ALICE).await;
    sim.handle()
        .register_phone(BOB)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut alice = Side::subscribe(&gateway, session.clone(), ALICE, &["message.received"]).await;

    // Down: every attempt gets a 503 while Bob keeps writing.
    alice
        .hook
        .answer(|_, _| axum::http::StatusCode::SERVICE_UNAVAILABLE);
    let mut sent = Vec::new();
    for n in 0..COUNT {
        let id = sim
            .handle()
            .phone_send_text(BOB, ALICE, &format!("while down {n}"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        sent.push(id);
    }
    for id in &sent {
        events
            .wait("the message stored", &session, |e| {
                e["event"] == "message.received" && e["data"]["wa_id"] == id.as_str()
            })
            .await;
    }
    // Refused several times (the first event retried), nothing delivered.
    alice
        .hook
        .wait_until("attempts while down", |got| got.len() >= 4)
        .await;
    assert!(alice.hook.delivered().is_empty());
    let first = alice.hook.got[0].id().to_string();
    assert!(
        alice.hook.got.iter().all(|r| r.id() == first),
        "only the head is tried"
    );

    // Back: everything arrives.
    alice.hook.answer(|_, _| axum::http::StatusCode::OK);
    alice
        .wait_for_messages("every event after the outage", &sent)
        .await;
    let retries = assert_all_arrived_once_in_order(&alice, &sent);
    assert!(retries >= 3, "the first event was retried: {retries}");
    alice.verify_since(0);

    // The delivery log agrees: nothing pending or failed, the first
    // event delivered after several attempts.
    let hooks = gateway.call(Method::GET, "/webhooks", None).await.1;
    let hook = hooks["data"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    for status in ["pending", "failed"] {
        let (_, log) = gateway
            .call(
                Method::GET,
                &format!("/webhooks/{hook}/deliveries?status={status}"),
                None,
            )
            .await;
        assert_eq!(log["data"], json!([]), "{status}: {log}");
    }
    let (_, log) = gateway
        .call(
            Method::GET,
            &format!("/webhooks/{hook}/deliveries?limit=100"),
            None,
        )
        .await;
    let entry = log["data"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["event_id"] == first.as_str()))
        .cloned()
        .unwrap_or_else(|| panic!("{first} logged: {log}"));
    assert!(entry["attempts"].as_u64() >= Some(4), "{entry}");
    assert_eq!(entry["status"], "delivered");
    gateway.stop().await;
}

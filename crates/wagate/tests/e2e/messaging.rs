//! Sending through a linked session: the outbox, statuses, idempotency.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

const ALICE: &str = "15550001111";
const BOB: &str = "15550002222";

impl Events {
    /// The next `message.status` event of `message` reaching `status`.
    pub(crate) async fn message_status(
        &mut self,
        session: &str,
        message: &str,
        status: &str,
    ) -> Value {
        self.wait(&format!("message {message} {status}"), session, |e| {
            e["event"] == "message.status"
                && e["data"]["message_id"] == message
                && e["data"]["status"] == status
        })
        .await
    }
}

/// A phone number that has WhatsApp.
pub(crate) fn has_whatsapp(sim: &wasim::Simulator, phone: &str) {
    sim.handle()
        .register_phone(phone)
        .unwrap_or_else(|e| panic!("register {phone}: {e}"));
}

/// A world whose gateway takes media of at most 64 KiB, so "too large"
/// needs no large request.
async fn small_media_world() -> (wasim::Simulator, DataDir, Gateway, Events) {
    let sim = simulator().await;
    let dir = DataDir::new().await;
    let gateway = Gateway::start_with(
        wagate::Config {
            media_limit_bytes: 64 * 1024,
            ..config(&sim, &dir, &Limits::default())
        },
        None,
    )
    .await;
    let events = gateway.events().await;
    (sim, dir, gateway, events)
}

pub(crate) async fn send(gateway: &Gateway, session: &str, body: Value) -> (u16, Value) {
    gateway
        .call(
            Method::POST,
            &format!("/sessions/{session}/messages"),
            Some(body),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_reaches_the_phone_once_and_reports_each_status() {
    let (sim, _dir, gateway, mut events) = world(Limits::default()).await;
    let session = link_by_qr(&gateway, &mut events, &sim, ALICE).await;
    has_whatsapp(&sim, BOB);

    let (status, accepted) = send(
        &gateway,
        &session,
        json!({ "to": BOB, "text": { "body": "hello from the gateway" } }),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["status"], "pending");
    let id = accepted["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{accepted}"))
        .to_string();
    let wa_id = accepted["wa_id"].as_str().unwrap_or_default().to_string();

    // Every status, in order, as events.
    let pending = events.message_status(&session, &id, "pending").await;
    assert_eq!(pending["data"]["previous"], Value::Null);
    let sent = events.message_status(&session, &id, "sent").await;
    assert_eq!(sent["data"]["previous"], "pending");
    events.message_status(&session, &id, "delivered").await;

    let shown = sim
        .handle()
        .wait_phone_message(BOB, WAIT, |m| m.id == wa_id)
        .await
        .unwrap_or_else(|| panic!("{BOB} never showed {wa_id}"));
    assert_eq!(shown.text.as_deref(), Some("hello from the gateway"));
    assert_eq!(
        sim.handle()
            .phone_messages(BOB)
            .unwrap_or_default()
            .iter()
            .filter(|m| m.id == wa_id)
            .count(),
        1
    );

    let (status, read) = gateway
        .call(
            Method::GET,
            &format!("/sessions/{session}/messages/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{read}");
    let history: Vec<&str> = read["history"]
        .as_array()
        .unwrap_or_else(|| panic!("{read}"))
        .iter()
        .filter_map(|s| s["status"].as_str())
        .collect();
    assert_eq!(history, ["pending", "sent", "delivered"]);
    assert_eq!(read["chat"], format!("{BOB}@s.whatsapp.net"));

    let (status, list) = gateway
        .call(
            Method::GET,
            &format!("/sessions/{session}/messages?limit=10"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["data"][0]["id"], id.as_str());
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_idempotency_key_gives_one_message() {
    let (sim, _dir, gateway, mut events) = world(Limits::default()).await;
    let session = link_by_qr(&gateway, &mut events, &sim, ALICE).await;
    has_whatsapp(&sim, BOB);
    let body = json!({ "to": BOB, "text": { "body": "only once" } });
    let post = |key: &'static str, body: Value| {
        let gateway = &gateway;
        let session = session.clone();
        async move {
            let response = gateway
                .http
                .post(format!("{}/sessions/{session}/messages", gateway.base))
                .bearer_auth(&gateway.token)
                .header("Idempotency-Key", key)
                .json(&body)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or_else(|e| panic!("{e}"));
            (status, body)
        }
    };
    // Twice at once, then once more after.
    let ((s1, first), (s2, second)) = tokio::join!(
        post("order-42", body.clone()),
        post("order-42", body.clone())
    );
    let (s3, third) = post("order-42", body.clone()).await;
    assert_eq!((s1, s2, s3), (202, 202, 202), "{first} {second} {third}");
    assert_eq!(first["id"], second["id"]);
    assert_eq!(first["id"], third["id"]);

    let (status, reused) = post(
        "order-42",
        json!({ "to": BOB, "text": { "body": "other" } }),
    )
    .await;
    assert_eq!(status, 409, "{reused}");
    assert_eq!(reused["error"]["code"], "idempotency_key_reused");

    let id = first["id"].as_str().unwrap_or_default().to_string();
    events.message_status(&session, &id, "sent").await;
    let (_, list) = gateway
        .call(Method::GET, &format!("/sessions/{session}/messages"), None)
        .await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1), "{list}");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_send_requests_get_a_clear_4xx_and_store_nothing() {
    use base64::Engine as _;

    let (sim, _dir, gateway, mut events) = small_media_world().await;
    let (status, created) = gateway
        .call(Method::POST, "/sessions", Some(json!({ "start": false })))
        .await;
    assert_eq!(status, 201, "{created}");
    let stopped = created["id"].as_str().unwrap_or_default().to_string();

    let text = json!({ "to": BOB, "text": { "body": "hi" } });
    for (session, body, want_status, want_code) in [
        (stopped.as_str(), text.clone(), 409, "not_started"),
        (
            "0191d6a0-0000-7000-8000-000000000000",
            text.clone(),
            404,
            "session_not_found",
        ),
        (
            stopped.as_str(),
            json!({ "to": "+62 812", "text": { "body": "hi" } }),
            422,
            "invalid_recipient",
        ),
        (
            stopped.as_str(),
            json!({ "to": BOB }),
            422,
            "no_message_kind",
        ),
        (
            stopped.as_str(),
            json!({ "to": BOB, "text": { "body": "" } }),
            422,
            "empty_field",
        ),
        (
            stopped.as_str(),
            json!({ "to": BOB, "sms": { "body": "hi" } }),
            422,
            "unknown_message_kind",
        ),
        (
            stopped.as_str(),
            json!({ "to": BOB, "text": { "body": "hi" }, "location": { "latitude": 1.0, "longitude": 2.0 } }),
            422,
            "multiple_message_kinds",
        ),
        (
            stopped.as_str(),
            json!({ "to": BOB, "image": { "url": "ftp://example.com/a.jpg" } }),
            422,
            "unsupported_url",
        ),
        (
            stopped.as_str(),
            json!({ "to": BOB, "sticker": { "url": "https://example.com/a.webp", "caption": "no" } }),
            422,
            "caption_not_allowed",
        ),
        (
            stopped.as_str(),
            json!({ "to": BOB, "document": {
                "base64": base64::engine::general_purpose::STANDARD.encode(vec![7u8; 65 * 1024]),
                "file_name": "big.bin",
            } }),
            413,
            "payload_too_large",
        ),
    ] {
        let (status, body) = send(&gateway, session, body.clone()).await;
        assert_eq!(status, want_status, "{body}");
        assert_eq!(body["error"]["code"], want_code, "{body}");
    }
    let (_, list) = gateway
        .call(Method::GET, &format!("/sessions/{stopped}/messages"), None)
        .await;
    assert_eq!(list["data"], json!([]), "nothing stored");

    // A logged-out session sends nothing either, and says why.
    let session = link_by_qr(&gateway, &mut events, &sim, ALICE).await;
    let (status, _) = gateway
        .call(Method::POST, &format!("/sessions/{session}/logout"), None)
        .await;
    assert_eq!(status, 200);
    events.status(&session, "logged_out").await;
    let (status, body) = send(&gateway, &session, text.clone()).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "logged_out");
    assert_eq!(body["error"]["details"]["status"], "logged_out");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_accepted_while_reconnecting_go_out_in_order_once_working() {
    let (sim, _dir, gateway, mut events) = world(Limits::default()).await;
    let session = link_by_qr(&gateway, &mut events, &sim, ALICE).await;
    has_whatsapp(&sim, BOB);

    sim.handle().outage(std::time::Duration::from_secs(600));
    sim.handle().drop_all();
    events.status(&session, "starting").await;
    let mut wa_ids = Vec::new();
    for n in 1..=3 {
        let (status, accepted) = send(
            &gateway,
            &session,
            json!({ "to": BOB, "text": { "body": format!("queued {n}") } }),
        )
        .await;
        assert_eq!(status, 202, "{accepted}");
        wa_ids.push(accepted["wa_id"].as_str().unwrap_or_default().to_string());
    }
    let (_, list) = gateway
        .call(
            Method::GET,
            &format!("/sessions/{session}/messages?status=pending"),
            None,
        )
        .await;
    assert_eq!(
        list["data"].as_array().map(Vec::len),
        Some(3),
        "waiting: {list}"
    );

    sim.handle().outage(std::time::Duration::ZERO);
    events.status(&session, "working").await;
    let last = wa_ids.last().cloned().unwrap_or_default();
    sim.handle()
        .wait_phone_message(BOB, WAIT, |m| m.id == last)
        .await
        .unwrap_or_else(|| panic!("{BOB} never got the last queued message"));
    let shown: Vec<String> = sim
        .handle()
        .phone_messages(BOB)
        .unwrap_or_default()
        .into_iter()
        .filter(|m| wa_ids.contains(&m.id))
        .map(|m| m.text.unwrap_or_default())
        .collect();
    assert_eq!(
        shown,
        ["queued 1", "queued 2", "queued 3"],
        "once each, in order"
    );
    gateway.stop().await;
}

/// Every kind the API sends, as the phone shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_kind_arrives_intact() {
    use base64::Engine as _;
    use sha2::{Digest, Sha256};

    let (sim, _dir, gateway, mut events) = world(Limits::default()).await;
    let session = link_by_qr(&gateway, &mut events, &sim, ALICE).await;
    has_whatsapp(&sim, BOB);
    let image: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    let voice: Vec<u8> = (0..9_000u32).map(|i| (i % 13) as u8).collect();
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);

    let (_, first) = send(
        &gateway,
        &session,
        json!({ "to": BOB, "text": { "body": "first" } }),
    )
    .await;
    let first_id = first["id"].as_str().unwrap_or_default().to_string();
    let first_wa = first["wa_id"].as_str().unwrap_or_default().to_string();
    events.message_status(&session, &first_id, "sent").await;

    let requests = [
        json!({ "to": BOB, "reply_to": first_id, "text": { "body": "a reply" } }),
        json!({ "to": BOB, "image": { "base64": b64(&image), "caption": "a picture", "mime_type": "image/jpeg" } }),
        json!({ "to": BOB, "voice": { "base64": b64(&voice) } }),
        json!({ "to": BOB, "document": { "base64": b64(b"%PDF-1.4 tiny"), "file_name": "tiny.pdf", "mime_type": "application/pdf" } }),
        json!({ "to": BOB, "location": { "latitude": -6.2, "longitude": 106.8, "name": "Jakarta" } }),
        json!({ "to": BOB, "contact": { "vcards": ["BEGIN:VCARD\nVERSION:3.0\nFN:Ada Lovelace\nTEL:+15550009999\nEND:VCARD"] } }),
        json!({ "to": BOB, "poll": { "question": "Lunch?", "options": ["yes", "no"], "selectable_count": 1 } }),
        json!({ "to": BOB, "reaction": { "message_id": first_id, "emoji": "👍" } }),
    ];
    let mut sent = Vec::new();
    for request in requests {
        let (status, accepted) = send(&gateway, &session, request.clone()).await;
        assert_eq!(status, 202, "{request}: {accepted}");
        let id = accepted["id"].as_str().unwrap_or_default().to_string();
        events.message_status(&session, &id, "sent").await;
        sent.push(accepted["wa_id"].as_str().unwrap_or_default().to_string());
    }
    let all = sim
        .handle()
        .wait_phone_messages(BOB, WAIT, |all| {
            sent.iter().all(|id| all.iter().any(|m| &m.id == id))
        })
        .await
        .unwrap_or_else(|| panic!("{BOB} did not get every kind"));
    let shown = |wa_id: &str| {
        all.iter()
            .find(|m| m.id == wa_id)
            .cloned()
            .unwrap_or_else(|| panic!("{wa_id} not shown"))
    };
    let reply = shown(&sent[0]);
    assert_eq!(reply.text.as_deref(), Some("a reply"));
    assert_eq!(reply.content["reply_to"], first_wa.as_str());
    let picture = shown(&sent[1]);
    assert_eq!(picture.kind, "image");
    assert_eq!(picture.content["caption"], "a picture");
    assert_eq!(
        picture.content["sha256"],
        hex::encode(Sha256::digest(&image)),
        "{:?}",
        picture.content
    );
    let note = shown(&sent[2]);
    assert_eq!(note.kind, "voice");
    assert_eq!(note.content["sha256"], hex::encode(Sha256::digest(&voice)));
    let document = shown(&sent[3]);
    assert_eq!(document.kind, "document");
    assert_eq!(document.content["file_name"], "tiny.pdf");
    let place = shown(&sent[4]);
    assert_eq!(place.kind, "location");
    assert_eq!(place.content["name"], "Jakarta");
    let card = shown(&sent[5]);
    assert_eq!(card.kind, "contact");
    assert_eq!(card.content["display_name"], "Ada Lovelace");
    let poll = shown(&sent[6]);
    assert_eq!(poll.kind, "poll");
    assert_eq!(poll.content["question"], "Lunch?");
    assert_eq!(poll.content["options"], json!(["yes", "no"]));
    let reaction = shown(&sent[7]);
    assert_eq!(reaction.kind, "reaction");
    assert_eq!(reaction.content["target_id"], first_wa.as_str());
    assert_eq!(reaction.content["emoji"], "👍");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_and_played_receipts_move_the_status_on_and_a_nack_fails_it() {
    use base64::Engine as _;

    let (sim, _dir, gateway, mut events) = world(Limits::default()).await;
    let session = link_by_qr(&gateway, &mut events, &sim, ALICE).await;
    has_whatsapp(&sim, BOB);

    let voice = base64::engine::general_purpose::STANDARD.encode([7u8; 4000]);
    let (_, note) = send(
        &gateway,
        &session,
        json!({ "to": BOB, "voice": { "base64": voice } }),
    )
    .await;
    let id = note["id"].as_str().unwrap_or_default().to_string();
    let wa_id = note["wa_id"].as_str().unwrap_or_default().to_string();
    events.message_status(&session, &id, "delivered").await;
    sim.handle()
        .phone_read(BOB, std::slice::from_ref(&wa_id))
        .unwrap_or_else(|e| panic!("read: {e}"));
    events.message_status(&session, &id, "read").await;
    sim.handle()
        .phone_play(BOB, &wa_id)
        .unwrap_or_else(|e| panic!("play: {e}"));
    let played = events.message_status(&session, &id, "played").await;
    assert_eq!(played["data"]["previous"], "read");

    sim.handle()
        .nack_messages_to(BOB, 1, 463)
        .unwrap_or_else(|e| panic!("nack: {e}"));
    let (_, refused) = send(
        &gateway,
        &session,
        json!({ "to": BOB, "text": { "body": "refused" } }),
    )
    .await;
    let refused_id = refused["id"].as_str().unwrap_or_default().to_string();
    let failed = events.message_status(&session, &refused_id, "failed").await;
    assert_eq!(
        failed["data"]["failure"],
        json!({ "reason": "rejected", "code": 463 })
    );
    let (_, read) = gateway
        .call(
            Method::GET,
            &format!("/sessions/{session}/messages/{refused_id}"),
            None,
        )
        .await;
    assert_eq!(read["status"], "failed");
    assert_eq!(read["failure"]["code"], 463);
    gateway.stop().await;
}

/// Serves `routes` (path → (content type, bytes)) on loopback; anything
/// else is a 404.
async fn media_host(routes: Vec<(&'static str, &'static str, Vec<u8>)>) -> String {
    use axum::http::header::CONTENT_TYPE;
    let mut app = axum::Router::new();
    for (path, mime, bytes) in routes {
        app = app.route(
            path,
            axum::routing::get(move || {
                let bytes = bytes.clone();
                async move { ([(CONTENT_TYPE, mime)], bytes) }
            }),
        );
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_from_a_url_arrives_intact_or_fails_with_a_reason() {
    let (sim, _dir, gateway, mut events) = small_media_world().await;
    let session = link_by_qr(&gateway, &mut events, &sim, ALICE).await;
    has_whatsapp(&sim, BOB);
    let picture: Vec<u8> = (0..30_000u32).map(|i| (i % 241) as u8).collect();
    let host = media_host(vec![
        ("/picture.png", "image/png", picture.clone()),
        ("/huge.png", "image/png", vec![1u8; 65 * 1024]),
    ])
    .await;

    let (status, fetched) = send(
        &gateway,
        &session,
        json!({ "to": BOB, "image": { "url": format!("{host}/picture.png"), "caption": "from a url" } }),
    )
    .await;
    assert_eq!(status, 202, "{fetched}");
    let wa_id = fetched["wa_id"].as_str().unwrap_or_default().to_string();
    let shown = sim
        .handle()
        .wait_phone_message(BOB, WAIT, |m| m.id == wa_id)
        .await
        .unwrap_or_else(|| panic!("{BOB} never showed {wa_id}"));
    assert_eq!(shown.kind, "image");
    assert_eq!(shown.text.as_deref(), Some("from a url"));
    let bytes = sim
        .handle()
        .phone_media(BOB, &wa_id)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        bytes.as_ref(),
        picture.as_slice(),
        "decrypted byte for byte"
    );

    for (path, reason) in [
        ("/missing.png", "media_unreachable"),
        ("/huge.png", "media_too_large"),
    ] {
        let (status, accepted) = send(
            &gateway,
            &session,
            json!({ "to": BOB, "image": { "url": format!("{host}{path}") } }),
        )
        .await;
        assert_eq!(status, 202, "{accepted}");
        let id = accepted["id"].as_str().unwrap_or_default().to_string();
        let failed = events.message_status(&session, &id, "failed").await;
        assert_eq!(failed["data"]["failure"]["reason"], reason, "{failed}");
    }
    gateway.stop().await;
}

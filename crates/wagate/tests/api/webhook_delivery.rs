//! Webhook delivery end to end, in-process: a real gateway (Application,
//! file database) POSTs to a real receiver (axum on 127.0.0.1, port 0).
//! Signatures are checked by the Standard Webhooks project's own Rust
//! library and its PyPI package, not by the gateway's code. Backoffs and
//! the poll interval are configured short; every wait is for something
//! the receiver or the WebSocket reports, bounded, never a sleep.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use futures::StreamExt;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio_tungstenite::tungstenite::Message;
use wagate::Application;
use wagate::Config;
use wagate::Store;
use wagate::{OrgId, SessionId};

use crate::helpers::{default_org, log_qr_event, test_config};
use crate::webhook_receiver::{Received, Receiver, assert_python_verifies};

const WAIT: Duration = Duration::from_secs(30);

fn fast(dir: &TempDir) -> Config {
    Config {
        // The receiver is on 127.0.0.1.
        allow_private_network: true,
        webhook_backoff_base_ms: 20,
        webhook_backoff_max_secs: 1,
        webhook_poll_interval_ms: 20,
        webhook_timeout_secs: 5,
        ..test_config(dir)
    }
}

struct Gateway {
    base: String,
    token: String,
    store: Arc<dyn Store>,
    shutdown: tokio_util::sync::CancellationToken,
    stopped: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Gateway {
    /// Builds and runs a gateway on `config`; `token` is reused after a
    /// restart (the first start makes it).
    async fn start(config: Config, token: Option<String>) -> Self {
        let mut app = Application::build(config)
            .await
            .unwrap_or_else(|e| panic!("build: {e:?}"));
        let token = token
            .or_else(|| {
                app.take_bootstrap_token()
                    .map(|t| t.token.plaintext().expose().clone())
            })
            .unwrap_or_else(|| panic!("a token"));
        let base = format!("http://127.0.0.1:{}", app.port());
        let store = app.store();
        let shutdown = app.shutdown_token();
        let stopped = tokio::spawn(app.run_until_stopped());
        Self {
            base,
            token,
            store,
            shutdown,
            stopped,
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(WAIT, self.stopped).await;
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = reqwest::Client::new()
            .request(method, format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("{e}"));
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// Creates a webhook to `url`; returns (id, secret).
    async fn webhook(&self, url: &str, events: Value) -> (String, String) {
        let created = self
            .call(
                reqwest::Method::POST,
                "/webhooks",
                Some(json!({ "url": url, "events": events })),
            )
            .await;
        (
            created["id"].as_str().unwrap_or_default().to_string(),
            created["secret"].as_str().unwrap_or_default().to_string(),
        )
    }

    async fn org(&self) -> OrgId {
        default_org(self.store.as_ref()).await
    }

    /// Logs a QR event for `session`, as a supervisor does; returns its id.
    async fn event(&self, org: OrgId, session: SessionId, code: &str) -> String {
        log_qr_event(self.store.as_ref(), org, session, code)
            .await
            .id
            .to_string()
    }
}

#[tokio::test]
async fn signed_deliveries_are_retried_with_the_same_id_and_kept_in_order_per_session() {
    let dir = TempDir::new().unwrap_or_else(|e| panic!("{e}"));
    let mut receiver = Receiver::start().await;
    let gateway = Gateway::start(fast(&dir), None).await;
    let (hook, secret) = gateway.webhook(&receiver.url, json!(["session.qr"])).await;
    let org = gateway.org().await;
    let (a, b) = (SessionId::new(), SessionId::new());

    // a1 fails until b1 has arrived, and twice at least: b's queue must not
    // wait for a's, and a2 must wait for a1. Until the ids are known (the
    // dispatcher may try as soon as they are logged), everything fails.
    receiver.answer(|_, _| StatusCode::INTERNAL_SERVER_ERROR);
    let a1 = gateway.event(org, a, "a1").await;
    let a2 = gateway.event(org, a, "a2").await;
    let b1 = gateway.event(org, b, "b1").await;
    let first = a1.clone();
    let other = b1.clone();
    receiver.answer(move |request, seen| {
        let tries = seen.iter().filter(|r| r.id() == first).count();
        let b_arrived = seen.iter().any(|r| r.id() == other);
        if request.id() == first && (tries < 2 || !b_arrived) {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::OK
        }
    });
    let mut got = receiver.until_delivered(&a1).await;
    got.extend(receiver.until_delivered(&a2).await);

    let ids: Vec<&str> = got.iter().map(Received::id).collect();
    let a1_tries = got.iter().filter(|r| r.id() == a1).count();
    assert!(a1_tries >= 3, "two 500s then success: {ids:?}");
    let a1_done = ids
        .iter()
        .rposition(|id| *id == a1)
        .unwrap_or_else(|| panic!("a1 delivered"));
    let a2_first = ids
        .iter()
        .position(|id| *id == a2)
        .unwrap_or_else(|| panic!("a2 delivered"));
    assert!(a2_first > a1_done, "a2 before a1 was delivered: {ids:?}");
    assert!(ids.contains(&b1.as_str()), "b1 waited for a1: {ids:?}");

    for received in &got {
        assert!(
            received.verifies_with(&secret),
            "signature of {}",
            received.id()
        );
        assert_eq!(received.signatures(), 1);
        let body = received.json();
        assert_eq!(body["id"], received.id(), "webhook-id is the event id");
        assert_eq!(body["event"], "session.qr");
        assert!(body["data"]["code"].is_string());
    }
    assert!(!got[0].verifies_with("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
    assert_python_verifies(&secret, &got.iter().collect::<Vec<_>>());

    // The log tells the story: a1 delivered after several attempts, the
    // last answer kept. A delivered run is recorded after its last request
    // was answered, so the receiver can be ahead of the log: read it until
    // it has caught up.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let a1_entry = loop {
        let log = gateway
            .call(
                reqwest::Method::GET,
                &format!("/webhooks/{hook}/deliveries"),
                None,
            )
            .await;
        let entry = log["data"]
            .as_array()
            .and_then(|d| d.iter().find(|d| d["event_id"] == a1.as_str()))
            .cloned()
            .unwrap_or_else(|| panic!("a1 logged: {log}"));
        if entry["status"] == "delivered" || tokio::time::Instant::now() > deadline {
            break entry;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(a1_entry["status"], "delivered", "{a1_entry}");
    assert!(a1_entry["attempts"].as_u64() >= Some(3), "{a1_entry}");
    assert_eq!(a1_entry["last_status_code"], 200);

    // A replay sends a delivered event again, with the same id.
    let replayed = gateway
        .call(
            reqwest::Method::POST,
            &format!(
                "/webhooks/{hook}/deliveries/{}/retry",
                a1_entry["id"].as_str().unwrap_or_default()
            ),
            None,
        )
        .await;
    assert_eq!(replayed["status"], "pending");
    let again = receiver.until_delivered(&a1).await;
    assert!(again.last().is_some_and(|r| r.verifies_with(&secret)));
    gateway.stop().await;
}

#[tokio::test]
async fn gone_disables_the_webhook_and_says_so_on_the_websocket() {
    let dir = TempDir::new().unwrap_or_else(|e| panic!("{e}"));
    let mut receiver = Receiver::start().await;
    let gateway = Gateway::start(fast(&dir), None).await;
    let (hook, _) = gateway.webhook(&receiver.url, json!(["session.qr"])).await;
    let mut socket = watch(&gateway, "webhook.disabled").await;
    receiver.answer(|_, _| StatusCode::GONE);
    let org = gateway.org().await;
    let session = SessionId::new();
    let first = gateway.event(org, session, "x").await;
    assert_eq!(receiver.next().await.id(), first);

    let disabled = next_event(&mut socket).await;
    assert_eq!(disabled["event"], "webhook.disabled");
    assert_eq!(disabled["data"]["webhook_id"], hook.as_str());
    assert_eq!(disabled["data"]["reason"], "gone");
    assert_eq!(disabled["data"]["status_code"], 410);
    assert_eq!(disabled["session_id"], session.to_string());

    let shown = gateway
        .call(reqwest::Method::GET, &format!("/webhooks/{hook}"), None)
        .await;
    assert_eq!(shown["enabled"], false);
    assert_eq!(shown["disabled_reason"], "gone");

    // Disabled: nothing is sent, and new events are not queued for it.
    // Enabled again, the refused event goes out first, then new ones.
    gateway.event(org, session, "while disabled").await;
    receiver.answer(|_, _| StatusCode::NO_CONTENT);
    let log = gateway
        .call(
            reqwest::Method::GET,
            &format!("/webhooks/{hook}/deliveries"),
            None,
        )
        .await;
    assert_eq!(log["data"].as_array().map(Vec::len), Some(1), "{log}");
    assert_eq!(log["data"][0]["status"], "pending");
    assert_eq!(log["data"][0]["last_status_code"], 410);
    gateway
        .call(
            reqwest::Method::PATCH,
            &format!("/webhooks/{hook}"),
            Some(json!({ "enabled": true })),
        )
        .await;
    let second = gateway.event(org, session, "after").await;
    assert_eq!(receiver.next().await.id(), first);
    assert_eq!(receiver.next().await.id(), second);
    gateway.stop().await;
}

#[tokio::test]
async fn deliveries_pending_at_a_restart_are_delivered_by_the_next_run() {
    let dir = TempDir::new().unwrap_or_else(|e| panic!("{e}"));
    let mut receiver = Receiver::start().await;
    receiver.answer(|_, _| StatusCode::SERVICE_UNAVAILABLE);
    let gateway = Gateway::start(fast(&dir), None).await;
    let token = gateway.token.clone();
    let (_, secret) = gateway.webhook(&receiver.url, json!(["*"])).await;
    let org = gateway.org().await;
    let session = SessionId::new();
    let mut events = Vec::new();
    for code in ["1", "2", "3"] {
        events.push(gateway.event(org, session, code).await);
    }
    // The first is being retried; the others wait behind it.
    let tried = receiver.next().await;
    assert_eq!(tried.id(), events[0]);
    gateway.stop().await;
    while receiver.rx.try_recv().is_ok() {}

    receiver.answer(|_, _| StatusCode::OK);
    let gateway = Gateway::start(fast(&dir), Some(token)).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let received = receiver.next().await;
        assert!(received.verifies_with(&secret));
        ids.push(received.id().to_string());
    }
    assert_eq!(ids, events, "each once, in order, same ids");
    gateway.stop().await;
}

#[tokio::test]
async fn during_a_rotation_both_secrets_sign() {
    let dir = TempDir::new().unwrap_or_else(|e| panic!("{e}"));
    let mut receiver = Receiver::start().await;
    let gateway = Gateway::start(fast(&dir), None).await;
    let (hook, old) = gateway.webhook(&receiver.url, json!(["session.qr"])).await;
    let rotated = gateway
        .call(
            reqwest::Method::POST,
            &format!("/webhooks/{hook}/rotate-secret"),
            Some(json!({ "grace_period_secs": 3600 })),
        )
        .await;
    let new = rotated["secret"].as_str().unwrap_or_default().to_string();
    assert_ne!(new, old);
    let org = gateway.org().await;
    let id = gateway.event(org, SessionId::new(), "r").await;
    let received = receiver.next().await;
    assert_eq!(received.id(), id);
    assert_eq!(received.signatures(), 2);
    assert!(received.verifies_with(&new), "the new secret verifies");
    assert!(
        received.verifies_with(&old),
        "the old one too, during the grace"
    );

    // Rotated again without grace: only the newest signs.
    let rotated = gateway
        .call(
            reqwest::Method::POST,
            &format!("/webhooks/{hook}/rotate-secret"),
            Some(json!({ "grace_period_secs": 0 })),
        )
        .await;
    let newest = rotated["secret"].as_str().unwrap_or_default().to_string();
    gateway.event(org, SessionId::new(), "s").await;
    let received = receiver.next().await;
    assert_eq!(received.signatures(), 1);
    assert!(received.verifies_with(&newest));
    assert!(!received.verifies_with(&new));
    gateway.stop().await;
}

/// A realtime connection to `gateway` for the `events` types.
async fn watch(
    gateway: &Gateway,
    events: &str,
) -> impl futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin + use<>
{
    let (socket, _) = tokio_tungstenite::connect_async(format!(
        "ws://{}/api/v1/ws?token={}&events={events}",
        gateway.base.trim_start_matches("http://"),
        gateway.token
    ))
    .await
    .unwrap_or_else(|e| panic!("connect: {e}"));
    socket
}

async fn next_event<S>(socket: &mut S) -> Value
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match tokio::time::timeout(WAIT, socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                return serde_json::from_str(text.as_str()).unwrap_or_else(|e| panic!("{e}"));
            }
            Ok(Some(Ok(_))) => continue,
            other => panic!("no event: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_delivery_failing_past_the_retry_window_fails_and_its_session_moves_on() {
    let dir = TempDir::new().unwrap_or_else(|e| panic!("{e}"));
    let mut receiver = Receiver::start().await;
    let config = Config {
        webhook_retry_window_secs: 1,
        ..fast(&dir)
    };
    let gateway = Gateway::start(config, None).await;
    let (hook, _) = gateway.webhook(&receiver.url, json!(["session.qr"])).await;
    let org = gateway.org().await;
    let session = SessionId::new();
    // Everything fails until the ids are known.
    receiver.answer(|_, _| StatusCode::INTERNAL_SERVER_ERROR);
    let doomed = gateway.event(org, session, "doomed").await;
    let next = gateway.event(org, session, "next").await;
    let refused = doomed.clone();
    receiver.answer(move |request, _| {
        if request.id() == refused {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::OK
        }
    });
    let got = receiver.until_delivered(&next).await;
    let ids: Vec<&str> = got.iter().map(Received::id).collect();
    assert!(ids.len() >= 2, "{ids:?}");
    assert!(
        ids[..ids.len() - 1].iter().all(|id| *id == doomed),
        "{ids:?}"
    );
    let failed = gateway
        .call(
            reqwest::Method::GET,
            &format!("/webhooks/{hook}/deliveries?status=failed"),
            None,
        )
        .await;
    assert_eq!(failed["data"][0]["event_id"], doomed.as_str(), "{failed}");
    assert_eq!(failed["data"][0]["last_status_code"], 500);
    assert_eq!(
        failed["data"][0]["last_error"],
        "the receiver answered 500 Internal Server Error"
    );
    assert!(failed["data"][0]["next_attempt_at"].is_null());
    gateway.stop().await;
}

#[tokio::test]
async fn a_webhook_failing_for_too_long_is_disabled() {
    let dir = TempDir::new().unwrap_or_else(|e| panic!("{e}"));
    let mut receiver = Receiver::start().await;
    receiver.answer(|_, _| StatusCode::BAD_GATEWAY);
    let config = Config {
        webhook_disable_after_secs: 1,
        ..fast(&dir)
    };
    let gateway = Gateway::start(config, None).await;
    let (hook, _) = gateway.webhook(&receiver.url, json!(["session.qr"])).await;
    let mut socket = watch(&gateway, "webhook.disabled").await;
    let org = gateway.org().await;
    let event = gateway.event(org, SessionId::new(), "x").await;
    assert_eq!(receiver.next().await.id(), event);
    let disabled = next_event(&mut socket).await;
    assert_eq!(disabled["data"]["webhook_id"], hook.as_str());
    assert_eq!(disabled["data"]["reason"], "failing");
    assert_eq!(disabled["data"]["status_code"], 502);
    let shown = gateway
        .call(reqwest::Method::GET, &format!("/webhooks/{hook}"), None)
        .await;
    assert_eq!(shown["enabled"], false);
    assert_eq!(shown["disabled_reason"], "failing");
    gateway.stop().await;
}

#[tokio::test]
async fn a_test_event_reaches_its_webhook_alone_whatever_its_filters() {
    let dir = TempDir::new().unwrap_or_else(|e| panic!("{e}"));
    let gateway = Gateway::start(fast(&dir), None).await;
    let mut receiver = Receiver::start().await;
    // Filters that no test event matches, and a webhook that takes all.
    let (id, secret) = gateway
        .webhook(&receiver.url, json!(["message.received"]))
        .await;
    let (other, _) = gateway.webhook(&receiver.url, json!(["*"])).await;

    let queued = gateway
        .call(reqwest::Method::POST, &format!("/webhooks/{id}/test"), None)
        .await;
    assert_eq!(queued["event_type"], "webhook.test");
    assert_eq!(queued["status"], "pending");
    let received = receiver.next().await;
    let body = received.json();
    assert_eq!(body["event"], "webhook.test");
    assert_eq!(body["data"]["webhook_id"], id.as_str());
    assert_eq!(
        received.id(),
        queued["event_id"].as_str().unwrap_or_default()
    );
    assert!(received.verifies_with(&secret), "signed like any delivery");
    // Queued in the same transaction as its event: the other webhook
    // would already list it.
    let others = gateway
        .call(
            reqwest::Method::GET,
            &format!("/webhooks/{other}/deliveries"),
            None,
        )
        .await;
    assert_eq!(others["data"], json!([]), "the test went to one webhook");
    // Nor does a realtime client replaying the log see it.
    let org = gateway.org().await;
    let logged = gateway
        .store
        .events()
        .events_after(org, None, 100)
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(logged.is_empty(), "{logged:?}");

    // A disabled webhook says so instead of holding a test nobody sees.
    gateway
        .call(
            reqwest::Method::PATCH,
            &format!("/webhooks/{id}"),
            Some(json!({ "enabled": false })),
        )
        .await;
    let refused = reqwest::Client::new()
        .post(format!("{}/api/v1/webhooks/{id}/test", gateway.base))
        .bearer_auth(&gateway.token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    let error: Value = refused.json().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(error["error"]["code"], "webhook_disabled");
    gateway.stop().await;
}

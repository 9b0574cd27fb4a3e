//! A webhook receiver for tests, shared by the API and end-to-end suites
//! (each includes this file as a module): a real HTTP server on 127.0.0.1
//! (port 0) that keeps every request as it came, headers and raw body, and
//! answers what the test tells it to. Signatures are checked by
//! implementations independent of the gateway's: the Standard Webhooks
//! project's Rust crate, and its Python package from PyPI
//! ([`python_verify`]), skipped without it (`tools::STANDARD_WEBHOOKS`).

// Each suite uses part of it.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine as _;
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// How long a test waits for a delivery before it fails: generous, two
/// cores run the gateway, the simulator and the clients' crypto at once.
pub(crate) const DELIVERY_WAIT: Duration = Duration::from_secs(90);

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
    /// What the receiver answered.
    pub answered: StatusCode,
}

impl Received {
    /// The `webhook-id` header: the event id.
    pub(crate) fn id(&self) -> &str {
        self.header("webhook-id")
    }

    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("body is JSON: {e}"))
    }

    pub(crate) fn signatures(&self) -> usize {
        self.headers
            .get("webhook-signature")
            .and_then(|v| v.to_str().ok())
            .map_or(0, |v| v.split(' ').count())
    }

    /// Verified with the `standardwebhooks` crate (timestamp within 5
    /// minutes, any of the `v1` signatures).
    pub(crate) fn verifies_with(&self, secret: &str) -> bool {
        standardwebhooks::Webhook::new(secret)
            .and_then(|hook| hook.verify(&self.body, &self.headers))
            .is_ok()
    }
}

/// Decides the answer from the request and every earlier one.
pub(crate) type Answer = dyn Fn(&Received, &[Received]) -> StatusCode + Send + Sync;

#[derive(Clone)]
struct ReceiverState {
    answer: Arc<Mutex<Arc<Answer>>>,
    seen: Arc<Mutex<Vec<Received>>>,
    tx: mpsc::UnboundedSender<Received>,
}

pub(crate) struct Receiver {
    pub url: String,
    answer: Arc<Mutex<Arc<Answer>>>,
    pub rx: mpsc::UnboundedReceiver<Received>,
    /// What [`Receiver::wait_until`] has taken from `rx` so far.
    pub got: Vec<Received>,
}

impl Receiver {
    /// Listens on a free port, answering 200 until told otherwise.
    pub(crate) async fn start() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let answer: Arc<Mutex<Arc<Answer>>> = Arc::new(Mutex::new(Arc::new(|_, _| StatusCode::OK)));
        let state = ReceiverState {
            answer: Arc::clone(&answer),
            seen: Arc::default(),
            tx,
        };
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            url: format!("http://{addr}/hook"),
            answer,
            rx,
            got: Vec::new(),
        }
    }

    pub(crate) fn answer(
        &self,
        answer: impl Fn(&Received, &[Received]) -> StatusCode + Send + Sync + 'static,
    ) {
        *self.answer.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(answer);
    }

    /// The next request, whatever it is.
    pub(crate) async fn next(&mut self) -> Received {
        match tokio::time::timeout(DELIVERY_WAIT, self.rx.recv()).await {
            Ok(Some(received)) => received,
            other => panic!("no delivery arrived: {other:?}"),
        }
    }

    /// Requests until one for `event` is answered 2xx; returns them all.
    pub(crate) async fn until_delivered(&mut self, event: &str) -> Vec<Received> {
        let mut got = Vec::new();
        loop {
            let received = self.next().await;
            let done = received.id() == event && received.answered.is_success();
            got.push(received);
            if done {
                return got;
            }
        }
    }

    /// Takes requests into `got` until `done` holds for all of them so far;
    /// fails after [`DELIVERY_WAIT`] without a new request.
    pub(crate) async fn wait_until(
        &mut self,
        what: &str,
        mut done: impl FnMut(&[Received]) -> bool,
    ) {
        while !done(&self.got) {
            match tokio::time::timeout(DELIVERY_WAIT, self.rx.recv()).await {
                Ok(Some(received)) => self.got.push(received),
                _ => panic!(
                    "timed out waiting for {what}; the receiver got {} requests: {:?}",
                    self.got.len(),
                    self.got
                        .iter()
                        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
                        .collect::<Vec<_>>()
                ),
            }
        }
    }

    /// The events answered 2xx so far (in `got`): see [`delivered`].
    pub(crate) fn delivered(&self) -> Vec<Value> {
        delivered(&self.got)
    }
}

/// The events of `requests` answered 2xx, each once, in the order they
/// were first delivered.
pub(crate) fn delivered(requests: &[Received]) -> Vec<Value> {
    let mut ids = std::collections::HashSet::new();
    requests
        .iter()
        .filter(|r| r.answered.is_success() && ids.insert(r.id().to_string()))
        .map(Received::json)
        .collect()
}

async fn receive(
    State(state): State<ReceiverState>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut received = Received {
        headers,
        body,
        answered: StatusCode::OK,
    };
    let answer = Arc::clone(&*state.answer.lock().unwrap_or_else(|e| e.into_inner()));
    let mut seen = state.seen.lock().unwrap_or_else(|e| e.into_inner());
    received.answered = answer(&received, &seen);
    seen.push(received.clone());
    let _ = state.tx.send(received.clone());
    received.answered
}

/// Verifies each request with `secret` using the PyPI `standardwebhooks`
/// package (`Webhook(secret).verify(body, headers)`), all in one Python
/// process; returns, per request, `None` if it verified or why not.
///
/// Panics if `python3` or the package is missing: ask
/// `tools::present(&tools::STANDARD_WEBHOOKS)` first, as
/// [`assert_python_verifies`] does. The package checks the timestamp too (within 5 minutes), so verify
/// what arrived soon after it arrived.
pub(crate) fn python_verify(secret: &str, requests: &[&Received]) -> Vec<Option<String>> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/verify_webhooks.py"
    );
    let mut input = Vec::new();
    for request in requests {
        let line = json!({
            "secret": secret,
            "headers": {
                "webhook-id": request.header("webhook-id"),
                "webhook-timestamp": request.header("webhook-timestamp"),
                "webhook-signature": request.header("webhook-signature"),
            },
            "body": base64::engine::general_purpose::STANDARD.encode(&request.body),
        });
        input.extend_from_slice(line.to_string().as_bytes());
        input.push(b'\n');
    }
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "python3 could not be run ({e}): webhook signatures are checked with the PyPI \
                 `standardwebhooks` package; install Python 3 and run \
                 `python3 -m pip install standardwebhooks` (.ci/run does)"
            )
        });
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(&input)
            .unwrap_or_else(|e| panic!("writing to the verifier: {e}"));
    }
    let output = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("the verifier: {e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the Python verifier failed ({}): {stderr}",
        output.status
    );
    let verdicts: Vec<Option<String>> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| (line != "ok").then(|| line.to_string()))
        .collect();
    assert_eq!(
        verdicts.len(),
        requests.len(),
        "one verdict per request: {stderr}"
    );
    verdicts
}

/// Asserts that every request verifies with `secret` under the PyPI
/// package, and that none does with another secret (so a verifier that
/// accepts anything would fail the test). Without the package this check
/// is skipped (the rest of the test runs): see [`crate::tools`].
pub(crate) fn assert_python_verifies(secret: &str, requests: &[&Received]) {
    assert!(!requests.is_empty(), "nothing to verify");
    if !crate::tools::present(&crate::tools::STANDARD_WEBHOOKS) {
        return;
    }
    for (request, verdict) in requests.iter().zip(python_verify(secret, requests)) {
        if let Some(why) = verdict {
            panic!(
                "the PyPI standardwebhooks verifier refused {}: {why}",
                request.id()
            );
        }
    }
    let wrong = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    for verdict in python_verify(wrong, &requests[..1]) {
        assert!(verdict.is_some(), "a wrong secret verified");
    }
}

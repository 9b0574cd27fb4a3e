//! No secret in a log: the gateway runs as a process at debug level, goes
//! through everything that creates or carries a secret, and every line it
//! printed is searched for each of them. The same run scrapes `/metrics`
//! from its own listener, as Prometheus would. And a restarted gateway's
//! log: a linked session that comes back logs no error.

use std::sync::PoisonError;
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use serde_json::json;

use tokio::sync::mpsc;

use crate::helpers::*;
use crate::prometheus::Metrics;

const ALICE: &str = "15550003331";
const BOB: &str = "15550003332";
const CAROL: &str = "15550003333";

/// Every secret the run saw, with what it is.
#[derive(Default)]
struct Secrets(Vec<(&'static str, String)>);

impl Secrets {
    fn add(&mut self, what: &'static str, value: impl Into<String>) {
        let value = value.into();
        assert!(
            value.len() >= 8,
            "{what} too short to search for: {value:?}"
        );
        self.0.push((what, value));
    }
}

/// The value of `name` in a response's `Set-Cookie` headers.
fn set_cookie(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next()?.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_string())
        .unwrap_or_else(|| panic!("no {name} cookie"))
}

/// The first `<input … name="_csrf" value="…">` of a page.
fn csrf_in(html: &str) -> String {
    let marker = r#"name="_csrf" value=""#;
    html.split_once(marker)
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(value, _)| value.to_string())
        .unwrap_or_else(|| panic!("no CSRF field in {html}"))
}

/// The line after the one containing `header`, trimmed: how `serve`
/// prints a one-time secret.
fn printed_after(lines: &[String], header: &str) -> String {
    lines
        .iter()
        .skip_while(|line| !line.contains(header))
        .skip(1)
        .find(|line| !line.trim().is_empty())
        .map(|line| line.trim().to_string())
        .unwrap_or_else(|| panic!("nothing printed after {header:?}"))
}

/// Strips ANSI colour sequences, which the log writer may add.
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A log line's level, if it starts one (`<time>  INFO target: …`).
fn level(line: &str) -> Option<&'static str> {
    let mut words = line.split_whitespace();
    let _time = words.next()?;
    match words.next()? {
        "TRACE" => Some("TRACE"),
        "DEBUG" => Some("DEBUG"),
        "INFO" => Some("INFO"),
        "WARN" => Some("WARN"),
        "ERROR" => Some("ERROR"),
        _ => None,
    }
}

/// A webhook receiver on loopback that answers 200 and passes each body on.
async fn receiver() -> (String, mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = Router::new().route(
        "/hook",
        post(move |body: String| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(body);
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/hook"), rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_log_even_at_debug_level() {
    let sim = simulator().await;
    let dir = DataDir::new().await;
    let port = free_port();
    let metrics_port = free_port();
    let metrics_at = format!("127.0.0.1:{metrics_port}");
    let process = GatewayProcess::serve(
        &dir,
        &sim,
        port,
        &[
            ("WAGATE_LOG", "debug"),
            ("WAGATE_ALLOW_PRIVATE_NETWORK", "true"),
            ("WAGATE_METRICS_LISTEN", &metrics_at),
        ],
    )
    .await;
    let mut secrets = Secrets::default();

    // Bootstrap: printed once, on purpose.
    let startup = process
        .output
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let token = printed_after(&startup, "API token for organization");
    assert!(token.starts_with("wag_"), "{token}");
    let password = printed_after(&startup, "sign in with this password");
    secrets.add("the bootstrap API token", &token);
    secrets.add("the bootstrap password", &password);

    // Dashboard: sign in with the password, create a token.
    let base = format!("http://127.0.0.1:{port}");
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let form = browser
        .get(format!("{base}/login"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let login_csrf = set_cookie(&form, "wagate_login");
    secrets.add("the sign-in form's CSRF token", &login_csrf);
    let signed_in = browser
        .post(format!("{base}/login"))
        .header(COOKIE, format!("wagate_login={login_csrf}"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!(
            "email=admin%40localhost&password={}&_csrf={login_csrf}",
            url::form_urlencoded::byte_serialize(password.as_bytes()).collect::<String>()
        ))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(signed_in.status(), 303);
    assert_eq!(
        signed_in
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok()),
        Some("/sessions")
    );
    let cookie = set_cookie(&signed_in, "wagate_session");
    secrets.add("the dashboard session cookie", &cookie);
    let page = |path: &str| {
        browser
            .get(format!("{base}{path}"))
            .header(COOKIE, format!("wagate_session={cookie}"))
            .send()
    };
    let tokens_page = page("/tokens")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .text()
        .await
        .unwrap_or_default();
    let csrf = csrf_in(&tokens_page);
    secrets.add("the dashboard CSRF token", &csrf);
    let created = browser
        .post(format!("{base}/tokens"))
        .header(COOKIE, format!("wagate_session={cookie}"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("name=ci&_csrf={csrf}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .text()
        .await
        .unwrap_or_default();
    let dashboard_token: String = created
        .split_once("wag_")
        .map(|(_, rest)| {
            let tail: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                .collect();
            format!("wag_{tail}")
        })
        .unwrap_or_else(|| panic!("no token on the page: {created}"));
    secrets.add("a token created in the dashboard", &dashboard_token);

    // The API, with the dashboard's token; the socket takes it in its URL.
    let gateway = Gateway::at(port, dashboard_token.clone());
    let mut events = gateway.events().await;

    // Link one session by QR code, one by pairing code.
    let alice = gateway.create_session().await;
    let qr = events.qr(&alice).await;
    secrets.add("a QR code", &qr);
    sim.handle()
        .scan_qr(ALICE, &qr)
        .unwrap_or_else(|e| panic!("scan: {e}"));
    events.status(&alice, "working").await;

    let carol = gateway.create_session().await;
    let carol_qr = events.qr(&carol).await;
    secrets.add("another session's QR code", &carol_qr);
    let (status, body) = gateway
        .call(
            Method::POST,
            &format!("/sessions/{carol}/pairing-code"),
            Some(json!({ "phone": CAROL })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let code = body["code"].as_str().unwrap_or_default().to_string();
    secrets.add("a pairing code", &code);
    secrets.add(
        "a pairing code, as WhatsApp sends it",
        code.replace('-', ""),
    );
    sim.handle()
        .enter_code(CAROL, &code)
        .await
        .unwrap_or_else(|e| panic!("enter code: {e}"));
    events.status(&carol, "working").await;

    // A webhook, and its secret rotated.
    let (url, mut deliveries) = receiver().await;
    let (status, hook) = gateway
        .call(
            Method::POST,
            "/webhooks",
            Some(json!({ "url": url, "events": ["message.received"] })),
        )
        .await;
    assert_eq!(status, 201, "{hook}");
    secrets.add(
        "a webhook secret",
        hook["secret"].as_str().unwrap_or_default(),
    );
    let hook_id = hook["id"].as_str().unwrap_or_default();
    let (status, rotated) = gateway
        .call(
            Method::POST,
            &format!("/webhooks/{hook_id}/rotate-secret"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    secrets.add(
        "a rotated webhook secret",
        rotated["secret"].as_str().unwrap_or_default(),
    );

    // A message out and one in, with bodies nobody else uses.
    sim.handle()
        .register_phone(BOB)
        .unwrap_or_else(|e| panic!("{e}"));
    let outgoing = format!("outgoing body {}", uuid::Uuid::new_v4());
    let (status, sent) = gateway
        .call(
            Method::POST,
            &format!("/sessions/{alice}/messages"),
            Some(json!({ "to": BOB, "text": { "body": outgoing } })),
        )
        .await;
    assert_eq!(status, 202, "{sent}");
    let sent_id = sent["id"].as_str().unwrap_or_default().to_string();
    events.message_status(&alice, &sent_id, "sent").await;
    let incoming = format!("incoming body {}", uuid::Uuid::new_v4());
    let wa_id = sim
        .handle()
        .phone_send_text(BOB, ALICE, &incoming)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    events.incoming(&alice, &wa_id).await;
    // Its webhook delivery, signed with the secrets above.
    let delivered = tokio::time::timeout(WAIT, async {
        while let Some(body) = deliveries.recv().await {
            if body.contains(&incoming) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(delivered, Ok(true), "the webhook never got the message");

    // The metrics listener, scraped as Prometheus would. The receiver hands
    // the body on before its 200 reaches the gateway, which counts the
    // delivery only once it has the answer and has recorded it (on
    // PostgreSQL, a round trip later): scraped again until it has, within
    // the same bound as everything else.
    let scrape = || async {
        let scraped = reqwest::get(format!("http://{metrics_at}/metrics"))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .text()
            .await
            .unwrap_or_default();
        Metrics::parse(&scraped)
    };
    let metrics = tokio::time::timeout(WAIT, async {
        loop {
            let metrics = scrape().await;
            let delivered = [("result", "delivered")];
            if metrics
                .get("wagate_webhook_deliveries_total", &delivered)
                .is_some()
            {
                return metrics;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the webhook delivery was never counted"));
    assert_eq!(
        metrics.value("wagate_sessions", &[("status", "working")]),
        2.0
    );
    for method in ["qr_code", "pairing_code"] {
        assert_eq!(
            metrics.value(
                "wagate_session_link_duration_seconds",
                &[("method", method)]
            ),
            1.0,
            "{method}"
        );
    }
    assert!(
        metrics.value(
            "wagate_session_reconnects_total",
            &[("reason", "after_pairing")]
        ) >= 2.0
    );
    assert_eq!(
        metrics.value(
            "wagate_incoming_messages_total",
            &[("event", "message.received")]
        ),
        1.0
    );
    assert!(metrics.value("wagate_outgoing_messages_total", &[("status", "sent")]) >= 1.0);
    assert!(
        metrics.value(
            "wagate_webhook_deliveries_total",
            &[("result", "delivered")]
        ) >= 1.0
    );
    assert!(metrics.value("wagate_webhook_delivery_lag_seconds", &[]) >= 1.0);
    assert!(
        metrics.value(
            "wagate_session_client_memory_bytes",
            &[("session_id", &alice)]
        ) > 0.0
    );
    assert!(metrics.value("process_resident_memory_bytes", &[]) > 0.0);
    // Not on the API's port.
    let on_api_port = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(on_api_port.status(), 404);

    drop(events);
    let output = process.stop().await;

    // Every line, searched for every secret. The bootstrap printout is the
    // one place the token and password may appear: once, alone on a line.
    let lines: Vec<String> = output.iter().map(|line| plain(line)).collect();
    assert!(lines.len() > 100, "debug logging was not on: {lines:?}");
    let printout = |value: &str| lines.iter().filter(|line| line.trim() == value).count();
    assert_eq!(printout(&token), 1);
    assert_eq!(printout(&password), 1);
    let mut leaks = Vec::new();
    for (what, secret) in &secrets.0 {
        for line in &lines {
            let deliberate = (secret == &token || secret == &password) && line.trim() == secret;
            if line.contains(secret.as_str()) && !deliberate {
                leaks.push(format!("{what} in: {line}"));
            }
        }
    }
    // Message bodies: not at info or above (debug is the operator's
    // explicit choice to see protocol detail).
    let mut current = None;
    for line in &lines {
        current = level(line).or(current);
        let loud = matches!(current, Some("INFO" | "WARN" | "ERROR"));
        for body in [&outgoing, &incoming] {
            if loud && line.contains(body.as_str()) {
                leaks.push(format!("a message body at {current:?}: {line}"));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "secrets in the log:\n{}",
        leaks.join("\n")
    );
}

/// After a restart, a linked session connects again and checks its keys
/// with the server (the prekey digest query, which the simulator answers as
/// WhatsApp does): the whole restarted run logs no ERROR line and no
/// complaint about that check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_linked_session_logs_no_error() {
    const DAVE: &str = "15550003334";
    let sim = simulator().await;
    let dir = DataDir::new().await;
    sim.handle()
        .register_phone(BOB)
        .unwrap_or_else(|e| panic!("{e}"));
    // The filter a gateway has when none is set.
    let log = [("WAGATE_LOG", "warn,wagate=info")];
    let port = free_port();
    let first = GatewayProcess::serve(&dir, &sim, port, &log).await;
    let startup = first
        .output
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let token = printed_after(&startup, "API token for organization");
    let gateway = Gateway::at(port, token.clone());
    let mut events = gateway.events().await;
    let id = link_by_qr(&gateway, &mut events, &sim, DAVE).await;
    drop(events);
    first.stop().await;

    let digests = sim.handle().stats().digests_answered;
    let port = free_port();
    let again = GatewayProcess::serve(&dir, &sim, port, &log).await;
    let gateway = Gateway::at(port, token);
    let mut events = gateway.events().await;
    if gateway.session(&id).await["status"] != "working" {
        events.status(&id, "working").await;
    }
    tokio::time::timeout(
        WAIT,
        sim.handle()
            .wait_for_stats(|s| s.digests_answered > digests),
    )
    .await
    .unwrap_or_else(|_| panic!("the restarted session never checked its keys"));
    // A round trip on the same connection after the digest's answer, so
    // the client has read that answer before the log is taken.
    let (status, sent) = gateway
        .call(
            Method::POST,
            &format!("/sessions/{id}/messages"),
            Some(json!({ "to": BOB, "text": { "body": "after the restart" } })),
        )
        .await;
    assert_eq!(status, 202, "{sent}");
    let sent_id = sent["id"].as_str().unwrap_or_default().to_string();
    events.message_status(&id, &sent_id, "sent").await;
    drop(events);

    let lines: Vec<String> = again.stop().await.iter().map(|l| plain(l)).collect();
    let bad: Vec<&String> = lines
        .iter()
        .filter(|line| level(line) == Some("ERROR") || line.contains("digestKey"))
        .collect();
    assert!(bad.is_empty(), "the restarted run logged:\n{bad:#?}");
}

//! `/webhooks`: CRUD, validation, secrets, the delivery log; other
//! organizations' webhooks are not found. No delivery runs here (the
//! router alone); `webhook_delivery.rs` delivers to a real receiver.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, default_org, log_qr_event};

/// A public address that these tests never contact (the router alone runs).
const PUBLIC_URL: &str = "https://93.184.215.14/hooks/wagate";

async fn create(app: &TestApp, body: Value) -> Value {
    let created = app.call(Method::POST, "/api/v1/webhooks", Some(body)).await;
    assert_eq!(
        created.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&created.bytes)
    );
    created.json()
}

#[tokio::test]
async fn create_shows_the_secret_once_and_defaults_to_everything() {
    let app = TestApp::spawn().await;
    let body = create(&app, json!({ "url": PUBLIC_URL })).await;
    assert_eq!(body["url"], PUBLIC_URL);
    assert_eq!(body["events"], json!(["*"]));
    assert!(body["sessions"].is_null());
    assert_eq!(body["enabled"], true);
    assert!(body["disabled_reason"].is_null());
    let secret = body["secret"].as_str().unwrap_or_default();
    assert!(secret.starts_with("whsec_"), "{secret}");
    let id = body["id"].as_str().unwrap_or_default();
    let fetched = app
        .call(Method::GET, &format!("/api/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(fetched.status, StatusCode::OK);
    let fetched = fetched.json();
    assert!(
        fetched.get("secret").is_none(),
        "shown only once: {fetched}"
    );
    assert_eq!(fetched["id"], body["id"]);
    let listed = app.call(Method::GET, "/api/v1/webhooks", None).await;
    assert_eq!(listed.json()["data"][0]["id"], body["id"]);
    assert!(listed.json()["data"][0].get("secret").is_none());
}

#[tokio::test]
async fn filters_and_updates_round_trip() {
    let app = TestApp::spawn().await;
    let session = app.stopped_session().await;
    let body = create(
        &app,
        json!({
            "url": PUBLIC_URL,
            "events": ["message.status", "session.status", "message.status"],
            "sessions": [session],
            "enabled": false,
        }),
    )
    .await;
    assert_eq!(body["events"], json!(["message.status", "session.status"]));
    assert_eq!(body["sessions"], json!([session]));
    assert_eq!(body["enabled"], false);
    let uri = format!(
        "/api/v1/webhooks/{}",
        body["id"].as_str().unwrap_or_default()
    );

    let patched = app
        .call(
            Method::PATCH,
            &uri,
            Some(json!({ "events": null, "enabled": true, "url": "http://93.184.215.14:8080/x" })),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK);
    let patched = patched.json();
    assert_eq!(patched["events"], json!(["*"]));
    assert_eq!(patched["sessions"], json!([session]), "absent: unchanged");
    assert_eq!(patched["enabled"], true);
    assert_eq!(patched["url"], "http://93.184.215.14:8080/x");
    let cleared = app
        .call(Method::PATCH, &uri, Some(json!({ "sessions": null })))
        .await;
    assert!(cleared.json()["sessions"].is_null());

    assert_eq!(
        app.call(Method::DELETE, &uri, None).await.status,
        StatusCode::NO_CONTENT
    );
    app.call(Method::GET, &uri, None)
        .await
        .assert_error(StatusCode::NOT_FOUND, "webhook_not_found");
    app.call(Method::DELETE, &uri, None)
        .await
        .assert_error(StatusCode::NOT_FOUND, "webhook_not_found");
}

#[tokio::test]
async fn bad_input_is_a_422_with_a_code() {
    let app = TestApp::spawn().await;
    let session = app.stopped_session().await;
    let many_types: Vec<String> = (0..33).map(|_| "session.status".to_string()).collect();
    let many_sessions: Vec<String> = (0..101).map(|_| session.clone()).collect();
    let long = format!("https://example.org/{}", "a".repeat(2048));
    let cases = [
        (json!({ "url": "not a url" }), "invalid_url"),
        (json!({ "url": long }), "url_too_long"),
        (
            json!({ "url": "ftp://93.184.215.14/x" }),
            "unsupported_url_scheme",
        ),
        (
            json!({ "url": "file:///etc/passwd" }),
            "unsupported_url_scheme",
        ),
        (
            json!({ "url": "http://127.0.0.1:8080/x" }),
            "private_address",
        ),
        (json!({ "url": "http://localhost/x" }), "private_address"),
        (json!({ "url": "http://10.0.0.8/x" }), "private_address"),
        (
            json!({ "url": "http://169.254.169.254/latest" }),
            "private_address",
        ),
        (json!({ "url": "http://[::1]/x" }), "private_address"),
        (
            json!({ "url": PUBLIC_URL, "events": [] }),
            "empty_event_filter",
        ),
        (
            json!({ "url": PUBLIC_URL, "events": many_types }),
            "too_many_event_types",
        ),
        (
            json!({ "url": PUBLIC_URL, "events": ["message.sent"] }),
            "unknown_event_type",
        ),
        (
            json!({ "url": PUBLIC_URL, "sessions": [] }),
            "empty_session_filter",
        ),
        (
            json!({ "url": PUBLIC_URL, "sessions": many_sessions }),
            "too_many_sessions",
        ),
        (
            json!({ "url": PUBLIC_URL, "sessions": ["nope"] }),
            "invalid_session_id",
        ),
        (
            json!({ "url": PUBLIC_URL, "secret": "mine" }),
            "invalid_body",
        ),
        (json!({ "events": ["*"] }), "invalid_body"),
        // Hosts the URL standard parses but no DNS name can be.
        (
            json!({ "url": "https://hooks*.example.com/" }),
            "invalid_url",
        ),
        (
            json!({ "url": "https://hooks..example.com/" }),
            "invalid_url",
        ),
        (json!([PUBLIC_URL, null]), "invalid_body"),
    ];
    for (body, code) in cases {
        let response = app
            .call(Method::POST, "/api/v1/webhooks", Some(body.clone()))
            .await;
        let message = response.assert_error(StatusCode::UNPROCESSABLE_ENTITY, code);
        assert!(!message.is_empty(), "{body}");
    }
    // Well-formed, naming a session that is not there: a 404, as a
    // missing path id would be.
    app.call(
        Method::POST,
        "/api/v1/webhooks",
        Some(json!({ "url": PUBLIC_URL, "sessions": ["0190d7a0-0000-7000-8000-000000000000"] })),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "unknown_session");
    let listed = app.call(Method::GET, "/api/v1/webhooks", None).await;
    assert_eq!(listed.json()["data"], json!([]), "nothing was created");

    let hook = create(&app, json!({ "url": PUBLIC_URL })).await;
    let uri = format!(
        "/api/v1/webhooks/{}",
        hook["id"].as_str().unwrap_or_default()
    );
    app.call(
        Method::PATCH,
        &uri,
        Some(json!({ "url": "http://192.168.1.1/" })),
    )
    .await
    .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "private_address");
    app.call(Method::PATCH, &uri, Some(json!({ "events": ["nope"] })))
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "unknown_event_type");
    app.call(
        Method::POST,
        &format!("{uri}/rotate-secret"),
        Some(json!({ "grace_period_secs": 604801 })),
    )
    .await
    .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_grace_period");
    app.call(Method::GET, &format!("{uri}/deliveries?status=lost"), None)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_query");
    app.call(Method::GET, &format!("{uri}/deliveries?cursor=x"), None)
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_cursor");
    app.call(Method::GET, "/api/v1/webhooks/not-a-uuid", None)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_path");
}

#[tokio::test]
async fn rotation_returns_a_new_secret_and_the_grace_period() {
    let app = TestApp::spawn().await;
    let hook = create(&app, json!({ "url": PUBLIC_URL })).await;
    let uri = format!(
        "/api/v1/webhooks/{}/rotate-secret",
        hook["id"].as_str().unwrap_or_default()
    );
    // No body at all: the default grace period.
    let rotated = app.raw(Method::POST, &uri, None, "").await;
    assert_eq!(rotated.status, StatusCode::OK);
    let rotated = rotated.json();
    assert_ne!(rotated["secret"], hook["secret"]);
    assert!(
        rotated["secret"]
            .as_str()
            .is_some_and(|s| s.starts_with("whsec_"))
    );
    assert!(
        rotated["previous_secret_expires_at"].is_string(),
        "{rotated}"
    );
    // A zero grace period ends the old secret now.
    let immediate = app
        .call(Method::POST, &uri, Some(json!({ "grace_period_secs": 0 })))
        .await;
    assert!(immediate.json()["previous_secret_expires_at"].is_null());
}

#[tokio::test]
async fn the_delivery_log_lists_and_replays() {
    let app = TestApp::spawn().await;
    let hook = create(&app, json!({ "url": PUBLIC_URL })).await;
    let id = hook["id"].as_str().unwrap_or_default().to_string();
    // A stopped session logs no event here: one is appended as the
    // supervisor would append a QR code.
    let session = app.stopped_session().await;
    let event = log_event(&app, session.parse().unwrap_or_else(|_| panic!("uuid"))).await;

    let log = app
        .call(
            Method::GET,
            &format!("/api/v1/webhooks/{id}/deliveries"),
            None,
        )
        .await;
    assert_eq!(log.status, StatusCode::OK);
    let log = log.json();
    let delivery = &log["data"][0];
    assert_eq!(delivery["event_id"], event.id.to_string());
    assert_eq!(delivery["event_type"], "session.qr");
    assert_eq!(delivery["session_id"], session);
    assert_eq!(delivery["status"], "pending");
    assert_eq!(delivery["attempts"], 0);
    assert!(delivery["next_attempt_at"].is_string());
    assert!(log["next_cursor"].is_null());
    let filtered = app
        .call(
            Method::GET,
            &format!("/api/v1/webhooks/{id}/deliveries?status=delivered"),
            None,
        )
        .await;
    assert_eq!(filtered.json()["data"], json!([]));

    let delivery_id = delivery["id"].as_str().unwrap_or_default();
    let retried = app
        .call(
            Method::POST,
            &format!("/api/v1/webhooks/{id}/deliveries/{delivery_id}/retry"),
            None,
        )
        .await;
    assert_eq!(retried.status, StatusCode::ACCEPTED);
    assert_eq!(retried.json()["status"], "pending");
    app.call(
        Method::POST,
        &format!("/api/v1/webhooks/{id}/deliveries/{}/retry", event.id),
        None,
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "delivery_not_found");
}

#[tokio::test]
async fn another_organizations_webhooks_are_not_found_and_a_token_is_needed() {
    let app = TestApp::spawn().await;
    let hook = create(&app, json!({ "url": PUBLIC_URL })).await;
    let id = hook["id"].as_str().unwrap_or_default();
    let other = app.other_org_token().await;
    let base = format!("/api/v1/webhooks/{id}");
    let endpoints = [
        (Method::GET, base.clone(), None),
        (
            Method::PATCH,
            base.clone(),
            Some(json!({ "enabled": false })),
        ),
        (Method::POST, format!("{base}/rotate-secret"), None),
        (Method::POST, format!("{base}/test"), None),
        (Method::GET, format!("{base}/deliveries"), None),
        (
            Method::POST,
            format!("{base}/deliveries/0190d7a0-0000-7000-8000-000000000000/retry"),
            None,
        ),
        (
            Method::POST,
            format!("{base}/deliveries/retry"),
            Some(json!({ "since": "2025-01-31T12:00:00Z" })),
        ),
        (Method::DELETE, base.clone(), None),
    ];
    for (method, uri, body) in &endpoints {
        app.call_as(&other, method.clone(), uri, body.clone())
            .await
            .assert_error(StatusCode::NOT_FOUND, "webhook_not_found");
        app.call_as("wag_nope", method.clone(), uri, body.clone())
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
    }
    let listed = app
        .call_as(&other, Method::GET, "/api/v1/webhooks", None)
        .await;
    assert_eq!(listed.json()["data"], json!([]));
    // A session filter naming another organization's session is unknown.
    let session = app.stopped_session().await;
    app.call_as(
        &other,
        Method::POST,
        "/api/v1/webhooks",
        Some(json!({ "url": PUBLIC_URL, "sessions": [session] })),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "unknown_session");
    // Still there for its owner.
    assert_eq!(
        app.call(Method::GET, &base, None).await.status,
        StatusCode::OK
    );
}

/// Logs a QR event for `session`, as a supervisor would.
async fn log_event(app: &TestApp, session: wagate::SessionId) -> wagate::Envelope {
    let org = default_org(app.store.as_ref()).await;
    log_qr_event(app.store.as_ref(), org, session, "2@abc").await
}

/// Attempts everything due, as the dispatcher would, with the receiver
/// answering 200 for the events in `accepted` and 500 (given up at once)
/// for the rest, until nothing is due.
async fn settle(app: &TestApp, accepted: &[wagate::EventId]) {
    use wagate::{AfterFailure, AttemptResult};

    let webhooks = app.store.webhooks();
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    loop {
        let due = webhooks
            .due_deliveries(later, 100, None)
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        if due.is_empty() {
            return;
        }
        for delivery in due {
            let result = |code: u16| AttemptResult {
                at: chrono::Utc::now(),
                status_code: Some(code),
                ..AttemptResult::default()
            };
            let recorded = if accepted.contains(&delivery.event_id) {
                webhooks.delivery_succeeded(&delivery, &result(200)).await
            } else {
                webhooks
                    .delivery_failed(&delivery, &result(500), AfterFailure::GiveUp, None)
                    .await
                    .map(drop)
            };
            recorded.unwrap_or_else(|e| panic!("{e:?}"));
        }
    }
}

#[tokio::test]
async fn every_failed_delivery_since_a_time_is_queued_again_in_order() {
    use wagate::SessionId;

    let app = TestApp::spawn().await;
    let hook = create(&app, json!({ "url": PUBLIC_URL })).await;
    let other_hook = create(&app, json!({ "url": PUBLIC_URL })).await;
    let id = hook["id"].as_str().unwrap_or_default().to_string();
    let uri = format!("/api/v1/webhooks/{id}/deliveries/retry");
    let (s1, s2) = (SessionId::new(), SessionId::new());

    // One event before the chosen time (stamped at least a millisecond
    // earlier than the next), then four from it on.
    let old = log_event(&app, s1).await;
    let first = loop {
        let event = log_event(&app, s1).await;
        if event.at.timestamp_millis() > old.at.timestamp_millis() {
            break event;
        }
    };
    let second = log_event(&app, s2).await;
    let delivered = log_event(&app, s1).await;
    let last = log_event(&app, s2).await;
    settle(&app, &[delivered.id]).await;
    let since = first
        .at
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);

    let retried = app
        .call(Method::POST, &uri, Some(json!({ "since": since })))
        .await;
    assert_eq!(retried.status, StatusCode::ACCEPTED);
    assert_eq!(retried.json(), json!({ "queued": 3 }));

    let status_of = |log: &Value, event: &wagate::Envelope| {
        log["data"]
            .as_array()
            .and_then(|d| d.iter().find(|d| d["event_id"] == event.id.to_string()))
            .map(|d| d["status"].clone())
            .unwrap_or_else(|| panic!("{} not logged: {log}", event.id))
    };
    let log = app
        .call(
            Method::GET,
            &format!("/api/v1/webhooks/{id}/deliveries"),
            None,
        )
        .await
        .json();
    assert_eq!(status_of(&log, &old), "failed", "before `since`: {log}");
    for event in [&first, &second, &last] {
        assert_eq!(status_of(&log, event), "pending", "{log}");
    }
    assert_eq!(status_of(&log, &delivered), "delivered");
    // Another webhook's failures stay failed.
    let other_log = app
        .call(
            Method::GET,
            &format!(
                "/api/v1/webhooks/{}/deliveries?status=pending",
                other_hook["id"].as_str().unwrap_or_default()
            ),
            None,
        )
        .await
        .json();
    assert_eq!(other_log["data"], json!([]), "{other_log}");

    // In order: the oldest event of each session is due first, the
    // delivered one replayed next waits behind its session's older one.
    let delivered_again = app
        .call(
            Method::POST,
            &uri,
            Some(json!({ "since": since, "status": "delivered" })),
        )
        .await;
    assert_eq!(delivered_again.status, StatusCode::ACCEPTED);
    assert_eq!(delivered_again.json()["queued"], 1);
    let due: Vec<_> = app
        .store
        .webhooks()
        .due_deliveries(chrono::Utc::now() + chrono::Duration::seconds(1), 100, None)
        .await
        .unwrap_or_else(|e| panic!("{e:?}"))
        .into_iter()
        .filter(|d| d.webhook_id.to_string() == id)
        .map(|d| d.event_id)
        .collect();
    assert_eq!(due, vec![first.id, second.id]);
    // Nothing failed is left since then.
    let none = app
        .call(Method::POST, &uri, Some(json!({ "since": since })))
        .await;
    assert_eq!(none.json()["queued"], 0);

    let cases = [
        (json!({ "since": "yesterday" }), "invalid_since"),
        (json!({ "since": "2025-01-31" }), "invalid_since"),
        (json!({ "since": "2025-01-31T12:00:00" }), "invalid_since"),
        (
            json!({ "since": since, "status": "pending" }),
            "invalid_status",
        ),
        (json!({ "since": since, "status": "lost" }), "invalid_body"),
        (json!({ "status": "failed" }), "invalid_body"),
        (json!({ "since": since, "until": since }), "invalid_body"),
        (json!({ "since": 1_700_000_000 }), "invalid_body"),
    ];
    for (body, code) in cases {
        let message = app
            .call(Method::POST, &uri, Some(body.clone()))
            .await
            .assert_error(StatusCode::UNPROCESSABLE_ENTITY, code);
        assert!(!message.is_empty(), "{body}");
    }
    app.raw(Method::POST, &uri, Some("application/json"), "{\"since\":")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "malformed_json");
    app.call(
        Method::POST,
        "/api/v1/webhooks/0190d7a0-0000-7000-8000-000000000000/deliveries/retry",
        Some(json!({ "since": since })),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "webhook_not_found");
}

//! `/metrics`: what is stored, counted at scrape time.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn sessions_by_status_and_the_outbox_are_counted_from_the_store() {
    let app = TestApp::spawn().await;
    let empty = app.scrape().await;
    for status in [
        "stopped",
        "starting",
        "scan_qr_code",
        "working",
        "failed",
        "logged_out",
    ] {
        assert_eq!(empty.value("wagate_sessions", &[("status", status)]), 0.0);
    }
    assert_eq!(empty.value("wagate_outbox_pending_messages", &[]), 0.0);
    assert_eq!(
        empty.value("wagate_outbox_oldest_pending_age_seconds", &[]),
        0.0
    );
    assert_eq!(
        empty.get("wagate_outgoing_messages_total", &[("status", "pending")]),
        None
    );

    app.stopped_session().await;
    app.stopped_session().await;
    // Started against a server that is not there: it stays `starting`,
    // retrying, and its outbox waits.
    let started = app
        .call(
            Method::POST,
            "/api/v1/sessions",
            Some(json!({ "label": "retrying" })),
        )
        .await;
    assert_eq!(started.status, StatusCode::CREATED);
    let id = started.json()["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let sent = app
        .call(
            Method::POST,
            &format!("/api/v1/sessions/{id}/messages"),
            Some(json!({ "to": "15550001111", "text": { "body": "hello" } })),
        )
        .await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.json());

    let after = app.scrape().await;
    assert_eq!(
        after.value("wagate_sessions", &[("status", "stopped")]),
        2.0
    );
    assert_eq!(
        after.value("wagate_sessions", &[("status", "starting")]),
        1.0
    );
    assert_eq!(
        after.value("wagate_sessions", &[("status", "working")]),
        0.0
    );
    assert_eq!(after.value("wagate_outbox_pending_messages", &[]), 1.0);
    assert!(after.value("wagate_outbox_oldest_pending_age_seconds", &[]) >= 0.0);
    assert_eq!(
        after.value("wagate_outgoing_messages_total", &[("status", "pending")]),
        1.0
    );
    assert!(after.value("process_resident_memory_bytes", &[]) > 0.0);

    // A deleted session leaves the count at once: nothing to drift.
    let deleted = app
        .call(Method::DELETE, &format!("/api/v1/sessions/{id}"), None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = app.scrape().await;
    assert_eq!(
        gone.value("wagate_sessions", &[("status", "starting")]),
        0.0
    );
    assert_eq!(gone.value("wagate_outbox_pending_messages", &[]), 0.0);
}

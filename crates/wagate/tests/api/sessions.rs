use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn create_returns_the_session() {
    let app = TestApp::spawn().await;
    let created = app
        .call(
            Method::POST,
            "/api/v1/sessions",
            Some(json!({ "label": "Sales", "start": false })),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let body = created.json();
    assert_eq!(body["label"], "Sales");
    assert_eq!(body["status"], "stopped");
    assert!(body["status_reason"].is_null());
    assert!(body["phone"].is_null());
    assert!(body["push_name"].is_null());
    for field in ["id", "created_at", "updated_at"] {
        assert!(body[field].is_string(), "{field}: {body}");
    }
    let id = body["id"].as_str().unwrap_or_default();
    let fetched = app
        .call(Method::GET, &format!("/api/v1/sessions/{id}"), None)
        .await;
    assert_eq!(fetched.json(), body);
}

#[tokio::test]
async fn create_rejects_bad_bodies_with_the_envelope() {
    let app = TestApp::spawn().await;
    let cases = [
        (
            json!({ "label": 5 }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({ "start": "yes" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({ "lable": "typo" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (json!([]), StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        (
            json!({ "label": "x".repeat(101) }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_label",
        ),
        (
            json!({ "label": "a\u{0}b" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_label",
        ),
    ];
    for (body, status, code) in cases {
        app.call(Method::POST, "/api/v1/sessions", Some(body))
            .await
            .assert_error(status, code);
    }
    app.raw(
        Method::POST,
        "/api/v1/sessions",
        Some("application/json"),
        "{\"label\":",
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "malformed_json");
    app.raw(Method::POST, "/api/v1/sessions", None, "{}")
        .await
        .assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    app.raw(Method::POST, "/api/v1/sessions", Some("text/plain"), "{}")
        .await
        .assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    let huge = format!("{{\"label\":\"{}\"}}", "x".repeat(64 * 1024));
    app.raw(
        Method::POST,
        "/api/v1/sessions",
        Some("application/json"),
        huge,
    )
    .await
    .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
}

#[tokio::test]
async fn bad_and_unknown_ids() {
    let app = TestApp::spawn().await;
    for uri in [
        "/api/v1/sessions/not-a-uuid",
        "/api/v1/sessions/123",
        "/api/v1/sessions/not-a-uuid/start",
        "/api/v1/sessions/%00/qr",
    ] {
        app.call(Method::GET, uri, None).await;
    }
    app.call(Method::GET, "/api/v1/sessions/not-a-uuid", None)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_path");
    app.call(Method::POST, "/api/v1/sessions/not-a-uuid/stop", None)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_path");
    let unknown = "00000000-0000-4000-8000-000000000000";
    for (method, uri, body) in crate::helpers::session_endpoints(unknown) {
        app.call(method, &uri, body)
            .await
            .assert_error(StatusCode::NOT_FOUND, "session_not_found");
    }
}

#[tokio::test]
async fn list_paginates_and_filters() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(app.stopped_session().await);
    }
    let mut seen = Vec::new();
    let mut uri = "/api/v1/sessions?limit=2".to_string();
    loop {
        let page = app.call(Method::GET, &uri, None).await;
        assert_eq!(page.status, StatusCode::OK);
        let body = page.json();
        let data = body["data"].as_array().cloned().unwrap_or_default();
        assert!(data.len() <= 2);
        seen.extend(
            data.iter()
                .filter_map(|s| s["id"].as_str().map(str::to_string)),
        );
        match body["next_cursor"].as_str() {
            Some(cursor) => uri = format!("/api/v1/sessions?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    seen.sort();
    ids.sort();
    assert_eq!(seen, ids);

    let stopped = app
        .call(Method::GET, "/api/v1/sessions?status=stopped", None)
        .await;
    assert_eq!(stopped.json()["data"].as_array().map(Vec::len), Some(5));
    let working = app
        .call(Method::GET, "/api/v1/sessions?status=working", None)
        .await;
    assert_eq!(working.json()["data"], json!([]));
}

#[tokio::test]
async fn list_rejects_bad_parameters() {
    let app = TestApp::spawn().await;
    for (query, status, code) in [
        ("limit=0", StatusCode::UNPROCESSABLE_ENTITY, "invalid_limit"),
        (
            "limit=101",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_limit",
        ),
        ("limit=abc", StatusCode::BAD_REQUEST, "invalid_query"),
        ("limit=-1", StatusCode::BAD_REQUEST, "invalid_query"),
        ("status=linked", StatusCode::BAD_REQUEST, "invalid_query"),
        (
            "cursor=garbage",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_cursor",
        ),
        ("offset=5&bogus=1", StatusCode::BAD_REQUEST, "invalid_query"),
    ] {
        app.call(Method::GET, &format!("/api/v1/sessions?{query}"), None)
            .await
            .assert_error(status, code);
    }
}

#[tokio::test]
async fn patch_changes_or_clears_the_label() {
    let app = TestApp::spawn().await;
    let id = app.stopped_session().await;
    let uri = format!("/api/v1/sessions/{id}");
    let renamed = app
        .call(Method::PATCH, &uri, Some(json!({ "label": "Support" })))
        .await;
    assert_eq!(renamed.json()["label"], "Support");
    let untouched = app.call(Method::PATCH, &uri, Some(json!({}))).await;
    assert_eq!(untouched.json()["label"], "Support");
    let cleared = app
        .call(Method::PATCH, &uri, Some(json!({ "label": null })))
        .await;
    assert!(cleared.json()["label"].is_null());
    app.call(Method::PATCH, &uri, Some(json!({ "label": ["x"] })))
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    app.call(
        Method::PATCH,
        &uri,
        Some(json!({ "label": "x".repeat(101) })),
    )
    .await
    .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_label");
}

#[tokio::test]
async fn a_session_has_its_own_send_pace_or_follows_the_gateway() {
    let app = TestApp::spawn().await;
    let created = app
        .call(
            Method::POST,
            "/api/v1/sessions",
            Some(json!({ "start": false, "send_per_minute": 10 })),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let body = created.json();
    assert_eq!(body["send_per_minute"], 10);
    assert!(body["send_new_chats_per_minute"].is_null());
    let uri = format!(
        "/api/v1/sessions/{}",
        body["id"].as_str().unwrap_or_default()
    );

    let repaced = app
        .call(
            Method::PATCH,
            &uri,
            Some(json!({ "send_new_chats_per_minute": 2, "label": "Paced" })),
        )
        .await
        .json();
    assert_eq!(
        (
            &repaced["send_per_minute"],
            &repaced["send_new_chats_per_minute"]
        ),
        (&json!(10), &json!(2))
    );
    let reread = app.call(Method::GET, &uri, None).await.json();
    assert_eq!(reread["send_new_chats_per_minute"], 2);
    let followed = app
        .call(
            Method::PATCH,
            &uri,
            Some(json!({ "send_per_minute": null })),
        )
        .await
        .json();
    assert!(followed["send_per_minute"].is_null());
    assert_eq!(followed["send_new_chats_per_minute"], 2);
    assert_eq!(followed["label"], "Paced");

    for bad in [
        json!({ "send_per_minute": 601 }),
        json!({ "send_per_minute": -1 }),
    ] {
        app.call(Method::PATCH, &uri, Some(bad.clone()))
            .await
            .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    }
}

#[tokio::test]
async fn lifecycle_actions_on_a_stopped_session() {
    let app = TestApp::spawn().await;
    let id = app.stopped_session().await;
    let stop = app
        .call(Method::POST, &format!("/api/v1/sessions/{id}/stop"), None)
        .await;
    assert_eq!(stop.status, StatusCode::OK);
    assert_eq!(stop.json()["status"], "stopped");
    app.call(Method::POST, &format!("/api/v1/sessions/{id}/logout"), None)
        .await
        .assert_error(StatusCode::CONFLICT, "not_linked");
}

#[tokio::test]
async fn delete_removes_the_session() {
    let app = TestApp::spawn().await;
    let id = app.stopped_session().await;
    let uri = format!("/api/v1/sessions/{id}");
    let deleted = app.call(Method::DELETE, &uri, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    app.call(Method::GET, &uri, None)
        .await
        .assert_error(StatusCode::NOT_FOUND, "session_not_found");
    app.call(Method::DELETE, &uri, None)
        .await
        .assert_error(StatusCode::NOT_FOUND, "session_not_found");
}

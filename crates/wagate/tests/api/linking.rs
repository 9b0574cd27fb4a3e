use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn a_stopped_session_has_no_qr_code() {
    let app = TestApp::spawn().await;
    let id = app.stopped_session().await;
    for format in ["", "?format=png", "?format=svg", "?format=json"] {
        app.call(
            Method::GET,
            &format!("/api/v1/sessions/{id}/qr{format}"),
            None,
        )
        .await
        .assert_error(StatusCode::CONFLICT, "not_started");
    }
    app.call(
        Method::GET,
        &format!("/api/v1/sessions/{id}/qr?format=gif"),
        None,
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "invalid_query");
}

#[tokio::test]
async fn pairing_code_phone_must_be_bare_international_digits() {
    let app = TestApp::spawn().await;
    let id = app.stopped_session().await;
    let uri = format!("/api/v1/sessions/{id}/pairing-code");
    for phone in [
        "+628123456789",
        "62 812 3456 789",
        "0812345678",
        "62812abc",
        "",
    ] {
        let message = app
            .call(Method::POST, &uri, Some(json!({ "phone": phone })))
            .await
            .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_phone");
        assert!(
            message.contains("digits only")
                && message.contains("no '+'")
                && message.contains("no spaces"),
            "{message}"
        );
    }
    for body in [
        json!({}),
        json!({ "phone": 628123456789u64 }),
        json!({ "phone": "628123456789", "x": 1 }),
    ] {
        app.call(Method::POST, &uri, Some(body))
            .await
            .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    }
}

#[tokio::test]
async fn pairing_code_needs_a_session_waiting_for_a_link() {
    let app = TestApp::spawn().await;
    let id = app.stopped_session().await;
    let conflict = app
        .call(
            Method::POST,
            &format!("/api/v1/sessions/{id}/pairing-code"),
            Some(json!({ "phone": "628123456789" })),
        )
        .await;
    conflict.assert_error(StatusCode::CONFLICT, "not_started");
    assert_eq!(conflict.json()["error"]["details"]["status"], "stopped");
}

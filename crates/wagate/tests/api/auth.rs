use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use wagate::TokenId;
use wagate::admin;

use crate::helpers::{TestApp, session_endpoints};

#[tokio::test]
async fn every_endpoint_needs_a_token() {
    let app = TestApp::spawn().await;
    let id = app.stopped_session().await;
    let mut endpoints = session_endpoints(&id);
    endpoints.push((Method::GET, "/api/v1/sessions".into(), None));
    endpoints.push((
        Method::POST,
        "/api/v1/sessions".into(),
        Some(serde_json::json!({})),
    ));
    endpoints.push((Method::GET, "/api/v1/ws".into(), None));
    for (method, uri, body) in endpoints {
        let mut request = Request::builder().method(method.clone()).uri(&uri);
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        let response = app
            .send(request.body(body).unwrap_or_else(|e| panic!("{e}")))
            .await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{method} {uri}");
        response.assert_error(StatusCode::UNAUTHORIZED, "missing_token");
    }
}

#[tokio::test]
async fn a_wrong_or_malformed_token_is_rejected() {
    let app = TestApp::spawn().await;
    for value in [
        "Bearer wag_not-a-real-token",
        "Basic dXNlcjpwYXNz",
        "Bearer ",
        "wag_x",
    ] {
        let response = app
            .send(
                Request::builder()
                    .uri("/api/v1/sessions")
                    .header(header::AUTHORIZATION, value)
                    .body(Body::empty())
                    .unwrap_or_else(|e| panic!("{e}")),
            )
            .await;
        response.assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
    }
}

#[tokio::test]
async fn a_revoked_token_stops_working() {
    let app = TestApp::spawn().await;
    let issued = admin::create_token(app.store.as_ref(), "default")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let token = issued.token.plaintext().expose().clone();
    let ok = app
        .call_as(&token, Method::GET, "/api/v1/sessions", None)
        .await;
    assert_eq!(ok.status, StatusCode::OK);

    // Revoked as `wagate token revoke` does, from another process: this
    // one learns of it when its cached lookup of the token runs out, within
    // `TOKEN_CACHE_TTL` (a revocation from the dashboard, in this process,
    // takes effect at once).
    admin::revoke_token(app.store.as_ref(), issued.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let deadline = std::time::Instant::now() + wagate::TOKEN_CACHE_TTL * 3;
    let revoked = loop {
        let response = app
            .call_as(&token, Method::GET, "/api/v1/sessions", None)
            .await;
        if response.status != StatusCode::OK || std::time::Instant::now() > deadline {
            break response;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    revoked.assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
    // The other token of the organization is unaffected.
    let other = app.call(Method::GET, "/api/v1/sessions", None).await;
    assert_eq!(other.status, StatusCode::OK);
    assert!(
        admin::revoke_token(app.store.as_ref(), TokenId::new())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn another_organizations_session_is_not_found_on_every_endpoint() {
    let app = TestApp::spawn().await;
    let id = app.stopped_session().await;
    let intruder = app.other_org_token().await;
    for (method, uri, body) in session_endpoints(&id) {
        let response = app.call_as(&intruder, method.clone(), &uri, body).await;
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{method} {uri}");
        response.assert_error(StatusCode::NOT_FOUND, "session_not_found");
    }
    let listed = app
        .call_as(&intruder, Method::GET, "/api/v1/sessions", None)
        .await;
    assert_eq!(listed.json()["data"], serde_json::json!([]));
    // And the owner still has it, untouched.
    let own = app
        .call(Method::GET, &format!("/api/v1/sessions/{id}"), None)
        .await;
    assert_eq!(own.status, StatusCode::OK);
    assert_eq!(own.json()["label"], "test");
}

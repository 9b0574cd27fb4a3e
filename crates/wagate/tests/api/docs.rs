use axum::body::Body;
use axum::http::{Method, Request, StatusCode};

use crate::helpers::TestApp;

async fn get(app: &TestApp, uri: &str) -> crate::helpers::Response {
    app.send(
        Request::builder()
            .uri(uri)
            .body(Body::empty())
            .unwrap_or_else(|e| panic!("{e}")),
    )
    .await
}

#[tokio::test]
async fn probes_need_no_token() {
    let app = TestApp::spawn().await;
    let health = get(&app, "/healthz").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.json()["status"], "ok");
    let ready = get(&app, "/readyz").await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.json()["status"], "ready");
}

#[tokio::test]
async fn serves_the_openapi_document_and_an_embedded_docs_page() {
    let app = TestApp::spawn().await;
    let spec = get(&app, "/api/v1/openapi.json").await;
    assert_eq!(spec.status, StatusCode::OK);
    assert_eq!(spec.content_type.as_deref(), Some("application/json"));
    let spec = spec.json();
    assert!(
        spec["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1"))
    );
    assert!(spec["paths"]["/sessions/{id}/pairing-code"]["post"].is_object());

    let docs = get(&app, "/api/v1/docs/").await;
    assert_eq!(docs.status, StatusCode::OK);
    assert!(
        docs.content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("text/html"))
    );
    let html = String::from_utf8_lossy(&docs.bytes);
    assert!(html.contains("swagger"), "{html}");
    assert!(
        !html.contains("https://"),
        "the docs page must not load from a CDN"
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_use_the_envelope() {
    let app = TestApp::spawn().await;
    get(&app, "/api/v1/nope")
        .await
        .assert_error(StatusCode::NOT_FOUND, "route_not_found");
    app.call(Method::PUT, "/api/v1/sessions", None)
        .await
        .assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

/// What a request must carry to be valid is in the document: `GET /ws`
/// answers 426 to anything but a WebSocket handshake, so the handshake's
/// headers are required parameters (and 426 is listed); `…/read` lists
/// the 422 codes its body's schema cannot express.
#[tokio::test]
async fn the_document_says_what_the_websocket_and_read_receipts_require() {
    let app = TestApp::spawn().await;
    let spec = get(&app, "/api/v1/openapi.json").await.json();
    let ws = &spec["paths"]["/ws"]["get"];
    assert!(ws["responses"]["426"].is_object(), "{ws}");
    for header in [
        "Upgrade",
        "Connection",
        "Sec-WebSocket-Version",
        "Sec-WebSocket-Key",
    ] {
        let parameter = ws["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == header && p["in"] == "header")
            .unwrap_or_else(|| panic!("no {header} header parameter on /ws: {ws}"));
        assert_eq!(parameter["required"], true, "{parameter}");
    }
    let read = &spec["paths"]["/sessions/{id}/chats/{chat}/read"]["post"]["responses"]["422"];
    let description = read["description"].as_str().unwrap_or_default();
    for code in ["sender_required", "sender_not_allowed"] {
        assert!(description.contains(code), "{read}");
    }
}

/// The route list and the document are one list: every operation the
/// served document names is routed, so a request to it reaches its
/// handler (whatever the handler answers without a session or a body)
/// rather than the router's own `route_not_found` or `method_not_allowed`.
#[tokio::test]
async fn every_documented_operation_is_routed() {
    let app = TestApp::spawn().await;
    let spec = get(&app, "/api/v1/openapi.json").await.json();
    let server = spec["servers"][0]["url"].as_str().unwrap_or_default();
    assert_eq!(server, "/api/v1");
    let paths = spec["paths"].as_object().cloned().unwrap_or_default();
    let mut operations = 0;
    for (path, item) in &paths {
        // Every parameter filled with one value: the handler may refuse
        // it, the router may not.
        let uri = format!("{server}{path}")
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    "x"
                } else {
                    segment
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let methods = item.as_object().cloned().unwrap_or_default();
        for method in methods.keys() {
            let Ok(method) = Method::from_bytes(method.to_uppercase().as_bytes()) else {
                continue;
            };
            operations += 1;
            let response = app.call(method.clone(), &uri, None).await;
            assert_ne!(
                response.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {uri} is documented but not routed"
            );
            let body: serde_json::Value =
                serde_json::from_slice(&response.bytes).unwrap_or_default();
            assert_ne!(
                body["error"]["code"], "route_not_found",
                "{method} {uri} is documented but not routed"
            );
        }
    }
    // What the document listed before the route list became one (31),
    // `POST /sessions/{id}/presence`, the ten group operations, the two
    // of the chat list, the two LID lookups, presence (un)subscribe, a
    // call's reject, the six chat settings (archive, unarchive, pin,
    // unpin, mute, unmute), a chat's on-demand history, a group's
    // membership requests (list, approve, reject) and its picture (set,
    // remove), and the contacts (list, one, picture, block, unblock).
    assert_eq!(operations, 66);
}

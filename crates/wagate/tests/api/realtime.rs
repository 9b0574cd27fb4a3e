use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tempfile::TempDir;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use wagate::Application;
use wagate::admin;

use crate::helpers::test_config;

const WAIT: Duration = Duration::from_secs(20);

struct Running {
    base: String,
    ws: String,
    token: String,
    shutdown: tokio_util::sync::CancellationToken,
    store: std::sync::Arc<dyn wagate::Store>,
    _dir: TempDir,
}

async fn running() -> Running {
    running_with(|_| {}).await
}

async fn running_with(adjust: impl FnOnce(&mut wagate::Config)) -> Running {
    let dir = TempDir::new().unwrap_or_else(|e| panic!("{e}"));
    let mut config = test_config(&dir);
    adjust(&mut config);
    let mut app = Application::build(config)
        .await
        .unwrap_or_else(|e| panic!("build: {e:?}"));
    let issued = app
        .take_bootstrap_token()
        .unwrap_or_else(|| panic!("first start makes a token"));
    let port = app.port();
    let shutdown = app.shutdown_token();
    let store = app.store();
    tokio::spawn(app.run_until_stopped());
    Running {
        base: format!("http://127.0.0.1:{port}"),
        ws: format!("ws://127.0.0.1:{port}/api/v1/ws"),
        token: issued.token.plaintext().expose().clone(),
        shutdown,
        store,
        _dir: dir,
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn next_text<S>(socket: &mut S) -> serde_json::Value
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
async fn streams_the_organizations_status_events() {
    let app = running().await;
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("{}?token={}", app.ws, app.token))
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"));

    // Starting a session against a server that is not there: it goes to
    // `starting` and keeps retrying, which is all this test needs to see.
    let client = reqwest::Client::new();
    let created: serde_json::Value = client
        .post(format!("{}/api/v1/sessions", app.base))
        .bearer_auth(&app.token)
        .json(&serde_json::json!({ "label": "rt" }))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let id = created["id"].as_str().unwrap_or_default().to_string();

    let event = next_text(&mut socket).await;
    assert_eq!(event["event"], "session.status");
    assert_eq!(event["session_id"], id.as_str());
    assert_eq!(event["data"]["status"], "starting");
    assert_eq!(event["data"]["previous"], "stopped");
    for key in ["id", "org_id", "at"] {
        assert!(event[key].is_string(), "{key}: {event}");
    }

    let stopped = client
        .post(format!("{}/api/v1/sessions/{id}/stop", app.base))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stopped.status(), 200);
    loop {
        let event = next_text(&mut socket).await;
        if event["data"]["status"] == "stopped" {
            assert_eq!(event["data"]["reason"], "stop_requested");
            break;
        }
    }
    let _ = socket.close(None).await;
}

#[tokio::test]
async fn the_bearer_header_works_and_bad_credentials_are_refused_before_upgrading() {
    let app = running().await;
    let mut request = app
        .ws
        .as_str()
        .into_client_request()
        .unwrap_or_else(|e| panic!("{e}"));
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", app.token)
            .parse()
            .unwrap_or_else(|e| panic!("{e}")),
    );
    assert!(tokio_tungstenite::connect_async(request).await.is_ok());

    for (query, status) in [
        (String::new(), 401),
        ("?token=wag_wrong".to_string(), 401),
        (format!("?token={}&events=session.bogus", app.token), 400),
        (format!("?token={}&session_id=nope", app.token), 400),
        (
            format!(
                "?token={}&session_id=00000000-0000-4000-8000-000000000000",
                app.token
            ),
            404,
        ),
    ] {
        match tokio_tungstenite::connect_async(format!("{}{query}", app.ws)).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status().as_u16(), status, "{query}");
                let body: serde_json::Value = response
                    .body()
                    .as_deref()
                    .and_then(|b| serde_json::from_slice(b).ok())
                    .unwrap_or_default();
                assert!(body["error"]["code"].is_string(), "{query}: {body}");
            }
            other => panic!(
                "{query}: expected an HTTP error, got {:?}",
                other.map(|_| ())
            ),
        }
    }
}

#[tokio::test]
async fn another_organizations_session_cannot_be_watched() {
    let app = running().await;
    admin::create_org(app.store.as_ref(), "other")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let other = admin::create_token(app.store.as_ref(), "other")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let created: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/api/v1/sessions", app.base))
        .bearer_auth(&app.token)
        .json(&serde_json::json!({ "start": false }))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let url = format!(
        "{}?token={}&session_id={}",
        app.ws,
        other.token.plaintext().expose(),
        created["id"].as_str().unwrap_or_default()
    );
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 404);
        }
        other => panic!("expected 404, got {:?}", other.map(|_| ())),
    }
    let mut socket_ok = tokio_tungstenite::connect_async(format!("{}?token={}", app.ws, app.token))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .0;
    let _ = socket_ok.send(Message::Close(None)).await;
}

/// A token revoked while its socket is open stops the stream: revoked by
/// `wagate token revoke`, which writes the database from another process
/// (here: straight through the store), the socket finds out at its next
/// ping and closes with 4401. (Revoking from the dashboard, in process,
/// closes it at once: `http::ws`'s unit tests.)
#[tokio::test]
async fn a_socket_closes_when_its_token_is_revoked() {
    let app = running_with(|config| config.ws_ping_interval_secs = 1).await;
    let issued = admin::create_token(app.store.as_ref(), "default")
        .await
        .unwrap_or_else(|e| panic!("token: {e}"));
    let doomed = issued.token.plaintext().expose().clone();
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("{}?token={doomed}", app.ws))
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    // Another token's socket, which must stay open.
    let (mut kept, _) = tokio_tungstenite::connect_async(format!("{}?token={}", app.ws, app.token))
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));

    admin::revoke_token(app.store.as_ref(), issued.id)
        .await
        .unwrap_or_else(|e| panic!("revoke: {e}"));
    let closed = loop {
        match tokio::time::timeout(WAIT, socket.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => break frame,
            // Pings, answered by tungstenite as they are read.
            Ok(Some(Ok(_))) => {}
            other => panic!("the socket of a revoked token did not close: {other:?}"),
        }
    };
    let frame = closed.unwrap_or_else(|| panic!("a close without a code"));
    assert_eq!(u16::from(frame.code), wagate::CLOSE_TOKEN_REVOKED);
    assert_eq!(frame.reason.as_str(), "token revoked");

    // The other socket still streams: a session's first status reaches it.
    let client = reqwest::Client::new();
    let created = client
        .post(format!("{}/api/v1/sessions", app.base))
        .bearer_auth(&app.token)
        .json(&serde_json::json!({ "label": "still here" }))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(created.status(), 201);
    let event = next_text(&mut kept).await;
    assert_eq!(event["event"], "session.status", "{event}");
}

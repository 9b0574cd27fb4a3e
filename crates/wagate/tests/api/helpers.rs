use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use url::Url;
use wagate::AppState;
use wagate::Config;
use wagate::WhatsAppEngine;
use wagate::admin;
use wagate::build_app;
use wagate::{SqliteStore, Store};

use crate::test_postgres::TestDatabase;

pub(crate) use crate::prometheus::Metrics;

/// A port nothing listens on: sessions that do start fail to connect
/// quickly instead of reaching out anywhere.
pub(crate) const UNREACHABLE_SERVER: &str = "ws://127.0.0.1:9/ws/chat";

pub(crate) fn test_config(dir: &TempDir) -> Config {
    Config {
        listen: ([127, 0, 0, 1], 0).into(),
        data_dir: dir.path().to_path_buf(),
        whatsapp_url: Url::parse(UNREACHABLE_SERVER).ok(),
        body_limit_bytes: 16 * 1024,
        ..Config::default()
    }
}

pub(crate) struct TestApp {
    pub router: Router,
    /// What the `metrics_listen` listener serves, on the same state.
    pub metrics: Router,
    pub store: Arc<dyn Store>,
    pub token: String,
    pub shutdown: CancellationToken,
    _dir: TempDir,
    // Dropped last: the store's connections go first.
    _database: Option<TestDatabase>,
}

pub(crate) struct Response {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub bytes: Vec<u8>,
}

impl Response {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.bytes)))
    }

    /// Asserts the error envelope and returns its message.
    pub(crate) fn assert_error(&self, status: StatusCode, code: &str) -> String {
        let body = self.json();
        assert_eq!(self.status, status, "{body}");
        let error = &body["error"];
        assert_eq!(error["code"], code, "{body}");
        assert!(
            error["details"].is_object(),
            "details must be an object: {body}"
        );
        match error["message"].as_str() {
            Some(message) if !message.is_empty() => message.to_string(),
            _ => panic!("message must be a sentence: {body}"),
        }
    }
}

impl TestApp {
    pub(crate) async fn spawn() -> Self {
        let dir = TempDir::new().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let config = test_config(&dir);
        // In memory, or with `WAGATE_TEST_DATABASE=postgres` a PostgreSQL
        // database of the test's own.
        let database = match std::env::var("WAGATE_TEST_DATABASE").as_deref() {
            Ok("postgres") => Some(TestDatabase::create().await.unwrap_or_else(|| {
                panic!("WAGATE_TEST_DATABASE=postgres but no PostgreSQL is reachable")
            })),
            _ => None,
        };
        let store: Arc<dyn Store> = match &database {
            Some(database) => wagate::connect_store(&database.url().to_string().into()).await,
            None => SqliteStore::connect("sqlite::memory:")
                .await
                .map(|store| Arc::new(store) as Arc<dyn Store>),
        }
        .unwrap_or_else(|e| panic!("store: {e:?}"));
        let issued = admin::bootstrap(store.as_ref())
            .await
            .unwrap_or_else(|e| panic!("bootstrap: {e}"))
            .unwrap_or_else(|| panic!("fresh store has no organization"));
        let engine = Arc::new(WhatsAppEngine::new(
            Arc::clone(&store),
            config.whatsapp_url.clone(),
        ));
        let shutdown = CancellationToken::new();
        let state = AppState::new(&config, Arc::clone(&store), engine, shutdown.clone());
        Self {
            metrics: wagate::metrics_router(state.clone()),
            router: build_app(state),
            store,
            token: issued.token.plaintext().expose().clone(),
            shutdown,
            _dir: dir,
            _database: database,
        }
    }

    /// A token of a second, unrelated organization.
    pub(crate) async fn other_org_token(&self) -> String {
        admin::create_org(self.store.as_ref(), "other")
            .await
            .unwrap_or_else(|e| panic!("org: {e}"));
        admin::create_token(self.store.as_ref(), "other")
            .await
            .unwrap_or_else(|e| panic!("token: {e}"))
            .token
            .plaintext()
            .expose()
            .clone()
    }

    pub(crate) async fn send(&self, request: Request<Body>) -> Response {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .unwrap_or_else(|e| match e {});
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = response
            .into_body()
            .collect()
            .await
            .unwrap_or_else(|e| panic!("body: {e}"))
            .to_bytes()
            .to_vec();
        assert!(
            !status.is_server_error(),
            "never a 5xx, got {status}: {}",
            String::from_utf8_lossy(&bytes)
        );
        Response {
            status,
            content_type,
            bytes,
        }
    }

    /// `method uri` with this app's token and an optional JSON body.
    pub(crate) async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> Response {
        self.call_as(&self.token.clone(), method, uri, body).await
    }

    pub(crate) async fn call_as(
        &self,
        token: &str,
        method: Method,
        uri: &str,
        body: Option<Value>,
    ) -> Response {
        let builder = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        let request = match body {
            Some(body) => builder
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string())),
            None => builder.body(Body::empty()),
        };
        self.send(request.unwrap_or_else(|e| panic!("request: {e}")))
            .await
    }

    pub(crate) async fn raw(
        &self,
        method: Method,
        uri: &str,
        content_type: Option<&str>,
        body: impl Into<Body>,
    ) -> Response {
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token));
        if let Some(content_type) = content_type {
            builder = builder.header(header::CONTENT_TYPE, content_type);
        }
        self.send(
            builder
                .body(body.into())
                .unwrap_or_else(|e| panic!("request: {e}")),
        )
        .await
    }

    /// Creates a session that does not connect, returning its id.
    pub(crate) async fn stopped_session(&self) -> String {
        let created = self
            .call(
                Method::POST,
                "/api/v1/sessions",
                Some(serde_json::json!({ "label": "test", "start": false })),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED);
        match created.json()["id"].as_str() {
            Some(id) => id.to_string(),
            None => panic!("no id"),
        }
    }
}

impl TestApp {
    /// `GET /metrics`, parsed.
    pub(crate) async fn scrape(&self) -> Metrics {
        let response = self
            .metrics
            .clone()
            .oneshot(
                Request::builder()
                    .uri(wagate::METRICS_PATH)
                    .body(Body::empty())
                    .unwrap_or_else(|e| panic!("{e}")),
            )
            .await
            .unwrap_or_else(|e| match e {});
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert!(
            content_type.starts_with("application/openmetrics-text"),
            "{content_type}"
        );
        let bytes = response
            .into_body()
            .collect()
            .await
            .unwrap_or_else(|e| panic!("body: {e}"))
            .to_bytes();
        Metrics::parse(&String::from_utf8_lossy(&bytes))
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Every authenticated endpoint for session `id`, with a valid body where
/// one is needed.
pub(crate) fn session_endpoints(id: &str) -> Vec<(Method, String, Option<Value>)> {
    let base = format!("/api/v1/sessions/{id}");
    vec![
        (Method::GET, base.clone(), None),
        (
            Method::PATCH,
            base.clone(),
            Some(serde_json::json!({ "label": "x" })),
        ),
        (Method::POST, format!("{base}/start"), None),
        (Method::POST, format!("{base}/stop"), None),
        (Method::POST, format!("{base}/restart"), None),
        (Method::POST, format!("{base}/logout"), None),
        (Method::GET, format!("{base}/qr"), None),
        (
            Method::POST,
            format!("{base}/pairing-code"),
            Some(serde_json::json!({ "phone": "628123456789" })),
        ),
        (Method::DELETE, base, None),
    ]
}

/// The organization the first start creates.
pub(crate) async fn default_org(store: &dyn Store) -> wagate::OrgId {
    store
        .orgs()
        .find_org("default")
        .await
        .ok()
        .flatten()
        .map(|org| org.id)
        .unwrap_or_else(|| panic!("the bootstrap organization"))
}

/// Logs a QR event for `session`, as its supervisor would; the webhooks
/// that want it get a delivery queued with it.
pub(crate) async fn log_qr_event(
    store: &dyn Store,
    org: wagate::OrgId,
    session: wagate::SessionId,
    code: &str,
) -> wagate::Envelope {
    let mut event = wagate::Envelope::new(
        org,
        session,
        wagate::EventData::Qr {
            code: code.into(),
            expires_at: chrono::Utc::now(),
        },
    );
    store
        .events()
        .append_event(&mut event)
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    event
}

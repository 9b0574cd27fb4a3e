//! Every JSON request body the API takes, through the real router: the
//! first byte picks one of the operations the OpenAPI document gives a
//! request body, the rest is the body. Whatever the bytes, the answer is
//! never a 5xx, and a 4xx carries the error envelope.
#![no_main]

use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use wagate::{AppState, build_app};
use wagate::Config;
use wagate::WhatsAppEngine;
use wagate::{SqliteStore, Store};

/// Runs between fresh gateways: accepted bodies create sessions, messages
/// and webhooks, which would otherwise pile up for the whole run.
const RUNS_PER_GATEWAY: u32 = 5_000;

struct Operation {
    method: Method,
    path: String,
}

struct Gateway {
    runtime: tokio::runtime::Runtime,
    router: Router,
    token: String,
    operations: Vec<Operation>,
    shutdown: CancellationToken,
    runs: u32,
    _dir: tempfile::TempDir,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn call(gateway: &Gateway, method: Method, path: &str, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {}", gateway.token))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body));
    let Ok(request) = request else {
        panic!("request for {path} could not be built");
    };
    gateway.runtime.block_on(async {
        let response = match gateway.router.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let status = response.status();
        let bytes = match response.into_body().collect().await {
            Ok(collected) => collected.to_bytes().to_vec(),
            Err(e) => panic!("body of {path}: {e}"),
        };
        (status, bytes)
    })
}

fn created_id(gateway: &Gateway, path: &str, body: Value) -> String {
    let (status, bytes) = call(gateway, Method::POST, path, body.to_string().into_bytes());
    let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    match value["id"].as_str() {
        Some(id) if status.is_success() => id.to_string(),
        _ => panic!("setup {path}: {status} {value}"),
    }
}

fn start() -> Gateway {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => panic!("runtime: {e}"),
    };
    let dir = match tempfile::TempDir::new() {
        Ok(dir) => dir,
        Err(e) => panic!("tempdir: {e}"),
    };
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        // Nothing listens there: sessions try, fail and back off.
        whatsapp_url: url::Url::parse("ws://127.0.0.1:9/ws/chat").ok(),
        ..Config::default()
    };
    let shutdown = CancellationToken::new();
    let (router, token) = runtime.block_on(async {
        let store: Arc<dyn Store> = match SqliteStore::connect("sqlite::memory:").await {
            Ok(store) => Arc::new(store),
            Err(e) => panic!("store: {e:?}"),
        };
        let issued = match wagate::admin::bootstrap(store.as_ref()).await {
            Ok(Some(issued)) => issued,
            other => panic!("bootstrap: {:?}", other.map(|_| ())),
        };
        let engine = Arc::new(WhatsAppEngine::new(
            Arc::clone(&store),
            config.whatsapp_url.clone(),
        ));
        let state = AppState::new(&config, store, engine, shutdown.clone());
        (build_app(state), issued.token.plaintext().expose().clone())
    });
    let mut gateway = Gateway {
        runtime,
        router,
        token,
        operations: Vec::new(),
        shutdown,
        runs: 0,
        _dir: dir,
    };
    let session = created_id(&gateway, "/api/v1/sessions", json!({"label": "fuzz"}));
    let message = created_id(
        &gateway,
        &format!("/api/v1/sessions/{session}/messages"),
        json!({"to": "15550001111", "text": {"body": "hello"}}),
    );
    let webhook = created_id(
        &gateway,
        "/api/v1/webhooks",
        json!({"url": "https://example.com/hook"}),
    );
    let (_, doc) = call(&gateway, Method::GET, "/api/v1/openapi.json", Vec::new());
    let doc: Value = serde_json::from_slice(&doc).unwrap_or(Value::Null);
    let Some(paths) = doc["paths"].as_object() else {
        panic!("the OpenAPI document has no paths");
    };
    for (template, item) in paths {
        let Some(item) = item.as_object() else { continue };
        for (method, operation) in item {
            if operation.get("requestBody").is_none() {
                continue;
            }
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            let id = if template.starts_with("/api/v1/webhooks") {
                &webhook
            } else {
                &session
            };
            let path = template
                .replace("{id}", id)
                .replace("{message_id}", &message)
                .replace("{chat}", "15550001111")
                .replace("{delivery_id}", "01936f0e-0000-7000-8000-000000000000");
            gateway.operations.push(Operation { method, path });
        }
    }
    assert!(
        gateway.operations.len() >= 10,
        "only {} operations with a body in the document",
        gateway.operations.len()
    );
    gateway
}

static GATEWAY: Mutex<Option<Gateway>> = Mutex::new(None);

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let mut slot = GATEWAY.lock().unwrap_or_else(PoisonError::into_inner);
    if slot.as_ref().is_none_or(|g| g.runs >= RUNS_PER_GATEWAY) {
        // The old one goes first: its sessions stop before new ones start.
        *slot = None;
        *slot = Some(start());
    }
    let Some(gateway) = slot.as_mut() else { return };
    gateway.runs += 1;
    let operation = &gateway.operations[usize::from(pick) % gateway.operations.len()];
    let (status, bytes) = call(gateway, operation.method.clone(), &operation.path, body.to_vec());
    assert!(
        !status.is_server_error(),
        "{} {} answered {status} to {:?}: {}",
        operation.method,
        operation.path,
        String::from_utf8_lossy(body),
        String::from_utf8_lossy(&bytes)
    );
    if status.is_client_error() {
        let envelope: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        assert!(
            envelope["error"]["code"].is_string(),
            "{} {} answered {status} without the error envelope: {}",
            operation.method,
            operation.path,
            String::from_utf8_lossy(&bytes)
        );
    }
});

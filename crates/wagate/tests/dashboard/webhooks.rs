//! The webhooks page without a browser: its forms are posted as a browser
//! would, to check what only the server decides (CSRF, rights, status
//! codes). The test event is received by a real local endpoint and its
//! signature checked with the `standardwebhooks` crate.

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;
use tokio::sync::mpsc;
use wagate::DeliveryQuery;
use wagate::accounts;
use wagate::{DeliveryStatus, Role};

use crate::helpers::*;

/// A local endpoint that answers 200 and hands over what it got.
async fn receiver() -> (String, mpsc::UnboundedReceiver<(HeaderMap, Bytes)>) {
    async fn receive(
        State(tx): State<mpsc::UnboundedSender<(HeaderMap, Bytes)>>,
        headers: HeaderMap,
        body: Bytes,
    ) -> StatusCode {
        let _ = tx.send((headers, body));
        StatusCode::OK
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let app = Router::new().route("/hook", post(receive)).with_state(tx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), rx)
}

/// The text of the first element carrying `attribute` (`data-secret`).
fn text_of(html: &str, attribute: &str) -> String {
    html.split_once(&format!("{attribute}>"))
        .and_then(|(_, rest)| rest.split_once('<'))
        .map(|(text, _)| text.to_string())
        .unwrap_or_else(|| panic!("no element with {attribute}"))
}

async fn webhooks_in_api(gateway: &Gateway) -> Vec<Value> {
    let body: Value = reqwest::Client::new()
        .get(gateway.url("/api/v1/webhooks"))
        .bearer_auth(&gateway.api_token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    body["data"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_created_tested_and_deleted_by_managers_with_the_form_token() {
    let gateway = Gateway::start().await;
    let (url, mut received) = receiver().await;
    let client = http_client();
    let owner = session_cookie(
        &client,
        &gateway,
        &gateway.owner_email,
        &gateway.owner_password,
    )
    .await;
    let (status, page) = get_page(&client, &gateway, &owner, "/webhooks").await;
    assert_eq!(status, 200);
    assert!(
        page.contains(r#"href="/webhooks" aria-current="page""#),
        "a tab of its own"
    );
    let csrf = input_value(&page, "_csrf");

    // Without the form token: refused, nothing created.
    let (status, _) = post_form(&client, &gateway, &owner, "/webhooks", &[("url", &url)]).await;
    assert_eq!(status, 403);
    assert!(webhooks_in_api(&gateway).await.is_empty());

    // The API's own rules, said next to the field.
    let (status, page) = post_form(
        &client,
        &gateway,
        &owner,
        "/webhooks",
        &[("_csrf", &csrf), ("url", "ftp://example.com/hook")],
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        text_of(&page, r#"id="webhook-url-error" role="alert""#).contains("http or https"),
        "{page}"
    );

    // Created with a filter that does not include tests; the secret shows once.
    let (status, page) = post_form(
        &client,
        &gateway,
        &owner,
        "/webhooks",
        &[
            ("_csrf", &csrf),
            ("url", &url),
            ("event:webhook.disabled", "on"),
            ("session", ""),
        ],
    )
    .await;
    assert_eq!(status, 201, "{page}");
    let secret = text_of(&page, "data-secret");
    assert!(secret.starts_with("whsec_"), "{secret}");
    let hooks = webhooks_in_api(&gateway).await;
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0]["events"], serde_json::json!(["webhook.disabled"]));
    let id = hooks[0]["id"].as_str().unwrap_or_default().to_string();
    let (_, page) = get_page(&client, &gateway, &owner, "/webhooks").await;
    assert!(!page.contains(&secret), "the secret is shown only once");

    // A test event: refused without the token, then delivered, signed.
    let test = format!("/webhooks/{id}/action/test");
    let (status, _) = post_form(&client, &gateway, &owner, &test, &[]).await;
    assert_eq!(status, 403);
    let (status, page) = post_form(&client, &gateway, &owner, &test, &[("_csrf", &csrf)]).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("data-notice"), "says it was queued");
    let (headers, body) = tokio::time::timeout(WAIT, received.recv())
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no test delivery arrived"));
    let event: Value = serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(event["event"], "webhook.test");
    assert_eq!(event["data"]["webhook_id"], id.as_str());
    standardwebhooks::Webhook::new(&secret)
        .and_then(|hook| hook.verify(&body, &headers))
        .unwrap_or_else(|e| panic!("signed with the secret shown once: {e:?}"));

    // The page shows the delivery once it is recorded.
    let org = gateway
        .store
        .orgs()
        .find_org("default")
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("the bootstrap organization"));
    let webhook_id = id.parse().unwrap_or_else(|_| panic!("uuid"));
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let deliveries = gateway
            .store
            .webhooks()
            .list_deliveries(
                org.id,
                webhook_id,
                &DeliveryQuery {
                    status: None,
                    limit: 10,
                    before: None,
                },
            )
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        if deliveries
            .first()
            .is_some_and(|d| d.status == DeliveryStatus::Delivered)
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never recorded as delivered: {deliveries:?}"
        );
        // The attempt is recorded right after the receiver answered.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, page) = get_page(&client, &gateway, &owner, "/webhooks").await;
    assert!(page.contains(r#"data-event-type="webhook.test""#), "{page}");
    assert!(
        page.contains(r#"data-delivery-status="delivered""#),
        "{page}"
    );
    assert!(
        page.contains("<span class=\"mono\" data-status-code>200</span>"),
        "{page}"
    );

    // A member: no page, no actions, even with their own valid form token.
    let member = accounts::create_user(
        gateway.store.as_ref(),
        "default",
        "mia@example.com",
        Role::Member,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let password = member
        .password
        .map(|p| p.expose().clone())
        .unwrap_or_else(|| panic!("new account"));
    let mia = session_cookie(&client, &gateway, "mia@example.com", &password).await;
    let (status, _) = get_page(&client, &gateway, &mia, "/webhooks").await;
    assert_eq!(status, 403);
    let (_, sessions) = get_page(&client, &gateway, &mia, "/sessions").await;
    assert!(!sessions.contains(r#"href="/webhooks""#), "no webhooks tab");
    let mia_csrf = input_value(&sessions, "_csrf");
    let delete = format!("/webhooks/{id}/action/delete");
    for path in [&test, &delete] {
        let (status, _) = post_form(&client, &gateway, &mia, path, &[("_csrf", &mia_csrf)]).await;
        assert_eq!(status, 403, "{path}");
    }
    let (status, _) = post_form(
        &client,
        &gateway,
        &mia,
        "/webhooks",
        &[("_csrf", &mia_csrf), ("url", &url)],
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(webhooks_in_api(&gateway).await.len(), 1);

    // Disabled, a test is refused with a reason; deleting needs the token.
    let disable = format!("/webhooks/{id}/action/disable");
    let (status, _) = post_form(&client, &gateway, &owner, &disable, &[("_csrf", &csrf)]).await;
    assert_eq!(status, 303);
    let (status, page) = post_form(&client, &gateway, &owner, &test, &[("_csrf", &csrf)]).await;
    assert_eq!(status, 409);
    assert!(page.contains("enable it"), "{page}");
    let (status, _) = post_form(&client, &gateway, &owner, &delete, &[]).await;
    assert_eq!(status, 403);
    assert_eq!(webhooks_in_api(&gateway).await.len(), 1);
    let (status, _) = post_form(&client, &gateway, &owner, &delete, &[("_csrf", &csrf)]).await;
    assert_eq!(status, 303);
    assert!(webhooks_in_api(&gateway).await.is_empty());
    gateway.stop().await;
}

use reqwest::Method;
use serde_json::json;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_links_by_qr_code_and_reports_the_phone() {
    let (sim, _dir, gateway, mut events) = world(Limits::default()).await;

    let id = gateway.create_session().await;
    let shown = events.qr(&id).await;
    // The same code over the API, as JSON and as an image.
    let (status, qr) = gateway
        .call(Method::GET, &format!("/sessions/{id}/qr"), None)
        .await;
    assert_eq!(status, 200, "{qr}");
    assert!(
        qr["code"].is_string() && qr["expires_at"].is_string(),
        "{qr}"
    );
    let png = gateway
        .http
        .get(format!("{}/sessions/{id}/qr?format=png", gateway.base))
        .bearer_auth(&gateway.token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(png.status(), 200);
    assert_eq!(
        png.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("image/png")
    );
    assert_eq!(gateway.session(&id).await["status"], "scan_qr_code");

    sim.handle()
        .scan_qr("15550001111", &shown)
        .unwrap_or_else(|e| panic!("scan: {e}"));
    // Straight on: the stream restart that follows pairing is no lost
    // connection.
    assert_eq!(
        events.next_status(&id).await,
        ("working".to_string(), "scan_qr_code".to_string())
    );

    let session = gateway.session(&id).await;
    assert_eq!(session["status"], "working");
    assert_eq!(session["phone"], "15550001111");
    let (status, body) = gateway
        .call(Method::GET, &format!("/sessions/{id}/qr"), None)
        .await;
    assert_eq!(status, 409);
    assert_eq!(body["error"]["code"], "already_linked");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_links_with_a_pairing_code() {
    let (sim, _dir, gateway, mut events) = world(Limits::default()).await;

    let id = gateway.create_session().await;
    events.status(&id, "scan_qr_code").await;
    let (status, body) = gateway
        .call(
            Method::POST,
            &format!("/sessions/{id}/pairing-code"),
            Some(json!({ "phone": "15550002222" })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let code = body["code"].as_str().unwrap_or_default().to_string();
    assert!(
        code.len() == 9 && code.as_bytes()[4] == b'-',
        "code shaped like ABCD-1234: {code}"
    );
    events
        .wait("the pairing code event", &id, |e| {
            e["event"] == "session.pairing_code"
        })
        .await;

    let outcome = sim
        .handle()
        .enter_code("15550002222", &code)
        .await
        .unwrap_or_else(|e| panic!("enter code: {e}"));
    tracing::info!(?outcome, "code entered");
    events.status(&id, "working").await;
    assert_eq!(gateway.session(&id).await["phone"], "15550002222");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_linking_in_time_fails_the_session_and_start_tries_again() {
    let (_sim, _dir, gateway, mut events) = world(Limits {
        link_timeout_secs: 2,
        ..Limits::default()
    })
    .await;
    let id = gateway.create_session().await;
    let failed = events.status(&id, "failed").await;
    assert_eq!(failed["data"]["reason"], "link_timeout");
    assert_eq!(gateway.session(&id).await["status_reason"], "link_timeout");

    gateway.start_session(&id).await;
    events.status(&id, "scan_qr_code").await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_unlinks_the_device_and_wipes_its_keys() {
    let (sim, dir, gateway, mut events) = world(Limits::default()).await;
    let id = link_by_qr(&gateway, &mut events, &sim, "15550003333").await;
    assert!(key_rows(&dir, &id).await > 0, "the linked device's keys");

    let (status, _) = gateway
        .call(Method::DELETE, &format!("/sessions/{id}"), None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(key_rows(&dir, &id).await, 0, "device keys wiped");
    assert!(
        sim.handle()
            .devices()
            .iter()
            .all(|d| d.phone != "15550003333"),
        "the phone no longer lists the device"
    );
    gateway.stop().await;
}

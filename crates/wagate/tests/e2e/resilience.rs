use std::time::Duration;

use reqwest::Method;
use tempfile::TempDir;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_comes_back_on_its_own() {
    let sim = simulator().await;
    let dir = TempDir::new().unwrap_or_else(|e| panic!("{e}"));
    let gateway = Gateway::start(&sim, &dir, Limits::default()).await;
    let mut events = gateway.events().await;
    let id = link_by_qr(&gateway, &mut events, &sim, "15550004444").await;

    assert!(sim.handle().drop_all() >= 1);
    let lost = events.status(&id, "starting").await;
    assert_eq!(lost["data"]["reason"], "connection_lost");
    assert_eq!(lost["data"]["previous"], "working");
    events.status(&id, "working").await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_longer_than_the_retry_budget_fails_the_session() {
    let sim = simulator().await;
    let dir = TempDir::new().unwrap_or_else(|e| panic!("{e}"));
    let gateway = Gateway::start(
        &sim,
        &dir,
        Limits {
            retry_budget_secs: 3,
            ..Limits::default()
        },
    )
    .await;
    let mut events = gateway.events().await;
    let id = link_by_qr(&gateway, &mut events, &sim, "15550005555").await;

    sim.handle().outage(Duration::from_secs(600));
    sim.handle().drop_all();
    events.status(&id, "starting").await;
    let failed = events.status(&id, "failed").await;
    assert_eq!(failed["data"]["reason"], "connection_failed");

    sim.handle().outage(Duration::ZERO);
    let (status, _) = gateway
        .call(Method::POST, &format!("/sessions/{id}/start"), None)
        .await;
    assert_eq!(status, 200);
    events.status(&id, "working").await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_from_the_phone_wipes_the_keys_and_start_links_again() {
    let sim = simulator().await;
    let dir = TempDir::new().unwrap_or_else(|e| panic!("{e}"));
    let gateway = Gateway::start(&sim, &dir, Limits::default()).await;
    let mut events = gateway.events().await;
    let phone = "15550006666";
    let id = link_by_qr(&gateway, &mut events, &sim, phone).await;

    sim.handle()
        .logout_device(phone, device_of(&sim, phone))
        .unwrap_or_else(|e| panic!("logout: {e}"));
    let out = events.status(&id, "logged_out").await;
    assert_eq!(out["data"]["reason"], "logged_out_from_phone");
    let session = gateway.session(&id).await;
    assert!(session["phone"].is_null());
    assert!(
        !dir.path()
            .join("sessions")
            .join(format!("{id}.db"))
            .exists()
    );

    let (status, _) = gateway
        .call(Method::POST, &format!("/sessions/{id}/start"), None)
        .await;
    assert_eq!(status, 200);
    events.qr(&id).await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_gateway_restart_linked_sessions_resume_without_relinking() {
    let sim = simulator().await;
    let dir = TempDir::new().unwrap_or_else(|e| panic!("{e}"));
    let limits = Limits::default();
    let gateway = Gateway::start(&sim, &dir, Limits::default()).await;
    let token = gateway.token.clone();
    let mut events = gateway.events().await;
    let id = link_by_qr(&gateway, &mut events, &sim, "15550007777").await;
    drop(events);
    gateway.stop().await;

    let again = Gateway::start_with(config(&sim, dir.path(), &limits), Some(token)).await;
    // Sessions resume before the API serves, so `starting` is already
    // recorded; subscribing before reading means `working` cannot slip by.
    let mut events = again.events().await;
    if again.session(&id).await["status"] != "working" {
        events.status(&id, "working").await;
    }
    assert_eq!(again.session(&id).await["phone"], "15550007777");
    let devices: Vec<_> = sim
        .handle()
        .devices()
        .into_iter()
        .filter(|d| d.phone == "15550007777")
        .collect();
    assert_eq!(devices.len(), 1, "the same device, not a second link");
    again.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_temporary_ban_fails_the_session_and_start_after_it_lifts_works() {
    let sim = simulator().await;
    let dir = TempDir::new().unwrap_or_else(|e| panic!("{e}"));
    let gateway = Gateway::start(&sim, &dir, Limits::default()).await;
    let mut events = gateway.events().await;
    let phone = "15550008888";
    let id = link_by_qr(&gateway, &mut events, &sim, phone).await;

    // The simulator drops the device and refuses its next login with a 402.
    sim.handle()
        .ban(phone, Some(3600))
        .unwrap_or_else(|e| panic!("ban: {e}"));
    let failed = events.status(&id, "failed").await;
    assert_eq!(failed["data"]["reason"], "temporarily_banned");
    let session = gateway.session(&id).await;
    assert_eq!(session["status_reason"], "temporarily_banned");
    assert_eq!(session["phone"], phone, "a ban keeps the link");

    sim.handle()
        .ban(phone, None)
        .unwrap_or_else(|e| panic!("lift ban: {e}"));
    let (status, _) = gateway
        .call(Method::POST, &format!("/sessions/{id}/start"), None)
        .await;
    assert_eq!(status, 200);
    events.status(&id, "working").await;
    gateway.stop().await;
}

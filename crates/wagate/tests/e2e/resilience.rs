use std::time::Duration;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_comes_back_on_its_own() {
    let (sim, _dir, gateway, mut events) = world(Limits::default()).await;
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
    let (sim, _dir, gateway, mut events) = world(Limits {
        retry_budget_secs: 3,
        ..Limits::default()
    })
    .await;
    let id = link_by_qr(&gateway, &mut events, &sim, "15550005555").await;

    sim.handle().outage(Duration::from_secs(600));
    sim.handle().drop_all();
    events.status(&id, "starting").await;
    let failed = events.status(&id, "failed").await;
    assert_eq!(failed["data"]["reason"], "connection_failed");

    sim.handle().outage(Duration::ZERO);
    gateway.start_session(&id).await;
    events.status(&id, "working").await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_from_the_phone_wipes_the_keys_and_start_links_again() {
    let (sim, dir, gateway, mut events) = world(Limits::default()).await;
    let phone = "15550006666";
    let id = link_by_qr(&gateway, &mut events, &sim, phone).await;

    sim.handle()
        .logout_device(phone, device_of(&sim, phone))
        .unwrap_or_else(|e| panic!("logout: {e}"));
    let out = events.status(&id, "logged_out").await;
    assert_eq!(out["data"]["reason"], "logged_out_from_phone");
    let session = gateway.session(&id).await;
    assert!(session["phone"].is_null());
    assert_eq!(key_rows(&dir, &id).await, 0, "device keys wiped");

    gateway.start_session(&id).await;
    events.qr(&id).await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_gateway_restart_linked_sessions_resume_without_relinking() {
    let (sim, dir, gateway, mut events) = world(Limits::default()).await;
    let token = gateway.token.clone();
    let id = link_by_qr(&gateway, &mut events, &sim, "15550007777").await;
    drop(events);
    gateway.stop().await;

    let config = config(&sim, &dir, &Limits::default());
    let again = Gateway::start_with(config, Some(token)).await;
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

/// The upgrade from one key file per session: a session linked by a gateway
/// of the old layout (`legacy_key_files` runs the old code, so the file is
/// whatever that code wrote) comes back `working` after the upgrade, with
/// no QR code and the same device, its keys moved into the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_linked_under_the_old_key_files_works_after_the_upgrade_without_relinking() {
    let sim = simulator().await;
    let dir = DataDir::new().await;
    let mut old = config(&sim, &dir, &Limits::default());
    old.legacy_key_files = true;
    let gateway = Gateway::start_with(old, None).await;
    let token = gateway.token.clone();
    let mut events = gateway.events().await;
    let id = link_by_qr(&gateway, &mut events, &sim, "15550008888").await;
    drop(events);
    gateway.stop().await;
    let file = dir.path().join("sessions").join(format!("{id}.db"));
    assert!(file.exists(), "the old layout: a key file per session");
    assert_eq!(key_rows(&dir, &id).await, 0, "and no keys in the database");

    let again = Gateway::start_with(config(&sim, &dir, &Limits::default()), Some(token)).await;
    assert!(!file.exists(), "the file is gone once imported");
    assert!(
        key_rows(&dir, &id).await > 0,
        "its keys are in the database"
    );
    // Sessions resume before the API serves; subscribing before reading
    // means `working` cannot slip by. Nobody scans a code here, so reaching
    // `working` at all means the imported keys logged in.
    let mut events = again.events().await;
    if again.session(&id).await["status"] != "working" {
        loop {
            let (status, _) = events.next_status(&id).await;
            assert_ne!(status, "scan_qr_code", "no new QR code");
            if status == "working" {
                break;
            }
        }
    }
    assert_eq!(again.session(&id).await["phone"], "15550008888");
    let devices: Vec<_> = sim
        .handle()
        .devices()
        .into_iter()
        .filter(|d| d.phone == "15550008888")
        .collect();
    assert_eq!(devices.len(), 1, "the same device, not a second link");
    again.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_temporary_ban_fails_the_session_and_start_after_it_lifts_works() {
    let (sim, _dir, gateway, mut events) = world(Limits::default()).await;
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
    gateway.start_session(&id).await;
    events.status(&id, "working").await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_goes_silent_is_dropped_and_made_again_with_the_reason() {
    let sim = simulator().await;
    let dir = DataDir::new().await;
    // Short enough for a test; long enough that a healthy link under a
    // loaded machine always answers (the simulator answers pings at once).
    let gateway = Gateway::start_with(
        wagate::Config {
            liveness_idle_ms: 500,
            liveness_timeout_ms: 2_000,
            ..config(&sim, &dir, &Limits::default())
        },
        None,
    )
    .await;
    let mut events = gateway.events().await;
    let phone = "15550004545";
    let contact = "15550004646";
    let id = link_by_qr(&gateway, &mut events, &sim, phone).await;
    crate::messaging::has_whatsapp(&sim, contact);

    sim.handle()
        .stall_device(phone, device_of(&sim, phone))
        .unwrap_or_else(|e| panic!("stall: {e}"));
    // Sent into the silent connection: it must still arrive, once.
    let (status, accepted) = crate::messaging::send(
        &gateway,
        &id,
        serde_json::json!({ "to": contact, "text": { "body": "through the silence" } }),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    let wa_id = accepted["wa_id"].as_str().unwrap_or_default().to_string();

    let change = events
        .wait("a status change", &id, |e| e["event"] == "session.status")
        .await;
    assert_eq!(change["data"]["status"], "starting", "{change}");
    assert_eq!(change["data"]["previous"], "working", "{change}");
    assert_eq!(change["data"]["reason"], "no_response", "{change}");
    events.status(&id, "working").await;

    let shown = sim
        .handle()
        .wait_phone_message(contact, WAIT, |m| m.id == wa_id)
        .await
        .unwrap_or_else(|| panic!("{contact} never showed {wa_id}"));
    assert_eq!(shown.text.as_deref(), Some("through the silence"));
    let copies = sim
        .handle()
        .phone_messages(contact)
        .unwrap_or_default()
        .iter()
        .filter(|m| m.id == wa_id)
        .count();
    assert_eq!(copies, 1);
    gateway.stop().await;
}

//! Each fault the simulator injects makes the real client react the way a
//! real WhatsApp server would make it react.

// The whole crate is test code: its helpers, too, may fail the test by
// panicking (clippy.toml only exempts `#[test]` functions and `cfg(test)`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use wacore::types::events::Event;

const PHONE: &str = "15550002222";

async fn disconnected(client: &mut TestClient) {
    client
        .wait_for("Disconnected", |e| {
            matches!(e, Event::Disconnected(_)).then_some(())
        })
        .await;
}

/// Waits for `LoggedOut`; says whether it came at login.
async fn logged_out(client: &mut TestClient) -> bool {
    client
        .wait_for("LoggedOut", |e| match e {
            Event::LoggedOut(l) => Some(l.on_connect),
            _ => None,
        })
        .await
}

async fn linked() -> (Simulator, TestClient) {
    let sim = simulator().await;
    let mut client = TestClient::new(&sim).await;
    client.link(&sim.handle(), PHONE).await;
    (sim, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connection_disconnects_then_reconnects() {
    let (sim, mut client) = linked().await;
    sim.handle()
        .drop_device(PHONE, 1)
        .expect("device is online");
    disconnected(&mut client).await;
    client.connected().await;
    client.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_refuses_connections_until_it_ends() {
    let (sim, mut client) = linked().await;
    let handle = sim.handle();
    handle.outage(Duration::from_secs(3600));
    handle.drop_all();
    disconnected(&mut client).await;
    // Let the client be refused at least once, then end the outage.
    tokio::time::timeout(WAIT, handle.wait_for_stats(|s| s.connections_refused > 0))
        .await
        .expect("client never retried during the outage");
    handle.outage(Duration::ZERO);
    client.connected().await;
    client.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_error_515_makes_the_client_reconnect() {
    let (sim, mut client) = linked().await;
    sim.handle()
        .stream_error(PHONE, 1, 515)
        .expect("device is online");
    client.connected().await;
    client.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_error_503_disconnects_and_client_comes_back() {
    let (sim, mut client) = linked().await;
    sim.handle()
        .stream_error(PHONE, 1, 503)
        .expect("device is online");
    disconnected(&mut client).await;
    client.connected().await;
    client.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_from_the_phone_logs_the_client_out_and_forgets_it() {
    let (sim, mut client) = linked().await;
    sim.handle().logout_device(PHONE, 1).expect("device exists");
    assert!(
        !logged_out(&mut client).await,
        "a live device is told mid-session"
    );
    assert!(sim.handle().devices().is_empty(), "device still listed");
    client.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_error_401_logs_the_client_out() {
    let (sim, mut client) = linked().await;
    sim.handle()
        .stream_error(PHONE, 1, 401)
        .expect("device is online");
    logged_out(&mut client).await;
    client.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_ban_is_reported_at_login() {
    let (sim, mut client) = linked().await;
    sim.handle().ban(PHONE, Some(3600)).expect("phone exists");
    let expire = client
        .wait_for("TemporaryBan", |e| match e {
            Event::TemporaryBan(b) => Some(b.expire),
            _ => None,
        })
        .await;
    assert_eq!(expire.num_seconds(), 3600);
    client.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_device_is_refused_with_401() {
    let (sim, client) = linked().await;
    let store = client.store.clone();
    client.stop().await;
    sim.handle().logout_device(PHONE, 1).expect("device exists");
    let mut again = TestClient::with_store(&sim, store).await;
    assert!(
        logged_out(&mut again).await,
        "the refusal should come at login"
    );
    again.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_responses_still_link() {
    let sim = simulator().await;
    sim.handle().set_response_delay(Duration::from_millis(150));
    let mut client = TestClient::new(&sim).await;
    client.link(&sim.handle(), PHONE).await;
    client.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_logout_unlinks_its_device() {
    let (sim, client) = linked().await;
    client.client.logout().await;
    assert!(
        sim.handle().devices().iter().all(|d| d.phone != PHONE),
        "device still linked after logout"
    );
    client.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_login_of_the_same_device_replaces_the_first_which_is_told_so() {
    let (sim, mut first) = linked().await;
    // The same device (its keys) logging in from elsewhere: a second
    // process given the same database.
    let mut second = TestClient::with_store(&sim, first.store.clone()).await;
    second.connected().await;
    first
        .wait_for("StreamReplaced", |e| {
            matches!(e, Event::StreamReplaced(_)).then_some(())
        })
        .await;
    let devices = sim.handle().devices();
    assert_eq!(devices.len(), 1, "{devices:?}");
    assert!(devices[0].connected);
    assert_eq!(devices[0].replaced, 1, "{devices:?}");
    assert_eq!(sim.handle().stats().connections_replaced, 1);
    first.stop().await;
    second.stop().await;
}

//! QR linking and reconnecting, real client against the simulator.

// The whole crate is test code: its helpers, too, may fail the test by
// panicking (clippy.toml only exempts `#[test]` functions and `cfg(test)`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qr_link_reaches_connected_and_restart_needs_no_relink() {
    let sim = simulator().await;
    let mut client = TestClient::new(&sim).await;
    client.link(&sim.handle(), "15550001111").await;

    let devices = sim.handle().devices();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].phone, "15550001111");
    assert!(devices[0].connected);

    let store = client.store.clone();
    client.stop().await;
    let mut again = TestClient::with_store(&sim, store).await;
    again
        .wait_for("Connected without a QR", |e| match e {
            wacore::types::events::Event::PairingQrCode(_) => panic!("restart asked to relink"),
            wacore::types::events::Event::Connected(_) => Some(()),
            _ => None,
        })
        .await;
    again.stop().await;
}

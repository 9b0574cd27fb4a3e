//! Garbage on the socket closes that connection only; the simulator keeps
//! serving everyone else and never panics.

// The whole crate is test code: its helpers, too, may fail the test by
// panicking (clippy.toml only exempts `#[test]` functions and `cfg(test)`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use wacore_libsignal::protocol::KeyPair;
use wasim::raw_client::{RawClient, RawClientError, login_payload};

/// Sends `bytes` on a fresh socket and expects the server to hang up.
async fn expect_closed_after(sim: &Simulator, bytes: Vec<u8>) {
    let (mut ws, _) = tokio_tungstenite::connect_async(sim.ws_url())
        .await
        .expect("websocket connects");
    ws.send(WsMessage::Binary(bytes.into()))
        .await
        .expect("send");
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await {
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "server kept a garbage connection open");
}

/// A raw client of a freshly provisioned device, past its `<success>`.
async fn logged_in(sim: &Simulator, phone: u64) -> RawClient {
    let kp = KeyPair::generate(&mut rand::rng());
    let noise_pub: [u8; 32] = kp
        .public_key
        .public_key_bytes()
        .try_into()
        .expect("32 bytes");
    let device = sim
        .handle()
        .provision_device(&phone.to_string(), noise_pub)
        .expect("valid phone");
    let mut client = RawClient::connect(&sim.ws_url(), kp, &login_payload(phone, device.into()))
        .await
        .expect("handshake completes");
    let success = client.recv_node().await.expect("login answer");
    assert_eq!(success.tag, "success");
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_closes_only_the_offending_connection() {
    let sim = simulator().await;
    let handle = sim.handle();

    // A healthy device stays connected throughout.
    let mut healthy = logged_in(&sim, 15550003333).await;

    // Not a frame at all, a frame that is not a handshake, a truncated frame.
    expect_closed_after(&sim, b"GET / HTTP/1.1\r\n\r\n".to_vec()).await;
    let mut junk_frame = b"WA\x06\x03".to_vec();
    junk_frame.extend([0, 0, 5, 0xff, 0xfe, 0xfd, 0xfc, 0xfb]);
    expect_closed_after(&sim, junk_frame).await;

    // A proper handshake from a device nobody linked: a 401 failure, then closed.
    let kp = KeyPair::generate(&mut rand::rng());
    let mut rogue = RawClient::connect(&sim.ws_url(), kp, &login_payload(15550009999, 1))
        .await
        .expect("handshake completes");
    let refusal = rogue.recv_node().await.expect("failure node");
    assert_eq!(refusal.tag, "failure");
    assert!(matches!(
        rogue.recv_node().await,
        Err(RawClientError::Closed | RawClientError::Socket(_))
    ));

    // A logged-in device whose next frame decrypts to no node at all.
    let mut rogue = logged_in(&sim, 15550004444).await;
    rogue
        .send_encrypted(&[0x00, 0xf8, 0xff, 0x13, 0x37])
        .await
        .expect("send");
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            if rogue.recv_node().await.is_err() {
                return;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "a bad node did not close the connection");

    // The healthy one is still served: a ping gets its answer.
    let ping = wacore_binary::builder::NodeBuilder::new("iq")
        .attr("id", "ping-1")
        .attr("type", "get")
        .attr("xmlns", "w:p")
        .attr("to", "s.whatsapp.net")
        .build();
    healthy.send_node(&ping).await.expect("send ping");
    let pong = tokio::time::timeout(WAIT, async {
        loop {
            let node = healthy
                .recv_node()
                .await
                .expect("healthy connection stays up");
            if node
                .attrs
                .get("id")
                .map(|v| v.as_str().into_owned())
                .as_deref()
                == Some("ping-1")
            {
                return node;
            }
        }
    })
    .await
    .expect("pong in time");
    assert_eq!(
        pong.attrs
            .get("type")
            .map(|v| v.as_str().into_owned())
            .as_deref(),
        Some("result")
    );
    assert!(
        handle
            .devices()
            .iter()
            .any(|d| d.phone == "15550003333" && d.connected)
    );
}

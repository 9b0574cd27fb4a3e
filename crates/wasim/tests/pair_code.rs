//! Linking with a pairing code, real client against the simulator.

// The whole crate is test code: its helpers, too, may fail the test by
// panicking (clippy.toml only exempts `#[test]` functions and `cfg(test)`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wacore::types::events::Event;
use wasim::{CodeOutcome, SimError};
use whatsapp_rust::pair_code::PairCodeOptions;

/// Asks for a pairing code the way an app offering "link with phone number"
/// does: while the client is unlinked and showing QR codes.
async fn request_code(client: &mut TestClient, phone: &str) -> String {
    client.next_qr().await;
    let options = PairCodeOptions {
        phone_number: phone.to_owned(),
        ..Default::default()
    };
    let returned = match client.client.pair_with_code(options).await {
        Ok(code) => code,
        Err(e) => panic!("the server refused the pairing-code request: {e}"),
    };
    let shown = client
        .wait_for("PairingCode", |e| match e {
            Event::PairingCode(p) => Some(p.code.clone()),
            Event::PairingCodeError(e) => panic!("pairing code failed: {e:?}"),
            _ => None,
        })
        .await;
    assert_eq!(shown, returned);
    shown
}

/// Waits for the link to complete, failing on any sign of a refused one.
async fn linked(client: &mut TestClient) {
    client
        .wait_for("PairSuccess", |e| match e {
            Event::PairSuccess(_) => Some(()),
            Event::PairError(e) => panic!("the client refused pair-success: {e:?}"),
            Event::PairingCodeError(e) => panic!("pairing code failed: {e:?}"),
            Event::PairingCodeRefresh(_) => panic!("the client gave up on its code"),
            _ => None,
        })
        .await;
    client.connected().await;
}

/// `ABCD1234` shown as a person would type it off the screen.
fn as_typed(code: &str) -> String {
    let lower = code.to_ascii_lowercase();
    format!("{}-{}", &lower[..4], &lower[4..])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_code_links_and_connects() {
    const PHONE: &str = "15550002222";
    let sim = simulator().await;
    let mut client = TestClient::new(&sim).await;
    let code = request_code(&mut client, PHONE).await;

    let outcome = sim.handle().enter_code(PHONE, &code).await;
    assert_eq!(outcome.ok(), Some(CodeOutcome::Accepted));
    linked(&mut client).await;

    let devices = sim.handle().devices();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].phone, PHONE);
    assert!(devices[0].device >= 1);
    assert!(devices[0].connected);
    client.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_code_is_rejected_then_the_right_one_links() {
    const PHONE: &str = "15550003333";
    let sim = simulator().await;
    let mut client = TestClient::new(&sim).await;
    let code = request_code(&mut client, PHONE).await;

    // One character off, still a well-formed code.
    let first = if code.starts_with('A') { 'B' } else { 'A' };
    let wrong = format!("{first}{}", &code[1..]);
    let outcome = sim.handle().enter_code(PHONE, &wrong).await;
    // The companion answered with a key bundle the phone could not open, so
    // the phone sent nothing: no device, and the client is still unlinked.
    assert_eq!(outcome.ok(), Some(CodeOutcome::WrongCode));
    assert!(sim.handle().devices().is_empty());
    assert!(!client.client.is_logged_in());

    // The code is still valid on the client, so the phone's user may retry.
    let outcome = sim.handle().enter_code(PHONE, &as_typed(&code)).await;
    assert_eq!(outcome.ok(), Some(CodeOutcome::Accepted));
    linked(&mut client).await;
    assert_eq!(sim.handle().devices().len(), 1);
    client.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entering_a_code_nobody_asked_for_or_a_malformed_one_is_refused() {
    let sim = simulator().await;
    let handle = sim.handle();
    assert!(matches!(
        handle.enter_code("15550004444", "ABCD-1234").await,
        Err(SimError::NoPendingCode)
    ));
    for bad in ["ABC", "ABCD-123", "ABCD-12O4", "ABCD12345"] {
        assert!(
            matches!(
                handle.enter_code("15550004444", bad).await,
                Err(SimError::MalformedCode(_))
            ),
            "{bad}"
        );
    }

    let (status, body) = post(
        &sim,
        "/admin/phones/15550004444/enter-code",
        r#"{"code": "ABCD-1234"}"#,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no_pending_code"), "{body}");
    let (status, body) = post(
        &sim,
        "/admin/phones/15550004444/enter-code",
        r#"{"code": "nope"}"#,
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("malformed_code"), "{body}");
}

/// A bare HTTP/1.1 POST: the admin API is the only HTTP the tests speak.
async fn post(sim: &Simulator, path: &str, json: &str) -> (u16, String) {
    let mut stream = match tokio::net::TcpStream::connect(sim.addr()).await {
        Ok(s) => s,
        Err(e) => panic!("admin API unreachable: {e}"),
    };
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{json}",
        sim.addr(),
        json.len()
    );
    let mut response = String::new();
    let exchange = async {
        stream.write_all(request.as_bytes()).await?;
        stream.read_to_string(&mut response).await
    };
    match tokio::time::timeout(WAIT, exchange).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => panic!("admin request failed: {e}"),
        Err(_) => panic!("admin request timed out"),
    }
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

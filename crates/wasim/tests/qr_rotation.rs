//! QR rotation: the client shows each ref in turn, then gives up. Its timers
//! run on the pluggable runtime, which this test speeds up tenfold.

// The whole crate is test code: its helpers, too, may fail the test by
// panicking (clippy.toml only exempts `#[test]` functions and `cfg(test)`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use common::*;
use tokio::sync::mpsc;
use wacore::runtime::{AbortHandle, Runtime};
use wacore::store::InMemoryBackend;
use wacore::types::events::Event;
use whatsapp_rust::bot::Bot;
use whatsapp_rust_tokio_transport::TokioWebSocketTransportFactory;
use whatsapp_rust_ureq_http_client::UreqHttpClient;

/// Tokio, with every sleep ten times shorter.
struct FastRuntime;

const SPEEDUP: u32 = 10;

#[whatsapp_rust::async_trait]
impl Runtime for FastRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send + 'static>>) -> AbortHandle {
        let task = tokio::spawn(future);
        AbortHandle::new(move || task.abort())
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(duration / SPEEDUP))
    }

    fn spawn_blocking(
        &self,
        f: Box<dyn FnOnce() + Send + 'static>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async {
            let _ = tokio::task::spawn_blocking(f).await;
        })
    }

    fn yield_now(&self) -> Option<Pin<Box<dyn Future<Output = ()> + Send>>> {
        None
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qr_codes_rotate_then_run_out() {
    init_logs();
    let sim = Simulator::start(SimConfig {
        qr_refs: 3,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    let (tx, mut events) = mpsc::unbounded_channel();
    let bot = Bot::builder()
        .with_backend(InMemoryBackend::new())
        .with_transport_factory(TokioWebSocketTransportFactory::new().with_url(sim.ws_url()))
        .with_http_client(UreqHttpClient::new())
        .with_runtime(FastRuntime)
        .with_version((2, 3000, 1_029_000_000))
        .on_event(move |event, _| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(event);
            }
        })
        .build()
        .await
        .expect("client builds");
    let handle = bot.spawn();

    let mut codes = Vec::new();
    let exhausted = tokio::time::timeout(WAIT, async {
        while let Some(event) = events.recv().await {
            match &*event {
                Event::PairingQrCode(q) => codes.push(q.code.clone()),
                Event::PairingQrCodesExhausted(e) => return Some(e.disconnected),
                _ => {}
            }
        }
        None
    })
    .await
    .expect("codes ran out in time");
    assert_eq!(
        exhausted,
        Some(true),
        "with no pairing code pending the client hangs up"
    );
    codes.dedup();
    assert_eq!(codes.len(), 3, "one code per ref: {codes:?}");
    let refs: std::collections::HashSet<_> =
        codes.iter().filter_map(|c| c.split(',').next()).collect();
    assert_eq!(refs.len(), 3, "each code carries its own ref");

    // A code from the finished round is stale: no device shows it any more.
    let sim_handle = sim.handle();
    let hung_up = sim_handle.wait_for_stats(|s| s.connections_open == 0);
    tokio::time::timeout(WAIT, hung_up)
        .await
        .expect("client hung up");
    let err = sim.handle().scan_qr("15550005555", &codes[0]);
    assert!(matches!(err, Err(wasim::SimError::StaleQr)), "{err:?}");
    let _ = tokio::time::timeout(Duration::from_secs(10), handle.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scanning_twice_or_garbage_is_refused() {
    let sim = simulator().await;
    let mut client = TestClient::new(&sim).await;
    let qr = client.next_qr().await;
    let handle = sim.handle();
    assert!(matches!(
        handle.scan_qr("15550006666", "not a qr"),
        Err(wasim::SimError::MalformedQr(_))
    ));
    assert!(matches!(
        handle.scan_qr("+1 555", &qr),
        Err(wasim::SimError::InvalidPhone(_))
    ));
    handle
        .scan_qr("15550006666", &qr)
        .expect("first scan links");
    assert!(matches!(
        handle.scan_qr("15550006666", &qr),
        Err(wasim::SimError::QrAlreadyUsed)
    ));
    client.connected().await;
    client.stop().await;
}

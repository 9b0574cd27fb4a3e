//! A real `whatsapp-rust` client driven against the simulator, with
//! event waits that time out instead of sleeping.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use wacore::store::InMemoryBackend;
use wacore::types::events::Event;
use whatsapp_rust::bot::{Bot, BotHandle};
use whatsapp_rust::client::Client;
use whatsapp_rust::store::traits::Backend;
use whatsapp_rust_tokio_transport::TokioWebSocketTransportFactory;

pub(crate) use wasim::{SimConfig, SimHandle, Simulator};
// Media URLs are always https://; this reaches the simulator's plain http.
pub(crate) use wasim::LoopbackHttpClient;

/// Waits long enough for a loaded 2-core machine, short enough to fail fast.
pub(crate) const WAIT: Duration = Duration::from_secs(30);

pub(crate) fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,wasim=info".into()),
        )
        .with_test_writer()
        .try_init();
}

pub(crate) async fn simulator() -> Simulator {
    init_logs();
    match Simulator::start(SimConfig::default()).await {
        Ok(sim) => sim,
        Err(e) => panic!("simulator did not start: {e}"),
    }
}

pub(crate) struct TestClient {
    pub client: Arc<Client>,
    pub store: Arc<dyn Backend>,
    events: mpsc::UnboundedReceiver<Arc<Event>>,
    handle: Option<BotHandle>,
}

impl TestClient {
    /// A new, unlinked client.
    pub(crate) async fn new(sim: &Simulator) -> Self {
        Self::with_store(sim, Arc::new(InMemoryBackend::new())).await
    }

    /// A client on an existing device store (a restart).
    pub(crate) async fn with_store(sim: &Simulator, store: Arc<dyn Backend>) -> Self {
        let (tx, events) = mpsc::unbounded_channel();
        let bot = Bot::builder()
            .with_backend_arc(store.clone())
            .with_transport_factory(TokioWebSocketTransportFactory::new().with_url(sim.ws_url()))
            .with_http_client(LoopbackHttpClient::new())
            .with_version((2, 3000, 1_029_000_000))
            .skip_history_sync()
            .on_event(move |event, _client| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(event);
                }
            })
            .build()
            .await;
        let bot = match bot {
            Ok(bot) => bot,
            Err(e) => panic!("client did not build: {e}"),
        };
        let client = bot.client();
        let handle = bot.spawn();
        Self {
            client,
            store,
            events,
            handle: Some(handle),
        }
    }

    /// The first event `pick` accepts, or a panic naming `what` after `WAIT`.
    pub(crate) async fn wait_for<T>(
        &mut self,
        what: &str,
        mut pick: impl FnMut(&Event) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(event)) => {
                    if let Some(found) = pick(&event) {
                        return found;
                    }
                }
                Ok(None) => panic!("client stopped while waiting for {what}"),
                Err(_) => panic!("timed out waiting for {what}"),
            }
        }
    }

    pub(crate) async fn next_qr(&mut self) -> String {
        self.wait_for("a QR code", |e| match e {
            Event::PairingQrCode(q) => Some(q.code.clone()),
            _ => None,
        })
        .await
    }

    pub(crate) async fn connected(&mut self) {
        self.wait_for("Connected", |e| {
            matches!(e, Event::Connected(_)).then_some(())
        })
        .await
    }

    /// Links this client to `phone` by QR and waits until it is connected.
    pub(crate) async fn link(&mut self, sim: &SimHandle, phone: &str) {
        let qr = self.next_qr().await;
        if let Err(e) = sim.scan_qr(phone, &qr) {
            panic!("scan refused: {e}");
        }
        self.wait_for("PairSuccess", |e| {
            matches!(e, Event::PairSuccess(_)).then_some(())
        })
        .await;
        self.connected().await;
    }

    pub(crate) async fn stop(mut self) {
        if let Some(handle) = self.handle.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), handle.shutdown()).await;
        }
    }
}

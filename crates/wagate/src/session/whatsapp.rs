//! The [`Engine`] backed by whatsapp-rust: one `Bot` per session, its keys
//! in the gateway's store (`Store::keys`, one pool for every session).
//!
//! The engine and the link are here; the client's pieces are in the
//! submodules: [`cache`] (prekeys, cache sizes), [`events`] (the library's
//! events mapped to the gateway's), [`durability`] (the hook that stores
//! a batch before the ack), [`inbound`] (a message as the gateway records
//! it), [`runtime`] (the session's span on every task) and [`memory`].

mod cache;
mod durability;
mod events;
mod history;
mod inbound;
mod memory;
mod runtime;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument;
use url::Url;
use wacore::iq::keepalive::KeepaliveSpec;
use wacore::store::traits::Backend;
use whatsapp_rust::download::{DownloadParams, MediaType};
use whatsapp_rust::error::ErrorChainExt;
use whatsapp_rust::pair_code::PairCodeOptions;
use whatsapp_rust::prelude::{Bot, Client, SqliteStore};
use whatsapp_rust::transport::TokioWebSocketTransportFactory;

use super::engine::{
    ClientMemory, Delivery, DownloadError, Engine, EngineError, EngineEvent, Identity, InboundSink,
    Link, NoAnswer,
};
use super::messenger::{ClientMessenger, Messenger};
use super::server::{PINNED_WHATSAPP_VERSION, check_server_allowed};
use crate::domain::{Phone, SessionId};
use crate::messages::MediaKind;
use crate::messages::incoming::MediaRef;
use crate::store::{Store, StoreError};

use self::cache::{ONE_TIME_PREKEYS, cache_config};
use self::durability::DurableInbox;
use self::events::Forwarder;
use self::memory::client_memory;
use self::runtime::SessionRuntime;

#[derive(Clone)]
pub struct WhatsAppEngine {
    keys: Keys,
    /// `None` is WhatsApp itself, with the library's defaults.
    server: Option<Url>,
}

/// Where the sessions' keys are.
#[derive(Clone)]
enum Keys {
    /// In the gateway's database, every session's rows under its id.
    Shared(Arc<dyn Store>),
    /// The layout before the shared store: whatsapp-rust's own SQLite file
    /// per session, `<dir>/<id>.db`. Only [`WhatsAppEngine::legacy_files`]
    /// makes it, for the test that upgrades such a layout.
    LegacyFiles(PathBuf),
}

impl WhatsAppEngine {
    pub fn new(store: Arc<dyn Store>, server: Option<Url>) -> Self {
        Self {
            keys: Keys::Shared(store),
            server,
        }
    }

    /// An engine keeping each session's keys in a file of its own under
    /// `sessions_dir`, as gateways did before the shared key store. Only
    /// for testing the upgrade: it runs the very code an old gateway ran,
    /// so the layout it leaves is the real one, not an imitation of it.
    #[doc(hidden)]
    pub fn legacy_files(sessions_dir: PathBuf, server: Option<Url>) -> Self {
        Self {
            keys: Keys::LegacyFiles(sessions_dir),
            server,
        }
    }

    async fn backend(&self, session: SessionId) -> Result<Arc<dyn Backend>, EngineError> {
        match &self.keys {
            Keys::Shared(store) => Ok(store.keys().for_session(session)),
            Keys::LegacyFiles(dir) => {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|e| EngineError::DeviceStore(e.to_string()))?;
                let path = dir.join(format!("{session}.db"));
                let path = path.to_str().ok_or_else(|| {
                    EngineError::DeviceStore("data directory path is not UTF-8".into())
                })?;
                let store = SqliteStore::new(path)
                    .await
                    .map_err(|e| EngineError::DeviceStore(e.to_string()))?;
                Ok(Arc::new(store))
            }
        }
    }
}

#[async_trait]
impl Engine for WhatsAppEngine {
    async fn open(
        &self,
        session: SessionId,
        events: mpsc::UnboundedSender<EngineEvent>,
        deliveries: mpsc::UnboundedSender<Delivery>,
        inbound: Arc<dyn InboundSink>,
    ) -> Result<Arc<dyn Link>, EngineError> {
        // Checked here too, not only at start-up: this is the last point
        // before a session with certificate checks off opens a socket.
        check_server_allowed(self.server.as_ref())?;
        let backend = self.backend(session).await?;

        let builder = Bot::builder()
            .with_backend_arc(backend)
            .with_cache_config(cache_config())
            .with_wanted_pre_key_count(ONE_TIME_PREKEYS)
            .with_runtime(SessionRuntime {
                span: tracing::Span::current(),
            })
            .with_event_handler(Forwarder {
                events,
                deliveries,
                history: history::spawn(Arc::clone(&inbound)),
            })
            // WhatsApp is told a message arrived only once it is stored:
            // a crash in between means it is delivered again, not lost.
            .with_inbound_durability_hook(DurableInbox {
                sink: Arc::clone(&inbound),
            });
        let builder = match history::device_props(inbound.history_scope()) {
            Some(props) => builder.with_device_props(props),
            None => builder,
        };
        let builder = match &self.server {
            #[cfg(feature = "simulator")]
            Some(url) => builder
                .with_transport_factory(
                    TokioWebSocketTransportFactory::new().with_url(url.as_str()),
                )
                // The simulator serves media over plain http.
                .with_http_client(super::loopback_http::LoopbackHttp::new())
                // Fetching the current version needs HTTPS to WhatsApp,
                // which a custom server cannot stand in for.
                .with_version(PINNED_WHATSAPP_VERSION),
            #[cfg(not(feature = "simulator"))]
            Some(url) => builder
                .with_transport_factory(
                    TokioWebSocketTransportFactory::new().with_url(url.as_str()),
                )
                // Fetching the current version needs HTTPS to WhatsApp,
                // which a custom server cannot stand in for.
                .with_version(PINNED_WHATSAPP_VERSION),
            None => builder,
        };
        let bot = builder
            .build()
            .await
            .map_err(|e| EngineError::DeviceStore(e.to_string()))?;
        let client = bot.client();
        // The supervisor owns reconnecting; see session::supervisor.
        client.enable_auto_reconnect.store(false, Ordering::Relaxed);
        Ok(Arc::new(WhatsAppLink {
            messenger: Arc::new(ClientMessenger::new(Arc::clone(&client))),
            client,
            bot: Mutex::new(Some(bot)),
        }))
    }

    async fn wipe(&self, session: SessionId) -> Result<(), StoreError> {
        match &self.keys {
            Keys::Shared(store) => store.keys().delete_keys(session).await,
            Keys::LegacyFiles(dir) => {
                crate::store::legacy_keys::remove_key_file(&dir.join(format!("{session}.db")))
                    .await
                    .map_err(StoreError::KeyFile)
            }
        }
    }
}

struct WhatsAppLink {
    client: Arc<Client>,
    messenger: Arc<ClientMessenger>,
    /// The first connection goes through `Bot::spawn`, which also starts the
    /// bot's background workers; later ones only rerun the client.
    bot: Mutex<Option<Bot>>,
}

#[async_trait]
impl Link for WhatsAppLink {
    fn connect(&self) -> BoxFuture<'static, ()> {
        let bot = self
            .bot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let client = Arc::clone(&self.client);
        // Every connection's run loop gets its own task, as `Bot::spawn`
        // gives the first one. Run inline in the returned future, a
        // reconnect's loop only made progress while the supervisor polled
        // it, and the supervisor stops polling while it awaits
        // `Client::disconnect`, which waits on the locks that loop holds
        // during its own teardown: after a stream error (the phone removing
        // the device) the two waited on each other for ever.
        // Aborted if the connection is dropped, which is what dropping the
        // bot's handle already did for the first connection.
        let run = AbortOnDropHandle::new(tokio::spawn(
            async move {
                match bot {
                    Some(bot) => bot.spawn().await,
                    None => client.run().await,
                }
            }
            .in_current_span(),
        ));
        Box::pin(async move {
            // A panic in the client ends the connection like any other end.
            if let Err(error) = run.await {
                tracing::error!(%error, "the client's run loop failed");
            }
        })
    }

    async fn request_pairing_code(&self, phone: &Phone) -> Result<String, EngineError> {
        self.client
            .pair_with_code(PairCodeOptions {
                phone_number: phone.to_string(),
                ..PairCodeOptions::default()
            })
            .await
            .map_err(|e| {
                // An earlier code is still valid: the caller's own doing,
                // not WhatsApp failing.
                if e.lost_the_flow_to_another_request() {
                    EngineError::PairingCodeOutstanding
                } else {
                    EngineError::PairingCode(e.to_string())
                }
            })
    }

    fn identity(&self) -> Identity {
        let push_name = self.client.push_name();
        Identity {
            phone: self.client.pn().map(|jid| jid.user.to_string()),
            push_name: (!push_name.is_empty()).then_some(push_name),
            lid: self.client.lid().map(|jid| format!("{}@lid", jid.user)),
        }
    }

    async fn logout(&self) {
        self.client.logout().await;
    }

    async fn disconnect(&self) {
        self.client.disconnect().await;
    }

    fn messenger(&self) -> Option<Arc<dyn Messenger>> {
        Some(Arc::clone(&self.messenger) as Arc<dyn Messenger>)
    }

    async fn memory(&self) -> Option<ClientMemory> {
        Some(client_memory(&self.client.resource_report().await))
    }

    async fn download(&self, media: &MediaRef) -> Result<Vec<u8>, DownloadError> {
        let hex = |s: &str| hex::decode(s).map_err(|_| DownloadError::InvalidReference);
        let params = DownloadParams::encrypted(
            media.direct_path.clone(),
            &hex(&media.media_key)?,
            &hex(&media.file_sha256)?,
            &hex(&media.file_enc_sha256)?,
            media.file_length,
            media_type(media.kind),
        );
        self.client.download(&params).await.map_err(|error| {
            // The CDN refusing the reference itself (even after the client
            // refreshed its media credentials) is what expiry looks like.
            let cause: &(dyn std::error::Error + 'static) = error.as_ref();
            match cause.http_status() {
                Some(401 | 403 | 404 | 410) => DownloadError::Expired,
                _ => DownloadError::Failed(error.to_string()),
            }
        })
    }

    fn frames_received(&self) -> Option<u64> {
        Some(self.client.stats().frames_received)
    }

    fn ping(&self, timeout: Duration) -> BoxFuture<'static, Result<(), NoAnswer>> {
        let client = Arc::clone(&self.client);
        Box::pin(async move {
            let ping = client.execute(KeepaliveSpec::with_timeout(timeout));
            match tokio::time::timeout(timeout, ping).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(error)) => Err(NoAnswer(error.to_string())),
                Err(_) => Err(NoAnswer(format!("no answer in {timeout:?}"))),
            }
        })
    }

    async fn drop_connection(&self) {
        // Ends this connection's run loop (auto-reconnect is off, so the
        // client does not reconnect by itself) after flushing what it
        // stored, as a dead-socket detection in the client does.
        self.client.reconnect_immediately().await;
    }
}

fn media_type(kind: MediaKind) -> MediaType {
    match kind {
        MediaKind::Image => MediaType::Image,
        MediaKind::Video => MediaType::Video,
        MediaKind::Audio | MediaKind::Voice => MediaType::Audio,
        MediaKind::Document => MediaType::Document,
        MediaKind::Sticker => MediaType::Sticker,
    }
}

//! The [`Engine`] backed by whatsapp-rust: one `Bot` per session, its keys
//! in the gateway's store (`Store::keys`, one pool for every session).

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
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
use wacore::runtime::{AbortHandle, Runtime};
use wacore::store::traits::Backend;
use wacore::types::presence::ReceiptType;
use whatsapp_rust::TokioRuntime;
use whatsapp_rust::pair_code::PairCodeOptions;
use whatsapp_rust::prelude::{
    Bot, Client, Event, EventHandler, EventInterest, EventKind, SqliteStore,
};
use whatsapp_rust::transport::TokioWebSocketTransportFactory;
use whatsapp_rust::{CacheConfig, CacheEntryConfig};

use whatsapp_rust::InboundDurabilityHook;
use whatsapp_rust::Jid;
use whatsapp_rust::buffa::Message as _;
use whatsapp_rust::download::{DownloadParams, MediaType};
use whatsapp_rust::error::ErrorChainExt;
use whatsapp_rust::types::events::InboundMessage;
use whatsapp_rust::wacore_binary::JidExt;
use whatsapp_rust::waproto::whatsapp as wa;

use super::engine::{
    ClientMemory, Delivery, DownloadError, Engine, EngineError, EngineEvent, Identity,
    InboundError, InboundSink, Link, MemoryPart, NoAnswer,
};
use super::messenger::{ClientMessenger, Messenger};
use super::server::{PINNED_WHATSAPP_VERSION, check_server_allowed};
use crate::domain::{Direction, MessageStatus, Phone, SessionId};
use crate::messages::MediaKind;
use crate::messages::incoming::{self, Inbound, IncomingContent, MediaRef, Sender};
use crate::store::{Store, StoreError, StoredPoll};

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

/// One-time prekeys each session publishes (and publishes again when the
/// server says they run low). whatsapp-rust uploads WhatsApp Web's 812; every
/// connect then reads all of them back to check the server's digest of
/// the bundle (`validate_digest_key`), which made that read most of a
/// reconnect's cost in a gateway of thousands (profiled in BENCHMARKS.md:
/// ~60 % of the gateway's CPU in a drop-all), and 812 rows per session
/// most of the key store's size. whatsmeow, under most self-hosted
/// gateways, keeps 50. A spent pool costs nothing but forward secrecy of
/// a new contact's first message: without a one-time key a session still
/// starts from the signed prekey, and the client uploads more when the
/// server reports the pool low (an `encrypt` notification).
const ONE_TIME_PREKEYS: usize = 100;

/// The client's in-memory caches, sized for a gateway holding thousands of
/// sessions: whatsapp-rust's defaults suit one bot and let each client
/// grow to thousands of entries per cache.
/// What these caches hold is also in the store (or is only a guard against
/// repeats), so a miss costs a query, not correctness; the sizes are what
/// one number's live traffic touches again within the hour.
fn cache_config() -> CacheConfig {
    let hour = Some(Duration::from_secs(3600));
    let five_min = Some(Duration::from_secs(300));
    CacheConfig {
        // Group metadata and per-user device lists: a session works in a
        // handful of chats at a time; misses read the key store.
        group_cache: CacheEntryConfig::new(hour, 32),
        device_registry_cache: CacheEntryConfig::new(hour, 256),
        // `lid_pn_cache` keeps its default, unbounded: several of the
        // client's lookups (the LID to send to, among them) read only this
        // cache, so an evicted mapping would change addressing. It holds
        // one small entry per contact the number has talked to.
        message_retry_counts: CacheEntryConfig::new(hour, 128),
        undecryptable_dispatched: CacheEntryConfig::new(five_min, 128),
        pdo_pending_requests: CacheEntryConfig::new(Some(Duration::from_secs(30)), 32),
        pdo_requested: CacheEntryConfig::new(Some(Duration::from_secs(24 * 3600)), 128),
        sender_key_devices_cache: CacheEntryConfig::new(hour, 64),
        session_recreate_history: CacheEntryConfig::new(hour, 64),
        // Soft caps on per-chat locks: a lock in use is never evicted, so
        // these only bound idle ones.
        session_locks_capacity: 512,
        chat_lanes_capacity: 512,
        group_distribution_locks_capacity: 64,
        resend_rate_limiter_capacity: 256,
        ..CacheConfig::default()
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
            .with_event_handler(Forwarder { events, deliveries })
            // WhatsApp is told a message arrived only once it is stored:
            // a crash in between means it is delivered again, not lost.
            .with_inbound_durability_hook(DurableInbox { sink: inbound })
            // The gateway relays live traffic; old chats are not its business.
            .skip_history_sync();
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

/// whatsapp-rust's durability hook: every batch of decrypted messages is
/// stored (through the session's [`InboundSink`]) before the client acks
/// it. An error keeps the ack back, so WhatsApp delivers the batch again.
struct DurableInbox {
    sink: Arc<dyn InboundSink>,
}

#[async_trait]
impl InboundDurabilityHook for DurableInbox {
    async fn on_messages(
        &self,
        client: Arc<Client>,
        batch: &[InboundMessage],
    ) -> anyhow::Result<()> {
        let own: Vec<String> = [client.pn(), client.lid()]
            .into_iter()
            .flatten()
            .map(|jid| jid.user.to_string())
            .collect();
        let mut decoded = Vec::with_capacity(batch.len());
        for item in batch {
            let Some(mut inbound) = to_inbound(&item.info, &item.message) else {
                continue;
            };
            let from_me = inbound.from_me;
            if let Some(target) = inbound.content.target_mut() {
                target.resolve_author(from_me, |user| own.iter().any(|o| o == user));
            }
            if let IncomingContent::PollVote {
                target,
                selected_options,
            } = &mut inbound.content
            {
                // A store that cannot be read is an error like one that
                // cannot be written: no ack, WhatsApp delivers it again.
                *selected_options =
                    open_vote(&client, self.sink.as_ref(), item, &target.wa_id).await?;
            }
            fill_sender(&client, &mut inbound.sender).await;
            decoded.push(inbound);
        }
        if decoded.is_empty() {
            return Ok(());
        }
        self.sink.record(decoded).await?;
        Ok(())
    }
}

/// The options a poll vote chose, by name; `None` when the gateway cannot
/// open it: it does not have the poll (sent before this number was linked,
/// or from a device it never heard from) or the poll's secret.
async fn open_vote(
    client: &Arc<Client>,
    sink: &dyn InboundSink,
    item: &InboundMessage,
    poll_id: &str,
) -> Result<Option<Vec<String>>, InboundError> {
    let Some(cipher) = incoming::poll_vote_cipher(&item.message) else {
        return Ok(None);
    };
    let Some(poll) = sink.poll(poll_id).await? else {
        return Ok(None);
    };
    let Some((secret, creator)) = poll_secret(client, &poll, poll_id).await else {
        return Ok(None);
    };
    match client
        .polls()
        .decrypt_vote(cipher, &secret, poll_id, &creator, &item.info.source.sender)
        .await
    {
        Ok(chosen) => Ok(incoming::chosen_options(&poll.options, &chosen)),
        Err(error) => {
            tracing::debug!(%error, "a poll vote did not open");
            Ok(None)
        }
    }
}

/// A poll's secret and who created it. For a poll this session sent, the
/// secret is in the message as sent (kept by the outbox); for one it
/// received, in the client's store of message secrets, which keeps them
/// under the chat and the sender as the poll arrived (a LID or a number).
async fn poll_secret(
    client: &Arc<Client>,
    poll: &StoredPoll,
    poll_id: &str,
) -> Option<(Vec<u8>, Jid)> {
    match poll.direction {
        Direction::Outgoing => {
            let wire = wa::Message::decode(&mut poll.wire.as_deref()?).ok()?;
            let secret = wire
                .message_context_info
                .as_option()?
                .message_secret
                .clone()?;
            Some((secret, client.pn().or_else(|| client.lid())?))
        }
        Direction::Incoming => {
            let creators: Vec<Jid> = [
                poll.sender
                    .phone
                    .as_ref()
                    .map(|phone| Jid::pn(phone.as_str())),
                poll.sender.lid.as_ref().map(|lid| Jid::lid(lid.as_str())),
            ]
            .into_iter()
            .flatten()
            .collect();
            let backend = client.persistence_manager().backend();
            for creator in &creators {
                let sender = creator.to_non_ad_string();
                // A one-to-one chat is keyed by the other person, as
                // they were addressed; a group by its own JID.
                let chats = if poll.chat.ends_with("@g.us") {
                    vec![poll.chat.clone()]
                } else {
                    creators.iter().map(Jid::to_non_ad_string).collect()
                };
                for chat in chats {
                    if let Ok(Some(secret)) = backend.get_msg_secret(&chat, &sender, poll_id).await
                    {
                        return Some((secret, creator.clone()));
                    }
                }
            }
            None
        }
    }
}

/// One message as the gateway records it; `None` for what is not a user
/// message (key shares, sender keys alone, protocol chatter).
fn to_inbound(
    info: &whatsapp_rust::types::message::MessageInfo,
    message: &wa::Message,
) -> Option<Inbound> {
    let source = &info.source;
    // Contacts' status updates come as messages to status@broadcast; they
    // are not messages to this number.
    if source.chat.is_status_broadcast() {
        return None;
    }
    let (content, media) = incoming::decode(message)?;
    let sender = sender_of(&source.sender, source.sender_alt.as_ref());
    // A one-to-one chat is named by the other person's number when it is
    // known, so the same person's chat has one name whichever address
    // WhatsApp used (and the name outgoing messages use).
    let chat = if source.is_group || source.chat.is_group() {
        source.chat.to_non_ad_string()
    } else if source.is_from_me {
        source
            .recipient_alt
            .as_ref()
            .or(source.recipient.as_ref())
            .filter(|jid| jid.is_pn())
            .map(Jid::to_non_ad_string)
            .unwrap_or_else(|| source.chat.to_non_ad_string())
    } else {
        match &sender.phone {
            Some(phone) if source.chat.is_lid() => format!("{phone}@s.whatsapp.net"),
            _ => source.chat.to_non_ad_string(),
        }
    };
    Some(Inbound {
        wa_id: info.id.clone(),
        chat,
        sender,
        push_name: (!info.push_name.is_empty()).then(|| info.push_name.clone()),
        timestamp: info.timestamp,
        from_me: source.is_from_me,
        reply_to: incoming::reply_to(message),
        content,
        media,
    })
}

fn sender_of(sender: &Jid, alt: Option<&Jid>) -> Sender {
    let mut found = Sender::default();
    for jid in std::iter::once(sender).chain(alt) {
        if jid.is_lid() && found.lid.is_none() {
            found.lid = Some(jid.user.to_string());
        } else if jid.is_pn() && found.phone.is_none() {
            found.phone = Some(jid.user.to_string());
        }
    }
    found
}

/// Completes the sender with the client's LID-to-number mapping when the
/// message named only one of them. Best effort: a failed lookup leaves the
/// other unknown.
async fn fill_sender(client: &Client, sender: &mut Sender) {
    let known = match (&sender.phone, &sender.lid) {
        (Some(_), Some(_)) | (None, None) => return,
        (Some(phone), None) => Jid::pn(phone.as_str()),
        (None, Some(lid)) => Jid::lid(lid.as_str()),
    };
    if let Ok(Some(entry)) = client.get_lid_pn_entry(&known).await {
        sender
            .phone
            .get_or_insert_with(|| entry.phone_number.to_string());
        sender.lid.get_or_insert_with(|| entry.lid.to_string());
    }
}

/// Tokio, with every task the client spawns (its run loop, the handlers of
/// what the server sends, keepalives) inside the session's tracing span: in
/// a gateway holding thousands of sessions, a client log line that does not
/// say which session it is about is no use.
struct SessionRuntime {
    span: tracing::Span,
}

#[async_trait]
impl Runtime for SessionRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send + 'static>>) -> AbortHandle {
        TokioRuntime.spawn(Box::pin(future.instrument(self.span.clone())))
    }

    fn spawn_detached(&self, future: Pin<Box<dyn Future<Output = ()> + Send + 'static>>) {
        TokioRuntime.spawn_detached(Box::pin(future.instrument(self.span.clone())));
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        TokioRuntime.sleep(duration)
    }

    fn spawn_blocking(
        &self,
        f: Box<dyn FnOnce() + Send + 'static>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        TokioRuntime.spawn_blocking(f)
    }

    fn yield_now(&self) -> Option<Pin<Box<dyn Future<Output = ()> + Send>>> {
        TokioRuntime.yield_now()
    }

    fn yield_frequency(&self) -> u32 {
        TokioRuntime.yield_frequency()
    }
}

/// Turns the library's events into [`EngineEvent`]s for the supervisor and
/// [`Delivery`] reports for the outbox. Called inline by the event bus, so
/// it only maps and enqueues, in arrival order.
struct Forwarder {
    events: mpsc::UnboundedSender<EngineEvent>,
    deliveries: mpsc::UnboundedSender<Delivery>,
}

impl Forwarder {
    fn delivery(event: &Event) -> Option<Delivery> {
        match event {
            Event::ServerAck(ack) if ack.class.as_deref().is_none_or(|c| c == "message") => {
                Some(Delivery::ServerAck {
                    wa_id: ack.id.clone(),
                    // A code that is not a number is still a refusal.
                    error: ack.error.as_deref().map(|code| code.parse().unwrap_or(0)),
                })
            }
            Event::Receipt(receipt) if !receipt.source.is_from_me => {
                let status = match receipt.r#type {
                    ReceiptType::Delivered => MessageStatus::Delivered,
                    ReceiptType::Read => MessageStatus::Read,
                    ReceiptType::Played => MessageStatus::Played,
                    _ => return None,
                };
                Some(Delivery::Receipt {
                    wa_ids: receipt
                        .message_ids
                        .iter()
                        .map(|id| id.to_string())
                        .collect(),
                    status,
                })
            }
            _ => None,
        }
    }
}

impl EventHandler for Forwarder {
    fn handle_event(&self, event: Arc<Event>) {
        if let Some(delivery) = Self::delivery(&event) {
            // A closed channel means the session is going away.
            let _ = self.deliveries.send(delivery);
            return;
        }
        let mapped = match &*event {
            Event::PairingQrCode(qr) => EngineEvent::QrCode {
                code: qr.code.clone(),
                valid_for: qr.timeout,
            },
            Event::PairingQrCodesExhausted(_) => EngineEvent::QrCodesExhausted,
            Event::PairingCode(code) => EngineEvent::PairingCode {
                code: code.code.clone(),
                valid_for: code.timeout,
            },
            Event::PairSuccess(success) => EngineEvent::Paired {
                phone: success.id.user.to_string(),
            },
            Event::Connected(_) => EngineEvent::Connected,
            Event::LoggedOut(_) => EngineEvent::LoggedOut,
            Event::TemporaryBan(ban) => EngineEvent::TemporarilyBanned {
                expires_in: ban.expire.to_std().unwrap_or_default(),
            },
            Event::ClientOutdated(_) => EngineEvent::ClientOutdated,
            _ => return,
        };
        // A closed channel means the supervisor is gone; nothing to tell.
        let _ = self.events.send(mapped);
    }

    fn interest(&self) -> EventInterest {
        EventInterest::of(&[
            EventKind::PairingQrCode,
            EventKind::PairingQrCodesExhausted,
            EventKind::PairingCode,
            EventKind::PairSuccess,
            EventKind::Connected,
            EventKind::LoggedOut,
            EventKind::TemporaryBan,
            EventKind::ClientOutdated,
            EventKind::ServerAck,
            EventKind::Receipt,
        ])
    }
}

/// The client's report, part by part. The total is the client's own
/// (`memory_report()`'s collections); the transport's buffers, which live
/// outside the client, are a part of their own and not in it.
fn client_memory(report: &whatsapp_rust::ResourceReport) -> ClientMemory {
    let c = &report.client;
    let stats = |name, s: &whatsapp_rust::CollectionStats| MemoryPart {
        name,
        entries: s.entries,
        bytes: s.bytes,
    };
    let count = |name, n: u64| MemoryPart {
        name,
        entries: n,
        bytes: 0,
    };
    let len = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    let parts = vec![
        stats("group_cache", &c.group_cache),
        stats("device_registry_cache", &c.device_registry_cache),
        stats("lid_pn_by_lid", &c.lid_pn_lid_entries),
        stats("lid_pn_by_pn", &c.lid_pn_pn_entries),
        stats("recent_messages", &c.recent_messages),
        stats("sender_key_device_cache", &c.sender_key_device_cache),
        stats("group_devices_memo", &c.group_devices_memo),
        stats("dm_devices_memo", &c.dm_devices_memo),
        stats("signal_sessions", &c.signal_sessions),
        stats("signal_identities", &c.signal_identities),
        stats("signal_sender_keys", &c.signal_sender_keys),
        stats("history_sync_tasks", &c.history_sync_tasks),
        count("session_locks", c.session_locks),
        count("chat_lanes", c.chat_lanes),
        count("response_waiters", len(c.response_waiters)),
        count("node_waiters", len(c.node_waiters)),
        count("pending_retries", len(c.pending_retries)),
        count("presence_subscriptions", len(c.presence_subscriptions)),
        MemoryPart {
            name: "transport",
            entries: u64::from(report.transport.is_some()),
            bytes: report.transport.map_or(0, |t| t.total_bytes()),
        },
    ];
    ClientMemory {
        total_bytes: c.total_estimated_bytes(),
        parts,
    }
}

#[cfg(test)]
mod tests {
    use whatsapp_rust::types::message::{MessageInfo, MessageSource};

    use super::*;

    fn jid(s: &str) -> Jid {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e:?}"))
    }

    fn text() -> wa::Message {
        wa::Message {
            conversation: Some("hi".into()),
            ..Default::default()
        }
    }

    fn info(source: MessageSource) -> MessageInfo {
        MessageInfo {
            source,
            id: "3EB0X".into(),
            push_name: "Bob".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_chat_by_lid_is_named_by_the_number_when_it_is_known() {
        let source = MessageSource {
            chat: jid("99887766@lid"),
            sender: jid("99887766:2@lid"),
            sender_alt: Some(jid("15550001111:2@s.whatsapp.net")),
            ..Default::default()
        };
        let inbound = to_inbound(&info(source), &text()).unwrap_or_else(|| panic!("decoded"));
        assert_eq!(inbound.chat, "15550001111@s.whatsapp.net");
        assert_eq!(inbound.sender.phone.as_deref(), Some("15550001111"));
        assert_eq!(inbound.sender.lid.as_deref(), Some("99887766"));
        assert_eq!(inbound.push_name.as_deref(), Some("Bob"));
        assert!(!inbound.from_me);
    }

    #[test]
    fn a_group_message_keeps_the_group_as_chat_and_its_author_as_sender() {
        let source = MessageSource {
            chat: jid("120363025246125888@g.us"),
            sender: jid("15550001111:3@s.whatsapp.net"),
            is_group: true,
            ..Default::default()
        };
        let inbound = to_inbound(&info(source), &text()).unwrap_or_else(|| panic!("decoded"));
        assert_eq!(inbound.chat, "120363025246125888@g.us");
        assert_eq!(inbound.sender.phone.as_deref(), Some("15550001111"));
        assert_eq!(inbound.sender.lid, None);
    }

    #[test]
    fn what_the_own_phone_sent_is_in_the_recipients_chat() {
        let source = MessageSource {
            chat: jid("44332211@lid"),
            sender: jid("15550002222:0@s.whatsapp.net"),
            is_from_me: true,
            recipient: Some(jid("44332211@lid")),
            recipient_alt: Some(jid("15550003333@s.whatsapp.net")),
            ..Default::default()
        };
        let inbound = to_inbound(&info(source), &text()).unwrap_or_else(|| panic!("decoded"));
        assert!(inbound.from_me);
        assert_eq!(inbound.chat, "15550003333@s.whatsapp.net");
    }

    #[test]
    fn protocol_chatter_is_not_recorded() {
        let source = MessageSource {
            chat: jid("15550001111@s.whatsapp.net"),
            sender: jid("15550001111@s.whatsapp.net"),
            ..Default::default()
        };
        assert!(to_inbound(&info(source), &wa::Message::default()).is_none());
        let status = MessageSource {
            chat: jid("status@broadcast"),
            sender: jid("15550001111@s.whatsapp.net"),
            ..Default::default()
        };
        assert!(to_inbound(&info(status), &text()).is_none());
    }
}

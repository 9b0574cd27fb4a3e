//! The supervisor's state machine against a scripted engine. The fake only
//! stands in for the protocol here; the gateway's end-to-end tests use the
//! real client against the simulator.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use async_trait::async_trait;
use futures::future::BoxFuture;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::oneshot;

use super::command::format_pairing_code;
use super::*;
use crate::domain::{Label, Phone};
use crate::hub::{Filter, HubLimits, Subscription};
use crate::session::engine::{EngineError, EngineEvent, Identity, Link};
use crate::store::{
    EventStore, KeyStore, MessageStore, NewSession, OrgStore, SessionChanges, SessionPage,
    SessionQuery, SessionStore, SqliteStore, StatusChange, UserStore, WebhookStore,
};

const WAIT: Duration = Duration::from_secs(10);
const PHONE: &str = "628123456789";

/// One connection the supervisor opened; dropping it ends the connection.
struct Attempt {
    _end: oneshot::Sender<()>,
    /// Whether `Paired` had been emitted when this connection was opened.
    after_paired: bool,
}

#[derive(Default)]
struct FakeEngine {
    attempts: Mutex<Option<mpsc::UnboundedSender<Attempt>>>,
    events: Mutex<Option<mpsc::UnboundedSender<EngineEvent>>>,
    wipes: AtomicUsize,
    /// The store refuses to delete the keys.
    wipe_fails: AtomicBool,
    logouts: Arc<AtomicUsize>,
    /// The device store holds a linked identity, as after pairing.
    linked: Arc<AtomicBool>,
    paired_emitted: Arc<AtomicBool>,
}

struct FakeLink {
    attempts: Option<mpsc::UnboundedSender<Attempt>>,
    logouts: Arc<AtomicUsize>,
    linked: Arc<AtomicBool>,
    paired_emitted: Arc<AtomicBool>,
}

#[async_trait]
impl Engine for FakeEngine {
    async fn open(
        &self,
        _session: SessionId,
        events: mpsc::UnboundedSender<EngineEvent>,
        _deliveries: mpsc::UnboundedSender<Delivery>,
        _inbound: Arc<dyn crate::session::engine::InboundSink>,
    ) -> Result<Arc<dyn Link>, EngineError> {
        *self.events.lock().unwrap_or_else(|e| e.into_inner()) = Some(events);
        Ok(Arc::new(FakeLink {
            attempts: self
                .attempts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            logouts: Arc::clone(&self.logouts),
            linked: Arc::clone(&self.linked),
            paired_emitted: Arc::clone(&self.paired_emitted),
        }))
    }

    async fn wipe(&self, _session: SessionId) -> Result<(), StoreError> {
        if self.wipe_fails.load(Ordering::SeqCst) {
            return Err(StoreError::Corrupt("the database is gone".into()));
        }
        self.wipes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[async_trait]
impl Link for FakeLink {
    fn connect(&self) -> BoxFuture<'static, ()> {
        let (end, ended) = oneshot::channel();
        if let Some(attempts) = &self.attempts {
            let _ = attempts.send(Attempt {
                _end: end,
                after_paired: self.paired_emitted.load(Ordering::SeqCst),
            });
        }
        Box::pin(async move {
            let _ = ended.await;
        })
    }

    async fn request_pairing_code(&self, _phone: &Phone) -> Result<String, EngineError> {
        Ok("ABCD1234".into())
    }

    fn identity(&self) -> Identity {
        if !self.linked.load(Ordering::SeqCst) {
            return Identity::default();
        }
        Identity {
            phone: Some(PHONE.into()),
            push_name: Some("Sales".into()),
            lid: None,
        }
    }

    async fn logout(&self) {
        self.logouts.fetch_add(1, Ordering::SeqCst);
    }

    async fn disconnect(&self) {}

    fn messenger(&self) -> Option<Arc<dyn crate::session::messenger::Messenger>> {
        None
    }
}

struct Harness {
    store: Arc<dyn Store>,
    engine: Arc<FakeEngine>,
    commands: mpsc::Sender<Command>,
    live: watch::Receiver<Live>,
    working: watch::Receiver<Working>,
    events: Subscription,
    attempts: UnboundedReceiver<Attempt>,
    session: SessionRecord,
    cancel: CancellationToken,
}

fn fast_policy() -> SupervisorPolicy {
    SupervisorPolicy {
        link_timeout: Duration::from_secs(30),
        retry: RetryPolicy {
            base: Duration::from_millis(10),
            max_delay: Duration::from_millis(40),
            budget: Duration::from_secs(30),
        },
        liveness: LivenessPolicy::default(),
    }
}

async fn harness(policy: SupervisorPolicy) -> Harness {
    harness_on(policy, |store| store).await
}

/// A harness whose supervisor sees the store through `wrap`.
async fn harness_on(
    policy: SupervisorPolicy,
    wrap: impl FnOnce(Arc<dyn Store>) -> Arc<dyn Store>,
) -> Harness {
    let store: Arc<dyn Store> = match SqliteStore::connect("sqlite::memory:").await {
        Ok(store) => wrap(Arc::new(store)),
        Err(e) => panic!("store: {e:?}"),
    };
    let session = async {
        let org = store.orgs().create_org("acme").await?;
        store
            .sessions()
            .insert_session(NewSession {
                id: SessionId::new(),
                org_id: org.id,
                label: Label::try_from("test".to_string()).ok(),
                pace: Default::default(),
                history: Default::default(),
            })
            .await
    }
    .await
    .unwrap_or_else(|e| panic!("seed: {e:?}"));

    let (attempt_tx, attempts) = mpsc::unbounded_channel();
    let engine = Arc::new(FakeEngine {
        attempts: Mutex::new(Some(attempt_tx)),
        ..FakeEngine::default()
    });
    let hub = EventHub::new(HubLimits {
        client_buffer: 256,
        max_clients_per_org: 4,
    });
    let events = hub
        .subscribe(session.org_id, Filter::default())
        .unwrap_or_else(|e| panic!("subscribe: {e}"));
    let (commands, receiver) = mpsc::channel(8);
    let (live_tx, live) = watch::channel(Live::default());
    let (working_tx, working) = watch::channel(None);
    let (deliveries, _) = mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    let supervisor = Supervisor::new(
        &session,
        SupervisorDeps {
            store: Arc::clone(&store),
            engine: Arc::clone(&engine) as Arc<dyn Engine>,
            hub,
            statuses: StatusWriter::new(Arc::clone(&store)),
            policy,
            behaviour: watch::channel(session.behaviour.clone()).1,
            outbox: Arc::new(tokio::sync::Notify::new()),
        },
        live_tx,
        working_tx,
        deliveries,
        receiver,
        cancel.clone(),
    );
    tokio::spawn(supervisor.run());
    Harness {
        store,
        engine,
        commands,
        live,
        working,
        events,
        attempts,
        session,
        cancel,
    }
}

impl Harness {
    async fn send<T>(&self, command: impl FnOnce(oneshot::Sender<T>) -> Command) -> T {
        let (reply, response) = oneshot::channel();
        if self.commands.send(command(reply)).await.is_err() {
            panic!("supervisor gone");
        }
        match tokio::time::timeout(WAIT, response).await {
            Ok(Ok(value)) => value,
            Ok(Err(_)) => panic!("supervisor dropped the reply"),
            Err(_) => panic!("no reply in time"),
        }
    }

    /// The client stores the identity pair-success gave it.
    fn pair(&self) {
        self.engine.linked.store(true, Ordering::SeqCst);
    }

    fn emit(&self, event: EngineEvent) {
        if matches!(event, EngineEvent::Paired { .. }) {
            self.engine.paired_emitted.store(true, Ordering::SeqCst);
        }
        let sender = self
            .engine
            .events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match sender {
            Some(sender) if sender.send(event).is_ok() => {}
            _ => panic!("no open link to emit on"),
        }
    }

    async fn attempt(&mut self) -> Attempt {
        match tokio::time::timeout(WAIT, self.attempts.recv()).await {
            Ok(Some(attempt)) => attempt,
            other => panic!("no connection attempt: {:?}", other.is_ok()),
        }
    }

    /// Waits for the next status change and returns it with its reason.
    async fn status(&mut self) -> (SessionStatus, Option<StatusReason>) {
        loop {
            let published = match tokio::time::timeout(WAIT, self.events.recv()).await {
                Ok(Ok(published)) => published,
                other => panic!("no status event: {other:?}"),
            };
            if let EventData::Status { status, reason, .. } = published.envelope.data {
                return (status, reason);
            }
        }
    }

    async fn stored(&self) -> SessionRecord {
        match self
            .store
            .sessions()
            .get_session(self.session.org_id, self.session.id)
            .await
        {
            Ok(Some(record)) => record,
            other => panic!("session not stored: {other:?}"),
        }
    }

    /// Start and get a QR code: the session is `scan_qr_code` on the
    /// returned connection.
    async fn show_qr(&mut self) -> Attempt {
        self.send(Command::Start).await;
        assert_eq!(self.status().await.0, SessionStatus::Starting);
        let first = self.attempt().await;
        self.emit(EngineEvent::QrCode {
            code: "2@qr".into(),
            valid_for: Duration::from_secs(20),
        });
        assert_eq!(self.status().await.0, SessionStatus::ScanQrCode);
        first
    }

    /// Start, get a QR code, pair and connect: the session is `working`.
    async fn link(&mut self) -> Attempt {
        let first = self.show_qr().await;
        self.pair();
        self.emit(EngineEvent::Paired {
            phone: PHONE.into(),
        });
        // The server restarts the stream after pairing.
        drop(first);
        let second = self.attempt().await;
        self.emit(EngineEvent::Connected);
        assert_eq!(self.status().await.0, SessionStatus::Working);
        second
    }
}

#[tokio::test]
async fn links_by_qr_and_persists_status_and_identity() {
    let mut h = harness(fast_policy()).await;
    let _connection = h.link().await;
    let stored = h.stored().await;
    assert_eq!(stored.status, SessionStatus::Working);
    assert_eq!(stored.phone.as_deref(), Some(PHONE));
    assert_eq!(stored.push_name.as_deref(), Some("Sales"));
    assert_eq!(h.live.borrow().qr, None, "no QR code once linked");
}

#[tokio::test]
async fn shows_the_rotating_qr_code_and_publishes_it() {
    let mut h = harness(fast_policy()).await;
    h.send(Command::Start).await;
    let _attempt = h.attempt().await;
    for code in ["2@first", "2@second"] {
        h.emit(EngineEvent::QrCode {
            code: code.into(),
            valid_for: Duration::from_secs(20),
        });
        loop {
            let published = match tokio::time::timeout(WAIT, h.events.recv()).await {
                Ok(Ok(published)) => published,
                other => panic!("no event: {other:?}"),
            };
            if let EventData::Qr { code: shown, .. } = &published.envelope.data {
                assert_eq!(shown, code);
                break;
            }
        }
        assert_eq!(
            h.live.borrow().qr.as_ref().map(|q| q.code.as_str()),
            Some(code)
        );
    }
}

#[tokio::test]
async fn exhausted_qr_codes_start_a_new_round_at_once() {
    let mut h = harness(fast_policy()).await;
    h.send(Command::Start).await;
    let first = h.attempt().await;
    h.emit(EngineEvent::QrCode {
        code: "2@qr".into(),
        valid_for: Duration::from_secs(20),
    });
    h.emit(EngineEvent::QrCodesExhausted);
    drop(first);
    let _second = h.attempt().await;
    h.emit(EngineEvent::QrCode {
        code: "2@next".into(),
        valid_for: Duration::from_secs(20),
    });
    // Everything published until the new code shows: the round change is
    // not a connection failure, so the status never went back to starting.
    let mut statuses = Vec::new();
    loop {
        let published = match tokio::time::timeout(WAIT, h.events.recv()).await {
            Ok(Ok(published)) => published,
            other => panic!("no event: {other:?}"),
        };
        match &published.envelope.data {
            EventData::Status { status, .. } => statuses.push(*status),
            EventData::Qr { code, .. } if code == "2@next" => break,
            _ => {}
        }
    }
    assert_eq!(
        statuses,
        [SessionStatus::Starting, SessionStatus::ScanQrCode]
    );
}

#[tokio::test]
async fn a_dropped_connection_reconnects_at_once() {
    let mut h = harness(fast_policy()).await;
    let connection = h.link().await;
    drop(connection);
    assert_eq!(
        h.status().await,
        (SessionStatus::Starting, Some(StatusReason::ConnectionLost))
    );
    let _again = h.attempt().await;
    h.emit(EngineEvent::Connected);
    assert_eq!(h.status().await, (SessionStatus::Working, None));
}

/// A store whose status writes fail while `failing` is set, counting the
/// refusals; everything else goes to the real store.
struct FlakyStatuses {
    inner: Arc<dyn Store>,
    failing: AtomicBool,
    refused: watch::Sender<usize>,
}

impl Store for FlakyStatuses {
    fn orgs(&self) -> &dyn OrgStore {
        self.inner.orgs()
    }
    fn sessions(&self) -> &dyn SessionStore {
        self
    }
    fn users(&self) -> &dyn UserStore {
        self.inner.users()
    }
    fn events(&self) -> &dyn EventStore {
        self.inner.events()
    }
    fn messages(&self) -> &dyn MessageStore {
        self.inner.messages()
    }
    fn chats(&self) -> &dyn crate::store::ChatStore {
        self.inner.chats()
    }
    fn contacts(&self) -> &dyn crate::store::ContactStore {
        self.inner.contacts()
    }
    fn webhooks(&self) -> &dyn WebhookStore {
        self.inner.webhooks()
    }
    fn keys(&self) -> &dyn KeyStore {
        self.inner.keys()
    }
    fn groups(&self) -> &dyn crate::store::GroupStore {
        self.inner.groups()
    }
    fn presence(&self) -> &dyn crate::store::PresenceStore {
        self.inner.presence()
    }
    fn writer_ended(&self) -> futures::future::BoxFuture<'static, Arc<str>> {
        self.inner.writer_ended()
    }
    fn panic_writer(&self) -> futures::future::BoxFuture<'static, ()> {
        self.inner.panic_writer()
    }
}

#[async_trait]
impl SessionStore for FlakyStatuses {
    async fn insert_session(&self, new: NewSession) -> Result<SessionRecord, StoreError> {
        self.inner.sessions().insert_session(new).await
    }
    async fn get_session(
        &self,
        org: OrgId,
        id: SessionId,
    ) -> Result<Option<SessionRecord>, StoreError> {
        self.inner.sessions().get_session(org, id).await
    }
    async fn list_sessions(
        &self,
        org: OrgId,
        query: &SessionQuery,
    ) -> Result<SessionPage, StoreError> {
        self.inner.sessions().list_sessions(org, query).await
    }
    async fn update_session(
        &self,
        org: OrgId,
        id: SessionId,
        changes: &SessionChanges,
    ) -> Result<Option<SessionRecord>, StoreError> {
        self.inner.sessions().update_session(org, id, changes).await
    }
    async fn delete_session(&self, org: OrgId, id: SessionId) -> Result<bool, StoreError> {
        self.inner.sessions().delete_session(org, id).await
    }
    async fn all_sessions(&self) -> Result<Vec<SessionRecord>, StoreError> {
        self.inner.sessions().all_sessions().await
    }
    async fn count_by_status(&self) -> Result<Vec<(SessionStatus, u64)>, StoreError> {
        self.inner.sessions().count_by_status().await
    }
    async fn set_status(
        &self,
        id: SessionId,
        status: SessionStatus,
        reason: Option<StatusReason>,
        event: &mut Envelope,
    ) -> Result<(), StoreError> {
        self.inner
            .sessions()
            .set_status(id, status, reason, event)
            .await
    }
    async fn write_status(&self, change: StatusChange) -> Result<StatusChange, StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            self.refused.send_modify(|n| *n += 1);
            return Err(StoreError::Corrupt("pool timed out".into()));
        }
        self.inner.sessions().write_status(change).await
    }
    async fn set_identity(
        &self,
        id: SessionId,
        phone: Option<&str>,
        push_name: Option<&str>,
    ) -> Result<(), StoreError> {
        self.inner
            .sessions()
            .set_identity(id, phone, push_name)
            .await
    }
}

/// A dropped connection whose `starting` could not be saved (a pool
/// timeout in a reconnect storm): the session must not give up with its
/// row still saying `working` and nothing watching it (the 5,000-session
/// drop-all left one session so for good). It keeps trying, and once the
/// store takes the write it shows `starting`, reconnects and works again.
#[tokio::test]
async fn a_lost_connection_whose_status_cannot_be_saved_is_retried_not_abandoned() {
    let (refused, mut refusals) = watch::channel(0usize);
    let flaky: Arc<std::sync::OnceLock<Arc<FlakyStatuses>>> = Arc::default();
    let keep = Arc::clone(&flaky);
    let mut h = harness_on(fast_policy(), move |inner| {
        let store = Arc::new(FlakyStatuses {
            inner,
            failing: AtomicBool::new(false),
            refused,
        });
        let _ = keep.set(Arc::clone(&store));
        store
    })
    .await;
    let Some(flaky) = flaky.get().cloned() else {
        panic!("the flaky store was not made");
    };
    let connection = h.link().await;

    flaky.failing.store(true, Ordering::SeqCst);
    drop(connection);
    // The end and at least one retry of `starting` were refused.
    let refused = tokio::time::timeout(WAIT, refusals.wait_for(|n| *n >= 2)).await;
    assert!(matches!(refused, Ok(Ok(_))), "no refused writes");
    assert_eq!(h.stored().await.status, SessionStatus::Working);
    assert!(h.working.borrow().is_none(), "a dead link is not offered");

    flaky.failing.store(false, Ordering::SeqCst);
    assert_eq!(
        h.status().await,
        (SessionStatus::Starting, Some(StatusReason::ConnectionLost))
    );
    let _again = h.attempt().await;
    h.emit(EngineEvent::Connected);
    assert_eq!(h.status().await.0, SessionStatus::Working);
    assert_eq!(h.stored().await.status, SessionStatus::Working);
}

#[tokio::test]
async fn the_live_connection_is_offered_only_while_working() {
    let mut h = harness(fast_policy()).await;
    assert!(h.working.borrow().is_none(), "nothing to send through yet");
    let connection = h.link().await;
    assert!(
        h.working.borrow().is_some(),
        "working: senders get the link"
    );
    drop(connection);
    assert_eq!(h.status().await.0, SessionStatus::Starting);
    assert!(
        h.working.borrow().is_none(),
        "reconnecting: senders must wait"
    );
    let _again = h.attempt().await;
    h.emit(EngineEvent::Connected);
    assert_eq!(h.status().await.0, SessionStatus::Working);
    assert!(h.working.borrow().is_some());
}

#[tokio::test]
async fn every_published_event_is_in_the_event_log_in_order() {
    let mut h = harness(fast_policy()).await;
    let _connection = h.link().await;
    let logged = match h
        .store
        .events()
        .events_after(h.session.org_id, None, 100)
        .await
    {
        Ok(logged) => logged,
        Err(e) => panic!("event log: {e:?}"),
    };
    // `link` saw each of these published; each was logged first.
    let shown: Vec<String> = logged
        .iter()
        .map(|e| match &e.data {
            EventData::Status { status, .. } => status.to_string(),
            other => other.event_type().as_str().to_string(),
        })
        .collect();
    assert_eq!(
        shown,
        ["starting", "scan_qr_code", "session.qr", "working"],
        "the log holds what was published, in order"
    );
    let ids: Vec<_> = logged.iter().map(|e| e.id).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "ids sort in publication order");
}

/// The real client reports pairing from its own task, so the stream
/// restart that follows can end the connection before `Paired` arrives.
/// That restart is still no failure; the next connection waits for the
/// report (the client marks a pending restart just before it, and would cut
/// a connection opened earlier); and the next, real, drop is not taken for
/// another planned restart.
#[tokio::test]
async fn the_restart_after_pairing_is_no_failure_even_before_paired_arrives() {
    let mut h = harness(fast_policy()).await;
    let first = h.show_qr().await;
    h.pair();
    drop(first);
    h.emit(EngineEvent::Paired {
        phone: PHONE.into(),
    });
    let second = h.attempt().await;
    assert!(
        second.after_paired,
        "reconnected before the client reported pairing"
    );
    h.emit(EngineEvent::Connected);
    assert_eq!(
        h.status().await,
        (SessionStatus::Working, None),
        "straight from scan_qr_code to working"
    );
    drop(second);
    assert_eq!(
        h.status().await,
        (SessionStatus::Starting, Some(StatusReason::ConnectionLost))
    );
}

#[tokio::test]
async fn gives_up_after_the_retry_budget() {
    let mut h = harness(SupervisorPolicy {
        retry: RetryPolicy {
            base: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            budget: Duration::from_millis(300),
        },
        ..fast_policy()
    })
    .await;
    h.send(Command::Start).await;
    assert_eq!(h.status().await.0, SessionStatus::Starting);
    // Every attempt fails straight away.
    let (_, idle) = mpsc::unbounded_channel();
    let mut attempts = std::mem::replace(&mut h.attempts, idle);
    let failing = tokio::spawn(async move {
        while let Some(attempt) = attempts.recv().await {
            drop(attempt);
        }
    });
    let (status, reason) = loop {
        let published = match tokio::time::timeout(WAIT, h.events.recv()).await {
            Ok(Ok(published)) => published,
            other => panic!("no event: {other:?}"),
        };
        if let EventData::Status { status, reason, .. } = published.envelope.data {
            break (status, reason);
        }
    };
    assert_eq!(
        (status, reason),
        (SessionStatus::Failed, Some(StatusReason::ConnectionFailed))
    );
    failing.abort();
}

#[tokio::test]
async fn fails_when_nobody_links_in_time() {
    let mut h = harness(SupervisorPolicy {
        link_timeout: Duration::from_millis(200),
        ..fast_policy()
    })
    .await;
    h.send(Command::Start).await;
    let _attempt = h.attempt().await;
    h.emit(EngineEvent::QrCode {
        code: "2@qr".into(),
        valid_for: Duration::from_secs(20),
    });
    assert_eq!(h.status().await.0, SessionStatus::Starting);
    assert_eq!(h.status().await.0, SessionStatus::ScanQrCode);
    assert_eq!(
        h.status().await,
        (SessionStatus::Failed, Some(StatusReason::LinkTimeout))
    );
    assert_eq!(h.live.borrow().qr, None);
    // `start` always tries again.
    h.send(Command::Start).await;
    assert_eq!(h.status().await.0, SessionStatus::Starting);
}

#[tokio::test]
async fn a_logout_from_the_phone_wipes_the_keys() {
    let mut h = harness(fast_policy()).await;
    let _connection = h.link().await;
    h.emit(EngineEvent::LoggedOut);
    assert_eq!(
        h.status().await,
        (
            SessionStatus::LoggedOut,
            Some(StatusReason::LoggedOutFromPhone)
        )
    );
    assert_eq!(h.engine.wipes.load(Ordering::SeqCst), 1);
    let stored = h.stored().await;
    assert_eq!(stored.phone, None);
    assert_eq!(stored.status, SessionStatus::LoggedOut);
}

#[tokio::test]
async fn a_temporary_ban_fails_the_session() {
    let mut h = harness(fast_policy()).await;
    let _connection = h.link().await;
    h.emit(EngineEvent::TemporarilyBanned {
        expires_in: Duration::from_secs(3600),
    });
    assert_eq!(
        h.status().await,
        (SessionStatus::Failed, Some(StatusReason::TemporarilyBanned))
    );
}

#[tokio::test]
async fn a_replaced_connection_is_not_made_again_until_started() {
    let mut h = harness(fast_policy()).await;
    let connection = h.link().await;
    // As whatsapp-rust reports it: the event, then the end.
    h.emit(EngineEvent::Replaced);
    drop(connection);
    assert_eq!(
        h.status().await,
        (SessionStatus::Failed, Some(StatusReason::Replaced))
    );
    assert!(
        h.attempts.try_recv().is_err(),
        "reconnected after being replaced"
    );
    h.send(Command::Start).await;
    assert_eq!(h.status().await, (SessionStatus::Starting, None));
    let _again = h.attempt().await;
    h.emit(EngineEvent::Connected);
    assert_eq!(h.status().await, (SessionStatus::Working, None));
}

#[tokio::test]
async fn stop_and_logout_through_commands() {
    let mut h = harness(fast_policy()).await;
    let _connection = h.link().await;
    h.send(Command::Stop).await;
    assert_eq!(
        h.status().await,
        (SessionStatus::Stopped, Some(StatusReason::StopRequested))
    );
    // A stopped, linked session connects just long enough to unlink.
    let (reply, unlinked) = oneshot::channel();
    if h.commands.send(Command::Logout(reply)).await.is_err() {
        panic!("supervisor gone");
    }
    let _connection = h.attempt().await;
    h.emit(EngineEvent::Connected);
    let unlinked = tokio::time::timeout(WAIT, unlinked).await;
    assert!(matches!(unlinked, Ok(Ok(Ok(())))), "{unlinked:?}");
    assert_eq!(
        h.status().await,
        (
            SessionStatus::LoggedOut,
            Some(StatusReason::LogoutRequested)
        )
    );
    assert_eq!(h.engine.logouts.load(Ordering::SeqCst), 1);
    assert_eq!(h.engine.wipes.load(Ordering::SeqCst), 1);
    assert_eq!(h.send(Command::Logout).await, Err(CommandError::NotLinked));
}

/// Keys that could not be deleted must not be recorded as a logout: the
/// session would later try the revoked device instead of a QR code.
#[tokio::test]
async fn a_logout_whose_keys_cannot_be_wiped_is_refused_and_changes_nothing() {
    let mut h = harness(fast_policy()).await;
    let _connection = h.link().await;
    h.send(Command::Stop).await;
    h.engine.wipe_fails.store(true, Ordering::SeqCst);
    let (reply, unlinked) = oneshot::channel();
    if h.commands.send(Command::Logout(reply)).await.is_err() {
        panic!("supervisor gone");
    }
    let _connection = h.attempt().await;
    h.emit(EngineEvent::Connected);
    let unlinked = tokio::time::timeout(WAIT, unlinked).await;
    assert!(
        matches!(unlinked, Ok(Ok(Err(CommandError::NotSaved)))),
        "{unlinked:?}"
    );
    let stored = h.stored().await;
    assert_eq!(stored.status, SessionStatus::Stopped);
    assert_eq!(stored.phone.as_deref(), Some(PHONE));

    // Once the store works again, the logout goes through.
    h.engine.wipe_fails.store(false, Ordering::SeqCst);
    let (reply, unlinked) = oneshot::channel();
    if h.commands.send(Command::Logout(reply)).await.is_err() {
        panic!("supervisor gone");
    }
    let _connection = h.attempt().await;
    h.emit(EngineEvent::Connected);
    let unlinked = tokio::time::timeout(WAIT, unlinked).await;
    assert!(matches!(unlinked, Ok(Ok(Ok(())))), "{unlinked:?}");
    assert_eq!(h.stored().await.status, SessionStatus::LoggedOut);
    assert_eq!(h.engine.wipes.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn pairing_codes_only_while_linking() {
    let mut h = harness(fast_policy()).await;
    let phone = Phone::try_from(PHONE).unwrap_or_else(|e| panic!("{e}"));
    let refused = h
        .send(|reply| Command::PairingCode {
            phone: phone.clone(),
            reply,
        })
        .await;
    assert_eq!(
        refused,
        Err(CommandError::NotLinking(SessionStatus::Stopped))
    );

    h.send(Command::Start).await;
    let _attempt = h.attempt().await;
    h.emit(EngineEvent::QrCode {
        code: "2@qr".into(),
        valid_for: Duration::from_secs(20),
    });
    assert_eq!(h.status().await.0, SessionStatus::Starting);
    assert_eq!(h.status().await.0, SessionStatus::ScanQrCode);
    let code = h
        .send(|reply| Command::PairingCode { phone, reply })
        .await
        .map(|c| c.code);
    assert_eq!(code.as_deref(), Ok("ABCD-1234"));
}

#[tokio::test]
async fn shutdown_keeps_the_status_so_the_session_resumes() {
    let mut h = harness(fast_policy()).await;
    let _connection = h.link().await;
    h.cancel.cancel();
    h.commands.closed().await;
    assert_eq!(h.stored().await.status, SessionStatus::Working);
}

#[test]
fn pairing_codes_are_shown_in_two_groups() {
    assert_eq!(format_pairing_code("ABCD1234"), "ABCD-1234");
    assert_eq!(format_pairing_code("ABCD-1234"), "ABCD-1234");
    assert_eq!(format_pairing_code("ABC"), "ABC");
}

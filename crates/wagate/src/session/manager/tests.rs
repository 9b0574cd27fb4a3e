//! The manager over a buggy engine: what a panic in a session's task
//! leaves behind.

use std::collections::HashSet;

use async_trait::async_trait;
use futures::future::BoxFuture;

use super::*;
use crate::events::EventData;
use crate::hub::{Filter, HubLimits, Subscription};
use crate::session::SupervisorPolicy;
use crate::session::backoff::RetryPolicy;
use crate::session::engine::{Delivery, EngineError, EngineEvent, Identity, InboundSink, Link};
use crate::session::liveness::LivenessPolicy;
use crate::store::SqliteStore;

/// Opens a link that connects forever, except for the sessions it was
/// told to break: there, opening and wiping panic (a bug in the
/// session's task).
#[derive(Default)]
struct BuggyEngine {
    broken: Mutex<HashSet<SessionId>>,
}

struct Idle;

#[async_trait]
impl Engine for BuggyEngine {
    async fn open(
        &self,
        session: SessionId,
        _events: mpsc::UnboundedSender<EngineEvent>,
        _deliveries: mpsc::UnboundedSender<Delivery>,
        _inbound: Arc<dyn InboundSink>,
    ) -> Result<Arc<dyn Link>, EngineError> {
        self.panic_if_broken(session);
        Ok(Arc::new(Idle))
    }

    async fn wipe(&self, session: SessionId) -> Result<(), StoreError> {
        self.panic_if_broken(session);
        Ok(())
    }
}

#[async_trait]
impl Link for Idle {
    fn connect(&self) -> BoxFuture<'static, ()> {
        Box::pin(std::future::pending())
    }
    async fn request_pairing_code(&self, _phone: &Phone) -> Result<String, EngineError> {
        Err(EngineError::PairingCode("not here".into()))
    }
    fn identity(&self) -> Identity {
        Identity::default()
    }
    async fn logout(&self) {}
    async fn disconnect(&self) {}
    fn messenger(&self) -> Option<Arc<dyn Messenger>> {
        None
    }
}

/// A manager over an in-memory store and a [`BuggyEngine`], with a
/// subscription to its organization's events.
struct Setup {
    org: OrgId,
    engine: Arc<BuggyEngine>,
    manager: SessionManager,
    events: Subscription,
}

async fn setup() -> Setup {
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::connect("sqlite::memory:")
            .await
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let org = store
        .orgs()
        .create_org("acme")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .id;
    let engine = Arc::new(BuggyEngine::default());
    let hub = EventHub::new(HubLimits {
        client_buffer: 64,
        max_clients_per_org: 4,
    });
    let events = hub
        .subscribe(org, Filter::default())
        .unwrap_or_else(|e| panic!("{e:?}"));
    let manager = SessionManager::new(
        Arc::clone(&store),
        Arc::clone(&engine) as Arc<dyn Engine>,
        hub,
        SupervisorPolicy {
            link_timeout: Duration::from_secs(300),
            retry: RetryPolicy::with_budget(Duration::from_secs(300)),
            liveness: LivenessPolicy::default(),
        },
        OutboxPolicy::default(),
        CancellationToken::new(),
    );
    Setup {
        org,
        engine,
        manager,
        events,
    }
}

impl Setup {
    async fn session(&self) -> Result<SessionRecord, ManagerError> {
        self.manager
            .create(
                self.org,
                None,
                SessionPace::default(),
                Default::default(),
                false,
            )
            .await
    }

    /// The first `session.status` event of `session` that `wanted` picks.
    async fn status_event<T>(
        &mut self,
        session: SessionId,
        wanted: impl Fn(SessionStatus, SessionStatus, Option<StatusReason>) -> Option<T>,
    ) -> Option<T> {
        let events = &mut self.events;
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let event = events.recv().await.ok()?;
                if event.envelope.session_id == session
                    && let EventData::Status {
                        status,
                        previous,
                        reason,
                    } = event.envelope.data
                    && let Some(found) = wanted(previous, status, reason)
                {
                    return Some(found);
                }
            }
        })
        .await
        .ok()
        .flatten()
    }
}

impl BuggyEngine {
    fn panic_if_broken(&self, session: SessionId) {
        let broken = self
            .broken
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&session);
        assert!(!broken, "a bug in session {session}");
    }

    fn break_session(&self, id: SessionId, broken: bool) {
        let mut set = self.broken.lock().unwrap_or_else(PoisonError::into_inner);
        if broken {
            set.insert(id);
        } else {
            set.remove(&id);
        }
    }
}

#[tokio::test]
async fn a_panic_in_one_session_fails_it_and_leaves_the_others_running() -> Result<(), ManagerError>
{
    let mut setup = setup().await;
    let (org, engine, manager) = (setup.org, Arc::clone(&setup.engine), setup.manager.clone());
    let healthy = setup.session().await?;
    let buggy = setup.session().await?;
    engine.break_session(buggy.id, true);
    manager.start(org, healthy.id).await?;
    // The start is accepted; the panic comes when the supervisor opens.
    manager.start(org, buggy.id).await.ok();

    let failed = setup
        .status_event(buggy.id, |_, status, reason| {
            (status == SessionStatus::Failed).then_some(reason)
        })
        .await;
    assert_eq!(failed, Some(Some(StatusReason::InternalError)));
    assert_eq!(
        manager.get(org, buggy.id).await?.status_reason,
        Some(StatusReason::InternalError)
    );
    // The other session's supervisor still answers, and so does a fresh
    // one for the failed session.
    assert_eq!(
        manager.stop(org, healthy.id).await?.status,
        SessionStatus::Stopped
    );
    engine.break_session(buggy.id, false);
    assert_ne!(
        manager.start(org, buggy.id).await?.status,
        SessionStatus::Failed
    );
    Ok(())
}

/// A panic in a stopped session's task has no connection to fail, and
/// the transition table has no move from `stopped` to `failed`: the
/// status stays, nothing is written, and a fresh supervisor answers.
#[tokio::test]
async fn a_panic_in_a_stopped_session_keeps_its_status() -> Result<(), ManagerError> {
    let mut setup = setup().await;
    let (org, engine, manager) = (setup.org, Arc::clone(&setup.engine), setup.manager.clone());
    let session = setup.session().await?;
    assert_eq!(session.status, SessionStatus::Stopped);
    engine.break_session(session.id, true);
    // The supervisor panics wiping the keys; the reply never comes.
    assert!(matches!(
        manager.delete(org, session.id).await,
        Err(ManagerError::Command(CommandError::ShuttingDown))
    ));
    engine.break_session(session.id, false);
    // The dead supervisor's queue is closed until the panic is handled
    // and a fresh one takes its place.
    let started = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match manager.start(org, session.id).await {
                Err(ManagerError::Command(CommandError::ShuttingDown)) => {
                    tokio::task::yield_now().await;
                }
                other => return other,
            }
        }
    })
    .await;
    assert!(matches!(started, Ok(Ok(_))), "{started:?}");
    // The first change recorded after the panic is the start, from
    // `stopped`: no `failed` came before it.
    let first = setup
        .status_event(session.id, |previous, status, _| Some((previous, status)))
        .await;
    assert_eq!(
        first,
        Some((SessionStatus::Stopped, SessionStatus::Starting))
    );
    Ok(())
}

/// Links that connect forever and report when they are disconnected.
struct Disconnects {
    opened: mpsc::UnboundedSender<SessionId>,
    closed: mpsc::UnboundedSender<(SessionId, tokio::time::Instant)>,
}

struct Reporting {
    session: SessionId,
    closed: mpsc::UnboundedSender<(SessionId, tokio::time::Instant)>,
}

#[async_trait]
impl Engine for Disconnects {
    async fn open(
        &self,
        session: SessionId,
        _events: mpsc::UnboundedSender<EngineEvent>,
        _deliveries: mpsc::UnboundedSender<Delivery>,
        _inbound: Arc<dyn InboundSink>,
    ) -> Result<Arc<dyn Link>, EngineError> {
        let _ = self.opened.send(session);
        Ok(Arc::new(Reporting {
            session,
            closed: self.closed.clone(),
        }))
    }

    async fn wipe(&self, _session: SessionId) -> Result<(), StoreError> {
        Ok(())
    }
}

#[async_trait]
impl Link for Reporting {
    fn connect(&self) -> BoxFuture<'static, ()> {
        Box::pin(std::future::pending())
    }
    async fn request_pairing_code(&self, _phone: &Phone) -> Result<String, EngineError> {
        Err(EngineError::PairingCode("not here".into()))
    }
    fn identity(&self) -> Identity {
        Identity::default()
    }
    async fn logout(&self) {}
    async fn disconnect(&self) {
        let _ = self
            .closed
            .send((self.session, tokio::time::Instant::now()));
    }
    fn messenger(&self) -> Option<Arc<dyn Messenger>> {
        None
    }
}

/// A database that hands `sessions` to the first take, answers the first
/// renewal, and then never answers again (cut off). Records when each
/// renewal was sent.
struct CutOff {
    sessions: Mutex<Vec<SessionId>>,
    renewals: Mutex<Vec<tokio::time::Instant>>,
}

#[async_trait]
impl crate::store::LeaseStore for CutOff {
    async fn take_free(
        &self,
        _node: &str,
        _lease: Duration,
        _limit: u32,
    ) -> Result<Vec<Held>, StoreError> {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(sessions
            .drain(..)
            .map(|session| Held { session, epoch: 1 })
            .collect())
    }

    async fn take(
        &self,
        _node: &str,
        _session: SessionId,
        _lease: Duration,
    ) -> Result<Option<Held>, StoreError> {
        Ok(None)
    }

    async fn renew(
        &self,
        _node: &str,
        _lease: Duration,
        held: &[Held],
    ) -> Result<Vec<Held>, StoreError> {
        let first = {
            let mut renewals = self.renewals.lock().unwrap_or_else(PoisonError::into_inner);
            renewals.push(tokio::time::Instant::now());
            renewals.len() == 1
        };
        if first {
            Ok(held.to_vec())
        } else {
            std::future::pending().await
        }
    }

    async fn release(&self, _node: &str, _held: Held) -> Result<bool, StoreError> {
        Ok(true)
    }

    fn forget(&self, _session: SessionId) {}

    async fn lease(
        &self,
        _session: SessionId,
    ) -> Result<Option<crate::store::leases::LeaseRecord>, StoreError> {
        Ok(None)
    }

    async fn census(
        &self,
        _node: &str,
        _lease: Duration,
        _capacity: Option<u32>,
    ) -> Result<crate::store::leases::Census, StoreError> {
        Ok(crate::store::leases::Census::default())
    }
}

/// A node whose database stops answering its lease renewals disconnects
/// every session it runs from WhatsApp before the leases it last renewed
/// can expire (the database stamped them after the renewal was sent, so
/// not before `sent + lease`), writing nothing: each session stays
/// `starting`, for its next owner to resume.
///
/// The clock is paused (and advanced by Tokio when everything waits) once
/// the sessions run, for the keeper's part: the store's pool times out
/// under a paused clock.
#[tokio::test]
async fn a_node_that_cannot_renew_disconnects_its_sessions_before_the_lease_expires()
-> Result<(), ManagerError> {
    use crate::session::leases::{LeaseKeeper, LeasePolicy};

    let store: Arc<dyn Store> = Arc::new(SqliteStore::connect("sqlite::memory:").await?);
    let org = store.orgs().create_org("acme").await?.id;
    let (opened, mut opens) = mpsc::unbounded_channel();
    let (closed, mut closes) = mpsc::unbounded_channel();
    let hub = EventHub::new(HubLimits {
        client_buffer: 64,
        max_clients_per_org: 4,
    });
    let manager = SessionManager::new(
        Arc::clone(&store),
        Arc::new(Disconnects { opened, closed }),
        hub,
        SupervisorPolicy {
            link_timeout: Duration::from_secs(300),
            retry: RetryPolicy::with_budget(Duration::from_secs(300)),
            liveness: LivenessPolicy::default(),
        },
        OutboxPolicy::default(),
        CancellationToken::new(),
    );
    let mut ids = Vec::new();
    for _ in 0..2 {
        let record = manager
            .create(org, None, SessionPace::default(), Default::default(), true)
            .await?;
        ids.push(record.id);
    }
    for _ in 0..2 {
        let open = tokio::time::timeout(Duration::from_secs(60), opens.recv()).await;
        assert!(
            matches!(open, Ok(Some(_))),
            "a session's link was not opened"
        );
    }

    tokio::time::pause();
    let lease = Duration::from_secs(15);
    let leases = Arc::new(CutOff {
        sessions: Mutex::new(ids.clone()),
        renewals: Mutex::default(),
    });
    let cancel = CancellationToken::new();
    let keeper = LeaseKeeper::new(
        Arc::clone(&leases) as Arc<dyn crate::store::LeaseStore>,
        Arc::new(manager.clone()),
        LeasePolicy {
            node: "a".into(),
            lease,
            capacity: None,
        },
        cancel.clone(),
    );
    let started = tokio::time::Instant::now();
    let running = tokio::spawn(keeper.run());
    let mut disconnected = Vec::new();
    for _ in 0..2 {
        match tokio::time::timeout(Duration::from_secs(120), closes.recv()).await {
            Ok(Some(closed)) => disconnected.push(closed),
            other => panic!("a session was not disconnected: {other:?}"),
        }
    }
    let renewals = leases
        .renewals
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    // Answered one period in (to the timer's millisecond); the next, a
    // period later, never is.
    let answered = *renewals.first().ok_or(ManagerError::NotFound)?;
    assert!(answered >= started + lease / 3);
    assert!(answered - started < lease / 3 + Duration::from_millis(10));
    assert_eq!(renewals.len(), 2);
    for (session, at) in &disconnected {
        assert!(ids.contains(session));
        assert!(
            *at < answered + lease,
            "disconnected {:?} after the start, the lease may expire {:?} after it",
            *at - started,
            answered + lease - started
        );
    }
    tokio::time::resume();
    // Stopped without a word to the store: still `starting`.
    for id in &ids {
        assert_eq!(manager.get(org, *id).await?.status, SessionStatus::Starting);
    }
    cancel.cancel();
    assert!(
        tokio::time::timeout(Duration::from_secs(60), running)
            .await
            .is_ok()
    );
    Ok(())
}

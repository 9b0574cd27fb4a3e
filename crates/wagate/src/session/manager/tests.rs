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
            .create(self.org, None, SessionPace::default(), false)
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

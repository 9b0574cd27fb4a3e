//! The lease keeper: when several nodes serve one PostgreSQL database,
//! each runs one, which decides which sessions this node runs
//! (`store/leases.rs` has the leases themselves).
//!
//! Every period (a third of the lease time) it
//! 1. renews every lease the node holds, in one statement: what was not
//!    renewed was lost (another node took it), and its session is stopped
//!    here at once;
//! 2. takes unowned or expired sessions, up to the node's capacity, and
//!    has the manager run them.
//!
//! **Self-fencing.** The database stamps a renewed lease's expiry after
//! the renewal was sent, so `sent + lease` always falls before it; the
//! keeper's deadline is `sent + lease - margin` of the last renewal that
//! succeeded, on the node's monotonic clock (node clocks are never
//! compared with the database's). When it has not renewed by then (the
//! database unreachable, a renewal hanging), it disconnects every session
//! from WhatsApp (no status written: the session stays meant to run, and
//! its next owner resumes it), forgets the leases (the store refuses
//! every later write for them), and goes on trying to take sessions,
//! which gives it new epochs once the database answers. A node that was
//! paused past its deadline fences itself the moment it runs again; what
//! it might write before that is refused by the store, by epoch.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::{Instant, sleep_until, timeout_at};
use tokio_util::sync::CancellationToken;

use crate::domain::SessionId;
use crate::store::leases::Census;
use crate::store::{Held, LeaseStore};

/// How this node holds leases.
#[derive(Debug, Clone)]
pub(crate) struct LeasePolicy {
    /// The owner written on the leases (unique among the nodes).
    pub(crate) node: String,
    /// How long a lease lasts unrenewed.
    pub(crate) lease: Duration,
    /// Sessions this node owns at most.
    pub(crate) capacity: Option<u32>,
}

impl LeasePolicy {
    /// Renewals come this often: two retries fit before the deadline.
    pub(crate) fn period(&self) -> Duration {
        self.lease / 3
    }

    /// How long before the lease could expire the node stops its sessions:
    /// a fifth of the lease, time for them to disconnect.
    pub(crate) fn margin(&self) -> Duration {
        self.lease / 5
    }

    /// The deadline for leases renewed (or taken) by a statement sent at
    /// `sent`.
    fn deadline(&self, sent: Instant) -> Instant {
        sent + self.lease.saturating_sub(self.margin())
    }
}

/// What the keeper drives: the sessions this node runs (the manager).
#[async_trait]
pub(crate) trait OwnedSessions: Send + Sync + 'static {
    /// This node now owns these sessions: run them (and resume the ones
    /// meant to be connected).
    async fn own(&self, leases: Vec<Held>);
    /// This node no longer owns `session`: disconnect it from WhatsApp,
    /// writing nothing, and return once it is disconnected.
    async fn disown(&self, session: SessionId);

    /// Whether balancing may move `session` now: only one `working`
    /// here. A session being linked would show the user a new QR code
    /// (the one on screen going stale), one connecting would start over;
    /// one not running costs nothing where it is.
    fn movable(&self, _session: SessionId) -> bool {
        true
    }
}

/// One node's lease keeper. Run it as a supervised task; it ends when
/// `cancel` is cancelled, releasing what it holds.
pub(crate) struct LeaseKeeper {
    leases: Arc<dyn LeaseStore>,
    sessions: Arc<dyn OwnedSessions>,
    policy: LeasePolicy,
    cancel: CancellationToken,
    /// What [`KeeperHandle`]s ask between passes; taken by `run`.
    claims: Option<mpsc::Receiver<Claim>>,
    handle: KeeperHandle,
}

/// A request to take one session now (see [`KeeperHandle::claim`]).
struct Claim {
    session: SessionId,
    taken: oneshot::Sender<bool>,
}

/// What the rest of the node asks of its keeper between passes: a
/// session created or started here gets an owner at once instead of at
/// the next pass.
#[derive(Clone)]
pub(crate) struct KeeperHandle {
    claims: mpsc::Sender<Claim>,
    wake: Arc<Notify>,
}

impl KeeperHandle {
    /// Takes `session` for this node if it is free and the node has room;
    /// `true` when this node holds it now (taken or held already).
    pub(crate) async fn claim(&self, session: SessionId) -> bool {
        let (taken, answer) = oneshot::channel();
        if self.claims.send(Claim { session, taken }).await.is_err() {
            return false;
        }
        answer.await.unwrap_or(false)
    }

    /// Runs a pass that takes free sessions now (another node created
    /// some it could not take).
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }
}

impl LeaseKeeper {
    pub(crate) fn new(
        leases: Arc<dyn LeaseStore>,
        sessions: Arc<dyn OwnedSessions>,
        policy: LeasePolicy,
        cancel: CancellationToken,
    ) -> Self {
        let (claims_tx, claims) = mpsc::channel(64);
        Self {
            leases,
            sessions,
            policy,
            cancel,
            claims: Some(claims),
            handle: KeeperHandle {
                claims: claims_tx,
                wake: Arc::default(),
            },
        }
    }

    /// How the rest of the node reaches this keeper while it runs.
    pub(crate) fn handle(&self) -> KeeperHandle {
        self.handle.clone()
    }

    pub(crate) async fn run(mut self) {
        let Some(mut claims) = self.claims.take() else {
            return;
        };
        let mut held: Vec<Held> = Vec::new();
        // Before this instant every lease in `held` is still ours.
        let mut deadline: Option<Instant> = None;
        'passes: loop {
            if !held.is_empty() {
                let sent = Instant::now();
                let renewing = self
                    .leases
                    .renew(&self.policy.node, self.policy.lease, &held);
                let until = deadline.unwrap_or(sent + self.policy.period());
                let outcome = tokio::select! {
                    () = self.cancel.cancelled() => break 'passes,
                    outcome = timeout_at(until, renewing) => outcome,
                };
                match outcome {
                    Ok(Ok(renewed)) => {
                        let kept: HashSet<Held> = renewed.iter().copied().collect();
                        let lost: Vec<Held> =
                            held.iter().filter(|h| !kept.contains(h)).copied().collect();
                        if !lost.is_empty() {
                            tracing::warn!(
                                node = %self.policy.node,
                                lost = lost.len(),
                                "leases lost to other nodes; stopping their sessions here"
                            );
                            self.disown(&lost).await;
                        }
                        held = renewed;
                        deadline = (!held.is_empty()).then(|| self.policy.deadline(sent));
                    }
                    Ok(Err(error)) => {
                        tracing::warn!(node = %self.policy.node, %error, "could not renew the leases");
                    }
                    Err(_) => self.fence(&mut held, &mut deadline).await,
                }
            }
            // Balancing: hand a few over, or take no more than a share.
            let cap = match self.balance(&mut held, deadline).await {
                Balance::Released => Some(0),
                Balance::TakeUpTo(cap) => cap,
            };
            self.take_up_to(&mut held, &mut deadline, cap).await;
            let next = Instant::now() + self.policy.period();
            // Between passes: claims and wake-ups are served at once.
            loop {
                let wake = deadline.map_or(next, |d| d.min(next));
                tokio::select! {
                    () = self.cancel.cancelled() => break 'passes,
                    () = sleep_until(wake) => break,
                    () = self.handle.wake.notified() => {
                        self.take(&mut held, &mut deadline).await;
                    }
                    Some(claim) = claims.recv() => {
                        let taken = self.claim(claim.session, &mut held, &mut deadline).await;
                        let _ = claim.taken.send(taken);
                    }
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                self.fence(&mut held, &mut deadline).await;
            }
        }
        // Shutting down: each session stopped, then its lease released for
        // another node to take at once.
        for lease in held {
            self.sessions.disown(lease.session).await;
            if let Err(error) = self.leases.release(&self.policy.node, lease).await {
                tracing::warn!(session_id = %lease.session, %error, "could not release the lease; it expires");
            }
        }
    }

    /// Room for this many more sessions.
    fn room(&self, held: &[Held]) -> u32 {
        match self.policy.capacity {
            Some(capacity) => {
                capacity.saturating_sub(u32::try_from(held.len()).unwrap_or(u32::MAX))
            }
            None => u32::MAX,
        }
    }

    /// Takes one session now, if it is free and the node has room.
    async fn claim(
        &self,
        session: SessionId,
        held: &mut Vec<Held>,
        deadline: &mut Option<Instant>,
    ) -> bool {
        if held.iter().any(|h| h.session == session) {
            return true;
        }
        if self.room(held) == 0 {
            return false;
        }
        let sent = Instant::now();
        let until = deadline.map_or(sent + self.policy.period(), |d| {
            d.min(sent + self.policy.period())
        });
        let taking = self
            .leases
            .take(&self.policy.node, session, self.policy.lease);
        match timeout_at(until, taking).await {
            Ok(Ok(Some(taken))) => {
                tracing::info!(node = %self.policy.node, session_id = %session, "took a session");
                held.push(taken);
                let new = self.policy.deadline(sent);
                *deadline = Some(deadline.map_or(new, |d| d.min(new)));
                self.sessions.own(vec![taken]).await;
                true
            }
            Ok(Ok(None)) => false,
            Ok(Err(error)) => {
                tracing::warn!(node = %self.policy.node, %error, "could not take a session");
                false
            }
            Err(_) => false,
        }
    }

    /// Takes free sessions up to the node's capacity and runs them.
    async fn take(&self, held: &mut Vec<Held>, deadline: &mut Option<Instant>) {
        self.take_up_to(held, deadline, None).await;
    }

    /// Counts the live nodes and, when another one has fewer than its
    /// share of the sessions and room for more, hands a few of this
    /// node's over (released, for the others to take), or at least takes
    /// no more than this node's share.
    async fn balance(&self, held: &mut Vec<Held>, deadline: Option<Instant>) -> Balance {
        let until = deadline.map_or(Instant::now() + self.policy.period(), |d| {
            d.min(Instant::now() + self.policy.period())
        });
        let counting =
            self.leases
                .census(&self.policy.node, self.policy.lease, self.policy.capacity);
        let census = match timeout_at(until, counting).await {
            Ok(Ok(census)) => census,
            Ok(Err(error)) => {
                tracing::warn!(node = %self.policy.node, %error, "could not count the nodes");
                return Balance::TakeUpTo(None);
            }
            Err(_) => return Balance::TakeUpTo(None),
        };
        let plan = plan(&self.policy.node, held.len(), &census);
        if plan.release == 0 {
            return Balance::TakeUpTo(plan.take);
        }
        // The newest first, of those that may move.
        let mut leaving = Vec::new();
        for lease in held.iter().rev() {
            if leaving.len() == plan.release {
                break;
            }
            if self.sessions.movable(lease.session) {
                leaving.push(*lease);
            }
        }
        if leaving.is_empty() {
            return Balance::TakeUpTo(plan.take);
        }
        held.retain(|lease| !leaving.contains(lease));
        tracing::info!(node = %self.policy.node, handed_over = leaving.len(), "balancing: handing sessions over");
        for lease in leaving {
            self.sessions.disown(lease.session).await;
            if let Err(error) = self.leases.release(&self.policy.node, lease).await {
                tracing::warn!(session_id = %lease.session, %error, "could not release the lease; it expires");
            }
        }
        Balance::Released
    }

    async fn take_up_to(
        &self,
        held: &mut Vec<Held>,
        deadline: &mut Option<Instant>,
        cap: Option<u32>,
    ) {
        let room = self.room(held).min(cap.unwrap_or(u32::MAX));
        if room == 0 {
            return;
        }
        let sent = Instant::now();
        // Bounded like a renewal: a take that hangs must not keep the
        // keeper from its deadline.
        let until = deadline.map_or(sent + self.policy.period(), |d| {
            d.min(sent + self.policy.period())
        });
        let taking = self
            .leases
            .take_free(&self.policy.node, self.policy.lease, room);
        let taken = tokio::select! {
            () = self.cancel.cancelled() => return,
            taken = timeout_at(until, taking) => taken,
        };
        match taken {
            Ok(Ok(taken)) if !taken.is_empty() => {
                tracing::info!(node = %self.policy.node, taken = taken.len(), "took sessions");
                held.extend(taken.iter().copied());
                let new = self.policy.deadline(sent);
                *deadline = Some(deadline.map_or(new, |d| d.min(new)));
                self.sessions.own(taken).await;
            }
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                tracing::warn!(node = %self.policy.node, %error, "could not take sessions");
            }
            Err(_) => {
                tracing::warn!(node = %self.policy.node, "taking sessions timed out");
            }
        }
    }

    /// Past the deadline without a renewal: every session disconnected
    /// from WhatsApp, every lease forgotten.
    async fn fence(&self, held: &mut Vec<Held>, deadline: &mut Option<Instant>) {
        tracing::error!(
            node = %self.policy.node,
            sessions = held.len(),
            "could not renew the leases before the deadline; disconnecting every session"
        );
        let fenced = std::mem::take(held);
        *deadline = None;
        for lease in &fenced {
            self.leases.forget(lease.session);
        }
        self.disown(&fenced).await;
    }

    async fn disown(&self, leases: &[Held]) {
        futures::future::join_all(leases.iter().map(|l| self.sessions.disown(l.session))).await;
    }
}

/// What a keeper's pass does about balance.
enum Balance {
    /// Handed sessions over: take none back in this pass.
    Released,
    /// Take free sessions up to this many (`None`: up to capacity).
    TakeUpTo(Option<u32>),
}

/// Sessions a node hands over in one pass at most: a few at a time, so
/// the others take them in turn.
const HAND_OVER_STEP: usize = 2;

/// Balancing by count, decided by each node alone from the census.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Plan {
    /// Sessions to hand over now.
    release: usize,
    /// Free sessions to take at most (`None`: up to capacity).
    take: Option<u32>,
}

/// Another live node with fewer than `lo = sessions / nodes` and room for
/// more is starved: then a node above `lo` hands over up to
/// [`HAND_OVER_STEP`] (never going below `lo`), and no node takes past
/// `ceil(sessions / nodes)`. With nobody starved nothing moves: a node
/// never gives a session up for a node that could not take it.
fn plan(me: &str, held: usize, census: &Census) -> Plan {
    let nodes = census.nodes.len().max(1);
    let sessions = census.sessions as usize;
    let lo = sessions / nodes;
    let hi = sessions.div_ceil(nodes);
    let starved = census.nodes.iter().any(|n| {
        n.node != me
            && (n.held as usize) < lo
            && n.capacity.is_none_or(|capacity| n.held < capacity)
    });
    if !starved {
        return Plan {
            release: 0,
            take: None,
        };
    }
    Plan {
        release: held.saturating_sub(lo).min(HAND_OVER_STEP),
        take: Some(u32::try_from(hi.saturating_sub(held)).unwrap_or(u32::MAX)),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::store::StoreError;
    use crate::store::leases::LeaseRecord;

    /// Leases as a fake database: the first take hands out `sessions`;
    /// renewals answer as `renewals` says, in turn (`None`: never answers,
    /// as a database cut off does), then hang. Records when each renewal
    /// was sent.
    struct FakeLeases {
        sessions: Mutex<Vec<SessionId>>,
        renewals: Mutex<Vec<Option<usize>>>,
        renewed_at: Mutex<Vec<Instant>>,
    }

    #[async_trait]
    impl LeaseStore for FakeLeases {
        async fn take_free(
            &self,
            _node: &str,
            _lease: Duration,
            limit: u32,
        ) -> Result<Vec<Held>, StoreError> {
            let mut sessions = self
                .sessions
                .lock()
                .map_err(|_| StoreError::WriterStopped)?;
            let n = sessions.len().min(limit as usize);
            Ok(sessions
                .drain(..n)
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
            let answer = {
                if let Ok(mut at) = self.renewed_at.lock() {
                    at.push(Instant::now());
                }
                let mut renewals = self
                    .renewals
                    .lock()
                    .map_err(|_| StoreError::WriterStopped)?;
                if renewals.is_empty() {
                    None
                } else {
                    renewals.remove(0)
                }
            };
            match answer {
                Some(keep) => Ok(held.iter().take(keep).copied().collect()),
                None => futures::future::pending().await,
            }
        }

        async fn release(&self, _node: &str, _held: Held) -> Result<bool, StoreError> {
            Ok(true)
        }

        fn forget(&self, _session: SessionId) {}

        async fn lease(&self, _session: SessionId) -> Result<Option<LeaseRecord>, StoreError> {
            Ok(None)
        }

        async fn census(
            &self,
            _node: &str,
            _lease: Duration,
            _capacity: Option<u32>,
        ) -> Result<Census, StoreError> {
            Ok(Census::default())
        }
    }

    fn census(sessions: u32, nodes: &[(&str, u32, Option<u32>)]) -> Census {
        Census {
            sessions,
            nodes: nodes
                .iter()
                .map(|(node, held, capacity)| crate::store::leases::NodeLoad {
                    node: (*node).to_string(),
                    held: *held,
                    capacity: *capacity,
                })
                .collect(),
        }
    }

    /// A node joining two that hold everything gets sessions handed over,
    /// a few at a time, until none is starved; a node that could not take
    /// more is not given any.
    #[test]
    fn balancing_hands_over_a_few_at_a_time_to_a_starved_node() {
        let joined = census(30, &[("a", 15, None), ("b", 15, None), ("c", 0, None)]);
        assert_eq!(
            plan("a", 15, &joined),
            Plan {
                release: HAND_OVER_STEP,
                take: Some(0)
            }
        );
        // The newcomer itself is not held back: nobody else is starved.
        assert_eq!(
            plan("c", 0, &joined),
            Plan {
                release: 0,
                take: None
            }
        );
        let balanced = census(30, &[("a", 10, None), ("b", 10, None), ("c", 10, None)]);
        assert_eq!(plan("a", 10, &balanced).release, 0);
        assert_eq!(plan("a", 10, &balanced).take, None);
        // Uneven by one is balanced enough.
        let odd = census(7, &[("a", 3, None), ("b", 2, None), ("c", 2, None)]);
        assert_eq!(plan("a", 3, &odd).release, 0);
        // A node full at its capacity is not starved.
        let full = census(30, &[("a", 25, None), ("c", 5, Some(5))]);
        assert_eq!(plan("a", 25, &full).release, 0);
        // Alone: nothing to balance.
        let alone = census(30, &[("a", 30, None)]);
        assert_eq!(plan("a", 30, &alone).release, 0);
    }

    /// Reports each session owned and disowned, with when.
    struct Recorder {
        events: mpsc::UnboundedSender<(&'static str, SessionId, Instant)>,
    }

    #[async_trait]
    impl OwnedSessions for Recorder {
        async fn own(&self, leases: Vec<Held>) {
            for lease in leases {
                let _ = self.events.send(("own", lease.session, Instant::now()));
            }
        }

        async fn disown(&self, session: SessionId) {
            let _ = self.events.send(("disown", session, Instant::now()));
        }
    }

    type Seen = mpsc::UnboundedReceiver<(&'static str, SessionId, Instant)>;

    fn keeper(
        sessions: Vec<SessionId>,
        renewals: Vec<Option<usize>>,
        cancel: CancellationToken,
    ) -> (LeaseKeeper, Arc<FakeLeases>, Seen) {
        let leases = Arc::new(FakeLeases {
            sessions: Mutex::new(sessions),
            renewals: Mutex::new(renewals),
            renewed_at: Mutex::default(),
        });
        let (events, seen) = mpsc::unbounded_channel();
        let keeper = LeaseKeeper::new(
            Arc::clone(&leases) as Arc<dyn LeaseStore>,
            Arc::new(Recorder { events }),
            LeasePolicy {
                node: "a".into(),
                lease: Duration::from_secs(15),
                capacity: Some(10),
            },
            cancel,
        );
        (keeper, leases, seen)
    }

    async fn next(seen: &mut Seen) -> (&'static str, SessionId, Instant) {
        match tokio::time::timeout(Duration::from_secs(120), seen.recv()).await {
            Ok(Some(event)) => event,
            other => panic!("no event from the keeper: {other:?}"),
        }
    }

    /// A node whose renewals stop being answered (its database cut off)
    /// disconnects its sessions before the leases it last renewed can
    /// expire: by `sent + lease - margin` of the last renewal answered,
    /// which falls before the expiry the database stamped after `sent`.
    #[tokio::test(start_paused = true)]
    async fn a_node_that_cannot_renew_stops_its_sessions_before_the_lease_expires() {
        let (a, b) = (SessionId::new(), SessionId::new());
        let cancel = CancellationToken::new();
        // One renewal answered (both kept), then none.
        let (keeper, leases, mut seen) = keeper(vec![a, b], vec![Some(2)], cancel.clone());
        let started = Instant::now();
        let running = tokio::spawn(keeper.run());
        for _ in 0..2 {
            let (what, _, at) = next(&mut seen).await;
            assert_eq!(what, "own");
            assert_eq!(at, started);
        }
        let mut disowned = Vec::new();
        for _ in 0..2 {
            let (what, session, at) = next(&mut seen).await;
            assert_eq!(what, "disown");
            disowned.push((session, at));
        }
        let renewed_at = leases
            .renewed_at
            .lock()
            .map(|a| a.clone())
            .unwrap_or_default();
        // The first renewal (answered) one period in, the second (never
        // answered) one period later.
        assert_eq!(
            renewed_at,
            vec![
                started + Duration::from_secs(5),
                started + Duration::from_secs(10)
            ]
        );
        let answered = renewed_at[0];
        let lease = Duration::from_secs(15);
        for (session, at) in &disowned {
            assert!([a, b].contains(session));
            assert!(
                *at < answered + lease,
                "stopped at {:?}, the lease expires at the earliest at {:?}",
                *at - started,
                answered + lease - started
            );
            assert_eq!(*at, answered + lease - lease / 5);
        }
        cancel.cancel();
        assert!(
            tokio::time::timeout(Duration::from_secs(60), running)
                .await
                .is_ok()
        );
    }

    /// A renewal that keeps only some leases stops the sessions of the
    /// others at once, and only those.
    #[tokio::test(start_paused = true)]
    async fn a_lost_lease_stops_only_its_session() {
        let (a, b) = (SessionId::new(), SessionId::new());
        let cancel = CancellationToken::new();
        let (keeper, _leases, mut seen) =
            keeper(vec![a, b], vec![Some(1), Some(1), Some(1)], cancel.clone());
        let started = Instant::now();
        let running = tokio::spawn(keeper.run());
        for _ in 0..2 {
            assert_eq!(next(&mut seen).await.0, "own");
        }
        let (what, session, at) = next(&mut seen).await;
        assert_eq!((what, session), ("disown", b));
        assert_eq!(at, started + Duration::from_secs(5));
        cancel.cancel();
        // Shutting down: the one still held is stopped and released.
        let (what, session, _) = next(&mut seen).await;
        assert_eq!((what, session), ("disown", a));
        assert!(
            tokio::time::timeout(Duration::from_secs(60), running)
                .await
                .is_ok()
        );
    }
}

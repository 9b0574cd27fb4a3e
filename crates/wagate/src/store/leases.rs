//! Ownership of sessions by lease, when several gateway processes (nodes)
//! serve one PostgreSQL database (`session_leases`, migration 0022).
//!
//! - A node *takes* a session only when it has no lease row, or its lease
//!   was released or has expired; taking it increments the lease's
//!   `epoch` in the same statement that checks it is free. Expiry is
//!   decided by one clock, the database's (`now()` in the statement):
//!   node clocks are never compared.
//! - A node *renews* every lease it holds in one statement per period;
//!   what the statement did not renew is lost (another node took it).
//! - Every write the owner makes for a session carries the epoch it holds
//!   ([`Holdings`], attached by the store when the write is made), and the
//!   store refuses a write whose epoch is not the lease's current one
//!   ([`SessionMoved`], `StoreError::Moved`): a node that was paused and
//!   wakes up after its sessions moved writes nothing more for them.
//!
//! Only PostgreSQL implements [`LeaseStore`] (`Store::leases` is `None`
//! on SQLite), and a store checks epochs only once a lease was taken
//! through it ([`Holdings::enable`]): the single-process default pays one
//! atomic load per write for it and nothing else.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::domain::SessionId;

/// A lease's fencing token: it grows by one every time the session is
/// taken, by any node.
pub(crate) type Epoch = i64;

/// A lease a node holds: the session and the epoch it took it at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Held {
    pub session: SessionId,
    pub epoch: Epoch,
}

/// A lease row as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    pub session: SessionId,
    /// `None` once released.
    pub node: Option<String>,
    pub epoch: Epoch,
    pub expires_at: DateTime<Utc>,
}

/// A write refused because its session's lease moved on: the epoch it
/// carried is not the current one (another node took the session), or
/// this node holds no lease on it. Not an error to retry: the session
/// must be stopped here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("session {session} moved to another node (its lease is no longer held here): stop it")]
pub struct SessionMoved {
    pub session: SessionId,
}

#[async_trait]
pub trait LeaseStore: Send + Sync {
    /// Takes up to `limit` sessions that have no lease, or whose lease
    /// was released or has expired, for `node`, for `lease` from the
    /// database's `now()`; each taken lease's epoch is one more than it
    /// was. Oldest sessions first. Returns what was taken.
    async fn take_free(
        &self,
        node: &str,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<Held>, StoreError>;

    /// Takes one session, on the same terms as [`take_free`](Self::take_free):
    /// `None` when another node holds an unexpired lease on it.
    async fn take(
        &self,
        node: &str,
        session: SessionId,
        lease: Duration,
    ) -> Result<Option<Held>, StoreError>;

    /// Renews, in one statement, every lease in `held` that `node` still
    /// holds at that epoch, to `lease` from the database's `now()`.
    /// Returns the ones renewed; the rest are lost (and forgotten by the
    /// store: writes for them are refused from now on).
    async fn renew(
        &self,
        node: &str,
        lease: Duration,
        held: &[Held],
    ) -> Result<Vec<Held>, StoreError>;

    /// Gives the lease up (if `node` still holds it at that epoch), for
    /// another node to take at once. `false` when it was not held.
    async fn release(&self, node: &str, held: Held) -> Result<bool, StoreError>;

    /// Forgets a lease without telling the database (a node that fenced
    /// itself): writes for the session are refused from now on.
    fn forget(&self, session: SessionId);

    /// The session's lease row.
    async fn lease(&self, session: SessionId) -> Result<Option<LeaseRecord>, StoreError>;

    /// Renews `node`'s heartbeat (for `lease` from the database's `now()`,
    /// with its `capacity`) and counts what balancing needs: the live
    /// nodes with the unexpired leases each holds, and the sessions.
    async fn census(
        &self,
        node: &str,
        lease: Duration,
        capacity: Option<u32>,
    ) -> Result<Census, StoreError>;
}

/// The nodes whose heartbeat has not expired and the sessions there are.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Census {
    pub nodes: Vec<NodeLoad>,
    pub sessions: u32,
}

/// One live node: what it holds and may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLoad {
    pub node: String,
    pub held: u32,
    pub capacity: Option<u32>,
}

/// The leases of a whole store, as the lease keeper holds them: refused
/// on a store without leases (SQLite).
pub(crate) struct StoreLeases(pub(crate) std::sync::Arc<dyn super::Store>);

impl StoreLeases {
    fn leases(&self) -> Result<&dyn LeaseStore, StoreError> {
        self.0.leases().ok_or(StoreError::NoLeases)
    }
}

#[async_trait]
impl LeaseStore for StoreLeases {
    async fn take_free(
        &self,
        node: &str,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<Held>, StoreError> {
        self.leases()?.take_free(node, lease, limit).await
    }

    async fn take(
        &self,
        node: &str,
        session: SessionId,
        lease: Duration,
    ) -> Result<Option<Held>, StoreError> {
        self.leases()?.take(node, session, lease).await
    }

    async fn renew(
        &self,
        node: &str,
        lease: Duration,
        held: &[Held],
    ) -> Result<Vec<Held>, StoreError> {
        self.leases()?.renew(node, lease, held).await
    }

    async fn release(&self, node: &str, held: Held) -> Result<bool, StoreError> {
        self.leases()?.release(node, held).await
    }

    fn forget(&self, session: SessionId) {
        if let Ok(leases) = self.leases() {
            leases.forget(session);
        }
    }

    async fn lease(&self, session: SessionId) -> Result<Option<LeaseRecord>, StoreError> {
        self.leases()?.lease(session).await
    }

    async fn census(
        &self,
        node: &str,
        lease: Duration,
        capacity: Option<u32>,
    ) -> Result<Census, StoreError> {
        self.leases()?.census(node, lease, capacity).await
    }
}

/// The epochs this process writes under, one per session it holds, kept
/// by the store beside its pool. Disabled (the default) it is never
/// consulted: no lease, no check.
#[derive(Debug, Default)]
pub(crate) struct Holdings {
    enabled: AtomicBool,
    held: Mutex<HashMap<SessionId, Epoch>>,
}

/// What a write for a session must be checked against, attached when the
/// write is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Claim {
    pub(crate) session: SessionId,
    /// `None`: this process holds no lease on the session, so the write is
    /// refused.
    pub(crate) epoch: Option<Epoch>,
}

impl Holdings {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, Epoch>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Turns the checks on, for good: from now on a write for a session
    /// this process does not hold is refused.
    pub(crate) fn enable(&self) {
        self.enabled.store(true, Ordering::Release);
    }

    /// What a write for `session` made now is checked against; `None`
    /// when leases are not in use (nothing to check).
    pub(crate) fn claim(&self, session: SessionId) -> Option<Claim> {
        if !self.enabled.load(Ordering::Acquire) {
            return None;
        }
        Some(Claim {
            session,
            epoch: self.map().get(&session).copied(),
        })
    }

    pub(crate) fn hold(&self, held: Held) {
        self.enable();
        self.map().insert(held.session, held.epoch);
    }

    /// Forgets `session`, if it is still held at `epoch` (or at any epoch).
    pub(crate) fn drop_lease(&self, session: SessionId, epoch: Option<Epoch>) {
        let mut map = self.map();
        if epoch.is_none() || map.get(&session).copied() == epoch {
            map.remove(&session);
        }
    }
}

/// Checks `claims` against the rows `current` read (session → epoch of
/// the leases this node holds, read in the write's transaction): the
/// first claim whose epoch is missing or not the current one refuses the
/// write.
pub(crate) fn check_claims(
    claims: &[Claim],
    current: &HashMap<SessionId, Epoch>,
) -> Result<(), SessionMoved> {
    for claim in claims {
        match claim.epoch {
            Some(epoch) if current.get(&claim.session) == Some(&epoch) => {}
            _ => {
                return Err(SessionMoved {
                    session: claim.session,
                });
            }
        }
    }
    Ok(())
}

/// A lease's length as the milliseconds the SQL adds to `now()`.
pub(crate) fn lease_millis(lease: Duration) -> i64 {
    i64::try_from(lease.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_passes_only_at_the_current_epoch() {
        let (a, b) = (SessionId::new(), SessionId::new());
        let current = HashMap::from([(a, 3), (b, 7)]);
        let ok = [Claim {
            session: a,
            epoch: Some(3),
        }];
        assert_eq!(check_claims(&ok, &current), Ok(()));
        let stale = [
            Claim {
                session: a,
                epoch: Some(3),
            },
            Claim {
                session: b,
                epoch: Some(6),
            },
        ];
        assert_eq!(
            check_claims(&stale, &current),
            Err(SessionMoved { session: b })
        );
        let unheld = [Claim {
            session: SessionId::new(),
            epoch: None,
        }];
        assert!(check_claims(&unheld, &current).is_err());
    }

    #[test]
    fn holdings_claim_nothing_until_enabled() {
        let holdings = Holdings::default();
        let id = SessionId::new();
        assert_eq!(holdings.claim(id), None);
        holdings.hold(Held {
            session: id,
            epoch: 2,
        });
        assert_eq!(
            holdings.claim(id),
            Some(Claim {
                session: id,
                epoch: Some(2)
            })
        );
        holdings.drop_lease(id, Some(1));
        assert_eq!(holdings.claim(id).and_then(|c| c.epoch), Some(2));
        holdings.drop_lease(id, Some(2));
        assert_eq!(holdings.claim(id).and_then(|c| c.epoch), None);
    }
}

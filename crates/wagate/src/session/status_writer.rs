//! Every session's status changes, each with its event.
//!
//! A drop-all (a network outage, WhatsApp restarting) makes every session
//! write `starting` and, moments later, `working`: two write transactions
//! per session, and the store has a single writer (SQLite's one
//! connection, PostgreSQL's writer lock). One at a time, 1,000 sessions
//! took about 10 s to get their two writes through, and the reconnects
//! waited on them. So a change goes through the store's group-commit
//! writer (`SessionStore::write_status`), committed with whatever else
//! is waiting at that moment.
//!
//! The [`StatusWriter`] takes a [`Transition`], which only the transition
//! table gives out: the session layer cannot write a status change that
//! table refuses.

use std::sync::Arc;

use crate::domain::{OrgId, SessionId, StatusReason, Transition};
use crate::events::{Envelope, EventData};
use crate::store::{StatusChange, Store, StoreError};

/// Writes legal status changes. Cheap to clone.
#[derive(Clone)]
pub(crate) struct StatusWriter {
    store: Arc<dyn Store>,
}

impl StatusWriter {
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// Stores the change and the `session.status` event reporting it in
    /// one transaction; returns the change with its event stamped (id,
    /// time) once it is committed, to be published then. Dropping the
    /// future does not take the change back: it may still be committed.
    pub(crate) async fn write(
        &self,
        org: OrgId,
        id: SessionId,
        transition: Transition,
        reason: Option<StatusReason>,
    ) -> Result<StatusChange, StoreError> {
        let change = StatusChange {
            id,
            status: transition.to(),
            reason,
            event: Envelope::new(
                org,
                id,
                EventData::Status {
                    status: transition.to(),
                    previous: transition.from(),
                    reason,
                },
            ),
        };
        self.store.sessions().write_status(change).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Label, SessionStatus};
    use crate::store::{NewSession, SqliteStore};

    /// Changes of many sessions sent at once are all stored, each with its
    /// event, in the order of their event ids, and each waiter gets its own
    /// stamped change back.
    #[tokio::test]
    async fn concurrent_changes_are_all_stored_with_their_events() -> Result<(), StoreError> {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::connect("sqlite::memory:").await?);
        let org = store.orgs().create_org("acme").await?;
        let mut ids = Vec::new();
        for n in 0..20 {
            let id = SessionId::new();
            store
                .sessions()
                .insert_session(NewSession {
                    id,
                    org_id: org.id,
                    label: Label::try_from(format!("s{n}")).ok(),
                    pace: Default::default(),
                    history: Default::default(),
                })
                .await?;
            ids.push(id);
        }
        let writer = StatusWriter::new(Arc::clone(&store));
        let start = SessionStatus::Stopped
            .transition(SessionStatus::Starting)
            .map_err(|illegal| StoreError::Corrupt(illegal.to_string()))?;
        let writes = ids.iter().map(|&id| {
            let writer = writer.clone();
            async move {
                writer
                    .write(org.id, id, start, Some(StatusReason::ConnectionLost))
                    .await
            }
        });
        let written = futures::future::join_all(writes).await;
        let mut stamped = Vec::new();
        for (id, result) in ids.iter().zip(written) {
            let change = result?;
            assert_eq!(change.id, *id);
            assert_eq!(change.event.session_id, *id);
            stamped.push(change.event.id);
        }
        for id in &ids {
            let record = store.sessions().get_session(org.id, *id).await?;
            let record = record.ok_or(StoreError::Corrupt("session gone".into()))?;
            assert_eq!(record.status, SessionStatus::Starting);
            assert_eq!(record.status_reason, Some(StatusReason::ConnectionLost));
        }
        let logged = store.events().events_after(org.id, None, 100).await?;
        let mut logged_ids: Vec<_> = logged.iter().map(|e| e.id).collect();
        assert_eq!(logged_ids.len(), ids.len());
        stamped.sort();
        logged_ids.sort();
        assert_eq!(
            stamped, logged_ids,
            "every waiter got the id that was logged"
        );
        Ok(())
    }
}

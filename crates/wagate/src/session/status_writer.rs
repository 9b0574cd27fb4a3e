//! Every session's status changes, group-committed.
//!
//! A drop-all (a network outage, WhatsApp restarting) makes every session
//! write `starting` and, moments later, `working`: two write transactions
//! per session, and the store has a single writer (SQLite's one
//! connection, PostgreSQL's writer lock). One at a time, 1,000 sessions
//! took about 10 s to get their two writes through, and the reconnects
//! waited on them. The [`StatusWriter`] commits the changes waiting at
//! that moment in one transaction, each with its event, as the
//! [`InboundWriter`](super::inbox::InboundWriter) does for incoming
//! messages: no timer, while one group commits the next one gathers.
//!
//! It takes a [`Transition`], which only the transition table gives out:
//! the session layer cannot write a status change that table refuses.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::domain::{OrgId, SessionId, StatusReason, Transition};
use crate::events::{Envelope, EventData};
use crate::group_commit::next_group;
use crate::store::{StatusChange, Store, StoreError};

/// Most changes in one transaction: bounds what a failed group has to redo
/// one by one.
const MAX_GROUP: usize = 1024;

type Reply = oneshot::Sender<Result<StatusChange, StoreError>>;

struct Pending {
    change: StatusChange,
    reply: Reply,
}

/// Writes status changes with group commit. Cheap to clone; the writer task
/// ends when the last clone is gone.
#[derive(Clone)]
pub(crate) struct StatusWriter {
    queue: mpsc::UnboundedSender<Pending>,
}

impl StatusWriter {
    /// Starts the writer task (on the current Tokio runtime).
    pub(crate) fn spawn(store: Arc<dyn Store>) -> Self {
        let (queue, pending) = mpsc::unbounded_channel();
        tokio::spawn(write_groups(store, pending));
        Self { queue }
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
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Pending { change, reply })
            .map_err(|_| StoreError::WriterStopped)?;
        answer.await.map_err(|_| StoreError::WriterStopped)?
    }
}

async fn write_groups(store: Arc<dyn Store>, mut queue: mpsc::UnboundedReceiver<Pending>) {
    while let Some(group) = next_group(&mut queue, MAX_GROUP, |_| 1).await {
        commit(store.as_ref(), group).await;
    }
}

async fn commit(store: &dyn Store, group: Vec<Pending>) {
    let sessions = store.sessions();
    let (mut changes, replies): (Vec<StatusChange>, Vec<Reply>) =
        group.into_iter().map(|p| (p.change, p.reply)).unzip();
    // Kept unstamped for the retry below, should the group fail.
    let originals = (changes.len() > 1).then(|| changes.clone());
    match sessions.set_statuses(&mut changes).await {
        Ok(()) => {
            for (change, reply) in changes.into_iter().zip(replies) {
                let _ = reply.send(Ok(change));
            }
        }
        Err(error) => {
            let Some(originals) = originals else {
                if let Some(reply) = replies.into_iter().next() {
                    let _ = reply.send(Err(error));
                }
                return;
            };
            // One change's failure must not fail the others: each is tried
            // again alone, so only it is reported as not saved.
            tracing::warn!(%error, changes = originals.len(), "status group commit failed; committing one by one");
            for (change, reply) in originals.into_iter().zip(replies) {
                let mut one = [change];
                let result = sessions.set_statuses(&mut one).await;
                let [change] = one;
                let _ = reply.send(result.map(|()| change));
            }
        }
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
                })
                .await?;
            ids.push(id);
        }
        let writer = StatusWriter::spawn(Arc::clone(&store));
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

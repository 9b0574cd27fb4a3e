//! The store's one group-commit writer: every small write that comes in
//! bursts from many sessions at once (status changes, incoming batches,
//! the key rows every message makes, history-sync chunks, delivered
//! webhook runs, accepted
//! messages, their attempts, acks and receipts) is a
//! [`Write`] request to one [`GroupWriter`] task, which commits the
//! requests waiting at that moment in one transaction, kind by kind (rows
//! of one kind merged into multi-row statements where the kind allows),
//! and answers each caller after the commit. On a failed group each
//! request is committed again alone (`group_commit.rs`).
//!
//! One writer rather than one per kind: the store has one writer anyway
//! (SQLite's one connection, PostgreSQL's writer lock), and one
//! transaction for a status change, a dozen incoming batches and their
//! key rows costs one commit instead of four. Its end is watched: the
//! application stops if it dies (`Store::writer_ended`).

use std::sync::Arc;

use chrono::{DateTime, Utc};

use sqlx::Pool;
use tokio::sync::Mutex;

use super::Db;
use super::fences::check_fences;
use super::history::record_history_in;
use super::keys::{KeyWrite, write_key_group};
use super::messages::{
    accept_many_in, advance_many_in, record_attempt_in, record_incoming_in, set_wire_in,
};
use super::sessions::write_status;
use super::tx::begin_write_on;
use super::webhooks::{WebhookTargets, record_delivered_in};
use crate::domain::{Failure, MessageId, MessageStatus, SessionId};
use crate::events::Envelope;
use crate::group_commit::{Commit, GroupWriter, WriteError};
use crate::store::leases::Claim;
use crate::store::{
    Accepted, AttemptResult, DueDelivery, IdempotencyClaim, NewHistory, NewIncoming, NewOutgoing,
    StatusChange, StoreError, StoredHistory,
};

/// One request to the writer.
pub(in crate::store) enum Write {
    /// A session's status change and its event.
    Status(StatusChange),
    /// A session's incoming batch, with an event per new message.
    Incoming(Vec<NewIncoming>),
    /// Key rows of one session (Signal sessions, the durability hook's
    /// pending-inbound rows).
    Keys(KeyWrite),
    /// A history-sync chunk, with its event.
    History(Box<NewHistory>),
    /// A delivered webhook run.
    Delivered(Vec<(DueDelivery, AttemptResult)>),
    /// An outgoing message accepted (with its idempotency claim).
    Accept(Box<(NewOutgoing, Option<IdempotencyClaim>)>),
    /// An ack or receipt: outgoing messages of a session, by WhatsApp id,
    /// moved forward.
    Advance(Box<Advance>),
    /// A message's wire form, built once before its first attempt.
    Wire { id: MessageId, wire: Vec<u8> },
    /// An attempt made, and when the next one is due.
    Attempt {
        id: MessageId,
        attempts: u32,
        next: DateTime<Utc>,
    },
    /// Makes the writer panic, as a bug would.
    #[cfg(test)]
    Panic,
}

/// A [`Write`] with the lease claims of the sessions it writes for
/// (`store/leases.rs`): none unless this process holds leases. A group
/// checks all its requests' claims at once, in its transaction, and fails
/// as a whole if one is stale; retried one by one, only the stale request
/// fails, with `StoreError::Moved`.
pub(in crate::store) struct Request {
    write: Write,
    claims: Vec<Claim>,
}

impl Request {
    /// A request with no claims, for tests that commit a group of their
    /// own making.
    #[cfg(test)]
    pub(in crate::store) fn unclaimed(write: Write) -> Self {
        Self {
            write,
            claims: Vec::new(),
        }
    }
}

/// What a committed [`Write`] gives back, variant for variant.
pub(in crate::store) enum Written {
    /// The change with its event stamped (id, time).
    Status(StatusChange),
    /// The events of the messages that were new.
    Incoming(Vec<Envelope>),
    Accepted(Accepted),
    /// The `history.sync` event.
    History(Box<StoredHistory>),
    /// The events of the messages that moved.
    Advanced(Vec<Envelope>),
    Done,
}

/// What an ack or receipt changes.
pub(in crate::store) struct Advance {
    pub(in crate::store) session: SessionId,
    pub(in crate::store) wa_ids: Vec<String>,
    pub(in crate::store) status: MessageStatus,
    pub(in crate::store) failure: Option<Failure>,
}

/// The writer's handle, as the aggregates hold it.
pub(in crate::store) type StoreWriter = GroupWriter<Committer>;

/// What the writer task holds: how to begin a write transaction.
pub(in crate::store) struct Committer {
    pool: Pool<Db>,
    writers: Arc<Mutex<()>>,
}

/// Starts the store's writer on `pool`, taking its turn at `writers` like
/// every write transaction.
pub(in crate::store) fn spawn(pool: Pool<Db>, writers: Arc<Mutex<()>>) -> StoreWriter {
    GroupWriter::spawn(Committer { pool, writers })
}

/// The writer's commit on `store`'s pool, for tests that commit a group
/// of their own making.
#[cfg(test)]
pub(in crate::store) fn committer(store: &super::Backend) -> Committer {
    Committer {
        pool: store.pool.clone(),
        writers: Arc::clone(&store.writers),
    }
}

/// Hands `write` to the writer and waits for its commit.
pub(in crate::store) async fn write(
    writer: &StoreWriter,
    write: Write,
) -> Result<Written, StoreError> {
    write_claimed(writer, write, Vec::new()).await
}

/// [`write`], refused (`StoreError::Moved`) unless every one of `claims`
/// holds at commit.
pub(in crate::store) async fn write_claimed(
    writer: &StoreWriter,
    write: Write,
    claims: Vec<Claim>,
) -> Result<Written, StoreError> {
    let request = Request { write, claims };
    writer.write(request).await.map_err(|error| match error {
        WriteError::Stopped => StoreError::WriterStopped,
        WriteError::Failed(error) => error,
    })
}

/// What a request answered with a [`Written`] of the wrong kind means: a
/// bug in this module, reported rather than panicking a caller.
pub(in crate::store) fn mismatch() -> StoreError {
    StoreError::Corrupt("the writer answered with another kind of result".into())
}

impl Commit for Committer {
    type Request = Request;
    type Done = Written;
    type Error = StoreError;

    const MAX_WEIGHT: usize = 1024;

    fn weight(request: &Request) -> usize {
        match &request.write {
            Write::Status(_) => 1,
            Write::Incoming(batch) => batch.len().max(1),
            Write::Keys(keys) => keys.rows().max(1),
            Write::Delivered(run) => run.len().max(1),
            Write::History(history) => history.message_count().max(1),
            Write::Advance(advance) => advance.wa_ids.len().max(1),
            Write::Accept(_) | Write::Wire { .. } | Write::Attempt { .. } => 1,
            #[cfg(test)]
            Write::Panic => 1,
        }
    }

    async fn commit(&self, group: &[Request]) -> Result<Vec<Written>, StoreError> {
        let claims: Vec<Claim> = group
            .iter()
            .flat_map(|r| r.claims.iter().copied())
            .collect();
        let group: Vec<&Write> = group.iter().map(|r| &r.write).collect();
        let mut keys: Vec<&KeyWrite> = Vec::new();
        let mut accepts = Vec::new();
        let mut advances: Vec<&Advance> = Vec::new();
        let mut incoming: Vec<Vec<NewIncoming>> = Vec::new();
        let mut delivered: Vec<(DueDelivery, AttemptResult)> = Vec::new();
        for write in &group {
            match *write {
                Write::Keys(write) => keys.push(write),
                Write::Incoming(batch) => incoming.push(batch.clone()),
                Write::Delivered(run) => delivered.extend(run.iter().cloned()),
                Write::Accept(accept) => accepts.push(accept.as_ref()),
                Write::Advance(advance) => advances.push(advance.as_ref()),
                Write::Status(_)
                | Write::Wire { .. }
                | Write::Attempt { .. }
                | Write::History(_) => {}
                #[cfg(test)]
                Write::Panic => panic!("injected writer panic"),
            }
        }
        let mut tx = begin_write_on(&self.pool, &self.writers).await?;
        // Fencing first, for every session of the group at once (nothing
        // to do without leases).
        check_fences(&mut tx, &claims).await?;
        // Keys first: nothing else in a group depends on them, and their
        // rows, merged, are one statement per kind.
        if !keys.is_empty() {
            write_key_group(&mut tx, &keys).await?;
        }
        let mut incoming = if incoming.is_empty() {
            Vec::new()
        } else {
            record_incoming_in(&mut tx, incoming, &mut WebhookTargets::default()).await?
        }
        .into_iter();
        if !delivered.is_empty() {
            record_delivered_in(&mut tx, &delivered).await?;
        }
        // Accepts before the reports: a message's ack can only come after
        // its accept has committed, so no report in this group names one.
        let mut accepted = if accepts.is_empty() {
            Vec::new()
        } else {
            accept_many_in(&mut tx, &accepts).await?
        }
        .into_iter();
        let mut advanced = if advances.is_empty() {
            Vec::new()
        } else {
            advance_many_in(&mut tx, &advances).await?
        }
        .into_iter();
        let mut done = Vec::with_capacity(group.len());
        for write in &group {
            done.push(match *write {
                Write::Status(change) => {
                    let mut change = change.clone();
                    write_status(
                        &mut tx,
                        change.id,
                        change.status,
                        change.reason,
                        &mut change.event,
                    )
                    .await?;
                    Written::Status(change)
                }
                Write::Incoming(_) => Written::Incoming(incoming.next().unwrap_or_default()),
                Write::History(history) => {
                    Written::History(Box::new(record_history_in(&mut tx, history).await?))
                }
                Write::Accept(_) => match accepted.next() {
                    Some(accepted) => Written::Accepted(accepted),
                    None => return Err(mismatch()),
                },
                Write::Advance(_) => Written::Advanced(advanced.next().unwrap_or_default()),
                Write::Wire { id, wire } => {
                    set_wire_in(&mut tx, *id, wire).await?;
                    Written::Done
                }
                Write::Attempt { id, attempts, next } => {
                    record_attempt_in(&mut tx, *id, *attempts, *next).await?;
                    Written::Done
                }
                Write::Keys(_) | Write::Delivered(_) => Written::Done,
                #[cfg(test)]
                Write::Panic => Written::Done,
            });
        }
        tx.commit().await?;
        Ok(done)
    }
}

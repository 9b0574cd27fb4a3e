//! The [`KeyGroup`]: the key writes every incoming message makes, of all
//! sessions, committed together.

use std::collections::BTreeMap;
use std::sync::Arc;

use sqlx::{Pool, QueryBuilder};
use tokio::sync::{mpsc, oneshot};

use super::upserts::{PENDING_HEAD, PENDING_TAIL, SESSIONS};
use super::{CHUNK, Db, DbConnection};
use crate::group_commit::next_group;

/// Most rows one group commit of key writes takes (see [`KeyGroup`]).
const MAX_GROUP_ROWS: usize = 1024;

/// The key writes that every incoming message makes, of every session,
/// committed together: the Signal session record, the durability hook's
/// pending-inbound row and its removal once the hook has run. One at a
/// time, each was a commit of its own on the store's single writer (three
/// per message); here the writes waiting at one moment share one
/// transaction, their rows merged into one statement per kind. No timer:
/// while a group commits the next one gathers. A caller still waits for
/// the commit of its write (the library's guarantees rest on it), holding
/// its session's wipe fence until then. If a group fails, each write in
/// it is tried again alone, so one bad write fails only its own caller.
#[derive(Clone, Debug)]
pub(in crate::store) struct KeyGroup {
    queue: mpsc::UnboundedSender<Grouped>,
}

type GroupReply = oneshot::Sender<Result<(), sqlx::Error>>;

struct Grouped {
    write: KeyWrite,
    reply: GroupReply,
}

/// The rows of one grouped write, owned (they wait in the queue).
pub(super) enum KeyWrite {
    /// `key_sessions` upserts: `(address, record)`.
    Sessions {
        session: Arc<str>,
        rows: Vec<(String, Vec<u8>)>,
    },
    /// `key_pending_inbound` upserts: `(chat, sender, id, message, inserted_at)`.
    PendingPut {
        session: Arc<str>,
        rows: Vec<(String, String, String, Vec<u8>, i64)>,
    },
    /// `key_pending_inbound` deletes: `(chat, sender, id)`.
    PendingDelete {
        session: Arc<str>,
        keys: Vec<(String, String, String)>,
    },
}

impl KeyWrite {
    pub(super) fn rows(&self) -> usize {
        match self {
            Self::Sessions { rows, .. } => rows.len(),
            Self::PendingPut { rows, .. } => rows.len(),
            Self::PendingDelete { keys, .. } => keys.len(),
        }
    }
}

impl KeyGroup {
    /// Starts the group writer on `pool` (the store's writer), on the
    /// current Tokio runtime; it ends when the last clone is gone.
    pub(in crate::store) fn spawn(pool: Pool<Db>) -> Self {
        let (queue, pending) = mpsc::unbounded_channel();
        tokio::spawn(write_key_groups(pool, pending));
        Self { queue }
    }

    pub(super) async fn write(&self, write: KeyWrite) -> Result<(), sqlx::Error> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Grouped { write, reply })
            .map_err(|_| sqlx::Error::PoolClosed)?;
        answer.await.map_err(|_| sqlx::Error::PoolClosed)?
    }
}

async fn write_key_groups(pool: Pool<Db>, mut queue: mpsc::UnboundedReceiver<Grouped>) {
    while let Some(group) = next_group(&mut queue, MAX_GROUP_ROWS, |g| g.write.rows()).await {
        let writes: Vec<&KeyWrite> = group.iter().map(|g| &g.write).collect();
        match commit_key_group(&pool, &writes).await {
            Ok(()) => {
                for grouped in group {
                    // A caller that went away needs no answer.
                    let _ = grouped.reply.send(Ok(()));
                }
            }
            Err(error) if group.len() > 1 => {
                tracing::warn!(%error, writes = group.len(), "key group commit failed; writing one by one");
                for grouped in group {
                    let result = commit_key_group(&pool, &[&grouped.write]).await;
                    let _ = grouped.reply.send(result);
                }
            }
            Err(error) => {
                if let Some(grouped) = group.into_iter().next() {
                    let _ = grouped.reply.send(Err(error));
                }
            }
        }
    }
}

/// Writes `writes` in one transaction (one statement alone, when that is
/// all they take), with the effect of writing them one after another:
/// for each key only the last write counts.
async fn commit_key_group(pool: &Pool<Db>, writes: &[&KeyWrite]) -> Result<(), sqlx::Error> {
    // Keyed in order, so the rows of the statements below are in key order
    // (two writers on PostgreSQL then lock common rows in the same order).
    let mut sessions: BTreeMap<(&str, &str), &[u8]> = BTreeMap::new();
    let mut pending: BTreeMap<PendingKey<'_>, Option<PendingValue<'_>>> = BTreeMap::new();
    for write in writes {
        match write {
            KeyWrite::Sessions { session, rows } => {
                for (address, record) in rows {
                    sessions.insert((session.as_ref(), address.as_str()), record.as_slice());
                }
            }
            KeyWrite::PendingPut { session, rows } => {
                for (chat, sender, id, message, at) in rows {
                    pending.insert(
                        (
                            session.as_ref(),
                            chat.as_str(),
                            sender.as_str(),
                            id.as_str(),
                        ),
                        Some((message.as_slice(), *at)),
                    );
                }
            }
            KeyWrite::PendingDelete { session, keys } => {
                for (chat, sender, id) in keys {
                    pending.insert(
                        (
                            session.as_ref(),
                            chat.as_str(),
                            sender.as_str(),
                            id.as_str(),
                        ),
                        None,
                    );
                }
            }
        }
    }
    let sessions: Vec<_> = sessions.into_iter().collect();
    let puts: Vec<_> = pending
        .iter()
        .filter_map(|(key, row)| row.map(|row| (*key, row)))
        .collect();
    let deletes: Vec<_> = pending
        .iter()
        .filter(|(_, row)| row.is_none())
        .map(|(key, _)| *key)
        .collect();
    let statements =
        sessions.len().div_ceil(CHUNK) + puts.len().div_ceil(CHUNK) + deletes.len().div_ceil(CHUNK);
    if statements <= 1 {
        let mut conn = pool.acquire().await?;
        return group_statements(&mut conn, &sessions, &puts, &deletes).await;
    }
    let mut tx = pool.begin().await?;
    group_statements(&mut tx, &sessions, &puts, &deletes).await?;
    tx.commit().await
}

type SessionRow<'a> = ((&'a str, &'a str), &'a [u8]);
/// `(session, chat, sender, id)`.
type PendingKey<'a> = (&'a str, &'a str, &'a str, &'a str);
/// `(message, inserted_at)`.
type PendingValue<'a> = (&'a [u8], i64);

async fn group_statements(
    conn: &mut DbConnection,
    sessions: &[SessionRow<'_>],
    puts: &[(PendingKey<'_>, PendingValue<'_>)],
    deletes: &[PendingKey<'_>],
) -> Result<(), sqlx::Error> {
    for chunk in sessions.chunks(CHUNK) {
        let mut query = QueryBuilder::<Db>::new(SESSIONS.head);
        query.push_values(chunk, |mut values, ((session, address), record)| {
            values.push_bind((*session).to_owned());
            values.push_bind((*address).to_owned());
            values.push_bind(record.to_vec());
        });
        query.push(SESSIONS.tail);
        query.build().execute(&mut *conn).await?;
    }
    for chunk in puts.chunks(CHUNK) {
        let mut query = QueryBuilder::<Db>::new(PENDING_HEAD);
        query.push_values(
            chunk,
            |mut values, ((session, chat, sender, id), (message, at))| {
                values.push_bind((*session).to_owned());
                values.push_bind((*chat).to_owned());
                values.push_bind((*sender).to_owned());
                values.push_bind((*id).to_owned());
                values.push_bind(message.to_vec());
                values.push_bind(*at);
            },
        );
        query.push(PENDING_TAIL);
        query.build().execute(&mut *conn).await?;
    }
    for chunk in deletes.chunks(CHUNK) {
        let mut query = QueryBuilder::<Db>::new("DELETE FROM key_pending_inbound WHERE ");
        for (i, (session, chat, sender, id)) in chunk.iter().enumerate() {
            if i > 0 {
                query.push(" OR ");
            }
            query.push("(session_id = ");
            query.push_bind((*session).to_owned());
            query.push(" AND chat = ");
            query.push_bind((*chat).to_owned());
            query.push(" AND sender = ");
            query.push_bind((*sender).to_owned());
            query.push(" AND id = ");
            query.push_bind((*id).to_owned());
            query.push(")");
        }
        query.build().execute(&mut *conn).await?;
    }
    Ok(())
}

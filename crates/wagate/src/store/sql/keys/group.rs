//! The key writes every incoming message makes (the Signal session
//! record, the durability hook's pending-inbound row and its removal once
//! the hook has run), of every session, committed together by the store's
//! group-commit writer (`sql/writer.rs`): one at a time, each was a commit
//! of its own on the store's single writer (three per message); in a
//! group their rows are merged into one statement per kind. A caller
//! still waits for the commit of its write (the library's guarantees rest
//! on it), holding its session's wipe fence until then.

use std::collections::BTreeMap;
use std::sync::Arc;

use sqlx::QueryBuilder;

use super::upserts::{PENDING_HEAD, PENDING_TAIL, SESSIONS};
use super::{CHUNK, Db, DbConnection};

/// The rows of one grouped write, owned (they wait in the queue).
pub(in crate::store) enum KeyWrite {
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
    pub(in crate::store) fn rows(&self) -> usize {
        match self {
            Self::Sessions { rows, .. } => rows.len(),
            Self::PendingPut { rows, .. } => rows.len(),
            Self::PendingDelete { keys, .. } => keys.len(),
        }
    }
}

/// Writes `writes` in the caller's transaction (the store's group-commit
/// writer's), with the effect of writing them one after another: for
/// each key only the last write counts.
pub(in crate::store) async fn write_key_group(
    conn: &mut DbConnection,
    writes: &[&KeyWrite],
) -> Result<(), sqlx::Error> {
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
    group_statements(conn, &sessions, &puts, &deletes).await
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

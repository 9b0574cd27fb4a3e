//! whatsapp-rust's storage [`Backend`] on the gateway's pool: every
//! session's keys in the `key_*` tables (migration 0016), each row under
//! its session's id. All the key SQL is here and in `keys/`, compiled once
//! per backend like the aggregates (`super` is the backend: `Backend`,
//! `Db`, `DbConnection`): this file has the [`KeyStore`] (a session's
//! backend, wipe, import, counts), the session's [`Keys`] with its fenced
//! writer, and the helpers every kind shares; `keys/` has one file per
//! library trait the backend implements (`signal.rs`, `app_state.rs`,
//! `protocol.rs`, `msg_secrets.rs`, `device.rs`), each kind's batch
//! upsert (`upserts.rs`, shared by the traits and the import) and the
//! grouped writes every message makes (`group.rs`, committed by the
//! store's group-commit writer, `sql/writer.rs`).
//!
//! Writes go to the writer (`pool`), plain reads to `reader` (SQLite's
//! read-only connections; PostgreSQL's same pool). Writes are one
//! statement, or one short transaction for a batch; none waits on anything
//! but the database while it holds the connection, so SQLite's single
//! writer is never kept across the network. No method calls another while
//! holding a connection, so a write here never waits on a second
//! connection it would itself keep busy. They need no writer lock: they
//! log no events, and each session's rows are its own.
//!
//! The SQL is what both databases accept: `$n` placeholders, `ON CONFLICT
//! … DO UPDATE` upserts (with `CASE` where a merge is needed, not SQLite's
//! scalar `MAX`), `DELETE … RETURNING`, `CAST(1 AS BIGINT)` where a row's
//! existence is read (PostgreSQL's bare `1` is a 32-bit integer), and
//! batches whose rows are distinct by key (PostgreSQL refuses a statement
//! that updates one row twice). PostgreSQL has no unsigned integers:
//! `u32` and `u64` are bound as `i64` (checked) and read back checked.

use std::collections::HashSet;
use std::hash::Hash;
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::query_builder::Separated;
use sqlx::{Pool, QueryBuilder, Row};
use tokio::sync::RwLockReadGuard;
use wacore::store::error::{Result as KeyResult, StoreError as KeyError};
use wacore::store::traits::Backend;

use super::fences::check_fences;
use super::writer::{self, StoreWriter, Write};
use super::{Backend as GatewayStore, Db, DbConnection};
use crate::domain::SessionId;
use crate::store::keys::Fence;
use crate::store::leases::{Claim, Holdings};
use crate::store::{KeyCounts, KeySet, KeyStore, StoreError};
use crate::store::{LidLookup, LidPn};

/// Runs `$body` (a future using the connection `$conn`) for `$rows` rows:
/// on one connection, in a transaction when the rows take more than one
/// statement, so a batch is stored whole or not at all. A macro rather
/// than a function taking a closure: the closure's future would borrow
/// both the connection and the caller's rows, which a closure type cannot
/// say.
macro_rules! write_rows {
    ($keys:expr, $rows:expr, |$conn:ident| $body:expr) => {{
        let rows: usize = $rows;
        if rows == 0 {
            Ok(())
        } else {
            let open = $keys.writer.open_unchecked().await?;
            if let Some(claim) = open.claim {
                // Leases in use: the epoch is checked in the write's own
                // transaction (`sql/fences.rs`).
                let mut tx = open.pool.begin().await.map_err(db)?;
                super::check_fences(&mut tx, &[claim])
                    .await
                    .map_err(super::moved)?;
                let $conn: &mut DbConnection = &mut tx;
                $body.await.map_err(db)?;
                tx.commit().await.map_err(db)
            } else if rows <= CHUNK {
                let mut conn = open.pool.acquire().await.map_err(db)?;
                let $conn: &mut DbConnection = &mut conn;
                $body.await.map_err(db)
            } else {
                let mut tx = open.pool.begin().await.map_err(db)?;
                let $conn: &mut DbConnection = &mut tx;
                $body.await.map_err(db)?;
                tx.commit().await.map_err(db)
            }
        }
    }};
}

// After the macro: its scope is what follows it, these files included.
#[path = "keys/app_state.rs"]
mod app_state;
#[path = "keys/device.rs"]
mod device;
#[path = "keys/group.rs"]
mod group;
#[path = "keys/msg_secrets.rs"]
mod msg_secrets;
#[path = "keys/protocol.rs"]
mod protocol;
#[path = "keys/signal.rs"]
mod signal;
#[path = "keys/upserts.rs"]
mod upserts;

pub(in crate::store) use group::{KeyWrite, write_key_group};
use upserts::{
    GROUP_METADATA, SENDER_KEYS, SESSIONS, merge_secrets, put_base_keys, put_device,
    put_device_lists, put_identities, put_lid_mappings, put_msg_secrets, put_mutation_macs,
    put_pending_inbound, put_prekeys, put_records, put_sender_key_devices, put_sent_messages,
    put_signed_prekeys, put_sync_keys, put_tc_tokens, put_version,
};

/// Rows per statement: at most 7 parameters a row, far under SQLite's
/// 32,766 and PostgreSQL's 65,535 parameters.
const CHUNK: usize = 200;

#[async_trait]
impl KeyStore for GatewayStore {
    fn for_session(&self, session: SessionId) -> Arc<dyn Backend> {
        Arc::new(Keys {
            writer: Writer {
                pool: self.pool.clone(),
                fence: self.key_fences.current(session),
                group: self.writer.clone(),
                holdings: Arc::clone(&self.holdings),
                session,
            },
            reader: self.reader.clone(),
            session: session.to_string().into(),
        })
    }

    async fn delete_keys(&self, session: SessionId) -> Result<(), StoreError> {
        self.key_fences.retire(session).await;
        let mut tx = self.pool.begin().await?;
        // A logout in flight on a node that lost the session must not wipe
        // the keys its new owner is running on.
        check_fences(&mut tx, &self.claims([session])).await?;
        let session = session.to_string();
        for statement in DELETE_ALL {
            sqlx::query(*statement)
                .bind(&session)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn import_keys(&self, session: SessionId, keys: &KeySet) -> Result<(), StoreError> {
        let session = session.to_string();
        let mut tx = self.pool.begin().await?;
        for statement in DELETE_ALL {
            sqlx::query(*statement)
                .bind(&session)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(device) = &keys.device {
            let json = serde_json::to_string(device)
                .map_err(|e| StoreError::Corrupt(format!("device: {e}")))?;
            put_device(&mut tx, &session, &json).await?;
        }
        put_identities(&mut tx, &session, &keys.identities).await?;
        put_records(&mut tx, &SESSIONS, &session, &keys.sessions).await?;
        put_prekeys(&mut tx, &session, &keys.prekeys).await?;
        put_signed_prekeys(&mut tx, &session, &keys.signed_prekeys).await?;
        put_records(&mut tx, &SENDER_KEYS, &session, &keys.sender_keys).await?;
        put_sync_keys(&mut tx, &session, &keys.sync_keys).await?;
        for (name, state) in &keys.versions {
            put_version(&mut tx, &session, name, state).await?;
        }
        put_mutation_macs(
            &mut tx,
            &session,
            &keys
                .mutation_macs
                .iter()
                .map(|m| {
                    (
                        m.name.as_str(),
                        m.index_mac.as_slice(),
                        m.version,
                        m.value_mac.as_slice(),
                    )
                })
                .collect::<Vec<_>>(),
        )
        .await?;
        put_sender_key_devices(
            &mut tx,
            &session,
            &keys
                .sender_key_devices
                .iter()
                .map(|(group, device, has)| (group.as_str(), device.as_str(), *has))
                .collect::<Vec<_>>(),
        )
        .await?;
        put_lid_mappings(&mut tx, &session, &keys.lid_mappings).await?;
        put_base_keys(&mut tx, &session, &keys.base_keys).await?;
        put_device_lists(&mut tx, &session, &keys.device_lists)
            .await
            .map_err(|e| StoreError::Corrupt(format!("device list: {e}")))?;
        put_records(&mut tx, &GROUP_METADATA, &session, &keys.group_metadata).await?;
        put_tc_tokens(&mut tx, &session, &keys.tc_tokens).await?;
        put_sent_messages(&mut tx, &session, &keys.sent_messages).await?;
        put_pending_inbound(
            &mut tx,
            &session,
            &keys
                .pending_inbound
                .iter()
                .map(|p| {
                    (
                        p.chat.as_str(),
                        p.sender.as_str(),
                        p.id.as_str(),
                        p.message.as_slice(),
                        p.inserted_at,
                    )
                })
                .collect::<Vec<_>>(),
        )
        .await?;
        put_msg_secrets(&mut tx, &session, &merge_secrets(&keys.msg_secrets)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn count_keys(&self, session: SessionId) -> Result<KeyCounts, StoreError> {
        let row = sqlx::query(
            "SELECT \
             (SELECT COUNT(*) FROM key_devices WHERE session_id = $1), \
             (SELECT COUNT(*) FROM key_identities WHERE session_id = $1), \
             (SELECT COUNT(*) FROM key_sessions WHERE session_id = $1), \
             (SELECT COUNT(*) FROM key_prekeys WHERE session_id = $1), \
             (SELECT COUNT(*) FROM key_signed_prekeys WHERE session_id = $1), \
             (SELECT COUNT(*) FROM key_sender_keys WHERE session_id = $1), \
             (SELECT COUNT(*) FROM key_app_state_sync_keys WHERE session_id = $1), \
             (SELECT COUNT(*) FROM key_app_state_versions WHERE session_id = $1), \
             (SELECT COUNT(*) FROM key_app_state_mutation_macs WHERE session_id = $1), \
             (SELECT COUNT(*) FROM key_sender_key_devices WHERE session_id = $1), \
             (SELECT COUNT(*) FROM key_lid_pn_mappings WHERE session_id = $1), \
             (SELECT COUNT(*) FROM key_base_keys WHERE session_id = $1), \
             (SELECT COUNT(*) FROM key_device_lists WHERE session_id = $1), \
             (SELECT COUNT(*) FROM key_group_metadata WHERE session_id = $1), \
             (SELECT COUNT(*) FROM key_tc_tokens WHERE session_id = $1), \
             (SELECT COUNT(*) FROM key_sent_messages WHERE session_id = $1), \
             (SELECT COUNT(*) FROM key_pending_inbound WHERE session_id = $1), \
             (SELECT COUNT(*) FROM key_msg_secrets WHERE session_id = $1)",
        )
        .bind(session.to_string())
        .fetch_one(&self.reader)
        .await?;
        let n = |i: usize| -> Result<u64, StoreError> {
            Ok(u64::try_from(row.try_get::<i64, _>(i)?).unwrap_or_default())
        };
        Ok(KeyCounts {
            devices: n(0)?,
            identities: n(1)?,
            sessions: n(2)?,
            prekeys: n(3)?,
            signed_prekeys: n(4)?,
            sender_keys: n(5)?,
            sync_keys: n(6)?,
            versions: n(7)?,
            mutation_macs: n(8)?,
            sender_key_devices: n(9)?,
            lid_mappings: n(10)?,
            base_keys: n(11)?,
            device_lists: n(12)?,
            group_metadata: n(13)?,
            tc_tokens: n(14)?,
            sent_messages: n(15)?,
            pending_inbound: n(16)?,
            msg_secrets: n(17)?,
        })
    }

    async fn lid_pn(
        &self,
        session: SessionId,
        by: LidLookup<'_>,
    ) -> Result<Option<LidPn>, StoreError> {
        let (sql, key) = match by {
            LidLookup::Lid(lid) => (protocol::LID_BY_LID, lid),
            LidLookup::Phone(phone) => (protocol::LID_BY_PHONE, phone),
        };
        let row: Option<(String, String)> = sqlx::query_as(sql)
            .bind(session.to_string())
            .bind(key)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.map(|(lid, phone)| LidPn { lid, phone }))
    }
}

/// Every key table, for deleting a session's rows in one transaction.
const DELETE_ALL: &[&str] = &[
    "DELETE FROM key_devices WHERE session_id = $1",
    "DELETE FROM key_identities WHERE session_id = $1",
    "DELETE FROM key_sessions WHERE session_id = $1",
    "DELETE FROM key_prekeys WHERE session_id = $1",
    "DELETE FROM key_signed_prekeys WHERE session_id = $1",
    "DELETE FROM key_sender_keys WHERE session_id = $1",
    "DELETE FROM key_app_state_sync_keys WHERE session_id = $1",
    "DELETE FROM key_app_state_versions WHERE session_id = $1",
    "DELETE FROM key_app_state_mutation_macs WHERE session_id = $1",
    "DELETE FROM key_sender_key_devices WHERE session_id = $1",
    "DELETE FROM key_lid_pn_mappings WHERE session_id = $1",
    "DELETE FROM key_base_keys WHERE session_id = $1",
    "DELETE FROM key_device_lists WHERE session_id = $1",
    "DELETE FROM key_group_metadata WHERE session_id = $1",
    "DELETE FROM key_tc_tokens WHERE session_id = $1",
    "DELETE FROM key_sent_messages WHERE session_id = $1",
    "DELETE FROM key_pending_inbound WHERE session_id = $1",
    "DELETE FROM key_msg_secrets WHERE session_id = $1",
];

/// One session's view of the key tables.
pub(in crate::store) struct Keys {
    /// Writes and transactions, behind the session's wipe fence.
    writer: Writer,
    /// Plain reads (SQLite: the read-only connections beside the writer).
    reader: Pool<Db>,
    session: Arc<str>,
}

/// The writer pool of one session's backend, usable only through
/// [`Writer::open`], so that no write can skip the fence.
struct Writer {
    pool: Pool<Db>,
    fence: Arc<Fence>,
    /// The hot small writes go here, to be committed with other sessions'.
    group: StoreWriter,
    /// The lease epochs this process writes under (`store/leases.rs`).
    holdings: Arc<Holdings>,
    session: SessionId,
}

/// The pool, with the fence held open while this lives.
struct Open<'a> {
    pool: &'a Pool<Db>,
    /// What the write must be checked against, when leases are in use.
    claim: Option<Claim>,
    _fence: RwLockReadGuard<'a, bool>,
}

impl Writer {
    /// The pool for a write that checks its lease claim itself, in its
    /// own transaction (`write_rows!`, the grouped writes).
    async fn open_unchecked(&self) -> KeyResult<Open<'_>> {
        let fence = self
            .fence
            .open()
            .await
            .map_err(|wiped| KeyError::Database(Box::new(wiped)))?;
        Ok(Open {
            pool: &self.pool,
            claim: self.holdings.claim(self.session),
            _fence: fence,
        })
    }

    /// The pool for a write of one statement. When leases are in use, the
    /// claim is checked first, in a transaction of its own: unlike the
    /// writes above, not atomically with the write (a pause between the two
    /// could let one statement through after the session moved). These
    /// are the rarer writes (deletions, the device, app-state versions);
    /// the Signal records every message touches check atomically.
    async fn open(&self) -> KeyResult<Open<'_>> {
        let open = self.open_unchecked().await?;
        if let Some(claim) = open.claim {
            let mut tx = open.pool.begin().await.map_err(db)?;
            check_fences(&mut tx, &[claim]).await.map_err(moved)?;
            tx.commit().await.map_err(db)?;
        }
        Ok(open)
    }

    /// Writes through the store's group-commit writer, with the fence
    /// held until the group has committed.
    async fn grouped(&self, write: KeyWrite) -> KeyResult<()> {
        if write.rows() == 0 {
            return Ok(());
        }
        let open = self.open_unchecked().await?;
        writer::write_claimed(
            &self.group,
            Write::Keys(write),
            open.claim.into_iter().collect(),
        )
        .await
        .map(|_| ())
        .map_err(|error| KeyError::Database(Box::new(error)))
    }
}

fn db(error: sqlx::Error) -> KeyError {
    KeyError::Database(Box::new(error))
}

/// A write refused by the store (`StoreError::Moved` when the session's
/// lease moved on), as the library's error, the store's error inside.
fn moved(error: StoreError) -> KeyError {
    KeyError::Database(Box::new(error))
}

fn serialization(error: serde_json::Error) -> KeyError {
    KeyError::Serialization(Box::new(error))
}

fn invalid(what: &str, len: usize) -> KeyError {
    KeyError::Validation(format!("{what}: unexpected length {len}"))
}

fn to_u32(what: &str, value: i64) -> KeyResult<u32> {
    u32::try_from(value).map_err(|_| KeyError::Validation(format!("{what}: {value} out of range")))
}

/// A library `u64` as the BIGINT it is stored as: PostgreSQL has no
/// unsigned types (sqlx encodes none there), and a value past `i64::MAX`
/// is refused rather than stored wrapped and read back as another number.
fn to_i64(what: &str, value: u64) -> Result<i64, sqlx::Error> {
    i64::try_from(value)
        .map_err(|_| sqlx::Error::Encode(format!("{what}: {value} out of range").into()))
}

/// The last row for each key (what a sequence of single upserts would
/// leave, as one statement can), in key order: two batches of one session
/// written at once then lock their common rows in the same order, which
/// PostgreSQL, whose writers run concurrently, needs to not deadlock them.
fn last_per_key<'a, T, K: Ord + Hash>(rows: &'a [T], key: impl Fn(&'a T) -> K) -> Vec<&'a T> {
    let mut seen = HashSet::with_capacity(rows.len());
    let mut kept: Vec<&T> = rows
        .iter()
        .rev()
        .filter(|row| seen.insert(key(row)))
        .collect();
    kept.sort_by_key(|row| key(*row));
    kept
}

/// `INSERT … VALUES (…), (…) ON CONFLICT …` for `rows`, `CHUNK` rows per
/// statement, each row led by the session id. Run inside a transaction
/// when there is more than one chunk.
async fn insert_rows<R>(
    conn: &mut DbConnection,
    head: &'static str,
    tail: &'static str,
    session: &str,
    rows: &[R],
    push: impl Fn(&mut Separated<'_, Db, &'static str>, &R),
) -> Result<(), sqlx::Error> {
    for chunk in rows.chunks(CHUNK) {
        let mut query = QueryBuilder::<Db>::new(head);
        query.push_values(chunk, |mut values, row| {
            values.push_bind(session.to_owned());
            push(&mut values, row);
        });
        query.push(tail);
        query.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// `… WHERE session_id = $1 AND <column> IN (…)` over `keys`, `CHUNK` at a
/// time: the deletes and updates by a list of keys.
async fn by_keys<K>(
    conn: &mut DbConnection,
    head: &'static str,
    column: &'static str,
    session: &str,
    keys: &[K],
    push: impl Fn(&mut Separated<'_, Db, &'static str>, &K),
) -> Result<(), sqlx::Error> {
    for chunk in keys.chunks(CHUNK) {
        let mut query = QueryBuilder::<Db>::new(head);
        query.push(" WHERE session_id = ");
        query.push_bind(session.to_owned());
        query.push(" AND ");
        query.push(column);
        query.push(" IN (");
        let mut list = query.separated(", ");
        for key in chunk {
            push(&mut list, key);
        }
        query.push(")");
        query.build().execute(&mut *conn).await?;
    }
    Ok(())
}

impl Keys {
    fn session(&self) -> &str {
        &self.session
    }
}

#[cfg(test)]
#[path = "keys_tests.rs"]
mod tests;

//! whatsapp-rust's storage [`Backend`] on the gateway's pool: every
//! session's keys in the `key_*` tables (migration 0016), each row under
//! its session's id. All the key SQL is in this file, compiled once per
//! backend like the aggregates (`super` is the backend: `Backend`, `Db`,
//! `DbConnection`).
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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::Hash;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use sqlx::Pool;
use sqlx::query_builder::Separated;
use sqlx::{QueryBuilder, Row};
use tokio::sync::{RwLockReadGuard, mpsc, oneshot};
use wacore::appstate::hash::HashState;
use wacore::appstate::processor::AppStateMutationMAC;
use wacore::store::Device;
use wacore::store::error::{Result as KeyResult, StoreError as KeyError};
use wacore::store::traits::{
    AppStateSyncKey, AppSyncStore, Backend, DeviceInfo, DeviceListRecord, DeviceStore,
    LidPnMappingEntry, MsgSecretEntry, MsgSecretStore, PendingInboundKey, PendingInboundRow,
    ProtocolStore, SignalStore, TcTokenEntry, merge_msg_secret_expiry, merge_msg_secret_message_ts,
};

use super::{Backend as GatewayStore, Db, DbConnection};
use crate::domain::SessionId;
use crate::group_commit::next_group;
use crate::store::keys::Fence;
use crate::store::{KeyCounts, KeySet, KeyStore, StoreError};

/// Rows per statement: at most 7 parameters a row, far under SQLite's
/// 32,766 and PostgreSQL's 65,535 parameters.
const CHUNK: usize = 200;

/// The only device id a session has; whatsapp-rust's `create` reports it.
const DEVICE_ID: i32 = 1;

#[async_trait]
impl KeyStore for GatewayStore {
    fn for_session(&self, session: SessionId) -> Arc<dyn Backend> {
        Arc::new(Keys {
            writer: Writer {
                pool: self.pool.clone(),
                fence: self.key_fences.current(session),
                group: self.key_group.clone(),
            },
            reader: self.reader.clone(),
            session: session.to_string().into(),
        })
    }

    async fn delete_keys(&self, session: SessionId) -> Result<(), StoreError> {
        self.key_fences.retire(session).await;
        let session = session.to_string();
        let mut tx = self.pool.begin().await?;
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
    group: KeyGroup,
}

/// The pool, with the fence held open while this lives.
struct Open<'a> {
    pool: &'a Pool<Db>,
    _fence: RwLockReadGuard<'a, bool>,
}

impl Writer {
    async fn open(&self) -> KeyResult<Open<'_>> {
        let fence = self
            .fence
            .open()
            .await
            .map_err(|wiped| KeyError::Database(Box::new(wiped)))?;
        Ok(Open {
            pool: &self.pool,
            _fence: fence,
        })
    }

    /// Writes through the [`KeyGroup`], with the fence held until the
    /// group has committed.
    async fn grouped(&self, write: KeyWrite) -> KeyResult<()> {
        if write.rows() == 0 {
            return Ok(());
        }
        let _open = self.open().await?;
        self.group.write(write).await.map_err(db)
    }
}

fn db(error: sqlx::Error) -> KeyError {
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

/// A table of `(session_id, <key>, <blob>)` rows.
struct RecordTable {
    head: &'static str,
    tail: &'static str,
}

const SESSIONS: RecordTable = RecordTable {
    head: "INSERT INTO key_sessions (session_id, address, record) ",
    tail: " ON CONFLICT (session_id, address) DO UPDATE SET record = excluded.record",
};

const SENDER_KEYS: RecordTable = RecordTable {
    head: "INSERT INTO key_sender_keys (session_id, address, record) ",
    tail: " ON CONFLICT (session_id, address) DO UPDATE SET record = excluded.record",
};

const GROUP_METADATA: RecordTable = RecordTable {
    head: "INSERT INTO key_group_metadata (session_id, group_jid, info) ",
    tail: " ON CONFLICT (session_id, group_jid) DO UPDATE SET info = excluded.info",
};

async fn put_records<K: AsRef<str>, V: AsRef<[u8]>>(
    conn: &mut DbConnection,
    table: &RecordTable,
    session: &str,
    rows: &[(K, V)],
) -> Result<(), sqlx::Error> {
    let rows = last_per_key(rows, |(key, _)| key.as_ref());
    insert_rows(
        conn,
        table.head,
        table.tail,
        session,
        &rows,
        |b, (key, value)| {
            b.push_bind(key.as_ref().to_owned());
            b.push_bind(value.as_ref().to_vec());
        },
    )
    .await
}

async fn put_device(conn: &mut DbConnection, session: &str, json: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO key_devices (session_id, device) VALUES ($1, $2) \
         ON CONFLICT (session_id) DO UPDATE SET device = excluded.device",
    )
    .bind(session)
    .bind(json)
    .execute(conn)
    .await?;
    Ok(())
}

async fn put_identities<K: AsRef<str>>(
    conn: &mut DbConnection,
    session: &str,
    rows: &[(K, [u8; 32])],
) -> Result<(), sqlx::Error> {
    let rows = last_per_key(rows, |(address, _)| address.as_ref());
    insert_rows(
        conn,
        "INSERT INTO key_identities (session_id, address, identity) ",
        " ON CONFLICT (session_id, address) DO UPDATE SET identity = excluded.identity",
        session,
        &rows,
        |b, (address, key)| {
            b.push_bind(address.as_ref().to_owned());
            b.push_bind(key.to_vec());
        },
    )
    .await
}

async fn put_prekeys<V: AsRef<[u8]>>(
    conn: &mut DbConnection,
    session: &str,
    rows: &[(u32, V, bool)],
) -> Result<(), sqlx::Error> {
    let rows = last_per_key(rows, |(id, _, _)| *id);
    insert_rows(
        conn,
        "INSERT INTO key_prekeys (session_id, id, record, uploaded) ",
        " ON CONFLICT (session_id, id) DO UPDATE SET \
         record = excluded.record, uploaded = excluded.uploaded",
        session,
        &rows,
        |b, (id, record, uploaded)| {
            b.push_bind(i64::from(*id));
            b.push_bind(record.as_ref().to_vec());
            b.push_bind(*uploaded);
        },
    )
    .await
}

async fn put_signed_prekeys(
    conn: &mut DbConnection,
    session: &str,
    rows: &[(u32, Vec<u8>)],
) -> Result<(), sqlx::Error> {
    let rows = last_per_key(rows, |(id, _)| *id);
    insert_rows(
        conn,
        "INSERT INTO key_signed_prekeys (session_id, id, record) ",
        " ON CONFLICT (session_id, id) DO UPDATE SET record = excluded.record",
        session,
        &rows,
        |b, (id, record)| {
            b.push_bind(i64::from(*id));
            b.push_bind(record.clone());
        },
    )
    .await
}

async fn put_sync_keys(
    conn: &mut DbConnection,
    session: &str,
    rows: &[(Vec<u8>, AppStateSyncKey)],
) -> Result<(), sqlx::Error> {
    let rows = last_per_key(rows, |(id, _)| id.as_slice());
    insert_rows(
        conn,
        "INSERT INTO key_app_state_sync_keys (session_id, key_id, key_data, fingerprint, created) ",
        " ON CONFLICT (session_id, key_id) DO UPDATE SET key_data = excluded.key_data, \
         fingerprint = excluded.fingerprint, created = excluded.created",
        session,
        &rows,
        |b, (id, key)| {
            b.push_bind(id.clone());
            b.push_bind(key.key_data.clone());
            b.push_bind(key.fingerprint.clone());
            b.push_bind(key.timestamp);
        },
    )
    .await
}

async fn put_version(
    conn: &mut DbConnection,
    session: &str,
    name: &str,
    state: &HashState,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO key_app_state_versions \
         (session_id, name, version, hash, index_value_map, mac_mismatch_fatal) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (session_id, name) DO UPDATE SET version = excluded.version, \
         hash = excluded.hash, index_value_map = excluded.index_value_map, \
         mac_mismatch_fatal = excluded.mac_mismatch_fatal",
    )
    .bind(session)
    .bind(name)
    .bind(to_i64("app state version", state.version)?)
    .bind(state.hash.to_vec())
    .bind(encode_index_values(&state.index_value_map))
    .bind(state.mac_mismatch_fatal)
    .execute(conn)
    .await?;
    Ok(())
}

/// `(name, index MAC, version, value MAC)`.
type MacRow<'a> = (&'a str, &'a [u8], u64, &'a [u8]);

async fn put_mutation_macs(
    conn: &mut DbConnection,
    session: &str,
    rows: &[MacRow<'_>],
) -> Result<(), sqlx::Error> {
    let rows = last_per_key(rows, |(name, index, _, _)| (*name, *index))
        .into_iter()
        .map(|&(name, index, version, value)| {
            Ok((name, index, to_i64("mutation MAC version", version)?, value))
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    insert_rows(
        conn,
        "INSERT INTO key_app_state_mutation_macs (session_id, name, index_mac, version, value_mac) ",
        " ON CONFLICT (session_id, name, index_mac) DO UPDATE SET \
         version = excluded.version, value_mac = excluded.value_mac",
        session,
        &rows,
        |b, (name, index, version, value)| {
            b.push_bind((*name).to_owned());
            b.push_bind(index.to_vec());
            b.push_bind(*version);
            b.push_bind(value.to_vec());
        },
    )
    .await
}

async fn put_sender_key_devices(
    conn: &mut DbConnection,
    session: &str,
    rows: &[(&str, &str, bool)],
) -> Result<(), sqlx::Error> {
    let rows = last_per_key(rows, |(group, device, _)| (*group, *device));
    insert_rows(
        conn,
        "INSERT INTO key_sender_key_devices (session_id, group_jid, device_jid, has_key) ",
        " ON CONFLICT (session_id, group_jid, device_jid) DO UPDATE SET has_key = excluded.has_key",
        session,
        &rows,
        |b, (group, device, has_key)| {
            b.push_bind((*group).to_owned());
            b.push_bind((*device).to_owned());
            b.push_bind(*has_key);
        },
    )
    .await
}

async fn put_lid_mappings(
    conn: &mut DbConnection,
    session: &str,
    rows: &[LidPnMappingEntry],
) -> Result<(), sqlx::Error> {
    let rows = last_per_key(rows, |entry| entry.lid.as_str());
    // A mapping learned again keeps when it was first learned.
    insert_rows(
        conn,
        "INSERT INTO key_lid_pn_mappings \
         (session_id, lid, phone_number, created_at, updated_at, learning_source) ",
        " ON CONFLICT (session_id, lid) DO UPDATE SET phone_number = excluded.phone_number, \
         updated_at = excluded.updated_at, learning_source = excluded.learning_source",
        session,
        &rows,
        |b, entry| {
            b.push_bind(entry.lid.clone());
            b.push_bind(entry.phone_number.clone());
            b.push_bind(entry.created_at);
            b.push_bind(entry.updated_at);
            b.push_bind(entry.learning_source.clone());
        },
    )
    .await
}

async fn put_base_keys(
    conn: &mut DbConnection,
    session: &str,
    rows: &[(String, String, Vec<u8>)],
) -> Result<(), sqlx::Error> {
    let rows = last_per_key(rows, |(address, id, _)| (address.as_str(), id.as_str()));
    insert_rows(
        conn,
        "INSERT INTO key_base_keys (session_id, address, message_id, base_key) ",
        " ON CONFLICT (session_id, address, message_id) DO UPDATE SET base_key = excluded.base_key",
        session,
        &rows,
        |b, (address, id, key)| {
            b.push_bind(address.clone());
            b.push_bind(id.clone());
            b.push_bind(key.clone());
        },
    )
    .await
}

#[derive(Debug, thiserror::Error)]
enum DeviceListError {
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

async fn put_device_lists(
    conn: &mut DbConnection,
    session: &str,
    records: &[DeviceListRecord],
) -> Result<(), DeviceListError> {
    let records = last_per_key(records, |record| record.user.as_str());
    let rows = records
        .into_iter()
        .map(|record| Ok((record, serde_json::to_string(&record.devices)?)))
        .collect::<Result<Vec<_>, serde_json::Error>>()?;
    insert_rows(
        conn,
        "INSERT INTO key_device_lists (session_id, user_id, devices, listed_at, phash, raw_id) ",
        " ON CONFLICT (session_id, user_id) DO UPDATE SET devices = excluded.devices, \
         listed_at = excluded.listed_at, phash = excluded.phash, raw_id = excluded.raw_id",
        session,
        &rows,
        |b, (record, devices)| {
            b.push_bind(record.user.clone());
            b.push_bind(devices.clone());
            b.push_bind(record.timestamp);
            b.push_bind(record.phash.clone());
            b.push_bind(record.raw_id.map(i64::from));
        },
    )
    .await?;
    Ok(())
}

async fn put_tc_tokens(
    conn: &mut DbConnection,
    session: &str,
    rows: &[(String, TcTokenEntry)],
) -> Result<(), sqlx::Error> {
    let rows = last_per_key(rows, |(jid, _)| jid.as_str());
    insert_rows(
        conn,
        "INSERT INTO key_tc_tokens (session_id, jid, token, token_timestamp, sender_timestamp) ",
        " ON CONFLICT (session_id, jid) DO UPDATE SET token = excluded.token, \
         token_timestamp = excluded.token_timestamp, sender_timestamp = excluded.sender_timestamp",
        session,
        &rows,
        |b, (jid, entry)| {
            b.push_bind(jid.clone());
            b.push_bind(entry.token.clone());
            b.push_bind(entry.token_timestamp);
            b.push_bind(entry.sender_timestamp);
        },
    )
    .await
}

async fn put_sent_messages(
    conn: &mut DbConnection,
    session: &str,
    rows: &[crate::store::SentMessage],
) -> Result<(), sqlx::Error> {
    let rows = last_per_key(rows, |m| (m.chat.as_str(), m.id.as_str()));
    insert_rows(
        conn,
        "INSERT INTO key_sent_messages (session_id, chat_jid, message_id, payload, created_at) ",
        SENT_MESSAGE_CONFLICT,
        session,
        &rows,
        |b, m| {
            b.push_bind(m.chat.clone());
            b.push_bind(m.id.clone());
            b.push_bind(m.payload.clone());
            b.push_bind(m.created_at);
        },
    )
    .await
}

const SENT_MESSAGE_CONFLICT: &str = " ON CONFLICT (session_id, chat_jid, message_id) DO UPDATE SET \
     payload = excluded.payload, created_at = excluded.created_at";

/// `(chat, sender, id, message, inserted_at)`.
type PendingRow<'a> = (&'a str, &'a str, &'a str, &'a [u8], i64);

const PENDING_HEAD: &str =
    "INSERT INTO key_pending_inbound (session_id, chat, sender, id, message, inserted_at) ";
const PENDING_TAIL: &str = " ON CONFLICT (session_id, chat, sender, id) DO UPDATE SET \
     message = excluded.message, inserted_at = excluded.inserted_at";

async fn put_pending_inbound(
    conn: &mut DbConnection,
    session: &str,
    rows: &[PendingRow<'_>],
) -> Result<(), sqlx::Error> {
    let rows = last_per_key(rows, |(chat, sender, id, _, _)| (*chat, *sender, *id));
    insert_rows(
        conn,
        PENDING_HEAD,
        PENDING_TAIL,
        session,
        &rows,
        |b, (chat, sender, id, message, inserted_at)| {
            b.push_bind((*chat).to_owned());
            b.push_bind((*sender).to_owned());
            b.push_bind((*id).to_owned());
            b.push_bind(message.to_vec());
            b.push_bind(*inserted_at);
        },
    )
    .await
}

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
enum KeyWrite {
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
    fn rows(&self) -> usize {
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

    async fn write(&self, write: KeyWrite) -> Result<(), sqlx::Error> {
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

/// Entries of one batch with the same key, merged as successive upserts
/// would merge them (the store's merge below does the same against what
/// is already stored).
fn merge_secrets(entries: &[MsgSecretEntry]) -> Vec<MsgSecretEntry> {
    let mut merged: Vec<MsgSecretEntry> = Vec::with_capacity(entries.len());
    let mut at: HashMap<(&str, &str, &str), usize> = HashMap::with_capacity(entries.len());
    for entry in entries {
        let key = (&*entry.chat, &*entry.sender, &*entry.msg_id);
        match at.get(&key) {
            Some(&i) => {
                let kept = &mut merged[i];
                kept.secret = entry.secret;
                kept.expires_at = merge_msg_secret_expiry(kept.expires_at, entry.expires_at);
                kept.message_ts = merge_msg_secret_message_ts(kept.message_ts, entry.message_ts);
            }
            None => {
                at.insert(key, merged.len());
                merged.push(entry.clone());
            }
        }
    }
    // In key order, as `last_per_key` leaves the other batches.
    merged.sort_by(|a, b| {
        (&*a.chat, &*a.sender, &*a.msg_id).cmp(&(&*b.chat, &*b.sender, &*b.msg_id))
    });
    merged
}

async fn put_msg_secrets(
    conn: &mut DbConnection,
    session: &str,
    rows: &[MsgSecretEntry],
) -> Result<(), sqlx::Error> {
    // The same merge as `merge_msg_secret_expiry` (0 is never, else the
    // later deadline) and `merge_msg_secret_message_ts` (the later time).
    insert_rows(
        conn,
        "INSERT INTO key_msg_secrets \
         (session_id, chat, sender, msg_id, secret, expires_at, message_ts) ",
        " ON CONFLICT (session_id, chat, sender, msg_id) DO UPDATE SET \
         secret = excluded.secret, \
         expires_at = CASE \
             WHEN key_msg_secrets.expires_at = 0 OR excluded.expires_at = 0 THEN 0 \
             WHEN key_msg_secrets.expires_at > excluded.expires_at THEN key_msg_secrets.expires_at \
             ELSE excluded.expires_at END, \
         message_ts = CASE \
             WHEN key_msg_secrets.message_ts > excluded.message_ts THEN key_msg_secrets.message_ts \
             ELSE excluded.message_ts END",
        session,
        rows,
        |b, entry| {
            b.push_bind(entry.chat.to_string());
            b.push_bind(entry.sender.to_string());
            b.push_bind(entry.msg_id.to_string());
            b.push_bind(entry.secret.to_vec());
            b.push_bind(entry.expires_at);
            b.push_bind(entry.message_ts);
        },
    )
    .await
}

/// An app-state collection's index -> value MAC map as bytes: for each
/// entry, the index's length (4 bytes, big-endian), the index (UTF-8), the
/// value's length, the value; in index order, so equal maps encode alike.
fn encode_index_values(map: &HashMap<String, Vec<u8>>) -> Vec<u8> {
    let mut entries: Vec<_> = map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let size = entries.iter().map(|(k, v)| 8 + k.len() + v.len()).sum();
    let mut out = Vec::with_capacity(size);
    for (key, value) in entries {
        // A key or MAC of 4 GiB cannot come from WhatsApp; saturating keeps
        // the encoder total, and the decoder would then refuse the row.
        out.extend_from_slice(&u32::try_from(key.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(&u32::try_from(value.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(value);
    }
    out
}

fn decode_index_values(mut bytes: &[u8]) -> KeyResult<HashMap<String, Vec<u8>>> {
    fn take<'a>(bytes: &mut &'a [u8]) -> KeyResult<&'a [u8]> {
        let corrupt = || KeyError::Validation("app state index map is truncated".into());
        let (len, rest) = bytes.split_first_chunk::<4>().ok_or_else(corrupt)?;
        let len = u32::from_be_bytes(*len) as usize;
        if rest.len() < len {
            return Err(corrupt());
        }
        let (item, rest) = rest.split_at(len);
        *bytes = rest;
        Ok(item)
    }
    let mut map = HashMap::new();
    while !bytes.is_empty() {
        let key = std::str::from_utf8(take(&mut bytes)?)
            .map_err(|e| KeyError::Serialization(Box::new(e)))?
            .to_owned();
        let value = take(&mut bytes)?.to_vec();
        map.insert(key, value);
    }
    Ok(map)
}

/// A device as stored: serde JSON of the library's `Device`. What it does
/// not persist (the device props, the client profile) is set as the
/// library's own SQLite store sets it on load.
fn decode_device(json: &str) -> KeyResult<Device> {
    let mut device: Device = serde_json::from_str(json).map_err(serialization)?;
    device.device_props = Arc::new(wacore::store::device::DEVICE_PROPS.clone());
    device.client_profile = wacore::client_profile::ClientProfile::web();
    Ok(device)
}

/// A `LIKE` pattern matching `prefix` literally, then `suffix`.
fn like_prefix(prefix: &str, suffix: char) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 2);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push(suffix);
    pattern.push('%');
    pattern
}

type LidRow = (String, String, i64, i64, String);

fn lid_entry(
    (lid, phone_number, created_at, updated_at, learning_source): LidRow,
) -> LidPnMappingEntry {
    LidPnMappingEntry {
        lid,
        phone_number,
        created_at,
        updated_at,
        learning_source,
    }
}

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
        } else if rows <= CHUNK {
            let open = $keys.writer.open().await?;
            let mut conn = open.pool.acquire().await.map_err(db)?;
            let $conn: &mut DbConnection = &mut conn;
            $body.await.map_err(db)
        } else {
            let open = $keys.writer.open().await?;
            let mut tx = open.pool.begin().await.map_err(db)?;
            let $conn: &mut DbConnection = &mut tx;
            $body.await.map_err(db)?;
            tx.commit().await.map_err(db)
        }
    }};
}

impl Keys {
    fn session(&self) -> &str {
        &self.session
    }
}

#[async_trait]
impl SignalStore for Keys {
    async fn put_identity(&self, address: &str, key: [u8; 32]) -> KeyResult<()> {
        let rows = [(address, key)];
        write_rows!(self, 1, |c| put_identities(c, self.session(), &rows))
    }

    async fn put_identities_batch(&self, identities: &[(Arc<str>, [u8; 32])]) -> KeyResult<()> {
        write_rows!(self, identities.len(), |c| put_identities(
            c,
            self.session(),
            identities
        ))
    }

    async fn load_identity(&self, address: &str) -> KeyResult<Option<[u8; 32]>> {
        let key: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT identity FROM key_identities WHERE session_id = $1 AND address = $2",
        )
        .bind(self.session())
        .bind(address)
        .fetch_optional(&self.reader)
        .await
        .map_err(db)?;
        key.map(|key| {
            let len = key.len();
            <[u8; 32]>::try_from(key).map_err(|_| invalid("identity", len))
        })
        .transpose()
    }

    async fn delete_identity(&self, address: &str) -> KeyResult<()> {
        sqlx::query("DELETE FROM key_identities WHERE session_id = $1 AND address = $2")
            .bind(self.session())
            .bind(address)
            .execute(self.writer.open().await?.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn get_session(&self, address: &str) -> KeyResult<Option<Bytes>> {
        let record: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT record FROM key_sessions WHERE session_id = $1 AND address = $2",
        )
        .bind(self.session())
        .bind(address)
        .fetch_optional(&self.reader)
        .await
        .map_err(db)?;
        Ok(record.map(Bytes::from))
    }

    async fn put_session(&self, address: &str, session: &[u8]) -> KeyResult<()> {
        self.writer
            .grouped(KeyWrite::Sessions {
                session: Arc::clone(&self.session),
                rows: vec![(address.to_owned(), session.to_vec())],
            })
            .await
    }

    async fn put_sessions_batch(&self, sessions: &[(Arc<str>, Bytes)]) -> KeyResult<()> {
        self.writer
            .grouped(KeyWrite::Sessions {
                session: Arc::clone(&self.session),
                rows: sessions
                    .iter()
                    .map(|(address, record)| (address.to_string(), record.to_vec()))
                    .collect(),
            })
            .await
    }

    async fn delete_session(&self, address: &str) -> KeyResult<()> {
        sqlx::query("DELETE FROM key_sessions WHERE session_id = $1 AND address = $2")
            .bind(self.session())
            .bind(address)
            .execute(self.writer.open().await?.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn has_session(&self, address: &str) -> KeyResult<bool> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT CAST(1 AS BIGINT) FROM key_sessions WHERE session_id = $1 AND address = $2",
        )
        .bind(self.session())
        .bind(address)
        .fetch_optional(&self.reader)
        .await
        .map_err(db)?;
        Ok(found.is_some())
    }

    async fn has_signal_state_for_user(&self, user: &str) -> KeyResult<bool> {
        // Addresses are `user@server` (device 0) or `user:device@server`.
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT CAST(1 AS BIGINT) FROM key_sessions WHERE session_id = $1 \
               AND (address LIKE $2 ESCAPE '\\' OR address LIKE $3 ESCAPE '\\') \
             UNION ALL \
             SELECT CAST(1 AS BIGINT) FROM key_identities WHERE session_id = $1 \
               AND (address LIKE $2 ESCAPE '\\' OR address LIKE $3 ESCAPE '\\') \
             LIMIT 1",
        )
        .bind(self.session())
        .bind(like_prefix(user, '@'))
        .bind(like_prefix(user, ':'))
        .fetch_optional(&self.reader)
        .await
        .map_err(db)?;
        Ok(found.is_some())
    }

    async fn store_prekey(&self, id: u32, record: &[u8], uploaded: bool) -> KeyResult<()> {
        let rows = [(id, record, uploaded)];
        write_rows!(self, 1, |c| put_prekeys(c, self.session(), &rows))
    }

    async fn store_prekeys_batch(&self, keys: &[(u32, Bytes)], uploaded: bool) -> KeyResult<()> {
        let rows: Vec<(u32, &[u8], bool)> = keys
            .iter()
            .map(|(id, record)| (*id, record.as_ref(), uploaded))
            .collect();
        write_rows!(self, rows.len(), |c| put_prekeys(c, self.session(), &rows))
    }

    async fn load_prekey(&self, id: u32) -> KeyResult<Option<Bytes>> {
        let record: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT record FROM key_prekeys WHERE session_id = $1 AND id = $2")
                .bind(self.session())
                .bind(i64::from(id))
                .fetch_optional(&self.reader)
                .await
                .map_err(db)?;
        Ok(record.map(Bytes::from))
    }

    async fn load_prekeys_batch(&self, ids: &[u32]) -> KeyResult<Vec<(u32, Bytes)>> {
        let mut found: HashMap<u32, Bytes> = HashMap::with_capacity(ids.len());
        let mut conn = self.reader.acquire().await.map_err(db)?;
        for chunk in ids.chunks(CHUNK) {
            let mut query =
                QueryBuilder::<Db>::new("SELECT id, record FROM key_prekeys WHERE session_id = ");
            query.push_bind(self.session().to_owned());
            query.push(" AND id IN (");
            let mut list = query.separated(", ");
            for id in chunk {
                list.push_bind(i64::from(*id));
            }
            query.push(")");
            let rows: Vec<(i64, Vec<u8>)> = query
                .build_query_as()
                .fetch_all(&mut *conn)
                .await
                .map_err(db)?;
            for (id, record) in rows {
                found.insert(to_u32("prekey id", id)?, Bytes::from(record));
            }
        }
        // In the order asked for, as the library's own stores answer.
        Ok(ids
            .iter()
            .filter_map(|id| found.get(id).map(|record| (*id, record.clone())))
            .collect())
    }

    async fn mark_prekeys_uploaded(&self, ids: &[u32]) -> KeyResult<()> {
        // An UPDATE, never an upsert: a key consumed since the upload began
        // stays deleted.
        write_rows!(self, ids.len(), |c| by_keys(
            c,
            "UPDATE key_prekeys SET uploaded = TRUE",
            "id",
            self.session(),
            ids,
            |b, id| {
                b.push_bind(i64::from(*id));
            },
        ))
    }

    async fn remove_prekey(&self, id: u32) -> KeyResult<()> {
        sqlx::query("DELETE FROM key_prekeys WHERE session_id = $1 AND id = $2")
            .bind(self.session())
            .bind(i64::from(id))
            .execute(self.writer.open().await?.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn get_max_prekey_id(&self) -> KeyResult<u32> {
        let max: Option<i64> =
            sqlx::query_scalar("SELECT MAX(id) FROM key_prekeys WHERE session_id = $1")
                .bind(self.session())
                .fetch_one(&self.reader)
                .await
                .map_err(db)?;
        max.map_or(Ok(0), |id| to_u32("prekey id", id))
    }

    async fn store_signed_prekey(&self, id: u32, record: &[u8]) -> KeyResult<()> {
        let rows = [(id, record.to_vec())];
        write_rows!(self, 1, |c| put_signed_prekeys(c, self.session(), &rows))
    }

    async fn load_signed_prekey(&self, id: u32) -> KeyResult<Option<Vec<u8>>> {
        sqlx::query_scalar(
            "SELECT record FROM key_signed_prekeys WHERE session_id = $1 AND id = $2",
        )
        .bind(self.session())
        .bind(i64::from(id))
        .fetch_optional(&self.reader)
        .await
        .map_err(db)
    }

    async fn load_all_signed_prekeys(&self) -> KeyResult<Vec<(u32, Vec<u8>)>> {
        let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT id, record FROM key_signed_prekeys WHERE session_id = $1 ORDER BY id",
        )
        .bind(self.session())
        .fetch_all(&self.reader)
        .await
        .map_err(db)?;
        rows.into_iter()
            .map(|(id, record)| Ok((to_u32("signed prekey id", id)?, record)))
            .collect()
    }

    async fn remove_signed_prekey(&self, id: u32) -> KeyResult<()> {
        sqlx::query("DELETE FROM key_signed_prekeys WHERE session_id = $1 AND id = $2")
            .bind(self.session())
            .bind(i64::from(id))
            .execute(self.writer.open().await?.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn put_sender_key(&self, address: &str, record: &[u8]) -> KeyResult<()> {
        let rows = [(address, record)];
        write_rows!(self, 1, |c| put_records(
            c,
            &SENDER_KEYS,
            self.session(),
            &rows
        ))
    }

    async fn put_sender_keys_batch(&self, sender_keys: &[(Arc<str>, Bytes)]) -> KeyResult<()> {
        write_rows!(self, sender_keys.len(), |c| put_records(
            c,
            &SENDER_KEYS,
            self.session(),
            sender_keys
        ))
    }

    async fn get_sender_key(&self, address: &str) -> KeyResult<Option<Vec<u8>>> {
        sqlx::query_scalar(
            "SELECT record FROM key_sender_keys WHERE session_id = $1 AND address = $2",
        )
        .bind(self.session())
        .bind(address)
        .fetch_optional(&self.reader)
        .await
        .map_err(db)
    }

    async fn delete_sender_key(&self, address: &str) -> KeyResult<()> {
        sqlx::query("DELETE FROM key_sender_keys WHERE session_id = $1 AND address = $2")
            .bind(self.session())
            .bind(address)
            .execute(self.writer.open().await?.pool)
            .await
            .map_err(db)?;
        Ok(())
    }
}

#[async_trait]
impl AppSyncStore for Keys {
    async fn get_sync_key(&self, key_id: &[u8]) -> KeyResult<Option<AppStateSyncKey>> {
        let row: Option<(Vec<u8>, Vec<u8>, i64)> = sqlx::query_as(
            "SELECT key_data, fingerprint, created FROM key_app_state_sync_keys \
             WHERE session_id = $1 AND key_id = $2",
        )
        .bind(self.session())
        .bind(key_id)
        .fetch_optional(&self.reader)
        .await
        .map_err(db)?;
        Ok(
            row.map(|(key_data, fingerprint, timestamp)| AppStateSyncKey {
                key_data,
                fingerprint,
                timestamp,
            }),
        )
    }

    async fn set_sync_key(&self, key_id: &[u8], key: AppStateSyncKey) -> KeyResult<()> {
        let rows = [(key_id.to_vec(), key)];
        write_rows!(self, 1, |c| put_sync_keys(c, self.session(), &rows))
    }

    async fn get_version(&self, name: &str) -> KeyResult<HashState> {
        let row: Option<(i64, Vec<u8>, Vec<u8>, bool)> = sqlx::query_as(
            "SELECT version, hash, index_value_map, mac_mismatch_fatal \
             FROM key_app_state_versions WHERE session_id = $1 AND name = $2",
        )
        .bind(self.session())
        .bind(name)
        .fetch_optional(&self.reader)
        .await
        .map_err(db)?;
        let Some((version, hash, map, mac_mismatch_fatal)) = row else {
            return Ok(HashState::default());
        };
        let len = hash.len();
        Ok(HashState {
            version: u64::try_from(version)
                .map_err(|_| KeyError::Validation(format!("app state version {version}")))?,
            hash: <[u8; 128]>::try_from(hash).map_err(|_| invalid("app state hash", len))?,
            index_value_map: decode_index_values(&map)?,
            mac_mismatch_fatal,
        })
    }

    async fn set_version(&self, name: &str, state: HashState) -> KeyResult<()> {
        let open = self.writer.open().await?;
        let mut conn = open.pool.acquire().await.map_err(db)?;
        put_version(&mut conn, self.session(), name, &state)
            .await
            .map_err(db)
    }

    async fn put_mutation_macs(
        &self,
        name: &str,
        version: u64,
        mutations: &[AppStateMutationMAC],
    ) -> KeyResult<()> {
        let rows: Vec<MacRow<'_>> = mutations
            .iter()
            .map(|m| {
                (
                    name,
                    m.index_mac.as_slice(),
                    version,
                    m.value_mac.as_slice(),
                )
            })
            .collect();
        write_rows!(self, rows.len(), |c| put_mutation_macs(
            c,
            self.session(),
            &rows
        ))
    }

    async fn get_mutation_mac(&self, name: &str, index_mac: &[u8]) -> KeyResult<Option<Vec<u8>>> {
        sqlx::query_scalar(
            "SELECT value_mac FROM key_app_state_mutation_macs \
             WHERE session_id = $1 AND name = $2 AND index_mac = $3",
        )
        .bind(self.session())
        .bind(name)
        .bind(index_mac)
        .fetch_optional(&self.reader)
        .await
        .map_err(db)
    }

    async fn get_mutation_macs(
        &self,
        name: &str,
        index_macs: &[[u8; 32]],
    ) -> KeyResult<HashMap<[u8; 32], Vec<u8>>> {
        let mut found = HashMap::with_capacity(index_macs.len());
        if index_macs.is_empty() {
            return Ok(found);
        }
        let mut conn = self.reader.acquire().await.map_err(db)?;
        for chunk in index_macs.chunks(CHUNK) {
            let mut query = QueryBuilder::<Db>::new(
                "SELECT index_mac, value_mac FROM key_app_state_mutation_macs WHERE session_id = ",
            );
            query.push_bind(self.session().to_owned());
            query.push(" AND name = ");
            query.push_bind(name.to_owned());
            query.push(" AND index_mac IN (");
            let mut list = query.separated(", ");
            for mac in chunk {
                list.push_bind(mac.to_vec());
            }
            query.push(")");
            let rows: Vec<(Vec<u8>, Vec<u8>)> = query
                .build_query_as()
                .fetch_all(&mut *conn)
                .await
                .map_err(db)?;
            for (index, value) in rows {
                let len = index.len();
                let index = <[u8; 32]>::try_from(index).map_err(|_| invalid("index MAC", len))?;
                found.insert(index, value);
            }
        }
        Ok(found)
    }

    async fn delete_mutation_macs(&self, name: &str, index_macs: &[Vec<u8>]) -> KeyResult<()> {
        write_rows!(self, index_macs.len(), |c| async move {
            for chunk in index_macs.chunks(CHUNK) {
                let mut query = QueryBuilder::<Db>::new(
                    "DELETE FROM key_app_state_mutation_macs WHERE session_id = ",
                );
                query.push_bind(self.session().to_owned());
                query.push(" AND name = ");
                query.push_bind(name.to_owned());
                query.push(" AND index_mac IN (");
                let mut list = query.separated(", ");
                for mac in chunk {
                    list.push_bind(mac.clone());
                }
                query.push(")");
                query.build().execute(&mut *c).await?;
            }
            Ok(())
        })
    }

    async fn clear_mutation_macs(&self, name: &str) -> KeyResult<()> {
        sqlx::query("DELETE FROM key_app_state_mutation_macs WHERE session_id = $1 AND name = $2")
            .bind(self.session())
            .bind(name)
            .execute(self.writer.open().await?.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn get_latest_sync_key_id(&self) -> KeyResult<Option<Vec<u8>>> {
        // The highest key id, as the library's SQLite store answers (key ids
        // grow with each key the phone shares).
        sqlx::query_scalar(
            "SELECT key_id FROM key_app_state_sync_keys WHERE session_id = $1 \
             ORDER BY key_id DESC LIMIT 1",
        )
        .bind(self.session())
        .fetch_optional(&self.reader)
        .await
        .map_err(db)
    }
}

#[async_trait]
impl ProtocolStore for Keys {
    async fn get_sender_key_devices(&self, group_jid: &str) -> KeyResult<Vec<(String, bool)>> {
        sqlx::query_as(
            "SELECT device_jid, has_key FROM key_sender_key_devices \
             WHERE session_id = $1 AND group_jid = $2",
        )
        .bind(self.session())
        .bind(group_jid)
        .fetch_all(&self.reader)
        .await
        .map_err(db)
    }

    async fn set_sender_key_status(
        &self,
        group_jid: &str,
        entries: &[(&str, bool)],
    ) -> KeyResult<()> {
        let rows: Vec<(&str, &str, bool)> = entries
            .iter()
            .map(|(device, has_key)| (group_jid, *device, *has_key))
            .collect();
        write_rows!(self, rows.len(), |c| put_sender_key_devices(
            c,
            self.session(),
            &rows
        ))
    }

    async fn clear_sender_key_devices(&self, group_jid: &str) -> KeyResult<()> {
        sqlx::query("DELETE FROM key_sender_key_devices WHERE session_id = $1 AND group_jid = $2")
            .bind(self.session())
            .bind(group_jid)
            .execute(self.writer.open().await?.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn delete_sender_key_device_rows(&self, device_jids: &[&str]) -> KeyResult<()> {
        write_rows!(self, device_jids.len(), |c| by_keys(
            c,
            "DELETE FROM key_sender_key_devices",
            "device_jid",
            self.session(),
            device_jids,
            |b, jid| {
                b.push_bind((*jid).to_owned());
            },
        ))
    }

    async fn clear_all_sender_key_devices(&self) -> KeyResult<()> {
        sqlx::query("DELETE FROM key_sender_key_devices WHERE session_id = $1")
            .bind(self.session())
            .execute(self.writer.open().await?.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn get_lid_mapping(&self, lid: &str) -> KeyResult<Option<LidPnMappingEntry>> {
        let row: Option<LidRow> = sqlx::query_as(
            "SELECT lid, phone_number, created_at, updated_at, learning_source \
             FROM key_lid_pn_mappings WHERE session_id = $1 AND lid = $2",
        )
        .bind(self.session())
        .bind(lid)
        .fetch_optional(&self.reader)
        .await
        .map_err(db)?;
        Ok(row.map(lid_entry))
    }

    async fn get_pn_mapping(&self, phone: &str) -> KeyResult<Option<LidPnMappingEntry>> {
        // A number's newest LID (a number can be reassigned one).
        let row: Option<LidRow> = sqlx::query_as(
            "SELECT lid, phone_number, created_at, updated_at, learning_source \
             FROM key_lid_pn_mappings WHERE session_id = $1 AND phone_number = $2 \
             ORDER BY updated_at DESC LIMIT 1",
        )
        .bind(self.session())
        .bind(phone)
        .fetch_optional(&self.reader)
        .await
        .map_err(db)?;
        Ok(row.map(lid_entry))
    }

    async fn put_lid_mapping(&self, entry: &LidPnMappingEntry) -> KeyResult<()> {
        self.put_lid_mappings(std::slice::from_ref(entry)).await
    }

    async fn put_lid_mappings(&self, entries: &[LidPnMappingEntry]) -> KeyResult<()> {
        write_rows!(self, entries.len(), |c| put_lid_mappings(
            c,
            self.session(),
            entries
        ))
    }

    async fn get_all_lid_mappings(&self) -> KeyResult<Vec<LidPnMappingEntry>> {
        let rows: Vec<LidRow> = sqlx::query_as(
            "SELECT lid, phone_number, created_at, updated_at, learning_source \
             FROM key_lid_pn_mappings WHERE session_id = $1",
        )
        .bind(self.session())
        .fetch_all(&self.reader)
        .await
        .map_err(db)?;
        Ok(rows.into_iter().map(lid_entry).collect())
    }

    async fn save_base_key(
        &self,
        address: &str,
        message_id: &str,
        base_key: &[u8],
    ) -> KeyResult<()> {
        let rows = [(address.to_owned(), message_id.to_owned(), base_key.to_vec())];
        write_rows!(self, 1, |c| put_base_keys(c, self.session(), &rows))
    }

    async fn has_same_base_key(
        &self,
        address: &str,
        message_id: &str,
        current_base_key: &[u8],
    ) -> KeyResult<bool> {
        let stored: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT base_key FROM key_base_keys \
             WHERE session_id = $1 AND address = $2 AND message_id = $3",
        )
        .bind(self.session())
        .bind(address)
        .bind(message_id)
        .fetch_optional(&self.reader)
        .await
        .map_err(db)?;
        Ok(stored.is_some_and(|stored| stored == current_base_key))
    }

    async fn delete_base_key(&self, address: &str, message_id: &str) -> KeyResult<()> {
        sqlx::query(
            "DELETE FROM key_base_keys WHERE session_id = $1 AND address = $2 AND message_id = $3",
        )
        .bind(self.session())
        .bind(address)
        .bind(message_id)
        .execute(self.writer.open().await?.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn update_device_list(&self, record: DeviceListRecord) -> KeyResult<()> {
        self.update_device_lists(vec![record]).await
    }

    async fn update_device_lists(&self, records: Vec<DeviceListRecord>) -> KeyResult<()> {
        if records.is_empty() {
            return Ok(());
        }
        let result = if records.len() <= CHUNK {
            let open = self.writer.open().await?;
            let mut conn = open.pool.acquire().await.map_err(db)?;
            put_device_lists(&mut conn, self.session(), &records).await
        } else {
            let open = self.writer.open().await?;
            let mut tx = open.pool.begin().await.map_err(db)?;
            match put_device_lists(&mut tx, self.session(), &records).await {
                Ok(()) => tx.commit().await.map_err(DeviceListError::from),
                Err(e) => Err(e),
            }
        };
        result.map_err(|e| match e {
            DeviceListError::Json(e) => serialization(e),
            DeviceListError::Database(e) => db(e),
        })
    }

    async fn get_devices(&self, user: &str) -> KeyResult<Option<DeviceListRecord>> {
        let row: Option<(String, String, i64, Option<String>, Option<i64>)> = sqlx::query_as(
            "SELECT user_id, devices, listed_at, phash, raw_id FROM key_device_lists \
             WHERE session_id = $1 AND user_id = $2",
        )
        .bind(self.session())
        .bind(user)
        .fetch_optional(&self.reader)
        .await
        .map_err(db)?;
        row.map(|(user, devices, timestamp, phash, raw_id)| {
            let devices: Vec<DeviceInfo> = serde_json::from_str(&devices).map_err(serialization)?;
            Ok(DeviceListRecord {
                user,
                devices,
                timestamp,
                phash,
                raw_id: raw_id.map(|id| to_u32("raw id", id)).transpose()?,
            })
        })
        .transpose()
    }

    async fn delete_devices(&self, user: &str) -> KeyResult<()> {
        sqlx::query("DELETE FROM key_device_lists WHERE session_id = $1 AND user_id = $2")
            .bind(self.session())
            .bind(user)
            .execute(self.writer.open().await?.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn get_group_metadata(&self, group_jid: &str) -> KeyResult<Option<Vec<u8>>> {
        sqlx::query_scalar(
            "SELECT info FROM key_group_metadata WHERE session_id = $1 AND group_jid = $2",
        )
        .bind(self.session())
        .bind(group_jid)
        .fetch_optional(&self.reader)
        .await
        .map_err(db)
    }

    async fn put_group_metadata(&self, group_jid: &str, blob: &[u8]) -> KeyResult<()> {
        let rows = [(group_jid, blob)];
        write_rows!(self, 1, |c| put_records(
            c,
            &GROUP_METADATA,
            self.session(),
            &rows
        ))
    }

    async fn delete_group_metadata(&self, group_jid: &str) -> KeyResult<()> {
        sqlx::query("DELETE FROM key_group_metadata WHERE session_id = $1 AND group_jid = $2")
            .bind(self.session())
            .bind(group_jid)
            .execute(self.writer.open().await?.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn get_tc_token(&self, jid: &str) -> KeyResult<Option<TcTokenEntry>> {
        let row: Option<(Vec<u8>, i64, Option<i64>)> = sqlx::query_as(
            "SELECT token, token_timestamp, sender_timestamp FROM key_tc_tokens \
             WHERE session_id = $1 AND jid = $2",
        )
        .bind(self.session())
        .bind(jid)
        .fetch_optional(&self.reader)
        .await
        .map_err(db)?;
        Ok(
            row.map(|(token, token_timestamp, sender_timestamp)| TcTokenEntry {
                token,
                token_timestamp,
                sender_timestamp,
            }),
        )
    }

    async fn put_tc_token(&self, jid: &str, entry: &TcTokenEntry) -> KeyResult<()> {
        let rows = [(jid.to_owned(), entry.clone())];
        write_rows!(self, 1, |c| put_tc_tokens(c, self.session(), &rows))
    }

    async fn delete_tc_token(&self, jid: &str) -> KeyResult<()> {
        sqlx::query("DELETE FROM key_tc_tokens WHERE session_id = $1 AND jid = $2")
            .bind(self.session())
            .bind(jid)
            .execute(self.writer.open().await?.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn get_all_tc_token_jids(&self) -> KeyResult<Vec<String>> {
        sqlx::query_scalar("SELECT jid FROM key_tc_tokens WHERE session_id = $1")
            .bind(self.session())
            .fetch_all(&self.reader)
            .await
            .map_err(db)
    }

    async fn delete_expired_tc_tokens(
        &self,
        token_cutoff: i64,
        sender_cutoff: i64,
    ) -> KeyResult<u32> {
        // Gone only when both are stale: the received token (absent, or
        // older than its cutoff) and the sender bucket (absent, or older).
        let done = sqlx::query(
            "DELETE FROM key_tc_tokens WHERE session_id = $1 \
               AND (length(token) = 0 OR token_timestamp < $2) \
               AND (sender_timestamp IS NULL OR sender_timestamp < $3)",
        )
        .bind(self.session())
        .bind(token_cutoff)
        .bind(sender_cutoff)
        .execute(self.writer.open().await?.pool)
        .await
        .map_err(db)?;
        Ok(u32::try_from(done.rows_affected()).unwrap_or(u32::MAX))
    }

    async fn touch_tc_token_sender_timestamp(
        &self,
        jid: &str,
        sender_timestamp: i64,
    ) -> KeyResult<()> {
        // One statement, so it is atomic against `store_received_tc_token`:
        // a placeholder when absent, else only the sender bucket moves, and
        // only forward.
        sqlx::query(
            "INSERT INTO key_tc_tokens (session_id, jid, token, token_timestamp, sender_timestamp) \
             VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (session_id, jid) DO UPDATE SET sender_timestamp = CASE \
                 WHEN key_tc_tokens.sender_timestamp IS NULL \
                   OR key_tc_tokens.sender_timestamp < excluded.sender_timestamp \
                 THEN excluded.sender_timestamp \
                 ELSE key_tc_tokens.sender_timestamp END",
        )
        .bind(self.session())
        .bind(jid)
        .bind(Vec::<u8>::new())
        .bind(sender_timestamp)
        .execute(self.writer.open().await?.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn store_received_tc_token(
        &self,
        jid: &str,
        token: &[u8],
        token_timestamp: i64,
    ) -> KeyResult<()> {
        // Newer wins, in one statement: the stored pair is replaced only if
        // it is a placeholder or not newer; the sender bucket is kept.
        sqlx::query(
            "INSERT INTO key_tc_tokens (session_id, jid, token, token_timestamp, sender_timestamp) \
             VALUES ($1, $2, $3, $4, NULL) \
             ON CONFLICT (session_id, jid) DO UPDATE SET \
                 token = excluded.token, token_timestamp = excluded.token_timestamp \
             WHERE length(key_tc_tokens.token) = 0 \
                OR excluded.token_timestamp >= key_tc_tokens.token_timestamp",
        )
        .bind(self.session())
        .bind(jid)
        .bind(token)
        .bind(token_timestamp)
        .execute(self.writer.open().await?.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn store_sent_message(
        &self,
        chat_jid: &str,
        message_id: &str,
        payload: &[u8],
    ) -> KeyResult<()> {
        let rows = [crate::store::SentMessage {
            chat: chat_jid.to_owned(),
            id: message_id.to_owned(),
            payload: payload.to_vec(),
            created_at: wacore::time::now_secs(),
        }];
        write_rows!(self, 1, |c| put_sent_messages(c, self.session(), &rows))
    }

    async fn take_sent_message(
        &self,
        chat_jid: &str,
        message_id: &str,
    ) -> KeyResult<Option<Vec<u8>>> {
        // Read and removed in one statement: one retry receipt gets it.
        sqlx::query_scalar(
            "DELETE FROM key_sent_messages \
             WHERE session_id = $1 AND chat_jid = $2 AND message_id = $3 RETURNING payload",
        )
        .bind(self.session())
        .bind(chat_jid)
        .bind(message_id)
        .fetch_optional(self.writer.open().await?.pool)
        .await
        .map_err(db)
    }

    async fn delete_expired_sent_messages(&self, cutoff_timestamp: i64) -> KeyResult<u32> {
        let done =
            sqlx::query("DELETE FROM key_sent_messages WHERE session_id = $1 AND created_at < $2")
                .bind(self.session())
                .bind(cutoff_timestamp)
                .execute(self.writer.open().await?.pool)
                .await
                .map_err(db)?;
        Ok(u32::try_from(done.rows_affected()).unwrap_or(u32::MAX))
    }

    async fn store_pending_inbound(
        &self,
        chat: &str,
        sender: &str,
        id: &str,
        message: &[u8],
    ) -> KeyResult<()> {
        self.writer
            .grouped(KeyWrite::PendingPut {
                session: Arc::clone(&self.session),
                rows: vec![(
                    chat.to_owned(),
                    sender.to_owned(),
                    id.to_owned(),
                    message.to_vec(),
                    wacore::time::now_secs(),
                )],
            })
            .await
    }

    async fn get_pending_inbound(
        &self,
        chat: &str,
        sender: &str,
        id: &str,
    ) -> KeyResult<Option<Vec<u8>>> {
        sqlx::query_scalar(
            "SELECT message FROM key_pending_inbound \
             WHERE session_id = $1 AND chat = $2 AND sender = $3 AND id = $4",
        )
        .bind(self.session())
        .bind(chat)
        .bind(sender)
        .bind(id)
        .fetch_optional(&self.reader)
        .await
        .map_err(db)
    }

    async fn delete_pending_inbound(&self, chat: &str, sender: &str, id: &str) -> KeyResult<()> {
        self.writer
            .grouped(KeyWrite::PendingDelete {
                session: Arc::clone(&self.session),
                keys: vec![(chat.to_owned(), sender.to_owned(), id.to_owned())],
            })
            .await
    }

    async fn delete_expired_pending_inbound(&self, cutoff_timestamp: i64) -> KeyResult<u32> {
        let done = sqlx::query(
            "DELETE FROM key_pending_inbound WHERE session_id = $1 AND inserted_at < $2",
        )
        .bind(self.session())
        .bind(cutoff_timestamp)
        .execute(self.writer.open().await?.pool)
        .await
        .map_err(db)?;
        Ok(u32::try_from(done.rows_affected()).unwrap_or(u32::MAX))
    }

    async fn store_pending_inbound_batch(&self, rows: &[PendingInboundRow<'_>]) -> KeyResult<()> {
        let now = wacore::time::now_secs();
        self.writer
            .grouped(KeyWrite::PendingPut {
                session: Arc::clone(&self.session),
                rows: rows
                    .iter()
                    .map(|r| {
                        (
                            r.chat.to_owned(),
                            r.sender.to_owned(),
                            r.id.to_owned(),
                            r.message.to_vec(),
                            now,
                        )
                    })
                    .collect(),
            })
            .await
    }

    async fn delete_pending_inbound_batch(&self, keys: &[PendingInboundKey<'_>]) -> KeyResult<()> {
        self.writer
            .grouped(KeyWrite::PendingDelete {
                session: Arc::clone(&self.session),
                keys: keys
                    .iter()
                    .map(|k| (k.chat.to_owned(), k.sender.to_owned(), k.id.to_owned()))
                    .collect(),
            })
            .await
    }
}

#[async_trait]
impl MsgSecretStore for Keys {
    async fn put_msg_secrets(&self, entries: Vec<MsgSecretEntry>) -> KeyResult<usize> {
        let stored = entries.len();
        let rows = merge_secrets(&entries);
        write_rows!(self, rows.len(), |c| put_msg_secrets(
            c,
            self.session(),
            &rows
        ))?;
        Ok(stored)
    }

    async fn get_msg_secret(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> KeyResult<Option<Vec<u8>>> {
        Ok(self
            .get_msg_secret_with_ts(chat, sender, msg_id)
            .await?
            .map(|(secret, _)| secret))
    }

    async fn get_msg_secret_with_ts(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> KeyResult<Option<(Vec<u8>, i64)>> {
        sqlx::query_as(
            "SELECT secret, message_ts FROM key_msg_secrets \
             WHERE session_id = $1 AND chat = $2 AND sender = $3 AND msg_id = $4",
        )
        .bind(self.session())
        .bind(chat)
        .bind(sender)
        .bind(msg_id)
        .fetch_optional(&self.reader)
        .await
        .map_err(db)
    }

    async fn delete_expired_msg_secrets(&self, cutoff_timestamp: i64) -> KeyResult<u32> {
        let done = sqlx::query(
            "DELETE FROM key_msg_secrets \
             WHERE session_id = $1 AND expires_at <> 0 AND expires_at <= $2",
        )
        .bind(self.session())
        .bind(cutoff_timestamp)
        .execute(self.writer.open().await?.pool)
        .await
        .map_err(db)?;
        Ok(u32::try_from(done.rows_affected()).unwrap_or(u32::MAX))
    }
}

#[async_trait]
impl DeviceStore for Keys {
    async fn save(&self, device: &Device) -> KeyResult<()> {
        let json = serde_json::to_string(device).map_err(serialization)?;
        let open = self.writer.open().await?;
        let mut conn = open.pool.acquire().await.map_err(db)?;
        put_device(&mut conn, self.session(), &json)
            .await
            .map_err(db)
    }

    async fn load(&self) -> KeyResult<Option<Device>> {
        let json: Option<String> =
            sqlx::query_scalar("SELECT device FROM key_devices WHERE session_id = $1")
                .bind(self.session())
                .fetch_optional(&self.reader)
                .await
                .map_err(db)?;
        json.as_deref().map(decode_device).transpose()
    }

    async fn exists(&self) -> KeyResult<bool> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT CAST(1 AS BIGINT) FROM key_devices WHERE session_id = $1")
                .bind(self.session())
                .fetch_optional(&self.reader)
                .await
                .map_err(db)?;
        Ok(found.is_some())
    }

    async fn create(&self) -> KeyResult<i32> {
        // A fresh identity, unless the session has one already (the
        // library asks only after `exists` said no; a race keeps the first).
        let json = serde_json::to_string(&Device::new()).map_err(serialization)?;
        sqlx::query(
            "INSERT INTO key_devices (session_id, device) VALUES ($1, $2) \
             ON CONFLICT (session_id) DO NOTHING",
        )
        .bind(self.session())
        .bind(json)
        .execute(self.writer.open().await?.pool)
        .await
        .map_err(db)?;
        Ok(DEVICE_ID)
    }

    async fn resource_report(&self) -> wacore::stats::StorageResourceReport {
        // The rows live in the gateway's database, whose one page cache
        // serves every session; none of it is this session's own.
        wacore::stats::StorageResourceReport {
            memory_bytes: Some(0),
            ..Default::default()
        }
    }
}

#[cfg(test)]
#[path = "keys_tests.rs"]
mod tests;

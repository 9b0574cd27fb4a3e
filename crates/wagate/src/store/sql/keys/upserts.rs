//! Each kind's batch upsert, shared by the library traits' writes and the
//! import of a whole [`KeySet`](crate::store::KeySet): the last row per key,
//! [`CHUNK`] rows a statement.

use std::collections::HashMap;

use wacore::appstate::hash::HashState;
use wacore::store::traits::{
    AppStateSyncKey, DeviceListRecord, LidPnMappingEntry, MsgSecretEntry, TcTokenEntry,
    merge_msg_secret_expiry, merge_msg_secret_message_ts,
};

use super::app_state::encode_index_values;
use super::{DbConnection, insert_rows, last_per_key, to_i64};

/// A table of `(session_id, <key>, <blob>)` rows.
pub(super) struct RecordTable {
    pub(super) head: &'static str,
    pub(super) tail: &'static str,
}

pub(super) const SESSIONS: RecordTable = RecordTable {
    head: "INSERT INTO key_sessions (session_id, address, record) ",
    tail: " ON CONFLICT (session_id, address) DO UPDATE SET record = excluded.record",
};

pub(super) const SENDER_KEYS: RecordTable = RecordTable {
    head: "INSERT INTO key_sender_keys (session_id, address, record) ",
    tail: " ON CONFLICT (session_id, address) DO UPDATE SET record = excluded.record",
};

pub(super) const GROUP_METADATA: RecordTable = RecordTable {
    head: "INSERT INTO key_group_metadata (session_id, group_jid, info) ",
    tail: " ON CONFLICT (session_id, group_jid) DO UPDATE SET info = excluded.info",
};

pub(super) async fn put_records<K: AsRef<str>, V: AsRef<[u8]>>(
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

pub(super) async fn put_device(
    conn: &mut DbConnection,
    session: &str,
    json: &str,
) -> Result<(), sqlx::Error> {
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

pub(super) async fn put_identities<K: AsRef<str>>(
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

pub(super) async fn put_prekeys<V: AsRef<[u8]>>(
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

pub(super) async fn put_signed_prekeys(
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

pub(super) async fn put_sync_keys(
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

pub(super) async fn put_version(
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
pub(super) type MacRow<'a> = (&'a str, &'a [u8], u64, &'a [u8]);

pub(super) async fn put_mutation_macs(
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

pub(super) async fn put_sender_key_devices(
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

pub(super) async fn put_lid_mappings(
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
    .await?;
    // What the session stored under the LID alone is the number's now.
    for entry in &rows {
        super::super::chats::merge_lid_in(conn, session, &entry.lid, &entry.phone_number).await?;
    }
    Ok(())
}

pub(super) async fn put_base_keys(
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
pub(super) enum DeviceListError {
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

pub(super) async fn put_device_lists(
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

pub(super) async fn put_tc_tokens(
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

pub(super) async fn put_sent_messages(
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

pub(super) const SENT_MESSAGE_CONFLICT: &str = " ON CONFLICT (session_id, chat_jid, message_id) DO UPDATE SET \
     payload = excluded.payload, created_at = excluded.created_at";

/// `(chat, sender, id, message, inserted_at)`.
pub(super) type PendingRow<'a> = (&'a str, &'a str, &'a str, &'a [u8], i64);

pub(super) const PENDING_HEAD: &str =
    "INSERT INTO key_pending_inbound (session_id, chat, sender, id, message, inserted_at) ";
pub(super) const PENDING_TAIL: &str = " ON CONFLICT (session_id, chat, sender, id) DO UPDATE SET \
     message = excluded.message, inserted_at = excluded.inserted_at";

pub(super) async fn put_pending_inbound(
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

/// Entries of one batch with the same key, merged as successive upserts
/// would merge them (the store's merge below does the same against what
/// is already stored).
pub(super) fn merge_secrets(entries: &[MsgSecretEntry]) -> Vec<MsgSecretEntry> {
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

pub(super) async fn put_msg_secrets(
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

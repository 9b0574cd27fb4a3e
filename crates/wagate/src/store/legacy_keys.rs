//! The upgrade from the old key layout: gateways used to keep each
//! session's keys in a whatsapp-rust SQLite file of its own,
//! `<data_dir>/sessions/<session id>.db`. At start-up every such file of an
//! existing session is read, written into the shared key store, checked
//! against what was read, and then removed. A file that cannot be imported
//! stops the start-up, naming the file: the alternative, starting without
//! the keys, would make the number link again.
//!
//! The old file is read with sqlx, table by table (the rows of its one
//! device, `device_id` 1), and through whatsapp-rust's own `SqliteStore`
//! where the library decides the encoding (the device, app-state sync keys
//! and hash states). This SQL reads the library's schema, not the
//! gateway's, and is not part of the key store's portable SQL.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use wacore::store::error::StoreError as LibraryError;
use wacore::store::traits::{
    AppSyncStore, DeviceStore, LidPnMappingEntry, MsgSecretEntry, ProtocolStore, TcTokenEntry,
};
use whatsapp_rust::prelude::SqliteStore as LibraryStore;

use super::{KeyCounts, KeySet, MutationMac, PendingInbound, SentMessage, Store, StoreError};
use crate::domain::SessionId;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ImportError {
    #[error("could not list the old key files in {dir}")]
    List {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("could not list the sessions")]
    Sessions(#[source] StoreError),
    #[error("could not read the old key file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: ReadError,
    },
    #[error("could not store the keys of the old key file {path}")]
    Store {
        path: PathBuf,
        #[source]
        source: StoreError,
    },
    #[error("the keys stored from the old key file {path} do not match it: {detail}")]
    Mismatch { path: PathBuf, detail: String },
    #[error("could not remove the old key file {path} after importing it")]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("whatsapp-rust could not read it")]
    Library(#[from] LibraryError),
    #[error("{0}")]
    Invalid(String),
}

/// The device id whatsapp-rust's `SqliteStore::new` gives the one device
/// of a file.
const DEVICE_ID: i64 = 1;

/// Imports every old key file in `dir` whose session exists, then removes
/// it; returns how many were imported. Files of sessions that no longer
/// exist are left alone (and logged).
pub(crate) async fn import_key_files(store: &dyn Store, dir: &Path) -> Result<usize, ImportError> {
    let mut entries = match tokio::fs::read_dir(dir).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(source) => {
            return Err(ImportError::List {
                dir: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut files = Vec::new();
    loop {
        let entry = entries
            .next_entry()
            .await
            .map_err(|source| ImportError::List {
                dir: dir.to_path_buf(),
                source,
            })?;
        let Some(entry) = entry else { break };
        let path = entry.path();
        let session = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.strip_suffix(".db"))
            .and_then(|id| SessionId::from_str(id).ok());
        if let Some(session) = session {
            files.push((session, path));
        }
    }
    if files.is_empty() {
        return Ok(0);
    }
    let sessions: HashSet<SessionId> = store
        .sessions()
        .all_sessions()
        .await
        .map_err(ImportError::Sessions)?
        .into_iter()
        .map(|s| s.id)
        .collect();
    let mut imported = 0;
    for (session, path) in files {
        if !sessions.contains(&session) {
            tracing::warn!(
                path = %path.display(),
                "an old key file names no session; left in place"
            );
            continue;
        }
        import_key_file(store, session, &path).await?;
        imported += 1;
    }
    if imported > 0 {
        tracing::info!(
            imported,
            "moved old per-session key files into the database"
        );
    }
    Ok(imported)
}

async fn import_key_file(
    store: &dyn Store,
    session: SessionId,
    path: &Path,
) -> Result<(), ImportError> {
    let read = read_key_file(path)
        .await
        .map_err(|source| ImportError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    let stored = |source| ImportError::Store {
        path: path.to_path_buf(),
        source,
    };
    let mismatch = |detail: String| ImportError::Mismatch {
        path: path.to_path_buf(),
        detail,
    };
    let keys = &read.keys;
    store
        .keys()
        .import_keys(session, keys)
        .await
        .map_err(stored)?;

    // What was read is what the file holds (less the sync keys the library
    // itself cannot decode and would ask the phone for again) …
    let mut expected = read.file;
    expected.sync_keys -= read.undecodable_sync_keys;
    if keys.counts() != expected {
        return Err(mismatch(format!(
            "read {:?}, the file has {:?}",
            keys.counts(),
            read.file
        )));
    }
    // … what was stored is what was read …
    let counts = store.keys().count_keys(session).await.map_err(stored)?;
    if counts != keys.counts() {
        return Err(mismatch(format!(
            "stored {counts:?}, read {:?}",
            keys.counts()
        )));
    }
    // … and the library loads the same device from it.
    if let Some(device) = &keys.device {
        let loaded = store
            .keys()
            .for_session(session)
            .load()
            .await
            .map_err(|e| mismatch(format!("the stored device does not load: {e}")))?
            .ok_or_else(|| mismatch("the stored device is missing".into()))?;
        let same = loaded.identity_key.public_key == device.identity_key.public_key
            && loaded.noise_key.public_key == device.noise_key.public_key
            && loaded.registration_id == device.registration_id
            && loaded.pn == device.pn
            && loaded.lid == device.lid;
        if !same {
            return Err(mismatch("the stored device is not the file's".into()));
        }
    }
    if read.undecodable_sync_keys > 0 {
        tracing::warn!(
            path = %path.display(),
            skipped = read.undecodable_sync_keys,
            "app-state sync keys whatsapp-rust cannot decode were not imported; \
             the client asks the phone for them again"
        );
    }
    remove_key_file(path)
        .await
        .map_err(|source| ImportError::Remove {
            path: path.to_path_buf(),
            source,
        })?;
    tracing::info!(
        session = %session,
        rows = counts.total(),
        "imported an old key file"
    );
    Ok(())
}

/// Removes an old key file: the database first, so a crash half-way leaves
/// at most a write-ahead log without its database (ignored), never a
/// database without its log (which a next start would import stale).
pub(crate) async fn remove_key_file(path: &Path) -> io::Result<()> {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        match tokio::fs::remove_file(PathBuf::from(name)).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

struct ReadKeys {
    keys: KeySet,
    /// Rows per kind in the file, for the device of the file.
    file: KeyCounts,
    undecodable_sync_keys: u64,
}

async fn read_key_file(path: &Path) -> Result<ReadKeys, ReadError> {
    let url = path
        .to_str()
        .ok_or_else(|| ReadError::Invalid("the path is not UTF-8".into()))?;
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(false),
        )
        .await?;
    // A file that is no database fails here at once; the library's pool
    // would retry it for its connection timeout first.
    sqlx::query("SELECT COUNT(*) FROM sqlite_master")
        .execute(&pool)
        .await?;
    // Then the library: opening brings a file of an older library version
    // to the current schema, which the queries below read.
    let library = LibraryStore::new(url).await?;
    let read = read_tables(&pool, &library).await;
    pool.close().await;
    drop(library);
    read
}

async fn read_tables(pool: &SqlitePool, library: &LibraryStore) -> Result<ReadKeys, ReadError> {
    let devices: Vec<i64> = sqlx::query_scalar("SELECT id FROM device")
        .fetch_all(pool)
        .await?;
    if devices.iter().any(|id| *id != DEVICE_ID) {
        return Err(ReadError::Invalid(format!(
            "devices {devices:?}, where the gateway made only device {DEVICE_ID}"
        )));
    }
    let mut keys = KeySet {
        device: library.load().await?,
        ..KeySet::default()
    };

    for (address, key) in sqlx::query_as::<_, (String, Vec<u8>)>(
        "SELECT address, key FROM identities WHERE device_id = $1",
    )
    .bind(DEVICE_ID)
    .fetch_all(pool)
    .await?
    {
        let len = key.len();
        let key = <[u8; 32]>::try_from(key)
            .map_err(|_| ReadError::Invalid(format!("an identity key of {len} bytes")))?;
        keys.identities.push((address, key));
    }
    keys.sessions = sqlx::query_as("SELECT address, record FROM sessions WHERE device_id = $1")
        .bind(DEVICE_ID)
        .fetch_all(pool)
        .await?;
    for (id, record, uploaded) in sqlx::query_as::<_, (i64, Vec<u8>, bool)>(
        "SELECT id, key, uploaded FROM prekeys WHERE device_id = $1",
    )
    .bind(DEVICE_ID)
    .fetch_all(pool)
    .await?
    {
        keys.prekeys.push((id_u32(id)?, record, uploaded));
    }
    for (id, record) in sqlx::query_as::<_, (i64, Vec<u8>)>(
        "SELECT id, record FROM signed_prekeys WHERE device_id = $1",
    )
    .bind(DEVICE_ID)
    .fetch_all(pool)
    .await?
    {
        keys.signed_prekeys.push((id_u32(id)?, record));
    }
    keys.sender_keys =
        sqlx::query_as("SELECT address, record FROM sender_keys WHERE device_id = $1")
            .bind(DEVICE_ID)
            .fetch_all(pool)
            .await?;

    let mut undecodable_sync_keys = 0;
    let key_ids: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT key_id FROM app_state_keys WHERE device_id = $1")
            .bind(DEVICE_ID)
            .fetch_all(pool)
            .await?;
    for key_id in key_ids {
        // The library answers `None` for a row it cannot decode.
        match library.get_sync_key(&key_id).await? {
            Some(key) => keys.sync_keys.push((key_id, key)),
            None => undecodable_sync_keys += 1,
        }
    }
    let names: Vec<String> =
        sqlx::query_scalar("SELECT name FROM app_state_versions WHERE device_id = $1")
            .bind(DEVICE_ID)
            .fetch_all(pool)
            .await?;
    for name in names {
        let state = library.get_version(&name).await?;
        keys.versions.push((name, state));
    }
    for (name, index_mac, version, value_mac) in
        sqlx::query_as::<_, (String, Vec<u8>, i64, Vec<u8>)>(
            "SELECT name, index_mac, version, value_mac FROM app_state_mutation_macs \
         WHERE device_id = $1",
        )
        .bind(DEVICE_ID)
        .fetch_all(pool)
        .await?
    {
        keys.mutation_macs.push(MutationMac {
            name,
            index_mac,
            version: u64::try_from(version)
                .map_err(|_| ReadError::Invalid(format!("app state version {version}")))?,
            value_mac,
        });
    }

    keys.sender_key_devices = sqlx::query_as::<_, (String, String, i64)>(
        "SELECT group_jid, device_jid, has_key FROM sender_key_devices WHERE device_id = $1",
    )
    .bind(DEVICE_ID)
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|(group, device, has_key)| (group, device, has_key != 0))
    .collect();
    keys.lid_mappings = sqlx::query_as::<_, (String, String, i64, i64, String)>(
        "SELECT lid, phone_number, created_at, updated_at, learning_source \
         FROM lid_pn_mapping WHERE device_id = $1",
    )
    .bind(DEVICE_ID)
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(
        |(lid, phone_number, created_at, updated_at, learning_source)| LidPnMappingEntry {
            lid,
            phone_number,
            created_at,
            updated_at,
            learning_source,
        },
    )
    .collect();
    keys.base_keys =
        sqlx::query_as("SELECT address, message_id, base_key FROM base_keys WHERE device_id = $1")
            .bind(DEVICE_ID)
            .fetch_all(pool)
            .await?;
    let users: Vec<String> =
        sqlx::query_scalar("SELECT user_id FROM device_registry WHERE device_id = $1")
            .bind(DEVICE_ID)
            .fetch_all(pool)
            .await?;
    for user in users {
        if let Some(record) = library.get_devices(&user).await? {
            keys.device_lists.push(record);
        }
    }
    keys.group_metadata =
        sqlx::query_as("SELECT group_jid, info FROM group_metadata WHERE device_id = $1")
            .bind(DEVICE_ID)
            .fetch_all(pool)
            .await?;
    keys.tc_tokens = sqlx::query_as::<_, (String, Vec<u8>, i64, Option<i64>)>(
        "SELECT jid, token, token_timestamp, sender_timestamp FROM tc_tokens WHERE device_id = $1",
    )
    .bind(DEVICE_ID)
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|(jid, token, token_timestamp, sender_timestamp)| {
        (
            jid,
            TcTokenEntry {
                token,
                token_timestamp,
                sender_timestamp,
            },
        )
    })
    .collect();
    keys.sent_messages = sqlx::query_as::<_, (String, String, Vec<u8>, i64)>(
        "SELECT chat_jid, message_id, payload, created_at FROM sent_messages WHERE device_id = $1",
    )
    .bind(DEVICE_ID)
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|(chat, id, payload, created_at)| SentMessage {
        chat,
        id,
        payload,
        created_at,
    })
    .collect();
    keys.pending_inbound = sqlx::query_as::<_, (String, String, String, Vec<u8>, i64)>(
        "SELECT chat, sender, id, message, inserted_at FROM pending_inbound_messages \
         WHERE device_id = $1",
    )
    .bind(DEVICE_ID)
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|(chat, sender, id, message, inserted_at)| PendingInbound {
        chat,
        sender,
        id,
        message,
        inserted_at,
    })
    .collect();
    for (chat, sender, msg_id, secret, expires_at, message_ts) in
        sqlx::query_as::<_, (String, String, String, Vec<u8>, i64, i64)>(
            "SELECT chat, sender, msg_id, secret, expires_at, message_ts FROM msg_secrets \
             WHERE device_id = $1",
        )
        .bind(DEVICE_ID)
        .fetch_all(pool)
        .await?
    {
        let len = secret.len();
        let secret = secret
            .try_into()
            .map_err(|_| ReadError::Invalid(format!("a message secret of {len} bytes")))?;
        keys.msg_secrets.push(MsgSecretEntry {
            chat: chat.into(),
            sender: sender.into(),
            msg_id: msg_id.into(),
            secret,
            expires_at,
            message_ts,
        });
    }

    let file = file_counts(pool).await?;
    Ok(ReadKeys {
        keys,
        file,
        undecodable_sync_keys,
    })
}

/// The file's own row counts for its device, to check the read against.
async fn file_counts(pool: &SqlitePool) -> Result<KeyCounts, ReadError> {
    let count = |sql: &'static str| async move {
        let n: i64 = sqlx::query_scalar(sql)
            .bind(DEVICE_ID)
            .fetch_one(pool)
            .await?;
        Ok::<u64, sqlx::Error>(u64::try_from(n).unwrap_or_default())
    };
    Ok(KeyCounts {
        devices: count("SELECT COUNT(*) FROM device WHERE id = $1").await?,
        identities: count("SELECT COUNT(*) FROM identities WHERE device_id = $1").await?,
        sessions: count("SELECT COUNT(*) FROM sessions WHERE device_id = $1").await?,
        prekeys: count("SELECT COUNT(*) FROM prekeys WHERE device_id = $1").await?,
        signed_prekeys: count("SELECT COUNT(*) FROM signed_prekeys WHERE device_id = $1").await?,
        sender_keys: count("SELECT COUNT(*) FROM sender_keys WHERE device_id = $1").await?,
        sync_keys: count("SELECT COUNT(*) FROM app_state_keys WHERE device_id = $1").await?,
        versions: count("SELECT COUNT(*) FROM app_state_versions WHERE device_id = $1").await?,
        mutation_macs: count("SELECT COUNT(*) FROM app_state_mutation_macs WHERE device_id = $1")
            .await?,
        sender_key_devices: count("SELECT COUNT(*) FROM sender_key_devices WHERE device_id = $1")
            .await?,
        lid_mappings: count("SELECT COUNT(*) FROM lid_pn_mapping WHERE device_id = $1").await?,
        base_keys: count("SELECT COUNT(*) FROM base_keys WHERE device_id = $1").await?,
        device_lists: count("SELECT COUNT(*) FROM device_registry WHERE device_id = $1").await?,
        group_metadata: count("SELECT COUNT(*) FROM group_metadata WHERE device_id = $1").await?,
        tc_tokens: count("SELECT COUNT(*) FROM tc_tokens WHERE device_id = $1").await?,
        sent_messages: count("SELECT COUNT(*) FROM sent_messages WHERE device_id = $1").await?,
        pending_inbound: count(
            "SELECT COUNT(*) FROM pending_inbound_messages WHERE device_id = $1",
        )
        .await?,
        msg_secrets: count("SELECT COUNT(*) FROM msg_secrets WHERE device_id = $1").await?,
    })
}

fn id_u32(id: i64) -> Result<u32, ReadError> {
    u32::try_from(id).map_err(|_| ReadError::Invalid(format!("key id {id}")))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use wacore::store::traits::{AppStateSyncKey, DeviceListRecord, MsgSecretStore, SignalStore};

    use super::*;
    use crate::store::{NewSession, SqliteStore};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    async fn gateway_store(dir: &Path) -> Result<(Arc<dyn Store>, SessionId), StoreError> {
        let url = format!("sqlite://{}", dir.join("wagate.db").display());
        let store: Arc<dyn Store> = Arc::new(SqliteStore::connect(&url).await?);
        let org = store.orgs().create_org("acme").await?;
        let session = store
            .sessions()
            .insert_session(NewSession {
                id: SessionId::new(),
                org_id: org.id,
                label: None,
                pace: Default::default(),
                history: Default::default(),
            })
            .await?
            .id;
        Ok((store, session))
    }

    /// An old key file as the old gateway left it: written by whatsapp-rust's
    /// own SQLite store, through the same trait the client writes with.
    async fn old_file(path: &Path) -> Result<wacore::store::Device, Box<dyn std::error::Error>> {
        let old = LibraryStore::new(path.to_str().ok_or("path")?).await?;
        old.create().await?;
        let mut device = old.load().await?.ok_or("no device")?;
        device.pn = Some("15550001111@s.whatsapp.net".parse()?);
        device.push_name = "Sales".into();
        old.save(&device).await?;
        old.put_identity("1555@s.whatsapp.net", [7; 32]).await?;
        old.put_session("1555@s.whatsapp.net", b"ratchet").await?;
        old.store_prekey(5, b"prekey", true).await?;
        old.store_signed_prekey(1, b"signed").await?;
        old.put_sender_key("g::1555", b"sender key").await?;
        old.set_sync_key(
            &[0, 0, 1],
            AppStateSyncKey {
                key_data: vec![3; 32],
                fingerprint: vec![1],
                timestamp: 9,
            },
        )
        .await?;
        old.update_device_list(DeviceListRecord {
            user: "1555".into(),
            devices: vec![wacore::store::traits::DeviceInfo::new(0, None)],
            timestamp: 4,
            phash: None,
            raw_id: Some(2),
        })
        .await?;
        old.store_sent_message("c", "m", b"payload").await?;
        old.put_msg_secret("c", "c", "m", &[5; 32]).await?;
        Ok(device)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_old_key_file_is_imported_checked_and_removed() -> TestResult {
        let dir = tempfile::TempDir::new()?;
        let (store, session) = gateway_store(dir.path()).await?;
        let sessions = dir.path().join("sessions");
        tokio::fs::create_dir_all(&sessions).await?;
        let path = sessions.join(format!("{session}.db"));
        let device = old_file(&path).await?;
        // A file naming no session is not the gateway's to take.
        let stray = sessions.join(format!("{}.db", SessionId::new()));
        tokio::fs::copy(&path, &stray).await?;

        assert_eq!(import_key_files(store.as_ref(), &sessions).await?, 1);
        assert!(!path.exists(), "the imported file is removed");
        assert!(stray.exists(), "a file of no session is left alone");

        let keys = store.keys().for_session(session);
        let loaded = keys.load().await?.ok_or("no device")?;
        assert_eq!(
            loaded.identity_key.public_key,
            device.identity_key.public_key
        );
        assert_eq!(loaded.pn, device.pn);
        assert_eq!(loaded.push_name, "Sales");
        assert_eq!(
            keys.load_identity("1555@s.whatsapp.net").await?,
            Some([7; 32])
        );
        assert_eq!(
            keys.get_session("1555@s.whatsapp.net").await?.as_deref(),
            Some(&b"ratchet"[..])
        );
        assert_eq!(keys.load_prekey(5).await?.as_deref(), Some(&b"prekey"[..]));
        assert_eq!(keys.load_signed_prekey(1).await?, Some(b"signed".to_vec()));
        assert_eq!(
            keys.get_sender_key("g::1555").await?,
            Some(b"sender key".to_vec())
        );
        assert_eq!(
            keys.get_sync_key(&[0, 0, 1]).await?.map(|k| k.key_data),
            Some(vec![3; 32])
        );
        assert_eq!(
            keys.get_devices("1555").await?.and_then(|d| d.raw_id),
            Some(2)
        );
        assert_eq!(
            keys.take_sent_message("c", "m").await?,
            Some(b"payload".to_vec())
        );
        assert_eq!(keys.get_msg_secret("c", "c", "m").await?, Some(vec![5; 32]));

        // Nothing left to import on the next start.
        assert_eq!(import_key_files(store.as_ref(), &sessions).await?, 0);
        Ok(())
    }

    #[tokio::test]
    async fn a_file_that_cannot_be_read_stops_the_start_naming_it() -> TestResult {
        let dir = tempfile::TempDir::new()?;
        let (store, session) = gateway_store(dir.path()).await?;
        let sessions = dir.path().join("sessions");
        tokio::fs::create_dir_all(&sessions).await?;
        let path = sessions.join(format!("{session}.db"));
        tokio::fs::write(&path, b"not a database").await?;

        let error = import_key_files(store.as_ref(), &sessions)
            .await
            .err()
            .ok_or("a broken file was imported")?;
        assert!(matches!(error, ImportError::Read { .. }), "{error:?}");
        assert!(
            error.to_string().contains(&path.display().to_string()),
            "{error}"
        );
        assert!(path.exists(), "a file that failed is kept");
        assert_eq!(store.keys().count_keys(session).await?.total(), 0);
        Ok(())
    }

    #[tokio::test]
    async fn no_sessions_directory_is_nothing_to_import() -> TestResult {
        let dir = tempfile::TempDir::new()?;
        let (store, _) = gateway_store(dir.path()).await?;
        assert_eq!(
            import_key_files(store.as_ref(), &dir.path().join("sessions")).await?,
            0
        );
        Ok(())
    }
}

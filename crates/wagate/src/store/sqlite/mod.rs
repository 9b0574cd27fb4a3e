//! SQLite backend: one file, WAL, one connection as the single writer.
//! The aggregates' queries and row mapping live in `store/sql/` and are
//! compiled once per backend (here and in `store/postgres/`) through
//! `#[path]`: inside them `super` is this module, and `Backend`, `Db`,
//! `DbRow`, `DbConnection` and `lock_writers` below are what they are
//! written against. Their SQL is the subset both databases accept (`$n`
//! placeholders, `ON CONFLICT`, no `INSERT OR ...`).

// Each file of `store/sql/` is compiled once per backend on purpose.
#![allow(clippy::duplicate_mod)]

#[path = "../sql/chats.rs"]
mod chats;
#[path = "../sql/contacts.rs"]
mod contacts;
#[path = "../sql/events.rs"]
mod events;
#[path = "../sql/fences.rs"]
mod fences;
#[path = "../sql/groups.rs"]
mod groups;
#[path = "../sql/history.rs"]
mod history;
#[path = "../sql/keys.rs"]
mod keys;
#[path = "../sql/messages.rs"]
mod messages;
#[path = "../sql/orgs.rs"]
mod orgs;
#[path = "../sql/presence.rs"]
mod presence;
#[path = "../sql/rows.rs"]
mod rows;
#[path = "../sql/sessions.rs"]
mod sessions;
#[path = "../sql/store.rs"]
mod store;
#[cfg(test)]
#[path = "../sql/store_tests.rs"]
mod store_tests;
#[path = "../sql/tx.rs"]
mod tx;
#[path = "../sql/users.rs"]
mod users;
#[path = "../sql/webhooks.rs"]
mod webhooks;
#[path = "../sql/writer.rs"]
mod writer;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};

use super::StoreError;
use super::keys::KeyFences;
use super::leases::Holdings;

/// SQLite has no row locks (its one writer already excludes the others).
const FOR_SHARE: &str = "";

/// SQLite serves one process: no leases.
fn leases_of(_store: &SqliteStore) -> Option<&dyn super::LeaseStore> {
    None
}

#[allow(unused_imports)]
pub(super) use rows::{is_unique_violation, organization, parse, session};
use tx::{WriteTx, begin_write};

type Backend = SqliteStore;
type Db = Sqlite;
type DbRow = SqliteRow;
type DbConnection = SqliteConnection;

#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// The single writer SQLite wants: every statement that writes, and
    /// every transaction, goes through its one connection.
    pub(in crate::store) pool: SqlitePool,
    /// Read-only connections for plain reads. In WAL mode they run beside
    /// the writer, so a long read (the webhook queue heads, a message page,
    /// an event-log replay) never holds up a write, nor a write a read. An
    /// in-memory database exists per connection, so there it is the writer.
    pub(in crate::store) reader: SqlitePool,
    /// Keeps wiped sessions' old clients from writing their keys back.
    pub(in crate::store) key_fences: Arc<KeyFences>,
    /// The lease epochs this process writes under (`store/leases.rs`);
    /// never enabled on SQLite.
    pub(in crate::store) holdings: Arc<Holdings>,
    /// Write transactions take turns here first (see `sql/tx.rs`).
    pub(in crate::store) writers: Arc<tokio::sync::Mutex<()>>,
    /// The group-commit writer (`sql/writer.rs`): status changes,
    /// incoming batches, the key rows of every message, delivered
    /// webhook runs.
    pub(in crate::store) writer: writer::StoreWriter,
}

/// Reader connections of a file database: enough for the API, the
/// realtime replays and the webhook dispatcher to read at once, each one's
/// page cache bounded (SQLite's default, 2 MiB).
const READERS: u32 = 4;

impl SqliteStore {
    /// Opens (creating if needed) and migrates the database at `url`, e.g.
    /// `sqlite://data/wagate.db` or `sqlite::memory:`.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        // One connection is the single writer SQLite wants. A `sqlite::memory:` database
        // exists per connection, so it is kept (never recycled); still, sqlx
        // replaces a connection whose query was cancelled, so in-memory is
        // for unit tests only, never for a serving gateway.
        // No ping before each acquire (sqlx's default): the connection
        // lives in this process, so there is no peer that could have hung
        // up, and the ping is a round trip to its worker thread that every
        // statement on the one writer would otherwise pay again.
        let pool = SqlitePoolOptions::new()
            .after_connect(|conn, _| Box::pin(stable_query_plans(conn)))
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        let reader = if is_in_memory(url) {
            pool.clone()
        } else {
            SqlitePoolOptions::new()
                .after_connect(|conn, _| Box::pin(stable_query_plans(conn)))
                .max_connections(READERS)
                .min_connections(0)
                .test_before_acquire(false)
                .connect_with(options.read_only(true).create_if_missing(false))
                .await?
        };
        let writers = Arc::default();
        Ok(Self {
            writer: writer::spawn(pool.clone(), Arc::clone(&writers)),
            pool,
            reader,
            key_fences: Arc::default(),
            holdings: Arc::default(),
            writers,
        })
    }
}

/// Turns on SQLite's query planner stability guarantee for `conn`: a
/// statement's plan then depends on its SQL alone, never on the values
/// bound to it.
///
/// Without it, SQLite (3.51, as bundled here) reads a bound `LIMIT $n`, or a
/// parameter compared with a partial index's condition, while planning,
/// and marks the statement to be planned again whenever that parameter is
/// bound anew. sqlx binds every parameter again on each execution, so
/// each such cached statement was parsed and planned again on every run:
/// the webhook queue-head and run reads, among others, about 15 % of the
/// gateway's CPU under inbound load (`perf`, BENCHMARKS.md). The plans it
/// would pick from the values are no better here: limits and partial
/// index conditions are the same whatever the value.
async fn stable_query_plans(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    match query_planner_stability(conn, 1).await? {
        1 => Ok(()),
        setting => Err(sqlx::Error::Configuration(
            format!("SQLite did not take the query planner stability guarantee ({setting})").into(),
        )),
    }
}

/// Sets the query planner stability guarantee of `conn` (`to`: 1 on, 0
/// off, -1 unchanged); returns the setting now in force.
async fn query_planner_stability(
    conn: &mut SqliteConnection,
    to: std::ffi::c_int,
) -> Result<std::ffi::c_int, sqlx::Error> {
    use libsqlite3_sys::{SQLITE_DBCONFIG_ENABLE_QPSG, SQLITE_OK, sqlite3_db_config};
    let mut handle = conn.lock_handle().await?;
    let db = handle.as_raw_handle().as_ptr();
    let mut setting: std::ffi::c_int = -1;
    // SAFETY: `db` is this connection's open handle, held by `handle` so
    // that nothing else calls into it meanwhile; this option takes an int
    // and a pointer to an int that receives the setting, both live here.
    #[allow(unsafe_code)]
    #[allow(unsafe_code)]
    let rc = unsafe { sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_QPSG, to, &raw mut setting) };
    if rc == SQLITE_OK {
        Ok(setting)
    } else {
        Err(sqlx::Error::Configuration(
            format!("SQLite refused the query planner stability option (code {rc})").into(),
        ))
    }
}

/// Whether `url` names a database that lives in one connection's memory.
fn is_in_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// Nothing to take: the pool's one connection already runs one
/// transaction at a time.
async fn lock_writers(_tx: &mut Transaction<'static, Sqlite>) -> Result<(), StoreError> {
    Ok(())
}

/// A fresh in-memory store for the shared store tests.
#[cfg(test)]
async fn test_store() -> Option<super::testing::TestStore<SqliteStore>> {
    match SqliteStore::connect("sqlite::memory:").await {
        Ok(store) => Some(super::testing::TestStore::new(store, None)),
        Err(e) => panic!("in-memory store: {e:?}"),
    }
}

/// A store on a file, as served (WAL, the writer and the read-only pool
/// apart), for tests of concurrent use; the directory goes with the guard.
#[cfg(test)]
async fn served_test_store() -> Option<(
    super::testing::TestStore<SqliteStore>,
    Option<tempfile::TempDir>,
)> {
    match file_store().await {
        Ok((store, dir)) => Some((super::testing::TestStore::new(store, None), Some(dir))),
        Err(e) => panic!("file store: {e:?}"),
    }
}

/// A store on a file in a fresh directory, which goes with the guard.
#[cfg(test)]
async fn file_store() -> Result<(SqliteStore, tempfile::TempDir), StoreError> {
    let dir = tempfile::TempDir::new().map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let url = format!("sqlite://{}", dir.path().join("wagate.db").display());
    Ok((SqliteStore::connect(&url).await?, dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{OrgId, SessionId, SessionStatus};
    use crate::events::{Envelope, EventData};
    use crate::store::NewSession;
    use crate::store::{EventStore, OrgStore, SessionStore};

    /// Reads of a file database run beside an open write: a transaction
    /// holding the writer neither blocks them nor shows them what it has
    /// not committed, and a commit is seen by the next read.
    #[tokio::test]
    async fn reads_run_beside_an_open_write_and_see_only_commits() -> Result<(), StoreError> {
        let (store, _dir) = file_store().await?;
        let mut tx = store.pool.begin().await?;
        sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES ($1, 'acme', 0)")
            .bind(OrgId::new().to_string())
            .execute(&mut *tx)
            .await?;
        let during = tokio::time::timeout(Duration::from_secs(10), store.count_orgs()).await;
        assert!(
            matches!(during, Ok(Ok(0))),
            "a read during an open write: {during:?}"
        );
        tx.commit().await?;
        assert_eq!(store.count_orgs().await?, 1);
        assert!(store.find_org("acme").await?.is_some());
        Ok(())
    }

    /// Every connection, the writer's and the readers', plans statements
    /// from their SQL alone (see `stable_query_plans`).
    #[tokio::test]
    async fn every_connection_has_stable_query_plans() -> Result<(), StoreError> {
        let (store, _dir) = file_store().await?;
        let mut writer = store.pool.acquire().await?;
        assert_eq!(query_planner_stability(&mut writer, -1).await?, 1);
        let mut readers = Vec::new();
        for _ in 0..READERS {
            readers.push(store.reader.acquire().await?);
        }
        for reader in &mut readers {
            assert_eq!(query_planner_stability(reader, -1).await?, 1);
        }
        Ok(())
    }

    /// A database made by the schema before the event log and messages
    /// (migrations up to 0010) keeps its rows and gains the new tables.
    #[tokio::test]
    async fn a_database_of_the_previous_schema_upgrades_in_place() -> Result<(), StoreError> {
        let dir = tempfile::TempDir::new().map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let url = format!("sqlite://{}", dir.path().join("old.db").display());
        {
            let options = SqliteConnectOptions::from_str(&url)?.create_if_missing(true);
            let pool = SqlitePoolOptions::new().connect_with(options).await?;
            let mut previous = sqlx::migrate!("./migrations/sqlite");
            previous.migrations = previous
                .migrations
                .iter()
                .filter(|m| m.version <= 10)
                .cloned()
                .collect::<Vec<_>>()
                .into();
            previous.run(&pool).await?;
            sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES ($1, 'acme', 0)")
                .bind(OrgId::new().to_string())
                .execute(&pool)
                .await?;
            pool.close().await;
        }
        let store = SqliteStore::connect(&url).await?;
        let org = store
            .find_org("acme")
            .await?
            .ok_or(StoreError::Corrupt("org lost".into()))?;
        let session = store
            .insert_session(NewSession {
                id: SessionId::new(),
                org_id: org.id,
                label: None,
                pace: Default::default(),
                history: Default::default(),
            })
            .await?;
        store
            .set_status(
                session.id,
                SessionStatus::Starting,
                None,
                &mut Envelope::new(
                    org.id,
                    session.id,
                    EventData::Status {
                        status: SessionStatus::Starting,
                        previous: SessionStatus::Stopped,
                        reason: None,
                    },
                ),
            )
            .await?;
        assert_eq!(store.events_after(org.id, None, 10).await?.len(), 1);
        Ok(())
    }
}

//! PostgreSQL backend. The aggregates are the same source as SQLite's
//! (`store/sql/`, compiled here a second time through `#[path]`; see
//! `store/sqlite/mod.rs`), so both keep one set of semantics: a change and
//! its event in one transaction, `ON CONFLICT` upserts, idempotency keys,
//! keyset pagination, the webhook outbox's queue heads.
//!
//! What SQLite gives for free and PostgreSQL does not is a single writer.
//! The event log is resumed by id ("everything after X"), which is only
//! sound if ids are in commit order: with concurrent writers, one
//! transaction could stamp an id, another stamp a later one and commit
//! first, and a client reading between the two commits would skip the
//! first event for good. And the read-modify-write transactions (a
//! webhook's patch, an idempotency claim, advancing a message) were
//! written for one writer. So every write transaction ([`begin_write`])
//! first takes one transaction-level advisory lock, held until it commits
//! or rolls back: write transactions run one at a time, as on SQLite,
//! while reads and single-statement writes outside them run concurrently.
//! The lock is taken before any row lock, so it cannot deadlock with one.
//! Ids come from the process's UUIDv7 generator, which never goes
//! backwards within a process; several gateway processes on one database
//! would also need their clocks in step (and are not supported yet).
//!
//! The WhatsApp key store (`store/sql/keys.rs`, `keys/`) writes outside the writer
//! lock: it logs no events, and each session's rows are its own.

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
mod leases;
#[cfg(test)]
mod leases_tests;
#[path = "../sql/messages.rs"]
mod messages;
mod nodelay;
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

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Transaction};

use super::StoreError;
use super::keys::KeyFences;
use super::leases::Holdings;

use leases::leases_of;

/// Locks the lease rows a write checks (`sql/fences.rs`) until it commits.
const FOR_SHARE: &str = " FOR SHARE";

#[allow(unused_imports)]
pub(super) use rows::{is_unique_violation, organization, parse, session};
use tx::{WriteTx, begin_write};

type Backend = PostgresStore;
type Db = Postgres;
type DbRow = PgRow;
type DbConnection = PgConnection;

/// The advisory lock that serialises write transactions: one 64-bit key
/// in PostgreSQL's space shared with any other user of the database, so a
/// distinctive one ("wagate" in ASCII, then 1).
const WRITER_LOCK: i64 = 0x7761_6761_7465_0001;

/// Connections to the server unless configured (`database_pool_size`):
/// reads and key writes run concurrently on them, write transactions one
/// at a time (they take their turn in the process before they take a
/// connection, see `sql/tx.rs`).
pub(super) const DEFAULT_POOL_SIZE: u32 = 10;

#[derive(Debug, Clone)]
pub(crate) struct PostgresStore {
    pub(in crate::store) pool: PgPool,
    /// Plain reads; on PostgreSQL the same pool, whose connections already
    /// read beside the writer (the shared SQL names the two apart for
    /// SQLite, which has one writer connection).
    pub(in crate::store) reader: PgPool,
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

impl PostgresStore {
    /// Connects to the existing database at `url`
    /// (`postgres://user:password@host:port/database`, with libpq's
    /// parameters such as `sslmode`), with a pool of `pool_size`
    /// connections, and migrates it. The database itself is not created:
    /// whoever runs PostgreSQL creates it and its owner.
    pub(crate) async fn connect_with(url: &str, pool_size: u32) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?;
        let server = Arc::new(options.clone());
        let pool = PgPoolOptions::new()
            .max_connections(pool_size.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |_conn, _meta| {
                let server = Arc::clone(&server);
                Box::pin(async move {
                    nodelay::set_on_connections_to(&server).await;
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        // sqlx takes an advisory lock of its own while migrating, so two
        // gateways starting at once do not both migrate.
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        let writers = Arc::default();
        Ok(Self {
            reader: pool.clone(),
            writer: writer::spawn(pool.clone(), Arc::clone(&writers)),
            pool,
            key_fences: Arc::default(),
            holdings: Arc::default(),
            writers,
        })
    }
}

async fn lock_writers(tx: &mut Transaction<'static, Postgres>) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(WRITER_LOCK)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A store on a database of its own, or `None` when there is no PostgreSQL
/// to test on (see `store/test_postgres.rs`).
#[cfg(test)]
async fn test_store() -> Option<super::testing::TestStore<PostgresStore>> {
    let database = super::testing::TestDatabase::create().await?;
    match PostgresStore::connect_with(database.url(), DEFAULT_POOL_SIZE).await {
        Ok(store) => Some(super::testing::TestStore::new(store, Some(database))),
        Err(e) => panic!("PostgreSQL store: {e:?}"),
    }
}

/// The same as [`test_store`]: a PostgreSQL store is always served from a
/// pool of its own (the shape the SQLite twin sets up with a file).
#[cfg(test)]
async fn served_test_store() -> Option<(
    super::testing::TestStore<PostgresStore>,
    Option<tempfile::TempDir>,
)> {
    test_store().await.map(|store| (store, None))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// Every connection of the pool has TCP_NODELAY, which sqlx 0.9.0 does
    /// not set (see `nodelay.rs`). Told apart from the other tests'
    /// connections to the same server by their local ports, which the
    /// server reports.
    #[tokio::test]
    async fn every_connection_to_the_server_has_tcp_nodelay() -> Result<(), StoreError> {
        let Some(store) = test_store().await else {
            return Ok(());
        };
        let servers = nodelay::server_addresses(&store.pool.connect_options()).await;
        if servers.is_empty() {
            // A Unix socket: nothing to set.
            return Ok(());
        }
        let mut held = Vec::new();
        for _ in 0..DEFAULT_POOL_SIZE {
            held.push(store.pool.acquire().await?);
        }
        let nodelay = nodelay::nodelay_by_local_port(&servers)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        for conn in &mut held {
            let port: i32 = sqlx::query_scalar("SELECT inet_client_port()")
                .fetch_one(&mut **conn)
                .await?;
            let port = u16::try_from(port).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            assert_eq!(
                nodelay.get(&port),
                Some(&true),
                "connection from port {port}"
            );
        }
        Ok(())
    }
}

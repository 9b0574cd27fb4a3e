//! The persistence seam. Handlers and supervisors see only the [`Store`]
//! trait, held as `Arc<dyn Store>`; the backend is chosen from the database
//! URL at start-up by [`connect`]: SQLite (`sqlite:`, the default) or
//! PostgreSQL (`postgres:`/`postgresql:`), one implementation of the
//! aggregates compiled for each (`sql/`).

pub(crate) mod chats;
pub(crate) mod contacts;
mod events;
pub(crate) mod groups;
mod history;
mod keys;
pub(crate) mod leases;
pub(crate) mod legacy_keys;
mod messages;
#[cfg(test)]
mod migration_twins;
mod orgs;
mod postgres;
pub(crate) mod presence;
pub(crate) mod process_lock;
mod sessions;
pub(crate) mod sqlite;
#[cfg(test)]
pub(crate) mod testing;
mod users;
pub(crate) mod webhooks;

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use futures::future::BoxFuture;

use crate::secret::Secret;

pub(crate) use chats::ChatStore;
pub(crate) use contacts::ContactStore;
pub(crate) use events::EventStore;
pub(crate) use groups::{GroupEdit, GroupStore, NoticeKey};
pub(crate) use history::{HistoryChat, NewHistory, StoredHistory};
pub(crate) use keys::{
    KeyCounts, KeySet, KeyStore, LidLookup, LidPn, MutationMac, PendingInbound, SentMessage,
};
pub(crate) use leases::{Held, LeaseStore, SessionMoved};
pub(crate) use messages::{
    Accepted, IdempotencyClaim, MessageQuery, MessageRecord, MessageStore, NewIncoming,
    NewOutgoing, OutboxDepth, OutboxItem, Received, StatusStep, StoredPoll,
};
pub(crate) use orgs::{OrgStore, Organization, TokenRecord};
pub(crate) use postgres::PostgresStore;
pub(crate) use presence::PresenceStore;
pub(crate) use sessions::{
    Cursor, NewSession, SessionChanges, SessionPage, SessionQuery, SessionRecord, SessionStore,
    StatusChange,
};
pub(crate) use sqlite::SqliteStore;
pub(crate) use users::{Membership, UserRecord, UserStore, WebSessionRecord};
pub(crate) use webhooks::{
    AfterFailure, AttemptResult, DeliveryQuery, DeliveryRecord, DueDelivery, NewWebhook,
    WebhookPatch, WebhookRecord, WebhookStore,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "unsupported database URL scheme {0:?}: use sqlite: (e.g. sqlite://data/wagate.db) \
         or postgres: / postgresql: (e.g. postgres://user@localhost/wagate)"
    )]
    UnsupportedScheme(String),
    #[error("{0} already exists")]
    Conflict(&'static str),
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored row is invalid: {0}")]
    Corrupt(String),
    /// An old per-session key file (before the keys moved into the
    /// database) could not be removed.
    #[error("could not remove a key file")]
    KeyFile(#[source] std::io::Error),
    /// The store's group-commit writer is gone (the gateway is shutting
    /// down, or the writer died and the gateway is stopping).
    #[error("the group-commit writer has stopped")]
    WriterStopped,
    /// The write's session is no longer owned here: its lease moved to
    /// another node (or was lost). Not to be retried: stop the session.
    #[error(transparent)]
    Moved(#[from] SessionMoved),
    /// Leases were asked of a store that has none (SQLite serves one
    /// process).
    #[error("this database has no session leases: several processes need PostgreSQL")]
    NoLeases,
}

/// The whole store, one accessor per aggregate. Each aggregate's trait
/// keeps its own queries; a change and the event reporting it are written
/// in one transaction by the aggregate that owns the change.
pub trait Store: Send + Sync + 'static {
    fn orgs(&self) -> &dyn OrgStore;
    fn sessions(&self) -> &dyn SessionStore;
    /// Dashboard accounts.
    fn users(&self) -> &dyn UserStore;
    fn events(&self) -> &dyn EventStore;
    fn messages(&self) -> &dyn MessageStore;
    /// The chat list, kept by the message writes.
    fn chats(&self) -> &dyn ChatStore;
    /// The people each session's account knows: names, ids, pictures.
    fn contacts(&self) -> &dyn ContactStore;
    /// Webhooks and their delivery outbox (queued by the event log).
    fn webhooks(&self) -> &dyn WebhookStore;
    /// Every session's WhatsApp keys (whatsapp-rust's storage backend).
    fn keys(&self) -> &dyn KeyStore;
    /// The groups each session's number is in.
    fn groups(&self) -> &dyn GroupStore;
    /// The contacts each session subscribed to the presence of.
    fn presence(&self) -> &dyn PresenceStore;
    /// Ownership of sessions by lease, for several processes on one
    /// database: PostgreSQL only (`None` on SQLite).
    fn leases(&self) -> Option<&dyn LeaseStore> {
        None
    }
    /// Resolves once the store's group-commit writer has ended, saying
    /// how. Every grouped write (statuses, incoming batches, key rows,
    /// delivered runs) waits on it, so the application stops when it
    /// does (`serve.rs`) rather than serve on without it.
    fn writer_ended(&self) -> BoxFuture<'static, Arc<str>>;
    /// Makes the group-commit writer panic, as a bug in it would.
    #[cfg(test)]
    fn panic_writer(&self) -> BoxFuture<'static, ()>;
}

/// Opens the store named by `url`. An unknown scheme is a start-up error,
/// never a silent fallback.
pub async fn connect(url: &Secret<String>) -> Result<Arc<dyn Store>, StoreError> {
    connect_with(url, postgres::DEFAULT_POOL_SIZE).await
}

/// [`connect`], with `pool_size` connections to a PostgreSQL server
/// (`database_pool_size`; SQLite has its own fixed shape).
pub(crate) async fn connect_with(
    url: &Secret<String>,
    pool_size: u32,
) -> Result<Arc<dyn Store>, StoreError> {
    let url = url.expose();
    let scheme = url
        .split_once(':')
        .map_or(url.as_str(), |(scheme, _)| scheme);
    match scheme {
        "sqlite" => Ok(Arc::new(SqliteStore::connect(url).await?)),
        "postgres" | "postgresql" => {
            Ok(Arc::new(PostgresStore::connect_with(url, pool_size).await?))
        }
        other => Err(StoreError::UnsupportedScheme(other.to_string())),
    }
}

/// Now, at the precision the store keeps, so a record returned from a write
/// equals the same record read back.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

fn from_millis(ms: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp {ms} out of range")))
}

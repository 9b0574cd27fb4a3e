//! The persistence seam. Handlers and supervisors see only the [`Store`]
//! trait, held as `Arc<dyn Store>`; the backend is chosen from the database
//! URL at start-up by [`connect`].

mod sqlite;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};

use crate::domain::{Label, OrgId, SessionId, SessionStatus, StatusReason, TokenHash, TokenId};
use crate::secret::Secret;

pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL scheme {0:?}: only sqlite: URLs are supported")]
    UnsupportedScheme(String),
    #[error("{0} already exists")]
    Conflict(&'static str),
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored row is invalid: {0}")]
    Corrupt(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    pub id: OrgId,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// What authentication needs to know about a presented token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: TokenId,
    pub org_id: OrgId,
    pub revoked: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: SessionId,
    pub org_id: OrgId,
    pub label: Option<Label>,
    pub status: SessionStatus,
    pub status_reason: Option<StatusReason>,
    pub phone: Option<String>,
    pub push_name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl SessionRecord {
    /// The gateway learns the phone number when a device links and forgets
    /// it when the link is removed, so it doubles as "has device keys".
    pub fn is_linked(&self) -> bool {
        self.phone.is_some()
    }
}

#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: SessionId,
    pub org_id: OrgId,
    pub label: Option<Label>,
}

/// A position in the `(created_at, id)` order of an organization's
/// sessions; opaque to API clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    created_at_ms: i64,
    id: SessionId,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid cursor")]
pub struct InvalidCursor;

impl Cursor {
    pub fn after(session: &SessionRecord) -> Self {
        Self {
            created_at_ms: session.created_at.timestamp_millis(),
            id: session.id,
        }
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.created_at_ms, self.id)
    }
}

impl FromStr for Cursor {
    type Err = InvalidCursor;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (ms, id) = s.split_once('.').ok_or(InvalidCursor)?;
        Ok(Self {
            created_at_ms: ms.parse().map_err(|_| InvalidCursor)?,
            id: id.parse().map_err(|_| InvalidCursor)?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct SessionQuery {
    pub status: Option<SessionStatus>,
    pub limit: u32,
    pub after: Option<Cursor>,
}

#[derive(Debug, Clone)]
pub struct SessionPage {
    pub sessions: Vec<SessionRecord>,
    pub next: Option<Cursor>,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    async fn create_org(&self, name: &str) -> Result<Organization, StoreError>;
    /// Looks an organization up by name, or by id when `key` is a UUID.
    async fn find_org(&self, key: &str) -> Result<Option<Organization>, StoreError>;
    async fn count_orgs(&self) -> Result<u64, StoreError>;

    async fn insert_token(
        &self,
        id: TokenId,
        org: OrgId,
        hash: &TokenHash,
    ) -> Result<(), StoreError>;
    async fn find_token(&self, hash: &TokenHash) -> Result<Option<TokenRecord>, StoreError>;
    /// Returns whether a live token with this id existed.
    async fn revoke_token(&self, id: TokenId) -> Result<bool, StoreError>;

    async fn insert_session(&self, new: NewSession) -> Result<SessionRecord, StoreError>;
    async fn get_session(
        &self,
        org: OrgId,
        id: SessionId,
    ) -> Result<Option<SessionRecord>, StoreError>;
    async fn list_sessions(
        &self,
        org: OrgId,
        query: &SessionQuery,
    ) -> Result<SessionPage, StoreError>;
    async fn set_label(
        &self,
        org: OrgId,
        id: SessionId,
        label: Option<&Label>,
    ) -> Result<Option<SessionRecord>, StoreError>;
    async fn delete_session(&self, org: OrgId, id: SessionId) -> Result<bool, StoreError>;

    /// Every session of every organization, for resuming at start-up.
    async fn all_sessions(&self) -> Result<Vec<SessionRecord>, StoreError>;
    async fn set_status(
        &self,
        id: SessionId,
        status: SessionStatus,
        reason: Option<StatusReason>,
    ) -> Result<(), StoreError>;
    async fn set_identity(
        &self,
        id: SessionId,
        phone: Option<&str>,
        push_name: Option<&str>,
    ) -> Result<(), StoreError>;
}

/// Opens the store named by `url`. An unknown scheme is a start-up error,
/// never a silent fallback.
pub async fn connect(url: &Secret<String>) -> Result<Arc<dyn Store>, StoreError> {
    let url = url.expose();
    let scheme = url
        .split_once(':')
        .map_or(url.as_str(), |(scheme, _)| scheme);
    match scheme {
        "sqlite" => Ok(Arc::new(SqliteStore::connect(url).await?)),
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

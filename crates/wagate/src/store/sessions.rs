//! Sessions: one linked (or to-be-linked) WhatsApp number each.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::domain::{
    HistoryScope, Label, OrgId, PerMinute, PresenceState, SessionBehaviour, SessionId, SessionPace,
    SessionStatus, StatusReason,
};
use crate::events::Envelope;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: SessionId,
    pub org_id: OrgId,
    pub label: Option<Label>,
    pub status: SessionStatus,
    pub status_reason: Option<StatusReason>,
    pub phone: Option<String>,
    pub push_name: Option<String>,
    /// What this session overrides of the gateway's send pace.
    pub pace: SessionPace,
    /// Its presence and what it does with calls.
    pub behaviour: SessionBehaviour,
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
    pub pace: SessionPace,
    /// How much of the history after a link it keeps.
    pub history: HistoryScope,
}

/// What a `PATCH` changes: `None` leaves a field as it is, `Some(None)`
/// clears it (a cleared pace follows the gateway's).
#[derive(Debug, Clone, Default)]
pub struct SessionChanges {
    pub label: Option<Option<Label>>,
    pub per_minute: Option<Option<PerMinute>>,
    pub new_chats_per_minute: Option<Option<PerMinute>>,
    pub presence: Option<PresenceState>,
    pub reject_calls: Option<bool>,
    /// A checked text (`domain::check_call_reply`), or `Some(None)` for none.
    pub reject_calls_message: Option<Option<String>>,
    pub history: Option<HistoryScope>,
}

/// A position in the `(created_at, id)` order of an organization's
/// sessions; opaque to API clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub(in crate::store) created_at_ms: i64,
    pub(in crate::store) id: SessionId,
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

/// One session's status change with the event reporting it, as
/// [`SessionStore::write_status`] writes it.
#[derive(Debug, Clone)]
pub struct StatusChange {
    pub id: SessionId,
    pub status: SessionStatus,
    pub reason: Option<StatusReason>,
    /// Stamped (id, time) when it is logged.
    pub event: Envelope,
}

#[derive(Debug, Clone)]
pub struct SessionPage {
    pub sessions: Vec<SessionRecord>,
    pub next: Option<Cursor>,
}

#[async_trait]
pub trait SessionStore: Send + Sync {
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
    /// Applies `changes`; `None` when the organization has no such session.
    async fn update_session(
        &self,
        org: OrgId,
        id: SessionId,
        changes: &SessionChanges,
    ) -> Result<Option<SessionRecord>, StoreError>;
    async fn delete_session(&self, org: OrgId, id: SessionId) -> Result<bool, StoreError>;

    /// Every session of every organization, for resuming at start-up.
    async fn all_sessions(&self) -> Result<Vec<SessionRecord>, StoreError>;
    /// How many sessions, of every organization, are in each status (a
    /// status no session is in is left out).
    async fn count_by_status(&self) -> Result<Vec<(SessionStatus, u64)>, StoreError>;
    /// Changes the status and logs the `session.status` event that reports
    /// it, in one transaction: either both are stored or neither.
    async fn set_status(
        &self,
        id: SessionId,
        status: SessionStatus,
        reason: Option<StatusReason>,
        event: &mut Envelope,
    ) -> Result<(), StoreError>;
    /// [`set_status`](Self::set_status) through the store's group-commit
    /// writer: committed with the other writes waiting at that moment, so
    /// a reconnect storm (every session writing `starting`, then
    /// `working`) is a few commits, not thousands. Returns the change with
    /// its event stamped (id, time).
    async fn write_status(&self, change: StatusChange) -> Result<StatusChange, StoreError>;
    async fn set_identity(
        &self,
        id: SessionId,
        phone: Option<&str>,
        push_name: Option<&str>,
    ) -> Result<(), StoreError>;
}

//! The groups each session's number is in, as WhatsApp last told the
//! gateway: the participating groups on every connect, then each `w:gp2`
//! notification (with the events it gives, in the same transaction).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::domain::{GroupInfo, GroupMember};
use crate::domain::{GroupRole, SessionId};
use crate::events::{Envelope, GroupUpdate};

/// One change to a session's stored groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupEdit {
    /// The group as WhatsApp describes it, members and all (replacing
    /// what was stored).
    Put(Box<GroupInfo>),
    /// The number is no longer in it.
    Drop { group: String },
    /// People joined (stored as given, replacing an earlier row of the
    /// same person, by number or LID).
    AddMembers {
        group: String,
        members: Vec<GroupMember>,
    },
    /// People left, by number or LID.
    RemoveMembers {
        group: String,
        members: Vec<GroupMember>,
    },
    /// People became admins, or members again.
    SetRole {
        group: String,
        members: Vec<GroupMember>,
        role: GroupRole,
    },
    /// Subject, description or settings.
    Update { group: String, update: GroupUpdate },
}

/// A notification action, by WhatsApp's notification id and the action's
/// place in it: applied once, however often WhatsApp delivers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeKey {
    pub notification: String,
    pub action: u32,
}

#[async_trait]
pub trait GroupStore: Send + Sync {
    /// Makes the session's stored groups exactly `groups` (what WhatsApp
    /// says the number is in, on connect). Logs no event: what changed
    /// while the session was away arrives as notifications.
    async fn replace_groups(
        &self,
        session: SessionId,
        groups: &[GroupInfo],
    ) -> Result<(), StoreError>;

    /// Applies `edits` and logs `events` (stamped here) in one
    /// transaction, unless `key` was applied before: then nothing is
    /// written and `false` is returned.
    async fn apply_group_edits(
        &self,
        session: SessionId,
        key: Option<&NoticeKey>,
        edits: &[GroupEdit],
        events: &mut [Envelope],
    ) -> Result<bool, StoreError>;

    /// The session's groups after `after` (a group JID), by JID.
    async fn list_groups(
        &self,
        session: SessionId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<GroupInfo>, StoreError>;

    async fn get_group(
        &self,
        session: SessionId,
        group: &str,
    ) -> Result<Option<GroupInfo>, StoreError>;

    /// Forgets the applied notifications older than `before`.
    async fn prune_group_notices(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
}

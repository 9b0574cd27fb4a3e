//! Groups: a member's role, what became of each person in a participant
//! change, a group as WhatsApp describes it, and the limits WhatsApp sets.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::named_enum;

/// WhatsApp's limits, checked before anything reaches it.
pub(crate) const SUBJECT_MAX_CHARS: usize = 100;
pub(crate) const DESCRIPTION_MAX_CHARS: usize = 2048;
pub(crate) const PARTICIPANTS_MAX: usize = 1024;

named_enum! {
    /// A member's role in a group.
    pub enum GroupRole {
        Member = "member",
        Admin = "admin",
        /// The group's creator (owner).
        SuperAdmin = "superadmin",
    }
}

named_enum! {
    /// What happened to one person in a create or a participant change.
    pub enum ParticipantOutcome {
        Added = "added",
        Removed = "removed",
        Promoted = "promoted",
        Demoted = "demoted",
        /// Already in the group (WhatsApp's 409).
        AlreadyMember = "already_member",
        /// The number has no WhatsApp account.
        NotOnWhatsapp = "not_on_whatsapp",
        /// Their privacy settings refuse being added: `invite_code` is the
        /// invite WhatsApp offers instead (WhatsApp's 403).
        PrivacyRestricted = "privacy_restricted",
        /// Not in the group, so not removed, promoted or demoted.
        NotMember = "not_member",
        /// Their request to join was approved: they are in.
        Approved = "approved",
        /// Their request to join was rejected.
        Rejected = "rejected",
        /// They have not asked to join (or their request was answered).
        NotRequested = "not_requested",
        /// The group is full (WhatsApp's 406).
        GroupFull = "group_full",
        /// WhatsApp refused with another code (`error`).
        Refused = "refused",
    }
}

named_enum! {
    /// What a `group.participants` event reports was done to the people it
    /// names.
    pub enum ParticipantsAction {
        Added = "added",
        Removed = "removed",
        Promoted = "promoted",
        Demoted = "demoted",
        /// They asked to join; an admin approves or rejects.
        Requested = "requested",
    }
}

named_enum! {
    /// A group's picture, changed.
    pub enum PictureChange {
        Set = "set",
        Removed = "removed",
    }
}

/// A member of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct GroupMember {
    /// Their phone number, digits only; `null` while only their LID is known.
    pub phone: Option<String>,
    /// Their LID (`<digits>@lid`), when known.
    pub lid: Option<String>,
    pub role: GroupRole,
}

/// A group's settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct GroupSettings {
    /// Only admins send messages.
    pub announce: bool,
    /// Only admins edit the group's info.
    pub locked: bool,
    /// Disappearing messages after this many seconds; 0: off.
    pub ephemeral: u32,
    /// Admins approve who joins by link.
    pub approval: bool,
}

/// A group as WhatsApp describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct GroupInfo {
    /// The group's JID, `<digits>@g.us`.
    pub id: String,
    pub subject: String,
    pub description: Option<String>,
    /// The creator's phone number, when known.
    pub owner: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub settings: GroupSettings,
    pub participants: Vec<GroupMember>,
}

/// Someone who asked to join a group whose admins approve who joins.
// Named apart in the document: `JoinRequest` is the body of `…/groups/join`,
// and utoipa lets the last schema of a name replace the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = MembershipRequest)]
pub struct JoinRequest {
    /// Their phone number, digits only; `null` while only their LID is known.
    pub phone: Option<String>,
    /// Their LID (`<digits>@lid`), when known.
    pub lid: Option<String>,
    /// When they asked, when WhatsApp says.
    pub requested_at: Option<DateTime<Utc>>,
}

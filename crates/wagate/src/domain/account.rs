//! Dashboard accounts: who a person is (an email), what they may do in an
//! organization (a role).

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

use super::named_enum;

/// A dashboard user's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(Uuid);

impl UserId {
    /// Time-ordered, like the other ids (see `domain::ids`).
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for UserId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for UserId {
    type Err = super::ParseIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s)
            .map(Self)
            .map_err(|_| super::ParseIdError)
    }
}

const MAX_EMAIL: usize = 254;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("enter an email address like name@example.com")]
pub struct InvalidEmail;

/// An email address, trimmed and lower-cased so that sign-in ignores case.
/// Only the shape is checked (one `@`, something either side, no spaces):
/// nothing is ever mailed to it, it is a sign-in name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for Email {
    type Error = InvalidEmail;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        let value = value.trim().to_lowercase();
        let well_formed = value.len() <= MAX_EMAIL
            && !value.chars().any(|c| c.is_whitespace() || c.is_control())
            && matches!(value.split_once('@'), Some((local, domain))
                if !local.is_empty() && !domain.is_empty() && !domain.contains('@'));
        if well_formed {
            Ok(Self(value))
        } else {
            Err(InvalidEmail)
        }
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("role must be owner, admin or member")]
pub struct UnknownRole;

impl From<&str> for UnknownRole {
    fn from(_: &str) -> Self {
        Self
    }
}

named_enum! {
    error UnknownRole;
    /// What a user may do in one organization. Owners and admins manage
    /// members and API tokens; members work with sessions only.
    // Declared from most to least: `Ord` says who may grant what.
    #[derive(PartialOrd, Ord)]
    pub enum Role {
        Owner = "owner",
        Admin = "admin",
        Member = "member",
    }
}

impl Role {
    /// Whether this role manages members and API tokens.
    pub fn can_manage(self) -> bool {
        matches!(self, Self::Owner | Self::Admin)
    }

    /// Whether this role may hand out `other`: nobody grants more than
    /// they hold.
    pub fn can_grant(self, other: Role) -> bool {
        self.can_manage() && self <= other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_shape_checked() {
        assert_eq!(
            Email::try_from("  Ada@Example.COM ").map(|e| e.to_string()),
            Ok("ada@example.com".to_string())
        );
        assert!(Email::try_from("admin@localhost").is_ok());
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "a b@example.com",
            "a@b@c",
        ] {
            assert_eq!(Email::try_from(bad), Err(InvalidEmail), "{bad:?}");
        }
    }

    #[test]
    fn only_owners_and_admins_manage_and_nobody_grants_above_themselves() {
        assert!(Role::Owner.can_grant(Role::Owner));
        assert!(Role::Admin.can_grant(Role::Member));
        assert!(!Role::Admin.can_grant(Role::Owner));
        assert!(!Role::Member.can_grant(Role::Member));
        assert_eq!("admin".parse(), Ok(Role::Admin));
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn role_names_round_trip() {
        crate::domain::named::assert_names_round_trip::<Role>();
    }
}

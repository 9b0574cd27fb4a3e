//! Dashboard accounts in the store: users, their memberships, browser
//! sessions, and the token listing the dashboard shows. A sub-trait of its
//! own so the API's [`Store`](super::Store) stays narrow; reach it with
//! `store.users()`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Organization, StoreError};
use crate::domain::{Email, OrgId, Role, TokenHash, TokenId, UserId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: UserId,
    pub email: Email,
    /// The argon2id PHC string.
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
}

/// One of a user's organizations and their role there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub org: Organization,
    pub role: Role,
}

/// One of an organization's users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub user_id: UserId,
    pub email: Email,
    pub role: Role,
    pub since: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSessionRecord {
    /// SHA-256 of the cookie value, hex.
    pub id_hash: String,
    pub user_id: UserId,
    pub org_id: OrgId,
    pub csrf_token: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// An API token as the dashboard lists it: never the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub id: TokenId,
    pub name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[async_trait]
pub trait UserStore: Send + Sync {
    /// Fails with [`StoreError::Conflict`] when the email is taken.
    async fn create_user(
        &self,
        email: &Email,
        password_hash: &str,
    ) -> Result<UserRecord, StoreError>;
    /// Creates the account and its membership of `org` in one
    /// transaction: both or neither, so a failed membership leaves no
    /// account that belongs nowhere. [`StoreError::Conflict`] when the
    /// email is taken.
    async fn create_member(
        &self,
        email: &Email,
        password_hash: &str,
        org: OrgId,
        role: Role,
    ) -> Result<UserRecord, StoreError>;
    async fn find_user(&self, email: &Email) -> Result<Option<UserRecord>, StoreError>;
    async fn get_user(&self, id: UserId) -> Result<Option<UserRecord>, StoreError>;
    async fn count_users(&self) -> Result<u64, StoreError>;
    /// The oldest organization, which first-start bootstrap puts the first
    /// user in.
    async fn first_org(&self) -> Result<Option<Organization>, StoreError>;

    /// Fails with [`StoreError::Conflict`] when the user is already a member.
    async fn add_membership(&self, user: UserId, org: OrgId, role: Role) -> Result<(), StoreError>;
    /// The user's organizations, by name.
    async fn memberships(&self, user: UserId) -> Result<Vec<Membership>, StoreError>;
    /// The organization's users, by email.
    async fn members(&self, org: OrgId) -> Result<Vec<Member>, StoreError>;

    async fn insert_web_session(&self, session: &WebSessionRecord) -> Result<(), StoreError>;
    /// A live (unexpired) browser session.
    async fn find_web_session(&self, id_hash: &str)
    -> Result<Option<WebSessionRecord>, StoreError>;
    async fn set_web_session_org(&self, id_hash: &str, org: OrgId) -> Result<(), StoreError>;
    async fn delete_web_session(&self, id_hash: &str) -> Result<(), StoreError>;

    async fn insert_named_token(
        &self,
        id: TokenId,
        org: OrgId,
        hash: &TokenHash,
        name: &str,
    ) -> Result<(), StoreError>;
    /// The organization's tokens, newest first.
    async fn list_tokens(&self, org: OrgId) -> Result<Vec<TokenInfo>, StoreError>;
    /// Revokes a token of `org` only; returns whether a live one existed.
    async fn revoke_org_token(&self, org: OrgId, id: TokenId) -> Result<bool, StoreError>;
}

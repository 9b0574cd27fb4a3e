//! Organizations and their API tokens.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::domain::{OrgId, TokenHash, TokenId};

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

#[async_trait]
pub trait OrgStore: Send + Sync {
    async fn create_org(&self, name: &str) -> Result<Organization, StoreError>;
    /// Creates the organization and its first API token (`id`, `hash`) in
    /// one transaction: both or neither, so a first start that fails half
    /// way leaves no organization without a token (and runs again).
    async fn create_org_with_token(
        &self,
        name: &str,
        id: TokenId,
        hash: &TokenHash,
    ) -> Result<Organization, StoreError>;
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
}

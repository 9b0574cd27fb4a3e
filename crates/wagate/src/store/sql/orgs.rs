//! Organizations and API tokens.

use async_trait::async_trait;
use sqlx::Row;

use super::{Backend, is_unique_violation, organization, parse};
use crate::domain::{OrgId, TokenHash, TokenId};
use crate::store::{OrgStore, Organization, StoreError, TokenRecord, millis, now};

#[async_trait]
impl OrgStore for Backend {
    async fn create_org(&self, name: &str) -> Result<Organization, StoreError> {
        let org = Organization {
            id: OrgId::new(),
            name: name.to_string(),
            created_at: now(),
        };
        sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(org.id.to_string())
            .bind(&org.name)
            .bind(millis(org.created_at))
            .execute(&self.pool)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict("an organization with this name")
                } else {
                    e.into()
                }
            })?;
        Ok(org)
    }

    async fn find_org(&self, key: &str) -> Result<Option<Organization>, StoreError> {
        sqlx::query("SELECT id, name, created_at FROM organizations WHERE name = $1 OR id = $1")
            .bind(key)
            .fetch_optional(&self.reader)
            .await?
            .as_ref()
            .map(organization)
            .transpose()
    }

    async fn count_orgs(&self) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM organizations")
            .fetch_one(&self.reader)
            .await?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    async fn insert_token(
        &self,
        id: TokenId,
        org: OrgId,
        hash: &TokenHash,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_tokens (id, org_id, token_hash, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(id.to_string())
        .bind(org.to_string())
        .bind(hash.as_str())
        .bind(millis(now()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn find_token(&self, hash: &TokenHash) -> Result<Option<TokenRecord>, StoreError> {
        let Some(row) =
            sqlx::query("SELECT id, org_id, revoked_at FROM api_tokens WHERE token_hash = $1")
                .bind(hash.as_str())
                .fetch_optional(&self.reader)
                .await?
        else {
            return Ok(None);
        };
        let revoked_at: Option<i64> = row.try_get("revoked_at")?;
        Ok(Some(TokenRecord {
            id: parse("api_tokens.id", row.try_get("id")?)?,
            org_id: parse("api_tokens.org_id", row.try_get("org_id")?)?,
            revoked: revoked_at.is_some(),
        }))
    }

    async fn revoke_token(&self, id: TokenId) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(millis(now()))
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }
}

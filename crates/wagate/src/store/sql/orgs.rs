//! Organizations and API tokens.

use async_trait::async_trait;
use sqlx::Row;

use super::{Backend, DbConnection, is_unique_violation, organization, parse};
use crate::domain::{OrgId, TokenHash, TokenId};
use crate::store::{OrgStore, Organization, StoreError, TokenRecord, millis, now};

async fn insert_org(conn: &mut DbConnection, name: &str) -> Result<Organization, StoreError> {
    let org = Organization {
        id: OrgId::new(),
        name: name.to_string(),
        created_at: now(),
    };
    sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, $3)")
        .bind(org.id.to_string())
        .bind(&org.name)
        .bind(millis(org.created_at))
        .execute(&mut *conn)
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

async fn insert_token(
    conn: &mut DbConnection,
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
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[async_trait]
impl OrgStore for Backend {
    async fn create_org(&self, name: &str) -> Result<Organization, StoreError> {
        insert_org(&mut *self.pool.acquire().await?, name).await
    }

    async fn create_org_with_token(
        &self,
        name: &str,
        id: TokenId,
        hash: &TokenHash,
    ) -> Result<Organization, StoreError> {
        // It logs no event, so a plain transaction, not the writer's turn.
        let mut tx = self.pool.begin().await?;
        let org = insert_org(&mut tx, name).await?;
        insert_token(&mut tx, id, org.id, hash).await?;
        tx.commit().await?;
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
        insert_token(&mut *self.pool.acquire().await?, id, org, hash).await
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

#[cfg(test)]
mod tests {
    use super::super::test_store;
    use super::*;

    /// Bootstrap's write: the organization and its token, both or neither.
    #[tokio::test]
    async fn an_organization_and_its_token_are_created_together_or_not_at_all()
    -> Result<(), StoreError> {
        let Some(store) = test_store().await else {
            return Ok(());
        };
        let hash = TokenHash::of("wag_first");
        let id = TokenId::new();
        let org = store.create_org_with_token("default", id, &hash).await?;
        assert_eq!(store.find_org("default").await?, Some(org.clone()));
        assert_eq!(
            store.find_token(&hash).await?,
            Some(TokenRecord {
                id,
                org_id: org.id,
                revoked: false,
            })
        );

        // The second write fails (the token's hash is taken): the
        // organization of the first is rolled back with it.
        assert!(
            store
                .create_org_with_token("second", TokenId::new(), &hash)
                .await
                .is_err()
        );
        assert_eq!(store.find_org("second").await?, None);
        assert_eq!(store.count_orgs().await?, 1);

        // The first fails (the name is taken): no token is left either.
        let other = TokenHash::of("wag_other");
        assert!(matches!(
            store
                .create_org_with_token("default", TokenId::new(), &other)
                .await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(store.find_token(&other).await?, None);
        Ok(())
    }
}

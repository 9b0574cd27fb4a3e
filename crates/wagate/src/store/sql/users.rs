//! Dashboard accounts.

use async_trait::async_trait;
use sqlx::Row;

use super::{Backend, DbConnection, DbRow, parse};
use crate::domain::{Email, OrgId, Role, TokenHash, TokenId, UserId};
use crate::store::users::{Member, Membership, TokenInfo, UserRecord, UserStore, WebSessionRecord};
use crate::store::{Organization, StoreError, from_millis, millis, now};

fn email(column: &str, value: &str) -> Result<Email, StoreError> {
    Email::try_from(value).map_err(|_| StoreError::Corrupt(format!("{column} = {value:?}")))
}

fn user(row: &DbRow) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        id: parse("users.id", row.try_get("id")?)?,
        email: email("users.email", row.try_get("email")?)?,
        password_hash: row.try_get("password_hash")?,
        created_at: from_millis(row.try_get("created_at")?)?,
    })
}

fn web_session(row: &DbRow) -> Result<WebSessionRecord, StoreError> {
    Ok(WebSessionRecord {
        id_hash: row.try_get("id_hash")?,
        user_id: parse("web_sessions.user_id", row.try_get("user_id")?)?,
        org_id: parse("web_sessions.org_id", row.try_get("org_id")?)?,
        csrf_token: row.try_get("csrf_token")?,
        created_at: from_millis(row.try_get("created_at")?)?,
        expires_at: from_millis(row.try_get("expires_at")?)?,
    })
}

fn conflict(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |error| match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
        _ => error.into(),
    }
}

async fn insert_user(
    conn: &mut DbConnection,
    email: &Email,
    password_hash: &str,
) -> Result<UserRecord, StoreError> {
    let record = UserRecord {
        id: UserId::new(),
        email: email.clone(),
        password_hash: password_hash.to_string(),
        created_at: now(),
    };
    sqlx::query("INSERT INTO users (id, email, password_hash, created_at) VALUES ($1, $2, $3, $4)")
        .bind(record.id.to_string())
        .bind(record.email.as_str())
        .bind(&record.password_hash)
        .bind(millis(record.created_at))
        .execute(&mut *conn)
        .await
        .map_err(conflict("a user with this email"))?;
    Ok(record)
}

async fn insert_membership(
    conn: &mut DbConnection,
    user: UserId,
    org: OrgId,
    role: Role,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO memberships (user_id, org_id, role, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(user.to_string())
    .bind(org.to_string())
    .bind(role.as_str())
    .bind(millis(now()))
    .execute(&mut *conn)
    .await
    .map_err(conflict("a membership of this user"))?;
    Ok(())
}

#[async_trait]
impl UserStore for Backend {
    async fn create_user(
        &self,
        email: &Email,
        password_hash: &str,
    ) -> Result<UserRecord, StoreError> {
        insert_user(&mut *self.pool.acquire().await?, email, password_hash).await
    }

    async fn create_member(
        &self,
        email: &Email,
        password_hash: &str,
        org: OrgId,
        role: Role,
    ) -> Result<UserRecord, StoreError> {
        // It logs no event, so a plain transaction, not the writer's turn.
        let mut tx = self.pool.begin().await?;
        let user = insert_user(&mut tx, email, password_hash).await?;
        insert_membership(&mut tx, user.id, org, role).await?;
        tx.commit().await?;
        Ok(user)
    }

    async fn find_user(&self, email: &Email) -> Result<Option<UserRecord>, StoreError> {
        sqlx::query("SELECT id, email, password_hash, created_at FROM users WHERE email = $1")
            .bind(email.as_str())
            .fetch_optional(&self.reader)
            .await?
            .as_ref()
            .map(user)
            .transpose()
    }

    async fn get_user(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        sqlx::query("SELECT id, email, password_hash, created_at FROM users WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await?
            .as_ref()
            .map(user)
            .transpose()
    }

    async fn count_users(&self) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.reader)
            .await?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    async fn first_org(&self) -> Result<Option<Organization>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT id, name, created_at FROM organizations ORDER BY created_at, id LIMIT 1",
        )
        .fetch_optional(&self.reader)
        .await?
        else {
            return Ok(None);
        };
        Ok(Some(Organization {
            id: parse("organizations.id", row.try_get("id")?)?,
            name: row.try_get("name")?,
            created_at: from_millis(row.try_get("created_at")?)?,
        }))
    }

    async fn add_membership(&self, user: UserId, org: OrgId, role: Role) -> Result<(), StoreError> {
        insert_membership(&mut *self.pool.acquire().await?, user, org, role).await
    }

    async fn memberships(&self, user: UserId) -> Result<Vec<Membership>, StoreError> {
        let rows = sqlx::query(
            "SELECT o.id, o.name, o.created_at, m.role FROM memberships m \
             JOIN organizations o ON o.id = m.org_id WHERE m.user_id = $1 ORDER BY o.name",
        )
        .bind(user.to_string())
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Membership {
                    org: Organization {
                        id: parse("organizations.id", row.try_get("id")?)?,
                        name: row.try_get("name")?,
                        created_at: from_millis(row.try_get("created_at")?)?,
                    },
                    role: parse("memberships.role", row.try_get("role")?)?,
                })
            })
            .collect()
    }

    async fn members(&self, org: OrgId) -> Result<Vec<Member>, StoreError> {
        let rows = sqlx::query(
            "SELECT u.id, u.email, m.role, m.created_at FROM memberships m \
             JOIN users u ON u.id = m.user_id WHERE m.org_id = $1 ORDER BY u.email",
        )
        .bind(org.to_string())
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Member {
                    user_id: parse("users.id", row.try_get("id")?)?,
                    email: email("users.email", row.try_get("email")?)?,
                    role: parse("memberships.role", row.try_get("role")?)?,
                    since: from_millis(row.try_get("created_at")?)?,
                })
            })
            .collect()
    }

    async fn insert_web_session(&self, session: &WebSessionRecord) -> Result<(), StoreError> {
        // Expired rows are swept here, on the write path: sign-ins are rare
        // enough that this costs nothing and no sweeper task is needed.
        sqlx::query("DELETE FROM web_sessions WHERE expires_at <= $1")
            .bind(millis(now()))
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO web_sessions (id_hash, user_id, org_id, csrf_token, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&session.id_hash)
        .bind(session.user_id.to_string())
        .bind(session.org_id.to_string())
        .bind(&session.csrf_token)
        .bind(millis(session.created_at))
        .bind(millis(session.expires_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn find_web_session(
        &self,
        id_hash: &str,
    ) -> Result<Option<WebSessionRecord>, StoreError> {
        sqlx::query(
            "SELECT id_hash, user_id, org_id, csrf_token, created_at, expires_at \
             FROM web_sessions WHERE id_hash = $1 AND expires_at > $2",
        )
        .bind(id_hash)
        .bind(millis(now()))
        .fetch_optional(&self.reader)
        .await?
        .as_ref()
        .map(web_session)
        .transpose()
    }

    async fn set_web_session_org(&self, id_hash: &str, org: OrgId) -> Result<(), StoreError> {
        sqlx::query("UPDATE web_sessions SET org_id = $1 WHERE id_hash = $2")
            .bind(org.to_string())
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn delete_web_session(&self, id_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM web_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn insert_named_token(
        &self,
        id: TokenId,
        org: OrgId,
        hash: &TokenHash,
        name: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_tokens (id, org_id, token_hash, created_at, name) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id.to_string())
        .bind(org.to_string())
        .bind(hash.as_str())
        .bind(millis(now()))
        .bind(name)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_tokens(&self, org: OrgId) -> Result<Vec<TokenInfo>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, name, created_at, revoked_at FROM api_tokens WHERE org_id = $1 \
             ORDER BY created_at DESC, id DESC",
        )
        .bind(org.to_string())
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                let revoked_at: Option<i64> = row.try_get("revoked_at")?;
                Ok(TokenInfo {
                    id: parse("api_tokens.id", row.try_get("id")?)?,
                    name: row.try_get("name")?,
                    created_at: from_millis(row.try_get("created_at")?)?,
                    revoked_at: revoked_at.map(from_millis).transpose()?,
                })
            })
            .collect()
    }

    async fn revoke_org_token(&self, org: OrgId, id: TokenId) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 \
             WHERE id = $2 AND org_id = $3 AND revoked_at IS NULL",
        )
        .bind(millis(now()))
        .bind(id.to_string())
        .bind(org.to_string())
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_store;
    use super::*;
    use crate::store::{OrgStore, Store};

    fn email(s: &str) -> Email {
        Email::try_from(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn users_memberships_and_tokens_round_trip() -> Result<(), StoreError> {
        let Some(store) = test_store().await else {
            return Ok(());
        };
        let users = store.users();
        let org = store.create_org("acme").await?;
        let other = store.create_org("globex").await?;
        let ada = users
            .create_user(&email("ada@example.com"), "$hash")
            .await?;
        assert!(matches!(
            users.create_user(&email("ADA@example.com"), "$x").await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(
            users.find_user(&email("Ada@Example.com")).await?,
            Some(ada.clone())
        );
        users.add_membership(ada.id, org.id, Role::Owner).await?;
        assert!(matches!(
            users.add_membership(ada.id, org.id, Role::Member).await,
            Err(StoreError::Conflict(_))
        ));
        let memberships = users.memberships(ada.id).await?;
        assert_eq!(memberships.len(), 1);
        assert_eq!(memberships[0].role, Role::Owner);
        assert_eq!(users.members(org.id).await?.len(), 1);
        assert!(users.members(other.id).await?.is_empty());
        assert_eq!(users.first_org().await?.map(|o| o.id), Some(org.id));

        let token = TokenId::new();
        users
            .insert_named_token(token, org.id, &TokenHash::of("wag_x"), "ci")
            .await?;
        assert!(
            !users.revoke_org_token(other.id, token).await?,
            "other org's token"
        );
        assert!(users.revoke_org_token(org.id, token).await?);
        let listed = users.list_tokens(org.id).await?;
        assert_eq!(listed.len(), 1);
        assert!(listed[0].revoked_at.is_some());
        Ok(())
    }

    /// A new dashboard user's write: the account and its membership, both
    /// or neither.
    #[tokio::test]
    async fn an_account_and_its_membership_are_created_together_or_not_at_all()
    -> Result<(), StoreError> {
        let Some(store) = test_store().await else {
            return Ok(());
        };
        let users = store.users();
        let org = store.create_org("acme").await?;
        let ada = users
            .create_member(&email("ada@example.com"), "$hash", org.id, Role::Admin)
            .await?;
        assert_eq!(
            users.find_user(&email("ada@example.com")).await?,
            Some(ada.clone())
        );
        let memberships = users.memberships(ada.id).await?;
        assert_eq!(memberships.len(), 1);
        assert_eq!(memberships[0].org.id, org.id);
        assert_eq!(memberships[0].role, Role::Admin);

        // The membership violates its foreign key (no such organization):
        // the account created before it in the transaction goes too.
        assert!(
            users
                .create_member(
                    &email("bob@example.com"),
                    "$hash",
                    OrgId::new(),
                    Role::Member
                )
                .await
                .is_err()
        );
        assert_eq!(users.find_user(&email("bob@example.com")).await?, None);
        assert_eq!(users.count_users().await?, 1);

        // A taken email is the conflict `create_user` reports, and adds no
        // membership.
        let other = store.create_org("globex").await?;
        assert!(matches!(
            users
                .create_member(&email("ADA@example.com"), "$x", other.id, Role::Member)
                .await,
            Err(StoreError::Conflict(_))
        ));
        assert!(users.members(other.id).await?.is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn expired_web_sessions_are_not_found() -> Result<(), StoreError> {
        let Some(store) = test_store().await else {
            return Ok(());
        };
        let users = store.users();
        let org = store.create_org("acme").await?;
        let ada = users
            .create_user(&email("ada@example.com"), "$hash")
            .await?;
        let live = WebSessionRecord {
            id_hash: "live".into(),
            user_id: ada.id,
            org_id: org.id,
            csrf_token: "c".into(),
            created_at: now(),
            expires_at: now() + chrono::Duration::hours(1),
        };
        let expired = WebSessionRecord {
            id_hash: "expired".into(),
            expires_at: now() - chrono::Duration::seconds(1),
            ..live.clone()
        };
        users.insert_web_session(&expired).await?;
        users.insert_web_session(&live).await?;
        assert_eq!(users.find_web_session("live").await?, Some(live));
        assert_eq!(users.find_web_session("expired").await?, None);
        users.delete_web_session("live").await?;
        assert_eq!(users.find_web_session("live").await?, None);
        Ok(())
    }
}

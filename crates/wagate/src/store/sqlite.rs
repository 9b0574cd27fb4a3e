//! SQLite backend. Queries stick to SQL that PostgreSQL also accepts
//! (`$n` placeholders, no `INSERT OR ...`), so a PostgreSQL backend can share
//! them.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};

use super::{
    Cursor, NewSession, Organization, SessionPage, SessionQuery, SessionRecord, Store, StoreError,
    TokenRecord, from_millis, millis, now,
};
use crate::domain::{Label, OrgId, SessionId, SessionStatus, StatusReason, TokenHash, TokenId};

/// Expands to a string literal so queries stay `&'static str`, which sqlx
/// requires as proof that no input was spliced into the SQL.
macro_rules! select_sessions {
    ($($rest:literal)*) => {
        concat!(
            "SELECT id, org_id, label, status, status_reason, phone, push_name, created_at, updated_at \
             FROM sessions ",
            $($rest),*
        )
    };
}

#[derive(Debug, Clone)]
pub struct SqliteStore {
    // Shared with the accounts queries in `store/users.rs`.
    pub(super) pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) and migrates the database at `url`, e.g.
    /// `sqlite://data/wagate.db` or `sqlite::memory:`.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        // One connection is the single writer SQLite wants, and the write
        // volume here (status changes) is tiny. A `sqlite::memory:` database
        // exists per connection, so it is kept (never recycled); still, sqlx
        // replaces a connection whose query was cancelled, so in-memory is
        // for unit tests only, never for a serving gateway.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Self { pool })
    }
}

fn parse<T: FromStr>(column: &str, value: &str) -> Result<T, StoreError> {
    value
        .parse()
        .map_err(|_| StoreError::Corrupt(format!("{column} = {value:?}")))
}

fn organization(row: &SqliteRow) -> Result<Organization, StoreError> {
    Ok(Organization {
        id: parse("organizations.id", row.try_get("id")?)?,
        name: row.try_get("name")?,
        created_at: from_millis(row.try_get("created_at")?)?,
    })
}

fn session(row: &SqliteRow) -> Result<SessionRecord, StoreError> {
    let label: Option<String> = row.try_get("label")?;
    let reason: Option<&str> = row.try_get("status_reason")?;
    Ok(SessionRecord {
        id: parse("sessions.id", row.try_get("id")?)?,
        org_id: parse("sessions.org_id", row.try_get("org_id")?)?,
        label: label
            .map(|label| {
                Label::try_from(label)
                    .map_err(|e| StoreError::Corrupt(format!("sessions.label: {e}")))
            })
            .transpose()?,
        status: parse("sessions.status", row.try_get("status")?)?,
        status_reason: reason
            .map(|reason| parse::<StatusReason>("sessions.status_reason", reason))
            .transpose()?,
        phone: row.try_get("phone")?,
        push_name: row.try_get("push_name")?,
        created_at: from_millis(row.try_get("created_at")?)?,
        updated_at: from_millis(row.try_get("updated_at")?)?,
    })
}

fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

#[async_trait]
impl Store for SqliteStore {
    fn users(&self) -> &dyn super::UserStore {
        self
    }

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
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(organization)
            .transpose()
    }

    async fn count_orgs(&self) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM organizations")
            .fetch_one(&self.pool)
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
                .fetch_optional(&self.pool)
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

    async fn insert_session(&self, new: NewSession) -> Result<SessionRecord, StoreError> {
        let now = now();
        let record = SessionRecord {
            id: new.id,
            org_id: new.org_id,
            label: new.label,
            status: SessionStatus::Stopped,
            status_reason: None,
            phone: None,
            push_name: None,
            created_at: now,
            updated_at: now,
        };
        sqlx::query(
            "INSERT INTO sessions (id, org_id, label, status, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(record.id.to_string())
        .bind(record.org_id.to_string())
        .bind(record.label.as_ref().map(Label::as_str))
        .bind(record.status.as_str())
        .bind(millis(now))
        .bind(millis(now))
        .execute(&self.pool)
        .await?;
        Ok(record)
    }

    async fn get_session(
        &self,
        org: OrgId,
        id: SessionId,
    ) -> Result<Option<SessionRecord>, StoreError> {
        sqlx::query(select_sessions!("WHERE id = $1 AND org_id = $2"))
            .bind(id.to_string())
            .bind(org.to_string())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(session)
            .transpose()
    }

    async fn list_sessions(
        &self,
        org: OrgId,
        query: &SessionQuery,
    ) -> Result<SessionPage, StoreError> {
        // Fetch one extra row to learn whether another page exists.
        let fetch = i64::from(query.limit) + 1;
        let (after_ms, after_id) = query.after.map_or((i64::MIN, String::new()), |c| {
            (c.created_at_ms, c.id.to_string())
        });
        let rows = sqlx::query(select_sessions!(
            "WHERE org_id = $1 AND ($2 IS NULL OR status = $2) "
            "AND (created_at > $3 OR (created_at = $3 AND id > $4)) "
            "ORDER BY created_at, id LIMIT $5"
        ))
        .bind(org.to_string())
        .bind(query.status.map(SessionStatus::as_str))
        .bind(after_ms)
        .bind(after_id)
        .bind(fetch)
        .fetch_all(&self.pool)
        .await?;
        let mut sessions = rows.iter().map(session).collect::<Result<Vec<_>, _>>()?;
        let next = if sessions.len() > query.limit as usize {
            sessions.truncate(query.limit as usize);
            sessions.last().map(Cursor::after)
        } else {
            None
        };
        Ok(SessionPage { sessions, next })
    }

    async fn set_label(
        &self,
        org: OrgId,
        id: SessionId,
        label: Option<&Label>,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let result = sqlx::query(
            "UPDATE sessions SET label = $1, updated_at = $2 WHERE id = $3 AND org_id = $4",
        )
        .bind(label.map(Label::as_str))
        .bind(millis(now()))
        .bind(id.to_string())
        .bind(org.to_string())
        .execute(&self.pool)
        .await?;
        if result.rows_affected() == 0 {
            return Ok(None);
        }
        self.get_session(org, id).await
    }

    async fn delete_session(&self, org: OrgId, id: SessionId) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM sessions WHERE id = $1 AND org_id = $2")
            .bind(id.to_string())
            .bind(org.to_string())
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn all_sessions(&self) -> Result<Vec<SessionRecord>, StoreError> {
        sqlx::query(select_sessions!("ORDER BY created_at, id"))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(session)
            .collect()
    }

    async fn set_status(
        &self,
        id: SessionId,
        status: SessionStatus,
        reason: Option<StatusReason>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE sessions SET status = $1, status_reason = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(status.as_str())
        .bind(reason.map(StatusReason::as_str))
        .bind(millis(now()))
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn set_identity(
        &self,
        id: SessionId,
        phone: Option<&str>,
        push_name: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE sessions SET phone = $1, push_name = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(phone)
        .bind(push_name)
        .bind(millis(now()))
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> SqliteStore {
        match SqliteStore::connect("sqlite::memory:").await {
            Ok(store) => store,
            Err(e) => panic!("in-memory store: {e:?}"),
        }
    }

    #[tokio::test]
    async fn organization_names_are_unique_and_findable_by_name_or_id() -> Result<(), StoreError> {
        let store = store().await;
        let org = store.create_org("acme").await?;
        assert!(matches!(
            store.create_org("acme").await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(store.find_org("acme").await?, Some(org.clone()));
        assert_eq!(store.find_org(&org.id.to_string()).await?, Some(org));
        assert_eq!(store.find_org("nope").await?, None);
        assert_eq!(store.count_orgs().await?, 1);
        Ok(())
    }

    #[tokio::test]
    async fn tokens_are_found_by_hash_until_revoked() -> Result<(), StoreError> {
        let store = store().await;
        let org = store.create_org("acme").await?;
        let id = TokenId::new();
        let hash = TokenHash::of("wag_secret");
        store.insert_token(id, org.id, &hash).await?;
        let found = store.find_token(&hash).await?;
        assert_eq!(
            found,
            Some(TokenRecord {
                id,
                org_id: org.id,
                revoked: false
            })
        );
        assert!(store.revoke_token(id).await?);
        assert!(
            !store.revoke_token(id).await?,
            "revoking twice reports nothing to revoke"
        );
        assert_eq!(
            store.find_token(&hash).await?.map(|t| t.revoked),
            Some(true)
        );
        Ok(())
    }

    #[tokio::test]
    async fn sessions_are_scoped_to_their_organization() -> Result<(), StoreError> {
        let store = store().await;
        let acme = store.create_org("acme").await?;
        let other = store.create_org("other").await?;
        let created = store
            .insert_session(NewSession {
                id: SessionId::new(),
                org_id: acme.id,
                label: None,
            })
            .await?;
        assert_eq!(store.get_session(other.id, created.id).await?, None);
        assert!(!store.delete_session(other.id, created.id).await?);
        assert_eq!(store.set_label(other.id, created.id, None).await?, None);
        assert_eq!(
            store.get_session(acme.id, created.id).await?.map(|s| s.id),
            Some(created.id)
        );
        Ok(())
    }

    #[tokio::test]
    async fn listing_pages_through_sessions_with_a_cursor_and_a_status_filter()
    -> Result<(), StoreError> {
        let store = store().await;
        let org = store.create_org("acme").await?;
        let mut ids = Vec::new();
        for _ in 0..5 {
            let s = store
                .insert_session(NewSession {
                    id: SessionId::new(),
                    org_id: org.id,
                    label: None,
                })
                .await?;
            ids.push(s.id);
        }
        store
            .set_status(ids[1], SessionStatus::Starting, None)
            .await?;

        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = store
                .list_sessions(
                    org.id,
                    &SessionQuery {
                        status: None,
                        limit: 2,
                        after,
                    },
                )
                .await?;
            seen.extend(page.sessions.iter().map(|s| s.id));
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        let mut walked = seen.clone();
        walked.sort();
        walked.dedup();
        let mut all = ids.clone();
        all.sort();
        assert_eq!(walked, all, "every session exactly once");

        let starting = store
            .list_sessions(
                org.id,
                &SessionQuery {
                    status: Some(SessionStatus::Starting),
                    limit: 10,
                    after: None,
                },
            )
            .await?;
        assert_eq!(
            starting.sessions.iter().map(|s| s.id).collect::<Vec<_>>(),
            vec![ids[1]]
        );
        Ok(())
    }

    #[tokio::test]
    async fn status_reason_and_identity_are_persisted() -> Result<(), StoreError> {
        let store = store().await;
        let org = store.create_org("acme").await?;
        let s = store
            .insert_session(NewSession {
                id: SessionId::new(),
                org_id: org.id,
                label: Label::try_from("sales".to_string()).ok(),
            })
            .await?;
        store
            .set_status(s.id, SessionStatus::Failed, Some(StatusReason::LinkTimeout))
            .await?;
        store
            .set_identity(s.id, Some("628123456789"), Some("Sales"))
            .await?;
        let loaded = store.get_session(org.id, s.id).await?;
        let loaded = loaded.ok_or(StoreError::Corrupt("missing".into()))?;
        assert_eq!(loaded.status, SessionStatus::Failed);
        assert_eq!(loaded.status_reason, Some(StatusReason::LinkTimeout));
        assert_eq!(loaded.phone.as_deref(), Some("628123456789"));
        assert_eq!(loaded.push_name.as_deref(), Some("Sales"));
        assert_eq!(loaded.label.as_ref().map(Label::as_str), Some("sales"));
        assert!(loaded.is_linked());
        Ok(())
    }
}

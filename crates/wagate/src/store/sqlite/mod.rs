//! SQLite backend, one file per aggregate. Queries stick to SQL that PostgreSQL also accepts
//! (`$n` placeholders, no `INSERT OR ...`), so a PostgreSQL backend can share
//! them.

mod events;
mod messages;
mod orgs;
mod sessions;
mod users;

use std::str::FromStr;
use std::time::Duration;

use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};

use super::{
    EventStore, MessageStore, OrgStore, Organization, SessionRecord, SessionStore, Store,
    StoreError, UserStore, from_millis,
};
use crate::domain::{Label, PerMinute, SessionPace, StatusReason};

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(in crate::store) pool: SqlitePool,
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

pub(super) fn parse<T: FromStr>(column: &str, value: &str) -> Result<T, StoreError> {
    value
        .parse()
        .map_err(|_| StoreError::Corrupt(format!("{column} = {value:?}")))
}

pub(super) fn organization(row: &SqliteRow) -> Result<Organization, StoreError> {
    Ok(Organization {
        id: parse("organizations.id", row.try_get("id")?)?,
        name: row.try_get("name")?,
        created_at: from_millis(row.try_get("created_at")?)?,
    })
}

pub(super) fn session(row: &SqliteRow) -> Result<SessionRecord, StoreError> {
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
        pace: SessionPace {
            per_minute: pace(row, "send_per_minute")?,
            new_chats_per_minute: pace(row, "send_new_chats_per_minute")?,
        },
        created_at: from_millis(row.try_get("created_at")?)?,
        updated_at: from_millis(row.try_get("updated_at")?)?,
    })
}

fn pace(row: &SqliteRow, column: &'static str) -> Result<Option<PerMinute>, StoreError> {
    let value: Option<i64> = row.try_get(column)?;
    value
        .map(|v| {
            u32::try_from(v)
                .ok()
                .and_then(|v| PerMinute::try_from(v).ok())
                .ok_or_else(|| StoreError::Corrupt(format!("sessions.{column}: {v}")))
        })
        .transpose()
}

pub(super) fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

impl Store for SqliteStore {
    fn orgs(&self) -> &dyn OrgStore {
        self
    }

    fn sessions(&self) -> &dyn SessionStore {
        self
    }

    fn users(&self) -> &dyn UserStore {
        self
    }

    fn events(&self) -> &dyn EventStore {
        self
    }

    fn messages(&self) -> &dyn MessageStore {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{OrgId, SessionId, SessionStatus, TokenHash, TokenId};
    use crate::events::{Envelope, EventData};
    use crate::store::{NewSession, SessionChanges, SessionQuery, TokenRecord};

    fn status_event(org: OrgId, session: SessionId, status: SessionStatus) -> Envelope {
        Envelope::new(
            org,
            session,
            EventData::Status {
                status,
                previous: SessionStatus::Stopped,
                reason: None,
            },
        )
    }

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
                pace: Default::default(),
            })
            .await?;
        assert_eq!(store.get_session(other.id, created.id).await?, None);
        assert!(!store.delete_session(other.id, created.id).await?);
        assert_eq!(
            store
                .update_session(other.id, created.id, &SessionChanges::default())
                .await?,
            None
        );
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
                    pace: Default::default(),
                })
                .await?;
            ids.push(s.id);
        }
        store
            .set_status(
                ids[1],
                SessionStatus::Starting,
                None,
                &mut status_event(org.id, ids[1], SessionStatus::Starting),
            )
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
                pace: Default::default(),
            })
            .await?;
        store
            .set_status(
                s.id,
                SessionStatus::Failed,
                Some(StatusReason::LinkTimeout),
                &mut status_event(org.id, s.id, SessionStatus::Failed),
            )
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

    /// A database made by the schema before the event log and messages
    /// (migrations up to 0010) keeps its rows and gains the new tables.
    #[tokio::test]
    async fn a_database_of_the_previous_schema_upgrades_in_place() -> Result<(), StoreError> {
        let dir = tempfile::TempDir::new().map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let url = format!("sqlite://{}", dir.path().join("old.db").display());
        {
            let options = SqliteConnectOptions::from_str(&url)?.create_if_missing(true);
            let pool = SqlitePoolOptions::new().connect_with(options).await?;
            let mut previous = sqlx::migrate!("./migrations");
            previous.migrations = previous
                .migrations
                .iter()
                .filter(|m| m.version <= 10)
                .cloned()
                .collect::<Vec<_>>()
                .into();
            previous.run(&pool).await?;
            sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES ($1, 'acme', 0)")
                .bind(OrgId::new().to_string())
                .execute(&pool)
                .await?;
            pool.close().await;
        }
        let store = SqliteStore::connect(&url).await?;
        let org = store
            .find_org("acme")
            .await?
            .ok_or(StoreError::Corrupt("org lost".into()))?;
        let session = store
            .insert_session(NewSession {
                id: SessionId::new(),
                org_id: org.id,
                label: None,
                pace: Default::default(),
            })
            .await?;
        store
            .set_status(
                session.id,
                SessionStatus::Starting,
                None,
                &mut status_event(org.id, session.id, SessionStatus::Starting),
            )
            .await?;
        assert_eq!(store.events_after(org.id, None, 10).await?.len(), 1);
        Ok(())
    }
}

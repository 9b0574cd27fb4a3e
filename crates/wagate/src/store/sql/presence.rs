//! Presence subscriptions' rows (migration 0026).

use async_trait::async_trait;

use super::Backend;
use crate::domain::SessionId;
use crate::store::presence::PresenceStore;
use crate::store::{StoreError, millis, now};

#[async_trait]
impl PresenceStore for Backend {
    async fn subscribe_presence(
        &self,
        session: SessionId,
        contact: &str,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "INSERT INTO presence_subscriptions (session_id, contact, created_at) \
             VALUES ($1, $2, $3) ON CONFLICT (session_id, contact) DO NOTHING",
        )
        .bind(session.to_string())
        .bind(contact)
        .bind(millis(now()))
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn unsubscribe_presence(
        &self,
        session: SessionId,
        contact: &str,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "DELETE FROM presence_subscriptions WHERE session_id = $1 AND contact = $2",
        )
        .bind(session.to_string())
        .bind(contact)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn presence_subscriptions(&self, session: SessionId) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT contact FROM presence_subscriptions WHERE session_id = $1 \
             ORDER BY created_at, contact",
        )
        .bind(session.to_string())
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().map(|(contact,)| contact).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SessionStore;
    use crate::store::testing::new_session;

    const CAROL: &str = "15550006363@s.whatsapp.net";
    const DAN: &str = "123456789012345@lid";

    #[tokio::test]
    async fn subscriptions_are_kept_once_and_forgotten_with_their_session() -> Result<(), StoreError>
    {
        // `None`: this backend's database is not there (PostgreSQL, skipped).
        let Some(store) = super::super::test_store().await else {
            return Ok(());
        };
        let (org, session) = new_session(&*store).await?;
        assert!(store.subscribe_presence(session, CAROL).await?);
        assert!(store.subscribe_presence(session, DAN).await?);
        assert!(
            !store.subscribe_presence(session, CAROL).await?,
            "kept twice"
        );
        assert_eq!(store.presence_subscriptions(session).await?.len(), 2);

        assert!(store.unsubscribe_presence(session, CAROL).await?);
        assert!(!store.unsubscribe_presence(session, CAROL).await?);
        assert_eq!(store.presence_subscriptions(session).await?, vec![DAN]);

        assert!(store.delete_session(org, session).await?);
        assert!(store.presence_subscriptions(session).await?.is_empty());
        Ok(())
    }
}

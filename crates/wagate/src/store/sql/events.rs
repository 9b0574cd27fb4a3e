//! The event log.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::webhooks::enqueue_deliveries;
use super::{Backend, WriteTx, begin_write, parse};
use crate::domain::{EventId, OrgId};
use crate::events::Envelope;
use crate::store::{EventStore, StoreError, millis, now};

/// Stamps `event` with its id and time and logs it, inside `tx`: the
/// transaction of the change it reports. A [`WriteTx`] holds the writer
/// lock until it ends, so ids stamped here increase in commit order.
/// Every webhook that wants the event gets its delivery queued here too,
/// so a committed event is never missing from a webhook's outbox.
pub(super) async fn append_event(tx: &mut WriteTx, event: &mut Envelope) -> Result<(), StoreError> {
    event.id = EventId::new();
    event.at = now();
    let payload = serde_json::to_string(&*event)
        .map_err(|e| StoreError::Corrupt(format!("event does not serialize: {e}")))?;
    sqlx::query(
        "INSERT INTO events (id, org_id, session_id, type, payload, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(event.id.to_string())
    .bind(event.org_id.to_string())
    .bind(event.session_id.to_string())
    .bind(event.data.event_type().as_str())
    .bind(payload)
    .bind(millis(event.at))
    .execute(&mut **tx)
    .await?;
    enqueue_deliveries(tx, event).await?;
    Ok(())
}

#[async_trait]
impl EventStore for Backend {
    async fn append_event(&self, event: &mut Envelope) -> Result<(), StoreError> {
        let mut tx = begin_write(self).await?;
        append_event(&mut tx, event).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn events_after(
        &self,
        org: OrgId,
        after: Option<EventId>,
        limit: u32,
    ) -> Result<Vec<Envelope>, StoreError> {
        let rows: Vec<(String,)> = sqlx::query_as(
            // Test events are for their webhook only, never replayed to a
            // realtime client.
            "SELECT payload FROM events WHERE org_id = $1 AND id > $2 AND type <> 'webhook.test' \
             ORDER BY id LIMIT $3",
        )
        .bind(org.to_string())
        .bind(after.map(|id| id.to_string()).unwrap_or_default())
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.into_iter()
            .map(|(payload,)| {
                serde_json::from_str(&payload)
                    .map_err(|e| StoreError::Corrupt(format!("events.payload: {e}")))
            })
            .collect()
    }

    async fn oldest_event(&self, org: OrgId) -> Result<Option<EventId>, StoreError> {
        let id: Option<String> = sqlx::query_scalar("SELECT MIN(id) FROM events WHERE org_id = $1")
            .bind(org.to_string())
            .fetch_one(&self.reader)
            .await?;
        id.map(|id| parse("events.id", &id)).transpose()
    }

    async fn has_event(&self, org: OrgId, id: EventId) -> Result<bool, StoreError> {
        // Nothing decoded: `1` is INTEGER on SQLite, int4 on PostgreSQL.
        let found = sqlx::query("SELECT 1 FROM events WHERE org_id = $1 AND id = $2")
            .bind(org.to_string())
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await?;
        Ok(found.is_some())
    }

    async fn prune_events(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let result = sqlx::query("DELETE FROM events WHERE created_at < $1")
            .bind(millis(before))
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected())
    }
}

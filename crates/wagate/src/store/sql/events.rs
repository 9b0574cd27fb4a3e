//! The event log.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use sqlx::QueryBuilder;

use super::webhooks::{WebhookTargets, enqueue_many};
use super::{Backend, Db, WriteTx, begin_write, parse};
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
    enqueue_many(
        tx,
        std::slice::from_ref(event),
        &mut WebhookTargets::default(),
    )
    .await
}

/// Events per multi-row `INSERT` (6 parameters a row).
const EVENT_CHUNK: usize = 500;

/// [`append_event`] for many events at once, in this order (their ids
/// increase in it): one multi-row statement for the events and one for
/// their webhook deliveries, instead of three statements per event.
pub(super) async fn append_events_to(
    tx: &mut WriteTx,
    events: &mut [Envelope],
    targets: &mut WebhookTargets,
) -> Result<(), StoreError> {
    let mut payloads = Vec::with_capacity(events.len());
    for event in events.iter_mut() {
        event.id = EventId::new();
        event.at = now();
        payloads.push(
            serde_json::to_string(&*event)
                .map_err(|e| StoreError::Corrupt(format!("event does not serialize: {e}")))?,
        );
    }
    for (chunk, payloads) in events.chunks(EVENT_CHUNK).zip(payloads.chunks(EVENT_CHUNK)) {
        let mut query = QueryBuilder::<Db>::new(
            "INSERT INTO events (id, org_id, session_id, type, payload, created_at) ",
        );
        query.push_values(
            chunk.iter().zip(payloads),
            |mut values, (event, payload)| {
                values
                    .push_bind(event.id.to_string())
                    .push_bind(event.org_id.to_string())
                    .push_bind(event.session_id.to_string())
                    .push_bind(event.data.event_type().as_str())
                    .push_bind(payload.clone())
                    .push_bind(millis(event.at));
            },
        );
        query.build().execute(&mut **tx).await?;
    }
    enqueue_many(tx, events, targets).await
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

//! The delivery outbox's writes: an event queued for each enabled webhook
//! that wants it (in the event's own transaction), a test event for its
//! one webhook, a due head's row read, and a delivered run recorded in one
//! statement.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Row};

use super::{Db, DbRow, WriteTx, json_list, opt_millis, parse};
use crate::domain::{DeliveryId, OrgId, SessionId};
use crate::events::{Envelope, EventType};
use crate::secret::Secret;
use crate::store::{AttemptResult, DueDelivery, StoreError, from_millis, millis};

/// An enabled webhook of an organization, its filters parsed.
struct Target {
    id: String,
    types: Option<Vec<EventType>>,
    sessions: Option<Vec<SessionId>>,
}

impl Target {
    fn wants(&self, event: &Envelope) -> bool {
        self.types
            .as_ref()
            .is_none_or(|t| t.contains(&event.data.event_type()))
            && self
                .sessions
                .as_ref()
                .is_none_or(|s| s.contains(&event.session_id))
    }
}

/// The enabled webhooks of the organizations a transaction has logged
/// events for, read once per organization and transaction: the inbound
/// group commit logs hundreds of events in one, and each used to read
/// (and parse) the same rows again. A webhook created or changed while
/// that transaction runs is as concurrent with its events as with the
/// events of a transaction reading it once.
#[derive(Default)]
pub(in crate::store) struct WebhookTargets(HashMap<OrgId, Vec<Target>>);

async fn read_targets(tx: &mut WriteTx, org: OrgId) -> Result<Vec<Target>, StoreError> {
    let rows: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT id, event_types, session_ids FROM webhooks WHERE org_id = $1 AND enabled = TRUE",
    )
    .bind(org.to_string())
    .fetch_all(&mut **tx)
    .await?;
    rows.into_iter()
        .map(|(id, types, sessions)| {
            Ok(Target {
                id,
                types: json_list("webhooks.event_types", types)?,
                sessions: json_list("webhooks.session_ids", sessions)?,
            })
        })
        .collect()
}

/// Deliveries per multi-row `INSERT` (11 parameters a row).
const DELIVERY_CHUNK: usize = 500;

/// Queues `events` (already stamped and logged in `tx`) for every enabled
/// webhook of their organization that wants them, in one multi-row
/// statement: the outbox rows commit or roll back with the events.
pub(in crate::store) async fn enqueue_many(
    tx: &mut WriteTx,
    events: &[Envelope],
    targets: &mut WebhookTargets,
) -> Result<(), StoreError> {
    let mut rows: Vec<(String, &Envelope)> = Vec::new();
    for event in events {
        // A test names its one webhook (`queue_test`); it never fans out.
        if event.data.event_type() == EventType::WebhookTest {
            continue;
        }
        if let Entry::Vacant(slot) = targets.0.entry(event.org_id) {
            slot.insert(read_targets(tx, event.org_id).await?);
        }
        if let Some(all) = targets.0.get(&event.org_id) {
            rows.extend(
                all.iter()
                    .filter(|t| t.wants(event))
                    .map(|t| (t.id.clone(), event)),
            );
        }
    }
    for chunk in rows.chunks(DELIVERY_CHUNK) {
        let mut query = QueryBuilder::<Db>::new(
            "INSERT INTO webhook_deliveries (id, webhook_id, event_id, session_id, event_type, \
             status, attempts, next_attempt_at, retry_from, created_at, updated_at) ",
        );
        query.push_values(chunk, |mut values, (webhook_id, event)| {
            let at = millis(event.at);
            values
                .push_bind(DeliveryId::new().to_string())
                .push_bind(webhook_id.clone())
                .push_bind(event.id.to_string())
                .push_bind(event.session_id.to_string())
                .push_bind(event.data.event_type().as_str())
                .push_bind("pending")
                .push_bind(0_i64)
                .push_bind(at)
                .push_bind(at)
                .push_bind(at)
                .push_bind(at);
        });
        query.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Queues `event` for one webhook, due at once.
pub(super) async fn insert_delivery(
    tx: &mut WriteTx,
    webhook_id: &str,
    event: &Envelope,
) -> Result<DeliveryId, StoreError> {
    let id = DeliveryId::new();
    sqlx::query(
        "INSERT INTO webhook_deliveries (id, webhook_id, event_id, session_id, event_type, \
         status, attempts, next_attempt_at, retry_from, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6, $6, $6)",
    )
    .bind(id.to_string())
    .bind(webhook_id)
    .bind(event.id.to_string())
    .bind(event.session_id.to_string())
    .bind(event.data.event_type().as_str())
    .bind(millis(event.at))
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

/// A row of the due-delivery queries (see `due_deliveries`).
pub(super) fn due_delivery(row: &DbRow, now: DateTime<Utc>) -> Result<DueDelivery, StoreError> {
    let mut secrets = vec![Secret::new(row.try_get::<String, _>("secret")?)];
    let previous: Option<String> = row.try_get("previous_secret")?;
    let until = opt_millis(row, "previous_expires_at")?;
    if let (Some(previous), Some(until)) = (previous, until)
        && until > now
    {
        secrets.push(Secret::new(previous));
    }
    let attempts: i64 = row.try_get("attempts")?;
    Ok(DueDelivery {
        id: parse("webhook_deliveries.id", row.try_get("id")?)?,
        webhook_id: parse("webhook_deliveries.webhook_id", row.try_get("webhook_id")?)?,
        org_id: parse("webhooks.org_id", row.try_get("org_id")?)?,
        session_id: parse("webhook_deliveries.session_id", row.try_get("session_id")?)?,
        event_id: parse("webhook_deliveries.event_id", row.try_get("event_id")?)?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        retry_from: from_millis(row.try_get("retry_from")?)?,
        url: row.try_get("url")?,
        secrets,
        failing_since: opt_millis(row, "failing_since")?,
        payload: row.try_get("payload")?,
    })
}

/// Rows per `UPDATE` of [`mark_delivered`]: 4 parameters a row.
const DELIVERED_CHUNK: usize = 256;

/// Marks `delivered` delivered inside `tx`, one statement per
/// [`DELIVERED_CHUNK`] rows (a run's record was one statement and one
/// round trip per delivery, with the writer lock held: on PostgreSQL,
/// ~40 % of that lock's time under inbound load). `UPDATE … FROM
/// (VALUES …)`, which SQLite (3.33+) and PostgreSQL both take; a `VALUES`
/// list's columns are `column1`, `column2`, … on both.
pub(super) async fn mark_delivered(
    tx: &mut WriteTx,
    delivered: &[(DueDelivery, AttemptResult)],
) -> Result<(), StoreError> {
    for chunk in delivered.chunks(DELIVERED_CHUNK) {
        let mut query = QueryBuilder::<Db>::new(
            "UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1, \
             last_attempt_at = v.column2, last_status_code = v.column3, last_error = NULL, \
             last_response = v.column4, delivered_at = v.column2, updated_at = v.column2 FROM (",
        );
        query.push_values(chunk, |mut row, (delivery, result)| {
            row.push_bind(delivery.id.to_string())
                .push_bind(millis(result.at))
                .push_bind(result.status_code.map(i64::from))
                .push_bind(result.response.clone());
        });
        query.push(") AS v WHERE webhook_deliveries.id = v.column1");
        query.build().execute(&mut **tx).await?;
    }
    Ok(())
}

//! Webhooks and the delivery outbox.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Row};

use super::events::append_event;
use super::{Backend, Db, DbConnection, DbRow, WriteTx, begin_write, parse};
use crate::domain::{DeliveryId, DeliveryStatus, DisabledReason, OrgId, SessionId, WebhookId};
use crate::events::{Envelope, EventData, EventType};
use crate::secret::Secret;
use crate::store::{
    AfterFailure, AttemptResult, DeliveryQuery, DeliveryRecord, DueDelivery, NewWebhook,
    StoreError, WebhookPatch, WebhookRecord, WebhookStore, from_millis, millis, now,
};

macro_rules! select_webhooks {
    ($rest:literal) => {
        concat!(
            "SELECT id, org_id, url, event_types, session_ids, enabled, disabled_reason, secret, \
             previous_secret, previous_expires_at, failing_since, created_at, updated_at \
             FROM webhooks ",
            $rest
        )
    };
}

macro_rules! select_deliveries {
    ($rest:literal) => {
        concat!(
            "SELECT d.id, d.webhook_id, d.event_id, d.session_id, d.event_type, d.status, \
             d.attempts, d.next_attempt_at, d.last_attempt_at, d.last_status_code, d.last_error, \
             d.last_response, d.delivered_at, d.created_at, d.updated_at \
             FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id ",
            $rest
        )
    };
}

/// Makes the webhook's deliveries that `$rest` picks pending and due now
/// (`$1`), with a fresh retry window: `$2` is the webhook, `$3` its
/// organization.
macro_rules! requeue_deliveries {
    ($rest:literal) => {
        concat!(
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $1, \
             retry_from = $1, delivered_at = NULL, updated_at = $1 \
             WHERE webhook_id = $2 \
             AND webhook_id IN (SELECT id FROM webhooks WHERE org_id = $3) ",
            $rest
        )
    };
}

fn json_list<T: serde::de::DeserializeOwned>(
    column: &str,
    value: Option<String>,
) -> Result<Option<Vec<T>>, StoreError> {
    value
        .map(|v| {
            serde_json::from_str(&v).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
        })
        .transpose()
}

fn to_json<T: serde::Serialize>(value: &Option<Vec<T>>) -> Result<Option<String>, StoreError> {
    value
        .as_ref()
        .map(|v| {
            serde_json::to_string(v)
                .map_err(|e| StoreError::Corrupt(format!("filter does not serialize: {e}")))
        })
        .transpose()
}

fn opt_millis(row: &DbRow, column: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    row.try_get::<Option<i64>, _>(column)?
        .map(from_millis)
        .transpose()
}

fn webhook(row: &DbRow) -> Result<WebhookRecord, StoreError> {
    let reason: Option<&str> = row.try_get("disabled_reason")?;
    let previous: Option<String> = row.try_get("previous_secret")?;
    Ok(WebhookRecord {
        id: parse("webhooks.id", row.try_get("id")?)?,
        org_id: parse("webhooks.org_id", row.try_get("org_id")?)?,
        url: parse("webhooks.url", row.try_get("url")?)?,
        event_types: json_list("webhooks.event_types", row.try_get("event_types")?)?,
        session_ids: json_list("webhooks.session_ids", row.try_get("session_ids")?)?,
        enabled: row.try_get("enabled")?,
        disabled_reason: reason
            .map(|r| parse("webhooks.disabled_reason", r))
            .transpose()?,
        secret: Secret::new(row.try_get("secret")?),
        previous_secret: previous.map(Secret::new),
        previous_expires_at: opt_millis(row, "previous_expires_at")?,
        failing_since: opt_millis(row, "failing_since")?,
        created_at: from_millis(row.try_get("created_at")?)?,
        updated_at: from_millis(row.try_get("updated_at")?)?,
    })
}

fn delivery(row: &DbRow) -> Result<DeliveryRecord, StoreError> {
    let status: DeliveryStatus = parse("webhook_deliveries.status", row.try_get("status")?)?;
    let code: Option<i64> = row.try_get("last_status_code")?;
    let attempts: i64 = row.try_get("attempts")?;
    Ok(DeliveryRecord {
        id: parse("webhook_deliveries.id", row.try_get("id")?)?,
        webhook_id: parse("webhook_deliveries.webhook_id", row.try_get("webhook_id")?)?,
        event_id: parse("webhook_deliveries.event_id", row.try_get("event_id")?)?,
        session_id: parse("webhook_deliveries.session_id", row.try_get("session_id")?)?,
        event_type: row.try_get("event_type")?,
        status,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        next_attempt_at: match status {
            DeliveryStatus::Pending => opt_millis(row, "next_attempt_at")?,
            _ => None,
        },
        last_attempt_at: opt_millis(row, "last_attempt_at")?,
        last_status_code: code.and_then(|c| u16::try_from(c).ok()),
        last_error: row.try_get("last_error")?,
        last_response: row.try_get("last_response")?,
        delivered_at: opt_millis(row, "delivered_at")?,
        created_at: from_millis(row.try_get("created_at")?)?,
        updated_at: from_millis(row.try_get("updated_at")?)?,
    })
}

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
pub(super) struct WebhookTargets(HashMap<OrgId, Vec<Target>>);

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
pub(super) async fn enqueue_many(
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
async fn insert_delivery(
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
fn due_delivery(row: &DbRow, now: DateTime<Utc>) -> Result<DueDelivery, StoreError> {
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
async fn mark_delivered(
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

async fn fetch_webhook(
    conn: &mut DbConnection,
    org: OrgId,
    id: WebhookId,
) -> Result<Option<WebhookRecord>, StoreError> {
    sqlx::query(select_webhooks!("WHERE org_id = $1 AND id = $2"))
        .bind(org.to_string())
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await?
        .as_ref()
        .map(webhook)
        .transpose()
}

async fn fetch_delivery(
    tx: &mut WriteTx,
    id: DeliveryId,
) -> Result<Option<DeliveryRecord>, StoreError> {
    sqlx::query(select_deliveries!("WHERE d.id = $1"))
        .bind(id.to_string())
        .fetch_optional(&mut **tx)
        .await?
        .as_ref()
        .map(delivery)
        .transpose()
}

#[async_trait]
impl WebhookStore for Backend {
    async fn count_webhooks(&self, org: OrgId) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhooks WHERE org_id = $1")
            .bind(org.to_string())
            .fetch_one(&self.reader)
            .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn insert_webhook(&self, new: NewWebhook) -> Result<WebhookRecord, StoreError> {
        let at = now();
        sqlx::query(
            "INSERT INTO webhooks (id, org_id, url, event_types, session_ids, enabled, secret, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        )
        .bind(new.id.to_string())
        .bind(new.org_id.to_string())
        .bind(new.url.as_str())
        .bind(to_json(&new.event_types)?)
        .bind(to_json(&new.session_ids)?)
        .bind(new.enabled)
        .bind(new.secret.expose())
        .bind(millis(at))
        .execute(&self.pool)
        .await?;
        Ok(WebhookRecord {
            id: new.id,
            org_id: new.org_id,
            url: new.url,
            event_types: new.event_types,
            session_ids: new.session_ids,
            enabled: new.enabled,
            disabled_reason: None,
            secret: new.secret,
            previous_secret: None,
            previous_expires_at: None,
            failing_since: None,
            created_at: at,
            updated_at: at,
        })
    }

    async fn get_webhook(
        &self,
        org: OrgId,
        id: WebhookId,
    ) -> Result<Option<WebhookRecord>, StoreError> {
        // A read: no transaction, no writer lock.
        let mut conn = self.reader.acquire().await?;
        fetch_webhook(&mut conn, org, id).await
    }

    async fn list_webhooks(
        &self,
        org: OrgId,
        limit: u32,
        after: Option<WebhookId>,
    ) -> Result<Vec<WebhookRecord>, StoreError> {
        sqlx::query(select_webhooks!(
            "WHERE org_id = $1 AND id > $2 ORDER BY id LIMIT $3"
        ))
        .bind(org.to_string())
        .bind(after.map(|id| id.to_string()).unwrap_or_default())
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(webhook)
        .collect()
    }

    async fn update_webhook(
        &self,
        org: OrgId,
        id: WebhookId,
        patch: WebhookPatch,
    ) -> Result<Option<WebhookRecord>, StoreError> {
        let mut tx = begin_write(self).await?;
        let Some(mut current) = fetch_webhook(&mut tx, org, id).await? else {
            return Ok(None);
        };
        if let Some(url) = patch.url {
            current.url = url;
        }
        if let Some(types) = patch.event_types {
            current.event_types = types;
        }
        if let Some(sessions) = patch.session_ids {
            current.session_ids = sessions;
        }
        if let Some(enabled) = patch.enabled {
            if enabled && !current.enabled {
                // A fresh start: the old streak must not disable it again
                // on the first failure.
                current.disabled_reason = None;
                current.failing_since = None;
            }
            current.enabled = enabled;
        }
        current.updated_at = now();
        sqlx::query(
            "UPDATE webhooks SET url = $1, event_types = $2, session_ids = $3, enabled = $4, \
             disabled_reason = $5, failing_since = $6, updated_at = $7 WHERE id = $8",
        )
        .bind(current.url.as_str())
        .bind(to_json(&current.event_types)?)
        .bind(to_json(&current.session_ids)?)
        .bind(current.enabled)
        .bind(current.disabled_reason.map(DisabledReason::as_str))
        .bind(current.failing_since.map(millis))
        .bind(millis(current.updated_at))
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(current))
    }

    async fn delete_webhook(&self, org: OrgId, id: WebhookId) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM webhooks WHERE org_id = $1 AND id = $2")
            .bind(org.to_string())
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() > 0)
    }

    async fn rotate_secret(
        &self,
        org: OrgId,
        id: WebhookId,
        secret: Secret<String>,
        previous_expires_at: DateTime<Utc>,
    ) -> Result<Option<WebhookRecord>, StoreError> {
        let mut tx = begin_write(self).await?;
        let result = sqlx::query(
            "UPDATE webhooks SET previous_secret = secret, previous_expires_at = $1, secret = $2, \
             updated_at = $3 WHERE org_id = $4 AND id = $5",
        )
        .bind(millis(previous_expires_at))
        .bind(secret.expose())
        .bind(millis(now()))
        .bind(org.to_string())
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        if result.rows_affected() == 0 {
            return Ok(None);
        }
        let record = fetch_webhook(&mut tx, org, id).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn list_deliveries(
        &self,
        org: OrgId,
        webhook: WebhookId,
        query: &DeliveryQuery,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        // One literal query per combination of the optional filters:
        // PostgreSQL cannot type a NULL parameter in `$n IS NULL`.
        let sql = match (query.before.is_some(), query.status.is_some()) {
            (false, false) => select_deliveries!(
                "WHERE w.org_id = $1 AND d.webhook_id = $2 ORDER BY d.id DESC LIMIT $3"
            ),
            (true, false) => select_deliveries!(
                "WHERE w.org_id = $1 AND d.webhook_id = $2 AND d.id < $3 \
                 ORDER BY d.id DESC LIMIT $4"
            ),
            (false, true) => select_deliveries!(
                "WHERE w.org_id = $1 AND d.webhook_id = $2 AND d.status = $3 \
                 ORDER BY d.id DESC LIMIT $4"
            ),
            (true, true) => select_deliveries!(
                "WHERE w.org_id = $1 AND d.webhook_id = $2 AND d.id < $3 AND d.status = $4 \
                 ORDER BY d.id DESC LIMIT $5"
            ),
        };
        let mut select = sqlx::query(sql)
            .bind(org.to_string())
            .bind(webhook.to_string());
        if let Some(before) = query.before {
            select = select.bind(before.to_string());
        }
        if let Some(status) = query.status {
            select = select.bind(status.as_str());
        }
        select
            .bind(i64::from(query.limit))
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(delivery)
            .collect()
    }

    async fn get_delivery(
        &self,
        org: OrgId,
        webhook: WebhookId,
        id: DeliveryId,
    ) -> Result<Option<DeliveryRecord>, StoreError> {
        sqlx::query(select_deliveries!(
            "WHERE w.org_id = $1 AND d.webhook_id = $2 AND d.id = $3"
        ))
        .bind(org.to_string())
        .bind(webhook.to_string())
        .bind(id.to_string())
        .fetch_optional(&self.reader)
        .await?
        .as_ref()
        .map(delivery)
        .transpose()
    }

    async fn retry_delivery(
        &self,
        org: OrgId,
        webhook: WebhookId,
        id: DeliveryId,
    ) -> Result<Option<DeliveryRecord>, StoreError> {
        let at = millis(now());
        let mut tx = begin_write(self).await?;
        let result = sqlx::query(requeue_deliveries!("AND id = $4"))
            .bind(at)
            .bind(webhook.to_string())
            .bind(org.to_string())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        if result.rows_affected() == 0 {
            return Ok(None);
        }
        let record = fetch_delivery(&mut tx, id).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn queue_test(
        &self,
        org: OrgId,
        id: WebhookId,
    ) -> Result<Option<DeliveryRecord>, StoreError> {
        let mut tx = begin_write(self).await?;
        if fetch_webhook(&mut tx, org, id).await?.is_none() {
            return Ok(None);
        }
        // No session is involved: the nil session makes the test a queue
        // of its own, so it does not wait behind a session's backlog.
        let mut event = Envelope::new(
            org,
            SessionId::from(uuid::Uuid::nil()),
            EventData::WebhookTest { webhook_id: id },
        );
        append_event(&mut tx, &mut event).await?;
        let delivery_id = insert_delivery(&mut tx, &id.to_string(), &event).await?;
        let record = fetch_delivery(&mut tx, delivery_id).await?;
        tx.commit().await?;
        Ok(record)
    }

    async fn replay_deliveries(
        &self,
        org: OrgId,
        webhook: WebhookId,
        since: DateTime<Utc>,
        status: DeliveryStatus,
    ) -> Result<u64, StoreError> {
        // One statement: all of them or none. Their order needs nothing
        // more: pending, they go out as the heads of their sessions'
        // queues, oldest event first.
        let result = sqlx::query(requeue_deliveries!("AND status = $4 AND created_at >= $5"))
            .bind(millis(now()))
            .bind(webhook.to_string())
            .bind(org.to_string())
            .bind(status.as_str())
            .bind(millis(since))
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected())
    }

    async fn due_deliveries(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        // The head of a queue is its oldest pending event; event ids are
        // stamped in commit order, so this is the order events happened.
        let rows = sqlx::query(
            "SELECT d.id, d.webhook_id, w.org_id, d.session_id, d.event_id, d.attempts, \
             d.retry_from, w.url, w.secret, w.previous_secret, w.previous_expires_at, \
             w.failing_since, e.payload \
             FROM webhook_deliveries d \
             JOIN webhooks w ON w.id = d.webhook_id \
             JOIN events e ON e.id = d.event_id \
             WHERE d.status = 'pending' AND d.next_attempt_at <= $1 AND w.enabled = TRUE \
             AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p \
                 WHERE p.webhook_id = d.webhook_id AND p.session_id = d.session_id \
                 AND p.status = 'pending' AND p.event_id < d.event_id) \
             ORDER BY d.next_attempt_at, d.event_id LIMIT $2",
        )
        .bind(millis(now))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(|row| due_delivery(row, now)).collect()
    }

    async fn queued_after(
        &self,
        head: &DueDelivery,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        // Not filtered on due: a delivery that is not due (replayed
        // behind, or retried) ends the run instead of being skipped.
        let rows = sqlx::query(
            "SELECT d.id, d.webhook_id, w.org_id, d.session_id, d.event_id, d.attempts, \
             d.retry_from, d.next_attempt_at, w.url, w.secret, w.previous_secret, \
             w.previous_expires_at, w.failing_since, e.payload \
             FROM webhook_deliveries d \
             JOIN webhooks w ON w.id = d.webhook_id \
             JOIN events e ON e.id = d.event_id \
             WHERE d.webhook_id = $1 AND d.session_id = $2 AND d.status = 'pending' \
             AND d.event_id > $3 AND w.enabled = TRUE \
             ORDER BY d.event_id LIMIT $4",
        )
        .bind(head.webhook_id.to_string())
        .bind(head.session_id.to_string())
        .bind(head.event_id.to_string())
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        let mut queued = Vec::with_capacity(rows.len());
        for row in &rows {
            if row.try_get::<i64, _>("next_attempt_at")? > millis(now) {
                break;
            }
            queued.push(due_delivery(row, now)?);
        }
        Ok(queued)
    }

    async fn delivery_succeeded(
        &self,
        delivery: &DueDelivery,
        result: &AttemptResult,
    ) -> Result<(), StoreError> {
        self.deliveries_succeeded(&[(delivery.clone(), result.clone())])
            .await
    }

    async fn deliveries_succeeded(
        &self,
        delivered: &[(DueDelivery, AttemptResult)],
    ) -> Result<(), StoreError> {
        let mut tx = begin_write(self).await?;
        mark_delivered(&mut tx, delivered).await?;
        let mut failing = Vec::new();
        for (delivery, _) in delivered {
            if delivery.failing_since.is_some() && !failing.contains(&delivery.webhook_id) {
                failing.push(delivery.webhook_id);
            }
        }
        for webhook in failing {
            sqlx::query("UPDATE webhooks SET failing_since = NULL WHERE id = $1")
                .bind(webhook.to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn delivery_failed(
        &self,
        delivery: &DueDelivery,
        result: &AttemptResult,
        after: AfterFailure,
        disable: Option<DisabledReason>,
    ) -> Result<Option<Envelope>, StoreError> {
        let at = millis(result.at);
        let (status, next) = match after {
            AfterFailure::RetryAt(next) => (DeliveryStatus::Pending, millis(next)),
            AfterFailure::GiveUp => (DeliveryStatus::Failed, at),
        };
        let mut tx = begin_write(self).await?;
        sqlx::query(
            "UPDATE webhook_deliveries SET status = $1, attempts = attempts + 1, \
             next_attempt_at = $2, last_attempt_at = $3, last_status_code = $4, last_error = $5, \
             last_response = $6, updated_at = $3 WHERE id = $7",
        )
        .bind(status.as_str())
        .bind(next)
        .bind(at)
        .bind(result.status_code.map(i64::from))
        .bind(result.error.as_deref())
        .bind(result.response.as_deref())
        .bind(delivery.id.to_string())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE webhooks SET failing_since = COALESCE(failing_since, $1) WHERE id = $2",
        )
        .bind(at)
        .bind(delivery.webhook_id.to_string())
        .execute(&mut *tx)
        .await?;
        let mut event = None;
        if let Some(reason) = disable {
            // Only the attempt that actually disables it reports it: two
            // sessions' deliveries failing at once log one event.
            let disabled = sqlx::query(
                "UPDATE webhooks SET enabled = FALSE, disabled_reason = $1, updated_at = $2 \
                 WHERE id = $3 AND enabled = TRUE",
            )
            .bind(reason.as_str())
            .bind(at)
            .bind(delivery.webhook_id.to_string())
            .execute(&mut *tx)
            .await?;
            if disabled.rows_affected() > 0 {
                let mut envelope = Envelope::new(
                    delivery.org_id,
                    delivery.session_id,
                    EventData::WebhookDisabled {
                        webhook_id: delivery.webhook_id,
                        reason,
                        status_code: result.status_code,
                    },
                );
                append_event(&mut tx, &mut envelope).await?;
                event = Some(envelope);
            }
        }
        tx.commit().await?;
        Ok(event)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_store;
    use chrono::Duration;
    use url::Url;

    use super::*;
    use crate::domain::{SessionStatus, StatusReason};
    use crate::events::EventData;
    use crate::store::{EventStore, NewSession, OrgStore, SessionStore};
    use crate::webhooks::generate_secret;

    fn url() -> Url {
        Url::parse("https://hooks.example.org/wagate").unwrap_or_else(|e| panic!("{e}"))
    }

    async fn hook(
        store: &Backend,
        org: OrgId,
        types: Option<Vec<EventType>>,
        sessions: Option<Vec<SessionId>>,
        enabled: bool,
    ) -> WebhookRecord {
        store
            .insert_webhook(NewWebhook {
                id: WebhookId::new(),
                org_id: org,
                url: url(),
                event_types: types,
                session_ids: sessions,
                enabled,
                secret: generate_secret(),
            })
            .await
            .unwrap_or_else(|e| panic!("insert webhook: {e:?}"))
    }

    fn qr(org: OrgId, session: SessionId) -> Envelope {
        Envelope::new(
            org,
            session,
            EventData::Qr {
                code: "2@x".into(),
                expires_at: Utc::now(),
            },
        )
    }

    /// Logs a QR event for each session in turn; returns their ids.
    async fn log_qrs(
        store: &Backend,
        org: OrgId,
        sessions: &[SessionId],
    ) -> Result<Vec<crate::domain::EventId>, StoreError> {
        let mut events = Vec::new();
        for session in sessions {
            let mut event = qr(org, *session);
            store.append_event(&mut event).await?;
            events.push(event.id);
        }
        Ok(events)
    }

    async fn all_deliveries(store: &Backend, org: OrgId, hook: WebhookId) -> Vec<DeliveryRecord> {
        store
            .list_deliveries(
                org,
                hook,
                &DeliveryQuery {
                    status: None,
                    limit: 100,
                    before: None,
                },
            )
            .await
            .unwrap_or_else(|e| panic!("list: {e:?}"))
    }

    fn failed_at(at: DateTime<Utc>) -> AttemptResult {
        AttemptResult {
            at,
            status_code: Some(500),
            error: Some("the receiver answered 500".into()),
            response: Some("oops".into()),
        }
    }

    #[tokio::test]
    async fn an_event_queues_one_delivery_per_matching_enabled_webhook_in_its_transaction()
    -> Result<(), StoreError> {
        let Some(store) = test_store().await else {
            return Ok(());
        };
        let org = store.create_org("acme").await?;
        let other = store.create_org("other").await?;
        let session = store
            .insert_session(NewSession {
                id: SessionId::new(),
                org_id: org.id,
                label: None,
                pace: Default::default(),
            })
            .await?;
        let all = hook(&store, org.id, None, None, true).await;
        let status_only = hook(
            &store,
            org.id,
            Some(vec![EventType::SessionStatus]),
            None,
            true,
        )
        .await;
        let qr_only = hook(&store, org.id, Some(vec![EventType::SessionQr]), None, true).await;
        let other_session = hook(&store, org.id, None, Some(vec![SessionId::new()]), true).await;
        let this_session = hook(&store, org.id, None, Some(vec![session.id]), true).await;
        let disabled = hook(&store, org.id, None, None, false).await;
        let foreign = hook(&store, other.id, None, None, true).await;

        // A state change and its event: the delivery commits with them.
        let mut event = Envelope::new(
            org.id,
            session.id,
            EventData::Status {
                status: SessionStatus::Failed,
                previous: SessionStatus::Stopped,
                reason: None,
            },
        );
        store
            .set_status(
                session.id,
                SessionStatus::Failed,
                Some(StatusReason::LinkTimeout),
                &mut event,
            )
            .await?;
        for (webhook, expected) in [
            (&all, 1),
            (&status_only, 1),
            (&qr_only, 0),
            (&other_session, 0),
            (&this_session, 1),
            (&disabled, 0),
        ] {
            let queued = all_deliveries(&store, org.id, webhook.id).await;
            assert_eq!(queued.len(), expected, "{:?}", webhook.event_types);
            if let Some(delivery) = queued.first() {
                assert_eq!(delivery.event_id, event.id);
                assert_eq!(delivery.event_type, "session.status");
                assert_eq!(delivery.status, DeliveryStatus::Pending);
            }
        }
        assert!(
            all_deliveries(&store, other.id, foreign.id)
                .await
                .is_empty()
        );

        // An event whose transaction rolls back leaves no delivery behind.
        let mut tx = begin_write(&store).await?;
        append_event(&mut tx, &mut qr(org.id, session.id)).await?;
        tx.rollback().await?;
        assert_eq!(all_deliveries(&store, org.id, all.id).await.len(), 1);
        Ok(())
    }

    #[tokio::test]
    async fn only_the_oldest_pending_event_of_each_session_is_due() -> Result<(), StoreError> {
        let Some(store) = test_store().await else {
            return Ok(());
        };
        let org = store.create_org("acme").await?;
        let webhook = hook(&store, org.id, None, None, true).await;
        let (a, b) = (SessionId::new(), SessionId::new());
        let events = log_qrs(&store, org.id, &[a, a, b, a]).await?;
        let heads = |due: Vec<DueDelivery>| due.iter().map(|d| d.event_id).collect::<Vec<_>>();
        let now = Utc::now() + Duration::seconds(1);
        let due = store.due_deliveries(now, 10).await?;
        assert_eq!(heads(due.clone()), vec![events[0], events[2]]);
        assert!(due[0].payload.contains(&events[0].to_string()));

        // The head fails and waits: the session's later events wait too,
        // the other session does not.
        let first = due[0].clone();
        store
            .delivery_failed(
                &first,
                &failed_at(now),
                AfterFailure::RetryAt(now + Duration::hours(1)),
                None,
            )
            .await?;
        assert_eq!(heads(store.due_deliveries(now, 10).await?), vec![events[2]]);

        // Given up: the queue moves on to the next event, in order.
        let first = DueDelivery {
            attempts: 1,
            ..first
        };
        store
            .delivery_failed(&first, &failed_at(now), AfterFailure::GiveUp, None)
            .await?;
        assert_eq!(
            heads(store.due_deliveries(now, 10).await?),
            vec![events[1], events[2]]
        );
        let log = all_deliveries(&store, org.id, webhook.id).await;
        let given_up = log
            .iter()
            .find(|d| d.event_id == events[0])
            .unwrap_or_else(|| panic!("logged"));
        assert_eq!(given_up.status, DeliveryStatus::Failed);
        assert_eq!(given_up.attempts, 2);
        assert_eq!(given_up.last_status_code, Some(500));
        assert_eq!(given_up.last_response.as_deref(), Some("oops"));
        assert_eq!(given_up.next_attempt_at, None);

        // Newest first, filterable, pageable.
        assert_eq!(log.len(), 4);
        assert!(log.windows(2).all(|w| w[0].id > w[1].id));
        let failed = store
            .list_deliveries(
                org.id,
                webhook.id,
                &DeliveryQuery {
                    status: Some(DeliveryStatus::Failed),
                    limit: 10,
                    before: None,
                },
            )
            .await?;
        assert_eq!(failed.len(), 1);
        let older = store
            .list_deliveries(
                org.id,
                webhook.id,
                &DeliveryQuery {
                    status: None,
                    limit: 10,
                    before: Some(log[1].id),
                },
            )
            .await?;
        assert_eq!(older.len(), 2);

        // A replay makes it pending and due again, ahead of its session's
        // later events.
        let replayed = store
            .retry_delivery(org.id, webhook.id, given_up.id)
            .await?
            .unwrap_or_else(|| panic!("found"));
        assert_eq!(replayed.status, DeliveryStatus::Pending);
        let mut due = heads(store.due_deliveries(now, 10).await?);
        due.sort();
        assert_eq!(due, vec![events[0], events[2]]);
        let other = store.create_org("other").await?;
        assert!(
            store
                .retry_delivery(other.id, webhook.id, given_up.id)
                .await?
                .is_none()
        );
        Ok(())
    }

    /// A run: the deliveries behind a head, in order, up to the first that
    /// is not due; recorded together, they leave the queue.
    #[tokio::test]
    async fn a_run_takes_the_due_deliveries_behind_the_head_in_order() -> Result<(), StoreError> {
        let Some(store) = test_store().await else {
            return Ok(());
        };
        let org = store.create_org("acme").await?;
        let webhook = hook(&store, org.id, None, None, true).await;
        let (a, b) = (SessionId::new(), SessionId::new());
        let events = log_qrs(&store, org.id, &[a, a, b, a, a, a]).await?;
        let ids = |due: &[DueDelivery]| due.iter().map(|d| d.event_id).collect::<Vec<_>>();
        let now = Utc::now() + Duration::seconds(1);
        let due = store.due_deliveries(now, 10).await?;
        let head = due
            .iter()
            .find(|d| d.session_id == a)
            .cloned()
            .unwrap_or_else(|| panic!("a's head"));
        assert_eq!(head.event_id, events[0]);
        let run = store.queued_after(&head, now, 10).await?;
        assert_eq!(ids(&run), vec![events[1], events[3], events[4], events[5]]);
        assert_eq!(
            ids(&store.queued_after(&head, now, 2).await?),
            vec![events[1], events[3]]
        );

        // One of them waiting for a retry ends the run before it: the one
        // after it must not overtake it.
        store
            .delivery_failed(
                &run[2],
                &failed_at(now),
                AfterFailure::RetryAt(now + Duration::hours(1)),
                None,
            )
            .await?;
        assert_eq!(
            ids(&store.queued_after(&head, now, 10).await?),
            vec![events[1], events[3]]
        );

        // Recorded together (one statement): each row gets its own
        // attempt's answer, and the head of a's queue is the one waiting
        // for its retry.
        let answer = |i: usize| AttemptResult {
            at: now + Duration::milliseconds(i64::try_from(i).unwrap_or(0)),
            status_code: Some(200 + u16::try_from(i).unwrap_or(0)),
            response: (i != 1).then(|| format!("answer {i}")),
            ..AttemptResult::default()
        };
        let delivered: Vec<_> = std::iter::once(&head)
            .chain(&run[..2])
            .enumerate()
            .map(|(i, d)| (d.clone(), answer(i)))
            .collect();
        store.deliveries_succeeded(&delivered).await?;
        let log = all_deliveries(&store, org.id, webhook.id).await;
        assert_eq!(
            log.iter()
                .filter(|d| d.status == DeliveryStatus::Delivered)
                .count(),
            3
        );
        for (i, event) in [events[0], events[1], events[3]].into_iter().enumerate() {
            let row = log
                .iter()
                .find(|d| d.event_id == event)
                .unwrap_or_else(|| panic!("{event} logged"));
            let expected = answer(i);
            let at = Some(expected.at).map(|t| t.timestamp_millis());
            assert_eq!(row.status, DeliveryStatus::Delivered, "{i}");
            assert_eq!(row.attempts, 1, "{i}");
            assert_eq!(row.last_status_code, expected.status_code, "{i}");
            assert_eq!(row.last_response, expected.response, "{i}");
            assert_eq!(row.last_error, None, "{i}");
            assert_eq!(row.last_attempt_at.map(|t| t.timestamp_millis()), at, "{i}");
            assert_eq!(row.delivered_at.map(|t| t.timestamp_millis()), at, "{i}");
        }
        let later = now + Duration::hours(2);
        let heads = store.due_deliveries(later, 10).await?;
        assert!(heads.iter().any(|d| d.event_id == events[4]));
        assert!(heads.iter().all(|d| d.event_id != events[5]));
        Ok(())
    }

    #[tokio::test]
    async fn disabling_logs_one_event_and_stops_the_queue() -> Result<(), StoreError> {
        let Some(store) = test_store().await else {
            return Ok(());
        };
        let org = store.create_org("acme").await?;
        let webhook = hook(&store, org.id, None, None, true).await;
        let watcher = hook(
            &store,
            org.id,
            Some(vec![EventType::WebhookDisabled]),
            None,
            true,
        )
        .await;
        let (a, b) = (SessionId::new(), SessionId::new());
        store.append_event(&mut qr(org.id, a)).await?;
        store.append_event(&mut qr(org.id, b)).await?;
        let now = Utc::now() + Duration::seconds(1);
        let due = store.due_deliveries(now, 10).await?;
        assert_eq!(due.len(), 2);
        let mut disabled = Vec::new();
        for delivery in &due {
            let gone = AttemptResult {
                status_code: Some(410),
                ..failed_at(now)
            };
            disabled.push(
                store
                    .delivery_failed(
                        delivery,
                        &gone,
                        AfterFailure::RetryAt(now),
                        Some(DisabledReason::Gone),
                    )
                    .await?,
            );
        }
        let event = disabled[0]
            .clone()
            .unwrap_or_else(|| panic!("first disables"));
        assert!(disabled[1].is_none(), "already disabled: no second event");
        assert_eq!(
            event.data,
            EventData::WebhookDisabled {
                webhook_id: webhook.id,
                reason: DisabledReason::Gone,
                status_code: Some(410),
            }
        );
        let logged = store.events_after(org.id, None, 10).await?;
        assert_eq!(logged.last(), Some(&event));
        let record = store.get_webhook(org.id, webhook.id).await?;
        let record = record.unwrap_or_else(|| panic!("kept"));
        assert!(!record.enabled);
        assert_eq!(record.disabled_reason, Some(DisabledReason::Gone));
        assert!(record.failing_since.is_some());
        // Its deliveries stay pending but are not due while disabled; the
        // watcher gets the `webhook.disabled` event.
        let due = store.due_deliveries(now + Duration::seconds(1), 10).await?;
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].webhook_id, watcher.id);
        assert_eq!(due[0].event_id, event.id);

        // Enabled again: the queue resumes, the failure streak is over.
        let enabled = store
            .update_webhook(
                org.id,
                webhook.id,
                WebhookPatch {
                    enabled: Some(true),
                    ..WebhookPatch::default()
                },
            )
            .await?
            .unwrap_or_else(|| panic!("kept"));
        assert_eq!(enabled.disabled_reason, None);
        assert_eq!(enabled.failing_since, None);
        let due = store.due_deliveries(now + Duration::seconds(1), 10).await?;
        assert_eq!(due.iter().filter(|d| d.webhook_id == webhook.id).count(), 2);
        Ok(())
    }

    #[tokio::test]
    async fn a_rotated_secret_signs_next_to_the_new_one_until_the_grace_ends()
    -> Result<(), StoreError> {
        let Some(store) = test_store().await else {
            return Ok(());
        };
        let org = store.create_org("acme").await?;
        let webhook = hook(&store, org.id, None, None, true).await;
        store
            .append_event(&mut qr(org.id, SessionId::new()))
            .await?;
        let new = generate_secret();
        let grace_ends = Utc::now() + Duration::hours(1);
        let rotated = store
            .rotate_secret(org.id, webhook.id, new.clone(), grace_ends)
            .await?
            .unwrap_or_else(|| panic!("found"));
        assert_eq!(rotated.secret, new);
        assert_eq!(rotated.previous_secret.as_ref(), Some(&webhook.secret));
        let secrets = |due: Vec<DueDelivery>| due[0].secrets.clone();
        let during = store
            .due_deliveries(Utc::now() + Duration::seconds(1), 10)
            .await?;
        assert_eq!(secrets(during), vec![new.clone(), webhook.secret.clone()]);
        let after = store
            .due_deliveries(grace_ends + Duration::seconds(1), 10)
            .await?;
        assert_eq!(secrets(after), vec![new]);
        let other = store.create_org("other").await?;
        assert!(
            store
                .rotate_secret(other.id, webhook.id, generate_secret(), grace_ends)
                .await?
                .is_none()
        );
        Ok(())
    }

    #[tokio::test]
    async fn pruning_events_prunes_their_deliveries() -> Result<(), StoreError> {
        let Some(store) = test_store().await else {
            return Ok(());
        };
        let org = store.create_org("acme").await?;
        let webhook = hook(&store, org.id, None, None, true).await;
        store
            .append_event(&mut qr(org.id, SessionId::new()))
            .await?;
        assert_eq!(all_deliveries(&store, org.id, webhook.id).await.len(), 1);
        assert_eq!(
            store
                .prune_events(Utc::now() + Duration::seconds(1))
                .await?,
            1
        );
        assert!(all_deliveries(&store, org.id, webhook.id).await.is_empty());
        // Deleting the webhook takes its deliveries along too.
        store
            .append_event(&mut qr(org.id, SessionId::new()))
            .await?;
        assert!(store.delete_webhook(org.id, webhook.id).await?);
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_deliveries")
            .fetch_one(&store.pool)
            .await?;
        assert_eq!(left, 0);
        Ok(())
    }
}

//! Webhooks and the delivery outbox: the [`WebhookStore`] (a webhook's
//! create, read, update, delete and secret rotation; its deliveries' list,
//! retry, replay, due heads and attempts) and the row mappings here; the
//! outbox's queueing and a run's record in `webhooks/outbox.rs`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::events::append_event;
use super::writer::{self, Write};
use super::{Backend, Db, DbConnection, DbRow, WriteTx, begin_write, parse};
use crate::domain::{DeliveryId, DeliveryStatus, DisabledReason, OrgId, SessionId, WebhookId};
use crate::events::{Envelope, EventData};
use crate::secret::Secret;
use crate::store::{
    AfterFailure, AttemptResult, DeliveryQuery, DeliveryRecord, DueDelivery, NewWebhook,
    StoreError, WebhookPatch, WebhookRecord, WebhookStore, from_millis, millis, now,
};

#[path = "webhooks/outbox.rs"]
mod outbox;

pub(super) use outbox::{WebhookTargets, enqueue_many};
use outbox::{due_delivery, insert_delivery, mark_delivered};

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
        owner: Option<&str>,
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
             AND (CAST($3 AS TEXT) IS NULL OR EXISTS (SELECT 1 FROM session_leases l \
                 WHERE l.session_id = d.session_id AND l.node = $3)) \
             ORDER BY d.next_attempt_at, d.event_id LIMIT $2",
        )
        .bind(millis(now))
        .bind(i64::from(limit))
        .bind(owner)
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
        writer::write(&self.writer, Write::Delivered(delivered.to_vec())).await?;
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
#[path = "webhooks_tests.rs"]
mod tests;

/// A delivered run's record (see
/// [`WebhookStore::deliveries_succeeded`]), in the caller's transaction:
/// the deliveries marked delivered, and a webhook that was failing no
/// longer is.
pub(super) async fn record_delivered_in(
    tx: &mut WriteTx,
    delivered: &[(DueDelivery, AttemptResult)],
) -> Result<(), StoreError> {
    mark_delivered(tx, delivered).await?;
    let mut failing = Vec::new();
    for (delivery, _) in delivered {
        if delivery.failing_since.is_some() && !failing.contains(&delivery.webhook_id) {
            failing.push(delivery.webhook_id);
        }
    }
    for webhook in failing {
        sqlx::query("UPDATE webhooks SET failing_since = NULL WHERE id = $1")
            .bind(webhook.to_string())
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

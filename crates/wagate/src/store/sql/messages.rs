//! Messages, their history and idempotency keys.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::HashSet;

use sqlx::{QueryBuilder, Row};

use super::events::{append_event, append_events_to};
use super::webhooks::WebhookTargets;
use super::writer::{self, Write, Written};
use super::{Backend, Db, DbRow, WriteTx, begin_write, parse};
use crate::domain::{
    Direction, Failure, FailureReason, MessageId, MessageStatus, OrgId, SessionId,
};
use crate::events::{Envelope, EventData};
use crate::messages::{IncomingMessage, MediaRef, Sender};
use crate::store::{
    Accepted, IdempotencyClaim, MessageQuery, MessageRecord, MessageStore, NewIncoming,
    NewOutgoing, OutboxDepth, OutboxItem, Received, StatusStep, StoreError, StoredPoll,
    from_millis, millis, now,
};

macro_rules! select_messages {
    ($($rest:literal)*) => {
        concat!(
            "SELECT id, org_id, session_id, direction, wa_id, chat, kind, content, status, \
             failure_reason, failure_code, created_at, updated_at, sender_phone, sender_lid, \
             push_name, from_me, sent_at, reply_to, media_ref FROM messages ",
            $($rest),*
        )
    };
}

fn failure(row: &DbRow, reason: &str, code: &str) -> Result<Option<Failure>, StoreError> {
    let reason: Option<String> = row.try_get(reason)?;
    let code: Option<i64> = row.try_get(code)?;
    reason
        .map(|reason| {
            Ok(Failure {
                reason: parse::<FailureReason>("failure_reason", &reason)?,
                code: code.and_then(|c| u16::try_from(c).ok()),
            })
        })
        .transpose()
}

fn message(row: &DbRow) -> Result<MessageRecord, StoreError> {
    let content: String = row.try_get("content")?;
    let direction: Direction = parse("messages.direction", row.try_get("direction")?)?;
    let received = match direction {
        Direction::Outgoing => None,
        Direction::Incoming => {
            let sent_at: Option<i64> = row.try_get("sent_at")?;
            Some(Received {
                sender: Sender {
                    phone: row.try_get("sender_phone")?,
                    lid: row.try_get("sender_lid")?,
                },
                push_name: row.try_get("push_name")?,
                from_me: row.try_get("from_me")?,
                sent_at: from_millis(sent_at.unwrap_or_default())?,
                reply_to: row.try_get("reply_to")?,
            })
        }
    };
    Ok(MessageRecord {
        id: parse("messages.id", row.try_get("id")?)?,
        org_id: parse("messages.org_id", row.try_get("org_id")?)?,
        session_id: parse("messages.session_id", row.try_get("session_id")?)?,
        direction,
        wa_id: row.try_get("wa_id")?,
        chat: row.try_get("chat")?,
        kind: row.try_get("kind")?,
        content: serde_json::from_str(&content)
            .map_err(|e| StoreError::Corrupt(format!("messages.content: {e}")))?,
        status: parse("messages.status", row.try_get("status")?)?,
        failure: failure(row, "failure_reason", "failure_code")?,
        received,
        created_at: from_millis(row.try_get("created_at")?)?,
        updated_at: from_millis(row.try_get("updated_at")?)?,
    })
}

async fn add_step(
    tx: &mut WriteTx,
    id: MessageId,
    status: MessageStatus,
    failure: Option<&Failure>,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO message_status_history (message_id, status, failure_reason, failure_code, at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id.to_string())
    .bind(status.as_str())
    .bind(failure.map(|f| f.reason.as_str()))
    .bind(failure.and_then(|f| f.code).map(i64::from))
    .bind(millis(at))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn status_event(
    message: &MessageRecord,
    status: MessageStatus,
    previous: Option<MessageStatus>,
    failure: Option<Failure>,
) -> Envelope {
    Envelope::new(
        message.org_id,
        message.session_id,
        EventData::MessageStatus {
            message_id: message.id,
            wa_id: message.wa_id.clone(),
            chat: message.chat.clone(),
            status,
            previous,
            failure,
        },
    )
}

/// Moves the message in `tx` if the move is forward, through every status
/// in between; returns their events, in order.
async fn advance_in(
    tx: &mut WriteTx,
    current: MessageRecord,
    status: MessageStatus,
    failure: Option<Failure>,
) -> Result<Vec<Envelope>, StoreError> {
    let steps = current.status.steps_to(status);
    if steps.is_empty() {
        return Ok(Vec::new());
    }
    let at = now();
    sqlx::query(
        "UPDATE messages SET status = $1, failure_reason = $2, failure_code = $3, \
         media = CASE WHEN $1 = 'failed' THEN NULL ELSE media END, updated_at = $4 WHERE id = $5",
    )
    .bind(status.as_str())
    .bind(failure.as_ref().map(|f| f.reason.as_str()))
    .bind(failure.as_ref().and_then(|f| f.code).map(i64::from))
    .bind(millis(at))
    .bind(current.id.to_string())
    .execute(&mut **tx)
    .await?;
    let mut events = Vec::with_capacity(steps.len());
    let mut previous = current.status;
    for step in steps {
        let failure = (step == MessageStatus::Failed)
            .then(|| failure.clone())
            .flatten();
        add_step(tx, current.id, step, failure.as_ref(), at).await?;
        let mut event = status_event(&current, step, Some(previous), failure);
        append_event(tx, &mut event).await?;
        events.push(event);
        previous = step;
    }
    Ok(events)
}

async fn load_by_id(
    tx: &mut WriteTx,
    session: SessionId,
    id: MessageId,
) -> Result<Option<MessageRecord>, StoreError> {
    sqlx::query(select_messages!("WHERE id = $1 AND session_id = $2"))
        .bind(id.to_string())
        .bind(session.to_string())
        .fetch_optional(&mut **tx)
        .await?
        .as_ref()
        .map(message)
        .transpose()
}

impl Backend {
    /// One message of `session` in `org`, as `select_messages!` reads it.
    async fn message_row(
        &self,
        org: OrgId,
        session: SessionId,
        id: MessageId,
    ) -> Result<Option<DbRow>, StoreError> {
        Ok(sqlx::query(select_messages!(
            "WHERE id = $1 AND session_id = $2 AND org_id = $3"
        ))
        .bind(id.to_string())
        .bind(session.to_string())
        .bind(org.to_string())
        .fetch_optional(&self.reader)
        .await?)
    }
}

#[async_trait]
impl MessageStore for Backend {
    async fn accept(
        &self,
        new: NewOutgoing,
        claim: Option<IdempotencyClaim>,
    ) -> Result<Accepted, StoreError> {
        let at = now();
        let mut tx = begin_write(self).await?;
        if let Some(claim) = &claim {
            // The key decides, inside this transaction, whether this
            // request does the work or returns what the first one did.
            let claimed = sqlx::query(
                "INSERT INTO idempotency_keys (org_id, idem_key, request_hash, message_id, created_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (org_id, idem_key) DO NOTHING",
            )
            .bind(new.org_id.to_string())
            .bind(&claim.key)
            .bind(&claim.request_hash)
            .bind(new.id.to_string())
            .bind(millis(at))
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if !claimed {
                let row = sqlx::query(
                    "SELECT request_hash, message_id FROM idempotency_keys \
                     WHERE org_id = $1 AND idem_key = $2",
                )
                .bind(new.org_id.to_string())
                .bind(&claim.key)
                .fetch_one(&mut *tx)
                .await?;
                let hash: String = row.try_get("request_hash")?;
                if hash != claim.request_hash {
                    return Ok(Accepted::KeyReused);
                }
                let first: MessageId =
                    parse("idempotency_keys.message_id", row.try_get("message_id")?)?;
                let found = sqlx::query(select_messages!("WHERE id = $1"))
                    .bind(first.to_string())
                    .fetch_optional(&mut *tx)
                    .await?;
                return match found {
                    Some(row) => Ok(Accepted::Replayed(message(&row)?)),
                    // The first message's session was deleted since.
                    None => Ok(Accepted::KeyReused),
                };
            }
        }
        let record = MessageRecord {
            id: new.id,
            org_id: new.org_id,
            session_id: new.session_id,
            direction: crate::domain::Direction::Outgoing,
            wa_id: new.wa_id,
            chat: new.chat,
            kind: new.kind,
            content: new.content,
            status: MessageStatus::Pending,
            failure: None,
            received: None,
            created_at: at,
            updated_at: at,
        };
        sqlx::query(
            "INSERT INTO messages (id, org_id, session_id, direction, wa_id, chat, kind, content, \
             media, status, next_attempt_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(record.id.to_string())
        .bind(record.org_id.to_string())
        .bind(record.session_id.to_string())
        .bind(record.direction.as_str())
        .bind(&record.wa_id)
        .bind(&record.chat)
        .bind(&record.kind)
        .bind(record.content.to_string())
        .bind(new.media)
        .bind(record.status.as_str())
        .bind(millis(at))
        .bind(millis(at))
        .bind(millis(at))
        .execute(&mut *tx)
        .await?;
        add_step(&mut tx, record.id, MessageStatus::Pending, None, at).await?;
        let mut event = status_event(&record, MessageStatus::Pending, None, None);
        append_event(&mut tx, &mut event).await?;
        tx.commit().await?;
        Ok(Accepted::Created {
            message: record,
            event: Box::new(event),
        })
    }

    async fn get_message(
        &self,
        org: OrgId,
        session: SessionId,
        id: MessageId,
    ) -> Result<Option<(MessageRecord, Vec<StatusStep>)>, StoreError> {
        let Some(row) = self.message_row(org, session, id).await? else {
            return Ok(None);
        };
        let record = message(&row)?;
        // `rowid`: SQLite's own; PostgreSQL's table has an identity
        // column of that name, so steps of one millisecond keep their
        // order on both.
        let steps = sqlx::query(
            "SELECT status, failure_reason, failure_code, at FROM message_status_history \
             WHERE message_id = $1 ORDER BY at, rowid",
        )
        .bind(id.to_string())
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(|row| {
            Ok(StatusStep {
                status: parse("message_status_history.status", row.try_get("status")?)?,
                failure: failure(row, "failure_reason", "failure_code")?,
                at: from_millis(row.try_get("at")?)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Some((record, steps)))
    }

    async fn list_messages(
        &self,
        org: OrgId,
        session: SessionId,
        query: &MessageQuery,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        // UUIDv7 ids sort in creation order, so the id alone is the cursor.
        sqlx::query(select_messages!(
            "WHERE org_id = $1 AND session_id = $2 AND ($3 IS NULL OR chat = $3) "
            "AND ($4 IS NULL OR status = $4) AND ($5 IS NULL OR id < $5) "
            "AND ($7 IS NULL OR direction = $7) "
            "ORDER BY id DESC LIMIT $6"
        ))
        .bind(org.to_string())
        .bind(session.to_string())
        .bind(query.chat.as_deref())
        .bind(query.status.map(MessageStatus::as_str))
        .bind(query.before.map(|id| id.to_string()))
        .bind(i64::from(query.limit))
        .bind(query.direction.map(Direction::as_str))
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(message)
        .collect()
    }

    async fn due(
        &self,
        session: SessionId,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        sqlx::query(
            "SELECT id, org_id, session_id, direction, wa_id, chat, kind, content, status, \
             failure_reason, failure_code, created_at, updated_at, sender_phone, sender_lid, \
             push_name, from_me, sent_at, reply_to, media, wire, attempts \
             FROM messages WHERE session_id = $1 AND status = 'pending' AND next_attempt_at <= $2 \
             ORDER BY id LIMIT $3",
        )
        .bind(session.to_string())
        .bind(millis(now))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(|row| {
            let attempts: i64 = row.try_get("attempts")?;
            Ok(OutboxItem {
                message: message(row)?,
                media: row.try_get("media")?,
                wire: row.try_get("wire")?,
                attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
            })
        })
        .collect()
    }

    async fn next_due(&self, session: SessionId) -> Result<Option<DateTime<Utc>>, StoreError> {
        let at: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(next_attempt_at) FROM messages WHERE session_id = $1 AND status = 'pending'",
        )
        .bind(session.to_string())
        .fetch_one(&self.reader)
        .await?;
        at.map(from_millis).transpose()
    }

    async fn outbox_depth(&self) -> Result<OutboxDepth, StoreError> {
        let (pending, oldest): (i64, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*), MIN(created_at) FROM messages \
             WHERE status = 'pending' AND direction = 'outgoing'",
        )
        .fetch_one(&self.reader)
        .await?;
        Ok(OutboxDepth {
            pending: u64::try_from(pending).unwrap_or_default(),
            oldest: oldest.map(from_millis).transpose()?,
        })
    }

    async fn set_wire(&self, id: MessageId, wire: &[u8]) -> Result<(), StoreError> {
        sqlx::query("UPDATE messages SET wire = $1, media = NULL WHERE id = $2")
            .bind(wire)
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn record_attempt(
        &self,
        id: MessageId,
        attempts: u32,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE messages SET attempts = $1, next_attempt_at = $2 WHERE id = $3")
            .bind(i64::from(attempts))
            .bind(millis(next_attempt_at))
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn advance(
        &self,
        session: SessionId,
        id: MessageId,
        status: MessageStatus,
        failure: Option<Failure>,
    ) -> Result<Vec<Envelope>, StoreError> {
        let mut tx = begin_write(self).await?;
        let Some(current) = load_by_id(&mut tx, session, id).await? else {
            return Ok(Vec::new());
        };
        let events = advance_in(&mut tx, current, status, failure).await?;
        tx.commit().await?;
        Ok(events)
    }

    async fn advance_by_wa_ids(
        &self,
        session: SessionId,
        wa_ids: &[String],
        status: MessageStatus,
        failure: Option<Failure>,
    ) -> Result<Vec<Envelope>, StoreError> {
        let mut tx = begin_write(self).await?;
        let mut events = Vec::new();
        for wa_id in wa_ids {
            let found = sqlx::query(select_messages!(
                "WHERE session_id = $1 AND direction = 'outgoing' AND wa_id = $2"
            ))
            .bind(session.to_string())
            .bind(wa_id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = found else { continue };
            events.extend(advance_in(&mut tx, message(&row)?, status, failure.clone()).await?);
        }
        tx.commit().await?;
        Ok(events)
    }

    async fn requeue(&self, session: SessionId, at: DateTime<Utc>) -> Result<u64, StoreError> {
        let result = sqlx::query(
            "UPDATE messages SET next_attempt_at = $1 \
             WHERE session_id = $2 AND status = 'pending' AND next_attempt_at > $1",
        )
        .bind(millis(at))
        .bind(session.to_string())
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected())
    }

    async fn has_sent_to(&self, session: SessionId, chat: &str) -> Result<bool, StoreError> {
        // Nothing decoded: `1` is INTEGER on SQLite, int4 on PostgreSQL.
        let found = sqlx::query(
            "SELECT 1 FROM messages WHERE session_id = $1 AND chat = $2 \
             AND direction = 'outgoing' AND status <> 'pending' AND status <> 'failed' LIMIT 1",
        )
        .bind(session.to_string())
        .bind(chat)
        .fetch_optional(&self.reader)
        .await?;
        Ok(found.is_some())
    }

    async fn expire(
        &self,
        session: SessionId,
        before: DateTime<Utc>,
    ) -> Result<Vec<Envelope>, StoreError> {
        let mut tx = begin_write(self).await?;
        let rows = sqlx::query(select_messages!(
            "WHERE session_id = $1 AND status = 'pending' AND created_at < $2 ORDER BY id"
        ))
        .bind(session.to_string())
        .bind(millis(before))
        .fetch_all(&mut *tx)
        .await?;
        let mut events = Vec::new();
        for row in &rows {
            let expired = Some(Failure::new(FailureReason::Expired));
            events
                .extend(advance_in(&mut tx, message(row)?, MessageStatus::Failed, expired).await?);
        }
        tx.commit().await?;
        Ok(events)
    }

    async fn record_incoming(&self, batch: Vec<NewIncoming>) -> Result<Vec<Envelope>, StoreError> {
        match writer::write(&self.writer, Write::Incoming(batch)).await? {
            Written::Incoming(events) => Ok(events),
            _ => Err(writer::mismatch()),
        }
    }

    async fn media_ref(
        &self,
        org: OrgId,
        session: SessionId,
        id: MessageId,
    ) -> Result<Option<(MessageRecord, Option<MediaRef>)>, StoreError> {
        let Some(row) = self.message_row(org, session, id).await? else {
            return Ok(None);
        };
        let media: Option<String> = row.try_get("media_ref")?;
        let media = media
            .map(|json| {
                serde_json::from_str::<MediaRef>(&json)
                    .map_err(|e| StoreError::Corrupt(format!("messages.media_ref: {e}")))
            })
            .transpose()?;
        Ok(Some((message(&row)?, media)))
    }

    async fn poll(
        &self,
        session: SessionId,
        wa_id: &str,
    ) -> Result<Option<StoredPoll>, StoreError> {
        /// The part of a poll's content that names its options: the
        /// content itself for a poll received, inside the request kept
        /// for a poll sent.
        #[derive(serde::Deserialize)]
        struct Options {
            options: Vec<String>,
        }
        #[derive(serde::Deserialize)]
        struct Sent {
            content: Options,
        }
        // 'outgoing' sorts after 'incoming': the poll this session sent
        // wins over a copy of it that came back from its phone.
        let Some(row) = sqlx::query(
            "SELECT direction, chat, content, wire, sender_phone, sender_lid FROM messages \
             WHERE session_id = $1 AND wa_id = $2 AND kind = 'poll' \
             ORDER BY direction DESC LIMIT 1",
        )
        .bind(session.to_string())
        .bind(wa_id)
        .fetch_optional(&self.reader)
        .await?
        else {
            return Ok(None);
        };
        let direction = parse("messages.direction", row.try_get("direction")?)?;
        let content: String = row.try_get("content")?;
        let options = match direction {
            Direction::Outgoing => serde_json::from_str::<Sent>(&content).map(|s| s.content),
            Direction::Incoming => serde_json::from_str::<Options>(&content),
        }
        .map_err(|e| StoreError::Corrupt(format!("messages.content of a poll: {e}")))?
        .options;
        Ok(Some(StoredPoll {
            direction,
            chat: row.try_get("chat")?,
            sender: Sender {
                phone: row.try_get("sender_phone")?,
                lid: row.try_get("sender_lid")?,
            },
            options,
            wire: row.try_get("wire")?,
        }))
    }

    async fn prune_idempotency_keys(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let result = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(millis(before))
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected())
    }
}

/// Rows per multi-row `INSERT` of the inbound commit: 19 parameters a
/// row, far under SQLite's 32,766 and PostgreSQL's 65,535.
const INCOMING_CHUNK: usize = 400;

/// An incoming message ready to be inserted: which batch it came in, and
/// its row's values.
struct IncomingRow {
    batch: usize,
    id: String,
    org_id: OrgId,
    session_id: SessionId,
    inbound: crate::messages::Inbound,
    kind: &'static str,
    content_json: String,
    media_json: Option<String>,
}

/// Records `batches` inside `tx` (see [`MessageStore::record_incoming`]);
/// returns, per batch, the events of the messages that were new.
///
/// The messages of all batches go in as few multi-row statements as the
/// order allows (a reaction, edit or revoke looks its target up first,
/// so what came before it is inserted before that read), and so do their
/// events and webhook deliveries (`append_events_to`): a group of
/// hundreds of messages is a handful of statements, not four per message.
pub(super) async fn record_incoming_in(
    tx: &mut WriteTx,
    batches: Vec<Vec<NewIncoming>>,
    targets: &mut WebhookTargets,
) -> Result<Vec<Vec<Envelope>>, StoreError> {
    let at = millis(now());
    let count = batches.len();
    let mut rows: Vec<IncomingRow> = Vec::new();
    let mut inserted: HashSet<String> = HashSet::new();
    let mut written = 0;
    for (batch, news) in batches.into_iter().enumerate() {
        for new in news {
            let NewIncoming {
                id,
                org_id,
                session_id,
                mut inbound,
            } = new;
            // Point a reaction, edit or revoke at the gateway's copy of its
            // message, whichever way that went.
            if let Some(target) = inbound.content.target_mut() {
                // The target may be among the rows not yet written.
                insert_incoming(tx, &rows[written..], at, &mut inserted).await?;
                written = rows.len();
                let found: Option<String> = sqlx::query_scalar(
                    "SELECT id FROM messages WHERE session_id = $1 AND wa_id = $2 \
                     ORDER BY id LIMIT 1",
                )
                .bind(session_id.to_string())
                .bind(&target.wa_id)
                .fetch_optional(&mut **tx)
                .await?;
                target.message_id = found
                    .map(|id| parse::<MessageId>("messages.id", &id))
                    .transpose()?;
            }
            let content_json = serde_json::to_string(&inbound.content)
                .map_err(|e| StoreError::Corrupt(format!("content does not serialize: {e}")))?;
            let media_json = inbound
                .media
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(|e| StoreError::Corrupt(format!("media does not serialize: {e}")))?;
            rows.push(IncomingRow {
                batch,
                id: id.to_string(),
                org_id,
                session_id,
                kind: inbound.content.kind(),
                inbound,
                content_json,
                media_json,
            });
        }
    }
    insert_incoming(tx, &rows[written..], at, &mut inserted).await?;

    let mut events = Vec::new();
    let mut of_batch = Vec::new();
    for row in rows {
        if !inserted.contains(&row.id) {
            continue;
        }
        let inbound = row.inbound;
        of_batch.push(row.batch);
        events.push(Envelope::new(
            row.org_id,
            row.session_id,
            EventData::incoming(IncomingMessage {
                message_id: parse::<MessageId>("messages.id", &row.id)?,
                wa_id: inbound.wa_id,
                chat: inbound.chat,
                sender: inbound.sender,
                push_name: inbound.push_name,
                timestamp: inbound.timestamp,
                from_me: inbound.from_me,
                kind: row.kind.to_owned(),
                content: inbound.content,
                reply_to: inbound.reply_to,
            }),
        ));
    }
    append_events_to(tx, &mut events, targets).await?;
    let mut per_batch: Vec<Vec<Envelope>> = (0..count).map(|_| Vec::new()).collect();
    for (batch, event) in of_batch.into_iter().zip(events) {
        if let Some(list) = per_batch.get_mut(batch) {
            list.push(event);
        }
    }
    Ok(per_batch)
}

/// Inserts `rows`, adding the ids of those that were new to `inserted`.
/// The unique (session, direction, WhatsApp id) decides whether a row is
/// new: a redelivery, or the same message under another address (even in
/// the same statement: the first one wins), inserts nothing.
async fn insert_incoming(
    tx: &mut WriteTx,
    rows: &[IncomingRow],
    at: i64,
    inserted: &mut HashSet<String>,
) -> Result<(), StoreError> {
    for chunk in rows.chunks(INCOMING_CHUNK) {
        let mut query = QueryBuilder::<Db>::new(
            "INSERT INTO messages (id, org_id, session_id, direction, wa_id, chat, kind, \
             content, status, next_attempt_at, created_at, updated_at, sender_phone, \
             sender_lid, push_name, from_me, sent_at, reply_to, media_ref) ",
        );
        query.push_values(chunk, |mut values, row| {
            let inbound = &row.inbound;
            values
                .push_bind(row.id.clone())
                .push_bind(row.org_id.to_string())
                .push_bind(row.session_id.to_string())
                .push_bind("incoming")
                .push_bind(inbound.wa_id.clone())
                .push_bind(inbound.chat.clone())
                .push_bind(row.kind)
                .push_bind(row.content_json.clone())
                // An incoming message is where it was going: delivered.
                .push_bind(MessageStatus::Delivered.as_str())
                .push_bind(at)
                .push_bind(at)
                .push_bind(at)
                .push_bind(inbound.sender.phone.clone())
                .push_bind(inbound.sender.lid.clone())
                .push_bind(inbound.push_name.clone())
                .push_bind(inbound.from_me)
                .push_bind(millis(inbound.timestamp))
                .push_bind(inbound.reply_to.clone())
                .push_bind(row.media_json.clone());
        });
        query.push(" ON CONFLICT (session_id, direction, wa_id) DO NOTHING RETURNING id");
        let ids: Vec<String> = query.build_query_scalar().fetch_all(&mut **tx).await?;
        inserted.extend(ids);
    }
    Ok(())
}

#[cfg(test)]
#[path = "incoming_tests.rs"]
mod incoming_tests;

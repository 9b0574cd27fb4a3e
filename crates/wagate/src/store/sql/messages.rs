//! Messages, their history and idempotency keys.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};

use sqlx::{QueryBuilder, Row};

use super::chats::{merge_lid_in, touch_in};
use super::contacts::{PushName, note_push_names_in};
use super::events::{append_event, append_events_to};
use super::fences::check_fences;
use super::webhooks::WebhookTargets;
use super::writer::{self, Advance, Write, Written};
use super::{Backend, Db, DbConnection, DbRow, WriteTx, begin_write, parse};
use crate::domain::{
    Direction, Failure, FailureReason, MessageId, MessageStatus, OrgId, SessionId,
};
use crate::events::{Envelope, EventData};
use crate::messages::{IncomingMessage, MediaRef, Sender};
use crate::store::chats::{ACTIVITY_EXCLUDED, ChatKind, ChatTouch, chat_kind};
use crate::store::contacts::Person;
use crate::store::{
    Accepted, IdempotencyClaim, MessageQuery, MessageRecord, MessageStore, NewIncoming,
    NewOutgoing, OutboxDepth, OutboxItem, Received, StatusStep, StoreError, StoredPoll,
    from_millis, millis, now,
};

/// The columns [`message`] reads, qualified so a query may join another
/// table (the chat list does).
macro_rules! message_columns {
    () => {
        "messages.id, messages.org_id, messages.session_id, messages.direction, \
         messages.wa_id, messages.chat, messages.kind, messages.content, messages.status, \
         messages.failure_reason, messages.failure_code, messages.created_at, \
         messages.updated_at, messages.sender_phone, messages.sender_lid, messages.push_name, \
         messages.from_me, messages.sent_at, messages.reply_to, messages.media_ref, \
         messages.from_history"
    };
}
pub(super) use message_columns;

/// Above every message id in the store's order: ids are lowercase
/// hyphenated UUIDs, and `~` sorts after every character they use (SQLite's
/// binary collation, PostgreSQL's `"C"`). The empty string is below them all.
const ID_CEILING: &str = "~";

macro_rules! select_messages {
    ($($rest:literal)*) => {
        concat!("SELECT ", message_columns!(), " FROM messages ", $($rest),*)
    };
}

#[path = "messages/advance.rs"]
mod advance;
pub(super) use advance::advance_many_in;

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

pub(super) fn message(row: &DbRow) -> Result<MessageRecord, StoreError> {
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
                from_history: row.try_get("from_history")?,
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

/// Accepts a group's messages inside the caller's transaction (the store's
/// group-commit writer's), in order: each idempotency claim decided one
/// by one (a second request with the same key finds the first one's
/// claim, in the group too), then the new messages, their first history
/// steps and their `pending` events written as one multi-row statement
/// each. Returns each request's outcome, in order.
pub(super) async fn accept_many_in(
    tx: &mut WriteTx,
    requests: &[&(NewOutgoing, Option<IdempotencyClaim>)],
) -> Result<Vec<Accepted>, StoreError> {
    let at = now();
    // The messages this group creates, by id, for a replay within it.
    let mut created: HashMap<MessageId, MessageRecord> = HashMap::new();
    // Per request: the outcome already decided, or `None` to create.
    let mut decided: Vec<Option<Accepted>> = Vec::with_capacity(requests.len());
    for (new, claim) in requests.iter().map(|r| (&r.0, r.1.as_ref())) {
        let replay = match claim {
            Some(claim) => claim_key(tx, new, claim, at, &created).await?,
            None => None,
        };
        if replay.is_none() {
            created.insert(new.id, outgoing_record(new, at));
        }
        decided.push(replay);
    }
    let creating: Vec<(&NewOutgoing, &MessageRecord)> = requests
        .iter()
        .zip(&decided)
        .filter(|(_, decided)| decided.is_none())
        .filter_map(|(request, _)| {
            created
                .get(&request.0.id)
                .map(|record| (&request.0, record))
        })
        .collect();
    for chunk in creating.chunks(ACCEPT_CHUNK) {
        let mut query = QueryBuilder::<Db>::new(
            "INSERT INTO messages (id, org_id, session_id, direction, wa_id, chat, kind, content, \
             media, status, next_attempt_at, created_at, updated_at) ",
        );
        query.push_values(chunk, |mut row, (new, record)| {
            row.push_bind(record.id.to_string())
                .push_bind(record.org_id.to_string())
                .push_bind(record.session_id.to_string())
                .push_bind(record.direction.as_str())
                .push_bind(record.wa_id.clone())
                .push_bind(record.chat.clone())
                .push_bind(record.kind.clone())
                .push_bind(record.content.to_string())
                .push_bind(new.media.clone())
                .push_bind(record.status.as_str())
                .push_bind(millis(at))
                .push_bind(millis(at))
                .push_bind(millis(at));
        });
        query.build().execute(&mut **tx).await?;
        let mut query = QueryBuilder::<Db>::new(
            "INSERT INTO message_status_history (message_id, status, failure_reason, \
             failure_code, at) ",
        );
        query.push_values(chunk, |mut row, (_, record)| {
            row.push_bind(record.id.to_string())
                .push_bind(MessageStatus::Pending.as_str())
                .push_bind(None::<String>)
                .push_bind(None::<i64>)
                .push_bind(millis(at));
        });
        query.build().execute(&mut **tx).await?;
    }
    let touches: Vec<ChatTouch> = creating
        .iter()
        .filter(|(_, record)| !ACTIVITY_EXCLUDED.contains(&record.kind.as_str()))
        .map(|(_, record)| ChatTouch {
            session_id: record.session_id,
            chat: record.chat.clone(),
            message_id: record.id,
            // Sent by the session: the chat is read up to here.
            unread: false,
            name: None,
        })
        .collect();
    touch_in(tx, &touches).await?;
    let mut events: Vec<Envelope> = creating
        .iter()
        .map(|(_, record)| status_event(record, MessageStatus::Pending, None, None))
        .collect();
    append_events_to(tx, &mut events, &mut WebhookTargets::default()).await?;
    let mut events = events.into_iter();
    let mut answers = Vec::with_capacity(requests.len());
    for (request, decided) in requests.iter().zip(decided) {
        answers.push(match decided {
            Some(replay) => replay,
            None => match (created.remove(&request.0.id), events.next()) {
                (Some(message), Some(event)) => Accepted::Created {
                    message,
                    event: Box::new(event),
                },
                _ => {
                    return Err(StoreError::Corrupt(
                        "an accepted message went missing".into(),
                    ));
                }
            },
        });
    }
    Ok(answers)
}

/// Messages per multi-row insert of an accepted group: 13 parameters each.
const ACCEPT_CHUNK: usize = 200;

fn outgoing_record(new: &NewOutgoing, at: DateTime<Utc>) -> MessageRecord {
    MessageRecord {
        id: new.id,
        org_id: new.org_id,
        session_id: new.session_id,
        direction: crate::domain::Direction::Outgoing,
        wa_id: new.wa_id.clone(),
        chat: new.chat.clone(),
        kind: new.kind.clone(),
        content: new.content.clone(),
        status: MessageStatus::Pending,
        failure: None,
        received: None,
        created_at: at,
        updated_at: at,
    }
}

/// Decides an idempotency key inside the transaction: `None` if this
/// request claimed it (and creates its message), else what to answer.
async fn claim_key(
    tx: &mut WriteTx,
    new: &NewOutgoing,
    claim: &IdempotencyClaim,
    at: DateTime<Utc>,
    created: &HashMap<MessageId, MessageRecord>,
) -> Result<Option<Accepted>, StoreError> {
    let claimed = sqlx::query(
        "INSERT INTO idempotency_keys (org_id, idem_key, request_hash, message_id, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (org_id, idem_key) DO NOTHING",
    )
    .bind(new.org_id.to_string())
    .bind(&claim.key)
    .bind(&claim.request_hash)
    .bind(new.id.to_string())
    .bind(millis(at))
    .execute(&mut **tx)
    .await?
    .rows_affected()
        == 1;
    if claimed {
        return Ok(None);
    }
    let row = sqlx::query(
        "SELECT request_hash, message_id FROM idempotency_keys \
         WHERE org_id = $1 AND idem_key = $2",
    )
    .bind(new.org_id.to_string())
    .bind(&claim.key)
    .fetch_one(&mut **tx)
    .await?;
    let hash: String = row.try_get("request_hash")?;
    if hash != claim.request_hash {
        return Ok(Some(Accepted::KeyReused));
    }
    let first: MessageId = parse("idempotency_keys.message_id", row.try_get("message_id")?)?;
    // Claimed earlier in this same group: not written yet.
    if let Some(record) = created.get(&first) {
        return Ok(Some(Accepted::Replayed(record.clone())));
    }
    let found = sqlx::query(select_messages!("WHERE id = $1"))
        .bind(first.to_string())
        .fetch_optional(&mut **tx)
        .await?;
    match found {
        Some(row) => Ok(Some(Accepted::Replayed(message(&row)?))),
        // The first message's session was deleted since.
        None => Ok(Some(Accepted::KeyReused)),
    }
}

/// [`MessageStore::set_wire`] in the caller's transaction.
pub(super) async fn set_wire_in(
    tx: &mut WriteTx,
    id: MessageId,
    wire: &[u8],
) -> Result<(), StoreError> {
    sqlx::query("UPDATE messages SET wire = $1, media = NULL WHERE id = $2")
        .bind(wire)
        .bind(id.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// [`MessageStore::record_attempt`] in the caller's transaction.
pub(super) async fn record_attempt_in(
    tx: &mut WriteTx,
    id: MessageId,
    attempts: u32,
    next_attempt_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE messages SET attempts = $1, next_attempt_at = $2 WHERE id = $3")
        .bind(i64::from(attempts))
        .bind(millis(next_attempt_at))
        .bind(id.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
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

/// Makes a session's pending messages due by `$1` (`requeue`).
const REQUEUE: &str = "UPDATE messages SET next_attempt_at = $1 \
     WHERE session_id = $2 AND status = 'pending' AND next_attempt_at > $1";

#[async_trait]
impl MessageStore for Backend {
    async fn accept(
        &self,
        new: NewOutgoing,
        claim: Option<IdempotencyClaim>,
    ) -> Result<Accepted, StoreError> {
        match writer::write(&self.writer, Write::Accept(Box::new((new, claim)))).await? {
            Written::Accepted(accepted) => Ok(accepted),
            _ => Err(writer::mismatch()),
        }
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
        // Towards the present (`after`) the closest come first, then the
        // page is turned to newest first like every other.
        // The cursors are always bound, as an id range (`id > $8 AND id <
        // $5`, open ends given as ids below and above every id): with
        // `($5 IS NULL OR id < $5)` no index range serves the page, and each
        // page read every message of the session (or the chat) up to it.
        // One chat's messages read the chat's own index (`messages_by_chat`);
        // the others `messages_by_session_id` (migration 0036): with
        // `($3 IS NULL OR chat = $3)` the planner can use neither.
        let sql = match (query.chat.is_some(), query.after.is_some()) {
            (true, true) => select_messages!(
                "WHERE org_id = $1 AND session_id = $2 AND chat = $3 "
                "AND ($4 IS NULL OR status = $4) AND id < $5 "
                "AND ($7 IS NULL OR direction = $7) AND id > $8 "
                "ORDER BY id ASC LIMIT $6"
            ),
            (true, false) => select_messages!(
                "WHERE org_id = $1 AND session_id = $2 AND chat = $3 "
                "AND ($4 IS NULL OR status = $4) AND id < $5 "
                "AND ($7 IS NULL OR direction = $7) AND id > $8 "
                "ORDER BY id DESC LIMIT $6"
            ),
            (false, true) => select_messages!(
                "WHERE org_id = $1 AND session_id = $2 AND ($3 IS NULL OR chat = $3) "
                "AND ($4 IS NULL OR status = $4) AND id < $5 "
                "AND ($7 IS NULL OR direction = $7) AND id > $8 "
                "ORDER BY id ASC LIMIT $6"
            ),
            (false, false) => select_messages!(
                "WHERE org_id = $1 AND session_id = $2 AND ($3 IS NULL OR chat = $3) "
                "AND ($4 IS NULL OR status = $4) AND id < $5 "
                "AND ($7 IS NULL OR direction = $7) AND id > $8 "
                "ORDER BY id DESC LIMIT $6"
            ),
        };
        let mut records = sqlx::query(sql)
            .bind(org.to_string())
            .bind(session.to_string())
            .bind(query.chat.as_deref())
            .bind(query.status.map(MessageStatus::as_str))
            .bind(
                query
                    .before
                    .map_or_else(|| ID_CEILING.to_string(), |id| id.to_string()),
            )
            .bind(i64::from(query.limit))
            .bind(query.direction.map(Direction::as_str))
            .bind(query.after.map_or_else(String::new, |id| id.to_string()))
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(message)
            .collect::<Result<Vec<_>, StoreError>>()?;
        if query.after.is_some() {
            records.reverse();
        }
        Ok(records)
    }

    async fn due(
        &self,
        session: SessionId,
        now: DateTime<Utc>,
        after: Option<MessageId>,
        limit: u32,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        // Two statements rather than `($4 IS NULL OR id > $4)`, which no
        // index range serves; both walk `messages_pending_by_id`.
        macro_rules! select_due {
            ($after:literal) => {
                concat!(
                    "SELECT id, org_id, session_id, direction, wa_id, chat, kind, content, status, \
                     failure_reason, failure_code, created_at, updated_at, sender_phone, \
                     sender_lid, push_name, from_me, sent_at, reply_to, media, wire, attempts \
                     FROM messages WHERE session_id = $1 AND status = 'pending' ",
                    $after,
                    " AND next_attempt_at <= $2 ORDER BY id LIMIT $3"
                )
            };
        }
        let query = match after {
            None => sqlx::query(select_due!("")),
            Some(_) => sqlx::query(select_due!("AND id > $4")),
        }
        .bind(session.to_string())
        .bind(millis(now))
        .bind(i64::from(limit));
        let query = match after {
            None => query,
            Some(after) => query.bind(after.to_string()),
        };
        query
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

    async fn set_wire(
        &self,
        session: SessionId,
        id: MessageId,
        wire: &[u8],
    ) -> Result<(), StoreError> {
        let wire = wire.to_vec();
        let claims = self.claims([session]);
        writer::write_claimed(&self.writer, Write::Wire { id, wire }, claims).await?;
        Ok(())
    }

    async fn record_attempt(
        &self,
        session: SessionId,
        id: MessageId,
        attempts: u32,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let next = next_attempt_at;
        let claims = self.claims([session]);
        writer::write_claimed(&self.writer, Write::Attempt { id, attempts, next }, claims).await?;
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
        check_fences(&mut tx, &self.claims([session])).await?;
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
        let advance = Advance {
            session,
            wa_ids: wa_ids.to_vec(),
            status,
            failure,
        };
        let claims = self.claims([session]);
        match writer::write_claimed(&self.writer, Write::Advance(Box::new(advance)), claims).await?
        {
            Written::Advanced(events) => Ok(events),
            _ => Err(writer::mismatch()),
        }
    }

    async fn requeue(&self, session: SessionId, at: DateTime<Utc>) -> Result<u64, StoreError> {
        let claims = self.claims([session]);
        if !claims.is_empty() {
            let mut tx = begin_write(self).await?;
            check_fences(&mut tx, &claims).await?;
            let result = sqlx::query(REQUEUE)
                .bind(millis(at))
                .bind(session.to_string())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(result.rows_affected());
        }
        let result = sqlx::query(REQUEUE)
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
        check_fences(&mut tx, &self.claims([session])).await?;
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
        let claims = self.claims(batch.iter().map(|m| m.session_id));
        match writer::write_claimed(&self.writer, Write::Incoming(batch), claims).await? {
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
    let touches = rows
        .iter()
        .filter(|row| inserted.contains(&row.id) && !ACTIVITY_EXCLUDED.contains(&row.kind))
        .map(|row| {
            let inbound = &row.inbound;
            Ok(ChatTouch {
                session_id: row.session_id,
                chat: inbound.chat.clone(),
                message_id: parse::<MessageId>("messages.id", &row.id)?,
                unread: !inbound.from_me,
                // A person's chat is named by what they call themselves.
                name: (!inbound.from_me && chat_kind(&inbound.chat) == ChatKind::Person)
                    .then(|| inbound.push_name.clone())
                    .flatten(),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    // A person's chat by number takes in what was stored under their LID
    // before the number was known: one person, one chat.
    let mut merged: HashSet<(SessionId, &str)> = HashSet::new();
    for row in rows.iter().filter(|row| inserted.contains(&row.id)) {
        let inbound = &row.inbound;
        let (Some(phone), Some(lid)) = (&inbound.sender.phone, &inbound.sender.lid) else {
            continue;
        };
        if inbound.from_me
            || inbound.chat.strip_suffix("@s.whatsapp.net") != Some(phone.as_str())
            || !merged.insert((row.session_id, lid.as_str()))
        {
            continue;
        }
        let conn: &mut DbConnection = &mut *tx;
        merge_lid_in(conn, &row.session_id.to_string(), lid, phone).await?;
    }
    touch_in(tx, &touches).await?;
    // What each sender calls themselves, in the contacts, reported when it
    // changed (with the events of the messages that carried it).
    let names: Vec<PushName<'_>> = rows
        .iter()
        .filter(|row| inserted.contains(&row.id) && !row.inbound.from_me)
        .filter_map(|row| {
            let name = row.inbound.push_name.as_deref().filter(|n| !n.is_empty())?;
            Some(PushName {
                org: row.org_id,
                session: row.session_id,
                person: Person {
                    phone: row.inbound.sender.phone.clone(),
                    lid: row.inbound.sender.lid.clone(),
                },
                name,
                tag: row.batch,
                live: true,
            })
        })
        .collect();
    let contact_events = note_push_names_in(tx, &names).await?;

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
    for (batch, event) in contact_events {
        of_batch.push(batch);
        events.push(event);
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

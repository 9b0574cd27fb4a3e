//! Acks and receipts of a whole group, written in a handful of statements:
//! under load every sent message brings an ack and a receipt or two, from
//! every session at once, and one at a time each was a read, an update, a
//! history row and an event (with its webhook lookup) per status step.
//! Here the messages of all the group's acks and receipts are read in one
//! statement, moved in memory (in the order the reports came, so an ack
//! and a receipt of one message in the same group step it twice), and
//! written back as one update, one history insert and one event insert.

use std::collections::HashMap;

use sqlx::QueryBuilder;

use super::super::Db;
use super::super::events::append_events_to;
use super::super::webhooks::WebhookTargets;
use super::super::writer::Advance;
use super::{WriteTx, message, status_event};
use crate::domain::{Failure, MessageId, MessageStatus};
use crate::events::Envelope;
use crate::store::{MessageRecord, StoreError, millis, now};

/// (session, WhatsApp id) pairs per read: 2 parameters each.
const READ_CHUNK: usize = 400;
/// Rows per multi-row write: at most 5 parameters each.
const WRITE_CHUNK: usize = 400;

/// Moves the outgoing messages `advances` name, each report in turn;
/// returns each report's events, in the order of `advances`.
pub(in crate::store) async fn advance_many_in(
    tx: &mut WriteTx,
    advances: &[&Advance],
) -> Result<Vec<Vec<Envelope>>, StoreError> {
    let mut current = read_named(tx, advances).await?;
    let at = now();
    // The messages that moved, in the order they first moved, and where
    // each ended up.
    let mut moved: Vec<MessageId> = Vec::new();
    let mut last: HashMap<MessageId, (MessageStatus, Option<Failure>)> = HashMap::new();
    let mut steps: Vec<(MessageId, MessageStatus, Option<Failure>)> = Vec::new();
    let mut events: Vec<Envelope> = Vec::new();
    let mut owners: Vec<usize> = Vec::new();
    for (n, advance) in advances.iter().enumerate() {
        for wa_id in &advance.wa_ids {
            let key = (advance.session.to_string(), wa_id.clone());
            let Some(record) = current.get_mut(&key) else {
                continue;
            };
            let path = record.status.steps_to(advance.status);
            if path.is_empty() {
                continue;
            }
            let mut previous = record.status;
            for step in path {
                let failure = (step == MessageStatus::Failed)
                    .then(|| advance.failure.clone())
                    .flatten();
                steps.push((record.id, step, failure.clone()));
                events.push(status_event(record, step, Some(previous), failure));
                owners.push(n);
                previous = step;
            }
            record.status = advance.status;
            if last
                .insert(record.id, (advance.status, advance.failure.clone()))
                .is_none()
            {
                moved.push(record.id);
            }
        }
    }
    update_statuses(tx, &moved, &last, at).await?;
    insert_steps(tx, &steps, at).await?;
    append_events_to(tx, &mut events, &mut WebhookTargets::default()).await?;
    let mut answers = vec![Vec::new(); advances.len()];
    for (event, n) in events.into_iter().zip(owners) {
        if let Some(answer) = answers.get_mut(n) {
            answer.push(event);
        }
    }
    Ok(answers)
}

/// Every outgoing message the reports name, by (session, WhatsApp id).
async fn read_named(
    tx: &mut WriteTx,
    advances: &[&Advance],
) -> Result<HashMap<(String, String), MessageRecord>, StoreError> {
    let named: Vec<(String, &str)> = advances
        .iter()
        .flat_map(|a| {
            let session = a.session.to_string();
            a.wa_ids.iter().map(move |w| (session.clone(), w.as_str()))
        })
        .collect();
    let mut found = HashMap::with_capacity(named.len());
    for chunk in named.chunks(READ_CHUNK) {
        let mut query =
            QueryBuilder::<Db>::new(select_messages!("WHERE direction = 'outgoing' AND ("));
        for (i, (session, wa_id)) in chunk.iter().enumerate() {
            if i > 0 {
                query.push(" OR ");
            }
            query.push("(session_id = ");
            query.push_bind(session.clone());
            query.push(" AND wa_id = ");
            query.push_bind((*wa_id).to_owned());
            query.push(")");
        }
        query.push(")");
        for row in query.build().fetch_all(&mut **tx).await? {
            let record = message(&row)?;
            found.insert(
                (record.session_id.to_string(), record.wa_id.clone()),
                record,
            );
        }
    }
    Ok(found)
}

/// Each moved message's last status (and failure, for `failed`), one
/// `UPDATE … FROM (VALUES …)` per chunk (`column1`… on both databases).
async fn update_statuses(
    tx: &mut WriteTx,
    moved: &[MessageId],
    last: &HashMap<MessageId, (MessageStatus, Option<Failure>)>,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), StoreError> {
    for chunk in moved.chunks(WRITE_CHUNK) {
        let mut query = QueryBuilder::<Db>::new(
            "UPDATE messages SET status = v.column2, failure_reason = v.column3, \
             failure_code = v.column4, \
             media = CASE WHEN v.column2 = 'failed' THEN NULL ELSE messages.media END, \
             updated_at = v.column5 FROM (",
        );
        query.push_values(chunk, |mut row, id| {
            let (status, failure) = last
                .get(id)
                .map_or((MessageStatus::Pending, None), |(s, f)| (*s, f.as_ref()));
            row.push_bind(id.to_string())
                .push_bind(status.as_str())
                .push_bind(failure.map(|f| f.reason.as_str()))
                .push_bind(failure.and_then(|f| f.code).map(i64::from))
                .push_bind(millis(at));
        });
        query.push(") AS v WHERE messages.id = v.column1");
        query.build().execute(&mut **tx).await?;
    }
    Ok(())
}

async fn insert_steps(
    tx: &mut WriteTx,
    steps: &[(MessageId, MessageStatus, Option<Failure>)],
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), StoreError> {
    for chunk in steps.chunks(WRITE_CHUNK) {
        let mut query = QueryBuilder::<Db>::new(
            "INSERT INTO message_status_history (message_id, status, failure_reason, \
             failure_code, at) ",
        );
        query.push_values(chunk, |mut row, (id, status, failure)| {
            row.push_bind(id.to_string())
                .push_bind(status.as_str())
                .push_bind(failure.as_ref().map(|f| f.reason.as_str()))
                .push_bind(failure.as_ref().and_then(|f| f.code).map(i64::from))
                .push_bind(millis(at));
        });
        query.build().execute(&mut **tx).await?;
    }
    Ok(())
}

//! History after linking: a chunk's messages, chats and push names stored
//! with its `history.sync` event (and the `contact.updated` of push names
//! that changed) in one transaction (`record_history_in`,
//! run by the group-commit writer).

use std::collections::{HashMap, HashSet};

use sqlx::QueryBuilder;

use super::contacts::{PushName, note_push_names_in};
use super::events::{append_event, append_events_to};
use super::webhooks::WebhookTargets;
use super::{Db, WriteTx};
use crate::domain::{MessageId, MessageStatus};
use crate::events::{Envelope, EventData};
use crate::messages::Inbound;
use crate::store::chats::{ACTIVITY_EXCLUDED, ChatKind, chat_kind};
use crate::store::contacts::Person;
use crate::store::{NewHistory, StoreError, StoredHistory, millis, now};

/// Messages per multi-row `INSERT` (20 parameters a row).
const MESSAGE_CHUNK: usize = 500;
/// WhatsApp ids per lookup of those already stored.
const LOOKUP_CHUNK: usize = 500;

/// A message of the chunk that the session does not have yet.
struct Row<'a> {
    id: MessageId,
    chat: usize,
    inbound: &'a Inbound,
    kind: &'static str,
    content: String,
    media: Option<String>,
}

/// A gateway id that sorts by when the message was sent: a UUIDv7 on its
/// WhatsApp timestamp (`ms`), so history and live messages of a chat come
/// out in the order they were written.
fn id_at(ms: i64) -> MessageId {
    let ms = u64::try_from(ms).unwrap_or_default();
    let builder = uuid::Builder::from_unix_timestamp_millis(ms, &rand::random::<[u8; 10]>());
    MessageId::from(builder.into_uuid())
}

/// Stores `history` inside `tx` (see `ChatStore::record_history`).
pub(super) async fn record_history_in(
    tx: &mut WriteTx,
    history: &NewHistory,
) -> Result<StoredHistory, StoreError> {
    let session = history.session_id.to_string();
    let at = millis(now());
    let mut known = stored_wa_ids(tx, &session, history).await?;

    let mut rows: Vec<Row<'_>> = Vec::new();
    for (index, chat) in history.chats.iter().enumerate() {
        // Oldest first; messages of one second keep the chunk's order.
        let mut messages: Vec<&Inbound> = chat.messages.iter().collect();
        messages.sort_by_key(|m| m.timestamp);
        let mut last_ms = i64::MIN;
        for inbound in messages {
            // Stored already (live, from an earlier chunk, or twice in
            // this one): kept once.
            if !known.insert(inbound.wa_id.clone()) {
                continue;
            }
            let ms = millis(inbound.timestamp).max(last_ms.saturating_add(1));
            last_ms = ms;
            rows.push(Row {
                id: id_at(ms),
                chat: index,
                inbound,
                kind: inbound.content.kind(),
                content: serde_json::to_string(&inbound.content)
                    .map_err(|e| StoreError::Corrupt(format!("content does not serialize: {e}")))?,
                media: inbound
                    .media
                    .as_ref()
                    .map(serde_json::to_string)
                    .transpose()
                    .map_err(|e| StoreError::Corrupt(format!("media does not serialize: {e}")))?,
            });
        }
    }

    let mut inserted: HashSet<String> = HashSet::new();
    for chunk in rows.chunks(MESSAGE_CHUNK) {
        let mut query = QueryBuilder::<Db>::new(
            "INSERT INTO messages (id, org_id, session_id, direction, wa_id, chat, kind, \
             content, status, next_attempt_at, created_at, updated_at, sender_phone, \
             sender_lid, push_name, from_me, sent_at, reply_to, media_ref, from_history) ",
        );
        query.push_values(chunk, |mut values, row| {
            let inbound = row.inbound;
            values
                .push_bind(row.id.to_string())
                .push_bind(history.org_id.to_string())
                .push_bind(session.clone())
                // As live: what the account's own phone wrote is an
                // incoming message `from_me`.
                .push_bind("incoming")
                .push_bind(inbound.wa_id.clone())
                .push_bind(history.chats[row.chat].chat.clone())
                .push_bind(row.kind)
                .push_bind(row.content.clone())
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
                .push_bind(row.media.clone())
                .push_bind(true);
        });
        query.push(" ON CONFLICT (session_id, direction, wa_id) DO NOTHING RETURNING id");
        let ids: Vec<String> = query.build_query_scalar().fetch_all(&mut **tx).await?;
        inserted.extend(ids);
    }

    // Each chat's newest new message that makes it active.
    let mut latest: HashMap<usize, MessageId> = HashMap::new();
    for row in &rows {
        if ACTIVITY_EXCLUDED.contains(&row.kind) || !inserted.contains(&row.id.to_string()) {
            continue;
        }
        let entry = latest.entry(row.chat).or_insert(row.id);
        if row.id > *entry {
            *entry = row.id;
        }
    }
    let mut touched: Vec<(usize, MessageId)> = latest.into_iter().collect();
    touched.sort_unstable();
    for chunk in touched.chunks(MESSAGE_CHUNK) {
        let mut query = QueryBuilder::<Db>::new(
            "INSERT INTO chats (session_id, chat, kind, name, last_message_id, last_at, unread) ",
        );
        query.push_values(chunk, |mut values, (index, last)| {
            let chat = &history.chats[*index];
            let kind = chat_kind(&chat.chat);
            values
                .push_bind(session.clone())
                .push_bind(chat.chat.clone())
                .push_bind(kind.as_str())
                .push_bind(chat_name(chat, kind))
                .push_bind(last.to_string())
                .push_bind(at)
                .push_bind(i64::from(chat.unread));
        });
        // An existing chat keeps its unread count and a name it has; a
        // message older than its latest leaves the latest where it is.
        query.push(
            " ON CONFLICT (session_id, chat) DO UPDATE SET \
             last_message_id = CASE WHEN excluded.last_message_id > chats.last_message_id \
                 THEN excluded.last_message_id ELSE chats.last_message_id END, \
             last_at = CASE WHEN excluded.last_message_id > chats.last_message_id \
                 THEN excluded.last_at ELSE chats.last_at END, \
             name = COALESCE(chats.name, excluded.name)",
        );
        query.build().execute(&mut **tx).await?;
    }

    let names: Vec<PushName<'_>> = history
        .push_names
        .iter()
        .filter_map(|(jid, name)| {
            Some(PushName {
                org: history.org_id,
                session: history.session_id,
                person: Person::from_jid(jid)?,
                name,
                tag: 0,
                live: false,
            })
        })
        .collect();
    let mut contacts: Vec<Envelope> = note_push_names_in(tx, &names)
        .await?
        .into_iter()
        .map(|(_, event)| event)
        .collect();
    for (jid, name) in &history.push_names {
        // A person's chat without a name takes the one they gave themselves.
        sqlx::query(
            "UPDATE chats SET name = $3 WHERE session_id = $1 AND chat = $2 AND name IS NULL",
        )
        .bind(&session)
        .bind(jid)
        .bind(name)
        .execute(&mut **tx)
        .await?;
    }
    append_events_to(tx, &mut contacts, &mut WebhookTargets::default()).await?;

    let mut event = Envelope::new(
        history.org_id,
        history.session_id,
        EventData::HistorySync {
            sync_type: history.sync_type,
            chunk_order: history.chunk_order,
            progress: history.progress,
            chats: touched.len() as u64,
            messages: inserted.len() as u64,
            push_names: history.push_names.len() as u64,
        },
    );
    append_event(tx, &mut event).await?;
    Ok(StoredHistory {
        sync: event,
        contacts,
    })
}

/// A group's chat is named by its subject; a person's by the name the
/// phone has for the chat, else the latest push name they wrote with.
fn chat_name(chat: &crate::store::HistoryChat, kind: ChatKind) -> Option<String> {
    if chat.name.is_some() || kind == ChatKind::Group {
        return chat.name.clone();
    }
    chat.messages
        .iter()
        .filter(|m| !m.from_me)
        .max_by_key(|m| m.timestamp)
        .and_then(|m| m.push_name.clone())
}

/// The WhatsApp ids of the chunk the session already has, either way.
async fn stored_wa_ids(
    tx: &mut WriteTx,
    session: &str,
    history: &NewHistory,
) -> Result<HashSet<String>, StoreError> {
    let ids: Vec<&str> = history
        .chats
        .iter()
        .flat_map(|c| c.messages.iter().map(|m| m.wa_id.as_str()))
        .collect();
    let mut known = HashSet::new();
    for chunk in ids.chunks(LOOKUP_CHUNK) {
        let mut query = QueryBuilder::<Db>::new("SELECT wa_id FROM messages WHERE session_id = ");
        query.push_bind(session.to_owned());
        query.push(" AND direction IN ('incoming', 'outgoing') AND wa_id IN (");
        let mut list = query.separated(", ");
        for id in chunk {
            list.push_bind((*id).to_owned());
        }
        query.push(")");
        let found: Vec<String> = query.build_query_scalar().fetch_all(&mut **tx).await?;
        known.extend(found);
    }
    Ok(known)
}

#[cfg(test)]
#[path = "history_tests.rs"]
mod history_tests;

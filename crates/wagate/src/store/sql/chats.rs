//! The chat list's rows: kept current in each message's own transaction
//! (`touch_in`), read by latest activity.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::{QueryBuilder, Row};

use super::events::append_events_to;
use super::fences::check_fences;
use super::messages::{message, message_columns};
use super::webhooks::WebhookTargets;
use super::writer::{self, Write, Written};
use super::{Backend, Db, DbConnection, DbRow, WriteTx, begin_write, parse};
use crate::domain::{ChatChange, MessageId, Mute, OrgId, SessionId};
use crate::events::{Envelope, EventData};
use crate::store::chats::{ChatChanged, ChatRecord, ChatStore, ChatTouch, chat_kind};
use crate::store::{NewHistory, StoreError, StoredHistory, from_millis, millis, now};

/// The latest message of each chat a write touched, and what it does to
/// the unread count.
struct Touched<'a> {
    session_id: SessionId,
    chat: &'a str,
    last: &'a ChatTouch,
    /// Unread messages after the last one the session's own side wrote.
    unread: i64,
    /// The session's own side wrote in this group: the count starts over.
    read: bool,
    name: Option<&'a str>,
}

/// Records that `touches` (in the order they were stored) were written to
/// their chats: each chat's latest message, its activity time, unread
/// count and name. One upsert per kind of unread change, whatever the
/// number of messages (a chat appears once per statement, as PostgreSQL
/// requires of `ON CONFLICT DO UPDATE`).
pub(super) async fn touch_in(tx: &mut WriteTx, touches: &[ChatTouch]) -> Result<(), StoreError> {
    if touches.is_empty() {
        return Ok(());
    }
    let mut order: Vec<(SessionId, &str)> = Vec::new();
    let mut by_chat: HashMap<(SessionId, &str), Touched<'_>> = HashMap::new();
    for touch in touches {
        let key = (touch.session_id, touch.chat.as_str());
        let entry = by_chat.entry(key).or_insert_with(|| {
            order.push(key);
            Touched {
                session_id: touch.session_id,
                chat: &touch.chat,
                last: touch,
                unread: 0,
                read: false,
                name: None,
            }
        });
        entry.last = touch;
        if touch.unread {
            entry.unread += 1;
            entry.name = touch.name.as_deref().or(entry.name);
        } else {
            entry.unread = 0;
            entry.read = true;
        }
    }
    let at = millis(now());
    for read in [false, true] {
        let rows: Vec<&Touched<'_>> = order
            .iter()
            .filter_map(|key| by_chat.get(key))
            .filter(|t| t.read == read)
            .collect();
        for chunk in rows.chunks(TOUCH_CHUNK) {
            let mut query = QueryBuilder::<Db>::new(
                "INSERT INTO chats (session_id, chat, kind, name, last_message_id, last_at, \
                 unread) ",
            );
            query.push_values(chunk, |mut row, t| {
                row.push_bind(t.session_id.to_string())
                    .push_bind(t.chat.to_owned())
                    .push_bind(chat_kind(t.chat).as_str())
                    .push_bind(t.name.map(str::to_owned))
                    .push_bind(t.last.message_id.to_string())
                    .push_bind(at)
                    .push_bind(t.unread);
            });
            // A message older than the chat's latest (from history, say)
            // leaves the latest where it is.
            query.push(
                " ON CONFLICT (session_id, chat) DO UPDATE SET \
                 last_message_id = CASE WHEN excluded.last_message_id > chats.last_message_id \
                     THEN excluded.last_message_id ELSE chats.last_message_id END, \
                 last_at = CASE WHEN excluded.last_message_id > chats.last_message_id \
                     THEN excluded.last_at ELSE chats.last_at END, \
                 name = COALESCE(excluded.name, chats.name), ",
            );
            query.push(if read {
                "unread = excluded.unread"
            } else {
                "unread = chats.unread + excluded.unread"
            });
            query.build().execute(&mut **tx).await?;
        }
    }
    Ok(())
}

/// Chats per upsert: 7 parameters each.
const TOUCH_CHUNK: usize = 500;

/// One person is one chat and one contact: once the session learns that
/// `lid` (digits) is `phone`'s, what it stored under the LID (written
/// before the number was known) moves to the number, inside the
/// transaction that stores the mapping. The LID chat's messages join the
/// number's chat (their senders get the number too), the two chat rows
/// become one (the newest latest message, the unread counts added, the
/// number's own name and settings first), and the LID contact's row
/// merges into the number's.
pub(super) async fn merge_lid_in(
    conn: &mut DbConnection,
    session: &str,
    lid: &str,
    phone: &str,
) -> Result<(), sqlx::Error> {
    let lid_jid = format!("{lid}@lid");
    let pn_jid = format!("{phone}@s.whatsapp.net");
    // Nothing under the LID (the common case): nothing to move.
    let found: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM chats WHERE session_id = $1 AND chat = $2) \
         + (SELECT COUNT(*) FROM contacts WHERE session_id = $1 AND jid = $2)",
    )
    .bind(session)
    .bind(&lid_jid)
    .fetch_one(&mut *conn)
    .await?;
    if found == 0 {
        return Ok(());
    }
    let lid_chat: Option<(String,)> =
        sqlx::query_as("SELECT chat FROM chats WHERE session_id = $1 AND chat = $2")
            .bind(session)
            .bind(&lid_jid)
            .fetch_optional(&mut *conn)
            .await?;
    if lid_chat.is_some() {
        // The chat's own index finds them; their LID senders get the number.
        sqlx::query(
            "UPDATE messages SET chat = $3, sender_phone = CASE \
             WHEN sender_lid = $4 AND sender_phone IS NULL THEN $5 ELSE sender_phone END \
             WHERE session_id = $1 AND chat = $2",
        )
        .bind(session)
        .bind(&lid_jid)
        .bind(&pn_jid)
        .bind(lid)
        .bind(phone)
        .execute(&mut *conn)
        .await?;
        // The number's row takes the LID's where it has nothing of its own.
        let merged = sqlx::query(
            "UPDATE chats SET \
             last_message_id = CASE WHEN l.last_message_id > chats.last_message_id \
                 THEN l.last_message_id ELSE chats.last_message_id END, \
             last_at = CASE WHEN l.last_message_id > chats.last_message_id \
                 THEN l.last_at ELSE chats.last_at END, \
             unread = chats.unread + l.unread, \
             name = COALESCE(chats.name, l.name), \
             archived = (chats.archived OR l.archived), \
             pinned = (chats.pinned OR l.pinned), \
             muted_until = COALESCE(chats.muted_until, l.muted_until) \
             FROM (SELECT last_message_id, last_at, unread, name, archived, pinned, muted_until \
                   FROM chats WHERE session_id = $1 AND chat = $2) AS l \
             WHERE chats.session_id = $1 AND chats.chat = $3",
        )
        .bind(session)
        .bind(&lid_jid)
        .bind(&pn_jid)
        .execute(&mut *conn)
        .await?;
        if merged.rows_affected() == 0 {
            sqlx::query("UPDATE chats SET chat = $3 WHERE session_id = $1 AND chat = $2")
                .bind(session)
                .bind(&lid_jid)
                .bind(&pn_jid)
                .execute(&mut *conn)
                .await?;
        } else {
            sqlx::query("DELETE FROM chats WHERE session_id = $1 AND chat = $2")
                .bind(session)
                .bind(&lid_jid)
                .execute(&mut *conn)
                .await?;
        }
    }
    // The contact: the number's row takes the LID row's names and facts
    // where it has none, or the LID row becomes the number's.
    let merged = sqlx::query(
        "UPDATE contacts SET \
         lid = COALESCE(contacts.lid, $4), \
         push_name = COALESCE(contacts.push_name, l.push_name), \
         saved_name = COALESCE(contacts.saved_name, l.saved_name), \
         on_whatsapp = COALESCE(contacts.on_whatsapp, l.on_whatsapp), \
         picture_id = COALESCE(contacts.picture_id, l.picture_id) \
         FROM (SELECT push_name, saved_name, on_whatsapp, picture_id FROM contacts \
               WHERE session_id = $1 AND jid = $2) AS l \
         WHERE contacts.session_id = $1 AND contacts.jid = $3",
    )
    .bind(session)
    .bind(&lid_jid)
    .bind(&pn_jid)
    .bind(lid)
    .execute(&mut *conn)
    .await?;
    if merged.rows_affected() == 0 {
        sqlx::query("UPDATE contacts SET jid = $3, phone = $4 WHERE session_id = $1 AND jid = $2")
            .bind(session)
            .bind(&lid_jid)
            .bind(&pn_jid)
            .bind(phone)
            .execute(&mut *conn)
            .await?;
    } else {
        sqlx::query("DELETE FROM contacts WHERE session_id = $1 AND jid = $2")
            .bind(session)
            .bind(&lid_jid)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

macro_rules! select_chats {
    ($($rest:literal)*) => {
        concat!(
            "SELECT chats.chat AS chat_id, chats.kind AS chat_kind, chats.name AS chat_name, \
             chats.unread, chats.last_at, chats.archived, chats.pinned, chats.muted_until, ",
            message_columns!(),
            " FROM chats JOIN messages ON messages.id = chats.last_message_id ",
            $($rest),*
        )
    };
}

fn chat(row: &DbRow) -> Result<ChatRecord, StoreError> {
    let unread: i64 = row.try_get("unread")?;
    Ok(ChatRecord {
        chat: row.try_get("chat_id")?,
        kind: parse("chats.kind", row.try_get("chat_kind")?)?,
        name: row.try_get("chat_name")?,
        unread: u64::try_from(unread)
            .map_err(|_| StoreError::Corrupt(format!("chats.unread: {unread}")))?,
        last_at: from_millis(row.try_get("last_at")?)?,
        last_message: message(row)?,
        archived: row.try_get("archived")?,
        pinned: row.try_get("pinned")?,
        mute: Mute::from_millis(row.try_get("muted_until")?),
    })
}

/// A chat's settings as `change_chat` reads and writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Settings {
    archived: bool,
    pinned: bool,
    mute: Mute,
    unread: i64,
}

impl Settings {
    fn with(mut self, change: ChatChange) -> Self {
        match change {
            ChatChange::Archive(on) => self.archived = on,
            ChatChange::Pin(on) => self.pinned = on,
            ChatChange::Mute(mute) => self.mute = mute,
            ChatChange::Read(true) => self.unread = 0,
            ChatChange::Read(false) => self.unread = self.unread.max(1),
        }
        self
    }
}

#[async_trait]
impl ChatStore for Backend {
    async fn list_chats(
        &self,
        org: OrgId,
        session: SessionId,
        before: Option<MessageId>,
        limit: u32,
    ) -> Result<Vec<ChatRecord>, StoreError> {
        sqlx::query(select_chats!(
            "WHERE chats.session_id = $1 AND messages.org_id = $2 "
            "AND ($3 IS NULL OR chats.last_message_id < $3) "
            "ORDER BY chats.last_message_id DESC LIMIT $4"
        ))
        .bind(session.to_string())
        .bind(org.to_string())
        .bind(before.map(|id| id.to_string()))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(chat)
        .collect()
    }

    async fn change_chat(
        &self,
        org: OrgId,
        session: SessionId,
        chat_id: &str,
        change: ChatChange,
    ) -> Result<ChatChanged, StoreError> {
        let mut tx = begin_write(self).await?;
        // The owner's writes (app-state events) carry its epoch; the API's,
        // on a node that does not run the session, carry none.
        check_fences(&mut tx, &self.claims([session])).await?;
        let Some(row) = sqlx::query(
            "SELECT archived, pinned, muted_until, unread FROM chats \
             WHERE session_id = $1 AND chat = $2",
        )
        .bind(session.to_string())
        .bind(chat_id)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(ChatChanged::NoSuchChat);
        };
        let before = Settings {
            archived: row.try_get("archived")?,
            pinned: row.try_get("pinned")?,
            mute: Mute::from_millis(row.try_get("muted_until")?),
            unread: row.try_get("unread")?,
        };
        let after = before.with(change);
        if after == before {
            return Ok(ChatChanged::Unchanged);
        }
        sqlx::query(
            "UPDATE chats SET archived = $1, pinned = $2, muted_until = $3, unread = $4 \
             WHERE session_id = $5 AND chat = $6",
        )
        .bind(after.archived)
        .bind(after.pinned)
        .bind(after.mute.to_millis())
        .bind(after.unread)
        .bind(session.to_string())
        .bind(chat_id)
        .execute(&mut *tx)
        .await?;
        let mut event = Envelope::new(
            org,
            session,
            EventData::ChatUpdated {
                chat: chat_id.to_owned(),
                setting: change.setting(),
                archived: after.archived,
                pinned: after.pinned,
                muted: after.mute.is_muted(now()),
                muted_until: match after.mute {
                    Mute::Until(at) => Some(at),
                    Mute::Off | Mute::Forever => None,
                },
                unread: u64::try_from(after.unread).unwrap_or(0),
            },
        );
        append_events_to(
            &mut tx,
            std::slice::from_mut(&mut event),
            &mut WebhookTargets::default(),
        )
        .await?;
        tx.commit().await?;
        Ok(ChatChanged::Changed(Box::new(event)))
    }

    async fn record_history(&self, history: NewHistory) -> Result<StoredHistory, StoreError> {
        let claims = self.claims([history.session_id]);
        match writer::write_claimed(&self.writer, Write::History(Box::new(history)), claims).await?
        {
            Written::History(event) => Ok(*event),
            _ => Err(writer::mismatch()),
        }
    }

    async fn get_chat(
        &self,
        org: OrgId,
        session: SessionId,
        chat_id: &str,
    ) -> Result<Option<ChatRecord>, StoreError> {
        sqlx::query(select_chats!(
            "WHERE chats.session_id = $1 AND messages.org_id = $2 AND chats.chat = $3"
        ))
        .bind(session.to_string())
        .bind(org.to_string())
        .bind(chat_id)
        .fetch_optional(&self.reader)
        .await?
        .as_ref()
        .map(chat)
        .transpose()
    }
}

#[cfg(test)]
#[path = "chats_tests.rs"]
mod chats_tests;

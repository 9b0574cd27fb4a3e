//! Sessions.

use async_trait::async_trait;

use super::events::append_event;
use super::fences::check_fences;
use super::writer::{self, Write, Written};
use super::{Backend, WriteTx, begin_write, parse, session};
use crate::domain::{
    HistoryScope, Label, OrgId, PresenceState, SessionBehaviour, SessionId, SessionStatus,
    StatusReason,
};
use crate::events::Envelope;
use crate::store::{
    Cursor, NewSession, SessionChanges, SessionPage, SessionQuery, SessionRecord, SessionStore,
    StatusChange, StoreError, millis, now,
};

/// Expands to a string literal so queries stay `&'static str`, which sqlx
/// requires as proof that no input was spliced into the SQL.
macro_rules! select_sessions {
    ($($rest:literal)*) => {
        concat!(
            "SELECT id, org_id, label, status, status_reason, phone, push_name, \
             send_per_minute, send_new_chats_per_minute, presence, reject_calls, \
             reject_calls_message, history, created_at, updated_at \
             FROM sessions ",
            $($rest),*
        )
    };
}

#[async_trait]
impl SessionStore for Backend {
    async fn insert_session(&self, new: NewSession) -> Result<SessionRecord, StoreError> {
        let now = now();
        let record = SessionRecord {
            id: new.id,
            org_id: new.org_id,
            label: new.label,
            status: SessionStatus::Stopped,
            status_reason: None,
            phone: None,
            push_name: None,
            pace: new.pace,
            behaviour: SessionBehaviour {
                history: new.history,
                ..SessionBehaviour::default()
            },
            created_at: now,
            updated_at: now,
        };
        sqlx::query(
            "INSERT INTO sessions (id, org_id, label, status, send_per_minute, \
             send_new_chats_per_minute, created_at, updated_at, history) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(record.id.to_string())
        .bind(record.org_id.to_string())
        .bind(record.label.as_ref().map(Label::as_str))
        .bind(record.status.as_str())
        .bind(new.pace.per_minute.map(|p| i64::from(p.get())))
        .bind(new.pace.new_chats_per_minute.map(|p| i64::from(p.get())))
        .bind(millis(now))
        .bind(millis(now))
        .bind(new.history.as_str())
        .execute(&self.pool)
        .await?;
        Ok(record)
    }

    async fn get_session(
        &self,
        org: OrgId,
        id: SessionId,
    ) -> Result<Option<SessionRecord>, StoreError> {
        sqlx::query(select_sessions!("WHERE id = $1 AND org_id = $2"))
            .bind(id.to_string())
            .bind(org.to_string())
            .fetch_optional(&self.reader)
            .await?
            .as_ref()
            .map(session)
            .transpose()
    }

    async fn list_sessions(
        &self,
        org: OrgId,
        query: &SessionQuery,
    ) -> Result<SessionPage, StoreError> {
        // Fetch one extra row to learn whether another page exists.
        let fetch = i64::from(query.limit) + 1;
        let (after_ms, after_id) = query.after.map_or((i64::MIN, String::new()), |c| {
            (c.created_at_ms, c.id.to_string())
        });
        let rows = sqlx::query(select_sessions!(
            "WHERE org_id = $1 AND ($2 IS NULL OR status = $2) "
            "AND (created_at > $3 OR (created_at = $3 AND id > $4)) "
            "ORDER BY created_at, id LIMIT $5"
        ))
        .bind(org.to_string())
        .bind(query.status.map(SessionStatus::as_str))
        .bind(after_ms)
        .bind(after_id)
        .bind(fetch)
        .fetch_all(&self.reader)
        .await?;
        let mut sessions = rows.iter().map(session).collect::<Result<Vec<_>, _>>()?;
        let next = if sessions.len() > query.limit as usize {
            sessions.truncate(query.limit as usize);
            sessions.last().map(Cursor::after)
        } else {
            None
        };
        Ok(SessionPage { sessions, next })
    }

    async fn update_session(
        &self,
        org: OrgId,
        id: SessionId,
        changes: &SessionChanges,
    ) -> Result<Option<SessionRecord>, StoreError> {
        // Each field: a flag saying whether to set it, then its value.
        let result = sqlx::query(
            "UPDATE sessions SET \
               label = CASE WHEN $1 THEN $2 ELSE label END, \
               send_per_minute = CASE WHEN $3 THEN $4 ELSE send_per_minute END, \
               send_new_chats_per_minute = CASE WHEN $5 THEN $6 ELSE send_new_chats_per_minute END, \
               presence = COALESCE($10, presence), \
               reject_calls = COALESCE($11, reject_calls), \
               reject_calls_message = CASE WHEN $12 THEN $13 ELSE reject_calls_message END, \
               history = COALESCE($14, history), \
               updated_at = $7 \
             WHERE id = $8 AND org_id = $9",
        )
        .bind(changes.label.is_some())
        .bind(changes.label.as_ref().and_then(|l| l.as_ref().map(Label::as_str)))
        .bind(changes.per_minute.is_some())
        .bind(changes.per_minute.flatten().map(|p| i64::from(p.get())))
        .bind(changes.new_chats_per_minute.is_some())
        .bind(changes.new_chats_per_minute.flatten().map(|p| i64::from(p.get())))
        .bind(millis(now()))
        .bind(id.to_string())
        .bind(org.to_string())
        .bind(changes.presence.map(PresenceState::as_str))
        .bind(changes.reject_calls)
        .bind(changes.reject_calls_message.is_some())
        .bind(changes.reject_calls_message.clone().flatten())
        .bind(changes.history.map(HistoryScope::as_str))
        .execute(&self.pool)
        .await?;
        if result.rows_affected() == 0 {
            return Ok(None);
        }
        self.get_session(org, id).await
    }

    async fn delete_session(&self, org: OrgId, id: SessionId) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM sessions WHERE id = $1 AND org_id = $2")
            .bind(id.to_string())
            .bind(org.to_string())
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn all_sessions(&self) -> Result<Vec<SessionRecord>, StoreError> {
        sqlx::query(select_sessions!("ORDER BY created_at, id"))
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(session)
            .collect()
    }

    async fn count_by_status(&self) -> Result<Vec<(SessionStatus, u64)>, StoreError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, COUNT(*) FROM sessions GROUP BY status")
                .fetch_all(&self.reader)
                .await?;
        rows.into_iter()
            .map(|(status, count)| {
                Ok((
                    parse("sessions.status", &status)?,
                    u64::try_from(count).unwrap_or_default(),
                ))
            })
            .collect()
    }

    async fn set_status(
        &self,
        id: SessionId,
        status: SessionStatus,
        reason: Option<StatusReason>,
        event: &mut Envelope,
    ) -> Result<(), StoreError> {
        let mut tx = begin_write(self).await?;
        check_fences(&mut tx, &self.claims([id])).await?;
        write_status(&mut tx, id, status, reason, event).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn write_status(&self, change: StatusChange) -> Result<StatusChange, StoreError> {
        let claims = self.claims([change.id]);
        match writer::write_claimed(&self.writer, Write::Status(change), claims).await? {
            Written::Status(change) => Ok(change),
            _ => Err(writer::mismatch()),
        }
    }

    async fn set_identity(
        &self,
        id: SessionId,
        phone: Option<&str>,
        push_name: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut tx = begin_write(self).await?;
        check_fences(&mut tx, &self.claims([id])).await?;
        sqlx::query(
            "UPDATE sessions SET phone = $1, push_name = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(phone)
        .bind(push_name)
        .bind(millis(now()))
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// A status change and its event, inside the caller's write transaction.
pub(super) async fn write_status(
    tx: &mut WriteTx,
    id: SessionId,
    status: SessionStatus,
    reason: Option<StatusReason>,
    event: &mut Envelope,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE sessions SET status = $1, status_reason = $2, updated_at = $3 WHERE id = $4",
    )
    .bind(status.as_str())
    .bind(reason.map(StatusReason::as_str))
    .bind(millis(now()))
    .bind(id.to_string())
    .execute(&mut **tx)
    .await?;
    append_event(tx, event).await
}

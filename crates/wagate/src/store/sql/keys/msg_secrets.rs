//! The library's [`MsgSecretStore`]: message secrets (a poll's, for one),
//! merged by deadline and expired.

use async_trait::async_trait;
use wacore::store::error::Result as KeyResult;
use wacore::store::traits::{MsgSecretEntry, MsgSecretStore};

use super::upserts::{merge_secrets, put_msg_secrets};
use super::{CHUNK, DbConnection, Keys, db};
#[async_trait]
impl MsgSecretStore for Keys {
    async fn put_msg_secrets(&self, entries: Vec<MsgSecretEntry>) -> KeyResult<usize> {
        let stored = entries.len();
        let rows = merge_secrets(&entries);
        write_rows!(self, rows.len(), |c| put_msg_secrets(
            c,
            self.session(),
            &rows
        ))?;
        Ok(stored)
    }

    async fn get_msg_secret(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> KeyResult<Option<Vec<u8>>> {
        Ok(self
            .get_msg_secret_with_ts(chat, sender, msg_id)
            .await?
            .map(|(secret, _)| secret))
    }

    async fn get_msg_secret_with_ts(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> KeyResult<Option<(Vec<u8>, i64)>> {
        sqlx::query_as(
            "SELECT secret, message_ts FROM key_msg_secrets \
             WHERE session_id = $1 AND chat = $2 AND sender = $3 AND msg_id = $4",
        )
        .bind(self.session())
        .bind(chat)
        .bind(sender)
        .bind(msg_id)
        .fetch_optional(&self.reader)
        .await
        .map_err(db)
    }

    async fn delete_expired_msg_secrets(&self, cutoff_timestamp: i64) -> KeyResult<u32> {
        let done = sqlx::query(
            "DELETE FROM key_msg_secrets \
             WHERE session_id = $1 AND expires_at <> 0 AND expires_at <= $2",
        )
        .bind(self.session())
        .bind(cutoff_timestamp)
        .execute(self.writer.open().await?.pool)
        .await
        .map_err(db)?;
        Ok(u32::try_from(done.rows_affected()).unwrap_or(u32::MAX))
    }
}

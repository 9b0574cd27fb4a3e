//! The library's [`ProtocolStore`]: sender-key devices, the LID map, base
//! keys, device lists, group metadata, tc tokens, the sent-message cache
//! for retries and the durability hook's pending-inbound rows (written
//! through the [`KeyGroup`](super::KeyGroup)).

use std::sync::Arc;

use async_trait::async_trait;
use wacore::store::error::Result as KeyResult;
use wacore::store::traits::{
    DeviceInfo, DeviceListRecord, LidPnMappingEntry, PendingInboundKey, PendingInboundRow,
    ProtocolStore, TcTokenEntry,
};

use super::upserts::{
    DeviceListError, GROUP_METADATA, put_base_keys, put_device_lists, put_lid_mappings,
    put_records, put_sender_key_devices, put_sent_messages, put_tc_tokens,
};
use super::{CHUNK, DbConnection, KeyWrite, Keys, by_keys, db, serialization, to_u32};
type LidRow = (String, String, i64, i64, String);

/// A LID's mapping; also read by the gateway's own lookups
/// (`KeyStore::lid_pn`).
pub(super) const LID_BY_LID: &str = "SELECT lid, phone_number, created_at, updated_at, learning_source \
     FROM key_lid_pn_mappings WHERE session_id = $1 AND lid = $2";

/// A number's newest LID (a number can be reassigned one).
pub(super) const LID_BY_PHONE: &str = "SELECT lid, phone_number, created_at, updated_at, learning_source \
     FROM key_lid_pn_mappings WHERE session_id = $1 AND phone_number = $2 \
     ORDER BY updated_at DESC LIMIT 1";

fn lid_entry(
    (lid, phone_number, created_at, updated_at, learning_source): LidRow,
) -> LidPnMappingEntry {
    LidPnMappingEntry {
        lid,
        phone_number,
        created_at,
        updated_at,
        learning_source,
    }
}

#[async_trait]
impl ProtocolStore for Keys {
    async fn get_sender_key_devices(&self, group_jid: &str) -> KeyResult<Vec<(String, bool)>> {
        sqlx::query_as(
            "SELECT device_jid, has_key FROM key_sender_key_devices \
             WHERE session_id = $1 AND group_jid = $2",
        )
        .bind(self.session())
        .bind(group_jid)
        .fetch_all(&self.reader)
        .await
        .map_err(db)
    }

    async fn set_sender_key_status(
        &self,
        group_jid: &str,
        entries: &[(&str, bool)],
    ) -> KeyResult<()> {
        let rows: Vec<(&str, &str, bool)> = entries
            .iter()
            .map(|(device, has_key)| (group_jid, *device, *has_key))
            .collect();
        write_rows!(self, rows.len(), |c| put_sender_key_devices(
            c,
            self.session(),
            &rows
        ))
    }

    async fn clear_sender_key_devices(&self, group_jid: &str) -> KeyResult<()> {
        sqlx::query("DELETE FROM key_sender_key_devices WHERE session_id = $1 AND group_jid = $2")
            .bind(self.session())
            .bind(group_jid)
            .execute(self.writer.open().await?.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn delete_sender_key_device_rows(&self, device_jids: &[&str]) -> KeyResult<()> {
        write_rows!(self, device_jids.len(), |c| by_keys(
            c,
            "DELETE FROM key_sender_key_devices",
            "device_jid",
            self.session(),
            device_jids,
            |b, jid| {
                b.push_bind((*jid).to_owned());
            },
        ))
    }

    async fn clear_all_sender_key_devices(&self) -> KeyResult<()> {
        sqlx::query("DELETE FROM key_sender_key_devices WHERE session_id = $1")
            .bind(self.session())
            .execute(self.writer.open().await?.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn get_lid_mapping(&self, lid: &str) -> KeyResult<Option<LidPnMappingEntry>> {
        let row: Option<LidRow> = sqlx::query_as(LID_BY_LID)
            .bind(self.session())
            .bind(lid)
            .fetch_optional(&self.reader)
            .await
            .map_err(db)?;
        Ok(row.map(lid_entry))
    }

    async fn get_pn_mapping(&self, phone: &str) -> KeyResult<Option<LidPnMappingEntry>> {
        let row: Option<LidRow> = sqlx::query_as(LID_BY_PHONE)
            .bind(self.session())
            .bind(phone)
            .fetch_optional(&self.reader)
            .await
            .map_err(db)?;
        Ok(row.map(lid_entry))
    }

    async fn put_lid_mapping(&self, entry: &LidPnMappingEntry) -> KeyResult<()> {
        self.put_lid_mappings(std::slice::from_ref(entry)).await
    }

    async fn put_lid_mappings(&self, entries: &[LidPnMappingEntry]) -> KeyResult<()> {
        write_rows!(self, entries.len(), |c| put_lid_mappings(
            c,
            self.session(),
            entries
        ))
    }

    async fn get_all_lid_mappings(&self) -> KeyResult<Vec<LidPnMappingEntry>> {
        let rows: Vec<LidRow> = sqlx::query_as(
            "SELECT lid, phone_number, created_at, updated_at, learning_source \
             FROM key_lid_pn_mappings WHERE session_id = $1",
        )
        .bind(self.session())
        .fetch_all(&self.reader)
        .await
        .map_err(db)?;
        Ok(rows.into_iter().map(lid_entry).collect())
    }

    async fn save_base_key(
        &self,
        address: &str,
        message_id: &str,
        base_key: &[u8],
    ) -> KeyResult<()> {
        let rows = [(address.to_owned(), message_id.to_owned(), base_key.to_vec())];
        write_rows!(self, 1, |c| put_base_keys(c, self.session(), &rows))
    }

    async fn has_same_base_key(
        &self,
        address: &str,
        message_id: &str,
        current_base_key: &[u8],
    ) -> KeyResult<bool> {
        let stored: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT base_key FROM key_base_keys \
             WHERE session_id = $1 AND address = $2 AND message_id = $3",
        )
        .bind(self.session())
        .bind(address)
        .bind(message_id)
        .fetch_optional(&self.reader)
        .await
        .map_err(db)?;
        Ok(stored.is_some_and(|stored| stored == current_base_key))
    }

    async fn delete_base_key(&self, address: &str, message_id: &str) -> KeyResult<()> {
        sqlx::query(
            "DELETE FROM key_base_keys WHERE session_id = $1 AND address = $2 AND message_id = $3",
        )
        .bind(self.session())
        .bind(address)
        .bind(message_id)
        .execute(self.writer.open().await?.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn update_device_list(&self, record: DeviceListRecord) -> KeyResult<()> {
        self.update_device_lists(vec![record]).await
    }

    async fn update_device_lists(&self, records: Vec<DeviceListRecord>) -> KeyResult<()> {
        if records.is_empty() {
            return Ok(());
        }
        let result = if records.len() <= CHUNK {
            let open = self.writer.open().await?;
            let mut conn = open.pool.acquire().await.map_err(db)?;
            put_device_lists(&mut conn, self.session(), &records).await
        } else {
            let open = self.writer.open().await?;
            let mut tx = open.pool.begin().await.map_err(db)?;
            match put_device_lists(&mut tx, self.session(), &records).await {
                Ok(()) => tx.commit().await.map_err(DeviceListError::from),
                Err(e) => Err(e),
            }
        };
        result.map_err(|e| match e {
            DeviceListError::Json(e) => serialization(e),
            DeviceListError::Database(e) => db(e),
        })
    }

    async fn get_devices(&self, user: &str) -> KeyResult<Option<DeviceListRecord>> {
        let row: Option<(String, String, i64, Option<String>, Option<i64>)> = sqlx::query_as(
            "SELECT user_id, devices, listed_at, phash, raw_id FROM key_device_lists \
             WHERE session_id = $1 AND user_id = $2",
        )
        .bind(self.session())
        .bind(user)
        .fetch_optional(&self.reader)
        .await
        .map_err(db)?;
        row.map(|(user, devices, timestamp, phash, raw_id)| {
            let devices: Vec<DeviceInfo> = serde_json::from_str(&devices).map_err(serialization)?;
            Ok(DeviceListRecord {
                user,
                devices,
                timestamp,
                phash,
                raw_id: raw_id.map(|id| to_u32("raw id", id)).transpose()?,
            })
        })
        .transpose()
    }

    async fn delete_devices(&self, user: &str) -> KeyResult<()> {
        sqlx::query("DELETE FROM key_device_lists WHERE session_id = $1 AND user_id = $2")
            .bind(self.session())
            .bind(user)
            .execute(self.writer.open().await?.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn get_group_metadata(&self, group_jid: &str) -> KeyResult<Option<Vec<u8>>> {
        sqlx::query_scalar(
            "SELECT info FROM key_group_metadata WHERE session_id = $1 AND group_jid = $2",
        )
        .bind(self.session())
        .bind(group_jid)
        .fetch_optional(&self.reader)
        .await
        .map_err(db)
    }

    async fn put_group_metadata(&self, group_jid: &str, blob: &[u8]) -> KeyResult<()> {
        let rows = [(group_jid, blob)];
        write_rows!(self, 1, |c| put_records(
            c,
            &GROUP_METADATA,
            self.session(),
            &rows
        ))
    }

    async fn delete_group_metadata(&self, group_jid: &str) -> KeyResult<()> {
        sqlx::query("DELETE FROM key_group_metadata WHERE session_id = $1 AND group_jid = $2")
            .bind(self.session())
            .bind(group_jid)
            .execute(self.writer.open().await?.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn get_tc_token(&self, jid: &str) -> KeyResult<Option<TcTokenEntry>> {
        let row: Option<(Vec<u8>, i64, Option<i64>)> = sqlx::query_as(
            "SELECT token, token_timestamp, sender_timestamp FROM key_tc_tokens \
             WHERE session_id = $1 AND jid = $2",
        )
        .bind(self.session())
        .bind(jid)
        .fetch_optional(&self.reader)
        .await
        .map_err(db)?;
        Ok(
            row.map(|(token, token_timestamp, sender_timestamp)| TcTokenEntry {
                token,
                token_timestamp,
                sender_timestamp,
            }),
        )
    }

    async fn put_tc_token(&self, jid: &str, entry: &TcTokenEntry) -> KeyResult<()> {
        let rows = [(jid.to_owned(), entry.clone())];
        write_rows!(self, 1, |c| put_tc_tokens(c, self.session(), &rows))
    }

    async fn delete_tc_token(&self, jid: &str) -> KeyResult<()> {
        sqlx::query("DELETE FROM key_tc_tokens WHERE session_id = $1 AND jid = $2")
            .bind(self.session())
            .bind(jid)
            .execute(self.writer.open().await?.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn get_all_tc_token_jids(&self) -> KeyResult<Vec<String>> {
        sqlx::query_scalar("SELECT jid FROM key_tc_tokens WHERE session_id = $1")
            .bind(self.session())
            .fetch_all(&self.reader)
            .await
            .map_err(db)
    }

    async fn delete_expired_tc_tokens(
        &self,
        token_cutoff: i64,
        sender_cutoff: i64,
    ) -> KeyResult<u32> {
        // Gone only when both are stale: the received token (absent, or
        // older than its cutoff) and the sender bucket (absent, or older).
        let done = sqlx::query(
            "DELETE FROM key_tc_tokens WHERE session_id = $1 \
               AND (length(token) = 0 OR token_timestamp < $2) \
               AND (sender_timestamp IS NULL OR sender_timestamp < $3)",
        )
        .bind(self.session())
        .bind(token_cutoff)
        .bind(sender_cutoff)
        .execute(self.writer.open().await?.pool)
        .await
        .map_err(db)?;
        Ok(u32::try_from(done.rows_affected()).unwrap_or(u32::MAX))
    }

    async fn touch_tc_token_sender_timestamp(
        &self,
        jid: &str,
        sender_timestamp: i64,
    ) -> KeyResult<()> {
        // One statement, so it is atomic against `store_received_tc_token`:
        // a placeholder when absent, else only the sender bucket moves, and
        // only forward.
        sqlx::query(
            "INSERT INTO key_tc_tokens (session_id, jid, token, token_timestamp, sender_timestamp) \
             VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (session_id, jid) DO UPDATE SET sender_timestamp = CASE \
                 WHEN key_tc_tokens.sender_timestamp IS NULL \
                   OR key_tc_tokens.sender_timestamp < excluded.sender_timestamp \
                 THEN excluded.sender_timestamp \
                 ELSE key_tc_tokens.sender_timestamp END",
        )
        .bind(self.session())
        .bind(jid)
        .bind(Vec::<u8>::new())
        .bind(sender_timestamp)
        .execute(self.writer.open().await?.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn store_received_tc_token(
        &self,
        jid: &str,
        token: &[u8],
        token_timestamp: i64,
    ) -> KeyResult<()> {
        // Newer wins, in one statement: the stored pair is replaced only if
        // it is a placeholder or not newer; the sender bucket is kept.
        sqlx::query(
            "INSERT INTO key_tc_tokens (session_id, jid, token, token_timestamp, sender_timestamp) \
             VALUES ($1, $2, $3, $4, NULL) \
             ON CONFLICT (session_id, jid) DO UPDATE SET \
                 token = excluded.token, token_timestamp = excluded.token_timestamp \
             WHERE length(key_tc_tokens.token) = 0 \
                OR excluded.token_timestamp >= key_tc_tokens.token_timestamp",
        )
        .bind(self.session())
        .bind(jid)
        .bind(token)
        .bind(token_timestamp)
        .execute(self.writer.open().await?.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn store_sent_message(
        &self,
        chat_jid: &str,
        message_id: &str,
        payload: &[u8],
    ) -> KeyResult<()> {
        let rows = [crate::store::SentMessage {
            chat: chat_jid.to_owned(),
            id: message_id.to_owned(),
            payload: payload.to_vec(),
            created_at: wacore::time::now_secs(),
        }];
        write_rows!(self, 1, |c| put_sent_messages(c, self.session(), &rows))
    }

    async fn take_sent_message(
        &self,
        chat_jid: &str,
        message_id: &str,
    ) -> KeyResult<Option<Vec<u8>>> {
        // Read and removed in one statement: one retry receipt gets it.
        sqlx::query_scalar(
            "DELETE FROM key_sent_messages \
             WHERE session_id = $1 AND chat_jid = $2 AND message_id = $3 RETURNING payload",
        )
        .bind(self.session())
        .bind(chat_jid)
        .bind(message_id)
        .fetch_optional(self.writer.open().await?.pool)
        .await
        .map_err(db)
    }

    async fn delete_expired_sent_messages(&self, cutoff_timestamp: i64) -> KeyResult<u32> {
        let done =
            sqlx::query("DELETE FROM key_sent_messages WHERE session_id = $1 AND created_at < $2")
                .bind(self.session())
                .bind(cutoff_timestamp)
                .execute(self.writer.open().await?.pool)
                .await
                .map_err(db)?;
        Ok(u32::try_from(done.rows_affected()).unwrap_or(u32::MAX))
    }

    async fn store_pending_inbound(
        &self,
        chat: &str,
        sender: &str,
        id: &str,
        message: &[u8],
    ) -> KeyResult<()> {
        self.writer
            .grouped(KeyWrite::PendingPut {
                session: Arc::clone(&self.session),
                rows: vec![(
                    chat.to_owned(),
                    sender.to_owned(),
                    id.to_owned(),
                    message.to_vec(),
                    wacore::time::now_secs(),
                )],
            })
            .await
    }

    async fn get_pending_inbound(
        &self,
        chat: &str,
        sender: &str,
        id: &str,
    ) -> KeyResult<Option<Vec<u8>>> {
        sqlx::query_scalar(
            "SELECT message FROM key_pending_inbound \
             WHERE session_id = $1 AND chat = $2 AND sender = $3 AND id = $4",
        )
        .bind(self.session())
        .bind(chat)
        .bind(sender)
        .bind(id)
        .fetch_optional(&self.reader)
        .await
        .map_err(db)
    }

    async fn delete_pending_inbound(&self, chat: &str, sender: &str, id: &str) -> KeyResult<()> {
        self.writer
            .grouped(KeyWrite::PendingDelete {
                session: Arc::clone(&self.session),
                keys: vec![(chat.to_owned(), sender.to_owned(), id.to_owned())],
            })
            .await
    }

    async fn delete_expired_pending_inbound(&self, cutoff_timestamp: i64) -> KeyResult<u32> {
        let done = sqlx::query(
            "DELETE FROM key_pending_inbound WHERE session_id = $1 AND inserted_at < $2",
        )
        .bind(self.session())
        .bind(cutoff_timestamp)
        .execute(self.writer.open().await?.pool)
        .await
        .map_err(db)?;
        Ok(u32::try_from(done.rows_affected()).unwrap_or(u32::MAX))
    }

    async fn store_pending_inbound_batch(&self, rows: &[PendingInboundRow<'_>]) -> KeyResult<()> {
        let now = wacore::time::now_secs();
        self.writer
            .grouped(KeyWrite::PendingPut {
                session: Arc::clone(&self.session),
                rows: rows
                    .iter()
                    .map(|r| {
                        (
                            r.chat.to_owned(),
                            r.sender.to_owned(),
                            r.id.to_owned(),
                            r.message.to_vec(),
                            now,
                        )
                    })
                    .collect(),
            })
            .await
    }

    async fn delete_pending_inbound_batch(&self, keys: &[PendingInboundKey<'_>]) -> KeyResult<()> {
        self.writer
            .grouped(KeyWrite::PendingDelete {
                session: Arc::clone(&self.session),
                keys: keys
                    .iter()
                    .map(|k| (k.chat.to_owned(), k.sender.to_owned(), k.id.to_owned()))
                    .collect(),
            })
            .await
    }
}

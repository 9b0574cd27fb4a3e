//! The library's [`SignalStore`]: identities, Signal sessions (written
//! through the [`KeyGroup`](super::KeyGroup)), pre-keys, signed pre-keys
//! and sender keys.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use sqlx::QueryBuilder;
use wacore::store::error::Result as KeyResult;
use wacore::store::traits::SignalStore;

use super::upserts::{SENDER_KEYS, put_identities, put_prekeys, put_records, put_signed_prekeys};
use super::{CHUNK, Db, DbConnection, KeyWrite, Keys, by_keys, db, invalid, to_u32};
/// A `LIKE` pattern matching `prefix` literally, then `suffix`.
fn like_prefix(prefix: &str, suffix: char) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 2);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push(suffix);
    pattern.push('%');
    pattern
}

#[async_trait]
impl SignalStore for Keys {
    async fn put_identity(&self, address: &str, key: [u8; 32]) -> KeyResult<()> {
        let rows = [(address, key)];
        write_rows!(self, 1, |c| put_identities(c, self.session(), &rows))
    }

    async fn put_identities_batch(&self, identities: &[(Arc<str>, [u8; 32])]) -> KeyResult<()> {
        write_rows!(self, identities.len(), |c| put_identities(
            c,
            self.session(),
            identities
        ))
    }

    async fn load_identity(&self, address: &str) -> KeyResult<Option<[u8; 32]>> {
        let key: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT identity FROM key_identities WHERE session_id = $1 AND address = $2",
        )
        .bind(self.session())
        .bind(address)
        .fetch_optional(&self.reader)
        .await
        .map_err(db)?;
        key.map(|key| {
            let len = key.len();
            <[u8; 32]>::try_from(key).map_err(|_| invalid("identity", len))
        })
        .transpose()
    }

    async fn delete_identity(&self, address: &str) -> KeyResult<()> {
        sqlx::query("DELETE FROM key_identities WHERE session_id = $1 AND address = $2")
            .bind(self.session())
            .bind(address)
            .execute(self.writer.open().await?.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn get_session(&self, address: &str) -> KeyResult<Option<Bytes>> {
        let record: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT record FROM key_sessions WHERE session_id = $1 AND address = $2",
        )
        .bind(self.session())
        .bind(address)
        .fetch_optional(&self.reader)
        .await
        .map_err(db)?;
        Ok(record.map(Bytes::from))
    }

    async fn put_session(&self, address: &str, session: &[u8]) -> KeyResult<()> {
        self.writer
            .grouped(KeyWrite::Sessions {
                session: Arc::clone(&self.session),
                rows: vec![(address.to_owned(), session.to_vec())],
            })
            .await
    }

    async fn put_sessions_batch(&self, sessions: &[(Arc<str>, Bytes)]) -> KeyResult<()> {
        self.writer
            .grouped(KeyWrite::Sessions {
                session: Arc::clone(&self.session),
                rows: sessions
                    .iter()
                    .map(|(address, record)| (address.to_string(), record.to_vec()))
                    .collect(),
            })
            .await
    }

    async fn delete_session(&self, address: &str) -> KeyResult<()> {
        sqlx::query("DELETE FROM key_sessions WHERE session_id = $1 AND address = $2")
            .bind(self.session())
            .bind(address)
            .execute(self.writer.open().await?.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn has_session(&self, address: &str) -> KeyResult<bool> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT CAST(1 AS BIGINT) FROM key_sessions WHERE session_id = $1 AND address = $2",
        )
        .bind(self.session())
        .bind(address)
        .fetch_optional(&self.reader)
        .await
        .map_err(db)?;
        Ok(found.is_some())
    }

    async fn has_signal_state_for_user(&self, user: &str) -> KeyResult<bool> {
        // Addresses are `user@server` (device 0) or `user:device@server`.
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT CAST(1 AS BIGINT) FROM key_sessions WHERE session_id = $1 \
               AND (address LIKE $2 ESCAPE '\\' OR address LIKE $3 ESCAPE '\\') \
             UNION ALL \
             SELECT CAST(1 AS BIGINT) FROM key_identities WHERE session_id = $1 \
               AND (address LIKE $2 ESCAPE '\\' OR address LIKE $3 ESCAPE '\\') \
             LIMIT 1",
        )
        .bind(self.session())
        .bind(like_prefix(user, '@'))
        .bind(like_prefix(user, ':'))
        .fetch_optional(&self.reader)
        .await
        .map_err(db)?;
        Ok(found.is_some())
    }

    async fn store_prekey(&self, id: u32, record: &[u8], uploaded: bool) -> KeyResult<()> {
        let rows = [(id, record, uploaded)];
        write_rows!(self, 1, |c| put_prekeys(c, self.session(), &rows))
    }

    async fn store_prekeys_batch(&self, keys: &[(u32, Bytes)], uploaded: bool) -> KeyResult<()> {
        let rows: Vec<(u32, &[u8], bool)> = keys
            .iter()
            .map(|(id, record)| (*id, record.as_ref(), uploaded))
            .collect();
        write_rows!(self, rows.len(), |c| put_prekeys(c, self.session(), &rows))
    }

    async fn load_prekey(&self, id: u32) -> KeyResult<Option<Bytes>> {
        let record: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT record FROM key_prekeys WHERE session_id = $1 AND id = $2")
                .bind(self.session())
                .bind(i64::from(id))
                .fetch_optional(&self.reader)
                .await
                .map_err(db)?;
        Ok(record.map(Bytes::from))
    }

    async fn load_prekeys_batch(&self, ids: &[u32]) -> KeyResult<Vec<(u32, Bytes)>> {
        let mut found: HashMap<u32, Bytes> = HashMap::with_capacity(ids.len());
        let mut conn = self.reader.acquire().await.map_err(db)?;
        for chunk in ids.chunks(CHUNK) {
            let mut query =
                QueryBuilder::<Db>::new("SELECT id, record FROM key_prekeys WHERE session_id = ");
            query.push_bind(self.session().to_owned());
            query.push(" AND id IN (");
            let mut list = query.separated(", ");
            for id in chunk {
                list.push_bind(i64::from(*id));
            }
            query.push(")");
            let rows: Vec<(i64, Vec<u8>)> = query
                .build_query_as()
                .fetch_all(&mut *conn)
                .await
                .map_err(db)?;
            for (id, record) in rows {
                found.insert(to_u32("prekey id", id)?, Bytes::from(record));
            }
        }
        // In the order asked for, as the library's own stores answer.
        Ok(ids
            .iter()
            .filter_map(|id| found.get(id).map(|record| (*id, record.clone())))
            .collect())
    }

    async fn mark_prekeys_uploaded(&self, ids: &[u32]) -> KeyResult<()> {
        // An UPDATE, never an upsert: a key consumed since the upload began
        // stays deleted.
        write_rows!(self, ids.len(), |c| by_keys(
            c,
            "UPDATE key_prekeys SET uploaded = TRUE",
            "id",
            self.session(),
            ids,
            |b, id| {
                b.push_bind(i64::from(*id));
            },
        ))
    }

    async fn remove_prekey(&self, id: u32) -> KeyResult<()> {
        sqlx::query("DELETE FROM key_prekeys WHERE session_id = $1 AND id = $2")
            .bind(self.session())
            .bind(i64::from(id))
            .execute(self.writer.open().await?.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn get_max_prekey_id(&self) -> KeyResult<u32> {
        let max: Option<i64> =
            sqlx::query_scalar("SELECT MAX(id) FROM key_prekeys WHERE session_id = $1")
                .bind(self.session())
                .fetch_one(&self.reader)
                .await
                .map_err(db)?;
        max.map_or(Ok(0), |id| to_u32("prekey id", id))
    }

    async fn store_signed_prekey(&self, id: u32, record: &[u8]) -> KeyResult<()> {
        let rows = [(id, record.to_vec())];
        write_rows!(self, 1, |c| put_signed_prekeys(c, self.session(), &rows))
    }

    async fn load_signed_prekey(&self, id: u32) -> KeyResult<Option<Vec<u8>>> {
        sqlx::query_scalar(
            "SELECT record FROM key_signed_prekeys WHERE session_id = $1 AND id = $2",
        )
        .bind(self.session())
        .bind(i64::from(id))
        .fetch_optional(&self.reader)
        .await
        .map_err(db)
    }

    async fn load_all_signed_prekeys(&self) -> KeyResult<Vec<(u32, Vec<u8>)>> {
        let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT id, record FROM key_signed_prekeys WHERE session_id = $1 ORDER BY id",
        )
        .bind(self.session())
        .fetch_all(&self.reader)
        .await
        .map_err(db)?;
        rows.into_iter()
            .map(|(id, record)| Ok((to_u32("signed prekey id", id)?, record)))
            .collect()
    }

    async fn remove_signed_prekey(&self, id: u32) -> KeyResult<()> {
        sqlx::query("DELETE FROM key_signed_prekeys WHERE session_id = $1 AND id = $2")
            .bind(self.session())
            .bind(i64::from(id))
            .execute(self.writer.open().await?.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn put_sender_key(&self, address: &str, record: &[u8]) -> KeyResult<()> {
        let rows = [(address, record)];
        write_rows!(self, 1, |c| put_records(
            c,
            &SENDER_KEYS,
            self.session(),
            &rows
        ))
    }

    async fn put_sender_keys_batch(&self, sender_keys: &[(Arc<str>, Bytes)]) -> KeyResult<()> {
        write_rows!(self, sender_keys.len(), |c| put_records(
            c,
            &SENDER_KEYS,
            self.session(),
            sender_keys
        ))
    }

    async fn get_sender_key(&self, address: &str) -> KeyResult<Option<Vec<u8>>> {
        sqlx::query_scalar(
            "SELECT record FROM key_sender_keys WHERE session_id = $1 AND address = $2",
        )
        .bind(self.session())
        .bind(address)
        .fetch_optional(&self.reader)
        .await
        .map_err(db)
    }

    async fn delete_sender_key(&self, address: &str) -> KeyResult<()> {
        sqlx::query("DELETE FROM key_sender_keys WHERE session_id = $1 AND address = $2")
            .bind(self.session())
            .bind(address)
            .execute(self.writer.open().await?.pool)
            .await
            .map_err(db)?;
        Ok(())
    }
}

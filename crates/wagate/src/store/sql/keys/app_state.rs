//! The library's [`AppSyncStore`]: app-state sync keys, each collection's
//! version (its hash state and index map) and mutation MACs.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::QueryBuilder;
use wacore::appstate::hash::HashState;
use wacore::appstate::processor::AppStateMutationMAC;
use wacore::store::error::{Result as KeyResult, StoreError as KeyError};
use wacore::store::traits::{AppStateSyncKey, AppSyncStore};

use super::upserts::{MacRow, put_mutation_macs, put_sync_keys, put_version};
use super::{CHUNK, Db, DbConnection, Keys, db, invalid};

/// An app-state collection's index -> value MAC map as bytes: for each
/// entry, the index's length (4 bytes, big-endian), the index (UTF-8), the
/// value's length, the value; in index order, so equal maps encode alike.
pub(super) fn encode_index_values(map: &HashMap<String, Vec<u8>>) -> Vec<u8> {
    let mut entries: Vec<_> = map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let size = entries.iter().map(|(k, v)| 8 + k.len() + v.len()).sum();
    let mut out = Vec::with_capacity(size);
    for (key, value) in entries {
        // A key or MAC of 4 GiB cannot come from WhatsApp; saturating keeps
        // the encoder total, and the decoder would then refuse the row.
        out.extend_from_slice(&u32::try_from(key.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(&u32::try_from(value.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(value);
    }
    out
}

/// The inverse of [`encode_index_values`]; a truncated map is an error.
pub(super) fn decode_index_values(mut bytes: &[u8]) -> KeyResult<HashMap<String, Vec<u8>>> {
    fn take<'a>(bytes: &mut &'a [u8]) -> KeyResult<&'a [u8]> {
        let corrupt = || KeyError::Validation("app state index map is truncated".into());
        let (len, rest) = bytes.split_first_chunk::<4>().ok_or_else(corrupt)?;
        let len = u32::from_be_bytes(*len) as usize;
        if rest.len() < len {
            return Err(corrupt());
        }
        let (item, rest) = rest.split_at(len);
        *bytes = rest;
        Ok(item)
    }
    let mut map = HashMap::new();
    while !bytes.is_empty() {
        let key = std::str::from_utf8(take(&mut bytes)?)
            .map_err(|e| KeyError::Serialization(Box::new(e)))?
            .to_owned();
        let value = take(&mut bytes)?.to_vec();
        map.insert(key, value);
    }
    Ok(map)
}

#[async_trait]
impl AppSyncStore for Keys {
    async fn get_sync_key(&self, key_id: &[u8]) -> KeyResult<Option<AppStateSyncKey>> {
        let row: Option<(Vec<u8>, Vec<u8>, i64)> = sqlx::query_as(
            "SELECT key_data, fingerprint, created FROM key_app_state_sync_keys \
             WHERE session_id = $1 AND key_id = $2",
        )
        .bind(self.session())
        .bind(key_id)
        .fetch_optional(&self.reader)
        .await
        .map_err(db)?;
        Ok(
            row.map(|(key_data, fingerprint, timestamp)| AppStateSyncKey {
                key_data,
                fingerprint,
                timestamp,
            }),
        )
    }

    async fn set_sync_key(&self, key_id: &[u8], key: AppStateSyncKey) -> KeyResult<()> {
        let rows = [(key_id.to_vec(), key)];
        write_rows!(self, 1, |c| put_sync_keys(c, self.session(), &rows))
    }

    async fn get_version(&self, name: &str) -> KeyResult<HashState> {
        let row: Option<(i64, Vec<u8>, Vec<u8>, bool)> = sqlx::query_as(
            "SELECT version, hash, index_value_map, mac_mismatch_fatal \
             FROM key_app_state_versions WHERE session_id = $1 AND name = $2",
        )
        .bind(self.session())
        .bind(name)
        .fetch_optional(&self.reader)
        .await
        .map_err(db)?;
        let Some((version, hash, map, mac_mismatch_fatal)) = row else {
            return Ok(HashState::default());
        };
        let len = hash.len();
        Ok(HashState {
            version: u64::try_from(version)
                .map_err(|_| KeyError::Validation(format!("app state version {version}")))?,
            hash: <[u8; 128]>::try_from(hash).map_err(|_| invalid("app state hash", len))?,
            index_value_map: decode_index_values(&map)?,
            mac_mismatch_fatal,
        })
    }

    async fn set_version(&self, name: &str, state: HashState) -> KeyResult<()> {
        let open = self.writer.open().await?;
        let mut conn = open.pool.acquire().await.map_err(db)?;
        put_version(&mut conn, self.session(), name, &state)
            .await
            .map_err(db)
    }

    async fn put_mutation_macs(
        &self,
        name: &str,
        version: u64,
        mutations: &[AppStateMutationMAC],
    ) -> KeyResult<()> {
        let rows: Vec<MacRow<'_>> = mutations
            .iter()
            .map(|m| {
                (
                    name,
                    m.index_mac.as_slice(),
                    version,
                    m.value_mac.as_slice(),
                )
            })
            .collect();
        write_rows!(self, rows.len(), |c| put_mutation_macs(
            c,
            self.session(),
            &rows
        ))
    }

    async fn get_mutation_mac(&self, name: &str, index_mac: &[u8]) -> KeyResult<Option<Vec<u8>>> {
        sqlx::query_scalar(
            "SELECT value_mac FROM key_app_state_mutation_macs \
             WHERE session_id = $1 AND name = $2 AND index_mac = $3",
        )
        .bind(self.session())
        .bind(name)
        .bind(index_mac)
        .fetch_optional(&self.reader)
        .await
        .map_err(db)
    }

    async fn get_mutation_macs(
        &self,
        name: &str,
        index_macs: &[[u8; 32]],
    ) -> KeyResult<HashMap<[u8; 32], Vec<u8>>> {
        let mut found = HashMap::with_capacity(index_macs.len());
        if index_macs.is_empty() {
            return Ok(found);
        }
        let mut conn = self.reader.acquire().await.map_err(db)?;
        for chunk in index_macs.chunks(CHUNK) {
            let mut query = QueryBuilder::<Db>::new(
                "SELECT index_mac, value_mac FROM key_app_state_mutation_macs WHERE session_id = ",
            );
            query.push_bind(self.session().to_owned());
            query.push(" AND name = ");
            query.push_bind(name.to_owned());
            query.push(" AND index_mac IN (");
            let mut list = query.separated(", ");
            for mac in chunk {
                list.push_bind(mac.to_vec());
            }
            query.push(")");
            let rows: Vec<(Vec<u8>, Vec<u8>)> = query
                .build_query_as()
                .fetch_all(&mut *conn)
                .await
                .map_err(db)?;
            for (index, value) in rows {
                let len = index.len();
                let index = <[u8; 32]>::try_from(index).map_err(|_| invalid("index MAC", len))?;
                found.insert(index, value);
            }
        }
        Ok(found)
    }

    async fn delete_mutation_macs(&self, name: &str, index_macs: &[Vec<u8>]) -> KeyResult<()> {
        write_rows!(self, index_macs.len(), |c| async move {
            for chunk in index_macs.chunks(CHUNK) {
                let mut query = QueryBuilder::<Db>::new(
                    "DELETE FROM key_app_state_mutation_macs WHERE session_id = ",
                );
                query.push_bind(self.session().to_owned());
                query.push(" AND name = ");
                query.push_bind(name.to_owned());
                query.push(" AND index_mac IN (");
                let mut list = query.separated(", ");
                for mac in chunk {
                    list.push_bind(mac.clone());
                }
                query.push(")");
                query.build().execute(&mut *c).await?;
            }
            Ok(())
        })
    }

    async fn clear_mutation_macs(&self, name: &str) -> KeyResult<()> {
        sqlx::query("DELETE FROM key_app_state_mutation_macs WHERE session_id = $1 AND name = $2")
            .bind(self.session())
            .bind(name)
            .execute(self.writer.open().await?.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn get_latest_sync_key_id(&self) -> KeyResult<Option<Vec<u8>>> {
        // The highest key id, as the library's SQLite store answers (key ids
        // grow with each key the phone shares).
        sqlx::query_scalar(
            "SELECT key_id FROM key_app_state_sync_keys WHERE session_id = $1 \
             ORDER BY key_id DESC LIMIT 1",
        )
        .bind(self.session())
        .fetch_optional(&self.reader)
        .await
        .map_err(db)
    }
}

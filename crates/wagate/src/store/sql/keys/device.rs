//! The library's [`DeviceStore`]: the session's one device.

use std::sync::Arc;

use async_trait::async_trait;
use wacore::store::Device;
use wacore::store::error::Result as KeyResult;
use wacore::store::traits::DeviceStore;

use super::upserts::put_device;
use super::{Keys, db, serialization};

/// The only device id a session has; whatsapp-rust's `create` reports it.
pub(super) const DEVICE_ID: i32 = 1;
/// A device as stored: serde JSON of the library's `Device`. What it does
/// not persist (the device props, the client profile) is set as the
/// library's own SQLite store sets it on load.
fn decode_device(json: &str) -> KeyResult<Device> {
    let mut device: Device = serde_json::from_str(json).map_err(serialization)?;
    device.device_props = Arc::new(wacore::store::device::DEVICE_PROPS.clone());
    device.client_profile = wacore::client_profile::ClientProfile::web();
    Ok(device)
}

#[async_trait]
impl DeviceStore for Keys {
    async fn save(&self, device: &Device) -> KeyResult<()> {
        let json = serde_json::to_string(device).map_err(serialization)?;
        let open = self.writer.open().await?;
        let mut conn = open.pool.acquire().await.map_err(db)?;
        put_device(&mut conn, self.session(), &json)
            .await
            .map_err(db)
    }

    async fn load(&self) -> KeyResult<Option<Device>> {
        let json: Option<String> =
            sqlx::query_scalar("SELECT device FROM key_devices WHERE session_id = $1")
                .bind(self.session())
                .fetch_optional(&self.reader)
                .await
                .map_err(db)?;
        json.as_deref().map(decode_device).transpose()
    }

    async fn exists(&self) -> KeyResult<bool> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT CAST(1 AS BIGINT) FROM key_devices WHERE session_id = $1")
                .bind(self.session())
                .fetch_optional(&self.reader)
                .await
                .map_err(db)?;
        Ok(found.is_some())
    }

    async fn create(&self) -> KeyResult<i32> {
        // A fresh identity, unless the session has one already (the
        // library asks only after `exists` said no; a race keeps the first).
        let json = serde_json::to_string(&Device::new()).map_err(serialization)?;
        sqlx::query(
            "INSERT INTO key_devices (session_id, device) VALUES ($1, $2) \
             ON CONFLICT (session_id) DO NOTHING",
        )
        .bind(self.session())
        .bind(json)
        .execute(self.writer.open().await?.pool)
        .await
        .map_err(db)?;
        Ok(DEVICE_ID)
    }

    async fn resource_report(&self) -> wacore::stats::StorageResourceReport {
        // The rows live in the gateway's database, whose one page cache
        // serves every session; none of it is this session's own.
        wacore::stats::StorageResourceReport {
            memory_bytes: Some(0),
            ..Default::default()
        }
    }
}

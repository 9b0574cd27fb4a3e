//! Every session's WhatsApp keys and protocol state: whatsapp-rust's
//! storage [`Backend`], kept in the gateway's own database with every row
//! under its session's id. One pool serves all sessions (a per-session
//! SQLite file cost a connection, a page cache and three or four file
//! descriptors per session).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use tokio::sync::{RwLock, RwLockReadGuard};
use wacore::appstate::hash::HashState;
use wacore::store::Device;
use wacore::store::traits::{
    AppStateSyncKey, Backend, DeviceListRecord, LidPnMappingEntry, MsgSecretEntry, TcTokenEntry,
};

use super::StoreError;
use crate::domain::SessionId;

#[async_trait]
pub trait KeyStore: Send + Sync {
    /// whatsapp-rust's storage for one session, over the shared pool. Cheap:
    /// it holds a handle on the pool and the session's id, nothing else.
    fn for_session(&self, session: SessionId) -> Arc<dyn Backend>;

    /// Removes every key row of the session, in one transaction (logout,
    /// delete). Deleting the session row does it too (`ON DELETE CASCADE`).
    async fn delete_keys(&self, session: SessionId) -> Result<(), StoreError>;

    /// Replaces whatever the session has with `keys`, in one transaction:
    /// the upgrade from per-session key files. Running it again with the
    /// same keys leaves the same rows.
    async fn import_keys(&self, session: SessionId, keys: &KeySet) -> Result<(), StoreError>;

    /// How many rows of each kind the session has.
    async fn count_keys(&self, session: SessionId) -> Result<KeyCounts, StoreError>;

    /// The LID and phone number the session has learnt belong together
    /// (whatsapp-rust's mappings), found by either one.
    async fn lid_pn(
        &self,
        session: SessionId,
        by: LidLookup<'_>,
    ) -> Result<Option<LidPn>, StoreError>;
}

/// One side of a LID mapping, digits only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LidLookup<'a> {
    Lid(&'a str),
    Phone(&'a str),
}

/// A LID and the phone number it stands for, each its digits only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LidPn {
    pub lid: String,
    pub phone: String,
}

/// Everything whatsapp-rust stores for one session, as plain rows: what
/// an old per-session key file holds, read for the upgrade.
#[derive(Default)]
pub struct KeySet {
    pub device: Option<Device>,
    pub identities: Vec<(String, [u8; 32])>,
    pub sessions: Vec<(String, Vec<u8>)>,
    /// `(id, record, uploaded)`.
    pub prekeys: Vec<(u32, Vec<u8>, bool)>,
    pub signed_prekeys: Vec<(u32, Vec<u8>)>,
    pub sender_keys: Vec<(String, Vec<u8>)>,
    pub sync_keys: Vec<(Vec<u8>, AppStateSyncKey)>,
    pub versions: Vec<(String, HashState)>,
    pub mutation_macs: Vec<MutationMac>,
    /// `(group, device, has_key)`.
    pub sender_key_devices: Vec<(String, String, bool)>,
    pub lid_mappings: Vec<LidPnMappingEntry>,
    /// `(address, message id, base key)`.
    pub base_keys: Vec<(String, String, Vec<u8>)>,
    pub device_lists: Vec<DeviceListRecord>,
    pub group_metadata: Vec<(String, Vec<u8>)>,
    pub tc_tokens: Vec<(String, TcTokenEntry)>,
    pub sent_messages: Vec<SentMessage>,
    pub pending_inbound: Vec<PendingInbound>,
    pub msg_secrets: Vec<MsgSecretEntry>,
}

pub struct MutationMac {
    pub name: String,
    pub index_mac: Vec<u8>,
    pub version: u64,
    pub value_mac: Vec<u8>,
}

pub struct SentMessage {
    pub chat: String,
    pub id: String,
    pub payload: Vec<u8>,
    /// Unix seconds; the retention sweep goes by it.
    pub created_at: i64,
}

pub struct PendingInbound {
    pub chat: String,
    pub sender: String,
    pub id: String,
    pub message: Vec<u8>,
    /// Unix seconds.
    pub inserted_at: i64,
}

/// Rows per kind, to check an import against what was read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyCounts {
    pub devices: u64,
    pub identities: u64,
    pub sessions: u64,
    pub prekeys: u64,
    pub signed_prekeys: u64,
    pub sender_keys: u64,
    pub sync_keys: u64,
    pub versions: u64,
    pub mutation_macs: u64,
    pub sender_key_devices: u64,
    pub lid_mappings: u64,
    pub base_keys: u64,
    pub device_lists: u64,
    pub group_metadata: u64,
    pub tc_tokens: u64,
    pub sent_messages: u64,
    pub pending_inbound: u64,
    pub msg_secrets: u64,
}

impl KeyCounts {
    pub fn total(&self) -> u64 {
        let Self {
            devices,
            identities,
            sessions,
            prekeys,
            signed_prekeys,
            sender_keys,
            sync_keys,
            versions,
            mutation_macs,
            sender_key_devices,
            lid_mappings,
            base_keys,
            device_lists,
            group_metadata,
            tc_tokens,
            sent_messages,
            pending_inbound,
            msg_secrets,
        } = *self;
        devices
            + identities
            + sessions
            + prekeys
            + signed_prekeys
            + sender_keys
            + sync_keys
            + versions
            + mutation_macs
            + sender_key_devices
            + lid_mappings
            + base_keys
            + device_lists
            + group_metadata
            + tc_tokens
            + sent_messages
            + pending_inbound
            + msg_secrets
    }
}

impl KeySet {
    pub fn counts(&self) -> KeyCounts {
        let n = |len: usize| len as u64;
        KeyCounts {
            devices: u64::from(self.device.is_some()),
            identities: n(self.identities.len()),
            sessions: n(self.sessions.len()),
            prekeys: n(self.prekeys.len()),
            signed_prekeys: n(self.signed_prekeys.len()),
            sender_keys: n(self.sender_keys.len()),
            sync_keys: n(self.sync_keys.len()),
            versions: n(self.versions.len()),
            mutation_macs: n(self.mutation_macs.len()),
            sender_key_devices: n(self.sender_key_devices.len()),
            lid_mappings: n(self.lid_mappings.len()),
            base_keys: n(self.base_keys.len()),
            device_lists: n(self.device_lists.len()),
            group_metadata: n(self.group_metadata.len()),
            tc_tokens: n(self.tc_tokens.len()),
            sent_messages: n(self.sent_messages.len()),
            pending_inbound: n(self.pending_inbound.len()),
            msg_secrets: n(self.msg_secrets.len()),
        }
    }
}

/// Keeps a wiped session's old client from writing its keys back.
///
/// When the phone removes the device, whatsapp-rust's tasks for the dead
/// connection can still be finishing (a prekey upload, a session record, a
/// device-list update) while the supervisor wipes the keys: a write landing
/// after the wipe would bring rows back for a session that is logged out.
/// Every backend handed out for a session shares its fence; a write holds
/// the fence's read side for its statement, and a wipe takes the write
/// side, waiting for the writes in flight, and retires the fence, so every
/// later write of those backends is refused. A backend handed out after the
/// wipe (the session linking again) gets a new fence.
#[derive(Debug, Default)]
pub(crate) struct KeyFences {
    open: Mutex<HashMap<SessionId, Arc<Fence>>>,
}

#[derive(Debug, Default)]
pub(crate) struct Fence {
    retired: RwLock<bool>,
}

/// The refusal a retired fence gives a write.
#[derive(Debug, thiserror::Error)]
#[error("the session's keys were wiped (logout or delete): this client may not write them")]
pub(crate) struct KeysWiped;

impl KeyFences {
    /// The fence for backends handed out now.
    pub(crate) fn current(&self, session: SessionId) -> Arc<Fence> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(open.entry(session).or_default())
    }

    /// Retires the session's fence: waits for the writes in flight, then
    /// refuses every later one from the backends handed out so far. Once it
    /// returns, nothing those backends do can bring a row back.
    pub(crate) async fn retire(&self, session: SessionId) {
        let fence = self
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&session);
        if let Some(fence) = fence {
            *fence.retired.write().await = true;
        }
    }
}

impl Fence {
    /// Holds the fence open for one write: `Err` once the keys are wiped.
    pub(crate) async fn open(&self) -> Result<RwLockReadGuard<'_, bool>, KeysWiped> {
        let retired = self.retired.read().await;
        if *retired {
            Err(KeysWiped)
        } else {
            Ok(retired)
        }
    }
}

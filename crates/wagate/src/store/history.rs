//! History after linking, as the store takes it: one chunk of what the
//! phone sent (already decoded and cut to the session's `history`
//! setting), stored with its `history.sync` event in one transaction.

use crate::domain::{HistorySyncType, OrgId, SessionId};
use crate::events::Envelope;
use crate::messages::Inbound;

/// One history-sync chunk to store.
#[derive(Debug, Clone)]
pub struct NewHistory {
    pub org_id: OrgId,
    pub session_id: SessionId,
    pub sync_type: HistorySyncType,
    pub chunk_order: Option<u32>,
    pub progress: Option<u32>,
    pub chats: Vec<HistoryChat>,
    /// `(JID, push name)` of the people the account talks to.
    pub push_names: Vec<(String, String)>,
}

impl NewHistory {
    /// How many messages the chunk holds.
    pub fn message_count(&self) -> usize {
        self.chats.iter().map(|c| c.messages.len()).sum()
    }
}

/// One conversation of a chunk.
#[derive(Debug, Clone)]
pub struct HistoryChat {
    /// The chat's JID, named as live messages name it.
    pub chat: String,
    /// A group's subject, or the name WhatsApp gives a person's chat.
    pub name: Option<String>,
    /// Unread messages, as the phone counts them.
    pub unread: u32,
    /// Its messages, in any order.
    pub messages: Vec<Inbound>,
}

/// What storing a chunk logged, to publish: its `history.sync`, and the
/// `contact.updated` of contacts whose push name it changed (logged
/// before it).
#[derive(Debug, Clone)]
pub struct StoredHistory {
    pub sync: Envelope,
    pub contacts: Vec<Envelope>,
}

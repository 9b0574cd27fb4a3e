//! The chat list: one row per chat of a session, with its latest message
//! and unread count, written in the transaction that stores each message
//! (so it never disagrees with the messages), read by latest activity.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{MessageRecord, NewHistory, StoreError, StoredHistory};
use crate::domain::{ChatChange, MessageId, Mute, OrgId, SessionId};
use crate::events::Envelope;

/// Kinds of message that point at another message (a reaction, an edit, a
/// revoke, a poll vote) and so do not make their chat active. The
/// migration that filled the list from earlier messages names them too.
pub(crate) const ACTIVITY_EXCLUDED: [&str; 4] = ["reaction", "edit", "revoke", "poll_vote"];

/// A chat is with one person or a group (its JID ends in `@g.us`).
pub(crate) fn chat_kind(chat: &str) -> ChatKind {
    if chat.ends_with("@g.us") {
        ChatKind::Group
    } else {
        ChatKind::Person
    }
}

crate::domain::named_enum! {
    /// Whom a chat is with.
    pub enum ChatKind {
        Person = "person",
        Group = "group",
    }
}

/// One row of the list.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRecord {
    pub chat: String,
    pub kind: ChatKind,
    /// A person's latest push name, when one came with their messages (or
    /// with history); a group's subject as history gave it.
    pub name: Option<String>,
    pub unread: u64,
    pub last_at: DateTime<Utc>,
    pub last_message: MessageRecord,
    pub archived: bool,
    pub pinned: bool,
    pub mute: Mute,
}

/// What [`ChatStore::change_chat`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatChanged {
    /// The session has no such chat (no message in it yet).
    NoSuchChat,
    /// The chat already was so: nothing written, no event.
    Unchanged,
    /// Written with this `chat.updated` event, to publish now.
    Changed(Box<Envelope>),
}

/// A message that has just been stored, as the chat list sees it.
#[derive(Debug, Clone)]
pub(crate) struct ChatTouch {
    pub session_id: SessionId,
    pub chat: String,
    pub message_id: MessageId,
    /// Written by someone else (counts as unread); `false` when the
    /// session's own side wrote it, which reads the chat.
    pub unread: bool,
    /// The writer's push name, for a person's chat.
    pub name: Option<String>,
}

#[async_trait]
pub trait ChatStore: Send + Sync {
    /// A session's chats, latest activity first (by their latest
    /// message's id), after the chat whose latest message is `before`.
    async fn list_chats(
        &self,
        org: OrgId,
        session: SessionId,
        before: Option<MessageId>,
        limit: u32,
    ) -> Result<Vec<ChatRecord>, StoreError>;

    /// Applies `change` to one of the session's chats and logs the
    /// `chat.updated` event reporting it, in one transaction. Reading a
    /// chat leaves nothing unread; marking it unread counts at least one.
    async fn change_chat(
        &self,
        org: OrgId,
        session: SessionId,
        chat: &str,
        change: ChatChange,
    ) -> Result<ChatChanged, StoreError>;
    /// Stores a history-sync chunk and its `history.sync` event in one
    /// transaction (through the group-commit writer): its messages that
    /// the session does not have yet (by WhatsApp id, in either
    /// direction), marked as from history, under ids made from their
    /// WhatsApp timestamps so they sort among the others by when they were
    /// sent; their chats (a new chat takes the phone's unread count; an
    /// existing one keeps its own); the push names (with a
    /// `contact.updated` for each contact's that changed). Returns the
    /// events to publish.
    async fn record_history(&self, history: NewHistory) -> Result<StoredHistory, StoreError>;

    /// One chat, if the session has a message in it.
    async fn get_chat(
        &self,
        org: OrgId,
        session: SessionId,
        chat: &str,
    ) -> Result<Option<ChatRecord>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_round_trip() {
        crate::domain::named::assert_names_round_trip::<ChatKind>();
    }

    #[test]
    fn a_group_is_a_jid_on_g_us() {
        assert_eq!(chat_kind("120363000000000001@g.us"), ChatKind::Group);
        assert_eq!(chat_kind("15550001111@s.whatsapp.net"), ChatKind::Person);
        assert_eq!(chat_kind("123456@lid"), ChatKind::Person);
    }
}

//! What a phone keeps of what reached it: its messages (each id once, with
//! edits, revokes and reactions applied), the receipts for what it sent,
//! and the chat states its contacts sent it.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use serde_json::Value;

use super::content::Effect;

/// A message a fake phone received, decrypted.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PhoneMessage {
    pub id: String,
    /// The sending device, e.g. `15550001111:1@s.whatsapp.net`.
    pub from: String,
    /// The sending account, e.g. `15550001111@s.whatsapp.net`.
    pub sender: String,
    /// The chat it belongs to: the sender for incoming messages, the
    /// recipient for what the phone's own companions sent.
    pub chat: String,
    /// Sent by one of the phone's own companions (its copy of the message).
    pub from_me: bool,
    /// `text`, `image`, `video`, `audio`, `voice`, `document`, `sticker`,
    /// `location`, `contact`, `contacts`, `reaction`, `poll`, `edit`,
    /// `revoke` or `other`.
    pub kind: String,
    /// The text, a media caption, or a document's name.
    pub text: Option<String>,
    /// The decoded content; its fields depend on `kind` (see the README).
    pub content: Value,
    pub timestamp: u64,
    /// How many times this id arrived from this sender in this chat: a
    /// sender that resends an id gets it shown once, counted here.
    pub arrivals: u32,
    /// The text of the latest edit, if the sender edited it.
    pub edited_text: Option<String>,
    pub edits: u32,
    /// The sender deleted it for everyone.
    pub revoked: bool,
    /// Reactions by reacting account; a removed reaction is gone.
    pub reactions: BTreeMap<String, String>,
    /// The phone's user read it (a read receipt went to the sender).
    pub read: bool,
    /// The phone's user played it (a played receipt went to the sender).
    pub played: bool,
    /// One of the phone's companions read it (`client.mark_as_read`): the
    /// server told the phone, as it tells every device of the reader.
    pub read_by_companion: bool,
    /// One of the phone's companions played it.
    pub played_by_companion: bool,
    /// The decrypted attachment; served separately, never in the JSON.
    #[serde(skip)]
    pub media: Option<Bytes>,
    /// `messageContextInfo.messageSecret`: what the sender's encrypted
    /// edits (and poll votes) of this message are keyed with.
    #[serde(skip)]
    pub(crate) message_secret: Option<Vec<u8>>,
}

/// A receipt the server delivered to the phone, for messages it sent.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PhoneReceipt {
    /// The message ids it covers (the stanza id, then any `<list>` items).
    pub ids: Vec<String>,
    /// The device that sent it, e.g. `15550001111:1@s.whatsapp.net`.
    pub from: String,
    /// `delivery`, `read`, `played`, `retry`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// Set when one of the phone's own companions read or played messages
    /// it received: the chat they are in.
    pub chat: Option<String>,
    pub timestamp: u64,
}

/// A typing indicator the server forwarded to the phone.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PhoneChatState {
    /// The account that is typing, e.g. `15550001111@s.whatsapp.net`.
    pub from: String,
    /// `composing`, `recording` or `paused`.
    pub state: String,
    pub timestamp: u64,
}

/// One phone's records. Messages are keyed as WhatsApp keys them: chat,
/// sender and id.
#[derive(Default)]
pub(crate) struct Inbox {
    messages: Vec<PhoneMessage>,
    index: HashMap<(String, String, String), usize>,
    receipts: Vec<PhoneReceipt>,
    chat_states: Vec<PhoneChatState>,
    calls: Vec<crate::calls::PhoneCall>,
}

impl Inbox {
    pub(crate) fn messages(&self) -> &[PhoneMessage] {
        &self.messages
    }

    pub(crate) fn receipts(&self) -> &[PhoneReceipt] {
        &self.receipts
    }

    pub(crate) fn chat_states(&self) -> &[PhoneChatState] {
        &self.chat_states
    }

    /// What the devices this phone called answered, oldest first.
    pub(crate) fn calls(&self) -> &[crate::calls::PhoneCall] {
        &self.calls
    }

    pub(crate) fn add_call(&mut self, call: crate::calls::PhoneCall) {
        self.calls.push(call);
    }

    /// Counts another arrival of a message the phone already has; false
    /// if it is new.
    pub(crate) fn arrived_again(&mut self, chat: &str, sender: &str, id: &str) -> bool {
        let key = (chat.to_owned(), sender.to_owned(), id.to_owned());
        match self.index.get(&key).and_then(|&i| self.messages.get_mut(i)) {
            Some(m) => {
                m.arrivals = m.arrivals.saturating_add(1);
                true
            }
            None => false,
        }
    }

    /// Keeps a new message and applies what it does to an earlier one.
    pub(crate) fn add(&mut self, message: PhoneMessage, effect: Option<Effect>) {
        if let Some(effect) = effect {
            self.apply(&message, effect);
        }
        let key = (
            message.chat.clone(),
            message.sender.clone(),
            message.id.clone(),
        );
        self.index.insert(key, self.messages.len());
        self.messages.push(message);
    }

    /// Edits and revokes only touch the editor's own message, as WhatsApp
    /// enforces; a reaction may target anyone's message in the chat. A
    /// target the phone never got (or that it sent itself) is left alone:
    /// the edit or reaction still shows as its own record.
    fn apply(&mut self, by: &PhoneMessage, effect: Effect) {
        let (target, same_sender) = match &effect {
            Effect::Edit { target, .. } | Effect::Revoke { target } => (target, true),
            Effect::React { target, .. } => (target, false),
        };
        let Some(m) = self.messages.iter_mut().find(|m| {
            m.chat == by.chat && &m.id == target && (!same_sender || m.sender == by.sender)
        }) else {
            return;
        };
        match effect {
            Effect::Edit { text, .. } => {
                m.edited_text = text;
                m.edits = m.edits.saturating_add(1);
            }
            Effect::Revoke { .. } => m.revoked = true,
            Effect::React { emoji, .. } => {
                if emoji.is_empty() {
                    m.reactions.remove(&by.sender);
                } else {
                    m.reactions.insert(by.sender.clone(), emoji);
                }
            }
        }
    }

    /// Keeps a receipt; one from the phone's own companion about messages
    /// in `chat` marks them read (or played) by that companion.
    pub(crate) fn add_receipt(&mut self, receipt: PhoneReceipt) {
        if let Some(chat) = &receipt.chat {
            let read = receipt.kind.starts_with("read");
            let played = receipt.kind.starts_with("played");
            for m in self
                .messages
                .iter_mut()
                .filter(|m| &m.chat == chat && !m.from_me && receipt.ids.contains(&m.id))
            {
                m.read_by_companion |= read;
                m.played_by_companion |= played;
            }
        }
        self.receipts.push(receipt);
    }

    pub(crate) fn add_chat_state(&mut self, state: PhoneChatState) {
        self.chat_states.push(state);
    }

    /// The message secret of `sender`'s message `id` in `chat`.
    pub(crate) fn secret_of(&self, chat: &str, sender: &str, id: &str) -> Option<Vec<u8>> {
        let key = (chat.to_owned(), sender.to_owned(), id.to_owned());
        let i = *self.index.get(&key)?;
        self.messages.get(i)?.message_secret.clone()
    }

    pub(crate) fn find(&self, id: &str) -> Option<&PhoneMessage> {
        self.messages.iter().find(|m| m.id == id)
    }

    pub(crate) fn find_mut(&mut self, id: &str) -> Option<&mut PhoneMessage> {
        self.messages.iter_mut().find(|m| m.id == id)
    }

    /// Incoming messages of `chat` the user has not read yet.
    pub(crate) fn unread_in(&mut self, chat: &str) -> impl Iterator<Item = &mut PhoneMessage> {
        self.messages
            .iter_mut()
            .filter(move |m| m.chat == chat && !m.from_me && !m.read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: &str, sender: &str) -> PhoneMessage {
        PhoneMessage {
            id: id.into(),
            from: sender.into(),
            sender: sender.into(),
            chat: sender.into(),
            from_me: false,
            kind: "text".into(),
            text: Some("hi".into()),
            content: Value::Null,
            timestamp: 0,
            arrivals: 1,
            edited_text: None,
            edits: 0,
            revoked: false,
            reactions: BTreeMap::new(),
            read: false,
            played: false,
            read_by_companion: false,
            played_by_companion: false,
            media: None,
            message_secret: None,
        }
    }

    #[test]
    fn an_id_is_kept_once_and_counted() {
        let mut inbox = Inbox::default();
        assert!(!inbox.arrived_again("a", "a", "1"));
        inbox.add(message("1", "a"), None);
        assert!(inbox.arrived_again("a", "a", "1"));
        // The same id from someone else is another message.
        assert!(!inbox.arrived_again("b", "b", "1"));
        assert_eq!(inbox.messages().len(), 1);
        assert_eq!(inbox.messages()[0].arrivals, 2);
    }

    #[test]
    fn only_the_sender_edits_or_revokes() {
        let mut inbox = Inbox::default();
        inbox.add(message("1", "a"), None);
        let mut stranger = message("2", "b");
        stranger.chat = "a".into();
        let edit = |text: &str| Effect::Edit {
            target: "1".into(),
            text: Some(text.into()),
        };
        inbox.add(stranger, Some(edit("hijacked")));
        inbox.add(message("3", "a"), Some(edit("fixed")));
        inbox.add(
            message("4", "a"),
            Some(Effect::Revoke { target: "1".into() }),
        );
        let first = &inbox.messages()[0];
        assert_eq!(first.edited_text.as_deref(), Some("fixed"));
        assert_eq!(first.edits, 1);
        assert!(first.revoked);
    }
}

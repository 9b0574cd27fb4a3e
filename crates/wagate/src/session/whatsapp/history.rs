//! History after linking: the library's `HistorySync` events (one per
//! chunk the phone sent) decoded off the runtime into the gateway's
//! [`HistoryChunk`] and handed to the session's sink, one chunk at a time
//! in arrival order, by a task of the connection's own.
//!
//! whatsapp-rust sends the chunk's receipt to the phone before it
//! dispatches the event, so a chunk the gateway fails to store (or that a
//! crash interrupts) is not sent again.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::DateTime;
use tokio::sync::mpsc;
use wacore::types::events::LazyHistorySync;
use whatsapp_rust::Jid;
use whatsapp_rust::waproto::whatsapp as wa;

use crate::domain::{HistoryScope, HistorySyncType};
use crate::messages::incoming::{self, Inbound, Sender};
use crate::session::engine::{HistoryChunk, InboundSink};
use crate::store::HistoryChat;

/// Chunks that inflate to more than this are decoded on a blocking
/// thread; smaller ones inline (the library's own threshold).
const BLOCKING_ABOVE: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub(super) enum HistoryError {
    #[error("the history blob does not decode: {0}")]
    Decode(String),
    #[error("the decoding task ended early")]
    Cancelled,
}

/// The device properties a session links with: with `history: full` the
/// companion asks the phone for a full sync (`requireFullSync`), as
/// WhatsApp's desktop client does, so the phone sends the `FULL` chunks
/// too; otherwise the library's defaults (recent history only). They go
/// to WhatsApp in the registration payload, so they count at linking.
pub(super) fn device_props(scope: HistoryScope) -> Option<wacore::store::DevicePropsOverride> {
    (scope == HistoryScope::Full).then(|| {
        wacore::store::DevicePropsOverride::new()
            .with_require_full_sync(true)
            .with_history_sync_config(wa::device_props::HistorySyncConfig {
                on_demand_ready: Some(true),
                complete_on_demand_ready: Some(true),
                ..wacore::store::device::default_history_sync_config()
            })
    })
}

/// Starts the task that stores a connection's history chunks; it ends when
/// the returned sender (held by the event forwarder) is dropped.
pub(super) fn spawn(sink: Arc<dyn InboundSink>) -> mpsc::UnboundedSender<LazyHistorySync> {
    let (tx, mut rx) = mpsc::unbounded_channel::<LazyHistorySync>();
    tokio::spawn(async move {
        while let Some(lazy) = rx.recv().await {
            let sync_type = HistorySyncType::from_wire(lazy.sync_type());
            if !sink.history_scope().keeps(sync_type) {
                tracing::debug!(%sync_type, "history chunk not kept (the session's setting)");
                continue;
            }
            match decode_off_runtime(lazy).await {
                Ok(chunk) => {
                    // Logged by the sink; the receipt went out already.
                    let _ = sink.history(chunk).await;
                }
                Err(error) => tracing::warn!(%error, %sync_type, "history chunk dropped"),
            }
        }
    });
    tx
}

async fn decode_off_runtime(lazy: LazyHistorySync) -> Result<HistoryChunk, HistoryError> {
    if lazy.decompressed_size() <= BLOCKING_ABOVE {
        return decode(&lazy);
    }
    tokio::task::spawn_blocking(move || decode(&lazy))
        .await
        .map_err(|_| HistoryError::Cancelled)?
}

/// A chat's messages as decoded, before the chunk's LID-to-number
/// mappings (which come after the conversations) rename them.
struct RawChat {
    jid: String,
    name: Option<String>,
    unread: u32,
    /// The number a LID-addressed chat belongs to, when the phone says.
    pn: Option<String>,
    messages: Vec<(u64, u64, Inbound)>,
}

/// Decodes one chunk: conversation by conversation from the compressed
/// stream (never the whole blob inflated at once), then the rest (push
/// names, LID mappings).
pub(super) fn decode(lazy: &LazyHistorySync) -> Result<HistoryChunk, HistoryError> {
    let mut stream = lazy.stream();
    let mut conversation = wa::Conversation::default();
    let mut raw = Vec::new();
    while stream
        .next_conversation_into(&mut conversation)
        .map_err(|e| HistoryError::Decode(e.to_string()))?
    {
        raw.push(raw_chat(&conversation));
    }
    let rest = stream
        .remainder()
        .map_err(|e| HistoryError::Decode(e.to_string()))?;
    // LID user -> phone number.
    let mut phones: HashMap<String, String> = HashMap::new();
    for mapping in &rest.phone_number_to_lid_mappings {
        if let (Some(pn), Some(lid)) = (user_of(&mapping.pn_jid), user_of(&mapping.lid_jid)) {
            phones.insert(lid, pn);
        }
    }
    for chat in &raw {
        if let (Some(lid), Some(pn)) = (lid_user(&chat.jid), &chat.pn) {
            phones.entry(lid).or_insert_with(|| pn.clone());
        }
    }
    let chats = raw.into_iter().map(|chat| finish(chat, &phones)).collect();
    let push_names = rest
        .pushnames
        .iter()
        .filter_map(|p| Some((p.id.clone()?, p.pushname.clone()?)))
        .filter(|(id, name)| !id.is_empty() && !name.is_empty())
        .collect();
    Ok(HistoryChunk {
        sync_type: HistorySyncType::from_wire(lazy.sync_type()),
        chunk_order: lazy.chunk_order(),
        progress: lazy.progress(),
        chats,
        push_names,
    })
}

fn user_of(jid: &Option<String>) -> Option<String> {
    let jid: Jid = jid.as_deref()?.parse().ok()?;
    Some(jid.user.to_string())
}

fn lid_user(jid: &str) -> Option<String> {
    let jid: Jid = jid.parse().ok()?;
    jid.is_lid().then(|| jid.user.to_string())
}

fn raw_chat(conversation: &wa::Conversation) -> RawChat {
    let jid = conversation.id.clone();
    let group = jid.ends_with("@g.us");
    let mut messages = Vec::with_capacity(conversation.messages.len());
    let count = conversation.messages.len() as u64;
    for (position, item) in conversation.messages.iter().enumerate() {
        let Some(info) = item.message.as_option() else {
            continue;
        };
        let Some(inbound) = to_inbound(&jid, group, info) else {
            continue;
        };
        let seconds = info.message_timestamp.unwrap_or_default();
        // WhatsApp lists a conversation newest first; its order id, when
        // given, says the order of messages sent in the same second.
        let order = item
            .msg_order_id
            .unwrap_or(count.saturating_sub(position as u64));
        messages.push((seconds, order, inbound));
    }
    RawChat {
        name: conversation
            .name
            .clone()
            .or_else(|| conversation.display_name.clone())
            .filter(|n| !n.is_empty()),
        unread: conversation.unread_count.unwrap_or_default(),
        pn: user_of(&conversation.pn_jid),
        jid,
        messages,
    }
}

fn to_inbound(chat: &str, group: bool, info: &wa::WebMessageInfo) -> Option<Inbound> {
    let key = info.key.as_option()?;
    let wa_id = key.id.clone().filter(|id| !id.is_empty())?;
    let message = info.message.as_option()?;
    let (content, media) = incoming::decode(message)?;
    let from_me = key.from_me.unwrap_or(false);
    let sender_jid = if from_me {
        None
    } else if group {
        key.participant.clone().or_else(|| info.participant.clone())
    } else {
        Some(chat.to_owned())
    };
    let sender = sender_jid
        .and_then(|s| s.parse::<Jid>().ok())
        .map(|jid| person(&jid))
        .unwrap_or_default();
    let seconds = i64::try_from(info.message_timestamp.unwrap_or_default()).ok()?;
    Some(Inbound {
        wa_id,
        chat: chat.to_owned(),
        sender,
        push_name: info.push_name.clone().filter(|n| !n.is_empty()),
        timestamp: DateTime::from_timestamp(seconds, 0)?,
        from_me,
        reply_to: incoming::reply_to(message),
        content,
        media,
    })
}

fn person(jid: &Jid) -> Sender {
    if jid.is_lid() {
        Sender {
            phone: None,
            lid: Some(jid.user.to_string()),
        }
    } else {
        Sender {
            phone: Some(jid.user.to_string()),
            lid: None,
        }
    }
}

/// Names the chat as live messages name it (a person by number when the
/// number is known) and completes the senders from the mappings.
fn finish(chat: RawChat, phones: &HashMap<String, String>) -> HistoryChat {
    let jid = match lid_user(&chat.jid).and_then(|lid| phones.get(&lid)) {
        Some(pn) => format!("{pn}@s.whatsapp.net"),
        None => chat.jid,
    };
    let mut messages = chat.messages;
    messages.sort_by_key(|(seconds, order, _)| (*seconds, *order));
    let messages = messages
        .into_iter()
        .map(|(_, _, mut inbound)| {
            inbound.chat = jid.clone();
            if let (None, Some(lid)) = (&inbound.sender.phone, &inbound.sender.lid) {
                inbound.sender.phone = phones.get(lid).cloned();
            }
            inbound
        })
        .collect();
    HistoryChat {
        chat: jid,
        name: chat.name,
        unread: chat.unread,
        messages,
    }
}

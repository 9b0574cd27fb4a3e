//! A phone's existing chats (seeded through the admin API) and how the
//! phone hands them to a newly linked companion, as WhatsApp's phones do:
//! history-sync notifications, each a `protocolMessage` from the phone
//! (device 0) carrying a `historySyncNotification`, in several chunks.
//!
//! - `INITIAL_BOOTSTRAP` first: every chat with its newest messages and
//!   the account's LID mappings, the zlib-compressed `HistorySync` inline
//!   (`initialHistBootstrapInlinePayload`);
//! - `PUSH_NAME`: the names the people in those chats gave themselves;
//! - `RECENT`: the older messages of the last [`RECENT_DAYS`] days;
//! - `FULL`: anything older, only to a companion whose device properties
//!   asked for a full sync (`requireFullSync`).
//!
//! Every chunk but the bootstrap is uploaded as an encrypted media blob
//! (media type "WhatsApp History Keys") that the companion downloads from
//! the simulator's media host. Chunks of one kind are numbered by
//! `chunkOrder` from 1; `progress` says how far the bootstrap and recent
//! chunks have gone. The companion acknowledges each with a `hist_sync`
//! receipt, which the phone records.

use std::collections::BTreeMap;
use std::io::Write as _;

use base64::Engine as _;
use buffa::Message as _;
use serde::{Deserialize, Serialize};
use wacore::download::MediaType;
use waproto::whatsapp as wa;
use waproto::whatsapp::history_sync::HistorySyncType as SyncType;

use crate::error::SimError;
use crate::world::World;

/// Messages per chat in the initial bootstrap.
pub(crate) const BOOTSTRAP_PER_CHAT: usize = 20;
/// Messages per recent or full chunk.
pub(crate) const CHUNK_MESSAGES: usize = 100;
/// How far back the recent chunks go.
pub(crate) const RECENT_DAYS: u64 = 90;

/// One message of a seeded chat.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryMessage {
    /// WhatsApp's message id; made up when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// Written by the phone's own account.
    #[serde(default)]
    pub from_me: bool,
    /// In a group, who wrote it (a number or a JID); a person's chat is
    /// written by that person.
    #[serde(default)]
    pub sender: Option<String>,
    /// The writer's push name.
    #[serde(default)]
    pub push_name: Option<String>,
    /// When it was sent, unix seconds.
    pub timestamp: u64,
    pub text: String,
}

/// One seeded chat.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryChat {
    /// A number, a JID (`…@s.whatsapp.net`, `…@lid`) or a group (`…@g.us`).
    pub jid: String,
    /// The chat's name on the phone (a group's subject).
    #[serde(default)]
    pub name: Option<String>,
    /// Unread messages on the phone.
    #[serde(default)]
    pub unread: u32,
    #[serde(default)]
    pub messages: Vec<HistoryMessage>,
}

/// A phone's existing chats, as the admin API seeds them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistorySeed {
    #[serde(default)]
    pub chats: Vec<HistoryChat>,
    /// More push names (JID, name) beyond those the messages carry.
    #[serde(default)]
    pub push_names: Vec<PushName>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushName {
    pub jid: String,
    pub name: String,
}

/// A history chunk the phone sent a companion, and whether the companion
/// acknowledged it (its `hist_sync` receipt).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SentChunk {
    pub device: u16,
    /// The notification's message id.
    pub id: String,
    /// `INITIAL_BOOTSTRAP`, `PUSH_NAME`, `RECENT`, `FULL` or `ON_DEMAND`.
    pub sync_type: String,
    pub chunk_order: u32,
    pub progress: Option<u32>,
    pub messages: usize,
    /// Uploaded as a blob (`false`: inline).
    pub uploaded: bool,
    pub acknowledged: bool,
}

fn user_jid(jid: &str) -> Result<String, SimError> {
    let jid = jid.trim();
    if jid.contains('@') {
        let (user, server) = jid.split_once('@').unwrap_or_default();
        let ok = !user.is_empty()
            && user.bytes().all(|b| b.is_ascii_digit() || b == b'-')
            && matches!(server, "s.whatsapp.net" | "lid" | "g.us");
        return ok
            .then(|| jid.to_owned())
            .ok_or_else(|| SimError::Invalid(format!("not a chat JID: {jid:?}")));
    }
    let digits: String = jid.chars().filter(char::is_ascii_digit).collect();
    if digits.is_empty() {
        return Err(SimError::Invalid(format!("not a number or JID: {jid:?}")));
    }
    Ok(format!("{digits}@s.whatsapp.net"))
}

/// Checks and normalises a seed (JIDs, ids), then adds it to the phone's
/// chats (a chat seeded twice gets the messages of both). Returns how many
/// messages the phone has in its history now.
pub(crate) fn seed(w: &mut World, phone: &str, seed: HistorySeed) -> Result<usize, SimError> {
    let mut chats = Vec::with_capacity(seed.chats.len());
    for mut chat in seed.chats {
        chat.jid = user_jid(&chat.jid)?;
        let group = chat.jid.ends_with("@g.us");
        for message in &mut chat.messages {
            if message.id.as_deref().is_none_or(str::is_empty) {
                message.id = Some(crate::phone::new_message_id());
            }
            if group && !message.from_me {
                let sender = message.sender.as_deref().ok_or_else(|| {
                    SimError::Invalid(format!("a message in {} names no sender", chat.jid))
                })?;
                message.sender = Some(user_jid(sender)?);
            } else {
                message.sender = None;
            }
        }
        chats.push(chat);
    }
    let mut push_names = Vec::with_capacity(seed.push_names.len());
    for name in seed.push_names {
        push_names.push(PushName {
            jid: user_jid(&name.jid)?,
            name: name.name,
        });
    }
    let account = w.account_mut(phone);
    for chat in chats {
        match account.history.chats.iter_mut().find(|c| c.jid == chat.jid) {
            Some(known) => {
                known.messages.extend(chat.messages);
                known.name = chat.name.or(known.name.take());
                known.unread = chat.unread;
            }
            None => account.history.chats.push(chat),
        }
    }
    account.history.push_names.extend(push_names);
    Ok(account.history.chats.iter().map(|c| c.messages.len()).sum())
}

/// One chunk to send, before it is compressed and (maybe) uploaded.
pub(crate) struct Chunk {
    pub sync_type: SyncType,
    pub chunk_order: u32,
    pub progress: Option<u32>,
    pub payload: wa::HistorySync,
    pub messages: usize,
}

/// Who the phone is, as its history names itself.
pub(crate) struct Own {
    pub jid: String,
    /// `(number JID, LID JID)` of accounts the server knows, for the
    /// bootstrap's mappings.
    pub mappings: Vec<(String, String)>,
}

fn web_message(chat: &str, own: &Own, message: &HistoryMessage) -> wa::WebMessageInfo {
    let group = chat.ends_with("@g.us");
    let participant = if group {
        if message.from_me {
            Some(own.jid.clone())
        } else {
            message.sender.clone()
        }
    } else {
        None
    };
    wa::WebMessageInfo {
        key: buffa::MessageField::some(wa::MessageKey {
            remote_jid: Some(chat.to_owned()),
            from_me: Some(message.from_me),
            id: message.id.clone(),
            participant: participant.clone(),
        }),
        message: buffa::MessageField::some(wa::Message {
            conversation: Some(message.text.clone()),
            ..Default::default()
        }),
        message_timestamp: Some(message.timestamp),
        participant,
        push_name: if message.from_me {
            None
        } else {
            message.push_name.clone()
        },
        ..Default::default()
    }
}

/// A conversation holding `messages` (oldest first), listed newest first
/// as WhatsApp lists them, each with its place in the chat (`msgOrderId`).
fn conversation(
    chat: &HistoryChat,
    own: &Own,
    messages: &[(usize, &HistoryMessage)],
    full: bool,
) -> wa::Conversation {
    let last = chat.messages.iter().map(|m| m.timestamp).max();
    let mut out = wa::Conversation {
        id: chat.jid.clone(),
        messages: messages
            .iter()
            .rev()
            .map(|(order, m)| wa::HistorySyncMsg {
                message: buffa::MessageField::some(web_message(&chat.jid, own, m)),
                msg_order_id: Some(*order as u64 + 1),
            })
            .collect(),
        ..Default::default()
    };
    if full {
        out.name = chat.name.clone();
        out.unread_count = Some(chat.unread);
        out.conversation_timestamp = last;
        out.last_msg_timestamp = last;
    }
    out
}

/// Plans the chunks a companion gets for `seed`: see the module's notes.
pub(crate) fn plan(seed: &HistorySeed, own: &Own, full_sync: bool, now: u64) -> Vec<Chunk> {
    let recent_from = now.saturating_sub(RECENT_DAYS * 86_400);
    // Each chat's messages oldest first, with their place in the chat.
    let sorted: Vec<Vec<(usize, &HistoryMessage)>> = seed
        .chats
        .iter()
        .map(|chat| {
            let mut messages: Vec<&HistoryMessage> = chat.messages.iter().collect();
            messages.sort_by_key(|m| m.timestamp);
            messages.into_iter().enumerate().collect()
        })
        .collect();

    let mut bootstrap = wa::HistorySync {
        sync_type: SyncType::INITIAL_BOOTSTRAP,
        ..Default::default()
    };
    let mut bootstrap_count = 0;
    let mut recent: Vec<(usize, Vec<(usize, &HistoryMessage)>)> = Vec::new();
    let mut full: Vec<(usize, Vec<(usize, &HistoryMessage)>)> = Vec::new();
    for (index, (chat, messages)) in seed.chats.iter().zip(&sorted).enumerate() {
        let split = messages.len().saturating_sub(BOOTSTRAP_PER_CHAT);
        let (older, newest) = messages.split_at(split);
        bootstrap
            .conversations
            .push(conversation(chat, own, newest, true));
        bootstrap_count += newest.len();
        let (old, young): (Vec<_>, Vec<_>) =
            older.iter().partition(|(_, m)| m.timestamp < recent_from);
        if !young.is_empty() {
            recent.push((index, young));
        }
        if !old.is_empty() {
            full.push((index, old));
        }
    }
    bootstrap.phone_number_to_lid_mappings = own
        .mappings
        .iter()
        .map(|(pn, lid)| wa::PhoneNumberToLIDMapping {
            pn_jid: Some(pn.clone()),
            lid_jid: Some(lid.clone()),
        })
        .collect();

    let mut chunks = Vec::new();
    let recent_chunks = split_chunks(seed, own, &recent, SyncType::RECENT);
    let steps = 1 + recent_chunks.len() as u32;
    bootstrap.chunk_order = Some(1);
    bootstrap.progress = Some(100 / steps);
    chunks.push(Chunk {
        sync_type: SyncType::INITIAL_BOOTSTRAP,
        chunk_order: 1,
        progress: Some(100 / steps),
        payload: bootstrap,
        messages: bootstrap_count,
    });
    chunks.push(push_names(seed));
    for (n, mut chunk) in recent_chunks.into_iter().enumerate() {
        let progress = (n as u32 + 2) * 100 / steps;
        chunk.progress = Some(progress);
        chunk.payload.progress = Some(progress);
        chunks.push(chunk);
    }
    if full_sync {
        chunks.extend(split_chunks(seed, own, &full, SyncType::FULL));
    }
    chunks
}

/// A companion's request for older messages of one chat
/// (`HistorySyncOnDemandRequest`, in a peer data operation request).
pub(crate) struct OnDemand {
    pub chat: String,
    /// The oldest message the companion has.
    pub oldest_id: Option<String>,
    pub oldest_ms: Option<i64>,
    pub count: usize,
}

/// The phone's answer to `request`: one `ON_DEMAND` chunk with up to
/// `count` (at most a chunk's worth) messages of the chat older than the
/// companion's oldest one, the newest of those; empty when the phone has
/// none older (or does not know the chat). A person's chat is found by
/// number or by LID.
pub(crate) fn on_demand(seed: &HistorySeed, own: &Own, request: &OnDemand) -> Chunk {
    let same = |jid: &str| {
        jid == request.chat
            || own.mappings.iter().any(|(pn, lid)| {
                (pn == jid && *lid == request.chat) || (lid == jid && *pn == request.chat)
            })
    };
    let mut payload = wa::HistorySync {
        sync_type: SyncType::ON_DEMAND,
        chunk_order: Some(1),
        progress: Some(100),
        ..Default::default()
    };
    let mut count = 0;
    if let Some(chat) = seed.chats.iter().find(|c| same(&c.jid)) {
        let mut messages: Vec<&HistoryMessage> = chat.messages.iter().collect();
        messages.sort_by_key(|m| m.timestamp);
        let sorted: Vec<(usize, &HistoryMessage)> = messages.into_iter().enumerate().collect();
        let known = request
            .oldest_id
            .as_deref()
            .and_then(|id| sorted.iter().position(|(_, m)| m.id.as_deref() == Some(id)));
        let end = match (known, request.oldest_ms) {
            (Some(at), _) => at,
            (None, Some(ms)) => sorted
                .iter()
                .take_while(|(_, m)| (m.timestamp as i64).saturating_mul(1000) < ms)
                .count(),
            (None, None) => 0,
        };
        let older = &sorted[..end];
        let take = request.count.min(CHUNK_MESSAGES).min(older.len());
        let wanted = &older[older.len() - take..];
        if !wanted.is_empty() {
            payload
                .conversations
                .push(conversation(chat, own, wanted, false));
        }
        count = wanted.len();
    }
    Chunk {
        sync_type: SyncType::ON_DEMAND,
        chunk_order: 1,
        progress: Some(100),
        payload,
        messages: count,
    }
}

/// The messages of `parts` (chat index, messages) cut into chunks of
/// [`CHUNK_MESSAGES`], a chat's messages spread over as many as it needs.
fn split_chunks(
    seed: &HistorySeed,
    own: &Own,
    parts: &[(usize, Vec<(usize, &HistoryMessage)>)],
    sync_type: SyncType,
) -> Vec<Chunk> {
    let mut chunks: Vec<Chunk> = Vec::new();
    let mut current = wa::HistorySync::default();
    let mut count = 0;
    let flush = |current: &mut wa::HistorySync, count: &mut usize, chunks: &mut Vec<Chunk>| {
        if *count == 0 {
            return;
        }
        let order = chunks.len() as u32 + 1;
        let mut payload = std::mem::take(current);
        payload.sync_type = sync_type;
        payload.chunk_order = Some(order);
        chunks.push(Chunk {
            sync_type,
            chunk_order: order,
            progress: None,
            payload,
            messages: *count,
        });
        *count = 0;
    };
    for (index, messages) in parts {
        let chat = &seed.chats[*index];
        let mut rest: &[(usize, &HistoryMessage)] = messages;
        while !rest.is_empty() {
            let room = CHUNK_MESSAGES - count;
            let (now, later) = rest.split_at(room.min(rest.len()));
            current
                .conversations
                .push(conversation(chat, own, now, false));
            count += now.len();
            rest = later;
            if count == CHUNK_MESSAGES {
                flush(&mut current, &mut count, &mut chunks);
            }
        }
    }
    flush(&mut current, &mut count, &mut chunks);
    chunks
}

/// The push names chunk: the seeded ones, then the latest name each
/// person wrote with.
fn push_names(seed: &HistorySeed) -> Chunk {
    let mut names: BTreeMap<String, (u64, String)> = BTreeMap::new();
    for chat in &seed.chats {
        for message in chat.messages.iter().filter(|m| !m.from_me) {
            let Some(name) = &message.push_name else {
                continue;
            };
            let who = message.sender.clone().unwrap_or_else(|| chat.jid.clone());
            let entry = names.entry(who).or_insert((0, String::new()));
            if message.timestamp >= entry.0 {
                *entry = (message.timestamp, name.clone());
            }
        }
    }
    for name in &seed.push_names {
        names.insert(name.jid.clone(), (u64::MAX, name.name.clone()));
    }
    Chunk {
        sync_type: SyncType::PUSH_NAME,
        chunk_order: 1,
        progress: None,
        payload: wa::HistorySync {
            sync_type: SyncType::PUSH_NAME,
            chunk_order: Some(1),
            pushnames: names
                .into_iter()
                .map(|(id, (_, name))| wa::Pushname {
                    id: Some(id),
                    pushname: Some(name),
                })
                .collect(),
            ..Default::default()
        },
        messages: 0,
    }
}

pub(crate) fn type_name(sync_type: SyncType) -> &'static str {
    match sync_type {
        SyncType::INITIAL_BOOTSTRAP => "INITIAL_BOOTSTRAP",
        SyncType::INITIAL_STATUS_V3 => "INITIAL_STATUS_V3",
        SyncType::FULL => "FULL",
        SyncType::RECENT => "RECENT",
        SyncType::PUSH_NAME => "PUSH_NAME",
        SyncType::NON_BLOCKING_DATA => "NON_BLOCKING_DATA",
        SyncType::ON_DEMAND => "ON_DEMAND",
    }
}

fn notification_type(sync_type: SyncType) -> wa::message::HistorySyncType {
    use wa::message::HistorySyncType as N;
    match sync_type {
        SyncType::INITIAL_BOOTSTRAP => N::INITIAL_BOOTSTRAP,
        SyncType::INITIAL_STATUS_V3 => N::INITIAL_STATUS_V3,
        SyncType::FULL => N::FULL,
        SyncType::RECENT => N::RECENT,
        SyncType::PUSH_NAME => N::PUSH_NAME,
        SyncType::NON_BLOCKING_DATA => N::NON_BLOCKING_DATA,
        SyncType::ON_DEMAND => N::ON_DEMAND,
    }
}

fn zlib(bytes: &[u8]) -> Result<Vec<u8>, SimError> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    encoder
        .write_all(bytes)
        .and_then(|()| encoder.finish())
        .map_err(|e| SimError::Internal(format!("compressing a history chunk: {e}")))
}

/// The notification for `chunk`: the bootstrap inline, every other chunk
/// encrypted into the blob store (call with the world locked for the
/// upload); an answer to a peer data operation request names the
/// request (`peerDataRequestSessionId`). Returns the message and whether
/// it was uploaded.
pub(crate) fn notification(
    w: &mut World,
    chunk: &Chunk,
    request: Option<&str>,
) -> Result<(wa::Message, bool), SimError> {
    let compressed = zlib(&chunk.payload.encode_to_vec())?;
    let mut note = wa::message::HistorySyncNotification {
        sync_type: Some(notification_type(chunk.sync_type)),
        chunk_order: Some(chunk.chunk_order),
        progress: chunk.progress,
        peer_data_request_session_id: request.map(str::to_owned),
        ..Default::default()
    };
    let inline = chunk.sync_type == SyncType::INITIAL_BOOTSTRAP;
    if inline {
        note.initial_hist_bootstrap_inline_payload = Some(compressed);
    } else {
        let encrypted = wacore::upload::encrypt_media(&compressed, MediaType::History)
            .map_err(|e| SimError::Internal(format!("encrypting a history chunk: {e}")))?;
        let token =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(encrypted.file_enc_sha256);
        let direct_path = format!("/v/t62.7119-24/{token}.enc");
        w.blobs
            .insert(direct_path.clone(), encrypted.data_to_upload.into());
        note.file_length = Some(compressed.len() as u64);
        note.media_key = Some(encrypted.media_key.to_vec());
        note.file_sha256 = Some(encrypted.file_sha256.to_vec());
        note.file_enc_sha256 = Some(encrypted.file_enc_sha256.to_vec());
        note.direct_path = Some(direct_path);
    }
    let message = wa::Message {
        protocol_message: buffa::MessageField::some(wa::message::ProtocolMessage {
            r#type: Some(wa::message::protocol_message::Type::HISTORY_SYNC_NOTIFICATION),
            history_sync_notification: buffa::MessageField::some(note),
            ..Default::default()
        }),
        ..Default::default()
    };
    Ok((message, !inline))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(t: u64, text: &str) -> HistoryMessage {
        HistoryMessage {
            id: Some(format!("ID{t}")),
            from_me: t.is_multiple_of(2),
            sender: None,
            push_name: Some("Ann".into()),
            timestamp: t,
            text: text.into(),
        }
    }

    #[test]
    fn chunks_hold_every_message_once_newest_in_the_bootstrap() {
        let now = 200 * 86_400;
        let old = now - 100 * 86_400;
        let seed = HistorySeed {
            chats: vec![HistoryChat {
                jid: "15550002222@s.whatsapp.net".into(),
                name: None,
                unread: 1,
                messages: (0..160)
                    .map(|n| message(if n < 30 { old + n } else { now - 1000 + n }, "x"))
                    .collect(),
            }],
            push_names: vec![],
        };
        let own = Own {
            jid: "15550001111@s.whatsapp.net".into(),
            mappings: vec![],
        };
        let chunks = plan(&seed, &own, true, now);
        let kinds: Vec<_> = chunks.iter().map(|c| type_name(c.sync_type)).collect();
        assert_eq!(
            kinds,
            ["INITIAL_BOOTSTRAP", "PUSH_NAME", "RECENT", "RECENT", "FULL"]
        );
        assert_eq!(chunks[0].messages, BOOTSTRAP_PER_CHAT);
        assert_eq!(chunks.iter().map(|c| c.messages).sum::<usize>(), 160);
        assert_eq!(chunks[3].progress, Some(100));
        // Without a full sync asked for, the old messages stay on the phone.
        let recent_only = plan(&seed, &own, false, now);
        assert_eq!(recent_only.iter().map(|c| c.messages).sum::<usize>(), 130);
        // Newest first, ordered by msgOrderId.
        let first = &chunks[0].payload.conversations[0].messages;
        assert!(first[0].msg_order_id > first[1].msg_order_id);
    }
}

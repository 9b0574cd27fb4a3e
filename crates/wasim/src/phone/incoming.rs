//! What a phone receives: messages (decrypted, filed in its inbox once,
//! their attachments downloaded and opened, a delivery receipt sent back),
//! receipts for what it sent, chat states, and retry receipts (handed to
//! the sending side).

use rand::rngs::StdRng;
use sha2::{Digest, Sha256};
use wacore_binary::Node;
use wacore_binary::builder::NodeBuilder;
use wacore_libsignal::protocol::{
    CiphertextMessage, PreKeySignalMessage, SignalMessage, UsePQRatchet, message_decrypt,
};
use waproto::whatsapp as wa;

use super::outgoing::{on_retry, send_on_demand, share_key};
use super::{PhoneChatState, PhoneMessage, PhoneReceipt, PhoneSignal, address, content};
use crate::media_crypto;
use crate::relay::{self, device_jid, parse_jid, phone_of};
use crate::server::Server;
use crate::stanza::{self, attr, children};

pub(super) async fn on_stanza(server: &Server, phone: &str, signal: &mut PhoneSignal, node: Node) {
    match node.tag.as_ref() {
        "message" => on_message(server, phone, signal, node).await,
        "receipt" if attr(&node, "type").as_deref() == Some("retry") => {
            on_retry(server, phone, signal, &node).await;
        }
        "receipt" => on_receipt(server, phone, &node),
        "chatstate" => on_chat_state(server, phone, &node),
        "notification" if attr(&node, "type").as_deref() == Some("server_sync") => {
            super::app_state::catch_up_all(server, phone, signal);
        }
        _ => {}
    }
}

/// Delivery, read and played receipts for what the phone (or, fanned out
/// to every device of the account, its companions) sent.
fn on_receipt(server: &Server, phone: &str, node: &Node) {
    let mut ids: Vec<String> = attr(node, "id").into_iter().collect();
    if let Some(list) = stanza::child(node, "list") {
        ids.extend(children(list).iter().filter_map(|i| attr(i, "id")));
    }
    let receipt = PhoneReceipt {
        ids,
        from: attr(node, "from").unwrap_or_default(),
        kind: attr(node, "type").unwrap_or_else(|| "delivery".to_owned()),
        chat: attr(node, "recipient"),
        timestamp: attr(node, "t")
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(stanza::now_secs),
    };
    let mut w = server.world();
    if let Some(account) = w.accounts.get_mut(phone) {
        account.phone_inbox.add_receipt(receipt);
    }
    w.phone_events.notify_waiters();
}

/// `<chatstate from><composing/></chatstate>`, `<composing media="audio"/>`
/// (recording a voice note) or `<paused/>`.
fn on_chat_state(server: &Server, phone: &str, node: &Node) {
    let Some(first) = children(node).first() else {
        return;
    };
    let state = match (first.tag.as_ref(), attr(first, "media").as_deref()) {
        ("composing", Some("audio")) => "recording",
        ("composing", _) => "composing",
        ("paused", _) => "paused",
        _ => return,
    };
    let record = PhoneChatState {
        from: attr(node, "from").unwrap_or_default(),
        state: state.to_owned(),
        timestamp: stanza::now_secs(),
    };
    let mut w = server.world();
    if let Some(account) = w.accounts.get_mut(phone) {
        account.phone_inbox.add_chat_state(record);
    }
    w.phone_events.notify_waiters();
}

/// Who sent a message and where the phone files it.
struct Envelope {
    id: String,
    /// The sending device.
    from: String,
    /// The sending account, `<number>@s.whatsapp.net`.
    sender: String,
    chat: String,
    from_me: bool,
    timestamp: u64,
}

async fn on_message(server: &Server, phone: &str, signal: &mut PhoneSignal, node: Node) {
    let id = attr(&node, "id").unwrap_or_default();
    // A group's message comes from the group, sent by its `participant`.
    let group = attr(&node, "from").filter(|f| f.ends_with("@g.us"));
    let from = match &group {
        Some(_) => attr(&node, "participant").unwrap_or_default(),
        None => attr(&node, "from").unwrap_or_default(),
    };
    let Some(sender) = parse_jid(&from) else {
        return;
    };
    let Some(sender_phone) = phone_of(&server.world(), &sender) else {
        return;
    };
    let from_me = sender_phone == phone;
    for enc in children(&node).iter().filter(|c| c.tag == "enc") {
        let message = match &group {
            Some(group) if attr(enc, "type").as_deref() == Some("skmsg") => {
                group_decrypt(signal, group, &sender_phone, sender.device, enc).await
            }
            _ => decrypt(signal, &sender_phone, sender.device, enc).await,
        };
        let Some(message) = message else {
            continue;
        };
        if let Some(group) = &group
            && let Some(skdm) = message.sender_key_distribution_message.as_option()
        {
            take_sender_key(signal, group, &sender_phone, sender.device, skdm).await;
        }
        let chat = if let Some(group) = &group {
            group.clone()
        } else if from_me {
            message
                .device_sent_message
                .as_option()
                .and_then(|d| d.destination_jid.clone())
                .or_else(|| attr(&node, "recipient"))
                .unwrap_or_else(|| device_jid(phone, 0))
        } else {
            device_jid(&sender_phone, 0)
        };
        let message = wacore::messages::unwrap_device_sent(message);
        if let Some(request) = message
            .protocol_message
            .as_option()
            .and_then(|p| p.app_state_sync_key_request.as_option())
        {
            if from_me {
                tracing::debug!(%phone, device = sender.device, keys = request.key_ids.len(),
                    "companion asked for app-state keys");
                share_key(server, phone, signal, sender.device).await;
            }
            continue;
        }
        if let Some(request) = message
            .protocol_message
            .as_option()
            .and_then(|p| p.peer_data_operation_request_message.as_option())
        {
            // Only the account's own companions ask the phone for data.
            if from_me
                && request.peer_data_operation_request_type
                    == Some(wa::message::PeerDataOperationRequestType::HISTORY_SYNC_ON_DEMAND)
                && let Some(on_demand) = request.history_sync_on_demand_request.as_option()
            {
                let on_demand = crate::history::OnDemand {
                    chat: on_demand.chat_jid.clone().unwrap_or_default(),
                    oldest_id: on_demand.oldest_msg_id.clone(),
                    oldest_ms: on_demand.oldest_msg_timestamp_ms,
                    count: on_demand
                        .on_demand_msg_count
                        .and_then(|n| usize::try_from(n).ok())
                        .unwrap_or_default(),
                };
                tracing::debug!(%phone, device = sender.device, count = on_demand.count,
                    "companion asked for older history");
                send_on_demand(server, phone, signal, sender.device, &id, &on_demand).await;
            }
            continue;
        }
        if message.sender_key_distribution_message.is_set() && !has_content(&message) {
            continue;
        }
        let envelope = Envelope {
            id: id.clone(),
            from: from.clone(),
            sender: device_jid(&sender_phone, 0),
            chat,
            from_me,
            timestamp: attr(&node, "t")
                .and_then(|t| t.parse().ok())
                .unwrap_or_else(stanza::now_secs),
        };
        let (decoded, secret_encrypted) = match open_secret_edit(server, phone, &envelope, &message)
        {
            Some(inner) => (content::decode(&inner), true),
            None => (content::decode(&message), false),
        };
        // Key shares, history-sync notices and other housekeeping are not
        // messages the user sees.
        if message.protocol_message.is_set() && decoded.effect.is_none() {
            continue;
        }
        let secret = message
            .message_context_info
            .as_option()
            .and_then(|c| c.message_secret.clone());
        keep(server, phone, envelope, decoded, secret, secret_encrypted).await;
    }
    if !from_me {
        // As a client sends it: to the sending device (in a group, to the
        // group naming the sender); the server routes it like any other
        // delivery receipt.
        let receipt = match &group {
            Some(group) => NodeBuilder::new("receipt")
                .attr("to", group.as_str())
                .attr("participant", device_jid(&sender_phone, sender.device)),
            None => {
                NodeBuilder::new("receipt").attr("to", device_jid(&sender_phone, sender.device))
            }
        }
        .attr("id", id)
        .attr("t", stanza::now_secs().to_string())
        .build();
        relay::route_receipt(&mut server.world(), phone, 0, &receipt);
    }
}

/// A sender-key distribution can ride along with a real message.
fn has_content(m: &wa::Message) -> bool {
    let mut bare = m.clone();
    bare.sender_key_distribution_message = buffa::MessageField::none();
    bare.message_context_info = buffa::MessageField::none();
    bare != wa::Message::default()
}

/// An edit sent the message-secret way (`secretEncryptedMessage` of type
/// MESSAGE_EDIT): opened with the secret the edited message carried, as a
/// receiving phone does; yields the plain edit inside. `None` when it is
/// not one, or the phone lacks the original or cannot open it (then it
/// shows as an undecodable edit).
fn open_secret_edit(
    server: &Server,
    phone: &str,
    envelope: &Envelope,
    message: &wa::Message,
) -> Option<wa::Message> {
    use wa::message::secret_encrypted_message::SecretEncType;
    let sem = message.secret_encrypted_message.as_option()?;
    if sem.secret_enc_type != Some(SecretEncType::MessageEdit) {
        return None;
    }
    let target = sem.target_message_key.as_option()?.id.clone()?;
    let secret = {
        let w = server.world();
        let inbox = &w.accounts.get(phone)?.phone_inbox;
        inbox.secret_of(&envelope.chat, &envelope.sender, &target)?
    };
    // You can only edit your own messages: original sender and editor are
    // the same account.
    let ctx = wacore::message_edit::MessageEditContext {
        original_msg_id: &target,
        original_sender_jid: &envelope.sender,
        editor_jid: &envelope.sender,
    };
    wacore::message_edit::decrypt_message_edit(
        sem.enc_payload.as_deref()?,
        sem.enc_iv.as_deref()?,
        &secret,
        &ctx,
    )
    .map_err(
        |e| tracing::warn!(%phone, %target, error = %e, "phone could not open an encrypted edit"),
    )
    .ok()
}

/// Stores a decoded message once per (chat, sender, id), downloading and
/// opening its attachment the first time, as the phone's media
/// auto-download would.
async fn keep(
    server: &Server,
    phone: &str,
    envelope: Envelope,
    decoded: content::Decoded,
    message_secret: Option<Vec<u8>>,
    secret_encrypted: bool,
) {
    let blob = {
        let mut w = server.world();
        let Some(account) = w.accounts.get_mut(phone) else {
            return;
        };
        if account
            .phone_inbox
            .arrived_again(&envelope.chat, &envelope.sender, &envelope.id)
        {
            w.phone_events.notify_waiters();
            return;
        }
        decoded.media.map(|m| {
            let blob = media_crypto::fetch(&w, &m);
            (blob, m)
        })
    };
    let mut content = decoded.content;
    if secret_encrypted {
        content["encrypted"] = true.into();
    }
    let media = match blob {
        None => None,
        Some((blob, m)) => {
            // Decryption is CPU work: off the runtime's few worker threads.
            let opened = tokio::task::spawn_blocking(move || media_crypto::open(&blob?, &m))
                .await
                .unwrap_or(Err(media_crypto::MediaError::Aborted));
            match opened {
                Ok(plain) => {
                    content["sha256"] = hex::encode(Sha256::digest(&plain)).into();
                    content["length"] = plain.len().into();
                    Some(bytes::Bytes::from(plain))
                }
                Err(e) => {
                    tracing::warn!(%phone, id = %envelope.id, error = %e,
                        "phone could not open the attachment");
                    content["media_error"] = e.code().into();
                    None
                }
            }
        }
    };
    let message = PhoneMessage {
        id: envelope.id,
        from: envelope.from,
        sender: envelope.sender,
        chat: envelope.chat,
        from_me: envelope.from_me,
        kind: decoded.kind.to_owned(),
        text: decoded.text,
        content,
        timestamp: envelope.timestamp,
        arrivals: 1,
        edited_text: None,
        edits: 0,
        revoked: false,
        reactions: Default::default(),
        read: false,
        played: false,
        read_by_companion: false,
        played_by_companion: false,
        media,
        message_secret,
    };
    let mut w = server.world();
    if let Some(account) = w.accounts.get_mut(phone) {
        account.phone_inbox.add(message, decoded.effect);
    }
    w.phone_events.notify_waiters();
}

/// The sender's key for a group, from the distribution message a member's
/// device sent pairwise beside its first group message.
async fn take_sender_key(
    signal: &mut PhoneSignal,
    group: &str,
    sender_phone: &str,
    device: u16,
    skdm: &wa::message::SenderKeyDistributionMessage,
) {
    use wacore_libsignal::protocol::{
        SenderKeyDistributionMessage, SenderKeyName, process_sender_key_distribution_message,
    };
    let Some(bytes) = skdm.axolotl_sender_key_distribution_message.as_deref() else {
        return;
    };
    let name = SenderKeyName::new(group.to_owned(), address(sender_phone, device).to_string());
    let processed = match SenderKeyDistributionMessage::try_from(bytes) {
        Ok(m) => process_sender_key_distribution_message(&name, &m, &mut signal.sender_keys).await,
        Err(e) => Err(e),
    };
    if let Err(e) = processed {
        tracing::warn!(%sender_phone, device, %group, error = %e, "phone could not take a sender key");
    }
}

/// A group message sealed with the sender's key (`skmsg`).
async fn group_decrypt(
    signal: &mut PhoneSignal,
    group: &str,
    sender_phone: &str,
    device: u16,
    enc: &Node,
) -> Option<wa::Message> {
    use wacore_libsignal::protocol::SenderKeyName;
    let bytes = stanza::bytes(enc)?;
    let version = attr(enc, "v").and_then(|v| v.parse().ok()).unwrap_or(2u8);
    let name = SenderKeyName::new(group.to_owned(), address(sender_phone, device).to_string());
    let plaintext = wacore_libsignal::protocol::group_decrypt(bytes, &mut signal.sender_keys, &name)
        .await
        .map_err(|e| tracing::warn!(%sender_phone, device, %group, error = %e, "phone could not decrypt a group message"))
        .ok()?;
    wacore::messages::decode_plaintext(&plaintext, version)
        .map_err(|e| tracing::warn!(%sender_phone, device, error = %e, "undecodable plaintext"))
        .ok()
}

async fn decrypt(
    signal: &mut PhoneSignal,
    sender_phone: &str,
    device: u16,
    enc: &Node,
) -> Option<wa::Message> {
    let bytes = stanza::bytes(enc)?;
    let kind = attr(enc, "type").unwrap_or_default();
    let version = attr(enc, "v").and_then(|v| v.parse().ok()).unwrap_or(2u8);
    let ciphertext = match kind.as_str() {
        "pkmsg" => PreKeySignalMessage::try_from(bytes).map(CiphertextMessage::PreKeySignalMessage),
        "msg" => SignalMessage::try_from(bytes).map(CiphertextMessage::SignalMessage),
        // Group sender-key messages go through `group_decrypt`.
        _ => return None,
    };
    let ciphertext = ciphertext
        .map_err(|e| tracing::warn!(%sender_phone, device, error = %e, "unparsable ciphertext"))
        .ok()?;
    let addr = address(sender_phone, device);
    let mut rng: StdRng = rand::make_rng();
    let result = message_decrypt(
        &ciphertext,
        &addr,
        &mut signal.sessions,
        &mut signal.identities,
        &mut signal.prekeys,
        &signal.signed,
        &mut rng,
        UsePQRatchet::No,
    )
    .await
    .map_err(|e| tracing::warn!(%sender_phone, device, error = %e, "phone could not decrypt"))
    .ok()?;
    if let Some(used) = result.consumed_prekey_id {
        signal.prekeys.0.remove(&used);
    }
    wacore::messages::decode_plaintext(&result.plaintext, version)
        .map_err(|e| tracing::warn!(%sender_phone, device, error = %e, "undecodable plaintext"))
        .ok()
}

//! What a phone sends: each copy encrypted pairwise for one device
//! (opening a Signal session from the device's bundle when there is none),
//! messages to a person and to a group, the app-state key share, and a
//! message sent again for a device that could not decrypt it.

use rand::rngs::StdRng;
use wacore::messages::MessageUtils;
use wacore_binary::Node;
use wacore_binary::builder::NodeBuilder;
use wacore_libsignal::protocol::{
    CiphertextMessage, IdentityKey, PreKeyBundle, PublicKey, UsePQRatchet, message_encrypt,
    process_prekey_bundle,
};
use waproto::whatsapp as wa;

use super::{AppStateKey, Outgoing, PhoneSignal, RESENDABLE, address, ensure_keys, new_message_id};
use crate::error::SimError;
use crate::relay::{self, device_jid, parse_jid, phone_of};
use crate::server::Server;
use crate::stanza::{self, attr};
use crate::world::{Account, World};

/// A bundle for one of `phone`'s devices, consuming a one-time prekey.
fn take_bundle(w: &mut World, phone: &str, device: u16) -> Option<PreKeyBundle> {
    if device == 0 {
        ensure_keys(w, phone);
    }
    let account = w.accounts.get_mut(phone)?;
    let keys = if device == 0 {
        account.phone_prekeys.as_mut()?
    } else {
        &mut account.devices.get_mut(&device)?.prekeys
    };
    let one_time = keys.one_time.pop_front();
    let key = |bytes: &[u8]| PublicKey::from_djb_public_key_bytes(bytes).ok();
    let pre_key = match one_time {
        Some((id, value)) => Some((id.into(), key(&value)?)),
        None => None,
    };
    PreKeyBundle::new(
        keys.registration_id,
        u32::from(device).into(),
        pre_key,
        keys.signed_id.into(),
        key(&keys.signed_pub)?,
        keys.signed_sig.clone(),
        IdentityKey::new(key(&keys.identity)?),
    )
    .ok()
}

/// Encrypts `plaintext` for one device, opening a session from its bundle
/// if there is none yet. Returns the `<enc>` type and the ciphertext.
async fn encrypt(
    server: &Server,
    signal: &mut PhoneSignal,
    phone: &str,
    device: u16,
    plaintext: &[u8],
) -> Result<(&'static str, Vec<u8>), String> {
    let addr = address(phone, device);
    let has_session = signal
        .sessions
        .0
        .get(&addr)
        .is_some_and(|r| r.session_state().is_some());
    if !has_session {
        let bundle = take_bundle(&mut server.world(), phone, device)
            .ok_or_else(|| format!("no usable prekey bundle for {phone}:{device}"))?;
        let mut rng: StdRng = rand::make_rng();
        process_prekey_bundle(
            &addr,
            &mut signal.sessions,
            &mut signal.identities,
            &bundle,
            &mut rng,
            UsePQRatchet::No,
        )
        .await
        .map_err(|e| format!("session with {phone}:{device}: {e}"))?;
    }
    let sealed = message_encrypt(
        plaintext,
        &addr,
        &mut signal.sessions,
        &mut signal.identities,
    )
    .await
    .map_err(|e| format!("encrypting for {phone}:{device}: {e}"))?;
    match sealed {
        CiphertextMessage::PreKeySignalMessage(m) => Ok(("pkmsg", m.serialized().to_vec())),
        CiphertextMessage::SignalMessage(m) => Ok(("msg", m.serialized().to_vec())),
        _ => Err("libsignal produced an unexpected message kind".into()),
    }
}

fn enc_node(kind: &str, ciphertext: Vec<u8>) -> Node {
    NodeBuilder::new("enc")
        .attr("v", "2")
        .attr("type", kind)
        .bytes(ciphertext)
        .build()
}

fn key_share(key: &AppStateKey) -> wa::Message {
    wa::Message {
        protocol_message: buffa::MessageField::some(wa::message::ProtocolMessage {
            r#type: Some(wa::message::protocol_message::Type::AppStateSyncKeyShare),
            app_state_sync_key_share: buffa::MessageField::some(
                wa::message::AppStateSyncKeyShare {
                    keys: vec![wa::message::AppStateSyncKey {
                        key_id: buffa::MessageField::some(wa::message::AppStateSyncKeyId {
                            key_id: Some(key.id.clone()),
                        }),
                        key_data: buffa::MessageField::some(wa::message::AppStateSyncKeyData {
                            key_data: Some(key.data.to_vec()),
                            fingerprint: buffa::MessageField::some(
                                wa::message::AppStateSyncKeyFingerprint {
                                    raw_id: Some(key.raw_id),
                                    current_index: Some(0),
                                    device_indexes: vec![0],
                                },
                            ),
                            timestamp: Some(key.timestamp_ms),
                        }),
                    }],
                },
            ),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Sends the app-state key to a companion as a peer message: from the
/// account's device 0, which is what the client requires of a key share.
pub(super) async fn share_key(server: &Server, phone: &str, signal: &mut PhoneSignal, device: u16) {
    let message = key_share(&signal.app_state_key);
    if let Err(e) = send_peer(server, phone, signal, device, &message, new_message_id()).await {
        tracing::warn!(%phone, device, error = %e, "app-state key share not sent");
    }
}

/// Sends `message` to one of the phone's own companions as a peer
/// (protocol) message from device 0, under `id`.
async fn send_peer(
    server: &Server,
    phone: &str,
    signal: &mut PhoneSignal,
    device: u16,
    message: &wa::Message,
    id: String,
) -> Result<(), String> {
    let plaintext = MessageUtils::encode_and_pad(message);
    let (kind, ciphertext) = encrypt(server, signal, phone, device, &plaintext).await?;
    let node = NodeBuilder::new("message")
        .attr("from", device_jid(phone, 0))
        .attr("id", id)
        .attr("t", stanza::now_secs().to_string())
        .attr("type", "protocol")
        .attr("category", "peer")
        .children([enc_node(kind, ciphertext)])
        .build();
    relay::deliver(&mut server.world(), phone, device, node);
    Ok(())
}

/// Sends the phone's existing chats to a companion that just linked, as
/// history-sync chunks (`crate::history`); nothing when the phone has
/// none. Each chunk is recorded, to be matched with its receipt.
pub(super) async fn send_history(
    server: &Server,
    phone: &str,
    signal: &mut PhoneSignal,
    device: u16,
) {
    let chunks = {
        let w = server.world();
        let Some(account) = w.accounts.get(phone) else {
            return;
        };
        if account.history.chats.is_empty() && account.history.push_names.is_empty() {
            return;
        }
        let full_sync = account.devices.get(&device).is_some_and(|d| d.full_sync);
        let own = own(&w, account);
        crate::history::plan(&account.history, &own, full_sync, stanza::now_secs())
    };
    for chunk in chunks {
        if !send_chunk(server, phone, signal, device, &chunk, None).await {
            return;
        }
    }
}

/// Answers a companion's on-demand history request (a peer data operation
/// request, message `request`) with an `ON_DEMAND` chunk.
pub(super) async fn send_on_demand(
    server: &Server,
    phone: &str,
    signal: &mut PhoneSignal,
    device: u16,
    request: &str,
    on_demand: &crate::history::OnDemand,
) {
    let chunk = {
        let w = server.world();
        let Some(account) = w.accounts.get(phone) else {
            return;
        };
        let own = own(&w, account);
        crate::history::on_demand(&account.history, &own, on_demand)
    };
    send_chunk(server, phone, signal, device, &chunk, Some(request)).await;
}

fn own(w: &World, account: &Account) -> crate::history::Own {
    crate::history::Own {
        jid: account.jid(),
        mappings: w
            .accounts
            .values()
            .map(|a| (a.jid(), a.lid_jid()))
            .collect(),
    }
}

/// Builds, records and sends one history chunk; `false` when it could not.
async fn send_chunk(
    server: &Server,
    phone: &str,
    signal: &mut PhoneSignal,
    device: u16,
    chunk: &crate::history::Chunk,
    request: Option<&str>,
) -> bool {
    let built = crate::history::notification(&mut server.world(), chunk, request);
    let (message, uploaded) = match built {
        Ok(built) => built,
        Err(e) => {
            tracing::warn!(%phone, device, error = %e, "history chunk not built");
            return false;
        }
    };
    let id = new_message_id();
    {
        let mut w = server.world();
        if let Some(account) = w.accounts.get_mut(phone) {
            account.history_sent.push(crate::history::SentChunk {
                device,
                id: id.clone(),
                sync_type: crate::history::type_name(chunk.sync_type).to_owned(),
                chunk_order: chunk.chunk_order,
                progress: chunk.progress,
                messages: chunk.messages,
                uploaded,
                acknowledged: false,
            });
        }
    }
    if let Err(e) = send_peer(server, phone, signal, device, &message, id).await {
        tracing::warn!(%phone, device, error = %e, "history chunk not sent");
        return false;
    }
    true
}

fn stanza_type(message: &wa::Message) -> &'static str {
    let media = message.image_message.is_set()
        || message.video_message.is_set()
        || message.audio_message.is_set()
        || message.document_message.is_set()
        || message.sticker_message.is_set();
    if media { "media" } else { "text" }
}

/// Sends `message` from the phone to every device of `to`, and a copy to
/// the phone's own companions. Returns the message id.
pub(super) async fn send_message(
    server: &Server,
    phone: &str,
    signal: &mut PhoneSignal,
    to: &str,
    message: &wa::Message,
    id: Option<String>,
) -> String {
    let out = Outgoing {
        id: id.unwrap_or_else(new_message_id),
        to: to.to_owned(),
        message: message.clone(),
        t: stanza::now_secs(),
    };
    let targets: Vec<(String, u16)> = {
        let mut w = server.world();
        w.sent_by.insert(out.id.clone(), (phone.to_owned(), 0));
        let devices = |p: &str| -> Vec<(String, u16)> {
            w.accounts
                .get(p)
                .map(|a| a.devices.keys().map(|d| (p.to_owned(), *d)).collect())
                .unwrap_or_default()
        };
        let mut targets = Vec::new();
        if to != phone {
            targets.push((to.to_owned(), 0));
            targets.extend(devices(to));
        }
        // The phone's own companions get their copy; for "message yourself"
        // that copy is all there is.
        targets.extend(devices(phone));
        targets
    };
    for (target, device) in targets {
        send_copy(server, phone, signal, &out, &target, device).await;
    }
    let id = out.id.clone();
    if signal.sent.len() >= RESENDABLE {
        signal.sent.pop_front();
    }
    signal.sent.push_back(out);
    id
}

/// Sends `message` to a group as WhatsApp does: encrypted once with the
/// phone's sender key for the group (`skmsg`), and with the sender key
/// itself (a `SenderKeyDistributionMessage`) encrypted pairwise for each
/// member's device (`pkmsg`/`msg`), both in each device's copy. The copies
/// go to the members' linked devices (the phone's own included); the
/// simulated phones themselves do not read group messages. Returns the
/// message id.
pub(super) async fn send_group_message(
    server: &Server,
    phone: &str,
    signal: &mut PhoneSignal,
    group: &str,
    message: &wa::Message,
) -> Result<String, SimError> {
    use wacore_libsignal::protocol::{
        SenderKeyName, create_sender_key_distribution_message, group_encrypt,
    };
    let id = new_message_id();
    let t = stanza::now_secs();
    let (targets, push_name) = {
        let mut w = server.world();
        w.sent_by.insert(id.clone(), (phone.to_owned(), 0));
        let members = w
            .groups
            .get(group)
            .map(|g| g.participants.clone())
            .unwrap_or_default();
        let targets: Vec<(String, u16)> = members
            .iter()
            .filter_map(|m| w.accounts.get(m))
            .flat_map(|a| a.devices.keys().map(|d| (a.phone.clone(), *d)))
            .collect();
        let push_name = w
            .accounts
            .get(phone)
            .map(|a| a.push_name.clone())
            .unwrap_or_default();
        (targets, push_name)
    };
    let name = SenderKeyName::new(group.to_owned(), address(phone, 0).to_string());
    let internal = |e: wacore_libsignal::protocol::SignalProtocolError| {
        SimError::Internal(format!("group encryption: {e}"))
    };
    let mut rng: StdRng = rand::make_rng();
    let distribution =
        create_sender_key_distribution_message(&name, &mut signal.sender_keys, &mut rng)
            .await
            .map_err(internal)?;
    let sealed = group_encrypt(
        &mut signal.sender_keys,
        &name,
        &MessageUtils::encode_and_pad(message),
        &mut rng,
    )
    .await
    .map_err(internal)?;
    let key_share = MessageUtils::encode_and_pad(&wa::Message {
        sender_key_distribution_message: buffa::MessageField::some(
            wa::message::SenderKeyDistributionMessage {
                group_id: Some(group.to_owned()),
                axolotl_sender_key_distribution_message: Some(distribution.serialized().to_vec()),
            },
        ),
        ..Default::default()
    });
    for (target, device) in targets {
        let (enc, ciphertext) = match encrypt(server, signal, &target, device, &key_share).await {
            Ok(sealed) => sealed,
            Err(e) => {
                tracing::warn!(%phone, %target, device, error = %e, "group message not sent");
                continue;
            }
        };
        let mut b = NodeBuilder::new("message")
            .attr("from", group)
            .attr("participant", device_jid(phone, 0))
            .attr("id", id.as_str())
            .attr("t", t.to_string())
            .attr("type", stanza_type(message));
        if !push_name.is_empty() {
            b = b.attr("notify", push_name.as_str());
        }
        let node = b
            .children([
                enc_node(enc, ciphertext),
                enc_node("skmsg", sealed.serialized().to_vec()),
            ])
            .build();
        relay::deliver(&mut server.world(), &target, device, node);
    }
    Ok(id)
}

/// Encrypts and delivers one device's copy of `out`: the message itself
/// for the recipient's devices, a device-sent wrapper for the phone's own.
async fn send_copy(
    server: &Server,
    phone: &str,
    signal: &mut PhoneSignal,
    out: &Outgoing,
    target: &str,
    device: u16,
) {
    let (chat, lid, push_name) = {
        let w = server.world();
        let chat = w
            .accounts
            .get(&out.to)
            .map(|a| a.jid())
            .unwrap_or_else(|| device_jid(&out.to, 0));
        let account = w.accounts.get(phone);
        let lid = account.map(|a| a.lid_jid()).unwrap_or_default();
        let push_name = account.map(|a| a.push_name.clone()).unwrap_or_default();
        (chat, lid, push_name)
    };
    let own = target == phone;
    let plain = if own {
        let copy = wacore::messages::wrap_device_sent(out.message.clone(), chat.clone());
        MessageUtils::encode_and_pad(&copy)
    } else {
        MessageUtils::encode_and_pad(&out.message)
    };
    let (enc, ciphertext) = match encrypt(server, signal, target, device, &plain).await {
        Ok(sealed) => sealed,
        Err(e) => {
            tracing::warn!(%phone, %target, device, error = %e, "phone message not sent");
            return;
        }
    };
    let mut b = NodeBuilder::new("message")
        .attr("from", device_jid(phone, 0))
        .attr("id", out.id.as_str())
        .attr("t", out.t.to_string())
        .attr("type", stanza_type(&out.message));
    if own {
        b = b.attr("recipient", chat);
    } else {
        b = b.attr("sender_lid", lid);
        if !push_name.is_empty() {
            b = b.attr("notify", push_name);
        }
    }
    let node = b.children([enc_node(enc, ciphertext)]).build();
    relay::deliver(&mut server.world(), target, device, node);
}

/// A device could not decrypt a message the phone sent: start a fresh
/// session with it from its current bundle and send that message again.
pub(super) async fn on_retry(
    server: &Server,
    phone: &str,
    signal: &mut PhoneSignal,
    receipt: &Node,
) {
    let (Some(id), Some(from)) = (attr(receipt, "id"), attr(receipt, "from")) else {
        return;
    };
    let Some(addr) = parse_jid(&from) else {
        return;
    };
    let Some(target) = phone_of(&server.world(), &addr) else {
        return;
    };
    let Some(index) = signal.sent.iter().position(|o| o.id == id) else {
        tracing::debug!(%phone, %id, "retry for a message the phone no longer has");
        return;
    };
    // Taken out and put back so the resend can borrow the phone mutably.
    let Some(out) = signal.sent.remove(index) else {
        return;
    };
    signal.sessions.0.remove(&address(&target, addr.device));
    send_copy(server, phone, signal, &out, &target, addr.device).await;
    signal.sent.insert(index, out);
}

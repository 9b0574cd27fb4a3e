//! The fake phones: each account's primary device (device 0), with real
//! Signal state so that companions and other accounts talk to it end to end.
//!
//! The world is a std mutex and the Signal stores are async, so the phones
//! live in one actor task that owns every phone's Signal state. The sync
//! side (relay, prekeys, the handle) only sends it [`Command`]s; the actor
//! takes the world's lock briefly to read bundles and to deliver stanzas,
//! never across an await. One actor for all phones also keeps every
//! phone's messages in the order they were routed, which Signal needs.

pub mod content;
mod inbox;
mod receipts;
mod store;

pub use inbox::{Inbox, PhoneChatState, PhoneMessage, PhoneReceipt};
pub use receipts::{Reading, play, read};

use std::collections::{HashMap, VecDeque};
use std::sync::Weak;

use rand::rngs::StdRng;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use wacore::messages::MessageUtils;
use wacore_binary::Node;
use wacore_binary::builder::NodeBuilder;
use wacore_libsignal::protocol::{
    CiphertextMessage, GenericSignedPreKey, IdentityKey, IdentityKeyPair, KeyPair, PreKeyBundle,
    PreKeyRecord, PreKeySignalMessage, ProtocolAddress, PublicKey, SignalMessage,
    SignedPreKeyRecord, Timestamp, UsePQRatchet, message_decrypt, message_encrypt,
    process_prekey_bundle,
};
use waproto::whatsapp as wa;

use sha2::{Digest, Sha256};

use crate::error::SimError;
use crate::media_crypto;
use crate::relay::{self, device_jid, parse_jid, phone_of};
use crate::server::Server;
use crate::stanza::{self, attr, children};
use crate::world::{PreKeys, World};

/// One-time prekeys each phone publishes. Every session a new peer device
/// opens with the phone uses one up; past that, bundles go out without one,
/// which Signal allows.
const ONE_TIME_PREKEYS: u32 = 100;

/// What the actor is asked to do.
pub enum Command {
    /// Take over a phone's freshly generated Signal state.
    Install {
        phone: String,
        signal: Box<PhoneSignal>,
    },
    /// A stanza the server routed to the phone.
    Receive { phone: String, node: Node },
    /// Send the phone's app-state sync key to one of its companions.
    ShareAppStateKey { phone: String, device: u16 },
    /// Send a message as the phone.
    Send {
        phone: String,
        to: String,
        message: Box<wa::Message>,
        /// Send under this id (a resend) instead of a fresh one.
        id: Option<String>,
        reply: oneshot::Sender<Result<String, SimError>>,
    },
    /// Send a message to a group as the phone.
    SendGroup {
        phone: String,
        group: String,
        message: Box<wa::Message>,
        reply: oneshot::Sender<Result<String, SimError>>,
    },
}

/// The app-state sync key a phone shares with its companions. Nothing is
/// ever encrypted with it (the simulator's app state is empty); the share
/// itself is what lets a fresh companion finish logging in without waiting.
struct AppStateKey {
    id: Vec<u8>,
    data: [u8; 32],
    raw_id: u32,
    timestamp_ms: i64,
}

/// A phone's private Signal state.
pub struct PhoneSignal {
    identities: store::Identities,
    sessions: store::Sessions,
    prekeys: store::PreKeys,
    signed: store::SignedPreKeys,
    sender_keys: store::SenderKeys,
    app_state_key: AppStateKey,
    /// What the phone sent lately, for resending on a retry receipt.
    sent: VecDeque<Outgoing>,
}

/// A message the phone sent, kept to re-encrypt it for a device that could
/// not decrypt it.
struct Outgoing {
    id: String,
    /// The recipient account's phone number.
    to: String,
    message: wa::Message,
    t: u64,
}

/// How many sent messages a phone remembers for retries.
const RESENDABLE: usize = 256;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl PhoneSignal {
    /// Fresh keys around the account's identity, which must stay the
    /// phone's Signal identity: it already signed the companions' ADV
    /// identities, and companions check one against the other.
    fn generate(identity: &KeyPair, raw_id: u32) -> Option<(Self, PreKeys)> {
        let mut rng = rand::rng();
        let registration_id = rand::random::<u32>() & 0x3FFF;
        let signed_pair = KeyPair::generate(&mut rng);
        let signature = identity
            .private_key
            .calculate_signature(&signed_pair.public_key.serialize(), &mut rng)
            .map_err(|e| tracing::error!(error = %e, "signing the phone's signed prekey failed"))
            .ok()?;
        let signed_id = 1u32;
        let signed_record = SignedPreKeyRecord::new(
            signed_id.into(),
            Timestamp::from_epoch_millis(now_ms()),
            &signed_pair,
            &signature,
        );
        let mut prekeys = store::PreKeys::default();
        let mut one_time = VecDeque::new();
        for id in 1..=ONE_TIME_PREKEYS {
            let pair = KeyPair::generate(&mut rng);
            one_time.push_back((id, pair.public_key.public_key_bytes().to_vec()));
            prekeys
                .0
                .insert(id.into(), PreKeyRecord::new(id.into(), &pair));
        }
        let mut signed = store::SignedPreKeys::default();
        signed.0.insert(signed_id.into(), signed_record);
        let public = PreKeys {
            registration_id,
            identity: identity.public_key.public_key_bytes().to_vec(),
            signed_id,
            signed_pub: signed_pair.public_key.public_key_bytes().to_vec(),
            signed_sig: signature.to_vec(),
            one_time,
        };
        let mut key_id = vec![0u8; 2];
        key_id.extend(rand::random::<[u8; 4]>());
        let signal = Self {
            identities: store::Identities {
                own: IdentityKeyPair::from(identity.clone()),
                registration_id,
                known: HashMap::new(),
            },
            sessions: Default::default(),
            prekeys,
            signed,
            sender_keys: Default::default(),
            app_state_key: AppStateKey {
                id: key_id,
                data: rand::random(),
                raw_id,
                timestamp_ms: now_ms() as i64,
            },
            sent: VecDeque::new(),
        };
        Some((signal, public))
    }
}

// ---- the sync side, called with the world locked ----

/// Gives the phone its Signal keys the first time they are needed, and
/// publishes its bundle. False if the phone cannot take part in Signal
/// (no such account, or no actor running).
pub fn ensure_keys(w: &mut World, phone: &str) -> bool {
    let Some(tx) = w.phone_tx.clone() else {
        return false;
    };
    let Some(account) = w.accounts.get_mut(phone) else {
        return false;
    };
    if account.phone_prekeys.is_some() {
        return true;
    }
    let Some((signal, public)) = PhoneSignal::generate(&account.identity, account.raw_id) else {
        return false;
    };
    account.phone_prekeys = Some(public);
    tx.send(Command::Install {
        phone: phone.to_owned(),
        signal: Box::new(signal),
    })
    .is_ok()
}

fn command(w: &mut World, phone: &str, cmd: Command) -> bool {
    if !ensure_keys(w, phone) {
        return false;
    }
    w.phone_tx.as_ref().is_some_and(|tx| tx.send(cmd).is_ok())
}

/// Hands `cmd` to the phone; its answer comes on `answer`.
fn ask(
    w: &mut World,
    phone: &str,
    cmd: Command,
    answer: oneshot::Receiver<Result<String, SimError>>,
) -> Result<oneshot::Receiver<Result<String, SimError>>, SimError> {
    if command(w, phone, cmd) {
        Ok(answer)
    } else {
        Err(SimError::Invalid(
            "this phone has no Signal state (is the simulator running?)".into(),
        ))
    }
}

/// A stanza addressed to the phone itself.
pub fn receive(w: &mut World, phone: &str, node: Node) {
    let cmd = Command::Receive {
        phone: phone.to_owned(),
        node,
    };
    if !command(w, phone, cmd) {
        tracing::debug!(%phone, "dropping a stanza for a phone without Signal state");
    }
}

/// A companion that just published its prekeys gets the app-state key, as a
/// real phone sends it right after linking. Once per companion.
pub fn share_app_state_key(w: &mut World, phone: &str, device: u16) {
    if w.key_shared.insert((phone.to_owned(), device)) {
        let cmd = Command::ShareAppStateKey {
            phone: phone.to_owned(),
            device,
        };
        command(w, phone, cmd);
    }
}

/// Asks the phone to send `message` to `to` (an existing account); the
/// message id arrives on the returned channel once it is on its way to every
/// device.
pub fn send(
    w: &mut World,
    phone: &str,
    to: &str,
    message: wa::Message,
) -> Result<oneshot::Receiver<Result<String, SimError>>, SimError> {
    send_as(w, phone, to, message, None)
}

/// Like [`send`], under a chosen message id: what a phone does when it
/// sends a message again (after a retry receipt, or an ack it never got).
pub fn send_as(
    w: &mut World,
    phone: &str,
    to: &str,
    message: wa::Message,
    id: Option<String>,
) -> Result<oneshot::Receiver<Result<String, SimError>>, SimError> {
    // Any number can have a phone: using one creates its account.
    w.account_mut(phone);
    let to = resolve_recipient(w, to)
        .ok_or_else(|| SimError::Invalid(format!("no account has the number or JID {to:?}")))?;
    let (reply, answer) = oneshot::channel();
    let cmd = Command::Send {
        phone: phone.to_owned(),
        to,
        message: Box::new(message),
        id,
        reply,
    };
    ask(w, phone, cmd, answer)
}

/// Asks the phone to send `message` to the group `group` (a JID), of which
/// it must be a member; the message id arrives on the returned channel.
pub fn send_group(
    w: &mut World,
    phone: &str,
    group: &str,
    message: wa::Message,
) -> Result<oneshot::Receiver<Result<String, SimError>>, SimError> {
    let members = &w
        .groups
        .get(group)
        .ok_or_else(|| SimError::Invalid(format!("no group {group:?}")))?
        .participants;
    if !members.iter().any(|m| m == phone) {
        return Err(SimError::Invalid(format!("{phone} is not in {group}")));
    }
    let (reply, answer) = oneshot::channel();
    let cmd = Command::SendGroup {
        phone: phone.to_owned(),
        group: group.to_owned(),
        message: Box::new(message),
        reply,
    };
    ask(w, phone, cmd, answer)
}

/// `+1 555 000`, `1555000`, `1555000@s.whatsapp.net` or `<lid>@lid` -> the
/// account's phone number.
fn resolve_recipient(w: &World, to: &str) -> Option<String> {
    let to = to.trim();
    let jid = if to.contains('@') {
        to.to_owned()
    } else {
        let digits: String = to.chars().filter(char::is_ascii_digit).collect();
        format!("{digits}@s.whatsapp.net")
    };
    phone_of(w, &parse_jid(&jid)?)
}

/// The phone's user ticks `options` on the poll `poll_id` in its inbox:
/// as WhatsApp's apps do, the vote names each option by the SHA-256 of its
/// text, is encrypted with a key derived from the poll's secret (which
/// only those the poll was sent to have), the poll's id, its creator and
/// the voter, and goes to the poll's chat as a poll update. Ticking
/// nothing takes the vote back. Returns the chat to send it to and the
/// message.
pub fn vote(
    w: &World,
    phone: &str,
    poll_id: &str,
    options: &[&str],
) -> Result<(String, wa::Message), SimError> {
    let account = w.accounts.get(phone).ok_or(SimError::NoSuchPhone)?;
    let poll = account
        .phone_inbox
        .find(poll_id)
        .filter(|m| !m.from_me)
        .ok_or(SimError::NoSuchMessage)?;
    if poll.kind != "poll" {
        return Err(SimError::Invalid(format!(
            "message {poll_id} is not a poll"
        )));
    }
    let secret = account
        .phone_inbox
        .secret_of(&poll.chat, &poll.sender, poll_id)
        .ok_or_else(|| SimError::Invalid(format!("poll {poll_id} came without its secret")))?;
    let chosen: Vec<Vec<u8>> = options
        .iter()
        .map(|name| wacore::poll::compute_option_hash(name).to_vec())
        .collect();
    let voter = format!("{phone}@s.whatsapp.net");
    let (enc_payload, enc_iv) = wacore::poll::encrypt_poll_vote_with_secret(
        &chosen,
        &secret,
        poll_id,
        &poll.sender,
        &voter,
    )
    .map_err(|e| SimError::Internal(format!("encrypting a vote: {e}")))?;
    let update = wa::message::PollUpdateMessage {
        poll_creation_message_key: buffa::MessageField::some(wa::MessageKey {
            remote_jid: Some(poll.chat.clone()),
            from_me: Some(false),
            id: Some(poll_id.to_owned()),
            participant: None,
        }),
        vote: buffa::MessageField::some(wa::message::PollEncValue {
            enc_payload: Some(enc_payload),
            enc_iv: Some(enc_iv.to_vec()),
        }),
        sender_timestamp_ms: i64::try_from(stanza::now_secs() * 1000).ok(),
        ..Default::default()
    };
    let message = wa::Message {
        poll_update_message: buffa::MessageField::some(update),
        ..Default::default()
    };
    Ok((poll.chat.clone(), message))
}

/// The phone's messages, oldest first.
pub fn messages(w: &World, phone: &str) -> Option<Vec<PhoneMessage>> {
    w.accounts
        .get(phone)
        .map(|a| a.phone_inbox.messages().to_vec())
}

// ---- the actor ----

/// Runs every phone until the simulator stops.
pub async fn run(
    server: Weak<Server>,
    mut rx: mpsc::UnboundedReceiver<Command>,
    stop: CancellationToken,
) {
    let mut phones: HashMap<String, PhoneSignal> = HashMap::new();
    loop {
        let cmd = tokio::select! {
            _ = stop.cancelled() => return,
            cmd = rx.recv() => match cmd {
                Some(cmd) => cmd,
                None => return,
            },
        };
        let Some(server) = server.upgrade() else {
            return;
        };
        match cmd {
            Command::Install { phone, signal } => {
                phones.insert(phone, *signal);
            }
            Command::Receive { phone, node } => {
                if let Some(signal) = phones.get_mut(&phone) {
                    on_stanza(&server, &phone, signal, node).await;
                }
            }
            Command::ShareAppStateKey { phone, device } => {
                if let Some(signal) = phones.get_mut(&phone) {
                    share_key(&server, &phone, signal, device).await;
                }
            }
            Command::Send {
                phone,
                to,
                message,
                id,
                reply,
            } => {
                let result = match phones.get_mut(&phone) {
                    Some(signal) => {
                        Ok(send_message(&server, &phone, signal, &to, &message, id).await)
                    }
                    None => Err(SimError::NoSuchPhone),
                };
                let _ = reply.send(result);
            }
            Command::SendGroup {
                phone,
                group,
                message,
                reply,
            } => {
                let result = match phones.get_mut(&phone) {
                    Some(signal) => {
                        send_group_message(&server, &phone, signal, &group, &message).await
                    }
                    None => Err(SimError::NoSuchPhone),
                };
                let _ = reply.send(result);
            }
        }
    }
}

fn address(phone: &str, device: u16) -> ProtocolAddress {
    ProtocolAddress::new(phone, u32::from(device).into())
}

fn new_message_id() -> String {
    format!("3EB0{}", hex::encode_upper(rand::random::<[u8; 10]>()))
}

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
async fn share_key(server: &Server, phone: &str, signal: &mut PhoneSignal, device: u16) {
    let plaintext = MessageUtils::encode_and_pad(&key_share(&signal.app_state_key));
    let (kind, ciphertext) = match encrypt(server, signal, phone, device, &plaintext).await {
        Ok(sealed) => sealed,
        Err(e) => {
            tracing::warn!(%phone, device, error = %e, "app-state key share not sent");
            return;
        }
    };
    let node = NodeBuilder::new("message")
        .attr("from", device_jid(phone, 0))
        .attr("id", new_message_id())
        .attr("t", stanza::now_secs().to_string())
        .attr("type", "protocol")
        .attr("category", "peer")
        .children([enc_node(kind, ciphertext)])
        .build();
    relay::deliver(&mut server.world(), phone, device, node);
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
async fn send_message(
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
async fn send_group_message(
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
async fn on_retry(server: &Server, phone: &str, signal: &mut PhoneSignal, receipt: &Node) {
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

async fn on_stanza(server: &Server, phone: &str, signal: &mut PhoneSignal, node: Node) {
    match node.tag.as_ref() {
        "message" => on_message(server, phone, signal, node).await,
        "receipt" if attr(&node, "type").as_deref() == Some("retry") => {
            on_retry(server, phone, signal, &node).await;
        }
        "receipt" => on_receipt(server, phone, &node),
        "chatstate" => on_chat_state(server, phone, &node),
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
    let from = attr(&node, "from").unwrap_or_default();
    let Some(sender) = parse_jid(&from) else {
        return;
    };
    let Some(sender_phone) = phone_of(&server.world(), &sender) else {
        return;
    };
    let from_me = sender_phone == phone;
    for enc in children(&node).iter().filter(|c| c.tag == "enc") {
        let Some(message) = decrypt(signal, &sender_phone, sender.device, enc).await else {
            continue;
        };
        let chat = if from_me {
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
        // As a client sends it: to the sending device; the server routes it
        // like any other delivery receipt.
        let receipt = NodeBuilder::new("receipt")
            .attr("to", device_jid(&sender_phone, sender.device))
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
        // Group sender-key messages: the simulator routes no groups.
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

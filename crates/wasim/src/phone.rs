//! The fake phones: each account's primary device (device 0), with real
//! Signal state so that companions and other accounts talk to it end to end.
//!
//! The world is a std mutex and the Signal stores are async, so the phones
//! live in one actor task that owns every phone's Signal state. The sync
//! side (relay, prekeys, the handle) only sends it [`Command`]s; the actor
//! takes the world's lock briefly to read bundles and to deliver stanzas,
//! never across an await. One actor for all phones also keeps every
//! phone's messages in the order they were routed, which Signal needs.

mod app_state;
pub(crate) mod content;
pub(crate) mod inbox;
mod incoming;
mod outgoing;
mod receipts;
mod store;

pub use app_state::{ChatAction, PhoneChat};
pub(crate) use inbox::{Inbox, PhoneChatState, PhoneMessage, PhoneReceipt};
pub(crate) use receipts::{Reading, play, read};

use incoming::on_stanza;
use outgoing::{send_group_message, send_history, send_message, share_key};

use std::collections::{HashMap, VecDeque};
use std::sync::Weak;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use wacore_binary::Node;
use wacore_libsignal::protocol::{
    GenericSignedPreKey, IdentityKeyPair, KeyPair, PreKeyRecord, ProtocolAddress,
    SignedPreKeyRecord, Timestamp,
};
use waproto::whatsapp as wa;

use crate::error::SimError;
use crate::relay::{parse_jid, phone_of};
use crate::server::Server;
use crate::stanza;
use crate::world::{PreKeys, World};

/// One-time prekeys each phone publishes. Every session a new peer device
/// opens with the phone uses one up; past that, bundles go out without one,
/// which Signal allows.
const ONE_TIME_PREKEYS: u32 = 100;

/// What the actor is asked to do.
pub(crate) enum Command {
    /// Take over a phone's freshly generated Signal state.
    Install {
        phone: String,
        signal: Box<PhoneSignal>,
    },
    /// A stanza the server routed to the phone.
    Receive { phone: String, node: Node },
    /// Send the phone's app-state sync key to one of its companions, then
    /// its history.
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
    /// The phone's user archives, pins, mutes or marks read a chat.
    ChatAction {
        phone: String,
        chat: String,
        action: ChatAction,
        reply: oneshot::Sender<Result<(), SimError>>,
    },
    /// Send a message to a group as the phone.
    SendGroup {
        phone: String,
        group: String,
        message: Box<wa::Message>,
        reply: oneshot::Sender<Result<String, SimError>>,
    },
}

/// The app-state sync key a phone shares with its companions: every
/// mutation of the account's app state is encrypted and MACed with keys
/// derived from it (see [`app_state`]).
struct AppStateKey {
    id: Vec<u8>,
    data: [u8; 32],
    raw_id: u32,
    timestamp_ms: i64,
}

/// A phone's private Signal state.
pub(crate) struct PhoneSignal {
    identities: store::Identities,
    sessions: store::Sessions,
    prekeys: store::PreKeys,
    signed: store::SignedPreKeys,
    sender_keys: store::SenderKeys,
    app_state_key: AppStateKey,
    /// The app-state collections as the phone last applied them.
    syncd: app_state::PhoneSyncd,
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
            syncd: Default::default(),
            sent: VecDeque::new(),
        };
        Some((signal, public))
    }
}

// ---- the sync side, called with the world locked ----

/// Gives the phone its Signal keys the first time they are needed, and
/// publishes its bundle. False if the phone cannot take part in Signal
/// (no such account, or no actor running).
pub(crate) fn ensure_keys(w: &mut World, phone: &str) -> bool {
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
pub(crate) fn receive(w: &mut World, phone: &str, node: Node) {
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
pub(crate) fn share_app_state_key(w: &mut World, phone: &str, device: u16) {
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
pub(crate) fn send(
    w: &mut World,
    phone: &str,
    to: &str,
    message: wa::Message,
) -> Result<oneshot::Receiver<Result<String, SimError>>, SimError> {
    send_as(w, phone, to, message, None)
}

/// Like [`send`], under a chosen message id: what a phone does when it
/// sends a message again (after a retry receipt, or an ack it never got).
pub(crate) fn send_as(
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
pub(crate) fn send_group(
    w: &mut World,
    phone: &str,
    group: &str,
    message: wa::Message,
) -> Result<oneshot::Receiver<Result<String, SimError>>, SimError> {
    let found = w
        .groups
        .get(group)
        .ok_or_else(|| SimError::Invalid(format!("no group {group:?}")))?;
    if !found.is_member(phone) {
        return Err(SimError::Invalid(format!("{phone} is not in {group}")));
    }
    // Announce mode: the server refuses a member who is not an admin.
    if found.announce && !found.is_admin(phone) {
        return Err(SimError::GroupRefused {
            code: 403,
            text: "forbidden",
        });
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
pub(crate) fn vote(
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

/// Asks the phone's user to do `action` to `chat` (a JID); done once the
/// patch is on the server and the companions were told.
pub(crate) fn chat_action(
    w: &mut World,
    phone: &str,
    chat: &str,
    action: ChatAction,
) -> Result<oneshot::Receiver<Result<(), SimError>>, SimError> {
    if !w.accounts.contains_key(phone) {
        return Err(SimError::NoSuchPhone);
    }
    let (reply, answer) = oneshot::channel();
    let cmd = Command::ChatAction {
        phone: phone.to_owned(),
        chat: chat.to_owned(),
        action,
        reply,
    };
    if command(w, phone, cmd) {
        Ok(answer)
    } else {
        Err(SimError::Invalid(
            "this phone has no Signal state (is the simulator running?)".into(),
        ))
    }
}

/// The phone's messages, oldest first.
pub(crate) fn messages(w: &World, phone: &str) -> Option<Vec<PhoneMessage>> {
    w.accounts
        .get(phone)
        .map(|a| a.phone_inbox.messages().to_vec())
}

// ---- the actor ----

/// Runs every phone until the simulator stops.
pub(crate) async fn run(
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
                    // Then the phone's existing chats, as a phone does
                    // right after a link.
                    send_history(&server, &phone, signal, device).await;
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
            Command::ChatAction {
                phone,
                chat,
                action,
                reply,
            } => {
                let result = match phones.get_mut(&phone) {
                    Some(signal) => app_state::act(&server, &phone, signal, &chat, action),
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

pub(crate) fn new_message_id() -> String {
    format!("3EB0{}", hex::encode_upper(rand::random::<[u8; 10]>()))
}

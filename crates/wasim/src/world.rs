//! What the simulated WhatsApp knows: accounts (one per phone number), their
//! linked devices, and the connections currently open.

use std::collections::{BTreeMap, HashMap, VecDeque};

use wacore_binary::Node;
use wacore_libsignal::protocol::KeyPair;

use crate::conn::OutboundTx;

pub(crate) type ConnId = u64;

/// A phone number's account. Its primary device (id 0) is the fake phone.
pub(crate) struct Account {
    pub phone: String,
    pub lid: String,
    pub push_name: String,
    /// The primary device's identity key: it signs every companion it links.
    pub identity: KeyPair,
    /// ADV raw id: stays fixed for the life of the account.
    pub raw_id: u32,
    pub devices: BTreeMap<u16, Device>,
    pub next_device_id: u16,
    /// A login with a temporary ban is refused with a 402.
    pub banned_for_secs: Option<u64>,
    /// The phone's own prekeys, once it has Signal keys (see [`crate::phone`]).
    pub phone_prekeys: Option<PreKeys>,
    /// What reached the phone: messages, receipts, chat states (see [`crate::phone`]).
    pub phone_inbox: crate::phone::Inbox,
    /// The account's app-state collections (see [`crate::syncd`]).
    pub app_state: crate::syncd::AppState,
    /// The phone's view of its chats' settings, from the app state.
    pub phone_chats: BTreeMap<String, crate::phone::PhoneChat>,
    /// The phone's existing chats, sent to each new companion (see
    /// [`crate::history`]).
    pub history: crate::history::HistorySeed,
    /// The history chunks the phone sent its companions, in order.
    pub history_sent: Vec<crate::history::SentChunk>,
    /// What the account shows others of itself (see [`crate::profile`]).
    pub profile: crate::profile::Profile,
    /// The JIDs the account blocked (as the blocklist IQ names them).
    pub blocked: std::collections::BTreeSet<String>,
}

impl Account {
    pub(crate) fn jid(&self) -> String {
        format!("{}@s.whatsapp.net", self.phone)
    }

    pub(crate) fn lid_jid(&self) -> String {
        format!("{}@lid", self.lid)
    }

    pub(crate) fn key_indexes(&self) -> Vec<u32> {
        self.devices.values().map(|d| d.key_index).collect()
    }
}

/// The public half of a Signal prekey bundle a device uploaded.
#[derive(Clone, Default)]
pub(crate) struct PreKeys {
    pub registration_id: u32,
    pub identity: Vec<u8>,
    pub signed_id: u32,
    pub signed_pub: Vec<u8>,
    pub signed_sig: Vec<u8>,
    pub one_time: VecDeque<(u32, Vec<u8>)>,
}

/// A linked companion device (device id >= 1).
pub(crate) struct Device {
    pub id: u16,
    pub key_index: u32,
    /// The Noise static key the device authenticates with.
    pub noise_pub: [u8; 32],
    pub prekeys: PreKeys,
    /// The signed device identity as the device returned it at pairing.
    pub signed_identity: Vec<u8>,
    pub platform: String,
    pub push_name: String,
    pub connection: Option<ConnId>,
    /// Connections of this device closed because a newer one logged in
    /// (`conflict type="replaced"`).
    pub replaced: u64,
    pub last_seen: u64,
    /// Stanzas waiting for the device to come online.
    pub offline: VecDeque<Node>,
    /// The last presence the device sent about itself (`available` or
    /// `unavailable`); `None` until it sends one.
    pub presence: Option<String>,
    /// The version of each app-state collection the device last fetched
    /// up to (see [`crate::syncd`]).
    pub app_state_synced: HashMap<&'static str, u64>,
    /// Its device properties asked for the full history at linking.
    pub full_sync: bool,
}

/// What a connection is, as far as the server knows.
pub(crate) enum Role {
    /// A new device showing QR codes (and maybe asking for a pairing code).
    Pairing(Box<PairingConn>),
    /// A linked device that logged in.
    Device { phone: String, device: u16 },
}

pub(crate) struct Conn {
    pub tx: OutboundTx,
    pub role: Option<Role>,
    /// The device left passive mode: stanzas for it go out live from now on
    /// instead of waiting for the offline flush.
    pub active: bool,
}

/// What an unregistered client told us about itself.
pub(crate) struct PairingConn {
    pub noise_pub: [u8; 32],
    pub prekeys: PreKeys,
    pub refs: Vec<String>,
    pub platform: String,
    /// Set while a pairing-code flow is running on this connection.
    pub code: Option<crate::pair_code::CodeFlow>,
    /// Its device properties ask for the full history (`requireFullSync`).
    pub full_sync: bool,
}

/// A pair-success we sent and whose signed answer we await.
pub(crate) struct PendingLink {
    pub conn: ConnId,
    pub phone: String,
    pub device: u16,
    pub key_index: u32,
}

#[derive(Default)]
pub(crate) struct World {
    pub conns: HashMap<ConnId, Conn>,
    pub accounts: HashMap<String, Account>,
    /// QR ref -> the connection that showed it.
    pub refs: HashMap<String, ConnId>,
    /// Refs a phone already scanned: scanning one again is refused.
    pub used_refs: std::collections::HashSet<String>,
    /// Server-initiated iq id -> link waiting for the client's signature.
    pub pending_links: HashMap<String, PendingLink>,
    /// Phone number -> the connection that asked for a pairing code for it.
    pub code_requests: HashMap<String, ConnId>,
    pub next_conn: ConnId,
    pub next_lid: u64,
    pub next_iq: u64,
    /// `host:port` of the media endpoint handed out in `media_conn`.
    pub media_host: String,
    /// The fake phones' Signal actor (see [`crate::phone`]); `None` until
    /// the simulator starts it.
    pub phone_tx: Option<tokio::sync::mpsc::UnboundedSender<crate::phone::Command>>,
    /// Woken whenever a phone's received messages change.
    pub phone_events: std::sync::Arc<tokio::sync::Notify>,
    /// Companions the phone already shared its app-state key with.
    pub key_shared: std::collections::HashSet<(String, u16)>,
    /// Message id -> the device that sent it, to route receipts addressed
    /// to a bare chat (read receipts) back to that device.
    pub sent_by: HashMap<String, (String, u16)>,
    /// Injected message refusals (see [`crate::faults::Nacks`]).
    pub nacks: crate::faults::Nacks,
    /// Uploaded media blobs by direct path.
    pub blobs: HashMap<String, bytes::Bytes>,
    /// Groups by JID (`<id>@g.us`).
    pub groups: HashMap<String, Group>,
    /// Groups ever made (their ids are numbered).
    pub groups_made: u64,
    /// Most members a group takes (WhatsApp: 1024).
    pub group_limit: usize,
    /// Accounts whose privacy settings refuse being added to a group by
    /// anyone (an add is answered with an invite instead).
    pub add_restricted: std::collections::HashSet<String>,
    /// Whether each phone (its user) is online now, and since when it was
    /// last seen (unix seconds); a phone not here was never online.
    pub phone_presence: HashMap<String, crate::presence::PhonePresence>,
    /// Who subscribed to each account's presence: the subscribing device
    /// and the connection it did it on (WhatsApp forgets a subscription
    /// with its connection).
    pub presence_subscribers: HashMap<String, std::collections::BTreeSet<(String, u16, ConnId)>>,
    /// Calls a phone placed, by call id: the caller and the number rung.
    pub calls: HashMap<String, (String, String)>,
    /// Profile pictures set so far: the next one's id follows.
    pub pictures_made: u64,
}

/// A group chat as WhatsApp's group server keeps it (see [`crate::groups`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct Group {
    /// Members by phone number, in the order they joined.
    pub participants: Vec<String>,
    /// Members who are admins; the creator is the super admin.
    pub admins: std::collections::BTreeSet<String>,
    pub creator: Option<String>,
    pub creation: u64,
    pub subject: String,
    pub subject_owner: Option<String>,
    pub subject_time: u64,
    pub description: Option<GroupDescription>,
    /// Only admins send.
    pub announce: bool,
    /// Only admins edit the group's info.
    pub locked: bool,
    /// Disappearing messages, seconds (0: off).
    pub ephemeral: u32,
    /// Admins approve who joins by link.
    pub approval: bool,
    /// Waiting for an admin's approval, oldest first.
    pub requests: Vec<JoinRequest>,
    /// The current invite code (the link's last part).
    pub invite: String,
    /// Members are named by LID in everything the server says about the
    /// group; `hide_phones` leaves their numbers out too.
    pub lid_addressed: bool,
    pub hide_phones: bool,
    pub picture: Option<GroupPicture>,
    /// Sender keys carried pairwise to members' devices beside a group
    /// message, over the group's life: a sender shares its key once.
    pub sender_key_shares: u64,
}

/// A group's picture as the server keeps it.
#[derive(Debug, Clone)]
pub(crate) struct GroupPicture {
    /// What notifications and answers name it by.
    pub id: String,
    pub jpeg: Vec<u8>,
}

/// Someone who asked to join an approval-mode group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JoinRequest {
    pub phone: String,
    /// When they asked, seconds.
    pub time: u64,
}

/// A group's description: its id is what an update names as `prev`.
#[derive(Debug, Clone)]
pub(crate) struct GroupDescription {
    pub id: String,
    pub body: String,
    pub owner: String,
    pub time: u64,
}

impl World {
    pub(crate) fn send(&self, conn: ConnId, node: Node) {
        if let Some(c) = self.conns.get(&conn) {
            let _ = c.tx.send(crate::conn::Outbound::Node(node));
        }
    }

    pub(crate) fn next_iq_id(&mut self) -> String {
        self.next_iq += 1;
        format!("sim-{}", self.next_iq)
    }

    /// The account for `phone`, created the first time a phone is used.
    pub(crate) fn account_mut(&mut self, phone: &str) -> &mut Account {
        let next_lid = &mut self.next_lid;
        self.accounts.entry(phone.to_owned()).or_insert_with(|| {
            *next_lid += 1;
            Account {
                phone: phone.to_owned(),
                lid: format!("{}", 200_000_000_000_000u64 + *next_lid),
                push_name: format!("Phone {phone}"),
                identity: KeyPair::generate(&mut rand::rng()),
                raw_id: rand::random::<u32>() >> 1,
                devices: BTreeMap::new(),
                next_device_id: 1,
                banned_for_secs: None,
                phone_prekeys: None,
                phone_inbox: Default::default(),
                app_state: Default::default(),
                phone_chats: BTreeMap::new(),
                history: Default::default(),
                history_sent: Vec::new(),
                profile: Default::default(),
                blocked: Default::default(),
            }
        })
    }
}

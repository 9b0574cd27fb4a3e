//! Routing between devices: device lists (usync), message fan-out with the
//! server ack, receipts back to senders, and the offline queue.

use buffa::Message;
use wacore_binary::Node;
use wacore_binary::builder::NodeBuilder;
use waproto::whatsapp as wa;

use crate::iq::device_of;
use crate::stanza::{self, attr, child, children, iq_result};
use crate::world::{Account, ConnId, PreKeys, World};

/// A device address parsed from a JID: `phone[:device]@s.whatsapp.net` or
/// `lid[:device]@lid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Addr {
    pub user: String,
    pub device: u16,
    pub is_lid: bool,
}

pub(crate) fn parse_jid(jid: &str) -> Option<Addr> {
    let (left, server) = jid.split_once('@')?;
    let is_lid = match server {
        "s.whatsapp.net" | "c.us" => false,
        "lid" => true,
        _ => return None,
    };
    let (user, device) = match left.split_once(':') {
        Some((u, d)) => (u, d.parse().ok()?),
        None => (left, 0),
    };
    // An agent suffix (`user.0:1`) is not used by the simulator's clients.
    let user = user.split('.').next().unwrap_or(user);
    Some(Addr {
        user: user.to_owned(),
        device,
        is_lid,
    })
}

/// The phone number of the account a (PN or LID) address belongs to.
pub(crate) fn phone_of(w: &World, addr: &Addr) -> Option<String> {
    if addr.is_lid {
        w.accounts
            .values()
            .find(|a| a.lid == addr.user)
            .map(|a| a.phone.clone())
    } else {
        w.accounts
            .contains_key(&addr.user)
            .then(|| addr.user.clone())
    }
}

/// The prekeys of the device a JID names, for a prekey fetch, with a
/// companion's signed device identity (the phone has none).
pub(crate) fn resolve_device_mut<'a>(
    w: &'a mut World,
    jid: &str,
) -> Option<(&'a mut PreKeys, Option<&'a [u8]>)> {
    let addr = parse_jid(jid)?;
    let phone = phone_of(w, &addr)?;
    if addr.device == 0 {
        crate::phone::ensure_keys(w, &phone);
    }
    let account = w.accounts.get_mut(&phone)?;
    if addr.device == 0 {
        return account.phone_prekeys.as_mut().map(|p| (p, None));
    }
    account.devices.get_mut(&addr.device).map(|d| {
        let identity = (!d.signed_identity.is_empty()).then_some(d.signed_identity.as_slice());
        (&mut d.prekeys, identity)
    })
}

/// Device lists, LIDs and registration for each user asked about. A user
/// is named by `jid`, or, in a registration check (`is_on_whatsapp`), by a
/// phone number in `<contact>+1555...</contact>`; the answer names the
/// user's JID either way. A number without an account is `type="out"`
/// and has nothing else to report.
pub(crate) fn usync(w: &mut World, id: &str, iq: &Node) -> Node {
    let Some(sync) = child(iq, "usync") else {
        return iq_result(id, vec![]);
    };
    let query = child(sync, "query");
    let wants = |tag: &str| query.is_some_and(|q| child(q, tag).is_some());
    let users = child(sync, "list").map(children).unwrap_or(&[]);
    let list = users
        .iter()
        .filter_map(|u| {
            let asked_number = child(u, "contact")
                .and_then(stanza::bytes)
                .map(|b| String::from_utf8_lossy(b).into_owned());
            let jid = attr(u, "jid").or_else(|| {
                let digits: String = asked_number
                    .as_deref()?
                    .chars()
                    .filter(char::is_ascii_digit)
                    .collect();
                (!digits.is_empty()).then(|| format!("{digits}@s.whatsapp.net"))
            })?;
            let addr = parse_jid(&jid)?;
            let account = phone_of(w, &addr).and_then(|p| w.accounts.get(&p));
            let contact = |kind: &str| {
                let b = NodeBuilder::new("contact").attr("type", kind);
                match &asked_number {
                    Some(number) => b.string_content(number.clone()).build(),
                    None => b.build(),
                }
            };
            let Some(account) = account else {
                // Device and key queries only ever name known users.
                if !wants("contact") {
                    return None;
                }
                return Some(
                    NodeBuilder::new("user")
                        .attr("jid", jid)
                        .children([contact("out")])
                        .build(),
                );
            };
            let mut parts = Vec::new();
            if wants("devices") {
                parts.push(device_list(account));
            }
            if wants("lid") {
                parts.push(
                    NodeBuilder::new("lid")
                        .attr("val", account.lid_jid())
                        .build(),
                );
            }
            if wants("contact") {
                parts.push(contact("in"));
            }
            if wants("status")
                && let Some(status) = crate::profile::status_node(&account.profile)
            {
                parts.push(status);
            }
            if wants("picture")
                && let Some(picture) = crate::profile::picture_node(&account.profile)
            {
                parts.push(picture);
            }
            Some(
                NodeBuilder::new("user")
                    .attr("jid", jid)
                    .children(parts)
                    .build(),
            )
        })
        .collect::<Vec<_>>();
    iq_result(
        id,
        vec![
            NodeBuilder::new("usync")
                .children([NodeBuilder::new("list").children(list).build()])
                .build(),
        ],
    )
}

fn device_list(account: &Account) -> Node {
    let mut devices = vec![NodeBuilder::new("device").attr("id", "0").build()];
    devices.extend(account.devices.values().map(|d| {
        NodeBuilder::new("device")
            .attr("id", d.id.to_string())
            .attr("key-index", d.key_index.to_string())
            .build()
    }));
    let indexes = account.key_indexes();
    let ts = stanza::now_secs();
    let key_index_list = wa::ADVSignedKeyIndexList {
        details: Some(
            wa::ADVKeyIndexList {
                raw_id: Some(account.raw_id),
                timestamp: Some(ts),
                current_index: Some(indexes.iter().copied().max().unwrap_or(0)),
                valid_indexes: indexes,
                account_type: None,
            }
            .encode_to_vec(),
        ),
        account_signature: None,
        ..Default::default()
    }
    .encode_to_vec();
    NodeBuilder::new("devices")
        .children([
            NodeBuilder::new("device-list").children(devices).build(),
            NodeBuilder::new("key-index-list")
                .attr("ts", ts.to_string())
                .bytes(key_index_list)
                .build(),
        ])
        .build()
}

/// A device's JID as the server writes it in `from`: device 0 bare.
pub(crate) fn device_jid(phone: &str, device: u16) -> String {
    if device == 0 {
        format!("{phone}@s.whatsapp.net")
    } else {
        format!("{phone}:{device}@s.whatsapp.net")
    }
}

/// After the client went active: everything queued for it, then the marker
/// that ends offline delivery (the client waits for it before sending).
/// From here on the connection gets its stanzas live.
pub(crate) fn flush_offline(w: &mut World, conn: ConnId) {
    let Some((phone, device)) = device_of(w, conn) else {
        return;
    };
    let Some(account) = w.accounts.get(&phone) else {
        return;
    };
    let Some(d) = account.devices.get(&device) else {
        return;
    };
    let mut queued: Vec<Node> = d.offline.iter().cloned().collect();
    // A client without a push name takes the slow initial-sync path at every
    // login; the account's name is what a real server would tell it.
    let push_name = (d.push_name.is_empty() && !account.push_name.is_empty())
        .then(|| account.push_name.clone());
    if let Some(name) = push_name {
        let id = w.next_iq_id();
        queued.push(
            stanza::server_notification(id, "account_sync")
                .attr("pushname", name)
                .build(),
        );
    }
    let count = queued.len();
    for mut node in queued {
        node.attrs.insert("offline", "1");
        w.send(conn, node);
    }
    w.send(
        conn,
        NodeBuilder::new("ib")
            .children([NodeBuilder::new("offline")
                .attr("count", count.to_string())
                .build()])
            .build(),
    );
    if let Some(c) = w.conns.get_mut(&conn) {
        c.active = true;
    }
}

/// Queues `node` for a device until it acknowledges it, and sends it now if
/// the device is online and past its offline flush (before that, the flush
/// will carry it; sending it twice would make the client decrypt it twice).
pub(crate) fn deliver(w: &mut World, phone: &str, device: u16, node: Node) {
    if device == 0 {
        crate::phone::receive(w, phone, node);
        return;
    }
    let Some(d) = w
        .accounts
        .get_mut(phone)
        .and_then(|a| a.devices.get_mut(&device))
    else {
        return;
    };
    d.offline.push_back(node.clone());
    let live = d
        .connection
        .filter(|c| w.conns.get(c).is_some_and(|c| c.active));
    if let Some(conn) = live {
        w.send(conn, node);
    }
}

/// Drops from a device's queue what it acknowledged. `tag` narrows it to
/// one kind of stanza: a message and the receipt for it share an id.
fn acknowledged(w: &mut World, conn: ConnId, tag: Option<&str>, ids: &[String]) {
    if let Some((phone, device)) = device_of(w, conn)
        && let Some(d) = w
            .accounts
            .get_mut(&phone)
            .and_then(|a| a.devices.get_mut(&device))
    {
        d.offline.retain(|n| {
            let matches =
                tag.is_none_or(|t| n.tag == t) && attr(n, "id").is_some_and(|id| ids.contains(&id));
            !matches
        });
    }
}

/// Bounds the message-id index: receipts for messages older than this many
/// sends fall back to their `to` attribute.
const SENT_INDEX_LIMIT: usize = 100_000;

/// Fans a `<message>` out to the devices named in its `<participants>`, and
/// acknowledges it to the sender.
pub(crate) fn on_message(w: &mut World, conn: ConnId, msg: &Node) {
    let Some((sender_phone, sender_device)) = device_of(w, conn) else {
        return;
    };
    let id = attr(msg, "id").unwrap_or_default();
    let to = attr(msg, "to").unwrap_or_default();
    let kind = attr(msg, "type").unwrap_or_else(|| "text".to_owned());
    let Some(sender) = w.accounts.get(&sender_phone) else {
        return;
    };
    let from = device_jid(&sender_phone, sender_device);
    let sender_lid = format!("{}:{sender_device}@lid", sender.lid);
    let push_name = sender
        .devices
        .get(&sender_device)
        .map(|d| d.push_name.clone())
        .unwrap_or_default();
    if to.ends_with("@g.us") {
        let now = stanza::now_secs().to_string();
        let mut ack = NodeBuilder::new("ack")
            .attr("class", "message")
            .attr("id", id.as_str())
            .attr("from", to.as_str())
            .attr("t", now);
        if let Err(why) = crate::groups::fan_out(w, (&sender_phone, sender_device), &to, msg) {
            ack = ack.attr("error", why.code().to_string());
        }
        w.send(conn, ack.build());
        return;
    }
    let identity = child(msg, "device-identity").cloned();
    let chat = parse_jid(&to).and_then(|a| phone_of(w, &a).map(|p| (a, p)));
    // An injected refusal: the server nacks instead of relaying, and nobody
    // gets a copy, the sender's own devices included.
    if let Some(code) = chat.as_ref().and_then(|(_, p)| w.nacks.take(p)) {
        w.send(
            conn,
            NodeBuilder::new("ack")
                .attr("class", "message")
                .attr("id", id)
                .attr("from", to)
                .attr("error", code.to_string())
                .build(),
        );
        return;
    }
    let mut targets: Vec<(String, u16, Node)> = child(msg, "participants")
        .map(children)
        .unwrap_or(&[])
        .iter()
        .filter(|t| t.tag == "to")
        .filter_map(|t| {
            let addr = parse_jid(&attr(t, "jid")?)?;
            let phone = phone_of(w, &addr)?;
            Some((phone, addr.device, child(t, "enc")?.clone()))
        })
        .collect();
    // A peer message (`category="peer"`: one of the account's devices to
    // another, such as a companion's request to its phone) is addressed to
    // the device itself, its `<enc>` a direct child.
    if targets.is_empty()
        && let Some(enc) = child(msg, "enc")
        && let Some((addr, phone)) = chat.as_ref()
        && *phone == sender_phone
    {
        targets.push((phone.clone(), addr.device, enc.clone()));
    }
    if w.sent_by.len() >= SENT_INDEX_LIMIT {
        w.sent_by.clear();
    }
    w.sent_by
        .insert(id.clone(), (sender_phone.clone(), sender_device));
    let now = stanza::now_secs().to_string();
    for (phone, device, enc) in targets {
        let mut b = NodeBuilder::new("message")
            .attr("from", from.as_str())
            .attr("id", id.as_str())
            .attr("t", now.as_str())
            .attr("type", kind.as_str());
        if phone == sender_phone {
            // The sender's own devices learn which chat it wrote to.
            let recipient = chat
                .as_ref()
                .map(|(_, p)| format!("{p}@s.whatsapp.net"))
                .unwrap_or_else(|| to.clone());
            b = b.attr("recipient", recipient);
        } else {
            b = b.attr("sender_lid", sender_lid.as_str());
            if !push_name.is_empty() {
                b = b.attr("notify", push_name.as_str());
            }
        }
        let mut content = vec![enc];
        content.extend(identity.clone());
        deliver(w, &phone, device, b.children(content).build());
    }
    w.send(
        conn,
        NodeBuilder::new("ack")
            .attr("class", "message")
            .attr("id", id)
            .attr("from", to)
            .attr("t", now)
            .build(),
    );
}

/// A device confirmed it got a stanza we delivered.
pub(crate) fn on_ack(w: &mut World, conn: ConnId, ack: &Node) {
    let Some(id) = attr(ack, "id") else {
        return;
    };
    let tag = match attr(ack, "class").as_deref() {
        Some("message") => Some("message"),
        Some("receipt") => Some("receipt"),
        Some("notification") => Some("notification"),
        _ => None,
    };
    acknowledged(w, conn, tag, &[id]);
}

/// A device acknowledged messages; tell their senders.
pub(crate) fn on_receipt(w: &mut World, conn: ConnId, receipt: &Node) {
    let Some((phone, device)) = device_of(w, conn) else {
        return;
    };
    let id = attr(receipt, "id").unwrap_or_default();
    let mut ids = vec![id.clone()];
    if let Some(list) = child(receipt, "list") {
        ids.extend(children(list).iter().filter_map(|i| attr(i, "id")));
    }
    acknowledged(w, conn, Some("message"), &ids);
    w.send(
        conn,
        NodeBuilder::new("ack")
            .attr("class", "receipt")
            .attr("id", id.as_str())
            .attr("from", device_jid(&phone, device))
            .build(),
    );
    // A device's receipt of a call offer goes to the caller, not the
    // message receipts' way.
    if child(receipt, "offer").is_some() {
        crate::calls::on_offer_receipt(w, &phone, device, receipt);
        return;
    }
    route_receipt(w, &phone, device, receipt);
}

/// Forwards a receipt a device (or a phone) sent to the devices of the
/// account whose message it is. A retry request goes to the one device
/// that must re-encrypt; delivery, read and played receipts go to every
/// device of the sender's account, so each of them shows the ticks.
pub(crate) fn route_receipt(w: &mut World, phone: &str, device: u16, receipt: &Node) {
    let id = attr(receipt, "id").unwrap_or_default();
    let kind = attr(receipt, "type");
    // What one device read or played, the reader's other devices learn, so
    // the chat shows as read everywhere: the same receipt from the reader,
    // naming the chat in `recipient`. The `-self` kinds (read receipts
    // turned off) go nowhere else.
    if matches!(
        kind.as_deref(),
        Some("read" | "played" | "read-self" | "played-self")
    ) {
        sync_to_own_devices(w, phone, device, receipt);
    }
    // A companion took a history chunk: the phone notes it.
    if kind.as_deref() == Some("hist_sync") {
        history_acknowledged(w, phone, device, &id);
        return;
    }
    // Receipts about our own devices' copies stay between them.
    if matches!(
        kind.as_deref(),
        Some("sender" | "peer_msg" | "read-self" | "played-self")
    ) {
        return;
    }
    // The sender is known by the message id; a read receipt names only the
    // chat, so `to` is the fallback for messages the index forgot.
    let target = w.sent_by.get(&id).cloned().or_else(|| {
        let addr = parse_jid(&attr(receipt, "to")?)?;
        Some((phone_of(w, &addr)?, addr.device))
    });
    let Some((target_phone, target_device)) = target else {
        return;
    };
    let mut b = NodeBuilder::new("receipt")
        .attr("from", device_jid(phone, device))
        .attr("id", id)
        .attr("t", stanza::now_secs().to_string());
    // "inactive" only says the reader's app was in the background: to the
    // sender it is a plain delivery.
    if let Some(k) = kind.clone().filter(|k| k != "inactive") {
        b = b.attr("type", k);
    }
    // Aggregates (`<list>`) and retry requests (`<retry>`, keys) go through.
    let extra = children(receipt).to_vec();
    if !extra.is_empty() {
        b = b.children(extra);
    }
    let node = b.build();
    let devices = if matches!(kind.as_deref(), Some("retry" | "enc_rekey_retry")) {
        vec![target_device]
    } else {
        account_devices(w, &target_phone)
    };
    for d in devices {
        // A reader on the sender's own account needs no receipt from itself.
        if target_phone == phone && d == device {
            continue;
        }
        deliver(w, &target_phone, d, node.clone());
    }
}

fn history_acknowledged(w: &mut World, phone: &str, device: u16, id: &str) {
    if let Some(account) = w.accounts.get_mut(phone) {
        for chunk in &mut account.history_sent {
            if chunk.id == id && chunk.device == device {
                chunk.acknowledged = true;
            }
        }
    }
    w.phone_events.notify_waiters();
}

fn sync_to_own_devices(w: &mut World, phone: &str, device: u16, receipt: &Node) {
    let Some(to) = attr(receipt, "to") else {
        return;
    };
    // The chat as a user JID, whatever device the reader addressed.
    let chat = parse_jid(&to)
        .and_then(|addr| phone_of(w, &addr))
        .map(|p| device_jid(&p, 0))
        .unwrap_or(to);
    let mut b = NodeBuilder::new("receipt")
        .attr("from", device_jid(phone, device))
        .attr("recipient", chat)
        .attr("id", attr(receipt, "id").unwrap_or_default())
        .attr("t", stanza::now_secs().to_string());
    if let Some(kind) = attr(receipt, "type") {
        b = b.attr("type", kind);
    }
    let extra = children(receipt).to_vec();
    if !extra.is_empty() {
        b = b.children(extra);
    }
    let node = b.build();
    for d in account_devices(w, phone) {
        if d != device {
            deliver(w, phone, d, node.clone());
        }
    }
}

/// Every device of an account: the phone (0), then its companions.
fn account_devices(w: &World, phone: &str) -> Vec<u16> {
    let mut devices = vec![0];
    if let Some(account) = w.accounts.get(phone) {
        devices.extend(account.devices.keys().copied());
    }
    devices
}

/// Typing indicators: forwarded live to every device of the chat's other
/// account, from the typing account's bare JID. Never queued: a stale
/// "typing" is worse than none.
pub(crate) fn on_chatstate(w: &mut World, conn: ConnId, node: &Node) {
    let Some((phone, _)) = device_of(w, conn) else {
        return;
    };
    let Some(to) = attr(node, "to")
        .and_then(|to| parse_jid(&to))
        .and_then(|addr| phone_of(w, &addr))
    else {
        return;
    };
    if to == phone {
        return;
    }
    let forwarded = NodeBuilder::new("chatstate")
        .attr("from", device_jid(&phone, 0))
        .children(children(node).to_vec())
        .build();
    for d in account_devices(w, &to) {
        send_live(w, &to, d, forwarded.clone());
    }
}

/// Sends `node` to a device only if it is online now; the phone always is.
fn send_live(w: &mut World, phone: &str, device: u16, node: Node) {
    if device == 0 {
        crate::phone::receive(w, phone, node);
        return;
    }
    let live = w
        .accounts
        .get(phone)
        .and_then(|a| a.devices.get(&device))
        .and_then(|d| d.connection)
        .filter(|c| w.conns.get(c).is_some_and(|c| c.active));
    if let Some(conn) = live {
        w.send(conn, node);
    }
}

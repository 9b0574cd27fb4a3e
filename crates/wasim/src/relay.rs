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
pub struct Addr {
    pub user: String,
    pub device: u16,
    pub is_lid: bool,
}

pub fn parse_jid(jid: &str) -> Option<Addr> {
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
pub fn phone_of(w: &World, addr: &Addr) -> Option<String> {
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

/// The prekeys of the device a JID names, for a prekey fetch.
pub fn resolve_device_mut<'a>(w: &'a mut World, jid: &str) -> Option<&'a mut PreKeys> {
    let addr = parse_jid(jid)?;
    let phone = phone_of(w, &addr)?;
    let account = w.accounts.get_mut(&phone)?;
    if addr.device == 0 {
        return account.phone_prekeys.as_mut();
    }
    account
        .devices
        .get_mut(&addr.device)
        .map(|d| &mut d.prekeys)
}

/// Device lists (and LIDs) for each user asked about.
pub fn usync(w: &mut World, id: &str, iq: &Node) -> Node {
    let Some(sync) = child(iq, "usync") else {
        return iq_result(id, vec![]);
    };
    let query = child(sync, "query");
    let wants = |tag: &str| query.is_some_and(|q| child(q, tag).is_some());
    let users = child(sync, "list").map(children).unwrap_or(&[]);
    let list = users
        .iter()
        .filter_map(|u| attr(u, "jid"))
        .filter_map(|jid| {
            let addr = parse_jid(&jid)?;
            let account = w.accounts.get(&phone_of(w, &addr)?)?;
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
                parts.push(NodeBuilder::new("contact").attr("type", "in").build());
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

/// After the client went active: everything queued for it, then the marker
/// that ends offline delivery (the client waits for it before sending).
pub fn flush_offline(w: &mut World, conn: ConnId) {
    let queued: Vec<Node> = device_of(w, conn)
        .and_then(|(phone, device)| {
            let d = w.accounts.get_mut(&phone)?.devices.get_mut(&device)?;
            Some(d.offline.iter().cloned().collect())
        })
        .unwrap_or_default();
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
}

/// Delivers `node` to a device now if it is online; it stays queued until
/// the device acknowledges it either way.
pub fn deliver(w: &mut World, phone: &str, device: u16, node: Node) {
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
    if let Some(conn) = d.connection {
        w.send(conn, node);
    }
}

/// Drops from a device's queue what it acknowledged.
fn acknowledged(w: &mut World, conn: ConnId, ids: &[String]) {
    if let Some((phone, device)) = device_of(w, conn)
        && let Some(d) = w
            .accounts
            .get_mut(&phone)
            .and_then(|a| a.devices.get_mut(&device))
    {
        d.offline
            .retain(|n| attr(n, "id").is_none_or(|id| !ids.contains(&id)));
    }
}

/// Fans a `<message>` out to the devices named in its `<participants>`, and
/// acknowledges it to the sender.
pub fn on_message(w: &mut World, conn: ConnId, msg: &Node) {
    let Some((sender_phone, sender_device)) = device_of(w, conn) else {
        return;
    };
    let id = attr(msg, "id").unwrap_or_default();
    let to = attr(msg, "to").unwrap_or_default();
    let kind = attr(msg, "type").unwrap_or_else(|| "text".to_owned());
    let Some(sender) = w.accounts.get(&sender_phone) else {
        return;
    };
    let from = format!("{sender_phone}:{sender_device}@s.whatsapp.net");
    let sender_lid = format!("{}:{sender_device}@lid", sender.lid);
    let push_name = sender
        .devices
        .get(&sender_device)
        .map(|d| d.push_name.clone())
        .unwrap_or_default();
    let identity = child(msg, "device-identity").cloned();
    let chat = parse_jid(&to).and_then(|a| phone_of(w, &a).map(|p| (a, p)));
    let targets: Vec<(String, u16, Node)> = child(msg, "participants")
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
pub fn on_ack(w: &mut World, conn: ConnId, ack: &Node) {
    if let Some(id) = attr(ack, "id") {
        acknowledged(w, conn, &[id]);
    }
}

/// A device acknowledged messages; tell their senders.
pub fn on_receipt(w: &mut World, conn: ConnId, receipt: &Node) {
    let Some((phone, device)) = device_of(w, conn) else {
        return;
    };
    let id = attr(receipt, "id").unwrap_or_default();
    let mut ids = vec![id.clone()];
    if let Some(list) = child(receipt, "list") {
        ids.extend(children(list).iter().filter_map(|i| attr(i, "id")));
    }
    acknowledged(w, conn, &ids);
    let kind = attr(receipt, "type");
    w.send(
        conn,
        NodeBuilder::new("ack")
            .attr("class", "receipt")
            .attr("id", id.as_str())
            .attr("from", format!("{phone}:{device}@s.whatsapp.net"))
            .build(),
    );
    // Receipts about our own devices' copies stay between them.
    if matches!(kind.as_deref(), Some("sender" | "peer_msg" | "read-self")) {
        return;
    }
    let Some(target) = attr(receipt, "to").and_then(|t| parse_jid(&t)) else {
        return;
    };
    let Some(target_phone) = phone_of(w, &target) else {
        return;
    };
    let mut b = NodeBuilder::new("receipt")
        .attr("from", format!("{phone}:{device}@s.whatsapp.net"))
        .attr("id", id)
        .attr("t", stanza::now_secs().to_string());
    // "inactive" only says the reader's app was in the background: to the
    // sender it is a plain delivery.
    if let Some(k) = kind.filter(|k| k != "inactive") {
        b = b.attr("type", k);
    }
    if let Some(list) = child(receipt, "list") {
        b = b.children([list.clone()]);
    }
    let node = b.build();
    deliver(w, &target_phone, target.device, node);
}

//! The prekey directory: bundles devices upload, handed out to whoever wants
//! to start a Signal session with them.

use wacore_binary::Node;
use wacore_binary::builder::NodeBuilder;

use crate::iq::device_of;
use sha1::{Digest, Sha1};

use crate::stanza::{attr, child, child_bytes, children, iq_error, iq_result, server_notification};
use crate::world::{ConnId, PreKeys, World};

fn be(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b))
}

fn prekeys_mut(w: &mut World, conn: ConnId) -> Option<&mut PreKeys> {
    let (phone, device) = device_of(w, conn)?;
    Some(
        &mut w
            .accounts
            .get_mut(&phone)?
            .devices
            .get_mut(&device)?
            .prekeys,
    )
}

/// Stores a device's prekey upload. A companion's first upload is its first
/// login after linking: that is when the phone shares its app-state key.
pub(crate) fn upload(w: &mut World, conn: ConnId, iq: &Node) {
    store_upload(w, conn, iq);
    if let Some((phone, device)) = device_of(w, conn) {
        crate::phone::share_app_state_key(w, &phone, device);
    }
}

fn store_upload(w: &mut World, conn: ConnId, iq: &Node) {
    let Some(p) = prekeys_mut(w, conn) else {
        return;
    };
    if let Some(r) = child_bytes(iq, "registration") {
        p.registration_id = be(r);
    }
    if let Some(i) = child_bytes(iq, "identity") {
        p.identity = i.to_vec();
    }
    if let Some(skey) = child(iq, "skey") {
        set_signed(p, skey);
    }
    if let Some(list) = child(iq, "list") {
        for key in children(list).iter().filter(|k| k.tag == "key") {
            if let (Some(id), Some(value)) = (child_bytes(key, "id"), child_bytes(key, "value")) {
                p.one_time.push_back((be(id), value.to_vec()));
            }
        }
    }
}

pub(crate) fn rotate(w: &mut World, conn: ConnId, iq: &Node) {
    if let (Some(p), Some(skey)) = (
        prekeys_mut(w, conn),
        child(iq, "rotate").and_then(|r| child(r, "skey")),
    ) {
        set_signed(p, skey);
    }
}

fn set_signed(p: &mut PreKeys, skey: &Node) {
    if let (Some(id), Some(value), Some(sig)) = (
        child_bytes(skey, "id"),
        child_bytes(skey, "value"),
        child_bytes(skey, "signature"),
    ) {
        p.signed_id = be(id);
        p.signed_pub = value.to_vec();
        p.signed_sig = sig.to_vec();
    }
}

/// Answers the digest query a device sends after login to check that the
/// server holds the keys it uploaded: the bundle as stored, the ids of the
/// one-time prekeys not yet handed out, and a SHA-1 over the public parts
/// (identity, signed prekey, its signature, then each listed prekey), as
/// WhatsApp computes it. A device that never uploaded gets 404, which makes
/// it upload again.
pub(crate) fn digest(w: &mut World, conn: ConnId, id: &str) -> Node {
    match prekeys_mut(w, conn).filter(|p| !p.identity.is_empty()) {
        Some(p) => iq_result(id, vec![digest_node(p)]),
        None => iq_error(id, 404, "item-not-found"),
    }
}

fn digest_node(p: &PreKeys) -> Node {
    let mut hash = Sha1::new();
    hash.update(&p.identity);
    hash.update(&p.signed_pub);
    hash.update(&p.signed_sig);
    for (_, value) in &p.one_time {
        hash.update(value);
    }
    let ids = p
        .one_time
        .iter()
        .map(|(kid, _)| NodeBuilder::new("id").bytes(id3(*kid)).build());
    let mut parts = signed_parts(p);
    parts.push(NodeBuilder::new("list").children(ids).build());
    parts.push(
        NodeBuilder::new("hash")
            .bytes(hash.finalize().to_vec())
            .build(),
    );
    NodeBuilder::new("digest").children(parts).build()
}

/// What every bundle and digest starts with: registration id, key type,
/// identity and the signed prekey.
fn signed_parts(p: &PreKeys) -> Vec<Node> {
    vec![
        NodeBuilder::new("registration")
            .bytes(p.registration_id.to_be_bytes().to_vec())
            .build(),
        NodeBuilder::new("type").bytes(vec![5u8]).build(),
        NodeBuilder::new("identity")
            .bytes(p.identity.clone())
            .build(),
        NodeBuilder::new("skey")
            .children([
                NodeBuilder::new("id").bytes(id3(p.signed_id)).build(),
                NodeBuilder::new("value")
                    .bytes(p.signed_pub.clone())
                    .build(),
                NodeBuilder::new("signature")
                    .bytes(p.signed_sig.clone())
                    .build(),
            ])
            .build(),
    ]
}

pub(crate) fn count(w: &mut World, conn: ConnId) -> usize {
    prekeys_mut(w, conn).map_or(0, |p| p.one_time.len())
}

/// Answers `<key><user jid=../>..</key>` with one bundle per device, each
/// consuming a one-time prekey as WhatsApp does.
pub(crate) fn fetch(w: &mut World, id: &str, iq: &Node) -> Node {
    let users = child(iq, "key").map(children).unwrap_or(&[]);
    let mut running_low = Vec::new();
    let list = users
        .iter()
        .filter_map(|u| attr(u, "jid"))
        .map(|jid| match crate::relay::resolve_device_mut(w, &jid) {
            Some((p, identity)) => {
                let bundle = bundle_node(&jid, p, identity);
                if p.one_time.len() < PREKEYS_LOW {
                    running_low.push((jid.clone(), p.one_time.len()));
                }
                bundle
            }
            None => NodeBuilder::new("user")
                .attr("jid", jid)
                .children([NodeBuilder::new("error")
                    .attr("code", "406")
                    .attr("text", "not-acceptable")
                    .build()])
                .build(),
        })
        .collect::<Vec<_>>();
    for (jid, left) in running_low {
        tell_prekeys_low(w, &jid, left);
    }
    iq_result(id, vec![NodeBuilder::new("list").children(list).build()])
}

/// Below this many one-time prekeys left, the server tells the device.
const PREKEYS_LOW: usize = 5;

/// WhatsApp asks a companion whose one-time prekeys are running out for
/// more: an `encrypt` notification with the count left, from the server.
/// (A phone's own pool is the simulator's to refill.)
fn tell_prekeys_low(w: &mut World, jid: &str, left: usize) {
    let Some(addr) = crate::relay::parse_jid(jid).filter(|a| a.device != 0) else {
        return;
    };
    let Some(phone) = crate::relay::phone_of(w, &addr) else {
        return;
    };
    let id = w.next_iq_id();
    let node = server_notification(id, "encrypt")
        .children([NodeBuilder::new("count")
            .attr("value", left.to_string())
            .build()])
        .build();
    crate::relay::deliver(w, &phone, addr.device, node);
}

fn id3(id: u32) -> Vec<u8> {
    id.to_be_bytes()[1..].to_vec()
}

/// A companion's bundle carries the signed device identity it got at
/// linking: the client checks it against the account key before trusting
/// the bundle (and only warns when it is missing).
fn bundle_node(jid: &str, p: &mut PreKeys, device_identity: Option<&[u8]>) -> Node {
    let mut parts = signed_parts(p);
    if let Some((kid, value)) = p.one_time.pop_front() {
        parts.push(
            NodeBuilder::new("key")
                .children([
                    NodeBuilder::new("id").bytes(id3(kid)).build(),
                    NodeBuilder::new("value").bytes(value).build(),
                ])
                .build(),
        );
    }
    if let Some(identity) = device_identity {
        parts.push(
            NodeBuilder::new("device-identity")
                .bytes(identity.to_vec())
                .build(),
        );
    }
    NodeBuilder::new("user")
        .attr("jid", jid.to_owned())
        .children(parts)
        .build()
}

#[cfg(test)]
mod tests {
    use wacore::iq::prekeys::DigestKeyBundleSpec;
    use wacore::iq::spec::IqSpec;

    use super::*;

    #[test]
    fn the_digest_is_what_the_client_parses_and_computes() {
        let p = PreKeys {
            registration_id: 4242,
            identity: vec![1; 32],
            signed_id: 7,
            signed_pub: vec![2; 32],
            signed_sig: vec![3; 64],
            one_time: [(100, vec![4; 32]), (101, vec![5; 32])].into(),
        };
        let answer = iq_result("1", vec![digest_node(&p)]);
        let parsed = DigestKeyBundleSpec::new()
            .parse_response(&answer.as_node_ref())
            .unwrap_or_else(|e| panic!("the client cannot parse it: {e}"));
        assert_eq!(parsed.reg_id, 4242);
        assert_eq!(parsed.skey_id, 7);
        assert_eq!(parsed.prekey_ids, [100, 101]);
        let expected = wacore::prekeys::compute_key_bundle_digest(
            &p.identity,
            &p.signed_pub,
            &p.signed_sig,
            &[&[4; 32], &[5; 32]],
        );
        assert_eq!(parsed.hash, expected);
    }

    /// A companion online with `keys` one-time prekeys left; the receiver
    /// of what the server sends it.
    fn companion_with(
        keys: u32,
    ) -> (
        World,
        tokio::sync::mpsc::UnboundedReceiver<crate::conn::Outbound>,
    ) {
        let mut w = World::default();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        w.conns.insert(
            1,
            crate::world::Conn {
                tx,
                role: Some(crate::world::Role::Device {
                    phone: "15550001111".into(),
                    device: 3,
                }),
                active: true,
            },
        );
        let account = w.account_mut("15550001111");
        account.devices.insert(
            3,
            crate::world::Device {
                id: 3,
                key_index: 1,
                noise_pub: [0; 32],
                prekeys: PreKeys {
                    identity: vec![1; 32],
                    one_time: (0..keys).map(|id| (id, vec![9; 32])).collect(),
                    ..PreKeys::default()
                },
                signed_identity: Vec::new(),
                platform: String::new(),
                push_name: String::new(),
                connection: Some(1),
                replaced: 0,
                last_seen: 0,
                offline: Default::default(),
                presence: None,
                app_state_synced: Default::default(),
                full_sync: false,
            },
        );
        (w, rx)
    }

    fn fetch_bundle(w: &mut World) {
        let iq = NodeBuilder::new("iq")
            .children([NodeBuilder::new("key")
                .children([NodeBuilder::new("user")
                    .attr("jid", "15550001111:3@s.whatsapp.net")
                    .build()])
                .build()])
            .build();
        fetch(w, "q", &iq);
    }

    /// What the companion was told, each as `<tag>:<count it names>`.
    fn told(rx: &mut tokio::sync::mpsc::UnboundedReceiver<crate::conn::Outbound>) -> Vec<String> {
        let mut seen = Vec::new();
        while let Ok(crate::conn::Outbound::Node(node)) = rx.try_recv() {
            let count = child(&node, "count").and_then(|c| attr(c, "value"));
            seen.push(format!("{}:{}", node.tag, count.unwrap_or_default()));
        }
        seen
    }

    #[test]
    fn a_companion_running_out_of_prekeys_is_asked_for_more() {
        let (mut w, mut rx) = companion_with(6);
        fetch_bundle(&mut w);
        assert_eq!(told(&mut rx), Vec::<String>::new(), "5 left is not low yet");
        fetch_bundle(&mut w);
        assert_eq!(told(&mut rx), ["notification:4"]);
        for _ in 0..5 {
            fetch_bundle(&mut w);
        }
        // Every fetch while low asks again, down to an empty pool.
        assert_eq!(
            told(&mut rx),
            [
                "notification:3",
                "notification:2",
                "notification:1",
                "notification:0",
                "notification:0"
            ]
        );
    }
}

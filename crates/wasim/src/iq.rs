//! Answers to the IQs a client sends. Each answer is the smallest one the
//! real client accepts without stalling; see `docs/ARCHITECTURE.md`.

use wacore_binary::Node;
use wacore_binary::builder::NodeBuilder;

use crate::stanza::{self, attr, child, children, iq_result};
use crate::world::{ConnId, Role, World};
use crate::{pair_code, pairing, prekeys, relay};

/// The query a device sends after login to check the keys the server holds.
pub(crate) fn is_digest_query(iq: &Node) -> bool {
    attr(iq, "xmlns").as_deref() == Some("encrypt")
        && attr(iq, "type").as_deref() == Some("get")
        && children(iq).first().map(|c| c.tag.as_ref()) == Some("digest")
}

pub(crate) fn handle(w: &mut World, conn: ConnId, iq: &Node) {
    let id = attr(iq, "id").unwrap_or_default();
    let kind = attr(iq, "type").unwrap_or_default();
    if kind == "result" || kind == "error" {
        // The client answering one of ours (pair-device ack, pair-success).
        pairing::on_answer(w, conn, iq);
        return;
    }
    let xmlns = attr(iq, "xmlns").unwrap_or_default();
    let first = children(iq).first().map(|c| c.tag.as_ref()).unwrap_or("");
    let reply = match (xmlns.as_str(), kind.as_str(), first) {
        ("w:p", _, _) | ("urn:xmpp:ping", _, _) => NodeBuilder::new("iq")
            .attr("id", id.as_str())
            .attr("type", "result")
            .attr("from", stanza::SERVER)
            .attr("t", stanza::now_secs().to_string())
            .build(),
        ("passive", _, "active") => {
            w.send(conn, iq_result(&id, vec![]));
            relay::flush_offline(w, conn);
            return;
        }
        ("passive", _, _) => iq_result(&id, vec![]),
        ("encrypt", "set", "rotate") => {
            prekeys::rotate(w, conn, iq);
            iq_result(&id, vec![])
        }
        ("encrypt", "set", _) => {
            prekeys::upload(w, conn, iq);
            iq_result(&id, vec![])
        }
        ("encrypt", "get", "count") => iq_result(
            &id,
            vec![
                NodeBuilder::new("count")
                    .attr("value", prekeys::count(w, conn).to_string())
                    .build(),
            ],
        ),
        ("encrypt", "get", "digest") => prekeys::digest(w, conn, &id),
        ("encrypt", "get", "key") => prekeys::fetch(w, &id, iq),
        ("usync", _, _) => relay::usync(w, &id, iq),
        ("w:sync:app:state", _, _) => {
            crate::syncd::handle_iq(w, conn, &id, iq);
            return;
        }
        ("abt", _, _) => iq_result(
            &id,
            vec![
                NodeBuilder::new("props")
                    .attr("protocol", "1")
                    .attr("hash", "wasim")
                    .build(),
            ],
        ),
        ("blocklist", _, _) => crate::profile::blocklist_iq(w, conn, &id, iq),
        ("w:profile:picture", "get", _) => crate::profile::picture_iq(w, &id, iq),
        ("privacy", _, _) => iq_result(&id, vec![NodeBuilder::new("privacy").build()]),
        // Answers itself: a `companion_finish` result must precede the
        // `pair-success` it may trigger.
        ("md", "set", "remove-companion-device") => {
            unlink_self(w, conn, iq);
            iq_result(&id, vec![])
        }
        ("md", _, "link_code_companion_reg") => {
            pair_code::on_companion_iq(w, conn, &id, iq);
            return;
        }
        ("w:m", _, "media_conn") => crate::media::media_conn(w, &id),
        ("w:profile:picture", "set", _) if crate::groups::picture_for_group(iq) => {
            crate::groups::picture_iq(w, conn, iq);
            return;
        }
        ("w:g2", _, _) => {
            crate::groups::handle_iq(w, conn, iq);
            return;
        }
        _ => {
            tracing::debug!(%xmlns, %kind, child = first, "answering unknown iq with an empty result");
            iq_result(&id, vec![])
        }
    };
    w.send(conn, reply);
}

/// The account and device a connection is logged in as.
pub(crate) fn device_of(w: &World, conn: ConnId) -> Option<(String, u16)> {
    match w.conns.get(&conn)?.role.as_ref()? {
        Role::Device { phone, device } => Some((phone.clone(), *device)),
        Role::Pairing(_) => None,
    }
}

/// A companion logging itself out: forget it, as the phone's device list would.
fn unlink_self(w: &mut World, conn: ConnId, iq: &Node) {
    let Some((phone, device)) = device_of(w, conn) else {
        return;
    };
    let named = child(iq, "remove-companion-device")
        .and_then(|r| attr(r, "jid"))
        .and_then(|jid| relay::parse_jid(&jid));
    // A device may only remove itself.
    if named.is_some_and(|a| a.device == device)
        && let Some(account) = w.accounts.get_mut(&phone)
    {
        account.devices.remove(&device);
    }
}

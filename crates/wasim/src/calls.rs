//! Calls and presence, as far as signalling goes (no media ever flows):
//! a phone rings a number's linked devices with an `<offer>`, and what a
//! device answers (the offer's receipt, a reject) reaches the caller's
//! phone, which records it. Presence is in `presence.rs`.

use wacore_binary::Node;
use wacore_binary::builder::NodeBuilder;

use crate::error::SimError;
use crate::iq::device_of;
use crate::relay::{deliver, device_jid, parse_jid, phone_of};
use crate::stanza::{self, attr, children};
use crate::world::{ConnId, World};

/// A call signal the caller's phone got from a device it rang.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PhoneCall {
    pub call_id: String,
    /// The answering device, e.g. `15550001111:1@s.whatsapp.net`.
    pub from: String,
    /// `ringing` (the device's receipt of the offer), `reject`, `accept`,
    /// `terminate`, ...
    pub action: String,
    /// The reject's or terminate's reason, if it gave one (`busy`, ...).
    pub reason: Option<String>,
    pub timestamp: u64,
}

/// `caller` rings every linked device of `callee`, as WhatsApp relays a
/// call offer (a device offline now gets it, marked offline, when it
/// logs in). Returns the call id.
pub(crate) fn place(
    w: &mut World,
    caller: &str,
    callee: &str,
    video: bool,
) -> Result<String, SimError> {
    let callee = match parse_jid(callee) {
        Some(addr) => phone_of(w, &addr).ok_or(SimError::NoSuchPhone)?,
        None => callee.to_owned(),
    };
    if callee == caller {
        return Err(SimError::Invalid("a phone cannot call itself".into()));
    }
    let devices = devices_of(w, &callee)?;
    let push_name = w.account_mut(caller).push_name.clone();
    // WhatsApp's call ids: 32 upper-case hex digits.
    let call_id = format!("{:032X}", rand::random::<u128>());
    let caller_jid = format!("{caller}@s.whatsapp.net");
    for device in devices {
        let mut offer = vec![
            NodeBuilder::new("audio")
                .attr("enc", "opus")
                .attr("rate", "16000")
                .build(),
            NodeBuilder::new("audio")
                .attr("enc", "opus")
                .attr("rate", "8000")
                .build(),
        ];
        if video {
            offer.push(
                NodeBuilder::new("video")
                    .attr("enc", "vp8")
                    .attr("dec", "vp8")
                    .build(),
            );
        }
        offer.push(NodeBuilder::new("net").attr("medium", "3").build());
        offer.push(NodeBuilder::new("encopt").attr("keygen", "2").build());
        let id = w.next_iq_id();
        let node = NodeBuilder::new("call")
            .attr("from", caller_jid.as_str())
            .attr("id", id)
            .attr("t", stanza::now_secs().to_string())
            .attr("notify", push_name.as_str())
            .children([NodeBuilder::new("offer")
                .attr("call-id", call_id.as_str())
                .attr("call-creator", caller_jid.as_str())
                .children(offer)
                .build()])
            .build();
        deliver(w, &callee, device, node);
    }
    w.calls
        .insert(call_id.clone(), (caller.to_owned(), callee.clone()));
    Ok(call_id)
}

/// Every device of `phone`'s account, the phone's own (0) included.
fn devices_of(w: &World, phone: &str) -> Result<Vec<u16>, SimError> {
    Ok(w.accounts
        .get(phone)
        .ok_or(SimError::NoSuchPhone)?
        .devices
        .keys()
        .copied()
        .collect())
}

/// The caller hangs up a call it placed before anyone answered: every
/// device it rang gets the `<terminate>` (no reason: the caller gave up,
/// which a device records as a missed call).
pub(crate) fn hang_up(w: &mut World, caller: &str, call_id: &str) -> Result<(), SimError> {
    let Some((placed_by, callee)) = w.calls.get(call_id).cloned() else {
        return Err(SimError::Invalid(format!("no call {call_id}")));
    };
    if placed_by != caller {
        return Err(SimError::Invalid(format!(
            "{caller} did not place {call_id}"
        )));
    }
    w.calls.remove(call_id);
    let devices = devices_of(w, &callee)?;
    let caller_jid = format!("{caller}@s.whatsapp.net");
    for device in devices {
        let id = w.next_iq_id();
        let node = NodeBuilder::new("call")
            .attr("from", caller_jid.as_str())
            .attr("id", id)
            .attr("t", stanza::now_secs().to_string())
            .children([NodeBuilder::new("terminate")
                .attr("call-id", call_id)
                .attr("call-creator", caller_jid.as_str())
                .build()])
            .build();
        deliver(w, &callee, device, node);
    }
    Ok(())
}

/// A `<call>` a device sent (a reject, a terminate, ...): acknowledged, and
/// recorded by the phone it is addressed to.
pub(crate) fn on_call(w: &mut World, conn: ConnId, node: &Node) {
    let Some((phone, device)) = device_of(w, conn) else {
        return;
    };
    let id = attr(node, "id").unwrap_or_default();
    let action = children(node).first();
    w.send(
        conn,
        NodeBuilder::new("ack")
            .attr("class", "call")
            .attr("id", id.as_str())
            .attr("from", device_jid(&phone, device))
            .attr(
                "type",
                action.map(|a| a.tag.to_string()).unwrap_or_default(),
            )
            .build(),
    );
    let Some(action) = action else { return };
    record(w, &phone, device, node, action.tag.as_ref(), action);
}

/// A device's receipt of an offer: it is ringing.
pub(crate) fn on_offer_receipt(w: &mut World, phone: &str, device: u16, receipt: &Node) {
    if let Some(offer) = stanza::child(receipt, "offer") {
        record(w, phone, device, receipt, "ringing", offer);
    }
}

fn record(w: &mut World, phone: &str, device: u16, outer: &Node, action: &str, inner: &Node) {
    let Some(caller) = attr(outer, "to")
        .and_then(|to| parse_jid(&to))
        .and_then(|addr| phone_of(w, &addr))
    else {
        return;
    };
    let call = PhoneCall {
        call_id: attr(inner, "call-id").unwrap_or_default(),
        from: device_jid(phone, device),
        action: action.to_owned(),
        reason: attr(inner, "reason"),
        timestamp: stanza::now_secs(),
    };
    if let Some(account) = w.accounts.get_mut(&caller) {
        account.phone_inbox.add_call(call);
        w.phone_events.notify_waiters();
    }
}

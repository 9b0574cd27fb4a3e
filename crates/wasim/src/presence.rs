//! Presence, as WhatsApp relays it: a device's own `<presence>` (recorded
//! on the device), subscriptions to another account's presence (each
//! lasting as long as the connection that made it), a phone's user coming
//! online or going offline (told to every live subscriber, with the last
//! seen time) and a phone's user typing in a chat (told to the chat's
//! other account's devices that subscribed to them: WhatsApp sends chat
//! states only to those).

use wacore_binary::Node;
use wacore_binary::builder::NodeBuilder;

use crate::error::SimError;
use crate::iq::device_of;
use crate::relay::{parse_jid, phone_of};
use crate::stanza::{attr, now_secs};
use crate::world::{ConnId, World};

/// A phone's user, as far as presence goes.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PhonePresence {
    pub online: bool,
    /// Unix seconds; 0 when never seen.
    pub last_seen: u64,
}

/// What a phone's user does in a chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Typing {
    Composing,
    Recording,
    Paused,
}

impl std::str::FromStr for Typing {
    type Err = SimError;

    fn from_str(s: &str) -> Result<Self, SimError> {
        match s {
            "composing" => Ok(Self::Composing),
            "recording" => Ok(Self::Recording),
            "paused" => Ok(Self::Paused),
            _ => Err(SimError::Invalid(
                "state must be composing, recording or paused".into(),
            )),
        }
    }
}

/// A device's `<presence>`: its own (`type="available|unavailable"`, no
/// `to`), kept on the device; or a subscription to someone else's
/// (`type="subscribe|unsubscribe" to=...`).
pub(crate) fn on_presence(w: &mut World, conn: ConnId, node: &Node) {
    let Some((phone, device)) = device_of(w, conn) else {
        return;
    };
    let kind = attr(node, "type");
    if let Some(to) = attr(node, "to") {
        let Some(target) = parse_jid(&to).and_then(|addr| phone_of(w, &addr)) else {
            return;
        };
        match kind.as_deref() {
            Some("subscribe") => {
                w.presence_subscribers
                    .entry(target.clone())
                    .or_default()
                    .insert((phone, device, conn));
                // WhatsApp answers a subscription with where they are now.
                let now = presence_of(w, &target);
                w.send(conn, now);
            }
            Some("unsubscribe") => {
                if let Some(subscribers) = w.presence_subscribers.get_mut(&target) {
                    subscribers.retain(|(p, d, _)| !(*p == phone && *d == device));
                }
            }
            _ => {}
        }
        return;
    }
    let Some(kind) = kind.filter(|k| k == "available" || k == "unavailable") else {
        return;
    };
    if let Some(d) = w
        .accounts
        .get_mut(&phone)
        .and_then(|a| a.devices.get_mut(&device))
    {
        d.presence = Some(kind);
        w.phone_events.notify_waiters();
    }
}

/// `<presence from>` saying where `phone`'s user is: nothing more when
/// online; `type="unavailable"` and their last seen otherwise.
fn presence_of(w: &World, phone: &str) -> Node {
    let state = w.phone_presence.get(phone).copied().unwrap_or_default();
    let b = NodeBuilder::new("presence").attr("from", format!("{phone}@s.whatsapp.net"));
    if state.online {
        b.build()
    } else if state.last_seen > 0 {
        b.attr("type", "unavailable")
            .attr("last", state.last_seen.to_string())
            .build()
    } else {
        b.attr("type", "unavailable").build()
    }
}

/// The connections subscribed to `phone` that are still the ones they
/// subscribed on, and live.
fn live_subscribers(w: &World, phone: &str) -> Vec<(String, u16, ConnId)> {
    w.presence_subscribers
        .get(phone)
        .into_iter()
        .flatten()
        .filter(|(p, d, conn)| {
            let current = w
                .accounts
                .get(p)
                .and_then(|a| a.devices.get(d))
                .and_then(|dev| dev.connection);
            current == Some(*conn) && w.conns.get(conn).is_some_and(|c| c.active)
        })
        .cloned()
        .collect()
}

/// `phone`'s user comes online or goes offline: every live subscriber is
/// told.
pub(crate) fn set_phone_presence(w: &mut World, phone: &str, online: bool) -> Result<(), SimError> {
    if !w.accounts.contains_key(phone) {
        return Err(SimError::NoSuchPhone);
    }
    let state = w.phone_presence.entry(phone.to_owned()).or_default();
    state.online = online;
    state.last_seen = now_secs();
    let node = presence_of(w, phone);
    for (_, _, conn) in live_subscribers(w, phone) {
        w.send(conn, node.clone());
    }
    Ok(())
}

/// `phone`'s user types (or records, or stops) in their chat with `to`:
/// the devices of `to` that subscribed to `phone` see it.
pub(crate) fn phone_typing(
    w: &mut World,
    phone: &str,
    to: &str,
    typing: Typing,
) -> Result<(), SimError> {
    if !w.accounts.contains_key(phone) {
        return Err(SimError::NoSuchPhone);
    }
    let to = match parse_jid(to) {
        Some(addr) => phone_of(w, &addr).ok_or(SimError::NoSuchPhone)?,
        None => to.to_owned(),
    };
    let state = match typing {
        Typing::Composing => NodeBuilder::new("composing").build(),
        Typing::Recording => NodeBuilder::new("composing").attr("media", "audio").build(),
        Typing::Paused => NodeBuilder::new("paused").build(),
    };
    let node = NodeBuilder::new("chatstate")
        .attr("from", format!("{phone}@s.whatsapp.net"))
        .children([state])
        .build();
    for (_, _, conn) in live_subscribers(w, phone)
        .into_iter()
        .filter(|(p, _, _)| *p == to)
    {
        w.send(conn, node.clone());
    }
    Ok(())
}

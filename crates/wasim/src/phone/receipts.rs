//! The phone's user reading and playing messages: the `read` and `played`
//! receipts a phone sends, through the server, to the sender's devices.

use std::collections::BTreeMap;

use wacore_binary::Node;
use wacore_binary::builder::NodeBuilder;

use crate::error::SimError;
use crate::relay;
use crate::stanza;
use crate::world::World;

/// Which messages the user reads.
pub(crate) enum Reading<'a> {
    /// These ids (each must be an incoming message the phone has).
    Ids(&'a [String]),
    /// Everything unread in this chat (a phone number or JID).
    Chat(&'a str),
}

/// Marks messages read and sends one `read` receipt per sender, listing
/// every id after the first in `<list>`, as a phone opening the chat does.
/// Returns the ids it marked. Reading what was already read sends again.
pub(crate) fn read(
    w: &mut World,
    phone: &str,
    reading: Reading<'_>,
) -> Result<Vec<String>, SimError> {
    let chat = match reading {
        Reading::Chat(chat) => Some(chat_jid(w, chat)),
        Reading::Ids(_) => None,
    };
    let account = w.accounts.get_mut(phone).ok_or(SimError::NoSuchPhone)?;
    let inbox = &mut account.phone_inbox;
    // Sender account -> ids, oldest first.
    let mut by_sender: BTreeMap<String, Vec<String>> = BTreeMap::new();
    match reading {
        Reading::Ids(ids) => {
            for id in ids {
                let m = inbox.find_mut(id).ok_or(SimError::NoSuchMessage)?;
                if m.from_me {
                    return Err(SimError::Invalid(format!(
                        "{id} was sent by this phone's own device: there is nothing to read"
                    )));
                }
                m.read = true;
                by_sender
                    .entry(m.sender.clone())
                    .or_default()
                    .push(id.clone());
            }
        }
        Reading::Chat(_) => {
            let chat = chat.unwrap_or_default();
            for m in inbox.unread_in(&chat) {
                m.read = true;
                by_sender
                    .entry(m.sender.clone())
                    .or_default()
                    .push(m.id.clone());
            }
        }
    }
    let mut marked = Vec::new();
    for (sender, ids) in by_sender {
        relay::route_receipt(w, phone, 0, &receipt(&sender, "read", &ids));
        marked.extend(ids);
    }
    w.phone_events.notify_waiters();
    Ok(marked)
}

/// Plays a voice note (or a video): a `played` receipt to its sender.
pub(crate) fn play(w: &mut World, phone: &str, id: &str) -> Result<(), SimError> {
    let account = w.accounts.get_mut(phone).ok_or(SimError::NoSuchPhone)?;
    let m = account
        .phone_inbox
        .find_mut(id)
        .ok_or(SimError::NoSuchMessage)?;
    if m.from_me || !matches!(m.kind.as_str(), "voice" | "audio" | "video") {
        return Err(SimError::Invalid(format!(
            "{id} is a {} the phone did not receive: only received voice notes, audio and video play",
            m.kind
        )));
    }
    m.played = true;
    let node = receipt(&m.sender.clone(), "played", &[id.to_owned()]);
    relay::route_receipt(w, phone, 0, &node);
    w.phone_events.notify_waiters();
    Ok(())
}

/// The receipt as a client sends it to the server: to the chat, the first
/// id as the stanza id, the rest listed.
fn receipt(chat: &str, kind: &str, ids: &[String]) -> Node {
    let first = ids.first().cloned().unwrap_or_default();
    let mut b = NodeBuilder::new("receipt")
        .attr("to", chat)
        .attr("id", first)
        .attr("type", kind)
        .attr("t", stanza::now_secs().to_string());
    if ids.len() > 1 {
        let items = ids[1..]
            .iter()
            .map(|id| NodeBuilder::new("item").attr("id", id.as_str()).build());
        b = b.children([NodeBuilder::new("list").children(items).build()]);
    }
    b.build()
}

/// A chat as the phone stores it, `<number>@s.whatsapp.net`, from a
/// number, a PN JID or a LID JID.
fn chat_jid(w: &World, chat: &str) -> String {
    let jid = if chat.contains('@') {
        chat.to_owned()
    } else {
        let digits: String = chat.chars().filter(char::is_ascii_digit).collect();
        format!("{digits}@s.whatsapp.net")
    };
    relay::parse_jid(&jid)
        .and_then(|addr| relay::phone_of(w, &addr))
        .map(|phone| relay::device_jid(&phone, 0))
        .unwrap_or(jid)
}

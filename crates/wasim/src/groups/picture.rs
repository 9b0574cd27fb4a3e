//! A group's picture: set or removed by a member (only an admin when the
//! group is locked) through a `w:profile:picture` set whose `target` is
//! the group, kept by the server with a new id, and told to every member's
//! linked devices as a `<notification type="picture">` with `<set>` or
//! `<delete>` naming the group and the author, as WhatsApp does. The
//! server takes JPEGs only (400 otherwise).

use wacore_binary::Node;
use wacore_binary::builder::NodeBuilder;

use super::wire::participant_jid;
use super::{Refusal, member_group};
use crate::relay;
use crate::stanza::{self, attr, child};
use crate::world::{ConnId, GroupPicture, World};

/// The largest picture the server keeps, bytes.
const PICTURE_MAX: usize = 1024 * 1024;

/// Whether a `w:profile:picture` IQ is about a group (the rest, a user's
/// own picture, is answered elsewhere).
pub(crate) fn is_for_group(iq: &Node) -> bool {
    attr(iq, "target").is_some_and(|t| t.ends_with("@g.us"))
}

/// `actor` sets (`Some(jpeg)`) or removes the picture of group `jid`;
/// returns the new picture's id (empty on removal).
pub(crate) fn set_picture(
    w: &mut World,
    jid: &str,
    actor: &str,
    jpeg: Option<Vec<u8>>,
) -> Result<String, Refusal> {
    if let Some(bytes) = &jpeg
        && (!bytes.starts_with(&[0xFF, 0xD8, 0xFF]) || bytes.len() > PICTURE_MAX)
    {
        return Err(Refusal::BadRequest);
    }
    let group = member_group(w, jid, actor)?;
    if group.locked && !group.is_admin(actor) {
        return Err(Refusal::Forbidden);
    }
    let id = match jpeg {
        Some(bytes) => {
            // WhatsApp's picture ids are digits that grow with time.
            let id = format!("{}{:03}", stanza::now_secs(), rand::random::<u16>() % 1000);
            group.picture = Some(GroupPicture {
                id: id.clone(),
                jpeg: bytes,
            });
            id
        }
        None => {
            group.picture = None;
            String::new()
        }
    };
    let members = group.participants.clone();
    let author = participant_jid(w, jid, actor);
    let change = if id.is_empty() {
        NodeBuilder::new("delete")
            .attr("jid", jid)
            .attr("author", author)
            .build()
    } else {
        NodeBuilder::new("set")
            .attr("jid", jid)
            .attr("id", id.as_str())
            .attr("author", author)
            .build()
    };
    let now = stanza::now_secs().to_string();
    for phone in members {
        let devices: Vec<u16> = w
            .accounts
            .get(&phone)
            .map(|a| a.devices.keys().copied().collect())
            .unwrap_or_default();
        for device in devices {
            let notification = NodeBuilder::new("notification")
                .attr("from", jid)
                .attr("type", "picture")
                .attr("id", w.next_iq_id())
                .attr("t", now.as_str())
                .children([change.clone()])
                .build();
            relay::deliver(w, &phone, device, notification);
        }
    }
    Ok(id)
}

/// Answers a linked device's `w:profile:picture` set for a group.
pub(crate) fn handle_iq(w: &mut World, conn: ConnId, iq: &Node) {
    let id = attr(iq, "id").unwrap_or_default();
    let target = attr(iq, "target").unwrap_or_default();
    let Some((actor, _)) = crate::iq::device_of(w, conn) else {
        return;
    };
    let jpeg =
        child(iq, "picture").map(|p| stanza::bytes(p).map(<[u8]>::to_vec).unwrap_or_default());
    let reply = match set_picture(w, &target, &actor, jpeg) {
        Ok(picture) => {
            let b = NodeBuilder::new("iq")
                .attr("id", id.as_str())
                .attr("type", "result")
                .attr("from", stanza::SERVER);
            if picture.is_empty() {
                b.build()
            } else {
                b.children([NodeBuilder::new("picture").attr("id", picture).build()])
                    .build()
            }
        }
        Err(why) => NodeBuilder::new("iq")
            .attr("id", id.as_str())
            .attr("type", "error")
            .attr("from", stanza::SERVER)
            .children([NodeBuilder::new("error")
                .attr("code", why.code().to_string())
                .attr("text", why.text())
                .build()])
            .build(),
    };
    w.send(conn, reply);
}

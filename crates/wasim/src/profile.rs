//! What an account shows others of itself, and whom it blocked: the about
//! text (usync's `status` protocol), the profile picture (its id in usync's
//! `picture` protocol, its address in a `w:profile:picture` IQ, the image
//! among the media blobs, and a `picture` notification when it changes),
//! and the blocklist IQ.

use bytes::Bytes;
use wacore_binary::Node;
use wacore_binary::builder::NodeBuilder;

use crate::error::SimError;
use crate::relay::{parse_jid, phone_of};
use crate::stanza::{self, attr, children, iq_error, iq_result};
use crate::world::{ConnId, World};

/// An account's profile as others see it.
#[derive(Default)]
pub(crate) struct Profile {
    pub about: Option<String>,
    pub picture: Option<Picture>,
    /// The picture is shown to nobody (WhatsApp's privacy setting): asked
    /// for, it is a 401.
    pub picture_hidden: bool,
}

pub(crate) struct Picture {
    /// WhatsApp's picture ids are numbers; a new picture has a new one.
    pub id: u64,
    /// Where the image is among the media blobs.
    pub direct_path: String,
}

/// The about text a `status` usync protocol answers.
pub(crate) fn status_node(profile: &Profile) -> Option<Node> {
    let about = profile.about.as_ref()?;
    Some(
        NodeBuilder::new("status")
            .attr("t", stanza::now_secs().to_string())
            .string_content(about.clone())
            .build(),
    )
}

/// The picture id a `picture` usync protocol answers.
pub(crate) fn picture_node(profile: &Profile) -> Option<Node> {
    if profile.picture_hidden {
        return None;
    }
    let picture = profile.picture.as_ref()?;
    Some(
        NodeBuilder::new("picture")
            .attr("id", picture.id.to_string())
            .build(),
    )
}

/// `<iq xmlns="w:profile:picture" type="get" target=JID>`: where the
/// target's picture is, a 404 when it has none, a 401 when it is hidden.
pub(crate) fn picture_iq(w: &World, id: &str, iq: &Node) -> Node {
    let account = attr(iq, "target")
        .and_then(|target| parse_jid(&target))
        .and_then(|addr| phone_of(w, &addr))
        .and_then(|phone| w.accounts.get(&phone));
    let Some(account) = account else {
        return iq_error(id, 404, "item-not-found");
    };
    let profile = &account.profile;
    if profile.picture_hidden {
        return iq_error(id, 401, "not-authorized");
    }
    let Some(picture) = &profile.picture else {
        return iq_error(id, 404, "item-not-found");
    };
    iq_result(
        id,
        vec![
            NodeBuilder::new("picture")
                .attr("id", picture.id.to_string())
                .attr("type", "image")
                .attr(
                    "url",
                    format!("https://{}{}", w.media_host, picture.direct_path),
                )
                .attr("direct_path", picture.direct_path.clone())
                .build(),
        ],
    )
}

/// The blocklist IQ: `get` lists the account's blocked JIDs; `set` blocks
/// or unblocks one (`<item action="block" jid=LID pn_jid=PN/>`, as
/// WhatsApp wants a block named by both).
pub(crate) fn blocklist_iq(w: &mut World, conn: ConnId, id: &str, iq: &Node) -> Node {
    let Some((phone, _)) = crate::iq::device_of(w, conn) else {
        return iq_error(id, 401, "not-authorized");
    };
    let Some(account) = w.accounts.get_mut(&phone) else {
        return iq_error(id, 404, "item-not-found");
    };
    if attr(iq, "type").as_deref() == Some("set") {
        for item in children(iq).iter().filter(|c| c.tag == "item") {
            let (Some(action), Some(jid)) = (attr(item, "action"), attr(item, "jid")) else {
                return iq_error(id, 400, "bad-request");
            };
            match action.as_str() {
                "block" if jid.ends_with("@lid") && attr(item, "pn_jid").is_none() => {
                    return iq_error(id, 400, "bad-request");
                }
                "block" => {
                    account.blocked.insert(jid);
                }
                "unblock" => {
                    account.blocked.remove(&jid);
                }
                _ => return iq_error(id, 400, "bad-request"),
            }
        }
        return iq_result(id, vec![]);
    }
    let items = account
        .blocked
        .iter()
        .map(|jid| NodeBuilder::new("item").attr("jid", jid.clone()).build());
    iq_result(id, vec![NodeBuilder::new("list").children(items).build()])
}

/// The account's about text from now on (`None`: none).
pub(crate) fn set_about(w: &mut World, phone: &str, about: Option<String>) -> Result<(), SimError> {
    let account = w.accounts.get_mut(phone).ok_or(SimError::NoSuchPhone)?;
    account.profile.about = about;
    Ok(())
}

/// The account's profile picture from now on (`None`: removed), and
/// whether it is hidden; the companions of each account in `notify` get
/// the `picture` notification WhatsApp sends a contact's devices.
pub(crate) fn set_picture(
    w: &mut World,
    phone: &str,
    image: Option<Bytes>,
    hidden: bool,
    notify: &[String],
) -> Result<Option<u64>, SimError> {
    if !w.accounts.contains_key(phone) {
        return Err(SimError::NoSuchPhone);
    }
    for other in notify {
        if !w.accounts.contains_key(other) {
            return Err(SimError::NoSuchPhone);
        }
    }
    w.pictures_made += 1;
    // Ids as WhatsApp's look: large, increasing.
    let id = 1_700_000_000 + w.pictures_made;
    let picture = image.map(|bytes| {
        let direct_path = format!("/v/pp/{phone}-{id}.jpg");
        w.blobs.insert(direct_path.clone(), bytes);
        Picture { id, direct_path }
    });
    let set = picture.as_ref().map(|p| p.id);
    let jid = format!("{phone}@s.whatsapp.net");
    if let Some(account) = w.accounts.get_mut(phone) {
        account.profile.picture = picture;
        account.profile.picture_hidden = hidden;
    }
    for other in notify {
        let devices: Vec<u16> = w
            .accounts
            .get(other)
            .map(|a| a.devices.keys().copied().collect())
            .unwrap_or_default();
        for device in devices {
            let change = match set {
                Some(id) => NodeBuilder::new("set")
                    .attr("jid", jid.clone())
                    .attr("id", id.to_string())
                    .build(),
                None => NodeBuilder::new("delete").attr("jid", jid.clone()).build(),
            };
            let node_id = w.next_iq_id();
            let node = NodeBuilder::new("notification")
                .attr("from", jid.clone())
                .attr("type", "picture")
                .attr("id", node_id)
                .attr("t", stanza::now_secs().to_string())
                .children([change])
                .build();
            crate::relay::deliver(w, other, device, node);
        }
    }
    Ok(set)
}

/// The JIDs `phone` blocked.
pub(crate) fn blocklist(w: &World, phone: &str) -> Result<Vec<String>, SimError> {
    let account = w.accounts.get(phone).ok_or(SimError::NoSuchPhone)?;
    Ok(account.blocked.iter().cloned().collect())
}

//! The group server on the wire: how a group and its members are named,
//! the `<group>` node of answers, the `w:gp2` notifications, a group
//! message's fan-out, and the `w:g2` IQs.

use wacore_binary::Node;
use wacore_binary::builder::NodeBuilder;

use super::{
    ADD_REQUEST_TTL, Change, Joined, ParticipantResult, Refusal, Setting, change, create,
    group_jid, invite, join, leave, member_group, preview, requests, set, set_description,
    set_subject,
};
use crate::relay::{self, parse_jid, phone_of};
use crate::stanza::{self, attr, child, children};
use crate::world::{ConnId, World};

/// How the server names `phone` in a group: by LID in a LID-addressed one.
pub(super) fn participant_jid(w: &World, jid: &str, phone: &str) -> String {
    let lid = w.groups.get(jid).is_some_and(|g| g.lid_addressed);
    match w.accounts.get(phone) {
        Some(a) if lid => a.lid_jid(),
        _ => format!("{phone}@s.whatsapp.net"),
    }
}

/// `<participant jid=.. [phone_number|lid]=.. [type]/>` for each person.
pub(super) fn participant_nodes(w: &World, jid: &str, phones: &[String]) -> Vec<Node> {
    let group = w.groups.get(jid);
    let lid_mode = group.is_some_and(|g| g.lid_addressed);
    let hide = group.is_some_and(|g| g.hide_phones);
    phones
        .iter()
        .map(|p| {
            let mut b = NodeBuilder::new("participant").attr("jid", participant_jid(w, jid, p));
            if let Some(a) = w.accounts.get(p) {
                if lid_mode {
                    if !hide {
                        b = b.attr("phone_number", a.jid());
                    }
                } else {
                    b = b.attr("lid", a.lid_jid());
                }
            }
            if let Some(g) = group {
                if g.creator.as_deref() == Some(p.as_str()) && g.is_admin(p) {
                    b = b.attr("type", "superadmin");
                } else if g.is_admin(p) {
                    b = b.attr("type", "admin");
                }
            }
            b.build()
        })
        .collect()
}

/// The `<group>` node of query, participating, create and invite answers.
pub(crate) fn group_node(w: &World, jid: &str, with_participants: bool) -> Node {
    let Some(g) = w.groups.get(jid) else {
        return NodeBuilder::new("group").attr("id", jid).build();
    };
    let id = jid.strip_suffix("@g.us").unwrap_or(jid);
    let mut b = NodeBuilder::new("group")
        .attr("id", id)
        .attr("subject", g.subject.as_str())
        .attr("creation", g.creation.to_string())
        .attr("s_t", g.subject_time.to_string())
        .attr("size", g.participants.len().to_string())
        .attr(
            "addressing_mode",
            if g.lid_addressed { "lid" } else { "pn" },
        );
    if let Some(creator) = &g.creator {
        b = b.attr("creator", participant_jid(w, jid, creator));
        if g.lid_addressed && !g.hide_phones {
            b = b.attr("creator_pn", format!("{creator}@s.whatsapp.net"));
        }
    }
    if let Some(owner) = &g.subject_owner {
        b = b.attr("s_o", participant_jid(w, jid, owner));
    }
    let mut kids = if with_participants {
        participant_nodes(w, jid, &g.participants)
    } else {
        Vec::new()
    };
    if let Some(d) = &g.description {
        kids.push(
            NodeBuilder::new("description")
                .attr("id", d.id.as_str())
                .attr("participant", participant_jid(w, jid, &d.owner))
                .attr("t", d.time.to_string())
                .children([NodeBuilder::new("body")
                    .string_content(d.body.as_str())
                    .build()])
                .build(),
        );
    }
    if g.announce {
        kids.push(NodeBuilder::new("announcement").build());
    }
    if g.locked {
        kids.push(NodeBuilder::new("locked").build());
    }
    if g.ephemeral > 0 {
        kids.push(
            NodeBuilder::new("ephemeral")
                .attr("expiration", g.ephemeral.to_string())
                .build(),
        );
    }
    if g.approval {
        kids.push(
            NodeBuilder::new("membership_approval_mode")
                .children([NodeBuilder::new("group_join").attr("state", "on").build()])
                .build(),
        );
    }
    b.children(kids).build()
}

/// `<notification type="w:gp2" from=group participant=actor>` with
/// `actions`, to every linked device of every member and of `also` (people
/// who just left). Queued per device until it acks, like any stanza.
pub(super) fn notify(
    w: &mut World,
    jid: &str,
    actor: Option<&str>,
    actions: Vec<Node>,
    also: &[String],
) {
    let Some(group) = w.groups.get(jid) else {
        return;
    };
    let mut people = group.participants.clone();
    people.extend(also.iter().cloned());
    let lid_mode = group.lid_addressed;
    let hide = group.hide_phones;
    let actor_jid = actor.map(|a| participant_jid(w, jid, a));
    let now = stanza::now_secs().to_string();
    for phone in people {
        let devices: Vec<u16> = w
            .accounts
            .get(&phone)
            .map(|a| a.devices.keys().copied().collect())
            .unwrap_or_default();
        for device in devices {
            let id = w.next_iq_id();
            let mut b = NodeBuilder::new("notification")
                .attr("from", jid)
                .attr("type", "w:gp2")
                .attr("id", id)
                .attr("t", now.as_str());
            if let Some(a) = &actor_jid {
                b = b.attr("participant", a.as_str());
                if lid_mode
                    && !hide
                    && let Some(p) = actor
                {
                    b = b.attr("participant_pn", format!("{p}@s.whatsapp.net"));
                }
            }
            if lid_mode {
                b = b.attr("addressing_mode", "lid");
            }
            relay::deliver(w, &phone, device, b.children(actions.clone()).build());
        }
    }
}

/// A message a linked device sends to a group: refused unless the sender
/// is in it (and an admin in announce mode); otherwise each member's
/// device gets its copy (the sender-key message, and the sender key itself
/// encrypted for it when the sender included one). Returns the refusal to
/// nack with.
pub(crate) fn fan_out(
    w: &mut World,
    sender: (&str, u16),
    to: &str,
    msg: &Node,
) -> Result<(), Refusal> {
    let (sender_phone, sender_device) = sender;
    let group = w.groups.get(to).ok_or(Refusal::NotFound)?;
    if !group.is_member(sender_phone) {
        return Err(Refusal::Forbidden);
    }
    if group.announce && !group.is_admin(sender_phone) {
        return Err(Refusal::Forbidden);
    }
    let members = group.participants.clone();
    let id = attr(msg, "id").unwrap_or_default();
    let kind = attr(msg, "type").unwrap_or_else(|| "text".to_owned());
    let skmsg = children(msg)
        .iter()
        .find(|c| c.tag == "enc" && attr(c, "type").as_deref() == Some("skmsg"))
        .cloned();
    // Pairwise copies (the sender key) by the device they are for.
    let mut pairwise: std::collections::HashMap<(String, u16), Node> = Default::default();
    for t in child(msg, "participants").map(children).unwrap_or(&[]) {
        if t.tag != "to" {
            continue;
        }
        let Some(addr) = attr(t, "jid").and_then(|j| parse_jid(&j)) else {
            continue;
        };
        if let (Some(phone), Some(enc)) = (phone_of(w, &addr), child(t, "enc")) {
            pairwise.insert((phone, addr.device), enc.clone());
        }
    }
    if let Some(g) = w.groups.get_mut(to) {
        g.sender_key_shares += pairwise.len() as u64;
    }
    let identity = child(msg, "device-identity").cloned();
    let push_name = w
        .accounts
        .get(sender_phone)
        .and_then(|a| a.devices.get(&sender_device))
        .map(|d| d.push_name.clone())
        .unwrap_or_default();
    let participant = participant_jid(w, to, sender_phone);
    let participant = match participant.split_once('@') {
        Some((user, server)) if sender_device != 0 => format!("{user}:{sender_device}@{server}"),
        _ => participant,
    };
    w.sent_by
        .insert(id.clone(), (sender_phone.to_owned(), sender_device));
    let now = stanza::now_secs().to_string();
    for member in members {
        let devices: Vec<u16> = std::iter::once(0)
            .chain(
                w.accounts
                    .get(&member)
                    .map(|a| a.devices.keys().copied().collect::<Vec<_>>())
                    .unwrap_or_default(),
            )
            .collect();
        for device in devices {
            if member == sender_phone && device == sender_device {
                continue;
            }
            let mut content: Vec<Node> = pairwise
                .get(&(member.clone(), device))
                .cloned()
                .into_iter()
                .collect();
            content.extend(skmsg.clone());
            if content.is_empty() {
                continue;
            }
            if content
                .iter()
                .any(|c| attr(c, "type").as_deref() == Some("pkmsg"))
            {
                content.extend(identity.clone());
            }
            let mut b = NodeBuilder::new("message")
                .attr("from", to)
                .attr("participant", participant.as_str())
                .attr("id", id.as_str())
                .attr("t", now.as_str())
                .attr("type", kind.as_str());
            if !push_name.is_empty() {
                b = b.attr("notify", push_name.as_str());
            }
            if let Some(mode) = attr(msg, "addressing_mode") {
                b = b.attr("addressing_mode", mode);
            }
            relay::deliver(w, &member, device, b.children(content).build());
        }
    }
    Ok(())
}

fn answer(id: &str, from: &str, kids: Vec<Node>) -> Node {
    let b = NodeBuilder::new("iq")
        .attr("id", id)
        .attr("type", "result")
        .attr("from", from);
    if kids.is_empty() {
        b.build()
    } else {
        b.children(kids).build()
    }
}

fn refuse(id: &str, from: &str, why: Refusal) -> Node {
    NodeBuilder::new("iq")
        .attr("id", id)
        .attr("type", "error")
        .attr("from", from)
        .children([NodeBuilder::new("error")
            .attr("code", why.code().to_string())
            .attr("text", why.text())
            .build()])
        .build()
}

fn result_nodes(tag: &'static str, results: &[ParticipantResult]) -> Node {
    let people: Vec<Node> = results
        .iter()
        .map(|r| {
            let mut b = NodeBuilder::new("participant").attr("jid", r.jid.as_str());
            if let Some(e) = r.error {
                b = b.attr("error", e.to_string());
            }
            if r.jid.ends_with("@lid")
                && let Some(p) = &r.phone
            {
                b = b.attr("phone_number", format!("{p}@s.whatsapp.net"));
            }
            if let Some(code) = &r.add_request {
                b = b.children([NodeBuilder::new("add_request")
                    .attr("code", code.as_str())
                    .attr(
                        "expiration",
                        (stanza::now_secs() + ADD_REQUEST_TTL).to_string(),
                    )
                    .build()]);
            }
            b.build()
        })
        .collect();
    NodeBuilder::new(tag).children(people).build()
}

fn named_participants(node: &Node) -> Vec<String> {
    children(node)
        .iter()
        .filter(|c| c.tag == "participant")
        .filter_map(|c| attr(c, "jid"))
        .collect()
}

/// Answers a `w:g2` IQ from a linked device.
pub(crate) fn handle_iq(w: &mut World, conn: ConnId, iq: &Node) {
    let id = attr(iq, "id").unwrap_or_default();
    let to = attr(iq, "to").unwrap_or_else(|| "g.us".to_owned());
    let Some((actor, _)) = crate::iq::device_of(w, conn) else {
        return;
    };
    let reply = match answer_iq(w, &actor, &id, &to, iq) {
        Ok(node) => node,
        Err(why) => refuse(&id, &to, why),
    };
    w.send(conn, reply);
}

pub(super) fn answer_iq(
    w: &mut World,
    actor: &str,
    id: &str,
    to: &str,
    iq: &Node,
) -> Result<Node, Refusal> {
    let kind = attr(iq, "type").unwrap_or_default();
    let first = children(iq).first().cloned().ok_or(Refusal::BadRequest)?;
    let tag = first.tag.to_string();
    let on_server = to == "g.us" || to == "@g.us";
    if on_server {
        return match (kind.as_str(), tag.as_str()) {
            ("get", "participating") => {
                let mut jids: Vec<&String> = w
                    .groups
                    .iter()
                    .filter(|(_, g)| g.is_member(actor))
                    .map(|(j, _)| j)
                    .collect();
                jids.sort();
                let groups: Vec<Node> = jids.iter().map(|j| group_node(w, j, true)).collect();
                Ok(answer(
                    id,
                    to,
                    vec![NodeBuilder::new("groups").children(groups).build()],
                ))
            }
            ("set", "create") => {
                let subject = attr(&first, "subject").unwrap_or_default();
                let members = named_participants(&first);
                let description = child(&first, "description")
                    .and_then(|d| child(d, "body"))
                    .and_then(stanza::bytes)
                    .map(|b| String::from_utf8_lossy(b).into_owned());
                let (jid, _) = create(w, actor, &subject, &members, description.as_deref())?;
                Ok(answer(id, to, vec![group_node(w, &jid, true)]))
            }
            ("set", "invite") => {
                let code = attr(&first, "code").unwrap_or_default();
                match join(w, actor, &code)? {
                    Joined::Joined(jid) => Ok(answer(
                        id,
                        to,
                        vec![NodeBuilder::new("group").attr("jid", jid).build()],
                    )),
                    Joined::Requested(jid) => Ok(answer(
                        id,
                        to,
                        vec![
                            NodeBuilder::new("membership_approval_request")
                                .attr("jid", jid)
                                .build(),
                        ],
                    )),
                }
            }
            ("get", "invite") => {
                let code = attr(&first, "code").unwrap_or_default();
                Ok(answer(id, to, vec![preview(w, &code)?]))
            }
            ("set", "leave") => {
                for g in children(&first).iter().filter(|c| c.tag == "group") {
                    let jid = group_jid(&attr(g, "id").unwrap_or_default());
                    leave(w, &jid, actor)?;
                }
                Ok(answer(id, to, vec![]))
            }
            _ => Err(Refusal::BadRequest),
        };
    }
    let jid = group_jid(to);
    match (kind.as_str(), tag.as_str()) {
        ("get", "query") => {
            member_group(w, &jid, actor)?;
            Ok(answer(id, to, vec![group_node(w, &jid, true)]))
        }
        ("set", "add" | "remove" | "promote" | "demote") => {
            let action = Change::from_tag(&tag).ok_or(Refusal::BadRequest)?;
            let results = change(w, &jid, actor, action, &named_participants(&first))?;
            Ok(answer(id, to, vec![result_nodes(action.tag(), &results)]))
        }
        ("get", "membership_approval_requests") => {
            Ok(answer(id, to, vec![requests::pending(w, &jid, actor)?]))
        }
        ("set", "membership_requests_action") => {
            let (approve, results) = requests::act(w, &jid, actor, &first)?;
            let tag = if approve { "approve" } else { "reject" };
            Ok(answer(
                id,
                to,
                vec![
                    NodeBuilder::new("membership_requests_action")
                        .children([result_nodes(tag, &results)])
                        .build(),
                ],
            ))
        }
        ("set", "subject") => {
            let subject = stanza::bytes(&first)
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            set_subject(w, &jid, actor, &subject)?;
            Ok(answer(id, to, vec![]))
        }
        ("set", "description") => {
            let body = child(&first, "body")
                .and_then(stanza::bytes)
                .map(|b| String::from_utf8_lossy(b).into_owned());
            let deleting = attr(&first, "delete").as_deref() == Some("true");
            let new_id = attr(&first, "id").unwrap_or_default();
            let prev = attr(&first, "prev");
            set_description(
                w,
                &jid,
                actor,
                if deleting { None } else { body.as_deref() },
                &new_id,
                prev.as_deref(),
            )?;
            Ok(answer(id, to, vec![]))
        }
        ("set", "announcement" | "not_announcement") => {
            set(w, &jid, actor, Setting::Announce(tag == "announcement"))?;
            Ok(answer(id, to, vec![]))
        }
        ("set", "locked" | "unlocked") => {
            set(w, &jid, actor, Setting::Locked(tag == "locked"))?;
            Ok(answer(id, to, vec![]))
        }
        ("set", "ephemeral" | "not_ephemeral") => {
            let secs = attr(&first, "expiration")
                .and_then(|e| e.parse().ok())
                .unwrap_or(0);
            set(w, &jid, actor, Setting::Ephemeral(secs))?;
            Ok(answer(id, to, vec![]))
        }
        ("set", "membership_approval_mode") => {
            let on = child(&first, "group_join")
                .and_then(|g| attr(g, "state"))
                .as_deref()
                == Some("on");
            set(w, &jid, actor, Setting::Approval(on))?;
            Ok(answer(id, to, vec![]))
        }
        (kind @ ("get" | "set"), "invite") => {
            let code = invite(w, &jid, actor, kind == "set")?;
            Ok(answer(
                id,
                to,
                vec![NodeBuilder::new("invite").attr("code", code).build()],
            ))
        }
        _ => Err(Refusal::BadRequest),
    }
}

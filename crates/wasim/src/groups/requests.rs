//! Membership requests of an approval-mode group: who asked to join (the
//! `<membership_approval_requests/>` get) and an admin's answer (the
//! `<membership_requests_action>` set), with a result per person as
//! WhatsApp gives it: 404 for someone who has no request, 406 when the
//! group has no room left. An approval adds the person, told to every
//! member's devices (theirs now included) as an `<add>` by the admin; a
//! rejection drops the request, told as `<revoked_membership_requests>`.

use wacore_binary::Node;
use wacore_binary::builder::NodeBuilder;

use super::wire::{notify, participant_jid, participant_nodes};
use super::{ParticipantResult, Refusal, admin_group, limit, resolve};
use crate::world::World;

/// The pending requests, oldest first, as the admin `actor` sees them:
/// `<membership_approval_request jid=.. request_time=../>` each.
pub(super) fn pending(w: &mut World, jid: &str, actor: &str) -> Result<Node, Refusal> {
    let requests = admin_group(w, jid, actor)?.requests.clone();
    let people: Vec<Node> = requests
        .iter()
        .map(|r| {
            NodeBuilder::new("membership_approval_request")
                .attr("jid", participant_jid(w, jid, &r.phone))
                .attr("request_time", r.time.to_string())
                .build()
        })
        .collect();
    Ok(NodeBuilder::new("membership_approval_requests")
        .children(people)
        .build())
}

/// The admin `actor` approves (`approve`) or rejects the requests of the
/// people `named` (JIDs, by number or LID); a result per person.
pub(crate) fn answer_requests(
    w: &mut World,
    jid: &str,
    actor: &str,
    approve: bool,
    named: &[String],
) -> Result<Vec<ParticipantResult>, Refusal> {
    let limit = limit(w);
    let mut group = admin_group(w, jid, actor)?.clone();
    let mut results = Vec::with_capacity(named.len());
    for n in named {
        let phone = resolve(w, n);
        let mut result = ParticipantResult {
            jid: n.clone(),
            phone: phone.clone(),
            error: None,
            add_request: None,
        };
        match phone.filter(|p| group.requests.iter().any(|r| &r.phone == p)) {
            None => result.error = Some(404),
            Some(_) if approve && group.participants.len() >= limit => result.error = Some(406),
            Some(p) => {
                group.requests.retain(|r| r.phone != p);
                if approve {
                    group.participants.push(p);
                }
            }
        }
        results.push(result);
    }
    let done: Vec<String> = results
        .iter()
        .filter(|r| r.error.is_none())
        .filter_map(|r| r.phone.clone())
        .collect();
    w.groups.insert(jid.to_owned(), group);
    if !done.is_empty() {
        let action = if approve {
            NodeBuilder::new("add")
                .children(participant_nodes(w, jid, &done))
                .build()
        } else {
            let people: Vec<Node> = done
                .iter()
                .map(|p| {
                    NodeBuilder::new("participant")
                        .attr("jid", participant_jid(w, jid, p))
                        .build()
                })
                .collect();
            NodeBuilder::new("revoked_membership_requests")
                .children(people)
                .build()
        };
        notify(w, jid, Some(actor), vec![action], &[]);
    }
    Ok(results)
}

/// `<membership_requests_action><approve|reject>…` from a linked device.
pub(super) fn act(
    w: &mut World,
    jid: &str,
    actor: &str,
    action: &Node,
) -> Result<(bool, Vec<ParticipantResult>), Refusal> {
    let inner = crate::stanza::children(action)
        .first()
        .ok_or(Refusal::BadRequest)?;
    let approve = match inner.tag.as_ref() {
        "approve" => true,
        "reject" => false,
        _ => return Err(Refusal::BadRequest),
    };
    let named: Vec<String> = crate::stanza::children(inner)
        .iter()
        .filter(|c| c.tag == "participant")
        .filter_map(|c| crate::stanza::attr(c, "jid"))
        .collect();
    if named.is_empty() {
        return Err(Refusal::BadRequest);
    }
    Ok((approve, answer_requests(w, jid, actor, approve, &named)?))
}

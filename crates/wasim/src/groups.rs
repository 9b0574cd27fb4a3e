//! WhatsApp's group server: the `w:g2` IQs whatsapp-rust's `groups()`
//! sends (create, participating, query, participants add/remove/promote/
//! demote, subject, description, settings, invites, join, leave), the same
//! operations for the fake phones (the admin API), a group message fanned
//! out to every member's devices, and the `w:gp2` notification every
//! member's linked devices get when anything changes.
//!
//! Refusals are WhatsApp's: 400 bad request, 403 not an admin (or not a
//! member), 404 no such group (or invite), 406 the group is full, 409 a
//! stale description id. Per participant: 409 already a member, 404 not on
//! WhatsApp or not a member, 403 privacy settings (with an `add_request`
//! invite), 406 no room left.

use wacore_binary::Node;
use wacore_binary::builder::NodeBuilder;

use crate::relay::{parse_jid, phone_of};
use crate::stanza;
use crate::world::{Group, GroupDescription, JoinRequest, World};

mod picture;
mod requests;
mod wire;

pub(crate) use picture::{handle_iq as picture_iq, is_for_group as picture_for_group, set_picture};
pub(crate) use requests::answer_requests;
pub(crate) use wire::{fan_out, group_node, handle_iq};
use wire::{notify, participant_jid, participant_nodes};

/// WhatsApp's limits.
pub(crate) const DEFAULT_LIMIT: usize = 1024;
const SUBJECT_MAX: usize = 100;
const DESCRIPTION_MAX: usize = 2048;
/// How long an `add_request` invite is good for, seconds.
const ADD_REQUEST_TTL: u64 = 3 * 24 * 3600;

/// Why the server refused a whole request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    BadRequest,
    Forbidden,
    NotFound,
    Full,
    Conflict,
}

impl Refusal {
    pub(crate) fn code(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::Full => 406,
            Self::Conflict => 409,
        }
    }

    pub(crate) fn text(self) -> &'static str {
        match self {
            Self::BadRequest => "bad-request",
            Self::Forbidden => "forbidden",
            Self::NotFound => "item-not-found",
            Self::Full => "not-acceptable",
            Self::Conflict => "conflict",
        }
    }
}

impl From<Refusal> for crate::SimError {
    fn from(r: Refusal) -> Self {
        Self::GroupRefused {
            code: r.code(),
            text: r.text(),
        }
    }
}

/// A participant change, by action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    Add,
    Remove,
    Promote,
    Demote,
}

impl Change {
    pub(crate) fn tag(self) -> &'static str {
        match self {
            Self::Add => "add",
            Self::Remove => "remove",
            Self::Promote => "promote",
            Self::Demote => "demote",
        }
    }

    fn from_tag(tag: &str) -> Option<Self> {
        Some(match tag {
            "add" => Self::Add,
            "remove" => Self::Remove,
            "promote" => Self::Promote,
            "demote" => Self::Demote,
            _ => return None,
        })
    }
}

/// One person's result of a participant change.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ParticipantResult {
    /// As the request named them (a phone number's or a LID's JID).
    pub jid: String,
    /// The phone number, when the person is on WhatsApp.
    pub phone: Option<String>,
    /// WhatsApp's per-person error code; `None`: done.
    pub error: Option<u16>,
    /// Privacy settings refused the add: the invite code an admin can send
    /// them instead.
    pub add_request: Option<String>,
}

/// A group as the admin API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GroupInfo {
    pub jid: String,
    pub subject: String,
    pub description: Option<String>,
    pub creator: Option<String>,
    pub participants: Vec<String>,
    pub admins: Vec<String>,
    pub announce: bool,
    pub locked: bool,
    pub ephemeral: u32,
    pub approval: bool,
    /// Waiting for an admin's approval, by phone number, oldest first.
    pub requests: Vec<String>,
    pub invite: String,
    pub lid_addressed: bool,
    /// The picture's id, when it has one.
    pub picture: Option<String>,
    /// Sender keys carried pairwise to members' devices beside group
    /// messages, so far.
    pub sender_key_shares: u64,
}

impl Group {
    pub(crate) fn is_member(&self, phone: &str) -> bool {
        self.participants.iter().any(|p| p == phone)
    }

    pub(crate) fn is_admin(&self, phone: &str) -> bool {
        self.admins.contains(phone)
    }

    fn info(&self, jid: &str) -> GroupInfo {
        GroupInfo {
            jid: jid.to_owned(),
            subject: self.subject.clone(),
            description: self.description.as_ref().map(|d| d.body.clone()),
            creator: self.creator.clone(),
            participants: self.participants.clone(),
            admins: self.admins.iter().cloned().collect(),
            announce: self.announce,
            locked: self.locked,
            ephemeral: self.ephemeral,
            approval: self.approval,
            requests: self.requests.iter().map(|r| r.phone.clone()).collect(),
            invite: self.invite.clone(),
            lid_addressed: self.lid_addressed,
            picture: self.picture.as_ref().map(|p| p.id.clone()),
            sender_key_shares: self.sender_key_shares,
        }
    }
}

fn new_code() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>())
}

fn limit(w: &World) -> usize {
    if w.group_limit == 0 {
        DEFAULT_LIMIT
    } else {
        w.group_limit
    }
}

/// A group's JID from what a request names: `<id>@g.us` or the bare id.
fn group_jid(named: &str) -> String {
    if named.contains('@') {
        named.to_owned()
    } else {
        format!("{named}@g.us")
    }
}

/// The phone number behind a participant JID (`phone@s.whatsapp.net` or
/// `lid@lid`), if it is on WhatsApp.
fn resolve(w: &World, jid: &str) -> Option<String> {
    let addr = parse_jid(jid)?;
    phone_of(w, &addr)
}

/// The group for an operation by `actor`: it exists and they are in it.
fn member_group<'a>(w: &'a mut World, jid: &str, actor: &str) -> Result<&'a mut Group, Refusal> {
    let group = w.groups.get_mut(jid).ok_or(Refusal::NotFound)?;
    if !group.is_member(actor) {
        return Err(Refusal::Forbidden);
    }
    Ok(group)
}

fn admin_group<'a>(w: &'a mut World, jid: &str, actor: &str) -> Result<&'a mut Group, Refusal> {
    let group = member_group(w, jid, actor)?;
    if !group.is_admin(actor) {
        return Err(Refusal::Forbidden);
    }
    Ok(group)
}

/// Makes a group of `creator` (its super admin) and whoever of `members`
/// can be added; the others are left out with a reason. Every member's
/// linked devices are told (`<create>`).
pub(crate) fn create(
    w: &mut World,
    creator: &str,
    subject: &str,
    members: &[String],
    description: Option<&str>,
) -> Result<(String, Vec<ParticipantResult>), Refusal> {
    if subject.trim().is_empty() || subject.chars().count() > SUBJECT_MAX {
        return Err(Refusal::BadRequest);
    }
    if description.is_some_and(|d| d.chars().count() > DESCRIPTION_MAX) {
        return Err(Refusal::BadRequest);
    }
    w.groups_made += 1;
    // WhatsApp's group ids: the creation time and a counter, digits.
    let jid = format!("1203630{:011}@g.us", w.groups_made);
    let now = stanza::now_secs();
    let mut group = Group {
        participants: vec![creator.to_owned()],
        admins: [creator.to_owned()].into(),
        creator: Some(creator.to_owned()),
        creation: now,
        subject: subject.to_owned(),
        subject_owner: Some(creator.to_owned()),
        subject_time: now,
        invite: new_code(),
        ..Group::default()
    };
    if let Some(body) = description.filter(|d| !d.is_empty()) {
        group.description = Some(GroupDescription {
            id: new_code(),
            body: body.to_owned(),
            owner: creator.to_owned(),
            time: now,
        });
    }
    let limit = limit(w);
    let results = members
        .iter()
        .map(|m| admit(w, &mut group, m, limit))
        .collect();
    w.groups.insert(jid.clone(), group);
    let node = group_node(w, &jid, true);
    notify(
        w,
        &jid,
        Some(creator),
        vec![NodeBuilder::new("create").children([node]).build()],
        &[],
    );
    Ok((jid, results))
}

/// One person's add: why not, or in they go.
fn admit(w: &World, group: &mut Group, named: &str, limit: usize) -> ParticipantResult {
    let phone = resolve(w, named);
    let mut result = ParticipantResult {
        jid: named.to_owned(),
        phone: phone.clone(),
        error: None,
        add_request: None,
    };
    let Some(phone) = phone else {
        result.error = Some(404);
        return result;
    };
    if group.is_member(&phone) {
        result.error = Some(409);
    } else if w.add_restricted.contains(&phone) {
        result.error = Some(403);
        result.add_request = Some(group.invite.clone());
    } else if group.participants.len() >= limit {
        result.error = Some(406);
    } else {
        group.participants.push(phone.clone());
        group.requests.retain(|r| r.phone != phone);
    }
    result
}

/// Adds, removes, promotes or demotes people, as `actor` (an admin).
/// Returns a result per person, and tells every member's devices (the
/// removed ones too) what was done.
pub(crate) fn change(
    w: &mut World,
    jid: &str,
    actor: &str,
    action: Change,
    named: &[String],
) -> Result<Vec<ParticipantResult>, Refusal> {
    let limit = limit(w);
    let mut group = admin_group(w, jid, actor)?.clone();
    if action == Change::Add && group.participants.len() >= limit {
        return Err(Refusal::Full);
    }
    let mut results = Vec::with_capacity(named.len());
    for n in named {
        let result = match action {
            Change::Add => admit(w, &mut group, n, limit),
            _ => {
                let phone = resolve(w, n);
                let mut r = ParticipantResult {
                    jid: n.clone(),
                    phone: phone.clone(),
                    error: None,
                    add_request: None,
                };
                match phone.filter(|p| group.is_member(p)) {
                    None => r.error = Some(404),
                    Some(p) => match action {
                        Change::Remove => {
                            group.participants.retain(|m| m != &p);
                            group.admins.remove(&p);
                        }
                        Change::Promote => {
                            group.admins.insert(p);
                        }
                        Change::Demote => {
                            group.admins.remove(&p);
                        }
                        Change::Add => {}
                    },
                }
                r
            }
        };
        results.push(result);
    }
    let done: Vec<String> = results
        .iter()
        .filter(|r| r.error.is_none())
        .filter_map(|r| r.phone.clone())
        .collect();
    w.groups.insert(jid.to_owned(), group);
    if !done.is_empty() {
        let removed = if action == Change::Remove {
            done.clone()
        } else {
            Vec::new()
        };
        let people = participant_nodes(w, jid, &done);
        notify(
            w,
            jid,
            Some(actor),
            vec![NodeBuilder::new(action.tag()).children(people).build()],
            &removed,
        );
    }
    Ok(results)
}

/// `actor` leaves the group; the others are told (and `actor`'s own
/// devices, which learn they are out).
pub(crate) fn leave(w: &mut World, jid: &str, actor: &str) -> Result<(), Refusal> {
    let group = member_group(w, jid, actor)?;
    group.participants.retain(|m| m != actor);
    group.admins.remove(actor);
    // A group its last admin left gets a new admin, as WhatsApp picks one.
    if group.admins.is_empty()
        && let Some(first) = group.participants.first().cloned()
    {
        group.admins.insert(first);
    }
    let people = participant_nodes(w, jid, &[actor.to_owned()]);
    notify(
        w,
        jid,
        Some(actor),
        vec![
            NodeBuilder::new("remove")
                .attr("reason", "leave")
                .children(people)
                .build(),
        ],
        &[actor.to_owned()],
    );
    Ok(())
}

/// A member renames the group (only admins when it is locked).
pub(crate) fn set_subject(
    w: &mut World,
    jid: &str,
    actor: &str,
    subject: &str,
) -> Result<(), Refusal> {
    if subject.trim().is_empty() || subject.chars().count() > SUBJECT_MAX {
        return Err(Refusal::BadRequest);
    }
    let group = member_group(w, jid, actor)?;
    if group.locked && !group.is_admin(actor) {
        return Err(Refusal::Forbidden);
    }
    let now = stanza::now_secs();
    group.subject = subject.to_owned();
    group.subject_owner = Some(actor.to_owned());
    group.subject_time = now;
    let owner = participant_jid(w, jid, actor);
    notify(
        w,
        jid,
        Some(actor),
        vec![
            NodeBuilder::new("subject")
                .attr("subject", subject)
                .attr("s_o", owner)
                .attr("s_t", now.to_string())
                .build(),
        ],
        &[],
    );
    Ok(())
}

/// A member sets (or, with `None`, deletes) the description; `prev` must
/// name the current one.
pub(crate) fn set_description(
    w: &mut World,
    jid: &str,
    actor: &str,
    body: Option<&str>,
    id: &str,
    prev: Option<&str>,
) -> Result<(), Refusal> {
    if body.is_some_and(|b| b.chars().count() > DESCRIPTION_MAX) {
        return Err(Refusal::BadRequest);
    }
    let group = member_group(w, jid, actor)?;
    if group.locked && !group.is_admin(actor) {
        return Err(Refusal::Forbidden);
    }
    if group.description.as_ref().map(|d| d.id.as_str()) != prev {
        return Err(Refusal::Conflict);
    }
    let id = if id.is_empty() {
        new_code()
    } else {
        id.to_owned()
    };
    group.description = body.filter(|b| !b.is_empty()).map(|b| GroupDescription {
        id: id.clone(),
        body: b.to_owned(),
        owner: actor.to_owned(),
        time: stanza::now_secs(),
    });
    let action = match body.filter(|b| !b.is_empty()) {
        Some(b) => NodeBuilder::new("description")
            .attr("id", id)
            .children([NodeBuilder::new("body").string_content(b).build()])
            .build(),
        None => NodeBuilder::new("description")
            .attr("id", id)
            .children([NodeBuilder::new("delete").build()])
            .build(),
    };
    notify(w, jid, Some(actor), vec![action], &[]);
    Ok(())
}

/// A group setting an admin changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Setting {
    Announce(bool),
    Locked(bool),
    Ephemeral(u32),
    Approval(bool),
}

pub(crate) fn set(w: &mut World, jid: &str, actor: &str, setting: Setting) -> Result<(), Refusal> {
    let group = admin_group(w, jid, actor)?;
    let action = match setting {
        Setting::Announce(on) => {
            group.announce = on;
            NodeBuilder::new(if on {
                "announcement"
            } else {
                "not_announcement"
            })
            .build()
        }
        Setting::Locked(on) => {
            group.locked = on;
            NodeBuilder::new(if on { "locked" } else { "unlocked" }).build()
        }
        Setting::Ephemeral(secs) => {
            group.ephemeral = secs;
            if secs == 0 {
                NodeBuilder::new("not_ephemeral").build()
            } else {
                NodeBuilder::new("ephemeral")
                    .attr("expiration", secs.to_string())
                    .build()
            }
        }
        Setting::Approval(on) => {
            group.approval = on;
            NodeBuilder::new("membership_approval_mode")
                .children([NodeBuilder::new("group_join")
                    .attr("state", if on { "on" } else { "off" })
                    .build()])
                .build()
        }
    };
    notify(w, jid, Some(actor), vec![action], &[]);
    Ok(())
}

/// The invite code (admins only); `reset` makes a new one, and the old
/// link stops working.
pub(crate) fn invite(
    w: &mut World,
    jid: &str,
    actor: &str,
    reset: bool,
) -> Result<String, Refusal> {
    let group = admin_group(w, jid, actor)?;
    if !reset {
        return Ok(group.invite.clone());
    }
    group.invite = new_code();
    let code = group.invite.clone();
    notify(
        w,
        jid,
        Some(actor),
        vec![NodeBuilder::new("revoke").build()],
        &[],
    );
    Ok(code)
}

fn by_code(w: &World, code: &str) -> Option<String> {
    w.groups
        .iter()
        .find(|(_, g)| !code.is_empty() && g.invite == code)
        .map(|(jid, _)| jid.clone())
}

/// What joining through `code` does: in, or waiting for approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Joined {
    Joined(String),
    Requested(String),
}

pub(crate) fn join(w: &mut World, actor: &str, code: &str) -> Result<Joined, Refusal> {
    let jid = by_code(w, code).ok_or(Refusal::NotFound)?;
    let limit = limit(w);
    let Some(group) = w.groups.get_mut(&jid) else {
        return Err(Refusal::NotFound);
    };
    if group.is_member(actor) {
        return Ok(Joined::Joined(jid));
    }
    if group.approval {
        if !group.requests.iter().any(|r| r.phone == actor) {
            group.requests.push(JoinRequest {
                phone: actor.to_owned(),
                time: stanza::now_secs(),
            });
        }
        let people = participant_nodes(w, &jid, &[actor.to_owned()]);
        notify(
            w,
            &jid,
            Some(actor),
            vec![
                NodeBuilder::new("created_membership_requests")
                    .attr("request_method", "invite_link")
                    .children(
                        people
                            .into_iter()
                            .map(|mut p| {
                                p.tag = "requested_user".into();
                                p
                            })
                            .collect::<Vec<_>>(),
                    )
                    .build(),
            ],
            &[],
        );
        return Ok(Joined::Requested(jid));
    }
    if group.participants.len() >= limit {
        return Err(Refusal::Full);
    }
    group.participants.push(actor.to_owned());
    let people = participant_nodes(w, &jid, &[actor.to_owned()]);
    notify(
        w,
        &jid,
        Some(actor),
        vec![
            NodeBuilder::new("add")
                .attr("reason", "invite")
                .children(people)
                .build(),
        ],
        &[],
    );
    Ok(Joined::Joined(jid))
}

/// The group a code leads to, for a preview.
pub(crate) fn preview(w: &World, code: &str) -> Result<Node, Refusal> {
    let jid = by_code(w, code).ok_or(Refusal::NotFound)?;
    Ok(group_node(w, &jid, false))
}

/// The admin API's view of a group.
pub(crate) fn info(w: &World, jid: &str) -> Option<GroupInfo> {
    w.groups.get(jid).map(|g| g.info(jid))
}

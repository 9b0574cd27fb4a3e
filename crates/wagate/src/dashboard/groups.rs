//! A session's groups and one group's participants, from the gateway's
//! store (what `GET /sessions/{id}/groups` lists), so they show whatever
//! the session's status. Subjects and descriptions are written by
//! strangers: they reach the page only as text spliced into `maud`
//! markup, which escapes it.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::auth::CurrentUser;
use super::error::DashError;
use super::html::{Nav, user_page};
use super::session::parse_id;
use super::view::{phone, time};
use crate::app::AppState;
use crate::domain::{GroupInfo, GroupMember, GroupRole};
use crate::http::extract::cut_page;

/// Groups a page shows; the next page follows the last one's id.
const PAGE: u32 = 100;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ListQuery {
    /// The last group of the previous page.
    after: Option<String>,
}

fn title_of(record: &crate::store::SessionRecord) -> &str {
    record
        .label
        .as_ref()
        .map_or("Untitled session", |l| l.as_str())
}

/// `…@g.us` as the page's path names it: the digits (and dash) before.
fn short(jid: &str) -> &str {
    jid.strip_suffix("@g.us").unwrap_or(jid)
}

fn settings(group: &GroupInfo) -> Markup {
    let s = group.settings;
    html! {
        @if s.announce { span.badge title="Only admins send messages" { "announce" } " " }
        @if s.locked { span.badge title="Only admins edit the group's info" { "locked" } " " }
        @if s.approval { span.badge title="Admins approve who joins" { "approval" } " " }
        @if s.ephemeral > 0 {
            span.badge title="Disappearing messages" { "disappearing " (s.ephemeral / 3600) " h" }
        }
    }
}

/// The session's groups, by group id, a page of them.
pub(super) async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Query(query): Query<ListQuery>,
) -> Result<Response, DashError> {
    let id = parse_id(&id)?;
    let record = state.sessions.get(user.org().id, id).await?;
    let mut groups = state
        .store
        .groups()
        .list_groups(id, query.after.as_deref(), PAGE + 1)
        .await?;
    let next = cut_page(&mut groups, PAGE, |g| g.id.clone());
    let title = title_of(&record);
    let body = html! {
        div.page-head {
            div {
                a.back href={ "/sessions/" (id) } { "← " (title) }
                h1 { "Groups" }
                p.muted.small {
                    "The groups this number is in, as WhatsApp last told the gateway. "
                    "They are read again on every connect and follow every change."
                }
            }
        }
        section.card.flush data-groups data-session-id=(id) {
            @if groups.is_empty() {
                p.empty data-groups-empty { "This number is in no group the gateway knows of." }
            } @else {
                div.table-wrap {
                    table {
                        thead { tr { th { "Subject" } th { "Members" } th { "Settings" } th { "Created" } th { "Group" } } }
                        tbody {
                            @for group in &groups {
                                tr data-group-id=(group.id) {
                                    td {
                                        a.group-subject href={ "/sessions/" (id) "/groups/" (short(&group.id)) } {
                                            (group.subject)
                                        }
                                    }
                                    td data-group-size { (group.participants.len()) }
                                    td { (settings(group)) }
                                    td.cell-time { @if let Some(at) = group.created_at { (time(at)) } }
                                    td.mono.small { (group.id) }
                                }
                            }
                        }
                    }
                }
                @if let Some(next) = &next {
                    p { a.button href={ "/sessions/" (id) "/groups?after=" (next) } data-groups-next { "Next page →" } }
                }
            }
        }
    };
    Ok(user_page(
        &state,
        &user,
        "Groups",
        Nav::Sessions,
        StatusCode::OK,
        body,
    ))
}

fn role(role: GroupRole) -> Markup {
    match role {
        GroupRole::SuperAdmin => html! { span.badge data-role="superadmin" { "owner" } },
        GroupRole::Admin => html! { span.badge data-role="admin" { "admin" } },
        GroupRole::Member => html! { span.muted data-role="member" { "member" } },
    }
}

fn member_row(member: &GroupMember) -> Markup {
    html! {
        tr data-participant {
            td {
                @if let Some(number) = &member.phone {
                    span.phone { (phone(number)) }
                } @else {
                    span.muted { "number not known yet" }
                }
            }
            td.mono.small { @if let Some(lid) = &member.lid { (lid) } }
            td { (role(member.role)) }
        }
    }
}

/// One group: subject, description, settings and every participant with
/// number, LID and role.
pub(super) async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((id, group)): Path<(String, String)>,
) -> Result<Response, DashError> {
    let id = parse_id(&id)?;
    let record = state.sessions.get(user.org().id, id).await?;
    let jid = if group.contains('@') {
        group
    } else {
        format!("{group}@g.us")
    };
    let Some(group) = state.store.groups().get_group(id, &jid).await? else {
        return Err(DashError::NotFound);
    };
    let body = html! {
        div.page-head {
            div {
                a.back href={ "/sessions/" (id) "/groups" } { "← Groups of " (title_of(&record)) }
                h1 data-group-subject { (group.subject) }
                p.muted.mono.small { (group.id) }
            }
        }
        section.card data-group=(group.id) {
            @if let Some(description) = &group.description {
                p.group-description { (description) }
            }
            div.status-row {
                div.kv { span { "Members" } strong data-group-size { (group.participants.len()) } }
                @if let Some(owner) = &group.owner {
                    div.kv { span { "Owner" } strong.phone { (phone(owner)) } }
                }
                @if let Some(at) = group.created_at {
                    div.kv { span { "Created" } (time(at)) }
                }
                div.kv { span { "Settings" } (settings(&group)) }
            }
        }
        section.card.flush data-participants {
            div.card-head { h2 { "Participants" } }
            div.table-wrap {
                table {
                    thead { tr { th { "Number" } th { "LID" } th { "Role" } } }
                    tbody {
                        @for member in &group.participants { (member_row(member)) }
                    }
                }
            }
        }
    };
    Ok(user_page(
        &state,
        &user,
        &group.subject,
        Nav::Sessions,
        StatusCode::OK,
        body,
    ))
}

//! A session's chats, latest activity first, and one chat's messages,
//! newest first, each paged with a link to what comes next: the same
//! store reads as `GET /sessions/{id}/chats` and `…/chats/{chat}/messages`;
//! and a box to reply in the chat with a text, sent through the outbox as
//! the API sends.
//! Names and message text are written by strangers: they only reach the
//! page as text spliced into `maud` markup, which escapes it.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::auth::CurrentUser;
use super::csrf::CsrfForm;
use super::error::DashError;
use super::html::{Nav, csrf_field, user_page};
use super::messages::{chat_name, row};
use super::session::{describe, parse_id};
use super::view::time;
use crate::app::AppState;
use crate::domain::{MessageId, Mute};
use crate::http::extract::cut_page;
use crate::messages::{Content, MAX_TEXT_CHARS, OutgoingMessage, Recipient};
use crate::session::manager::Outgoing;
use crate::store::MessageQuery;
use crate::store::chats::{ChatKind, ChatRecord};

/// Rows a page shows.
const PAGE: u32 = 50;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Paging {
    /// The list: after the chat whose latest message is this.
    cursor: Option<String>,
    /// A chat's messages: older than this one.
    before: Option<String>,
    /// A chat's page after a reply was queued (`1`).
    sent: Option<String>,
}

/// A page position from the query string: a malformed one is no page.
fn position(raw: Option<&str>) -> Result<Option<MessageId>, DashError> {
    raw.filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| DashError::NotFound))
        .transpose()
}

pub(super) async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Query(paging): Query<Paging>,
) -> Result<Response, DashError> {
    let id = parse_id(&id)?;
    let org = user.org().id;
    let record = state.sessions.get(org, id).await?;
    let cursor = position(paging.cursor.as_deref())?;
    let mut chats = state.sessions.chats(org, id, cursor, PAGE + 1).await?;
    let next = cut_page(&mut chats, PAGE, |c| c.last_message.id);
    let title = record
        .label
        .as_ref()
        .map_or("Untitled session", |l| l.as_str());
    let body = html! {
        div.page-head {
            div {
                a.back href={ "/sessions/" (id) } { "← " (title) }
                h1 { "Chats" }
                p.muted.small { "Latest activity first, as the session stored them." }
            }
        }
        section.card.flush data-chats data-session-id=(id) {
            @if chats.is_empty() {
                p.empty data-chats-empty { "No chats yet. What this session sends or receives, and the history its phone shares, shows here." }
            } @else {
                div.table-wrap {
                    table {
                        thead {
                            tr { th { "Last activity" } th { "Chat" } th { "Last message" } th { "Unread" } th { "" } }
                        }
                        tbody {
                            @for chat in &chats { (chat_row(id, chat)) }
                        }
                    }
                }
            }
            @if let Some(next) = next {
                p.pager { a data-older href={ "/sessions/" (id) "/chats?cursor=" (next) } { "Older chats →" } }
            }
        }
    };
    Ok(user_page(
        &state,
        &user,
        "Chats",
        Nav::Sessions,
        StatusCode::OK,
        body,
    ))
}

fn chat_row(session: crate::domain::SessionId, chat: &ChatRecord) -> Markup {
    let muted = chat.mute.is_muted(chrono::Utc::now());
    html! {
        tr data-chat-id=(chat.chat) {
            td.cell-time { (time(chat.last_at)) }
            td {
                a href={ "/sessions/" (session) "/chats/" (chat.chat) } {
                    @if let Some(name) = &chat.name { span.push-name { (name) } " " }
                    span.mono.small { (chat_name(&chat.chat)) }
                }
                @if chat.kind == ChatKind::Group { " " span.badge { "group" } }
            }
            td.message-text { (super::messages::summary(&chat.last_message.kind, &chat.last_message.content)) }
            td data-unread=(chat.unread) { @if chat.unread > 0 { strong { (chat.unread) } } @else { span.muted { "0" } } }
            td.small {
                @if chat.pinned { span.badge data-pinned { "pinned" } " " }
                @if chat.archived { span.badge data-archived { "archived" } " " }
                @if muted {
                    span.badge data-muted {
                        @match chat.mute { Mute::Until(at) => { "muted until " (time(at)) }, _ => "muted" }
                    }
                }
            }
        }
    }
}

pub(super) async fn messages(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((id, chat)): Path<(String, String)>,
    Query(paging): Query<Paging>,
) -> Result<Response, DashError> {
    let before = position(paging.before.as_deref())?;
    let sent = paging
        .sent
        .is_some()
        .then(|| Ok("Sent. Its status shows below.".to_string()));
    chat_page(&state, &user, &id, &chat, before, sent, StatusCode::OK).await
}

/// A chat's page: its messages from `before` back, the reply box, and an
/// answer to the reply just sent (`Ok`: a notice, `Err`: what went wrong).
async fn chat_page(
    state: &AppState,
    user: &CurrentUser,
    id: &str,
    chat: &str,
    before: Option<MessageId>,
    answer: Option<Result<String, String>>,
    status: StatusCode,
) -> Result<Response, DashError> {
    let id = parse_id(id)?;
    let org = user.org().id;
    let Some(found) = state.sessions.chat(org, id, chat).await? else {
        return Err(DashError::NotFound);
    };
    let query = MessageQuery {
        chat: Some(found.chat.clone()),
        direction: None,
        status: None,
        limit: PAGE + 1,
        before,
        after: None,
    };
    let mut messages = state.sessions.messages(org, id, &query).await?;
    let older = cut_page(&mut messages, PAGE, |m| m.id);
    let heading = found.name.clone().unwrap_or_else(|| chat_name(&found.chat));
    let body = html! {
        div.page-head {
            div {
                a.back href={ "/sessions/" (id) "/chats" } { "← Chats" }
                h1 { (heading) }
                p.muted.mono.small { (found.chat) }
            }
        }
        @match &answer {
            Some(Ok(notice)) => div.alert.alert-success role="status" data-reply-sent { (notice) },
            Some(Err(error)) => div.alert.alert-error role="alert" data-reply-error { (error) },
            None => {},
        }
        section.card {
            form.create-form method="post" action={ "/sessions/" (id) "/chats/" (found.chat) "/reply" } data-reply {
                (csrf_field(user))
                div.field.grow {
                    label for="text" { "Reply" }
                    textarea #text name="text" rows="2" maxlength=(MAX_TEXT_CHARS) required {}
                }
                button.button.primary type="submit" { "Send" }
            }
        }
        section.card.flush.messages data-chat-messages data-chat-id=(found.chat) {
            div.table-wrap {
                table {
                    thead {
                        tr {
                            th { "Time" } th { "" } th { "Chat" } th { "From" }
                            th { "Kind" } th { "Message" } th { "Status" }
                        }
                    }
                    tbody {
                        @for message in &messages { (row(message)) }
                    }
                }
            }
            @if let Some(older) = older {
                p.pager {
                    a data-older href={ "/sessions/" (id) "/chats/" (found.chat) "?before=" (older) } { "Older messages →" }
                }
            }
        }
    };
    Ok(user_page(
        state,
        user,
        &heading,
        Nav::Sessions,
        status,
        body,
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ReplyForm {
    text: String,
}

/// Sends a text to the chat through the outbox, as `POST …/messages`
/// does; the page shows it with its status.
pub(super) async fn reply(
    State(state): State<AppState>,
    Path((id, chat)): Path<(String, String)>,
    CsrfForm { user, form }: CsrfForm<ReplyForm>,
) -> Result<Response, DashError> {
    let session = parse_id(&id)?;
    let org = user.org().id;
    let Some(found) = state.sessions.chat(org, session, &chat).await? else {
        return Err(DashError::NotFound);
    };
    let text = form.text.trim();
    let refused = if text.is_empty() {
        Some("Write a message to send.".to_string())
    } else if text.chars().count() > MAX_TEXT_CHARS {
        Some(format!("A message is at most {MAX_TEXT_CHARS} characters."))
    } else {
        None
    };
    if let Some(error) = refused {
        let status = StatusCode::UNPROCESSABLE_ENTITY;
        return chat_page(&state, &user, &id, &chat, None, Some(Err(error)), status).await;
    }
    let to: Recipient = found.chat.parse().map_err(|_| DashError::NotFound)?;
    let message = OutgoingMessage {
        to,
        reply_to: None,
        content: Content::Text {
            body: text.to_owned(),
            link_preview: false,
        },
    };
    let content = serde_json::to_value(&message).map_err(|e| DashError::Internal(e.to_string()))?;
    let outgoing = Outgoing {
        chat: message.to.to_string(),
        kind: message.content.kind().as_str().to_string(),
        content,
        media: None,
    };
    match state
        .sessions
        .accept_message(org, session, outgoing, None)
        .await
    {
        // Back to the chat's page, so that reloading it sends nothing.
        Ok(_) => Ok(
            Redirect::to(&format!("/sessions/{session}/chats/{}?sent=1", found.chat))
                .into_response(),
        ),
        Err(error) => {
            let error = Some(Err(describe(error)?));
            chat_page(&state, &user, &id, &chat, None, error, StatusCode::CONFLICT).await
        }
    }
}

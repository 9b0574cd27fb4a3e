//! A session's recent messages, both ways, newest first, on its page.
//! Incoming text is written by strangers: it only ever reaches the page as
//! text spliced into `maud` markup, which escapes it.

use axum::extract::{Path, State};
use maud::{Markup, html};
use serde_json::Value;

use super::auth::CurrentUser;
use super::error::DashError;
use super::html::Html;
use super::session::parse_id;
use super::view::{phone, time};
use crate::app::AppState;
use crate::domain::{Direction, SessionId};
use crate::store::{MessageQuery, MessageRecord};

/// How many the page shows; the API pages through the rest.
pub(super) const RECENT: u32 = 50;

/// The section, from the same query `GET /sessions/{id}/messages` makes.
pub(super) async fn section(
    state: &AppState,
    user: &CurrentUser,
    id: SessionId,
) -> Result<Markup, DashError> {
    let query = MessageQuery {
        chat: None,
        direction: None,
        status: None,
        limit: RECENT,
        before: None,
        after: None,
    };
    let messages = state.sessions.messages(user.org().id, id, &query).await?;
    Ok(html! {
        section.card.flush.messages data-messages data-session-id=(id) {
            div.card-head {
                h2 { "Messages" }
                p.muted.small { "The latest " (RECENT) ", newest first. The API lists them all." }
            }
            @if messages.is_empty() {
                p.empty data-messages-empty { "No messages yet. What this session sends or receives shows here." }
            } @else {
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
            }
        }
    })
}

/// The section alone, for the page script to swap in when a message
/// arrives or changes status.
pub(super) async fn fragment(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Html, DashError> {
    Ok(section(&state, &user, parse_id(&id)?).await?.into())
}

pub(super) fn row(message: &MessageRecord) -> Markup {
    let received = message.received.as_ref();
    let at = received.map_or(message.created_at, |r| r.sent_at);
    html! {
        tr data-message-id=(message.id) data-direction=(message.direction.as_str()) {
            td.cell-time { (time(at)) }
            td.direction {
                @match message.direction {
                    Direction::Incoming => span title="Received" { "↓ in" },
                    Direction::Outgoing => span title="Sent through the gateway" { "↑ out" },
                }
            }
            td.mono.small { (chat_name(&message.chat)) }
            td {
                @match received {
                    Some(r) if r.from_me => span.muted { "This account's phone" },
                    Some(r) => {
                        @if let Some(name) = &r.push_name { span.push-name { (name) } " " }
                        @if let Some(number) = &r.sender.phone {
                            span.phone { (phone(number)) }
                        } @else if let Some(lid) = &r.sender.lid {
                            span.mono.small { (lid) "@lid" }
                        }
                    }
                    None => span.muted { "This session" },
                }
            }
            td { (message.kind) }
            td.message-text { (summary(&message.kind, &message.content)) }
            td {
                @match message.direction {
                    Direction::Outgoing => {
                        span class={ "badge badge-msg-" (message.status.as_str()) }
                            data-message-status=(message.status.as_str()) {
                            (message.status.as_str())
                        }
                        @if let Some(failure) = &message.failure {
                            " " span.muted.small { (failure.reason.as_str()) }
                        }
                    }
                    Direction::Incoming => span.muted { "received" },
                }
            }
        }
    }
}

/// A one-to-one chat as its number; groups and others as WhatsApp names
/// them.
pub(super) fn chat_name(jid: &str) -> String {
    match jid.strip_suffix("@s.whatsapp.net") {
        Some(number) if number.bytes().all(|b| b.is_ascii_digit()) => phone(number),
        _ => jid.to_string(),
    }
}

/// A line saying what a message holds: its text, or what kind of thing it
/// is. Reads the stored content JSON, whose `type` shapes are shared by
/// both directions (an outgoing message stores the whole request, the
/// shape under `content`).
pub(super) fn summary(kind: &str, stored: &Value) -> String {
    let content = stored
        .get("content")
        .filter(|c| c.is_object())
        .unwrap_or(stored);
    let field = |name: &str| {
        content
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    match content.get("type").and_then(Value::as_str).unwrap_or(kind) {
        "text" => field("body").unwrap_or_default().to_string(),
        "media" => match field("caption").or_else(|| field("file_name")) {
            Some(text) => format!("[{kind}] {text}"),
            None => format!("[{kind}]"),
        },
        "location" => match field("name").or_else(|| field("address")) {
            Some(place) => format!("Location: {place}"),
            None => {
                let coordinate = |name| {
                    content
                        .get(name)
                        .and_then(Value::as_f64)
                        .unwrap_or_default()
                };
                format!(
                    "Location: {}, {}",
                    coordinate("latitude"),
                    coordinate("longitude")
                )
            }
        },
        "contacts" => {
            let count = content
                .get("vcards")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            if count == 1 {
                "A contact card".to_string()
            } else {
                format!("{count} contact cards")
            }
        }
        "poll" => format!("Poll: {}", field("question").unwrap_or_default()),
        "poll_vote" => match content.get("selected_options").and_then(Value::as_array) {
            Some(chosen) if chosen.is_empty() => "Took a poll vote back".to_string(),
            Some(chosen) => {
                let names: Vec<&str> = chosen.iter().filter_map(Value::as_str).collect();
                format!("Voted: {}", names.join(", "))
            }
            None => "Voted on a poll".to_string(),
        },
        "reaction" => match field("emoji") {
            Some(emoji) => format!("Reacted {emoji}"),
            None => "Took a reaction back".to_string(),
        },
        "edit" => format!("Edited: {}", field("body").unwrap_or_default()),
        "revoke" => "Deleted a message for everyone".to_string(),
        other => format!("[{other}]"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn summaries_say_what_each_kind_holds() {
        let text = json!({ "type": "text", "body": "<b>hi</b>", "link_preview": false });
        assert_eq!(
            summary("text", &text),
            "<b>hi</b>",
            "kept as text; maud escapes it"
        );
        let image = json!({ "type": "media", "kind": "image", "caption": "look" });
        assert_eq!(summary("image", &image), "[image] look");
        let place = json!({ "type": "location", "latitude": 1.5, "longitude": 2.0 });
        assert_eq!(summary("location", &place), "Location: 1.5, 2");
        let gone = json!({ "type": "reaction", "emoji": "", "target": {} });
        assert_eq!(summary("reaction", &gone), "Took a reaction back");
        let vote =
            json!({ "type": "poll_vote", "selected_options": ["yes", "<i>no</i>"], "target": {} });
        assert_eq!(summary("poll_vote", &vote), "Voted: yes, <i>no</i>");
        let unopened = json!({ "type": "poll_vote", "selected_options": null, "target": {} });
        assert_eq!(summary("poll_vote", &unopened), "Voted on a poll");
        assert_eq!(
            summary("revoke", &json!({ "type": "revoke" })),
            "Deleted a message for everyone"
        );
        let sent =
            json!({ "to": "x", "reply_to": null, "content": { "type": "text", "body": "hi" } });
        assert_eq!(summary("text", &sent), "hi", "an outgoing request");
        assert_eq!(chat_name("15550001111@s.whatsapp.net"), "+15550001111");
        assert_eq!(chat_name("1203630@g.us"), "1203630@g.us");
    }
}

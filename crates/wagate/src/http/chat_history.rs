//! Older messages of a chat, asked of the phone: WhatsApp's on-demand
//! history. The request goes to the phone as a peer data operation
//! (`HISTORY_SYNC_ON_DEMAND`) naming the oldest message the session has of
//! the chat; the phone answers later with an `on_demand` history chunk,
//! stored like the history after linking (a `history.sync` event). A chat
//! the session has no message in is a 404, a session that is not `working`
//! a 409, WhatsApp failing a 502.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::Authenticated;
use super::chat_state::chat_not_found;
use super::chats::{on_whatsapp, parse_chat, stored_chat};
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path};
use crate::app::AppState;
use crate::domain::{Direction, MessageId, SessionId};
use crate::session::messenger::OldestMessage;
use crate::store::MessageQuery;

/// The most messages one request asks the phone for.
pub(crate) const MAX_HISTORY_COUNT: u32 = 100;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HistoryRequest {
    /// How many older messages to ask for (1 to 100); the phone may send
    /// fewer, or none when it has no older ones.
    #[schema(minimum = 1, maximum = 100)]
    pub count: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HistoryRequested {
    /// The chat's JID.
    pub chat: String,
    pub count: u32,
    /// The oldest message the session has of the chat: the phone sends
    /// messages older than it.
    pub before: MessageId,
}

/// Ask the phone for older messages of a chat.
///
/// Asks the linked phone for up to `count` messages of the chat older than
/// the oldest one the session has. The phone answers on its own time (and
/// only while it is online): the messages arrive as an `on_demand` history
/// chunk, stored like the history after linking, with a `history.sync`
/// event (`sync_type: on_demand`); page the chat's messages to see them.
#[utoipa::path(
    post,
    path = "/sessions/{id}/chats/{chat}/history",
    tag = "chats",
    params(
        ("id" = String, Path, format = Uuid, description = "Session id"),
        ("chat" = String, Path, description = "The chat: a phone number in international format, or a JID"),
    ),
    request_body = HistoryRequest,
    responses(
        (status = 202, description = "Asked: the messages come with a `history.sync` event", body = HistoryRequested),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such session, or the session has no message in this chat (`chat_not_found`)", body = ErrorBody),
        (status = 409, description = "The session is not `working`", body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, description = "Invalid body; also `invalid_count` for a count outside 1 to 100", body = ErrorBody),
        (status = 502, description = "WhatsApp failed or did not answer", body = ErrorBody),
        (status = 503, description = "`owner_unreachable`: with several nodes (`--nats`), the node that runs the session did not answer; try again", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn request_history(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((session, chat)): Path<(SessionId, String)>,
    Json(body): Json<HistoryRequest>,
) -> Result<(StatusCode, Json<HistoryRequested>), ApiError> {
    if !(1..=MAX_HISTORY_COUNT).contains(&body.count) {
        return Err(ApiError::Validation {
            code: "invalid_count",
            field: "count",
            message: format!("count must be 1 to {MAX_HISTORY_COUNT}"),
        });
    }
    let chat = stored_chat(&state, session, parse_chat(&chat)?).await?;
    let jid = chat.jid().to_string();
    let org = auth.org_id();
    // Ids sort by when a message was sent: the one closest after the
    // smallest id is the chat's oldest.
    let query = MessageQuery {
        chat: Some(jid.clone()),
        direction: None,
        status: None,
        limit: 1,
        before: None,
        after: Some(MessageId::from(Uuid::nil())),
    };
    let oldest = state.sessions.messages(org, session, &query).await?;
    let Some(oldest) = oldest.into_iter().next() else {
        return Err(chat_not_found());
    };
    let messenger = state.sessions.live_messenger(org, session).await?;
    let from_me = match &oldest.received {
        Some(received) => received.from_me,
        None => oldest.direction == Direction::Outgoing,
    };
    let sent_at = oldest
        .received
        .as_ref()
        .map_or(oldest.created_at, |r| r.sent_at);
    let asked = OldestMessage {
        wa_id: oldest.wa_id.clone(),
        from_me,
        timestamp_ms: sent_at.timestamp_millis(),
    };
    on_whatsapp(messenger.request_history(chat.jid(), &asked, body.count)).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(HistoryRequested {
            chat: jid,
            count: body.count,
            before: oldest.id,
        }),
    ))
}

//! A chat's settings through WhatsApp's app state: archive, pin, mute and
//! their inverses. Each goes to WhatsApp first (so the phone and the
//! account's other devices show it), then to the chat list with its
//! `chat.updated` event. A chat the session has no message in is a 404,
//! a session that is not `working` a 409, WhatsApp failing a 502.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::ToSchema;

use super::auth::Authenticated;
use super::chats::{on_whatsapp, parse_chat, stored_chat};
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path};
use crate::app::AppState;
use crate::domain::{ChatChange, Mute, SessionId};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MuteRequest {
    /// When the mute ends (RFC 3339, in the future); `null` or absent:
    /// muted for ever.
    #[serde(default)]
    pub until: Option<DateTime<Utc>>,
}

pub(super) fn chat_not_found() -> ApiError {
    ApiError::UnknownReference {
        code: "chat_not_found",
        field: "chat",
        message: "the session has no message in this chat".into(),
    }
}

/// Checks the chat, makes the change on WhatsApp, then stores it.
pub(super) async fn change(
    state: &AppState,
    auth: &Authenticated,
    session: SessionId,
    chat: &str,
    change: ChatChange,
) -> Result<StatusCode, ApiError> {
    let chat = stored_chat(state, session, parse_chat(chat)?).await?;
    let jid = chat.jid().to_string();
    let org = auth.org_id();
    if state.sessions.chat(org, session, &jid).await?.is_none() {
        return Err(chat_not_found());
    }
    let messenger = state.sessions.live_messenger(org, session).await?;
    on_whatsapp(messenger.change_chat(chat.jid(), change)).await?;
    if !state
        .sessions
        .change_chat(org, session, &jid, change)
        .await?
    {
        return Err(chat_not_found());
    }
    Ok(StatusCode::NO_CONTENT)
}

macro_rules! setting_endpoint {
    ($name:ident, $path:literal, $summary:literal, $done:literal, $change:expr) => {
        #[doc = $summary]
        #[utoipa::path(
            post,
            path = $path,
            tag = "chats",
            params(
                ("id" = String, Path, format = Uuid, description = "Session id"),
                ("chat" = String, Path, description = "The chat: a phone number in international format, or a JID"),
            ),
            responses(
                (status = 204, description = $done),
                (status = 400, body = ErrorBody),
                (status = 401, body = ErrorBody),
                (status = 404, description = "No such session, or the session has no message in this chat (`chat_not_found`)", body = ErrorBody),
                (status = 409, description = "The session is not `working`", body = ErrorBody),
                (status = 422, body = ErrorBody),
                (status = 502, description = "WhatsApp failed or did not answer", body = ErrorBody),
                (status = 503, description = "`owner_unreachable`: with several nodes (`--nats`), the node that runs the session did not answer; try again", body = ErrorBody),
            ),
            security(("bearer" = []))
        )]
        pub(crate) async fn $name(
            State(state): State<AppState>,
            auth: Authenticated,
            Path((session, chat)): Path<(SessionId, String)>,
        ) -> Result<StatusCode, ApiError> {
            change(&state, &auth, session, &chat, $change).await
        }
    };
}

setting_endpoint!(
    archive,
    "/sessions/{id}/chats/{chat}/archive",
    "Archive a chat (on the phone too).",
    "Archived, in WhatsApp's app state and the chat list",
    ChatChange::Archive(true)
);
setting_endpoint!(
    unarchive,
    "/sessions/{id}/chats/{chat}/unarchive",
    "Unarchive a chat (on the phone too).",
    "Unarchived, in WhatsApp's app state and the chat list",
    ChatChange::Archive(false)
);
setting_endpoint!(
    pin,
    "/sessions/{id}/chats/{chat}/pin",
    "Pin a chat to the top of the list (on the phone too).",
    "Pinned, in WhatsApp's app state and the chat list",
    ChatChange::Pin(true)
);
setting_endpoint!(
    unpin,
    "/sessions/{id}/chats/{chat}/unpin",
    "Unpin a chat (on the phone too).",
    "Unpinned, in WhatsApp's app state and the chat list",
    ChatChange::Pin(false)
);
setting_endpoint!(
    unmute,
    "/sessions/{id}/chats/{chat}/unmute",
    "Unmute a chat (on the phone too).",
    "Unmuted, in WhatsApp's app state and the chat list",
    ChatChange::Mute(Mute::Off)
);

/// Mute a chat (on the phone too).
///
/// Until a time to come, or for ever (`until` null or absent).
#[utoipa::path(
    post,
    path = "/sessions/{id}/chats/{chat}/mute",
    tag = "chats",
    params(
        ("id" = String, Path, format = Uuid, description = "Session id"),
        ("chat" = String, Path, description = "The chat: a phone number in international format, or a JID"),
    ),
    request_body = MuteRequest,
    responses(
        (status = 204, description = "Muted, in WhatsApp's app state and the chat list"),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such session, or the session has no message in this chat (`chat_not_found`)", body = ErrorBody),
        (status = 409, description = "The session is not `working`", body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, description = "Invalid body; also `invalid_until` for a time already past", body = ErrorBody),
        (status = 502, description = "WhatsApp failed or did not answer", body = ErrorBody),
        (status = 503, description = "`owner_unreachable`: with several nodes (`--nats`), the node that runs the session did not answer; try again", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn mute(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((session, chat)): Path<(SessionId, String)>,
    Json(body): Json<MuteRequest>,
) -> Result<StatusCode, ApiError> {
    let mute = match body.until {
        None => Mute::Forever,
        Some(until) if until > Utc::now() => Mute::Until(until),
        Some(_) => {
            return Err(ApiError::Validation {
                code: "invalid_until",
                field: "until",
                message: "until must be a time to come (or null: for ever)".into(),
            });
        }
    };
    change(&state, &auth, session, &chat, ChatChange::Mute(mute)).await
}

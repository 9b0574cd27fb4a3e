//! The phone's chat settings through app state: archive, pin, mute, mark
//! read, and the phone's view of a chat.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::{AdminError, Reply, handle};
use crate::error::SimError;
use crate::phone::ChatAction;
use crate::server::Server;

pub(super) fn routes() -> Router<Arc<Server>> {
    Router::new()
        .route("/admin/phones/{phone}/chats/{chat}", get(view))
        .route("/admin/phones/{phone}/chats/{chat}/mute", post(mute))
        .route("/admin/phones/{phone}/chats/{chat}/{action}", post(act))
}

async fn view(State(s): State<Arc<Server>>, Path((phone, chat)): Path<(String, String)>) -> Reply {
    let found = handle(s).phone_chat(&phone, &chat)?;
    Ok(Json(
        json!({ "chat": crate::chat_jid(&chat), "settings": found }),
    ))
}

async fn act(
    State(s): State<Arc<Server>>,
    Path((phone, chat, action)): Path<(String, String, String)>,
) -> Reply {
    let action = match action.as_str() {
        "archive" => ChatAction::Archive,
        "unarchive" => ChatAction::Unarchive,
        "pin" => ChatAction::Pin,
        "unpin" => ChatAction::Unpin,
        "unmute" => ChatAction::Unmute,
        "read" => ChatAction::MarkRead,
        "unread" => ChatAction::MarkUnread,
        other => {
            return Err(AdminError::from(SimError::Invalid(format!(
                "unknown chat action {other:?}"
            ))));
        }
    };
    handle(s).phone_chat_action(&phone, &chat, action).await?;
    super::ok()
}

#[derive(Deserialize, Default)]
struct MuteBody {
    /// Milliseconds since the epoch; absent or null: for ever.
    #[serde(default)]
    until_ms: Option<i64>,
}

async fn mute(
    State(s): State<Arc<Server>>,
    Path((phone, chat)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Reply {
    // An empty body mutes for ever.
    let body: MuteBody = if body.is_empty() {
        MuteBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| AdminError::from(SimError::Invalid(format!("invalid body: {e}"))))?
    };
    handle(s)
        .phone_chat_action(&phone, &chat, ChatAction::Mute(body.until_ms))
        .await?;
    super::ok()
}

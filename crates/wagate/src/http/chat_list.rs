//! The chat list and one chat's messages, both ways, from the store: what
//! the session sent and received, by latest activity.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Authenticated;
use super::chats::{parse_chat, stored_chat};
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path, Query, cut_page, page_limit};
use super::messages::Message;
use crate::app::AppState;
use crate::domain::{MessageId, Mute, SessionId};
use crate::store::MessageQuery;
use crate::store::chats::{ChatKind, ChatRecord};

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Chat {
    /// The chat's JID.
    pub id: String,
    pub kind: ChatKind,
    /// A person's latest push name, when their messages carried one.
    pub name: Option<String>,
    /// Messages received since the session's own side last wrote here.
    pub unread: u64,
    /// When the chat's latest message was stored.
    pub last_activity_at: DateTime<Utc>,
    pub last_message: Message,
    /// Archived (on the phone, another device, or through the API).
    pub archived: bool,
    pub pinned: bool,
    /// Muted now: for ever, or until `muted_until`.
    pub muted: bool,
    /// When the mute ends; `null` when not muted or muted for ever.
    pub muted_until: Option<DateTime<Utc>>,
}

impl From<ChatRecord> for Chat {
    fn from(record: ChatRecord) -> Self {
        Self {
            id: record.chat,
            kind: record.kind,
            name: record.name,
            unread: record.unread,
            last_activity_at: record.last_at,
            last_message: Message::from(record.last_message),
            archived: record.archived,
            pinned: record.pinned,
            muted: record.mute.is_muted(Utc::now()),
            muted_until: match record.mute {
                Mute::Until(at) => Some(at),
                Mute::Off | Mute::Forever => None,
            },
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ChatList {
    /// Latest activity first.
    pub data: Vec<Chat>,
    /// Pass as `cursor` for the next page; `null` on the last.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub next_cursor: Option<MessageId>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ChatListParams {
    /// Page size, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// `next_cursor` from the previous page.
    #[param(value_type = Option<String>, format = Uuid)]
    pub cursor: Option<MessageId>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ChatMessages {
    /// Newest first.
    pub data: Vec<Message>,
    /// Pass as `before` for older messages; `null` when there are none.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub next_before: Option<MessageId>,
    /// Pass as `after` for newer messages; `null` when this page reaches
    /// the newest (ask again with the newest id for what came since).
    #[schema(value_type = Option<String>, format = Uuid)]
    pub next_after: Option<MessageId>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ChatMessagesParams {
    /// Page size, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// Only messages older than this one.
    #[param(value_type = Option<String>, format = Uuid)]
    pub before: Option<MessageId>,
    /// Only messages newer than this one: the page closest to it.
    #[param(value_type = Option<String>, format = Uuid)]
    pub after: Option<MessageId>,
}

/// List a session's chats, latest activity first.
#[utoipa::path(
    get,
    path = "/sessions/{id}/chats",
    tag = "chats",
    params(("id" = String, Path, format = Uuid, description = "Session id"), ChatListParams),
    responses(
        (status = 200, body = ChatList),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(session): Path<SessionId>,
    Query(params): Query<ChatListParams>,
) -> Result<Json<ChatList>, ApiError> {
    let limit = page_limit(params.limit)?;
    // A chat's place is its latest message's id (UUIDv7: creation
    // order), so that id is the cursor.
    let mut records = state
        .sessions
        .chats(auth.org_id(), session, params.cursor, limit + 1)
        .await?;
    let next_cursor = cut_page(&mut records, limit, |last| last.last_message.id);
    Ok(Json(ChatList {
        data: records.into_iter().map(Chat::from).collect(),
        next_cursor,
    }))
}

/// One chat's messages, both ways, newest first; page back with `before`
/// and forward with `after`.
#[utoipa::path(
    get,
    path = "/sessions/{id}/chats/{chat}/messages",
    tag = "chats",
    params(
        ("id" = String, Path, format = Uuid, description = "Session id"),
        ("chat" = String, Path, description = "A phone number in international format, or a person's or group's JID"),
        ChatMessagesParams,
    ),
    responses(
        (status = 200, body = ChatMessages),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such session, or the session has no message in this chat (`chat_not_found`)", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn messages(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((session, chat)): Path<(SessionId, String)>,
    Query(params): Query<ChatMessagesParams>,
) -> Result<Json<ChatMessages>, ApiError> {
    let limit = page_limit(params.limit)?;
    let chat = stored_chat(&state, session, parse_chat(&chat)?)
        .await?
        .jid()
        .to_string();
    let org = auth.org_id();
    if state.sessions.chat(org, session, &chat).await?.is_none() {
        return Err(ApiError::UnknownReference {
            code: "chat_not_found",
            field: "chat",
            message: "the session has no message in this chat".into(),
        });
    }
    let query = MessageQuery {
        chat: Some(chat),
        direction: None,
        status: None,
        limit: limit + 1,
        before: params.before,
        after: params.after,
    };
    let mut records = state.sessions.messages(org, session, &query).await?;
    let more = records.len() > limit as usize;
    let (next_before, next_after) = if params.after.is_some() {
        // The closest to `after` were read: the extra one is the newest.
        if more {
            records.remove(0);
        }
        let newest = records.first().map(|m| m.id);
        (records.last().map(|m| m.id), newest.filter(|_| more))
    } else {
        records.truncate(limit as usize);
        let oldest = records.last().map(|m| m.id);
        (
            oldest.filter(|_| more),
            params.before.and(records.first().map(|m| m.id)),
        )
    };
    Ok(Json(ChatMessages {
        data: records.into_iter().map(Message::from).collect(),
        next_before,
        next_after,
    }))
}

//! `/sessions`: create, list, read, relabel, delete, and the lifecycle
//! actions.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Authenticated;
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path, Query, page_limit};
use crate::app::AppState;
use crate::domain::{
    HistoryScope, Label, PerMinute, PresenceState, SessionId, SessionPace, SessionStatus,
    StatusReason, check_call_reply,
};
use crate::store::{Cursor, SessionChanges, SessionQuery, SessionRecord};

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Session {
    #[schema(value_type = String, format = Uuid)]
    pub id: SessionId,
    #[schema(value_type = Option<String>)]
    pub label: Option<Label>,
    pub status: SessionStatus,
    pub status_reason: Option<StatusReason>,
    /// The linked number, once a phone has linked.
    pub phone: Option<String>,
    /// The linked account's profile name, once known.
    pub push_name: Option<String>,
    /// This session's send pace (messages per minute, 0 unpaced); `null`
    /// follows the gateway's `send_per_minute`.
    #[schema(value_type = Option<u32>)]
    pub send_per_minute: Option<PerMinute>,
    /// Its pace to chats it never messaged; `null` follows the gateway's
    /// `send_new_chats_per_minute`.
    #[schema(value_type = Option<u32>)]
    pub send_new_chats_per_minute: Option<PerMinute>,
    /// What the linked device tells WhatsApp after every connect:
    /// `unavailable` (the default) keeps the phone's own notifications.
    pub presence: PresenceState,
    /// Every incoming call is rejected (and reported).
    pub reject_calls: bool,
    /// The text a rejected caller gets, if any.
    pub reject_calls_message: Option<String>,
    /// How much of the history after a link is kept: `none`, `recent`
    /// (the default: all but the full-history chunks) or `full` (which,
    /// set when the phone links, also asks the phone for the full history).
    pub history: HistoryScope,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<SessionRecord> for Session {
    fn from(record: SessionRecord) -> Self {
        Self {
            id: record.id,
            label: record.label,
            status: record.status,
            status_reason: record.status_reason,
            phone: record.phone,
            push_name: record.push_name,
            send_per_minute: record.pace.per_minute,
            send_new_chats_per_minute: record.pace.new_chats_per_minute,
            presence: record.behaviour.presence,
            reject_calls: record.behaviour.reject_calls,
            reject_calls_message: record.behaviour.reject_calls_message,
            history: record.behaviour.history,
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateSession {
    /// Up to 100 characters, no control characters.
    #[schema(max_length = 100, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    pub label: Option<String>,
    /// Connect right away (default) or leave the session `stopped`.
    pub start: Option<bool>,
    /// Messages per minute this session sends at most, 0 to 600 (0:
    /// unpaced); absent follows the gateway's setting.
    #[schema(value_type = Option<u32>, minimum = 0, maximum = 600)]
    pub send_per_minute: Option<PerMinute>,
    /// Messages per minute to chats it never messaged, 0 to 600.
    #[schema(value_type = Option<u32>, minimum = 0, maximum = 600)]
    pub send_new_chats_per_minute: Option<PerMinute>,
    /// How much of the history the phone sends after a link is kept:
    /// `none`, `recent` (the default) or `full`.
    pub history: Option<HistoryScope>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateSession {
    /// New label (up to 100 characters, no control characters); `null`
    /// clears it, absent leaves it unchanged.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 100, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    pub label: Option<Option<String>>,
    /// 0 to 600 messages per minute; `null` follows the gateway's again.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>, minimum = 0, maximum = 600)]
    pub send_per_minute: Option<Option<PerMinute>>,
    /// 0 to 600 messages per minute to new chats; `null` follows the
    /// gateway's again.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>, minimum = 0, maximum = 600)]
    pub send_new_chats_per_minute: Option<Option<PerMinute>>,
    /// The presence shown after every connect (from the next connect on;
    /// `POST /sessions/{id}/presence` also changes it now).
    pub presence: Option<PresenceState>,
    /// Reject every incoming call.
    pub reject_calls: Option<bool>,
    /// The text a rejected caller gets (1 to 4096 characters, not only
    /// spaces); `null` sends none.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 4096, pattern = r"\S")]
    pub reject_calls_message: Option<Option<String>>,
    /// How much of the history after a link is kept (`none`, `recent`,
    /// `full`), for chunks that arrive from now on.
    pub history: Option<HistoryScope>,
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Page size, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// `next_cursor` from the previous page.
    #[param(
        pattern = r"^[0-9]{1,15}\.[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    pub cursor: Option<String>,
    /// Only sessions in this status.
    pub status: Option<SessionStatus>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SessionList {
    pub data: Vec<Session>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

fn parse_label(label: Option<String>) -> Result<Option<Label>, ApiError> {
    label
        .filter(|l| !l.is_empty())
        .map(Label::try_from)
        .transpose()
        .map_err(|e| ApiError::Validation {
            code: "invalid_label",
            field: "label",
            message: e.to_string(),
        })
}

/// Create a session.
#[utoipa::path(
    post,
    path = "/sessions",
    tag = "sessions",
    request_body = CreateSession,
    responses(
        (status = 201, description = "Created; with `start` it reaches `scan_qr_code` on its own", body = Session),
        (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 503, description = "`owner_unreachable`: with several nodes (`--nats`), the node that runs the session did not answer; try again", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    auth: Authenticated,
    Json(body): Json<CreateSession>,
) -> Result<(StatusCode, Json<Session>), ApiError> {
    let label = parse_label(body.label)?;
    let record = state
        .sessions
        .create(
            auth.org_id(),
            label,
            SessionPace {
                per_minute: body.send_per_minute,
                new_chats_per_minute: body.send_new_chats_per_minute,
            },
            body.history.unwrap_or_default(),
            body.start.unwrap_or(true),
        )
        .await?;
    tracing::info!(session_id = %record.id, "session created");
    Ok((StatusCode::CREATED, Json(record.into())))
}

/// List sessions, oldest first.
#[utoipa::path(
    get,
    path = "/sessions",
    tag = "sessions",
    params(ListParams),
    responses((status = 200, body = SessionList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = []))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    auth: Authenticated,
    Query(params): Query<ListParams>,
) -> Result<Json<SessionList>, ApiError> {
    let limit = page_limit(params.limit)?;
    let after = params
        .cursor
        .map(|c| c.parse::<Cursor>())
        .transpose()
        .map_err(|_| ApiError::Validation {
            code: "invalid_cursor",
            field: "cursor",
            message: "cursor must be a next_cursor value returned by this endpoint".into(),
        })?;
    let page = state
        .sessions
        .list(
            auth.org_id(),
            &SessionQuery {
                status: params.status,
                limit,
                after,
            },
        )
        .await?;
    Ok(Json(SessionList {
        data: page.sessions.into_iter().map(Session::from).collect(),
        next_cursor: page.next.map(|c| c.to_string()),
    }))
}

/// Get a session.
#[utoipa::path(
    get,
    path = "/sessions/{id}",
    tag = "sessions",
    params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = Session), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<SessionId>,
) -> Result<Json<Session>, ApiError> {
    Ok(Json(state.sessions.get(auth.org_id(), id).await?.into()))
}

/// Change a session's label, send pace, presence or call settings.
#[utoipa::path(
    patch,
    path = "/sessions/{id}",
    tag = "sessions",
    params(("id" = String, Path, format = Uuid)),
    request_body = UpdateSession,
    responses((status = 200, body = Session), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = []))
)]
pub(crate) async fn update(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<SessionId>,
    Json(body): Json<UpdateSession>,
) -> Result<Json<Session>, ApiError> {
    if let Some(Some(text)) = &body.reject_calls_message {
        check_call_reply(text).map_err(|e| ApiError::Validation {
            code: "invalid_reject_calls_message",
            field: "reject_calls_message",
            message: e.to_string(),
        })?;
    }
    let changes = SessionChanges {
        label: body.label.map(parse_label).transpose()?,
        per_minute: body.send_per_minute,
        new_chats_per_minute: body.send_new_chats_per_minute,
        presence: body.presence,
        reject_calls: body.reject_calls,
        reject_calls_message: body.reject_calls_message,
        history: body.history,
    };
    let record = state.sessions.update(auth.org_id(), id, &changes).await?;
    Ok(Json(record.into()))
}

/// Delete a session: unlinks the device if linked and wipes its keys.
#[utoipa::path(
    delete,
    path = "/sessions/{id}",
    tag = "sessions",
    params(("id" = String, Path, format = Uuid)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 503, description = "`owner_unreachable`: with several nodes (`--nats`), the node that runs the session did not answer; try again", body = ErrorBody)),
    security(("bearer" = []))
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<SessionId>,
) -> Result<StatusCode, ApiError> {
    state.sessions.delete(auth.org_id(), id).await?;
    tracing::info!(session_id = %id, "session deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Start (or retry) a session.
#[utoipa::path(
    post,
    path = "/sessions/{id}/start",
    tag = "sessions",
    params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = Session), (status = 404, body = ErrorBody), (status = 503, description = "`owner_unreachable`: with several nodes (`--nats`), the node that runs the session did not answer; try again", body = ErrorBody)),
    security(("bearer" = []))
)]
pub(crate) async fn start(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<SessionId>,
) -> Result<Json<Session>, ApiError> {
    Ok(Json(state.sessions.start(auth.org_id(), id).await?.into()))
}

/// Stop a session; it keeps its link.
#[utoipa::path(
    post,
    path = "/sessions/{id}/stop",
    tag = "sessions",
    params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = Session), (status = 404, body = ErrorBody), (status = 503, description = "`owner_unreachable`: with several nodes (`--nats`), the node that runs the session did not answer; try again", body = ErrorBody)),
    security(("bearer" = []))
)]
pub(crate) async fn stop(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<SessionId>,
) -> Result<Json<Session>, ApiError> {
    Ok(Json(state.sessions.stop(auth.org_id(), id).await?.into()))
}

/// Reconnect a session from scratch.
#[utoipa::path(
    post,
    path = "/sessions/{id}/restart",
    tag = "sessions",
    params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = Session), (status = 404, body = ErrorBody), (status = 503, description = "`owner_unreachable`: with several nodes (`--nats`), the node that runs the session did not answer; try again", body = ErrorBody)),
    security(("bearer" = []))
)]
pub(crate) async fn restart(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<SessionId>,
) -> Result<Json<Session>, ApiError> {
    Ok(Json(
        state.sessions.restart(auth.org_id(), id).await?.into(),
    ))
}

/// Unlink the device and wipe its keys; `start` links again.
#[utoipa::path(
    post,
    path = "/sessions/{id}/logout",
    tag = "sessions",
    params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = Session), (status = 404, body = ErrorBody), (status = 409, description = "`not_linked`", body = ErrorBody), (status = 503, description = "`owner_unreachable`: with several nodes (`--nats`), the node that runs the session did not answer; try again", body = ErrorBody)),
    security(("bearer" = []))
)]
pub(crate) async fn logout(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<SessionId>,
) -> Result<Json<Session>, ApiError> {
    Ok(Json(state.sessions.logout(auth.org_id(), id).await?.into()))
}

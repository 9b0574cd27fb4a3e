//! `POST /sessions/{id}/presence`: what the linked device tells WhatsApp
//! about itself, now and after every later connect.

use axum::extract::State;
use serde::Deserialize;
use utoipa::ToSchema;

use super::auth::Authenticated;
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path};
use super::sessions::Session;
use crate::app::AppState;
use crate::domain::{PresenceState, SessionId};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PresenceRequest {
    /// `available` shows the account online (the phone then holds back
    /// its own notifications); `unavailable` (the default setting) keeps
    /// the phone ringing.
    pub state: PresenceState,
}

/// Set the session's presence.
///
/// Kept as the session's `presence` setting, said after every connect,
/// and told WhatsApp right away when the session is `working`.
#[utoipa::path(
    post,
    path = "/sessions/{id}/presence",
    tag = "sessions",
    params(("id" = String, Path, format = Uuid, description = "Session id")),
    request_body = PresenceRequest,
    responses(
        (status = 200, description = "Kept (and told WhatsApp, if `working`)", body = Session),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 502, description = "Kept, but WhatsApp could not be told now", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn set(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<SessionId>,
    Json(body): Json<PresenceRequest>,
) -> Result<Json<Session>, ApiError> {
    let record = state
        .sessions
        .set_presence(auth.org_id(), id, body.state)
        .await?;
    Ok(Json(record.into()))
}

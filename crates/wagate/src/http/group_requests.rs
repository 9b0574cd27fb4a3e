//! Membership requests of a group whose admins approve who joins
//! (`approval`): who asked, and an admin's approval or rejection with a
//! result per person. Straight to WhatsApp on a `working` session, like
//! every group call (`http::groups`).

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Authenticated;
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path};
use super::groups::{ParticipantsResponse, groups_of, on_whatsapp, parse_group, parse_phones};
use crate::app::AppState;
use crate::domain::{JoinRequest, SessionId};

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct JoinRequestList {
    /// Oldest first, as WhatsApp lists them.
    pub requests: Vec<JoinRequest>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AnswerRequestsRequest {
    /// Phone numbers in international format, digits only; 1 to 1,024.
    #[schema(min_items = 1, max_items = 1024, value_type = Vec<String>)]
    pub participants: Vec<String>,
}

/// Who asked to join the group (admins only).
#[utoipa::path(
    get,
    path = "/sessions/{id}/groups/{group}/requests",
    tag = "groups",
    params(
        ("id" = String, Path, format = Uuid, description = "Session id"),
        ("group" = String, Path, description = "The group's JID (`<digits>@g.us`) or its digits"),
    ),
    responses(
        (status = 200, body = JoinRequestList),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "The number is not an admin (`not_group_admin`)", body = ErrorBody),
        (status = 404, description = "No such session, or no such group", body = ErrorBody),
        (status = 409, description = "The session is not `working`", body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 502, description = "WhatsApp failed or did not answer", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((session, group)): Path<(SessionId, String)>,
) -> Result<Json<JoinRequestList>, ApiError> {
    let group = parse_group(&group)?;
    let groups = groups_of(&state, auth.org_id(), session).await?;
    let requests = on_whatsapp(groups.requests(&group)).await?;
    Ok(Json(JoinRequestList { requests }))
}

async fn answer(
    state: AppState,
    auth: Authenticated,
    session: SessionId,
    group: String,
    body: AnswerRequestsRequest,
    approve: bool,
) -> Result<Json<ParticipantsResponse>, ApiError> {
    let group = parse_group(&group)?;
    let phones = parse_phones(body.participants, "participants", false)?;
    let groups = groups_of(&state, auth.org_id(), session).await?;
    let participants = on_whatsapp(groups.answer_requests(&group, approve, &phones)).await?;
    Ok(Json(ParticipantsResponse { participants }))
}

/// Let people who asked to join in.
///
/// A result per number: `approved`, or `not_requested` (no request of
/// theirs is waiting), `group_full`, `refused` with WhatsApp's `error`.
#[utoipa::path(
    post,
    path = "/sessions/{id}/groups/{group}/requests/approve",
    tag = "groups",
    params(
        ("id" = String, Path, format = Uuid, description = "Session id"),
        ("group" = String, Path, description = "The group's JID (`<digits>@g.us`) or its digits"),
    ),
    request_body = AnswerRequestsRequest,
    responses(
        (status = 200, body = ParticipantsResponse),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "The number is not an admin (`not_group_admin`)", body = ErrorBody),
        (status = 404, description = "No such session, or no such group", body = ErrorBody),
        (status = 409, description = "The session is not `working`", body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, description = "No, over 1,024 or malformed numbers", body = ErrorBody),
        (status = 502, description = "WhatsApp failed or did not answer", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn approve(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((session, group)): Path<(SessionId, String)>,
    Json(body): Json<AnswerRequestsRequest>,
) -> Result<Json<ParticipantsResponse>, ApiError> {
    answer(state, auth, session, group, body, true).await
}

/// Turn down people who asked to join.
///
/// A result per number: `rejected`, or `not_requested` (no request of
/// theirs is waiting), `refused` with WhatsApp's `error`.
#[utoipa::path(
    post,
    path = "/sessions/{id}/groups/{group}/requests/reject",
    tag = "groups",
    params(
        ("id" = String, Path, format = Uuid, description = "Session id"),
        ("group" = String, Path, description = "The group's JID (`<digits>@g.us`) or its digits"),
    ),
    request_body = AnswerRequestsRequest,
    responses(
        (status = 200, body = ParticipantsResponse),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "The number is not an admin (`not_group_admin`)", body = ErrorBody),
        (status = 404, description = "No such session, or no such group", body = ErrorBody),
        (status = 409, description = "The session is not `working`", body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, description = "No, over 1,024 or malformed numbers", body = ErrorBody),
        (status = 502, description = "WhatsApp failed or did not answer", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn reject(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((session, group)): Path<(SessionId, String)>,
    Json(body): Json<AnswerRequestsRequest>,
) -> Result<Json<ParticipantsResponse>, ApiError> {
    answer(state, auth, session, group, body, false).await
}

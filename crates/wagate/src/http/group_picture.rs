//! A group's picture: set (a JPEG as the request body) or removed, through
//! whatsapp-rust's group picture call on a `working` session. The members
//! (the session included) hear of it as `group.updated` with `picture`.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Authenticated;
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path};
use super::groups::{groups_of, invalid, on_whatsapp, parse_group};
use crate::app::AppState;
use crate::domain::SessionId;

/// The largest picture taken, bytes: WhatsApp's pictures are 640×640
/// JPEGs, far smaller.
pub(crate) const PICTURE_MAX_BYTES: usize = 1024 * 1024;

/// A JPEG image, up to 1 MiB (WhatsApp shows 640×640).
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub(crate) struct Jpeg(#[allow(dead_code)] Vec<u8>);

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PictureSet {
    /// WhatsApp's id of the new picture.
    pub picture_id: String,
}

/// Whether the body is what the document promises: `image/jpeg`, and a
/// JPEG (its start-of-image marker).
fn check_jpeg(headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
    let jpeg_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok())
        .is_some_and(|m| m.type_() == mime::IMAGE && m.subtype() == mime::JPEG);
    if !jpeg_type {
        return Err(invalid(
            "invalid_picture",
            "Content-Type",
            "the picture must be sent as Content-Type: image/jpeg",
        ));
    }
    if !body.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Err(invalid(
            "invalid_picture",
            "body",
            "the body is not a JPEG image",
        ));
    }
    Ok(())
}

/// Set the group's picture.
///
/// The body is the JPEG itself (`Content-Type: image/jpeg`, up to 1 MiB).
/// Any member may, but only admins when the group is `locked`.
#[utoipa::path(
    put,
    path = "/sessions/{id}/groups/{group}/picture",
    tag = "groups",
    params(
        ("id" = String, Path, format = Uuid, description = "Session id"),
        ("group" = String, Path, description = "The group's JID (`<digits>@g.us`) or its digits"),
    ),
    request_body(content = Jpeg, content_type = "image/jpeg"),
    responses(
        (status = 200, body = PictureSet),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "The group is locked and the number is not an admin, or it is not in the group (`not_group_admin`)", body = ErrorBody),
        (status = 404, description = "No such session, or no such group", body = ErrorBody),
        (status = 409, description = "The session is not `working`", body = ErrorBody),
        (status = 413, description = "Over 1 MiB", body = ErrorBody),
        (status = 422, description = "Not `image/jpeg`, or not a JPEG", body = ErrorBody),
        (status = 502, description = "WhatsApp failed or did not answer", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn set(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((session, group)): Path<(SessionId, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<PictureSet>, ApiError> {
    let group = parse_group(&group)?;
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::InvalidBody(rejection.body_text())
        }
    })?;
    if body.len() > PICTURE_MAX_BYTES {
        return Err(ApiError::PayloadTooLarge);
    }
    // The session first: a request to one this organization cannot see
    // is a 404 whatever its body.
    let groups = groups_of(&state, auth.org_id(), session).await?;
    check_jpeg(&headers, &body)?;
    let picture_id = on_whatsapp(groups.set_picture(&group, Some(body.to_vec()))).await?;
    Ok(Json(PictureSet { picture_id }))
}

/// Remove the group's picture.
#[utoipa::path(
    delete,
    path = "/sessions/{id}/groups/{group}/picture",
    tag = "groups",
    params(
        ("id" = String, Path, format = Uuid, description = "Session id"),
        ("group" = String, Path, description = "The group's JID (`<digits>@g.us`) or its digits"),
    ),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "The group is locked and the number is not an admin, or it is not in the group (`not_group_admin`)", body = ErrorBody),
        (status = 404, description = "No such session, or no such group", body = ErrorBody),
        (status = 409, description = "The session is not `working`", body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 502, description = "WhatsApp failed or did not answer", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn remove(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((session, group)): Path<(SessionId, String)>,
) -> Result<StatusCode, ApiError> {
    let group = parse_group(&group)?;
    let groups = groups_of(&state, auth.org_id(), session).await?;
    on_whatsapp(groups.set_picture(&group, None)).await?;
    Ok(StatusCode::NO_CONTENT)
}

//! `GET /sessions/{id}/messages/{message_id}/media`: an incoming message's
//! attachment, decrypted. Fetched from WhatsApp through the session's live
//! connection on first request, then served from the disk cache.

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use tokio_util::io::ReaderStream;

use super::auth::Authenticated;
use super::error::{ApiError, ErrorBody};
use super::extract::Path;
use crate::app::AppState;
use crate::domain::{MessageId, SessionId, SessionStatus};
use crate::session::engine::DownloadError;

/// Download an incoming message's media.
///
/// Streams the decrypted file with its content type. The first request
/// fetches it from WhatsApp, which needs the session `working`; later ones
/// are served from the gateway's cache (size-capped, with a retention).
#[utoipa::path(
    get,
    path = "/sessions/{id}/messages/{message_id}/media",
    tag = "messages",
    params(
        ("id" = String, Path, format = Uuid, description = "Session id"),
        ("message_id" = String, Path, format = Uuid, description = "Message id"),
    ),
    responses(
        (status = 200, description = "The file, with its `Content-Type`", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such session or message (`message_not_found`), or the message has no downloadable media (`no_media`)", body = ErrorBody),
        (status = 409, description = "`session_not_working`: not cached, and the session is not connected to fetch it", body = ErrorBody),
        (status = 410, description = "`media_expired`: WhatsApp no longer has the file", body = ErrorBody),
        (status = 502, description = "`whatsapp_error`: the download failed; try again", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn download(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((session, id)): Path<(SessionId, MessageId)>,
) -> Result<Response, ApiError> {
    let record = state.sessions.get(auth.org_id(), session).await?;
    let (message, media) = state
        .store
        .messages()
        .media_ref(auth.org_id(), session, id)
        .await?
        .ok_or(ApiError::MessageNotFound)?;
    let media = media.ok_or(ApiError::NoMedia)?;
    let content_type = media
        .mime_type
        .clone()
        .filter(|m| m.parse::<mime::Mime>().is_ok())
        .unwrap_or_else(|| media.kind.default_mime().to_owned());
    let headers = [(header::CONTENT_TYPE, content_type)];

    match state.media_cache.open(message.id).await {
        Ok(Some(file)) => {
            let body = Body::from_stream(ReaderStream::new(file));
            return Ok((headers, body).into_response());
        }
        Ok(None) => {}
        // A broken cache is no reason to refuse the file: fetch it again.
        Err(error) => tracing::warn!(%error, "could not read the media cache"),
    }

    let link = state
        .sessions
        .working(session)
        .and_then(|working| working.borrow().clone())
        .ok_or_else(|| not_working(record.status))?;
    let bytes = link.download(&media).await.map_err(|error| match error {
        DownloadError::Expired => ApiError::MediaExpired,
        DownloadError::Failed(reason) => ApiError::Upstream(reason),
        DownloadError::Unsupported => not_working(record.status),
        DownloadError::InvalidReference => ApiError::internal(error),
    })?;
    if let Err(error) = state.media_cache.put(message.id, &bytes).await {
        tracing::warn!(%error, "could not cache downloaded media");
    }
    Ok((headers, bytes).into_response())
}

fn not_working(status: SessionStatus) -> ApiError {
    ApiError::Conflict {
        code: "session_not_working",
        message: "the media is not cached and the session is not connected to fetch it; \
                  start the session and try again"
            .into(),
        status: Some(status),
    }
}

//! What the page script fetches: the realtime socket (authenticated by the
//! session cookie, so no API token ever reaches the page), the HTML
//! fragments it swaps in when an event arrives, and the QR image.

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Path, Query, State};
use axum::http::header::{HOST, ORIGIN};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;

use super::auth::CurrentUser;
use super::error::DashError;
use super::html::Html;
use super::session::{Extras, live_block, parse_id};
use super::sessions;
use crate::app::AppState;
use crate::domain::SessionId;
use crate::http::qr::{QrImage, qr_image};
use crate::http::ws::pump;
use crate::hub::{Filter, SubscribeError};
use crate::session::manager::ManagerError;

pub(super) async fn fragment(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Html, DashError> {
    let record = state.sessions.get(user.org().id, parse_id(&id)?).await?;
    Ok(live_block(&state, &user, &record, &Extras::default())
        .await
        .into())
}

pub(super) async fn row(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Html, DashError> {
    let record = state.sessions.get(user.org().id, parse_id(&id)?).await?;
    Ok(sessions::row(&record).into())
}

/// The page's QR code is drawn a little larger than the API's.
const QR_PIXELS: u32 = 320;

pub(super) async fn qr_svg(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, DashError> {
    let current = match state.sessions.qr(user.org().id, parse_id(&id)?).await {
        Ok(current) => current,
        // Not this organization's: the same answer as every other page.
        Err(ManagerError::NotFound) => return Err(DashError::NotFound),
        // Between codes or no longer linking; the script waits for the next event.
        Err(_) => return Ok(StatusCode::NO_CONTENT.into_response()),
    };
    qr_image(&current.code, QrImage::Svg, QR_PIXELS).map_err(|e| DashError::Internal(e.to_string()))
}

#[derive(Debug, Deserialize)]
pub(super) struct EventsParams {
    session_id: Option<String>,
}

/// Browsers send cookies on cross-site WebSocket handshakes and the
/// handshake has no CSRF token, so the origin must be this very host.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        // Not a browser; the cookie alone decides.
        return true;
    };
    let host = headers.get(HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

pub(super) async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
    user: CurrentUser,
    Query(params): Query<EventsParams>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, DashError> {
    if !same_origin(&headers) {
        return Err(DashError::Forbidden(
            "Live updates only work from the gateway's own pages.",
        ));
    }
    // Checked after the origin, so a refused page learns nothing more.
    let Ok(upgrade) = upgrade else {
        return Ok((
            StatusCode::UPGRADE_REQUIRED,
            "this endpoint only speaks WebSocket",
        )
            .into_response());
    };
    let session_id = match params.session_id.as_deref() {
        Some(raw) => {
            let id: SessionId = parse_id(raw)?;
            state.sessions.get(user.org().id, id).await?;
            Some(id)
        }
        None => None,
    };
    let subscription = state
        .hub
        .subscribe(
            user.org().id,
            Filter {
                session_id,
                types: Vec::new(),
            },
        )
        .map_err(|SubscribeError::TooManyClients| {
            DashError::Forbidden(
                "Too many live connections for this organization; close some tabs.",
            )
        })?;
    let ping_every = state.ws_ping_interval;
    let shutdown = state.shutdown.clone();
    Ok(upgrade.on_upgrade(move |socket| async move {
        let (sink, stream) = socket.split();
        pump(sink, stream, subscription, ping_every, shutdown, None, None).await;
    }))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn only_same_origin_browsers_may_open_the_socket() {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_static("gw.example:8080"));
        assert!(same_origin(&headers), "no Origin: not a browser");
        headers.insert(ORIGIN, HeaderValue::from_static("http://gw.example:8080"));
        assert!(same_origin(&headers));
        headers.insert(ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(!same_origin(&headers));
    }
}

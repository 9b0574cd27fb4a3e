//! `GET /api/v1/ws`: the realtime event stream.

mod pump;
mod replay;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::{authenticate, bearer};
use super::error::{ApiError, ErrorBody};
use super::extract::Query;
use crate::app::AppState;
use crate::domain::{EventId, SessionId, TokenHash};
use crate::events::EventType;
use crate::hub::{Filter, SubscribeError};

pub(crate) use pump::{Access, Until, pump};
pub(crate) use replay::{Backlog, Replay, catch_up};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct WsParams {
    /// The API token, for clients that cannot set an `Authorization` header.
    pub token: Option<String>,
    /// Only this session's events.
    #[param(value_type = Option<String>, format = Uuid)]
    pub session_id: Option<SessionId>,
    /// Comma-separated event types (any of the `event` names of the
    /// envelopes). Default: all.
    // The pattern, built from `EventType::ALL`, is written into the
    // document by `http::openapi`, so a new event is never left out.
    pub events: Option<String>,
    /// Resume: the id of the last event this client received. Every later
    /// event (of the chosen types and session) is sent from the event log
    /// first, then the live stream follows, with no gap and no repeat. An
    /// id older than the log keeps (see `event_retention_secs`) closes the
    /// socket with code 4410; an id the log never had, with 4404.
    #[param(value_type = Option<String>, format = Uuid)]
    pub since: Option<EventId>,
}

/// The close code for a `since` older than the oldest event kept: events
/// after it were pruned, so a resume would have a gap.
pub(crate) const CLOSE_SINCE_TOO_OLD: u16 = 4410;
/// The close code for a `since` that names no event of the organization.
pub(crate) const CLOSE_SINCE_UNKNOWN: u16 = 4404;
/// The close code for a socket whose token was revoked while it was open.
pub const CLOSE_TOKEN_REVOKED: u16 = 4401;

/// Subscribe to the organization's events. Each frame is a JSON envelope
/// `{id, event, session_id, org_id, at, data}`; `data` per event is
/// described by `EventData`. Reconnect with `since=<last id>` to get what
/// was missed. Revoking the token that opened the socket closes it with
/// code 4401 (`token revoked`).
#[utoipa::path(
    get,
    path = "/ws",
    tag = "realtime",
    params(
        WsParams,
        // A WebSocket handshake (RFC 6455): without it the answer is 426.
        ("Upgrade" = String, Header, pattern = "^[Ww][Ee][Bb][Ss][Oo][Cc][Kk][Ee][Tt]$", description = "`websocket`: this operation only speaks WebSocket; a request that is not a WebSocket handshake is answered 426"),
        ("Connection" = String, Header, pattern = "[Uu][Pp][Gg][Rr][Aa][Dd][Ee]", description = "Contains `Upgrade`"),
        ("Sec-WebSocket-Version" = String, Header, pattern = "^13$", description = "`13`"),
        ("Sec-WebSocket-Key" = String, Header, pattern = "^[A-Za-z0-9+/]{22}==$", description = "16 random bytes, base64"),
    ),
    responses(
        (status = 101, description = "Switching to WebSocket"),
        (status = 401, body = ErrorBody),
        (status = 404, description = "`session_id` is not one of the organization's sessions", body = ErrorBody),
        (status = 426, description = "Not a WebSocket upgrade request (`upgrade_required`)", body = ErrorBody),
        (status = 429, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn subscribe(
    State(state): State<AppState>,
    Query(params): Query<WsParams>,
    upgrade: WsUpgrade,
) -> Result<Response, ApiError> {
    let presented = match (&upgrade.bearer, &params.token) {
        (Some(token), _) | (None, Some(token)) => token.as_str(),
        (None, None) => return Err(ApiError::MissingToken),
    };
    let auth = authenticate(state.store.as_ref(), presented).await?;
    let access = Access {
        store: Arc::clone(&state.store),
        token: TokenHash::of(presented),
        revocations: state.revocations.subscribe(),
    };
    let types = parse_types(params.events.as_deref())?;
    if let Some(session_id) = params.session_id {
        state.sessions.get(auth.org_id(), session_id).await?;
    }
    let subscription = state
        .hub
        .subscribe(
            auth.org_id(),
            Filter {
                session_id: params.session_id,
                types: types.clone(),
            },
        )
        .map_err(|SubscribeError::TooManyClients| ApiError::TooManyConnections)?;
    // Only now, so a client without credentials learns that first.
    let ws = upgrade.ws.map_err(|_| ApiError::UpgradeRequired)?;
    let ping_every = state.ws_ping_interval;
    let shutdown = state.shutdown.clone();
    let store = Arc::clone(&state.store);
    let hub = state.hub.clone();
    let org = auth.org_id();
    let filter = Filter {
        session_id: params.session_id,
        types,
    };
    Ok(ws.on_upgrade(move |socket: WebSocket| async move {
        let (mut sink, stream) = socket.split();
        // Subscribed (above) before the log is read: whatever commits
        // after the read is published after the subscription, so it comes
        // live; what comes both ways is skipped by id in `pump`.
        let (subscription, replayed_through) = match params.since {
            None => (subscription, None),
            Some(since) => match catch_up(
                &mut sink,
                store.as_ref(),
                &hub,
                org,
                since,
                &filter,
                subscription,
            )
            .await
            {
                Ok((subscription, last)) => (subscription, Some(last)),
                Err(Replay::Refused(code, reason)) => {
                    let _ = sink
                        .send(Message::Close(Some(CloseFrame {
                            code,
                            reason: reason.into(),
                        })))
                        .await;
                    return;
                }
                Err(Replay::Gone) => return,
            },
        };
        let backlog = Backlog {
            store,
            hub,
            org,
            filter,
        };
        pump(
            sink,
            stream,
            subscription,
            ping_every,
            Until {
                shutdown,
                access: Some(access),
            },
            replayed_through,
            Some(backlog),
        )
        .await;
    }))
}

/// The upgrade plus the optional bearer header, extracted together so the
/// handler can accept either credential.
pub(crate) struct WsUpgrade {
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    bearer: Option<String>,
}

impl FromRequestParts<AppState> for WsUpgrade {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let bearer = bearer(parts)?.map(str::to_string);
        let ws = WebSocketUpgrade::from_request_parts(parts, state).await;
        Ok(Self { ws, bearer })
    }
}

fn parse_types(events: Option<&str>) -> Result<Vec<EventType>, ApiError> {
    let Some(events) = events else {
        return Ok(Vec::new());
    };
    events
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(|name| {
            EventType::parse(name).ok_or_else(|| {
                let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
                ApiError::InvalidQuery(format!(
                    "unknown event type {name:?}; expected one of {}",
                    known.join(", ")
                ))
            })
        })
        .collect()
}

//! `GET /api/v1/ws`: the realtime event stream.

use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::response::Response;
use futures::{Sink, SinkExt, Stream, StreamExt};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use utoipa::IntoParams;

use super::auth::{authenticate, bearer};
use super::error::{ApiError, ErrorBody};
use super::extract::Query;
use crate::app::AppState;
use crate::domain::SessionId;
use crate::events::{Closed, EventType, Filter, SubscribeError, Subscription};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WsParams {
    /// The API token, for clients that cannot set an `Authorization` header.
    pub token: Option<String>,
    /// Only this session's events.
    pub session_id: Option<SessionId>,
    /// Comma-separated event types: `session.status`, `session.qr`,
    /// `session.pairing_code`. Default: all.
    pub events: Option<String>,
}

/// Subscribe to the organization's session events. Each frame is a JSON
/// envelope `{id, event, session_id, org_id, at, data}`.
#[utoipa::path(
    get,
    path = "/ws",
    tag = "realtime",
    params(WsParams),
    responses(
        (status = 101, description = "Switching to WebSocket"),
        (status = 401, body = ErrorBody),
        (status = 404, description = "`session_id` is not one of the organization's sessions", body = ErrorBody),
        (status = 429, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn subscribe(
    State(state): State<AppState>,
    Query(params): Query<WsParams>,
    upgrade: WsUpgrade,
) -> Result<Response, ApiError> {
    let presented = match (&upgrade.bearer, &params.token) {
        (Some(token), _) | (None, Some(token)) => token.as_str(),
        (None, None) => return Err(ApiError::MissingToken),
    };
    let auth = authenticate(state.store.as_ref(), presented).await?;
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
                types,
            },
        )
        .map_err(|SubscribeError::TooManyClients| ApiError::TooManyConnections)?;
    // Only now, so a client without credentials learns that first.
    let ws = upgrade.ws.map_err(|_| ApiError::UpgradeRequired)?;
    let ping_every = state.ws_ping_interval;
    let shutdown = state.shutdown.clone();
    Ok(ws.on_upgrade(move |socket: WebSocket| async move {
        let (sink, stream) = socket.split();
        pump(sink, stream, subscription, ping_every, shutdown).await;
    }))
}

/// The upgrade plus the optional bearer header, extracted together so the
/// handler can accept either credential.
pub struct WsUpgrade {
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
                ApiError::InvalidQuery(format!(
                    "unknown event type {name:?}; expected session.status, session.qr or session.pairing_code"
                ))
            })
        })
        .collect()
}

/// Forwards events to one client until it leaves, stops answering pings,
/// falls behind, or the gateway shuts down. Generic over the socket halves
/// so tests can drive it with channels.
pub async fn pump<S, R>(
    mut sink: S,
    mut stream: R,
    mut subscription: Subscription,
    ping_every: Duration,
    shutdown: CancellationToken,
) where
    S: Sink<Message> + Unpin,
    R: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    let mut awaiting_pong = false;
    let close = loop {
        tokio::select! {
            event = subscription.recv() => match event {
                Ok(event) => {
                    if sink.send(Message::Text(event.json.as_ref().into())).await.is_err() {
                        return;
                    }
                }
                Err(Closed::SlowConsumer) => {
                    break (close_code::POLICY, "slow consumer: events were not read fast enough");
                }
                Err(Closed::HubClosed) => break (close_code::AWAY, "server shutting down"),
            },
            _ = ping.tick() => {
                if awaiting_pong {
                    break (close_code::POLICY, "no pong received");
                }
                awaiting_pong = true;
                if sink.send(Message::Ping(Vec::new().into())).await.is_err() {
                    return;
                }
            }
            message = stream.next() => match message {
                Some(Ok(Message::Pong(_))) => awaiting_pong = false,
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                // Clients have nothing to say on this channel.
                Some(Ok(_)) => {}
            },
            () = shutdown.cancelled() => break (close_code::AWAY, "server shutting down"),
        }
    };
    let (code, reason) = close;
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
}

#[cfg(test)]
mod tests {
    use futures::channel::mpsc;

    use super::*;
    use crate::domain::{OrgId, SessionStatus};
    use crate::events::{Envelope, EventData, EventHub, HubLimits};

    fn status(org: OrgId) -> Envelope {
        Envelope::new(
            org,
            SessionId::new(),
            EventData::Status {
                status: SessionStatus::Starting,
                previous: SessionStatus::Stopped,
                reason: None,
            },
        )
    }

    #[tokio::test]
    async fn forwards_events_and_closes_a_slow_consumer_with_a_reason() {
        let hub = EventHub::new(HubLimits {
            client_buffer: 1,
            max_clients_per_org: 4,
        });
        let org = OrgId::new();
        let Ok(subscription) = hub.subscribe(org, Filter::default()) else {
            panic!("subscribe");
        };
        // Two events before the pump runs: the second overflows the buffer.
        hub.publish(status(org));
        hub.publish(status(org));

        let (sink, mut sent) = mpsc::unbounded::<Message>();
        let (_client, incoming) = mpsc::unbounded::<Result<Message, axum::Error>>();
        let pump = tokio::spawn(pump(
            sink,
            incoming,
            subscription,
            Duration::from_secs(3600),
            CancellationToken::new(),
        ));

        let first = sent.next().await;
        assert!(
            matches!(first, Some(Message::Text(ref t)) if t.as_str().contains("session.status"))
        );
        match sent.next().await {
            Some(Message::Close(Some(frame))) => {
                assert_eq!(frame.code, close_code::POLICY);
                assert!(frame.reason.as_str().contains("slow consumer"));
            }
            other => panic!("expected a close frame, got {other:?}"),
        }
        assert!(pump.await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn pings_and_gives_up_on_a_silent_client() {
        let hub = EventHub::new(HubLimits {
            client_buffer: 4,
            max_clients_per_org: 4,
        });
        let Ok(subscription) = hub.subscribe(OrgId::new(), Filter::default()) else {
            panic!("subscribe");
        };
        let (sink, mut sent) = mpsc::unbounded::<Message>();
        let (_client, incoming) = mpsc::unbounded::<Result<Message, axum::Error>>();
        tokio::spawn(pump(
            sink,
            incoming,
            subscription,
            Duration::from_secs(20),
            CancellationToken::new(),
        ));
        assert!(matches!(sent.next().await, Some(Message::Ping(_))));
        match sent.next().await {
            Some(Message::Close(Some(frame))) => {
                assert_eq!(frame.reason.as_str(), "no pong received")
            }
            other => panic!("expected a close frame, got {other:?}"),
        }
    }

    #[test]
    fn event_type_filters_are_validated() {
        assert!(matches!(parse_types(Some("session.qr, session.status")), Ok(t) if t.len() == 2));
        assert!(matches!(
            parse_types(Some("session.message")),
            Err(ApiError::InvalidQuery(_))
        ));
        assert!(matches!(parse_types(None), Ok(t) if t.is_empty()));
    }
}

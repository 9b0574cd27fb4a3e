//! `GET /api/v1/ws`: the realtime event stream.

use std::sync::Arc;
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

use super::auth::{authenticate, bearer, still_valid};
use super::error::{ApiError, ErrorBody};
use super::extract::Query;
use crate::app::AppState;
use crate::domain::{EventId, OrgId, SessionId, TokenHash};
use crate::events::EventType;
use crate::hub::{Closed, EventHub, Filter, SubscribeError, Subscription};
use crate::store::{Store, StoreError};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WsParams {
    /// The API token, for clients that cannot set an `Authorization` header.
    pub token: Option<String>,
    /// Only this session's events.
    #[param(value_type = Option<String>, format = Uuid)]
    pub session_id: Option<SessionId>,
    /// Comma-separated event types: `session.status`, `session.qr`,
    /// `session.pairing_code`, `message.status`, `message.received`,
    /// `message.reaction`, `message.poll_vote`, `message.edited`,
    /// `message.revoked`, `webhook.disabled`. Default: all.
    #[param(
        pattern = r"^ *((session\.status|session\.qr|session\.pairing_code|message\.status|message\.received|message\.reaction|message\.poll_vote|message\.edited|message\.revoked|webhook\.disabled))? *(, *((session\.status|session\.qr|session\.pairing_code|message\.status|message\.received|message\.reaction|message\.poll_vote|message\.edited|message\.revoked|webhook\.disabled))? *)*$"
    )]
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
pub const CLOSE_SINCE_TOO_OLD: u16 = 4410;
/// The close code for a `since` that names no event of the organization.
pub const CLOSE_SINCE_UNKNOWN: u16 = 4404;
/// The close code for a socket whose token was revoked while it was open.
pub const CLOSE_TOKEN_REVOKED: u16 = 4401;
/// Events read from the log per query while replaying.
const REPLAY_PAGE: u32 = 500;
/// How long one replayed event may wait for the client to take it.
const REPLAY_SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// Subscribe to the organization's events. Each frame is a JSON envelope
/// `{id, event, session_id, org_id, at, data}`; `data` per event is
/// described by `EventData`. Reconnect with `since=<last id>` to get what
/// was missed. Revoking the token that opened the socket closes it with
/// code 4401 (`token revoked`).
#[utoipa::path(
    get,
    path = "/ws",
    tag = "realtime",
    params(WsParams),
    responses(
        (status = 101, description = "Switching to WebSocket"),
        (status = 401, body = ErrorBody),
        (status = 404, description = "`session_id` is not one of the organization's sessions", body = ErrorBody),
        (status = 426, description = "Not a WebSocket upgrade request (`upgrade_required`)", body = ErrorBody),
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
                let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
                ApiError::InvalidQuery(format!(
                    "unknown event type {name:?}; expected one of {}",
                    known.join(", ")
                ))
            })
        })
        .collect()
}

/// Why a replay ended early.
#[derive(Debug)]
pub enum Replay {
    /// The resume point cannot be served: close with this code and reason.
    Refused(u16, &'static str),
    /// The client went away.
    Gone,
}

/// Replays the log after `since`, then hands over a live subscription
/// that has kept up: while a long replay runs, live events queue in the
/// subscription, and if they overflow it, the hub cuts it off. Nothing is
/// lost by that (every published event is in the log), so the replay goes
/// on from where it got to with a fresh subscription, until a pass ends
/// with the subscription still live. Returns it and the id of the last
/// event read from the log.
pub async fn catch_up<S>(
    sink: &mut S,
    store: &dyn Store,
    hub: &EventHub,
    org: OrgId,
    since: EventId,
    filter: &Filter,
    subscription: Subscription,
) -> Result<(Subscription, EventId), Replay>
where
    S: Sink<Message> + Unpin,
{
    let cursor = replay(sink, store, org, since, filter).await?;
    if !subscription.overflowed() {
        return Ok((subscription, cursor));
    }
    // The hub dropped it already, so the new one fits under the cap.
    drop(subscription);
    resubscribe_from(sink, store, hub, org, cursor, filter).await
}

/// A fresh subscription, then the log after `cursor`; again while the
/// subscription overflows during the replay.
async fn resubscribe_from<S>(
    sink: &mut S,
    store: &dyn Store,
    hub: &EventHub,
    org: OrgId,
    mut cursor: EventId,
    filter: &Filter,
) -> Result<(Subscription, EventId), Replay>
where
    S: Sink<Message> + Unpin,
{
    loop {
        let subscription = hub.subscribe(org, filter.clone()).map_err(|_| {
            Replay::Refused(
                close_code::AGAIN,
                "too many realtime connections for this organization",
            )
        })?;
        cursor = send_after(sink, store, org, cursor, filter).await?;
        if !subscription.overflowed() {
            return Ok((subscription, cursor));
        }
    }
}

/// What lets [`pump`] serve a client that fell behind the live queue from
/// the event log instead of cutting it off: a burst (an offline backlog
/// arriving after a reconnect is one batch) can outrun any queue, and the
/// log already holds every event, so memory stays bounded either way.
pub struct Backlog {
    pub store: Arc<dyn Store>,
    pub hub: EventHub,
    pub org: OrgId,
    pub filter: Filter,
}

fn internal(error: StoreError) -> Replay {
    tracing::error!(%error, "could not read the event log for a resume");
    Replay::Refused(close_code::ERROR, "internal error")
}

/// Sends the organization's logged events after `since` that `filter`
/// wants, oldest first, once `since` is known to be a resume point with
/// no gap. Returns the id of the last event read (wanted or not): the
/// live stream resumes after it.
pub async fn replay<S>(
    sink: &mut S,
    store: &dyn Store,
    org: OrgId,
    since: EventId,
    filter: &Filter,
) -> Result<EventId, Replay>
where
    S: Sink<Message> + Unpin,
{
    let events = store.events();
    if !events.has_event(org, since).await.map_err(internal)? {
        let oldest = events.oldest_event(org).await.map_err(internal)?;
        // UUIDv7 ids order by time: an id before the oldest kept event
        // was pruned (or is older still); after it, it was never ours.
        return Err(if oldest.is_none_or(|oldest| since < oldest) {
            Replay::Refused(
                CLOSE_SINCE_TOO_OLD,
                "since is older than the oldest event kept; events were missed, resynchronise and reconnect without since",
            )
        } else {
            Replay::Refused(
                CLOSE_SINCE_UNKNOWN,
                "since names no event of this organization",
            )
        });
    }
    send_after(sink, store, org, since, filter).await
}

/// Sends the logged events after `cursor` that `filter` wants; returns the
/// id of the last event read.
async fn send_after<S>(
    sink: &mut S,
    store: &dyn Store,
    org: OrgId,
    mut cursor: EventId,
    filter: &Filter,
) -> Result<EventId, Replay>
where
    S: Sink<Message> + Unpin,
{
    let events = store.events();
    loop {
        let page = events
            .events_after(org, Some(cursor), REPLAY_PAGE)
            .await
            .map_err(internal)?;
        let last_page = page.len() < REPLAY_PAGE as usize;
        for envelope in page {
            cursor = envelope.id;
            if !filter.matches(&envelope) {
                continue;
            }
            let json = serde_json::to_string(&envelope).map_err(|error| {
                tracing::error!(%error, "could not serialize a logged event");
                Replay::Refused(close_code::ERROR, "internal error")
            })?;
            // A client that stops reading must not hold the replay (and its
            // connection) for ever; pings only run once it is over.
            match tokio::time::timeout(REPLAY_SEND_TIMEOUT, sink.send(Message::Text(json.into())))
                .await
            {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return Err(Replay::Gone),
            }
        }
        if last_page {
            return Ok(cursor);
        }
    }
}

/// The credential a socket was opened with, checked again whenever a token
/// is revoked in this process and at every ping (a revocation made by
/// another process on the same database).
pub struct Access {
    pub store: Arc<dyn Store>,
    pub token: TokenHash,
    pub revocations: tokio::sync::watch::Receiver<u64>,
}

/// What ends a [`pump`] besides the client: the gateway shutting down, and
/// the socket's token being revoked.
pub struct Until {
    pub shutdown: CancellationToken,
    pub access: Option<Access>,
}

impl From<CancellationToken> for Until {
    fn from(shutdown: CancellationToken) -> Self {
        Self {
            shutdown,
            access: None,
        }
    }
}

impl Access {
    /// Whether the token is still live. A store that cannot answer keeps
    /// the socket open: the next check asks again.
    async fn revoked(&self) -> bool {
        match still_valid(self.store.as_ref(), &self.token).await {
            Ok(valid) => !valid,
            Err(error) => {
                tracing::warn!(%error, "could not check a realtime socket's token");
                false
            }
        }
    }
}

/// Waits until a token is revoked in this process; never, without access.
async fn revocation(access: &mut Option<Access>) {
    match access {
        Some(access) => {
            if access.revocations.changed().await.is_err() {
                // The state (and its sender) is gone: shutdown closes us.
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

/// Forwards events to one client until it leaves, stops answering pings,
/// its token is revoked, or the gateway shuts down; skips events up to and including
/// `replayed_through` (sent from the log already). A client that falls
/// behind is served from the log through `backlog`, or without one cut
/// off. Generic over the socket halves so tests can drive it with
/// channels.
pub async fn pump<S, R>(
    mut sink: S,
    mut stream: R,
    mut subscription: Subscription,
    ping_every: Duration,
    until: impl Into<Until>,
    mut replayed_through: Option<EventId>,
    backlog: Option<Backlog>,
) where
    S: Sink<Message> + Unpin,
    R: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    let Until {
        shutdown,
        mut access,
    } = until.into();
    const REVOKED: (u16, &str) = (CLOSE_TOKEN_REVOKED, "token revoked");
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    // Where a catch-up from the log starts if this client falls behind.
    let mut last_sent = replayed_through;
    let mut awaiting_pong = false;
    let close = loop {
        tokio::select! {
            event = subscription.recv() => match event {
                Ok(event) if replayed_through.is_some_and(|last| event.envelope.id <= last) => {}
                Ok(event) => {
                    if sink.send(Message::Text(event.json.as_ref().into())).await.is_err() {
                        return;
                    }
                    last_sent = last_sent.max(Some(event.envelope.id));
                }
                Err(Closed::SlowConsumer) => {
                    let (Some(backlog), Some(from)) = (&backlog, last_sent) else {
                        break (close_code::POLICY, "slow consumer: events were not read fast enough");
                    };
                    match resubscribe_from(
                        &mut sink,
                        backlog.store.as_ref(),
                        &backlog.hub,
                        backlog.org,
                        from,
                        &backlog.filter,
                    )
                    .await
                    {
                        Ok((fresh, cursor)) => {
                            subscription = fresh;
                            replayed_through = Some(cursor);
                            last_sent = Some(cursor);
                        }
                        Err(Replay::Refused(code, reason)) => break (code, reason),
                        Err(Replay::Gone) => return,
                    }
                }
                Err(Closed::HubClosed) => break (close_code::AWAY, "server shutting down"),
            },
            _ = ping.tick() => {
                if awaiting_pong {
                    break (close_code::POLICY, "no pong received");
                }
                if let Some(access) = &access
                    && access.revoked().await
                {
                    break REVOKED;
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
            () = revocation(&mut access) => {
                if let Some(access) = &access
                    && access.revoked().await
                {
                    break REVOKED;
                }
            }
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
    use crate::events::{Envelope, EventData};
    use crate::hub::{EventHub, HubLimits};

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
            None,
            None,
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
            None,
            None,
        ));
        assert!(matches!(sent.next().await, Some(Message::Ping(_))));
        match sent.next().await {
            Some(Message::Close(Some(frame))) => {
                assert_eq!(frame.reason.as_str(), "no pong received")
            }
            other => panic!("expected a close frame, got {other:?}"),
        }
    }

    async fn log_with_session() -> (crate::store::SqliteStore, OrgId, SessionId) {
        use crate::store::{NewSession, OrgStore, SessionStore};
        let Ok(store) = crate::store::SqliteStore::connect("sqlite::memory:").await else {
            panic!("store");
        };
        let Ok(org) = store.create_org("acme").await else {
            panic!("org");
        };
        let Ok(session) = store
            .insert_session(NewSession {
                id: SessionId::new(),
                org_id: org.id,
                label: None,
                pace: Default::default(),
            })
            .await
        else {
            panic!("session");
        };
        (store, org.id, session.id)
    }

    async fn logged(store: &crate::store::SqliteStore, org: OrgId, session: SessionId) -> Envelope {
        use crate::store::EventStore;
        let mut event = Envelope::new(
            org,
            session,
            EventData::Status {
                status: SessionStatus::Starting,
                previous: SessionStatus::Stopped,
                reason: None,
            },
        );
        let Ok(()) = store.append_event(&mut event).await else {
            panic!("append");
        };
        event
    }

    fn ids(sent: &[Message]) -> Vec<String> {
        sent.iter()
            .filter_map(|m| match m {
                Message::Text(t) => serde_json::from_str::<serde_json::Value>(t.as_str())
                    .ok()
                    .and_then(|v| v["id"].as_str().map(str::to_owned)),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn a_resume_replays_the_log_then_goes_live_without_gap_or_repeat() {
        let (store, org, session) = log_with_session().await;
        let hub = EventHub::new(HubLimits {
            client_buffer: 8,
            max_clients_per_org: 4,
        });
        let e1 = logged(&store, org, session).await;
        let e2 = logged(&store, org, session).await;
        // Subscribed before the log is read, as the handler does; e3 is
        // committed before the read but published after the subscription,
        // so it comes both ways.
        let Ok(subscription) = hub.subscribe(org, Filter::default()) else {
            panic!("subscribe");
        };
        let e3 = logged(&store, org, session).await;
        hub.publish(e3.clone());

        let (mut sink, mut sent) = mpsc::unbounded::<Message>();
        let last = replay(&mut sink, &store, org, e1.id, &Filter::default()).await;
        assert!(matches!(last, Ok(id) if id == e3.id), "{last:?}");

        let e4 = logged(&store, org, session).await;
        hub.publish(e4.clone());
        let (_client, incoming) = mpsc::unbounded::<Result<Message, axum::Error>>();
        let shutdown = CancellationToken::new();
        let pump = tokio::spawn(pump(
            sink,
            incoming,
            subscription,
            Duration::from_secs(3600),
            shutdown.clone(),
            Some(e3.id),
            None,
        ));
        let mut got = Vec::new();
        while got.len() < 3 {
            match sent.next().await {
                Some(message) => got.push(message),
                None => break,
            }
        }
        shutdown.cancel();
        assert!(pump.await.is_ok());
        assert_eq!(
            ids(&got),
            [e2.id, e3.id, e4.id].map(|id| id.to_string()).to_vec()
        );
    }

    #[tokio::test]
    async fn live_events_overflowing_during_a_replay_lose_nothing() {
        let (store, org, session) = log_with_session().await;
        let hub = EventHub::new(HubLimits {
            client_buffer: 1,
            max_clients_per_org: 1,
        });
        let e0 = logged(&store, org, session).await;
        let Ok(subscription) = hub.subscribe(org, Filter::default()) else {
            panic!("subscribe");
        };
        // A busy organization: more is published than the queue holds
        // before the replay gets going.
        let mut expected = Vec::new();
        for _ in 0..3 {
            let event = logged(&store, org, session).await;
            hub.publish(event.clone());
            expected.push(event.id.to_string());
        }
        assert!(subscription.overflowed());
        let (mut sink, mut sent) = mpsc::unbounded::<Message>();
        let caught_up = catch_up(
            &mut sink,
            &store,
            &hub,
            org,
            e0.id,
            &Filter::default(),
            subscription,
        )
        .await;
        let Ok((mut live, last)) = caught_up else {
            panic!("catch up: {caught_up:?}", caught_up = caught_up.err());
        };
        assert_eq!(last.to_string(), expected[2]);
        assert!(!live.overflowed());
        let e4 = logged(&store, org, session).await;
        hub.publish(e4.clone());
        assert!(matches!(live.recv().await, Ok(p) if p.envelope.id == e4.id));
        drop(sink);
        let mut got = Vec::new();
        while let Some(message) = sent.next().await {
            got.push(message);
        }
        assert_eq!(ids(&got), expected);
    }

    #[tokio::test]
    async fn a_client_that_falls_behind_is_served_from_the_log() {
        let (store, org, session) = log_with_session().await;
        let store: Arc<dyn Store> = Arc::new(store);
        let hub = EventHub::new(HubLimits {
            client_buffer: 1,
            max_clients_per_org: 1,
        });
        let Ok(subscription) = hub.subscribe(org, Filter::default()) else {
            panic!("subscribe");
        };
        let mut expected = Vec::new();
        // A burst: the second overflows the queue of one.
        for _ in 0..2 {
            let mut event = Envelope::new(
                org,
                session,
                EventData::Status {
                    status: SessionStatus::Starting,
                    previous: SessionStatus::Stopped,
                    reason: None,
                },
            );
            let Ok(()) = store.events().append_event(&mut event).await else {
                panic!("append");
            };
            hub.publish(event.clone());
            expected.push(event.id.to_string());
        }
        let (sink, mut sent) = mpsc::unbounded::<Message>();
        let (_client, incoming) = mpsc::unbounded::<Result<Message, axum::Error>>();
        let shutdown = CancellationToken::new();
        let pump = tokio::spawn(pump(
            sink,
            incoming,
            subscription,
            Duration::from_secs(3600),
            shutdown.clone(),
            None,
            Some(Backlog {
                store: Arc::clone(&store),
                hub: hub.clone(),
                org,
                filter: Filter::default(),
            }),
        ));
        let mut got = Vec::new();
        while got.len() < 2 {
            match sent.next().await {
                Some(message) => got.push(message),
                None => break,
            }
        }
        assert_eq!(ids(&got), expected, "{got:?}");
        // And live again afterwards.
        let mut event = Envelope::new(
            org,
            session,
            EventData::Status {
                status: SessionStatus::Working,
                previous: SessionStatus::Starting,
                reason: None,
            },
        );
        let Ok(()) = store.events().append_event(&mut event).await else {
            panic!("append");
        };
        // The pump re-subscribed once it caught up: wait for that.
        while hub.subscriber_count() == 0 {
            tokio::task::yield_now().await;
        }
        hub.publish(event.clone());
        let next = sent.next().await.map(|m| ids(&[m]));
        assert_eq!(next, Some(vec![event.id.to_string()]));
        shutdown.cancel();
        assert!(pump.await.is_ok());
    }

    #[tokio::test]
    async fn a_revocation_in_this_process_closes_the_socket_at_once() {
        let Ok(store) = crate::store::SqliteStore::connect("sqlite::memory:").await else {
            panic!("store");
        };
        let store: Arc<dyn Store> = Arc::new(store);
        let Ok(Some(issued)) = crate::admin::bootstrap(store.as_ref()).await else {
            panic!("bootstrap");
        };
        let presented = issued.token.plaintext().expose().clone();
        let hub = EventHub::new(HubLimits {
            client_buffer: 4,
            max_clients_per_org: 4,
        });
        let Ok(subscription) = hub.subscribe(issued.org.id, Filter::default()) else {
            panic!("subscribe");
        };
        let revocations = crate::app::Revocations::default();
        let (sink, mut sent) = mpsc::unbounded::<Message>();
        let (_client, incoming) = mpsc::unbounded::<Result<Message, axum::Error>>();
        let pump = tokio::spawn(pump(
            sink,
            incoming,
            subscription,
            // No ping comes in this test: only the notice can close it.
            Duration::from_secs(3600),
            Until {
                shutdown: CancellationToken::new(),
                access: Some(Access {
                    store: Arc::clone(&store),
                    token: TokenHash::of(&presented),
                    revocations: revocations.subscribe(),
                }),
            },
            None,
            None,
        ));
        // Another token revoked: this socket checks and stays.
        let Ok(other) = crate::admin::create_token(store.as_ref(), "default").await else {
            panic!("token");
        };
        let Ok(()) = crate::admin::revoke_token(store.as_ref(), other.id).await else {
            panic!("revoke");
        };
        revocations.notify();
        hub.publish(status(issued.org.id));
        assert!(matches!(sent.next().await, Some(Message::Text(_))));

        let Ok(()) = crate::admin::revoke_token(store.as_ref(), issued.id).await else {
            panic!("revoke");
        };
        revocations.notify();
        match sent.next().await {
            Some(Message::Close(Some(frame))) => {
                assert_eq!(frame.code, CLOSE_TOKEN_REVOKED);
                assert_eq!(frame.reason.as_str(), "token revoked");
            }
            other => panic!("expected a close frame, got {other:?}"),
        }
        assert!(pump.await.is_ok());
    }

    #[tokio::test]
    async fn a_resume_point_too_old_or_unknown_is_refused_with_its_code() {
        let (store, org, session) = log_with_session().await;
        logged(&store, org, session).await;
        let (mut sink, _sent) = mpsc::unbounded::<Message>();
        let ancient = EventId::from(uuid::Uuid::from_u128(1));
        assert!(matches!(
            replay(&mut sink, &store, org, ancient, &Filter::default()).await,
            Err(Replay::Refused(CLOSE_SINCE_TOO_OLD, _))
        ));
        assert!(matches!(
            replay(&mut sink, &store, org, EventId::new(), &Filter::default()).await,
            Err(Replay::Refused(CLOSE_SINCE_UNKNOWN, _))
        ));
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

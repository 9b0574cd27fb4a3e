//! Resuming a socket from the event log: the events after `since`, then
//! a live subscription that has kept up with them.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, close_code};
use futures::{Sink, SinkExt};

use super::{CLOSE_SINCE_TOO_OLD, CLOSE_SINCE_UNKNOWN};
use crate::domain::{EventId, OrgId};
use crate::hub::{EventHub, Filter, Subscription};
use crate::store::{Store, StoreError};

/// Events read from the log per query while replaying.
const REPLAY_PAGE: u32 = 500;
/// How long one replayed event may wait for the client to take it.
const REPLAY_SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a replay ended early.
#[derive(Debug)]
pub(crate) enum Replay {
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
pub(crate) async fn catch_up<S>(
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
pub(super) async fn resubscribe_from<S>(
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
pub(crate) struct Backlog {
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
pub(crate) async fn replay<S>(
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

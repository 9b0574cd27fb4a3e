//! The realtime socket's handler, replay and pump, driven with channels
//! and an in-memory store.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, close_code};
use futures::StreamExt;
use futures::channel::mpsc;
use tokio_util::sync::CancellationToken;

use super::replay::replay;
use super::*;
use crate::domain::{EventId, TokenHash};
use crate::domain::{OrgId, SessionStatus};
use crate::events::{Envelope, EventData};
use crate::hub::{EventHub, HubLimits};
use crate::store::Store;

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
    assert!(matches!(first, Some(Message::Text(ref t)) if t.as_str().contains("session.status")));
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
            history: Default::default(),
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

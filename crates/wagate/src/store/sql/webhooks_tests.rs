//! The webhook store on each backend (compiled with `webhooks.rs`, once per
//! backend): fan-out in the event's transaction, queue heads, runs,
//! disabling, secret rotation, pruning.

use super::super::test_store;
use chrono::Duration;
use url::Url;

use super::*;
use crate::domain::{SessionStatus, StatusReason, generate_secret};
use crate::events::{EventData, EventType};
use crate::store::{EventStore, NewSession, OrgStore, SessionStore};

fn url() -> Url {
    Url::parse("https://hooks.example.org/wagate").unwrap_or_else(|e| panic!("{e}"))
}

async fn hook(
    store: &Backend,
    org: OrgId,
    types: Option<Vec<EventType>>,
    sessions: Option<Vec<SessionId>>,
    enabled: bool,
) -> WebhookRecord {
    store
        .insert_webhook(NewWebhook {
            id: WebhookId::new(),
            org_id: org,
            url: url(),
            event_types: types,
            session_ids: sessions,
            enabled,
            secret: generate_secret(),
        })
        .await
        .unwrap_or_else(|e| panic!("insert webhook: {e:?}"))
}

fn qr(org: OrgId, session: SessionId) -> Envelope {
    Envelope::new(
        org,
        session,
        EventData::Qr {
            code: "2@x".into(),
            expires_at: Utc::now(),
        },
    )
}

/// Logs a QR event for each session in turn; returns their ids.
async fn log_qrs(
    store: &Backend,
    org: OrgId,
    sessions: &[SessionId],
) -> Result<Vec<crate::domain::EventId>, StoreError> {
    let mut events = Vec::new();
    for session in sessions {
        let mut event = qr(org, *session);
        store.append_event(&mut event).await?;
        events.push(event.id);
    }
    Ok(events)
}

async fn all_deliveries(store: &Backend, org: OrgId, hook: WebhookId) -> Vec<DeliveryRecord> {
    store
        .list_deliveries(
            org,
            hook,
            &DeliveryQuery {
                status: None,
                limit: 100,
                before: None,
            },
        )
        .await
        .unwrap_or_else(|e| panic!("list: {e:?}"))
}

fn failed_at(at: DateTime<Utc>) -> AttemptResult {
    AttemptResult {
        at,
        status_code: Some(500),
        error: Some("the receiver answered 500".into()),
        response: Some("oops".into()),
    }
}

#[tokio::test]
async fn an_event_queues_one_delivery_per_matching_enabled_webhook_in_its_transaction()
-> Result<(), StoreError> {
    let Some(store) = test_store().await else {
        return Ok(());
    };
    let org = store.create_org("acme").await?;
    let other = store.create_org("other").await?;
    let session = store
        .insert_session(NewSession {
            id: SessionId::new(),
            org_id: org.id,
            label: None,
            pace: Default::default(),
            history: Default::default(),
        })
        .await?;
    let all = hook(&store, org.id, None, None, true).await;
    let status_only = hook(
        &store,
        org.id,
        Some(vec![EventType::SessionStatus]),
        None,
        true,
    )
    .await;
    let qr_only = hook(&store, org.id, Some(vec![EventType::SessionQr]), None, true).await;
    let other_session = hook(&store, org.id, None, Some(vec![SessionId::new()]), true).await;
    let this_session = hook(&store, org.id, None, Some(vec![session.id]), true).await;
    let disabled = hook(&store, org.id, None, None, false).await;
    let foreign = hook(&store, other.id, None, None, true).await;

    // A state change and its event: the delivery commits with them.
    let mut event = Envelope::new(
        org.id,
        session.id,
        EventData::Status {
            status: SessionStatus::Failed,
            previous: SessionStatus::Stopped,
            reason: None,
        },
    );
    store
        .set_status(
            session.id,
            SessionStatus::Failed,
            Some(StatusReason::LinkTimeout),
            &mut event,
        )
        .await?;
    for (webhook, expected) in [
        (&all, 1),
        (&status_only, 1),
        (&qr_only, 0),
        (&other_session, 0),
        (&this_session, 1),
        (&disabled, 0),
    ] {
        let queued = all_deliveries(&store, org.id, webhook.id).await;
        assert_eq!(queued.len(), expected, "{:?}", webhook.event_types);
        if let Some(delivery) = queued.first() {
            assert_eq!(delivery.event_id, event.id);
            assert_eq!(delivery.event_type, "session.status");
            assert_eq!(delivery.status, DeliveryStatus::Pending);
        }
    }
    assert!(
        all_deliveries(&store, other.id, foreign.id)
            .await
            .is_empty()
    );

    // An event whose transaction rolls back leaves no delivery behind.
    let mut tx = begin_write(&store).await?;
    append_event(&mut tx, &mut qr(org.id, session.id)).await?;
    tx.rollback().await?;
    assert_eq!(all_deliveries(&store, org.id, all.id).await.len(), 1);
    Ok(())
}

#[tokio::test]
async fn only_the_oldest_pending_event_of_each_session_is_due() -> Result<(), StoreError> {
    let Some(store) = test_store().await else {
        return Ok(());
    };
    let org = store.create_org("acme").await?;
    let webhook = hook(&store, org.id, None, None, true).await;
    let (a, b) = (SessionId::new(), SessionId::new());
    let events = log_qrs(&store, org.id, &[a, a, b, a]).await?;
    let heads = |due: Vec<DueDelivery>| due.iter().map(|d| d.event_id).collect::<Vec<_>>();
    let now = Utc::now() + Duration::seconds(1);
    let due = store.due_deliveries(now, 10, None).await?;
    assert_eq!(heads(due.clone()), vec![events[0], events[2]]);
    assert!(due[0].payload.contains(&events[0].to_string()));

    // The head fails and waits: the session's later events wait too,
    // the other session does not.
    let first = due[0].clone();
    store
        .delivery_failed(
            &first,
            &failed_at(now),
            AfterFailure::RetryAt(now + Duration::hours(1)),
            None,
        )
        .await?;
    assert_eq!(
        heads(store.due_deliveries(now, 10, None).await?),
        vec![events[2]]
    );

    // Given up: the queue moves on to the next event, in order.
    let first = DueDelivery {
        attempts: 1,
        ..first
    };
    store
        .delivery_failed(&first, &failed_at(now), AfterFailure::GiveUp, None)
        .await?;
    assert_eq!(
        heads(store.due_deliveries(now, 10, None).await?),
        vec![events[1], events[2]]
    );
    let log = all_deliveries(&store, org.id, webhook.id).await;
    let given_up = log
        .iter()
        .find(|d| d.event_id == events[0])
        .unwrap_or_else(|| panic!("logged"));
    assert_eq!(given_up.status, DeliveryStatus::Failed);
    assert_eq!(given_up.attempts, 2);
    assert_eq!(given_up.last_status_code, Some(500));
    assert_eq!(given_up.last_response.as_deref(), Some("oops"));
    assert_eq!(given_up.next_attempt_at, None);

    // Newest first, filterable, pageable.
    assert_eq!(log.len(), 4);
    assert!(log.windows(2).all(|w| w[0].id > w[1].id));
    let failed = store
        .list_deliveries(
            org.id,
            webhook.id,
            &DeliveryQuery {
                status: Some(DeliveryStatus::Failed),
                limit: 10,
                before: None,
            },
        )
        .await?;
    assert_eq!(failed.len(), 1);
    let older = store
        .list_deliveries(
            org.id,
            webhook.id,
            &DeliveryQuery {
                status: None,
                limit: 10,
                before: Some(log[1].id),
            },
        )
        .await?;
    assert_eq!(older.len(), 2);

    // A replay makes it pending and due again, ahead of its session's
    // later events.
    let replayed = store
        .retry_delivery(org.id, webhook.id, given_up.id)
        .await?
        .unwrap_or_else(|| panic!("found"));
    assert_eq!(replayed.status, DeliveryStatus::Pending);
    let mut due = heads(store.due_deliveries(now, 10, None).await?);
    due.sort();
    assert_eq!(due, vec![events[0], events[2]]);
    let other = store.create_org("other").await?;
    assert!(
        store
            .retry_delivery(other.id, webhook.id, given_up.id)
            .await?
            .is_none()
    );
    Ok(())
}

/// A run: the deliveries behind a head, in order, up to the first that
/// is not due; recorded together, they leave the queue.
#[tokio::test]
async fn a_run_takes_the_due_deliveries_behind_the_head_in_order() -> Result<(), StoreError> {
    let Some(store) = test_store().await else {
        return Ok(());
    };
    let org = store.create_org("acme").await?;
    let webhook = hook(&store, org.id, None, None, true).await;
    let (a, b) = (SessionId::new(), SessionId::new());
    let events = log_qrs(&store, org.id, &[a, a, b, a, a, a]).await?;
    let ids = |due: &[DueDelivery]| due.iter().map(|d| d.event_id).collect::<Vec<_>>();
    let now = Utc::now() + Duration::seconds(1);
    let due = store.due_deliveries(now, 10, None).await?;
    let head = due
        .iter()
        .find(|d| d.session_id == a)
        .cloned()
        .unwrap_or_else(|| panic!("a's head"));
    assert_eq!(head.event_id, events[0]);
    let run = store.queued_after(&head, now, 10).await?;
    assert_eq!(ids(&run), vec![events[1], events[3], events[4], events[5]]);
    assert_eq!(
        ids(&store.queued_after(&head, now, 2).await?),
        vec![events[1], events[3]]
    );

    // One of them waiting for a retry ends the run before it: the one
    // after it must not overtake it.
    store
        .delivery_failed(
            &run[2],
            &failed_at(now),
            AfterFailure::RetryAt(now + Duration::hours(1)),
            None,
        )
        .await?;
    assert_eq!(
        ids(&store.queued_after(&head, now, 10).await?),
        vec![events[1], events[3]]
    );

    // Recorded together (one statement): each row gets its own
    // attempt's answer, and the head of a's queue is the one waiting
    // for its retry.
    let answer = |i: usize| AttemptResult {
        at: now + Duration::milliseconds(i64::try_from(i).unwrap_or(0)),
        status_code: Some(200 + u16::try_from(i).unwrap_or(0)),
        response: (i != 1).then(|| format!("answer {i}")),
        ..AttemptResult::default()
    };
    let delivered: Vec<_> = std::iter::once(&head)
        .chain(&run[..2])
        .enumerate()
        .map(|(i, d)| (d.clone(), answer(i)))
        .collect();
    store.deliveries_succeeded(&delivered).await?;
    let log = all_deliveries(&store, org.id, webhook.id).await;
    assert_eq!(
        log.iter()
            .filter(|d| d.status == DeliveryStatus::Delivered)
            .count(),
        3
    );
    for (i, event) in [events[0], events[1], events[3]].into_iter().enumerate() {
        let row = log
            .iter()
            .find(|d| d.event_id == event)
            .unwrap_or_else(|| panic!("{event} logged"));
        let expected = answer(i);
        let at = Some(expected.at).map(|t| t.timestamp_millis());
        assert_eq!(row.status, DeliveryStatus::Delivered, "{i}");
        assert_eq!(row.attempts, 1, "{i}");
        assert_eq!(row.last_status_code, expected.status_code, "{i}");
        assert_eq!(row.last_response, expected.response, "{i}");
        assert_eq!(row.last_error, None, "{i}");
        assert_eq!(row.last_attempt_at.map(|t| t.timestamp_millis()), at, "{i}");
        assert_eq!(row.delivered_at.map(|t| t.timestamp_millis()), at, "{i}");
    }
    let later = now + Duration::hours(2);
    let heads = store.due_deliveries(later, 10, None).await?;
    assert!(heads.iter().any(|d| d.event_id == events[4]));
    assert!(heads.iter().all(|d| d.event_id != events[5]));
    Ok(())
}

#[tokio::test]
async fn disabling_logs_one_event_and_stops_the_queue() -> Result<(), StoreError> {
    let Some(store) = test_store().await else {
        return Ok(());
    };
    let org = store.create_org("acme").await?;
    let webhook = hook(&store, org.id, None, None, true).await;
    let watcher = hook(
        &store,
        org.id,
        Some(vec![EventType::WebhookDisabled]),
        None,
        true,
    )
    .await;
    let (a, b) = (SessionId::new(), SessionId::new());
    store.append_event(&mut qr(org.id, a)).await?;
    store.append_event(&mut qr(org.id, b)).await?;
    let now = Utc::now() + Duration::seconds(1);
    let due = store.due_deliveries(now, 10, None).await?;
    assert_eq!(due.len(), 2);
    let mut disabled = Vec::new();
    for delivery in &due {
        let gone = AttemptResult {
            status_code: Some(410),
            ..failed_at(now)
        };
        disabled.push(
            store
                .delivery_failed(
                    delivery,
                    &gone,
                    AfterFailure::RetryAt(now),
                    Some(DisabledReason::Gone),
                )
                .await?,
        );
    }
    let event = disabled[0]
        .clone()
        .unwrap_or_else(|| panic!("first disables"));
    assert!(disabled[1].is_none(), "already disabled: no second event");
    assert_eq!(
        event.data,
        EventData::WebhookDisabled {
            webhook_id: webhook.id,
            reason: DisabledReason::Gone,
            status_code: Some(410),
        }
    );
    let logged = store.events_after(org.id, None, 10).await?;
    assert_eq!(logged.last(), Some(&event));
    let record = store.get_webhook(org.id, webhook.id).await?;
    let record = record.unwrap_or_else(|| panic!("kept"));
    assert!(!record.enabled);
    assert_eq!(record.disabled_reason, Some(DisabledReason::Gone));
    assert!(record.failing_since.is_some());
    // Its deliveries stay pending but are not due while disabled; the
    // watcher gets the `webhook.disabled` event.
    let due = store
        .due_deliveries(now + Duration::seconds(1), 10, None)
        .await?;
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].webhook_id, watcher.id);
    assert_eq!(due[0].event_id, event.id);

    // Enabled again: the queue resumes, the failure streak is over.
    let enabled = store
        .update_webhook(
            org.id,
            webhook.id,
            WebhookPatch {
                enabled: Some(true),
                ..WebhookPatch::default()
            },
        )
        .await?
        .unwrap_or_else(|| panic!("kept"));
    assert_eq!(enabled.disabled_reason, None);
    assert_eq!(enabled.failing_since, None);
    let due = store
        .due_deliveries(now + Duration::seconds(1), 10, None)
        .await?;
    assert_eq!(due.iter().filter(|d| d.webhook_id == webhook.id).count(), 2);
    Ok(())
}

#[tokio::test]
async fn a_rotated_secret_signs_next_to_the_new_one_until_the_grace_ends() -> Result<(), StoreError>
{
    let Some(store) = test_store().await else {
        return Ok(());
    };
    let org = store.create_org("acme").await?;
    let webhook = hook(&store, org.id, None, None, true).await;
    store
        .append_event(&mut qr(org.id, SessionId::new()))
        .await?;
    let new = generate_secret();
    let grace_ends = Utc::now() + Duration::hours(1);
    let rotated = store
        .rotate_secret(org.id, webhook.id, new.clone(), grace_ends)
        .await?
        .unwrap_or_else(|| panic!("found"));
    assert_eq!(rotated.secret, new);
    assert_eq!(rotated.previous_secret.as_ref(), Some(&webhook.secret));
    let secrets = |due: Vec<DueDelivery>| due[0].secrets.clone();
    let during = store
        .due_deliveries(Utc::now() + Duration::seconds(1), 10, None)
        .await?;
    assert_eq!(secrets(during), vec![new.clone(), webhook.secret.clone()]);
    let after = store
        .due_deliveries(grace_ends + Duration::seconds(1), 10, None)
        .await?;
    assert_eq!(secrets(after), vec![new]);
    let other = store.create_org("other").await?;
    assert!(
        store
            .rotate_secret(other.id, webhook.id, generate_secret(), grace_ends)
            .await?
            .is_none()
    );
    Ok(())
}

#[tokio::test]
async fn pruning_events_prunes_their_deliveries() -> Result<(), StoreError> {
    let Some(store) = test_store().await else {
        return Ok(());
    };
    let org = store.create_org("acme").await?;
    let webhook = hook(&store, org.id, None, None, true).await;
    store
        .append_event(&mut qr(org.id, SessionId::new()))
        .await?;
    assert_eq!(all_deliveries(&store, org.id, webhook.id).await.len(), 1);
    assert_eq!(
        store
            .prune_events(Utc::now() + Duration::seconds(1))
            .await?,
        1
    );
    assert!(all_deliveries(&store, org.id, webhook.id).await.is_empty());
    // Deleting the webhook takes its deliveries along too.
    store
        .append_event(&mut qr(org.id, SessionId::new()))
        .await?;
    assert!(store.delete_webhook(org.id, webhook.id).await?);
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_deliveries")
        .fetch_one(&store.pool)
        .await?;
    assert_eq!(left, 0);
    Ok(())
}

//! Recording incoming messages: one row and one event per WhatsApp id,
//! all of a batch or nothing.

use chrono::Utc;

use super::*;
use crate::domain::Direction;
use crate::events::EventType;
use crate::group_commit::Commit;
use crate::messages::{Inbound, IncomingContent, Target};
use crate::store::testing::TestStore;
use crate::store::{EventStore, NewSession, OrgStore, SessionStore};

/// `None`: this backend's database is not there (PostgreSQL, skipped).
async fn setup() -> Result<Option<(TestStore<Backend>, OrgId, SessionId)>, StoreError> {
    let Some(store) = super::super::test_store().await else {
        return Ok(None);
    };
    let org = store.create_org("acme").await?;
    let session = store
        .insert_session(NewSession {
            id: SessionId::new(),
            org_id: org.id,
            label: None,
            pace: Default::default(),
            history: Default::default(),
        })
        .await?;
    Ok(Some((store, org.id, session.id)))
}

fn incoming(org: OrgId, session: SessionId, wa_id: &str, content: IncomingContent) -> NewIncoming {
    NewIncoming {
        id: MessageId::new(),
        org_id: org,
        session_id: session,
        inbound: Inbound {
            wa_id: wa_id.into(),
            chat: "15550001111@s.whatsapp.net".into(),
            sender: Sender {
                phone: Some("15550001111".into()),
                lid: None,
            },
            push_name: Some("Bob".into()),
            timestamp: Utc::now(),
            from_me: false,
            content,
            media: None,
            reply_to: None,
        },
    }
}

fn text(body: &str) -> IncomingContent {
    IncomingContent::Text { body: body.into() }
}

fn query() -> MessageQuery {
    MessageQuery {
        chat: None,
        direction: None,
        status: None,
        limit: 50,
        before: None,
        after: None,
    }
}

#[tokio::test]
async fn a_message_is_recorded_once_whatever_the_redeliveries() -> Result<(), StoreError> {
    let Some((store, org, session)) = setup().await? else {
        return Ok(());
    };
    // Twice in one batch (under a LID and a number), then again later.
    let events = store
        .record_incoming(vec![
            incoming(org, session, "3EB0A", text("hi")),
            incoming(org, session, "3EB0A", text("hi")),
        ])
        .await?;
    assert_eq!(events.len(), 1);
    let again = store
        .record_incoming(vec![incoming(org, session, "3EB0A", text("hi"))])
        .await?;
    assert!(again.is_empty(), "a redelivery reports nothing");

    let rows = store.list_messages(org, session, &query()).await?;
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.direction, Direction::Incoming);
    assert_eq!(row.kind, "text");
    assert_eq!(row.content["body"], "hi");
    let received = row
        .received
        .as_ref()
        .ok_or(StoreError::Corrupt("no details".into()))?;
    assert_eq!(received.sender.phone.as_deref(), Some("15550001111"));
    assert_eq!(received.push_name.as_deref(), Some("Bob"));
    assert!(!received.from_me);

    let logged = store.events_after(org, None, 10).await?;
    assert_eq!(logged, events, "the event is logged as returned");
    assert_eq!(logged[0].data.event_type(), EventType::MessageReceived);
    Ok(())
}

#[tokio::test]
async fn reactions_point_at_the_gateway_copy_of_their_message() -> Result<(), StoreError> {
    let Some((store, org, session)) = setup().await? else {
        return Ok(());
    };
    let first = incoming(org, session, "3EB0A", text("hi"));
    let first_id = first.id;
    store.record_incoming(vec![first]).await?;
    let reaction = |wa_id: &str, target: &str| {
        incoming(
            org,
            session,
            wa_id,
            IncomingContent::Reaction {
                target: Target {
                    wa_id: target.into(),
                    from_me: false,
                    message_id: None,
                    key: Default::default(),
                },
                emoji: "👍".into(),
            },
        )
    };
    let events = store
        .record_incoming(vec![
            reaction("3EB0B", "3EB0A"),
            reaction("3EB0C", "UNKNOWN"),
        ])
        .await?;
    assert_eq!(events.len(), 2);
    let targets: Vec<_> = events
        .iter()
        .map(|e| match &e.data {
            EventData::MessageReaction(m) => m.content.target().and_then(|t| t.message_id),
            other => panic!("not a reaction: {other:?}"),
        })
        .collect();
    assert_eq!(targets, [Some(first_id), None]);
    Ok(())
}

#[tokio::test]
async fn a_batch_that_fails_part_way_stores_nothing() -> Result<(), StoreError> {
    let Some((store, org, session)) = setup().await? else {
        return Ok(());
    };
    // The second row names a session that does not exist: the foreign key
    // refuses it, and the first row must go with it.
    let result = store
        .record_incoming(vec![
            incoming(org, session, "3EB0A", text("hi")),
            incoming(org, SessionId::new(), "3EB0B", text("lost?")),
        ])
        .await;
    assert!(result.is_err());
    assert!(
        store
            .list_messages(org, session, &query())
            .await?
            .is_empty()
    );
    assert!(store.events_after(org, None, 10).await?.is_empty());
    // WhatsApp redelivers; this time it goes through.
    let events = store
        .record_incoming(vec![incoming(org, session, "3EB0A", text("hi"))])
        .await?;
    assert_eq!(events.len(), 1);
    Ok(())
}

#[tokio::test]
async fn listing_filters_by_direction() -> Result<(), StoreError> {
    let Some((store, org, session)) = setup().await? else {
        return Ok(());
    };
    store
        .record_incoming(vec![incoming(org, session, "3EB0A", text("hi"))])
        .await?;
    let outgoing = MessageQuery {
        direction: Some(Direction::Outgoing),
        ..query()
    };
    assert!(
        store
            .list_messages(org, session, &outgoing)
            .await?
            .is_empty()
    );
    let incoming_only = MessageQuery {
        direction: Some(Direction::Incoming),
        ..query()
    };
    assert_eq!(
        store
            .list_messages(org, session, &incoming_only)
            .await?
            .len(),
        1
    );
    Ok(())
}

/// A group commit: several sessions' batches in one transaction, each
/// answered with its own events; a message in two batches of the group is
/// recorded (and reported) once, by the first.
#[tokio::test]
async fn a_group_answers_each_batch_with_its_own_events() -> Result<(), StoreError> {
    let Some((store, org, session)) = setup().await? else {
        return Ok(());
    };
    let other = store
        .insert_session(NewSession {
            id: SessionId::new(),
            org_id: org,
            label: None,
            pace: Default::default(),
            history: Default::default(),
        })
        .await?
        .id;
    let written = writer::committer(&store)
        .commit(&[
            writer::Request::unclaimed(Write::Incoming(vec![
                incoming(org, session, "3EB0A", text("a")),
                incoming(org, session, "3EB0B", text("b")),
            ])),
            writer::Request::unclaimed(Write::Incoming(vec![incoming(
                org,
                other,
                "3EB0A",
                text("other a"),
            )])),
            writer::Request::unclaimed(Write::Incoming(vec![incoming(
                org,
                session,
                "3EB0B",
                text("b again"),
            )])),
        ])
        .await?;
    let groups: Vec<Vec<Envelope>> = written
        .into_iter()
        .map(|written| match written {
            Written::Incoming(events) => events,
            _ => panic!("not an incoming batch's result"),
        })
        .collect();
    let wa_ids = |events: &[Envelope]| -> Vec<(SessionId, String)> {
        events
            .iter()
            .map(|e| match &e.data {
                EventData::MessageReceived(m) => (e.session_id, m.wa_id.clone()),
                other => panic!("not a message.received: {other:?}"),
            })
            .collect()
    };
    assert_eq!(groups.len(), 3);
    assert_eq!(
        wa_ids(&groups[0]),
        vec![(session, "3EB0A".into()), (session, "3EB0B".into())]
    );
    assert_eq!(wa_ids(&groups[1]), vec![(other, "3EB0A".into())]);
    assert!(groups[2].is_empty(), "already recorded by the first batch");
    let logged = store.events_after(org, None, 10).await?;
    assert_eq!(logged.len(), 3);
    assert_eq!(
        logged.iter().map(|e| e.id).collect::<Vec<_>>(),
        groups.iter().flatten().map(|e| e.id).collect::<Vec<_>>(),
        "logged in the order of the group"
    );
    Ok(())
}

#[tokio::test]
async fn a_poll_is_found_by_its_whatsapp_id_sent_before_received() -> Result<(), StoreError> {
    let Some((store, org, session)) = setup().await? else {
        return Ok(());
    };
    let poll = |options: &[&str]| IncomingContent::Poll {
        question: "Lunch?".into(),
        options: options.iter().map(|o| (*o).to_string()).collect(),
        selectable_count: 1,
    };
    store
        .record_incoming(vec![incoming(org, session, "3EB0IN", poll(&["yes", "no"]))])
        .await?;
    let found = store.poll(session, "3EB0IN").await?;
    let Some(found) = found else {
        panic!("the received poll is not found");
    };
    assert_eq!(found.direction, Direction::Incoming);
    assert_eq!(found.options, ["yes", "no"]);
    assert_eq!(found.sender.phone.as_deref(), Some("15550001111"));
    assert_eq!(found.wire, None);

    // A poll this session sent, under the same id (its copy came back from
    // the phone): the one sent wins, with what it was sent as.
    let sent = MessageId::new();
    let accepted = store
        .accept(
            NewOutgoing {
                id: sent,
                org_id: org,
                session_id: session,
                wa_id: "3EB0IN".into(),
                chat: "15550001111@s.whatsapp.net".into(),
                kind: "poll".into(),
                content: serde_json::json!({
                    "to": "15550001111",
                    "content": { "type": "poll", "question": "Where?", "options": ["n", "s"], "selectable_count": 1 },
                }),
                media: None,
            },
            None,
        )
        .await?;
    assert!(matches!(accepted, Accepted::Created { .. }));
    store.set_wire(session, sent, &[9, 9, 9]).await?;
    let Some(found) = store.poll(session, "3EB0IN").await? else {
        panic!("the sent poll is not found");
    };
    assert_eq!(found.direction, Direction::Outgoing);
    assert_eq!(found.options, ["n", "s"]);
    assert_eq!(found.wire.as_deref(), Some(&[9, 9, 9][..]));

    // Not a poll, or not this session's: nothing.
    store
        .record_incoming(vec![incoming(org, session, "3EB0TEXT", text("hi"))])
        .await?;
    assert!(store.poll(session, "3EB0TEXT").await?.is_none());
    assert!(store.poll(SessionId::new(), "3EB0IN").await?.is_none());
    Ok(())
}

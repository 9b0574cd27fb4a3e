//! History chunks: stored once with their event, deduplicated against live
//! messages (either direction) and against each other, sorted among them
//! by when they were sent, their chats and push names kept.

use chrono::{DateTime, Duration, Utc};

use super::super::Backend;
use crate::domain::{HistorySyncType, MessageId, OrgId, SessionId};
use crate::events::EventData;
use crate::messages::{Inbound, IncomingContent, Sender};
use crate::store::testing::TestStore;
use crate::store::{
    Accepted, ChatStore, EventStore, HistoryChat, MessageQuery, MessageStore, NewHistory,
    NewIncoming, NewOutgoing, StoreError,
};

const BOB: &str = "15550001111@s.whatsapp.net";
const TEAM: &str = "120363000000000001@g.us";

async fn setup() -> Result<Option<(TestStore<Backend>, OrgId, SessionId)>, StoreError> {
    let Some(store) = super::super::test_store().await else {
        return Ok(None);
    };
    let (org, session) = crate::store::testing::new_session(&*store).await?;
    Ok(Some((store, org, session)))
}

fn text(chat: &str, wa_id: &str, at: DateTime<Utc>, from_me: bool) -> Inbound {
    Inbound {
        wa_id: wa_id.into(),
        chat: chat.into(),
        sender: Sender {
            phone: (!from_me).then(|| "15550001111".into()),
            lid: None,
        },
        push_name: (!from_me).then(|| "Bob".into()),
        timestamp: at,
        from_me,
        content: IncomingContent::Text {
            body: wa_id.to_lowercase(),
        },
        media: None,
        reply_to: None,
    }
}

fn chunk(org: OrgId, session: SessionId, chats: Vec<HistoryChat>) -> NewHistory {
    NewHistory {
        org_id: org,
        session_id: session,
        sync_type: HistorySyncType::Recent,
        chunk_order: Some(1),
        progress: Some(50),
        chats,
        push_names: vec![(TEAM.into(), "ignored: a group".into())],
    }
}

fn chat(jid: &str, name: Option<&str>, messages: Vec<Inbound>) -> HistoryChat {
    HistoryChat {
        chat: jid.into(),
        name: name.map(str::to_string),
        unread: 4,
        messages,
    }
}

async fn bodies(
    store: &TestStore<Backend>,
    org: OrgId,
    session: SessionId,
    chat: &str,
) -> Result<Vec<String>, StoreError> {
    let page = store
        .list_messages(
            org,
            session,
            &MessageQuery {
                chat: Some(chat.into()),
                direction: None,
                status: None,
                limit: 100,
                before: None,
                after: None,
            },
        )
        .await?;
    Ok(page
        .iter()
        .map(|m| m.content["body"].as_str().unwrap_or_default().to_string())
        .collect())
}

#[tokio::test]
async fn a_chunk_is_stored_once_with_its_event_among_live_messages() -> Result<(), StoreError> {
    let Some((store, org, session)) = setup().await? else {
        return Ok(());
    };
    let old = Utc::now() - Duration::days(3);
    // A message received live, and one the gateway sent, both also in
    // the history.
    store
        .record_incoming(vec![NewIncoming {
            id: MessageId::new(),
            org_id: org,
            session_id: session,
            inbound: text(BOB, "LIVE", Utc::now(), false),
        }])
        .await?;
    let sent = store
        .accept(
            NewOutgoing {
                id: MessageId::new(),
                org_id: org,
                session_id: session,
                wa_id: "SENT".into(),
                chat: BOB.into(),
                kind: "text".into(),
                content: serde_json::json!({ "to": BOB, "text": "sent" }),
                media: None,
            },
            None,
        )
        .await?;
    let bob = vec![
        // Out of order, two in the same second, one twice.
        text(BOB, "H2", old + Duration::seconds(60), true),
        text(BOB, "H1", old, false),
        text(BOB, "H1B", old, false),
        text(BOB, "H2", old + Duration::seconds(60), true),
        text(BOB, "LIVE", Utc::now(), false),
        text(BOB, "SENT", old + Duration::seconds(90), true),
    ];
    let team = vec![text(TEAM, "G1", old, false)];
    let event = store
        .record_history(chunk(
            org,
            session,
            vec![chat(BOB, None, bob.clone()), chat(TEAM, Some("Team"), team)],
        ))
        .await?
        .sync;
    let EventData::HistorySync {
        sync_type,
        chunk_order,
        progress,
        chats,
        messages,
        push_names,
    } = &event.data
    else {
        panic!("not a history.sync: {event:?}");
    };
    assert_eq!(*sync_type, HistorySyncType::Recent);
    assert_eq!((*chunk_order, *progress), (Some(1), Some(50)));
    assert_eq!((*chats, *messages, *push_names), (2, 4, 1));
    // The event is logged, in the same transaction.
    let logged = store.events_after(org, None, 100).await?;
    assert_eq!(logged.last(), Some(&event));

    // History sorts below the live message, in the order it was sent
    // (H1 before H1B: the chunk's order within a second).
    assert_eq!(
        bodies(&store, org, session, BOB).await?,
        ["", "live", "h2", "h1b", "h1"]
    );
    let all = store
        .list_messages(
            org,
            session,
            &MessageQuery {
                chat: Some(BOB.into()),
                direction: None,
                status: None,
                limit: 100,
                before: None,
                after: None,
            },
        )
        .await?;
    let flags: Vec<Option<bool>> = all
        .iter()
        .map(|m| m.received.as_ref().map(|r| r.from_history))
        .collect();
    assert_eq!(
        flags,
        [None, Some(false), Some(true), Some(true), Some(true)]
    );
    // The outgoing message is there once, as sent.
    assert!(matches!(sent, Accepted::Created { .. }), "{sent:?}");
    assert_eq!(all[0].wa_id, "SENT");
    assert_eq!(all[0].direction, crate::domain::Direction::Outgoing);
    // The live message stays the chat's latest; its unread count is its own.
    let list = store.list_chats(org, session, None, 10).await?;
    let bob_chat = list.iter().find(|c| c.chat == BOB);
    assert_eq!(
        bob_chat.map(|c| c.last_message.wa_id.as_str()),
        Some("SENT")
    );
    let team = list.iter().find(|c| c.chat == TEAM);
    assert_eq!(team.and_then(|c| c.name.as_deref()), Some("Team"));
    assert_eq!(team.map(|c| c.unread), Some(4));

    // The same chunk again (a restart mid-sync): nothing new.
    let again = store
        .record_history(chunk(org, session, vec![chat(BOB, None, bob)]))
        .await?
        .sync;
    assert!(
        matches!(
            again.data,
            EventData::HistorySync {
                messages: 0,
                chats: 0,
                ..
            }
        ),
        "{again:?}"
    );
    assert_eq!(bodies(&store, org, session, BOB).await?.len(), 5);
    // And a live redelivery of a history message stores nothing either.
    let events = store
        .record_incoming(vec![NewIncoming {
            id: MessageId::new(),
            org_id: org,
            session_id: session,
            inbound: text(BOB, "H1", old, false),
        }])
        .await?;
    assert!(events.is_empty(), "{events:?}");
    Ok(())
}

#[tokio::test]
async fn push_names_name_chats_without_one() -> Result<(), StoreError> {
    let Some((store, org, session)) = setup().await? else {
        return Ok(());
    };
    let lid = "99887766@lid";
    let mut nameless = text(lid, "L1", Utc::now() - Duration::days(1), false);
    nameless.push_name = None;
    store
        .record_history(chunk(org, session, vec![chat(lid, None, vec![nameless])]))
        .await?;
    assert_eq!(
        store.list_chats(org, session, None, 10).await?[0].name,
        None
    );
    let mut names = chunk(org, session, Vec::new());
    names.sync_type = HistorySyncType::PushName;
    names.push_names = vec![(lid.into(), "Dave".into())];
    let event = store.record_history(names).await?.sync;
    assert!(matches!(
        event.data,
        EventData::HistorySync {
            push_names: 1,
            messages: 0,
            ..
        }
    ));
    let chats = store.list_chats(org, session, None, 10).await?;
    assert_eq!(chats[0].name.as_deref(), Some("Dave"));
    Ok(())
}

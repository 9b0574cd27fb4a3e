//! The chat list: written with each message, read by latest activity.

use chrono::{DateTime, Utc};

use super::*;
use crate::domain::{ChatSetting, MessageId};
use crate::messages::{Inbound, IncomingContent, Sender};
use crate::store::EventStore;
use crate::store::chats::ChatKind;
use crate::store::testing::TestStore;
use crate::store::{MessageStore, NewIncoming, NewOutgoing, NewSession, SessionStore};

const BOB: &str = "15550001111@s.whatsapp.net";
const ANN: &str = "15550002222@s.whatsapp.net";
const TEAM: &str = "120363000000000001@g.us";

/// `None`: this backend's database is not there (PostgreSQL, skipped).
async fn setup() -> Result<Option<(TestStore<Backend>, OrgId, SessionId)>, StoreError> {
    let Some(store) = super::super::test_store().await else {
        return Ok(None);
    };
    let (org, session) = crate::store::testing::new_session(&*store).await?;
    Ok(Some((store, org, session)))
}

fn incoming(org: OrgId, session: SessionId, chat: &str, wa_id: &str, from_me: bool) -> NewIncoming {
    NewIncoming {
        id: MessageId::new(),
        org_id: org,
        session_id: session,
        inbound: Inbound {
            wa_id: wa_id.into(),
            chat: chat.into(),
            sender: Sender {
                phone: Some("15550001111".into()),
                lid: None,
            },
            push_name: Some(format!("name of {chat}")),
            timestamp: Utc::now(),
            from_me,
            content: IncomingContent::Text { body: "hi".into() },
            media: None,
            reply_to: None,
        },
    }
}

fn outgoing(org: OrgId, session: SessionId, chat: &str) -> NewOutgoing {
    NewOutgoing {
        id: MessageId::new(),
        org_id: org,
        session_id: session,
        wa_id: format!("3EB0{}", MessageId::new().to_string().replace('-', "")),
        chat: chat.into(),
        kind: "text".into(),
        content: serde_json::json!({ "to": chat, "text": "hello" }),
        media: None,
    }
}

async fn list(
    store: &TestStore<Backend>,
    org: OrgId,
    session: SessionId,
) -> Result<Vec<(String, u64)>, StoreError> {
    Ok(store
        .list_chats(org, session, None, 100)
        .await?
        .into_iter()
        .map(|c| (c.chat, c.unread))
        .collect())
}

#[tokio::test]
async fn chats_come_by_latest_activity_with_their_unread_counts() -> Result<(), StoreError> {
    let Some((store, org, session)) = setup().await? else {
        return Ok(());
    };
    // Two from Bob in one batch, one from Ann, one in the group.
    store
        .record_incoming(vec![
            incoming(org, session, BOB, "A1", false),
            incoming(org, session, BOB, "A2", false),
        ])
        .await?;
    store
        .record_incoming(vec![incoming(org, session, ANN, "A3", false)])
        .await?;
    store
        .record_incoming(vec![incoming(org, session, TEAM, "A4", false)])
        .await?;
    assert_eq!(
        list(&store, org, session).await?,
        vec![(TEAM.into(), 1), (ANN.into(), 1), (BOB.into(), 2)]
    );
    // A redelivery is no new message: nothing moves.
    store
        .record_incoming(vec![incoming(org, session, BOB, "A1", false)])
        .await?;
    assert_eq!(list(&store, org, session).await?[0].0, TEAM);

    // Sending to Bob reads his chat and brings it to the top.
    store.accept(outgoing(org, session, BOB), None).await?;
    assert_eq!(
        list(&store, org, session).await?,
        vec![(BOB.into(), 0), (TEAM.into(), 1), (ANN.into(), 1)]
    );
    // The phone writing to Ann reads hers; Bob writing again counts one.
    store
        .record_incoming(vec![
            incoming(org, session, ANN, "A5", true),
            incoming(org, session, BOB, "A6", false),
        ])
        .await?;
    let chats = store.list_chats(org, session, None, 100).await?;
    let bob = chats.iter().find(|c| c.chat == BOB);
    assert_eq!(bob.map(|c| c.unread), Some(1));
    assert_eq!(bob.map(|c| c.last_message.wa_id.as_str()), Some("A6"));
    assert_eq!(
        bob.and_then(|c| c.name.clone()),
        Some(format!("name of {BOB}"))
    );
    let ann = chats.iter().find(|c| c.chat == ANN);
    assert_eq!(ann.map(|c| c.unread), Some(0));
    let team = store.get_chat(org, session, TEAM).await?;
    assert_eq!(team.as_ref().map(|c| c.kind), Some(ChatKind::Group));
    // A group is not named after whoever wrote in it.
    assert_eq!(team.and_then(|c| c.name), None);
    assert_eq!(
        store.get_chat(org, session, "1@s.whatsapp.net").await?,
        None
    );
    Ok(())
}

#[tokio::test]
async fn the_list_pages_without_gaps_or_repeats() -> Result<(), StoreError> {
    let Some((store, org, session)) = setup().await? else {
        return Ok(());
    };
    let chats: Vec<String> = (0..25)
        .map(|i| format!("1555000{i:04}@s.whatsapp.net"))
        .collect();
    let batch = chats
        .iter()
        .enumerate()
        .map(|(i, chat)| incoming(org, session, chat, &format!("P{i}"), false))
        .collect();
    store.record_incoming(batch).await?;
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.list_chats(org, session, cursor, 7).await?;
        let Some(last) = page.last() else { break };
        cursor = Some(last.last_message.id);
        seen.extend(page.into_iter().map(|c| c.chat));
    }
    // The batch's messages were made in order: the last is the latest.
    let expected: Vec<String> = chats.iter().rev().cloned().collect();
    assert_eq!(seen, expected);
    // Another session sees none of them.
    let other = store
        .insert_session(NewSession {
            id: SessionId::new(),
            org_id: org,
            label: None,
            pace: Default::default(),
            history: Default::default(),
        })
        .await?;
    assert!(store.list_chats(org, other.id, None, 10).await?.is_empty());
    Ok(())
}

/// The `chat.updated` event a change logged.
fn updated(changed: ChatChanged) -> Option<(ChatSetting, bool, bool, bool, u64)> {
    match changed {
        ChatChanged::Changed(event) => match event.data {
            EventData::ChatUpdated {
                setting,
                archived,
                pinned,
                muted,
                unread,
                ..
            } => Some((setting, archived, pinned, muted, unread)),
            _ => None,
        },
        _ => None,
    }
}

#[tokio::test]
async fn a_chat_setting_is_stored_with_its_event() -> Result<(), StoreError> {
    let Some((store, org, session)) = setup().await? else {
        return Ok(());
    };
    store
        .record_incoming(vec![
            incoming(org, session, BOB, "S1", false),
            incoming(org, session, BOB, "S2", false),
        ])
        .await?;
    let before = store.events_after(org, None, 100).await?.len();

    let archived = store
        .change_chat(org, session, BOB, ChatChange::Archive(true))
        .await?;
    assert_eq!(
        updated(archived),
        Some((ChatSetting::Archived, true, false, false, 2))
    );
    // The same again writes nothing and logs nothing.
    assert_eq!(
        store
            .change_chat(org, session, BOB, ChatChange::Archive(true))
            .await?,
        ChatChanged::Unchanged
    );
    let pinned = store
        .change_chat(org, session, BOB, ChatChange::Pin(true))
        .await?;
    assert_eq!(
        updated(pinned),
        Some((ChatSetting::Pinned, true, true, false, 2))
    );
    let until = Utc::now() + chrono::Duration::hours(8);
    store
        .change_chat(org, session, BOB, ChatChange::Mute(Mute::Until(until)))
        .await?;
    let read = store
        .change_chat(org, session, BOB, ChatChange::Read(true))
        .await?;
    assert_eq!(
        updated(read),
        Some((ChatSetting::Read, true, true, true, 0))
    );

    let chat = store
        .get_chat(org, session, BOB)
        .await?
        .ok_or_else(|| StoreError::Corrupt("Bob's chat is gone".into()))?;
    assert!(chat.archived && chat.pinned);
    assert_eq!(chat.unread, 0);
    // Stored to the millisecond.
    assert_eq!(
        chat.mute,
        Mute::Until(DateTime::from_timestamp_millis(until.timestamp_millis()).unwrap_or(until))
    );
    // Four changes, four events in the log, each with the change.
    let logged = store.events_after(org, None, 100).await?;
    assert_eq!(logged.len() - before, 4);
    assert!(
        logged[before..]
            .iter()
            .all(|e| e.data.event_type() == crate::events::EventType::ChatUpdated)
    );

    // Marked unread: at least one; muted for ever; unpinned, unarchived.
    store
        .change_chat(org, session, BOB, ChatChange::Read(false))
        .await?;
    store
        .change_chat(org, session, BOB, ChatChange::Mute(Mute::Forever))
        .await?;
    store
        .change_chat(org, session, BOB, ChatChange::Pin(false))
        .await?;
    store
        .change_chat(org, session, BOB, ChatChange::Archive(false))
        .await?;
    let chat = store.get_chat(org, session, BOB).await?;
    assert_eq!(
        chat.map(|c| (c.archived, c.pinned, c.mute, c.unread)),
        Some((false, false, Mute::Forever, 1))
    );
    // A chat with no message is not in the list, and nothing is logged.
    let count = store.events_after(org, None, 100).await?.len();
    assert_eq!(
        store
            .change_chat(org, session, ANN, ChatChange::Archive(true))
            .await?,
        ChatChanged::NoSuchChat
    );
    assert_eq!(store.events_after(org, None, 100).await?.len(), count);
    // A new message keeps the settings.
    store
        .record_incoming(vec![incoming(org, session, BOB, "S3", false)])
        .await?;
    let chat = store.get_chat(org, session, BOB).await?;
    assert_eq!(chat.map(|c| (c.mute, c.unread)), Some((Mute::Forever, 2)));
    Ok(())
}

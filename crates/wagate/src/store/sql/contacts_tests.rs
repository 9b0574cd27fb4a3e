//! Contacts: push names from messages, saved names and pictures with their
//! events, one row per person, a searchable list.

use chrono::Utc;

use super::*;
use crate::domain::MessageId;
use crate::messages::{Inbound, IncomingContent, Sender};
use crate::store::testing::TestStore;
use crate::store::{EventStore, MessageStore, NewIncoming};

/// `None`: this backend's database is not there (PostgreSQL, skipped).
async fn setup() -> Result<Option<(TestStore<Backend>, OrgId, SessionId)>, StoreError> {
    let Some(store) = super::super::test_store().await else {
        return Ok(None);
    };
    let (org, session) = crate::store::testing::new_session(&*store).await?;
    Ok(Some((store, org, session)))
}

fn from(org: OrgId, session: SessionId, sender: Sender, name: &str) -> NewIncoming {
    let chat = match (&sender.phone, &sender.lid) {
        (Some(phone), _) => format!("{phone}@s.whatsapp.net"),
        (None, Some(lid)) => format!("{lid}@lid"),
        (None, None) => "0@s.whatsapp.net".into(),
    };
    NewIncoming {
        id: MessageId::new(),
        org_id: org,
        session_id: session,
        inbound: Inbound {
            wa_id: format!("3EB0{}", MessageId::new().to_string().replace('-', "")),
            chat,
            sender,
            push_name: Some(name.into()),
            timestamp: Utc::now(),
            from_me: false,
            content: IncomingContent::Text { body: "hi".into() },
            media: None,
            reply_to: None,
        },
    }
}

fn phone(p: &str) -> Sender {
    Sender {
        phone: Some(p.into()),
        lid: None,
    }
}

fn page(search: Option<&str>) -> ContactQuery {
    ContactQuery {
        search: search.map(str::to_owned),
        after: None,
        limit: 100,
    }
}

fn contact_events(events: &[Envelope]) -> Vec<(String, Option<String>)> {
    events
        .iter()
        .filter_map(|e| match &e.data {
            EventData::ContactUpdated {
                contact, push_name, ..
            } => Some((contact.clone(), push_name.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_push_name_that_changes_is_reported_with_its_message() -> Result<(), StoreError> {
    let Some((store, org, session)) = setup().await? else {
        return Ok(());
    };
    let first = store
        .record_incoming(vec![from(org, session, phone("15550001111"), "Bob")])
        .await?;
    assert_eq!(contact_events(&first), vec![], "a first name is no change");
    let same = store
        .record_incoming(vec![from(org, session, phone("15550001111"), "Bob")])
        .await?;
    assert_eq!(contact_events(&same), vec![]);
    let renamed = store
        .record_incoming(vec![from(org, session, phone("15550001111"), "Robert")])
        .await?;
    assert_eq!(
        contact_events(&renamed),
        vec![(
            "15550001111@s.whatsapp.net".to_owned(),
            Some("Robert".to_owned())
        )]
    );
    // Logged with the message: replayable from the log.
    let logged = store.events_after(org, None, 100).await?;
    assert!(
        logged
            .iter()
            .any(|e| matches!(e.data, EventData::ContactUpdated { .. })),
        "{logged:?}"
    );
    let contacts = store.list_contacts(session, &page(None)).await?;
    assert_eq!(contacts.len(), 1);
    assert_eq!(contacts[0].push_name.as_deref(), Some("Robert"));
    assert_eq!(contacts[0].on_whatsapp, Some(true));
    Ok(())
}

#[tokio::test]
async fn saved_names_and_pictures_are_reported_once() -> Result<(), StoreError> {
    let Some((store, org, session)) = setup().await? else {
        return Ok(());
    };
    let ana = Person {
        phone: Some("15550002222".into()),
        lid: Some("77001".into()),
    };
    let saved = store
        .change_contact(
            org,
            session,
            &ana,
            ContactChange::SavedName(Some("Ana B".into())),
        )
        .await?;
    assert!(
        matches!(
            saved.as_ref().map(|e| &e.data),
            Some(EventData::ContactUpdated {
                changed: ContactField::SavedName,
                ..
            })
        ),
        "{saved:?}"
    );
    let again = store
        .change_contact(
            org,
            session,
            &ana,
            ContactChange::SavedName(Some("Ana B".into())),
        )
        .await?;
    assert_eq!(again, None);
    let picture = store
        .change_contact(
            org,
            session,
            &Person {
                phone: None,
                lid: Some("77001".into()),
            },
            ContactChange::Picture(Some("pic-1".into())),
        )
        .await?;
    assert!(picture.is_some());
    // Found by either id, one row.
    let by_lid = store
        .get_contact(
            session,
            &Person {
                phone: None,
                lid: Some("77001".into()),
            },
        )
        .await?;
    assert_eq!(
        by_lid.as_ref().map(|c| c.jid.as_str()),
        Some("15550002222@s.whatsapp.net")
    );
    assert_eq!(by_lid.and_then(|c| c.picture_id), Some("pic-1".to_owned()));
    assert_eq!(store.list_contacts(session, &page(None)).await?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_lid_contact_takes_its_number_when_it_is_learned() -> Result<(), StoreError> {
    let Some((store, org, session)) = setup().await? else {
        return Ok(());
    };
    let lid_only = Sender {
        phone: None,
        lid: Some("88001".into()),
    };
    store
        .record_incoming(vec![from(org, session, lid_only, "Cleo")])
        .await?;
    assert_eq!(
        store.list_contacts(session, &page(None)).await?[0].jid,
        "88001@lid"
    );
    let both = Sender {
        phone: Some("15550003333".into()),
        lid: Some("88001".into()),
    };
    store
        .record_incoming(vec![from(org, session, both, "Cleo")])
        .await?;
    let contacts = store.list_contacts(session, &page(None)).await?;
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(contacts[0].jid, "15550003333@s.whatsapp.net");
    assert_eq!(contacts[0].lid.as_deref(), Some("88001"));
    Ok(())
}

#[tokio::test]
async fn the_list_pages_and_searches_names_and_numbers() -> Result<(), StoreError> {
    let Some((store, org, session)) = setup().await? else {
        return Ok(());
    };
    for (number, name) in [
        ("15550000001", "Ana"),
        ("15550000002", "Bruno"),
        ("15550000003", "ana_maria"),
    ] {
        store
            .record_incoming(vec![from(org, session, phone(number), name)])
            .await?;
    }
    let first = store
        .list_contacts(
            session,
            &ContactQuery {
                limit: 2,
                ..page(None)
            },
        )
        .await?;
    assert_eq!(first.len(), 2);
    let rest = store
        .list_contacts(
            session,
            &ContactQuery {
                after: first.last().map(|c| c.jid.clone()),
                ..page(None)
            },
        )
        .await?;
    assert_eq!(
        rest.iter().map(|c| c.jid.as_str()).collect::<Vec<_>>(),
        vec!["15550000003@s.whatsapp.net"]
    );
    let names = |found: Vec<ContactRecord>| {
        found
            .into_iter()
            .filter_map(|c| c.push_name)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(store.list_contacts(session, &page(Some("ANA"))).await?),
        vec!["Ana", "ana_maria"]
    );
    // `_` is a character, not a wildcard.
    assert_eq!(
        names(store.list_contacts(session, &page(Some("a_m"))).await?),
        vec!["ana_maria"]
    );
    assert_eq!(
        names(
            store
                .list_contacts(session, &page(Some("+1 555 000 0002")))
                .await?
        ),
        vec!["Bruno"]
    );
    Ok(())
}

fn lid_only(lid: &str) -> Sender {
    Sender {
        phone: None,
        lid: Some(lid.into()),
    }
}

async fn chats_of(
    store: &TestStore<Backend>,
    org: OrgId,
    session: SessionId,
) -> Result<Vec<(String, u64)>, StoreError> {
    use crate::store::ChatStore;
    Ok(store
        .list_chats(org, session, None, 100)
        .await?
        .into_iter()
        .map(|c| (c.chat, c.unread))
        .collect())
}

#[tokio::test]
async fn a_lid_chat_joins_the_number_s_when_a_message_names_both() -> Result<(), StoreError> {
    let Some((store, org, session)) = setup().await? else {
        return Ok(());
    };
    store
        .record_incoming(vec![from(org, session, lid_only("88002"), "Erin")])
        .await?;
    assert_eq!(
        chats_of(&store, org, session).await?,
        vec![("88002@lid".to_owned(), 1)]
    );
    let both = Sender {
        phone: Some("15550004444".into()),
        lid: Some("88002".into()),
    };
    store
        .record_incoming(vec![from(org, session, both, "Erin")])
        .await?;
    assert_eq!(
        chats_of(&store, org, session).await?,
        vec![("15550004444@s.whatsapp.net".to_owned(), 2)]
    );
    let page = store
        .list_messages(
            org,
            session,
            &crate::store::MessageQuery {
                chat: Some("15550004444@s.whatsapp.net".into()),
                direction: None,
                status: None,
                limit: 10,
                before: None,
                after: None,
            },
        )
        .await?;
    assert_eq!(page.len(), 2);
    let contacts = store.list_contacts(session, &page_of_all()).await?;
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(contacts[0].lid.as_deref(), Some("88002"));
    Ok(())
}

#[tokio::test]
async fn a_lid_chat_joins_the_number_s_when_the_mapping_is_learned() -> Result<(), StoreError> {
    use wacore::store::traits::LidPnMappingEntry;
    let Some((store, org, session)) = setup().await? else {
        return Ok(());
    };
    // The number's chat exists already (an outgoing message, say).
    store
        .record_incoming(vec![from(org, session, phone("15550005555"), "Finn")])
        .await?;
    store
        .record_incoming(vec![from(org, session, lid_only("88003"), "Finn")])
        .await?;
    assert_eq!(chats_of(&store, org, session).await?.len(), 2);
    let keys = crate::store::KeyStore::for_session(&*store, session);
    keys.put_lid_mapping(&LidPnMappingEntry {
        lid: "88003".into(),
        phone_number: "15550005555".into(),
        created_at: 1,
        updated_at: 1,
        learning_source: "usync".into(),
    })
    .await
    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    assert_eq!(
        chats_of(&store, org, session).await?,
        vec![("15550005555@s.whatsapp.net".to_owned(), 2)]
    );
    let contacts = store.list_contacts(session, &page_of_all()).await?;
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(contacts[0].push_name.as_deref(), Some("Finn"));
    assert_eq!(contacts[0].lid.as_deref(), Some("88003"));
    Ok(())
}

fn page_of_all() -> ContactQuery {
    page(None)
}

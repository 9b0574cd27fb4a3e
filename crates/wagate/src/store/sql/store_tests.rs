//! The store's own tests, compiled once per backend like the aggregates
//! (`super` is the backend): the same contract on SQLite and PostgreSQL.
//! The aggregates' files keep their own tests the same way.

use super::test_store;
use crate::domain::{Label, OrgId, SessionId, SessionStatus, StatusReason, TokenHash, TokenId};
use crate::events::{Envelope, EventData};
use crate::store::{
    EventStore, NewSession, OrgStore, SessionChanges, SessionQuery, SessionStore, StoreError,
    TokenRecord,
};

fn status_event(org: OrgId, session: SessionId, status: SessionStatus) -> Envelope {
    Envelope::new(
        org,
        session,
        EventData::Status {
            status,
            previous: SessionStatus::Stopped,
            reason: None,
        },
    )
}

#[tokio::test]
async fn organization_names_are_unique_and_findable_by_name_or_id() -> Result<(), StoreError> {
    let Some(store) = test_store().await else {
        return Ok(());
    };
    let org = store.create_org("acme").await?;
    assert!(matches!(
        store.create_org("acme").await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.find_org("acme").await?, Some(org.clone()));
    assert_eq!(store.find_org(&org.id.to_string()).await?, Some(org));
    assert_eq!(store.find_org("nope").await?, None);
    assert_eq!(store.count_orgs().await?, 1);
    Ok(())
}

#[tokio::test]
async fn tokens_are_found_by_hash_until_revoked() -> Result<(), StoreError> {
    let Some(store) = test_store().await else {
        return Ok(());
    };
    let org = store.create_org("acme").await?;
    let id = TokenId::new();
    let hash = TokenHash::of("wag_secret");
    store.insert_token(id, org.id, &hash).await?;
    let found = store.find_token(&hash).await?;
    assert_eq!(
        found,
        Some(TokenRecord {
            id,
            org_id: org.id,
            revoked: false
        })
    );
    assert!(store.revoke_token(id).await?);
    assert!(
        !store.revoke_token(id).await?,
        "revoking twice reports nothing to revoke"
    );
    assert_eq!(
        store.find_token(&hash).await?.map(|t| t.revoked),
        Some(true)
    );
    Ok(())
}

#[tokio::test]
async fn sessions_are_scoped_to_their_organization() -> Result<(), StoreError> {
    let Some(store) = test_store().await else {
        return Ok(());
    };
    let acme = store.create_org("acme").await?;
    let other = store.create_org("other").await?;
    let created = store
        .insert_session(NewSession {
            id: SessionId::new(),
            org_id: acme.id,
            label: None,
            pace: Default::default(),
            history: Default::default(),
        })
        .await?;
    assert_eq!(store.get_session(other.id, created.id).await?, None);
    assert!(!store.delete_session(other.id, created.id).await?);
    assert_eq!(
        store
            .update_session(other.id, created.id, &SessionChanges::default())
            .await?,
        None
    );
    assert_eq!(
        store.get_session(acme.id, created.id).await?.map(|s| s.id),
        Some(created.id)
    );
    Ok(())
}

#[tokio::test]
async fn listing_pages_through_sessions_with_a_cursor_and_a_status_filter() -> Result<(), StoreError>
{
    let Some(store) = test_store().await else {
        return Ok(());
    };
    let org = store.create_org("acme").await?;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let s = store
            .insert_session(NewSession {
                id: SessionId::new(),
                org_id: org.id,
                label: None,
                pace: Default::default(),
                history: Default::default(),
            })
            .await?;
        ids.push(s.id);
    }
    store
        .set_status(
            ids[1],
            SessionStatus::Starting,
            None,
            &mut status_event(org.id, ids[1], SessionStatus::Starting),
        )
        .await?;

    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_sessions(
                org.id,
                &SessionQuery {
                    status: None,
                    limit: 2,
                    after,
                },
            )
            .await?;
        seen.extend(page.sessions.iter().map(|s| s.id));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let mut walked = seen.clone();
    walked.sort();
    walked.dedup();
    let mut all = ids.clone();
    all.sort();
    assert_eq!(walked, all, "every session exactly once");

    let starting = store
        .list_sessions(
            org.id,
            &SessionQuery {
                status: Some(SessionStatus::Starting),
                limit: 10,
                after: None,
            },
        )
        .await?;
    assert_eq!(
        starting.sessions.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![ids[1]]
    );
    Ok(())
}

#[tokio::test]
async fn status_reason_and_identity_are_persisted() -> Result<(), StoreError> {
    let Some(store) = test_store().await else {
        return Ok(());
    };
    let org = store.create_org("acme").await?;
    let s = store
        .insert_session(NewSession {
            id: SessionId::new(),
            org_id: org.id,
            label: Label::try_from("sales".to_string()).ok(),
            pace: Default::default(),
            history: Default::default(),
        })
        .await?;
    store
        .set_status(
            s.id,
            SessionStatus::Failed,
            Some(StatusReason::LinkTimeout),
            &mut status_event(org.id, s.id, SessionStatus::Failed),
        )
        .await?;
    store
        .set_identity(s.id, Some("628123456789"), Some("Sales"))
        .await?;
    let loaded = store.get_session(org.id, s.id).await?;
    let loaded = loaded.ok_or(StoreError::Corrupt("missing".into()))?;
    assert_eq!(loaded.status, SessionStatus::Failed);
    assert_eq!(loaded.status_reason, Some(StatusReason::LinkTimeout));
    assert_eq!(loaded.phone.as_deref(), Some("628123456789"));
    assert_eq!(loaded.push_name.as_deref(), Some("Sales"));
    assert_eq!(loaded.label.as_ref().map(Label::as_str), Some("sales"));
    assert!(loaded.is_linked());
    Ok(())
}

/// Writers committing at once, a reader following the log by id as a
/// resuming client does: the reader sees every event, because ids are in
/// commit order (SQLite: one writer; PostgreSQL: the writer lock).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_following_the_log_misses_no_event_of_concurrent_writers() -> Result<(), StoreError>
{
    const WRITERS: usize = 4;
    const EACH: usize = 25;
    let Some(store) = test_store().await else {
        return Ok(());
    };
    let org = store.create_org("acme").await?;
    let mut writers = tokio::task::JoinSet::new();
    for _ in 0..WRITERS {
        let store = (*store).clone();
        let session = SessionId::new();
        writers.spawn(async move {
            for _ in 0..EACH {
                let mut event = status_event(org.id, session, SessionStatus::Starting);
                store.append_event(&mut event).await?;
            }
            Ok::<_, StoreError>(())
        });
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let done = writers.is_empty();
        let batch = store.events_after(org.id, after, 1000).await?;
        after = batch.last().map(|e| e.id).or(after);
        seen.extend(batch.iter().map(|e| e.id));
        if done {
            // A pass that began after every writer had finished.
            break;
        }
        while let Some(joined) = writers.try_join_next() {
            joined.map_err(|e| StoreError::Corrupt(format!("writer: {e}")))??;
        }
        tokio::task::yield_now().await;
    }
    let all: Vec<_> = store
        .events_after(org.id, None, 1000)
        .await?
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(all.len(), WRITERS * EACH);
    let skipped: Vec<_> = all.iter().filter(|id| !seen.contains(id)).collect();
    assert!(skipped.is_empty(), "the follower skipped {skipped:?}");
    assert_eq!(seen, all);
    Ok(())
}

/// A group notification applied twice (WhatsApp delivered it again) writes
/// its change and its event once; the stored groups follow the edits and
/// page by JID.
#[tokio::test]
async fn a_group_notification_applies_once_and_groups_page_by_jid() -> Result<(), StoreError> {
    use crate::domain::{GroupInfo, GroupMember};
    use crate::domain::{GroupRole, ParticipantsAction};
    use crate::store::{GroupEdit, GroupStore, NoticeKey};
    let Some(store) = test_store().await else {
        return Ok(());
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
    let member = |phone: &str, role| GroupMember {
        phone: Some(phone.into()),
        lid: Some(format!("9{phone}@lid")),
        role,
    };
    let group = |id: &str| GroupInfo {
        id: id.into(),
        subject: format!("group {id}"),
        description: None,
        owner: Some("1555".into()),
        created_at: None,
        settings: Default::default(),
        participants: vec![
            member("1555", GroupRole::SuperAdmin),
            member("1666", GroupRole::Member),
        ],
    };
    store
        .replace_groups(
            session.id,
            &[group("2@g.us"), group("1@g.us"), group("3@g.us")],
        )
        .await?;
    let page = store.list_groups(session.id, None, 2).await?;
    assert_eq!(
        page.iter().map(|g| g.id.as_str()).collect::<Vec<_>>(),
        ["1@g.us", "2@g.us"]
    );
    assert_eq!(page[0].participants.len(), 2);
    let rest = store.list_groups(session.id, Some("2@g.us"), 2).await?;
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].participants.len(), 2);

    let key = NoticeKey {
        notification: "N1".into(),
        action: 0,
    };
    let edits = [GroupEdit::AddMembers {
        group: "1@g.us".into(),
        members: vec![member("1777", GroupRole::Member)],
    }];
    let event = || {
        Envelope::new(
            org.id,
            session.id,
            EventData::GroupParticipants {
                group: "1@g.us".into(),
                action: ParticipantsAction::Added,
                by: None,
                participants: Vec::new(),
            },
        )
    };
    assert!(
        store
            .apply_group_edits(session.id, Some(&key), &edits, &mut [event()])
            .await?
    );
    assert!(
        !store
            .apply_group_edits(session.id, Some(&key), &edits, &mut [event()])
            .await?
    );
    let logged = store.events_after(org.id, None, 10).await?;
    assert_eq!(logged.len(), 1, "{logged:?}");
    let one = store.get_group(session.id, "1@g.us").await?;
    assert_eq!(one.map(|g| g.participants.len()), Some(3));

    // Gone from WhatsApp's list on the next connect: gone here.
    store.replace_groups(session.id, &[group("3@g.us")]).await?;
    assert_eq!(store.get_group(session.id, "1@g.us").await?, None);
    assert_eq!(store.list_groups(session.id, None, 10).await?.len(), 1);
    Ok(())
}

//! Leases on PostgreSQL: take, renew, expiry, release, and writes under a
//! stale epoch refused. Two nodes are two stores (two processes' pools and
//! holdings) on one throwaway database. Expiry is made by moving a lease's
//! `expires_at` into the past, as the database's clock passing would,
//! rather than by waiting for it.

use std::time::Duration;

use chrono::Utc;
use wacore::store::error::StoreError as KeyError;

use super::{DEFAULT_POOL_SIZE, PostgresStore};
use crate::domain::{ChatChange, MessageId, MessageStatus, OrgId, SessionId, SessionStatus};
use crate::events::{Envelope, EventData};
use crate::messages::{Inbound, IncomingContent, Sender};
use crate::store::testing::TestDatabase;
use crate::store::{
    ChatStore, GroupStore, Held, KeyStore, LeaseStore, MessageStore, NewIncoming, NewOutgoing,
    NewSession, OrgStore, SessionStore, StatusChange, StoreError,
};

const LEASE: Duration = Duration::from_secs(15);

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Two nodes' stores on one new database, an organization and `n`
/// sessions; `None` without PostgreSQL.
async fn two_nodes(
    n: usize,
) -> Result<
    Option<(
        TestDatabase,
        PostgresStore,
        PostgresStore,
        OrgId,
        Vec<SessionId>,
    )>,
    StoreError,
> {
    let Some(database) = TestDatabase::create().await else {
        return Ok(None);
    };
    let one = PostgresStore::connect_with(database.url(), DEFAULT_POOL_SIZE).await?;
    let two = PostgresStore::connect_with(database.url(), DEFAULT_POOL_SIZE).await?;
    let org = one.create_org("acme").await?.id;
    let mut sessions = Vec::new();
    for _ in 0..n {
        let record = one
            .insert_session(NewSession {
                id: SessionId::new(),
                org_id: org,
                label: None,
                pace: Default::default(),
                history: Default::default(),
            })
            .await?;
        sessions.push(record.id);
    }
    Ok(Some((database, one, two, org, sessions)))
}

/// The lease ran out on the database's clock.
async fn expire(store: &PostgresStore, session: SessionId) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE session_leases SET expires_at = now() - interval '1 second' WHERE session_id = $1",
    )
    .bind(session.to_string())
    .execute(&store.pool)
    .await?;
    Ok(())
}

fn status(org: OrgId, id: SessionId, to: SessionStatus) -> StatusChange {
    StatusChange {
        id,
        status: to,
        reason: None,
        event: Envelope::new(
            org,
            id,
            EventData::Status {
                status: to,
                previous: SessionStatus::Stopped,
                reason: None,
            },
        ),
    }
}

fn incoming(org: OrgId, session: SessionId, wa_id: &str) -> NewIncoming {
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
            push_name: None,
            timestamp: Utc::now(),
            from_me: false,
            content: IncomingContent::Text { body: "hi".into() },
            media: None,
            reply_to: None,
        },
    }
}

fn is_moved<T: std::fmt::Debug>(result: Result<T, StoreError>, session: SessionId) -> bool {
    matches!(result, Err(StoreError::Moved(moved)) if moved.session == session)
}

/// The key store's refusal: the library's database error with the
/// store's `Moved` inside.
fn key_moved<T: std::fmt::Debug>(result: Result<T, KeyError>, session: SessionId) -> bool {
    match result {
        Err(KeyError::Database(inner)) => matches!(
            inner.downcast_ref::<StoreError>(),
            Some(StoreError::Moved(moved)) if moved.session == session
        ),
        _ => false,
    }
}

#[tokio::test]
async fn a_lease_is_taken_once_renewed_lost_on_expiry_and_released() -> TestResult {
    let Some((_db, one, two, _org, sessions)) = two_nodes(3).await? else {
        return Ok(());
    };
    let (a, b, c) = (sessions[0], sessions[1], sessions[2]);
    // Up to the limit, oldest first, each at epoch 1.
    let taken = one.take_free("n1", LEASE, 2).await?;
    assert_eq!(
        taken,
        vec![
            Held {
                session: a,
                epoch: 1
            },
            Held {
                session: b,
                epoch: 1
            }
        ]
    );
    // Held and unexpired: another node gets none of them, only the rest.
    assert_eq!(two.take("n2", a, LEASE).await?, None);
    let rest = two.take_free("n2", LEASE, 10).await?;
    assert_eq!(
        rest,
        vec![Held {
            session: c,
            epoch: 1
        }]
    );
    assert!(two.take_free("n2", LEASE, 10).await?.is_empty());
    let lease = one.lease(a).await?.ok_or("no lease row")?;
    assert_eq!(lease.node.as_deref(), Some("n1"));
    assert!(lease.expires_at > Utc::now() + chrono::Duration::seconds(10));

    // One statement renews what n1 holds.
    assert_eq!(one.renew("n1", LEASE, &taken).await?, taken);
    // Expired on the database's clock: taken over at the next epoch, and
    // the old owner's next renewal no longer renews it.
    expire(&one, a).await?;
    let moved = two.take_free("n2", LEASE, 10).await?;
    assert_eq!(
        moved,
        vec![Held {
            session: a,
            epoch: 2
        }]
    );
    assert_eq!(
        one.renew("n1", LEASE, &taken).await?,
        vec![Held {
            session: b,
            epoch: 1
        }]
    );
    // A renewal names the epoch: n2 cannot renew n1's lease.
    assert!(
        two.renew(
            "n2",
            LEASE,
            &[Held {
                session: b,
                epoch: 1
            }]
        )
        .await?
        .is_empty()
    );

    // Released: free at once for another node, at the next epoch.
    assert!(
        one.release(
            "n1",
            Held {
                session: b,
                epoch: 1
            }
        )
        .await?
    );
    assert!(
        !one.release(
            "n1",
            Held {
                session: b,
                epoch: 1
            }
        )
        .await?
    );
    assert_eq!(one.lease(b).await?.ok_or("no lease row")?.node, None);
    assert_eq!(
        two.take("n2", b, LEASE).await?,
        Some(Held {
            session: b,
            epoch: 2
        })
    );
    Ok(())
}

#[tokio::test]
async fn two_nodes_taking_at_once_never_both_get_a_session() -> TestResult {
    let Some((_db, one, two, _org, sessions)) = two_nodes(20).await? else {
        return Ok(());
    };
    let (a, b) = tokio::join!(
        one.take_free("n1", LEASE, 20),
        two.take_free("n2", LEASE, 20)
    );
    let (a, b) = (a?, b?);
    assert_eq!(a.len() + b.len(), sessions.len());
    for held in &a {
        assert!(!b.iter().any(|h| h.session == held.session));
    }
    Ok(())
}

/// A node that lost a session (its lease expired and another node took
/// it) writes nothing more for it: no status, no keys, no outbox or
/// inbound rows. Its other session, still held, writes on, even in the
/// same group commit; the new owner writes.
#[tokio::test]
async fn a_write_under_a_stale_epoch_is_refused() -> TestResult {
    let Some((_db, one, two, org, sessions)) = two_nodes(2).await? else {
        return Ok(());
    };
    let (moving, staying) = (sessions[0], sessions[1]);
    assert_eq!(one.take_free("n1", LEASE, 10).await?.len(), 2);
    // Accepted (by any node, not fenced) while n1 owns it.
    let accepted = one
        .accept(
            NewOutgoing {
                id: MessageId::new(),
                org_id: org,
                session_id: moving,
                wa_id: "3EB0OUT".into(),
                chat: "15550001111@s.whatsapp.net".into(),
                kind: "text".into(),
                content: serde_json::json!({ "to": "15550001111", "content": { "type": "text", "text": "hi" } }),
                media: None,
            },
            None,
        )
        .await?;
    let outgoing = match accepted {
        crate::store::Accepted::Created { message, .. } => message.id,
        _ => return Err("not accepted".into()),
    };
    // A chat, from a message received while n1 owns it.
    one.record_incoming(vec![incoming(org, moving, "3EB0FIRST")])
        .await?;
    let keys = one.for_session(moving);
    keys.put_session("1@s.whatsapp.net", b"before").await?;
    one.write_status(status(org, moving, SessionStatus::Starting))
        .await?;

    expire(&one, moving).await?;
    assert_eq!(
        two.take("n2", moving, LEASE).await?,
        Some(Held {
            session: moving,
            epoch: 2
        })
    );

    // Status: refused for the moved session, in the same group as the
    // held one's, which is written.
    let (refused, written) = tokio::join!(
        one.write_status(status(org, moving, SessionStatus::Working)),
        one.write_status(status(org, staying, SessionStatus::Starting)),
    );
    assert!(is_moved(refused, moving));
    written?;
    // And by the direct path.
    let mut event = status(org, moving, SessionStatus::Failed).event;
    assert!(is_moved(
        one.set_status(moving, SessionStatus::Failed, None, &mut event)
            .await,
        moving
    ));
    // Keys: the Signal session record (grouped), an identity (a batch
    // write), a prekey's removal (a single statement).
    assert!(key_moved(
        keys.put_session("1@s.whatsapp.net", b"stale").await,
        moving
    ));
    assert!(key_moved(
        keys.put_identity("1@s.whatsapp.net", [7; 32]).await,
        moving
    ));
    assert!(key_moved(keys.remove_prekey(1).await, moving));
    // Outbox rows.
    assert!(is_moved(
        one.set_wire(moving, outgoing, &[1, 2, 3]).await,
        moving
    ));
    assert!(is_moved(
        one.record_attempt(moving, outgoing, 1, Utc::now()).await,
        moving
    ));
    assert!(is_moved(
        one.advance_by_wa_ids(moving, &["3EB0OUT".into()], MessageStatus::Sent, None)
            .await,
        moving
    ));
    assert!(is_moved(
        one.advance(moving, outgoing, MessageStatus::Sent, None)
            .await,
        moving
    ));
    assert!(is_moved(one.requeue(moving, Utc::now()).await, moving));
    // Inbound rows.
    assert!(is_moved(
        one.record_incoming(vec![incoming(org, moving, "3EB0IN")])
            .await,
        moving
    ));
    // The account's identity, and its groups (the list read on connect,
    // and a notification's changes).
    assert!(is_moved(
        one.set_identity(moving, Some("15550009999"), None).await,
        moving
    ));
    assert!(is_moved(one.replace_groups(moving, &[]).await, moving));
    // A chat's settings, as the app state reports them to the owner.
    assert!(is_moved(
        one.change_chat(
            org,
            moving,
            "15550001111@s.whatsapp.net",
            ChatChange::Archive(true)
        )
        .await,
        moving
    ));
    assert!(is_moved(
        one.apply_group_edits(moving, None, &[], &mut []).await,
        moving
    ));
    // A logout finishing on the old owner wipes nothing.
    assert!(is_moved(one.delete_keys(moving).await, moving));

    // Nothing of it was stored.
    let record = two.get_session(org, moving).await?.ok_or("session gone")?;
    assert_eq!(record.status, SessionStatus::Starting);
    let new_keys = two.for_session(moving);
    assert_eq!(
        new_keys.get_session("1@s.whatsapp.net").await?.as_deref(),
        Some(&b"before"[..])
    );
    assert_eq!(new_keys.load_identity("1@s.whatsapp.net").await?, None);
    let (message, _) = two
        .get_message(org, moving, outgoing)
        .await?
        .ok_or("message gone")?;
    assert_eq!(message.status, MessageStatus::Pending);
    let counts = two.count_keys(moving).await?;
    assert_eq!(counts.sessions, 1);

    // The new owner writes.
    two.write_status(status(org, moving, SessionStatus::Working))
        .await?;
    new_keys.put_session("1@s.whatsapp.net", b"after").await?;
    two.record_incoming(vec![incoming(org, moving, "3EB0IN")])
        .await?;
    two.record_attempt(moving, outgoing, 1, Utc::now()).await?;
    // A node that holds no lease at all on a session writes nothing for
    // it once it uses leases.
    assert!(is_moved(
        two.write_status(status(org, staying, SessionStatus::Working))
            .await,
        staying
    ));
    Ok(())
}

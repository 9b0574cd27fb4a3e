//! App-state sync (syncd) between the fake phone and real whatsapp-rust
//! companions: what the phone does to a chat reaches a companion linked
//! later (a snapshot), one coming back online (page by page) and one
//! already online (`server_sync`); what a companion does reaches the phone
//! and the account's other companion.

// The whole crate is test code: its helpers, too, may fail the test by
// panicking (clippy.toml only exempts `#[test]` functions and `cfg(test)`).
#![allow(clippy::unwrap_used, clippy::expect_used)]
// whatsapp-rust's chat actions are futures nested deeper than the default
// limit of 128 layout queries allows.
#![recursion_limit = "256"]

mod common;

use common::*;
use wacore::types::events::Event;
use wasim::ChatAction;
use whatsapp_rust::Jid;

const ALICE: &str = "15550004411";
const BOB: &str = "15550004422";

fn bob() -> Jid {
    format!("{BOB}@s.whatsapp.net").parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_companion_gets_the_phones_changes_in_a_snapshot_then_page_by_page() {
    let sim = simulator().await;
    let phone = sim.handle();
    phone.register_phone(ALICE).unwrap();
    // More patches than one answer carries (50): the client pages.
    for i in 0..60 {
        let action = if i % 2 == 0 {
            ChatAction::Archive
        } else {
            ChatAction::Unarchive
        };
        phone.phone_chat_action(ALICE, BOB, action).await.unwrap();
    }
    phone
        .phone_chat_action(ALICE, BOB, ChatAction::Pin)
        .await
        .unwrap();
    assert_eq!(
        phone.phone_chat(ALICE, BOB).unwrap(),
        wasim::PhoneChat {
            archived: false,
            pinned: true,
            ..Default::default()
        }
    );

    let mut client = TestClient::new(&sim).await;
    client.link(&phone, ALICE).await;
    let pinned = client
        .wait_for("the pin from the phone", |e| match e {
            Event::PinUpdate(u) if u.jid == bob() => u.action.pinned,
            _ => None,
        })
        .await;
    assert!(pinned);
    let version = client
        .store
        .get_version("regular_low")
        .await
        .unwrap()
        .version;
    assert_eq!(version, 61);

    // Offline while the phone makes 61 more: back online, it is told
    // (`server_sync`, queued) and pages from where it was.
    let store = client.store.clone();
    client.stop().await;
    for i in 0..60 {
        let action = if i % 2 == 0 {
            ChatAction::Archive
        } else {
            ChatAction::Unarchive
        };
        phone.phone_chat_action(ALICE, BOB, action).await.unwrap();
    }
    phone
        .phone_chat_action(ALICE, BOB, ChatAction::Unpin)
        .await
        .unwrap();
    let mut client = TestClient::with_store(&sim, store).await;
    client.connected().await;
    client
        .wait_for("the unpin from the phone", |e| match e {
            Event::PinUpdate(u) if u.jid == bob() && u.action.pinned == Some(false) => Some(()),
            _ => None,
        })
        .await;
    let version = client
        .store
        .get_version("regular_low")
        .await
        .unwrap()
        .version;
    assert_eq!(version, 122);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_reach_the_phone_and_the_other_companion() {
    let sim = simulator().await;
    let phone = sim.handle();
    let mut first = TestClient::new(&sim).await;
    first.link(&phone, ALICE).await;

    // A companion pins: the phone decodes its patch.
    first.client.chat_actions().pin_chat(&bob()).await.unwrap();
    let seen = phone.wait_phone_chat(ALICE, BOB, WAIT, |c| c.pinned).await;
    assert!(seen.is_some(), "the phone never showed the pin");

    // A companion linked after it finds the pin in its first sync.
    let mut second = TestClient::new(&sim).await;
    second.link(&phone, ALICE).await;
    let pinned = second
        .wait_for("the pin in the first sync", |e| match e {
            Event::PinUpdate(u) if u.jid == bob() => u.action.pinned,
            _ => None,
        })
        .await;
    assert!(pinned);

    // Both companions have read their app state once: what changes next
    // reaches them by notification.
    for device in [1, 2] {
        assert!(phone.wait_app_state_synced(ALICE, device, WAIT).await);
    }

    // The phone mutes for ever: the companions online hear of it
    // (`server_sync`), with WhatsApp's -1 for "for ever".
    phone
        .phone_chat_action(ALICE, BOB, ChatAction::Mute(None))
        .await
        .unwrap();
    for client in [&mut first, &mut second] {
        let end = client
            .wait_for("the mute from the phone", |e| match e {
                Event::MuteUpdate(u) if u.jid == bob() && u.action.muted == Some(true) => {
                    u.action.mute_end_timestamp
                }
                _ => None,
            })
            .await;
        assert_eq!(end, -1);
    }

    // The second companion marks the chat read: the phone and the first
    // companion see it.
    second
        .client
        .chat_actions()
        .mark_chat_as_read(&bob(), true, None)
        .await
        .unwrap();
    let seen = phone
        .wait_phone_chat(ALICE, BOB, WAIT, |c| c.read == Some(true))
        .await;
    assert_eq!(
        seen.map(|c| (c.pinned, c.muted, c.read)),
        Some((true, true, Some(true)))
    );
    let read = first
        .wait_for("the read from the other companion", |e| match e {
            Event::MarkChatAsReadUpdate(u) if u.jid == bob() => u.action.read,
            _ => None,
        })
        .await;
    assert!(read);
}

//! WhatsApp's group server side against the real client: create, list,
//! query, participant changes with their per-person codes, subject,
//! settings, invites, leave, the `w:gp2` notifications the client turns
//! into `GroupUpdate` events, and group messages the phones read.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use wacore::stanza::groups::GroupNotificationAction;
use wacore::types::events::Event;
use whatsapp_rust::Jid;
use whatsapp_rust::request::IqError;
use whatsapp_rust::{GroupCreateOptions, GroupError, GroupParticipantOptions};

const ALICE: &str = "15550001111";
const BOB: &str = "15550002222";
const CAROL: &str = "15550003333";
const DAVE: &str = "15550004444";
const ERIN: &str = "15550005555";
const FRANK: &str = "15550006666";

async fn linked(sim: &Simulator, phone: &str) -> TestClient {
    let mut client = TestClient::new(sim).await;
    client.link(&sim.handle(), phone).await;
    client
}

fn server_code(e: &GroupError) -> Option<u16> {
    match e {
        GroupError::Iq(IqError::ServerError { code, .. }) => Some(*code),
        _ => None,
    }
}

/// Waits for a `GroupUpdate` of `group` that `pick` accepts.
async fn group_update<T>(
    client: &mut TestClient,
    group: &Jid,
    what: &str,
    mut pick: impl FnMut(&GroupNotificationAction) -> Option<T>,
) -> T {
    client
        .wait_for(what, |e| match e {
            Event::GroupUpdate(u) if &u.group_jid == group => pick(&u.action),
            _ => None,
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_is_created_used_and_changed_as_on_whatsapp() {
    let sim = simulator().await;
    let handle = sim.handle();
    for phone in [BOB, CAROL, DAVE, ERIN, FRANK] {
        handle.register_phone(phone).unwrap();
    }
    let mut alice = linked(&sim, ALICE).await;

    // Create: the creator is the super admin, the others are members.
    let options = GroupCreateOptions::new("Team").with_participants(vec![
        GroupParticipantOptions::new(Jid::pn(BOB)),
        GroupParticipantOptions::new(Jid::pn(CAROL)),
    ]);
    let created = alice.client.groups().create_group(options).await.unwrap();
    let group = created.metadata.id.clone();
    assert_eq!(created.metadata.subject, "Team");
    assert_eq!(created.metadata.participants.len(), 3);
    let me = created
        .metadata
        .participants
        .iter()
        .find(|p| p.jid.user == ALICE)
        .unwrap();
    assert!(me.is_super_admin());

    // Listed and queried.
    let all = alice.client.groups().get_participating().await.unwrap();
    assert!(all.contains_key(&group), "{all:?}");
    let meta = alice.client.groups().get_metadata(&group).await.unwrap();
    assert_eq!(meta.subject, "Team");

    // A text to the group reaches every member's phone.
    alice
        .client
        .send_text(group.clone(), "hello team")
        .await
        .unwrap();
    for phone in [BOB, CAROL] {
        let got = handle
            .wait_phone_message(phone, WAIT, |m| m.text.as_deref() == Some("hello team"))
            .await
            .unwrap_or_else(|| panic!("{phone} did not get the group message"));
        assert_eq!(got.chat, group.to_string());
        assert_eq!(got.sender, format!("{ALICE}@s.whatsapp.net"));
    }

    // A member who is not an admin may not add anyone.
    let refused = handle.group_change(&group.to_string(), BOB, "add", &[DAVE]);
    assert!(
        matches!(
            refused,
            Err(wasim::SimError::GroupRefused { code: 403, .. })
        ),
        "{refused:?}"
    );
    // Promoted, Bob adds Dave; Alice's client hears both.
    let promoted = alice
        .client
        .groups()
        .promote_participants(group.clone(), &[Jid::pn(BOB)])
        .await
        .unwrap();
    assert!(promoted.iter().all(|r| r.is_ok()), "{promoted:?}");
    let added = handle
        .group_change(&group.to_string(), BOB, "add", &[DAVE])
        .unwrap();
    assert_eq!(added[0].error, None);
    let who = group_update(&mut alice, &group, "Dave added", |a| match a {
        GroupNotificationAction::Add { participants, .. } => Some(
            participants
                .iter()
                .map(|p| (p.jid.user.to_string(), p.lid.clone()))
                .collect::<Vec<_>>(),
        ),
        _ => None,
    })
    .await;
    assert_eq!(who.len(), 1);
    assert_eq!(who[0].0, DAVE);
    assert!(who[0].1.is_some(), "the notification names Dave's LID too");

    // Per-person results: privacy, already a member, not on WhatsApp.
    handle.set_group_add_restricted(ERIN, true).unwrap();
    let results = alice
        .client
        .groups()
        .add_participants(
            group.clone(),
            &[Jid::pn(ERIN), Jid::pn(BOB), Jid::pn("15559999999")],
        )
        .await
        .unwrap();
    let by = |user: &str| results.iter().find(|r| r.jid.user == user).unwrap();
    assert_eq!(by(ERIN).error.as_deref(), Some("403"));
    assert!(by(ERIN).add_request.is_some(), "an invite instead");
    assert_eq!(by(BOB).error.as_deref(), Some("409"));
    assert_eq!(by("15559999999").error.as_deref(), Some("404"));

    // A full group.
    handle.set_group_limit(4);
    let full = alice
        .client
        .groups()
        .add_participants(group.clone(), &[Jid::pn(FRANK)])
        .await
        .unwrap_err();
    assert_eq!(server_code(&full), Some(406), "{full:?}");
    handle.set_group_limit(1024);

    // No such group.
    let missing: Jid = "120363099999999999@g.us".parse().unwrap();
    let err = alice
        .client
        .groups()
        .get_metadata(&missing)
        .await
        .unwrap_err();
    assert_eq!(server_code(&err), Some(404), "{err:?}");

    // Bob renames it; Alice hears it.
    handle
        .group_set_subject(&group.to_string(), BOB, "Team 2")
        .unwrap();
    let subject = group_update(&mut alice, &group, "the new subject", |a| match a {
        GroupNotificationAction::Subject { subject, .. } => Some(subject.clone()),
        _ => None,
    })
    .await;
    assert_eq!(subject, "Team 2");

    // Carol is removed and gets nothing more.
    let removed = alice
        .client
        .groups()
        .remove_participants(group.clone(), &[Jid::pn(CAROL)])
        .await
        .unwrap();
    assert!(removed[0].is_ok());
    alice
        .client
        .send_text(group.clone(), "after carol")
        .await
        .unwrap();
    handle
        .wait_phone_message(DAVE, WAIT, |m| m.text.as_deref() == Some("after carol"))
        .await
        .expect("dave reads the message after carol left");
    let carol_has = handle.phone_messages(CAROL).unwrap();
    assert!(
        carol_has
            .iter()
            .all(|m| m.text.as_deref() != Some("after carol")),
        "carol still got the group's message"
    );

    // Announce mode: a member who is not an admin cannot send.
    alice
        .client
        .groups()
        .set_announce(group.clone(), true)
        .await
        .unwrap();
    let text = waproto::whatsapp::Message {
        conversation: Some("may I?".into()),
        ..Default::default()
    };
    let refused = handle
        .phone_send_group(DAVE, &group.to_string(), text)
        .await;
    assert!(
        matches!(
            refused,
            Err(wasim::SimError::GroupRefused { code: 403, .. })
        ),
        "{refused:?}"
    );

    // An invite link lets Frank in; its reset shuts the old one.
    let link = alice
        .client
        .groups()
        .get_invite_link(group.clone(), false)
        .await
        .unwrap();
    let code = link.rsplit('/').next().unwrap().to_owned();
    let preview = alice.client.groups().get_invite_info(&code).await.unwrap();
    assert_eq!(preview.subject, "Team 2");
    assert_eq!(handle.group_join(FRANK, &code).unwrap(), group.to_string());
    let joined = group_update(&mut alice, &group, "Frank joined", |a| match a {
        GroupNotificationAction::Add { participants, .. } => participants
            .iter()
            .find(|p| p.jid.user == FRANK)
            .map(|_| ()),
        _ => None,
    })
    .await;
    let () = joined;
    let new_link = alice
        .client
        .groups()
        .get_invite_link(group.clone(), true)
        .await
        .unwrap();
    assert_ne!(new_link, link);
    assert!(handle.group_join(ERIN, &code).is_err());

    // Leaving: the group is no longer listed.
    alice.client.groups().leave(group.clone()).await.unwrap();
    let all = alice.client.groups().get_participating().await.unwrap();
    assert!(!all.contains_key(&group));
    let info = handle.group_info(&group.to_string()).unwrap();
    assert!(!info.participants.contains(&ALICE.to_owned()));
    alice.stop().await;
}

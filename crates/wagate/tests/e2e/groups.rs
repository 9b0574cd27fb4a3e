//! Groups end to end: a session creates a group with simulated phones
//! (a result per person), its members read what the session sends into
//! it, it lists and reads the group with every member's number and LID,
//! changes participants, the subject and settings, shares the invite and
//! leaves; bad input is refused before anything reaches WhatsApp.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::messaging::{has_whatsapp, send};

const ALICE: &str = "15550006001";
const BOB: &str = "15550006002";
const CAROL: &str = "15550006003";
const DAVE: &str = "15550006004";
/// Refuses being added to groups.
const ERIN: &str = "15550006005";
/// Has no WhatsApp account.
const NOBODY: &str = "15550006099";
const FRANK: &str = "15550006006";

fn result_of<'a>(results: &'a Value, phone: &str) -> &'a Value {
    results
        .as_array()
        .and_then(|all| all.iter().find(|r| r["phone"] == phone))
        .unwrap_or_else(|| panic!("no result for {phone}: {results}"))
}

fn member<'a>(group: &'a Value, phone: &str) -> Option<&'a Value> {
    group["participants"]
        .as_array()
        .and_then(|all| all.iter().find(|m| m["phone"] == phone))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_creates_uses_and_manages_a_group() {
    let (sim, _dir, gateway, mut events) = world(Limits::default()).await;
    let session = link_by_qr(&gateway, &mut events, &sim, ALICE).await;
    for phone in [BOB, CAROL, DAVE, ERIN, FRANK] {
        has_whatsapp(&sim, phone);
    }
    let handle = sim.handle();
    handle.set_group_add_restricted(ERIN, true).unwrap();
    let groups = format!("/sessions/{session}/groups");

    // Create: a result per person.
    let (status, created) = gateway
        .call(
            Method::POST,
            &groups,
            Some(json!({
                "subject": "Support",
                "description": "Our team",
                "participants": [BOB, CAROL, ERIN, NOBODY, BOB],
            })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let results = &created["participants"];
    assert_eq!(results.as_array().map(Vec::len), Some(4), "{created}");
    assert_eq!(result_of(results, BOB)["result"], "added");
    assert_eq!(result_of(results, CAROL)["result"], "added");
    assert_eq!(result_of(results, ERIN)["result"], "privacy_restricted");
    assert!(
        result_of(results, ERIN)["invite_code"].is_string(),
        "{created}"
    );
    assert_eq!(result_of(results, NOBODY)["result"], "not_on_whatsapp");
    let group = created["group"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created["group"]["subject"], "Support");
    assert_eq!(created["group"]["description"], "Our team");
    assert_eq!(created["group"]["owner"], ALICE);
    let me = member(&created["group"], ALICE).unwrap();
    assert_eq!(me["role"], "superadmin");
    let bob = member(&created["group"], BOB).unwrap();
    assert_eq!(bob["role"], "member");
    assert!(
        bob["lid"].as_str().is_some_and(|l| l.ends_with("@lid")),
        "{created}"
    );

    // A text into it reaches every member's phone.
    let (status, body) = send(
        &gateway,
        &session,
        json!({ "to": group, "text": { "body": "welcome" } }),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    for phone in [BOB, CAROL] {
        let got = handle
            .wait_phone_message(phone, WAIT, |m| m.text.as_deref() == Some("welcome"))
            .await
            .unwrap_or_else(|| panic!("{phone} did not read the group's message"));
        assert_eq!(got.chat, group);
    }

    // Checking a number asks WhatsApp for its LID too: each resolves to
    // the other from then on.
    let (status, body) = gateway
        .call(
            Method::POST,
            &format!("/sessions/{session}/contacts/check"),
            Some(json!({ "phones": [BOB] })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let bob_lid = bob["lid"].as_str().unwrap().to_owned();
    let mapping = lid_mapping(&gateway, &format!("/sessions/{session}/lids?phone={BOB}")).await;
    assert_eq!(mapping, json!({ "lid": bob_lid, "phone": BOB }));
    let digits = bob_lid.trim_end_matches("@lid");
    for lid in [bob_lid.as_str(), digits] {
        let mapping = lid_mapping(&gateway, &format!("/sessions/{session}/lids/{lid}")).await;
        assert_eq!(mapping, json!({ "lid": bob_lid, "phone": BOB }));
    }
    let (status, body) = gateway
        .call(
            Method::GET,
            &format!("/sessions/{session}/lids?phone={NOBODY}"),
            None,
        )
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (404, &json!("lid_not_found")),
        "{body}"
    );
    let (status, body) = gateway
        .call(Method::GET, &format!("/sessions/{session}/lids/12a"), None)
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (422, &json!("invalid_lid")),
        "{body}"
    );

    // Listed, and read back.
    let (status, list) = gateway.call(Method::GET, &groups, None).await;
    assert_eq!(status, 200, "{list}");
    assert!(
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["id"] == group.as_str()),
        "{list}"
    );
    let one = format!("{groups}/{group}");
    let (status, got) = gateway.call(Method::GET, &one, None).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["participants"].as_array().map(Vec::len), Some(3));

    // Bob, promoted, adds Dave from his phone; the session sees Dave.
    let (status, promoted) = gateway
        .call(
            Method::POST,
            &format!("{one}/participants"),
            Some(json!({ "promote": [BOB] })),
        )
        .await;
    assert_eq!(status, 200, "{promoted}");
    assert_eq!(
        result_of(&promoted["participants"], BOB)["result"],
        "promoted"
    );
    handle.group_change(&group, BOB, "add", &[DAVE]).unwrap();
    let added = events
        .wait("dave added", &session, |e| {
            e["event"] == "group.participants"
                && e["data"]["action"] == "added"
                && e["data"]["participants"][0]["phone"] == DAVE
        })
        .await;
    assert_eq!(added["data"]["group"], group.as_str(), "{added}");
    assert_eq!(added["data"]["by"]["phone"], BOB, "{added}");
    assert_eq!(added["data"]["participants"][0]["phone"], DAVE, "{added}");
    assert!(
        added["data"]["participants"][0]["lid"].is_string(),
        "{added}"
    );
    let (_, got) = gateway.call(Method::GET, &one, None).await;
    let dave = member(&got, DAVE).unwrap_or_else(|| panic!("no dave: {got}"));
    assert!(dave["lid"].is_string(), "{got}");
    assert_eq!(member(&got, BOB).unwrap()["role"], "admin");

    // Carol is removed and reads nothing more from the group.
    let (status, removed) = gateway
        .call(
            Method::POST,
            &format!("{one}/participants"),
            Some(json!({ "remove": [CAROL, NOBODY] })),
        )
        .await;
    assert_eq!(status, 200, "{removed}");
    assert_eq!(
        result_of(&removed["participants"], CAROL)["result"],
        "removed"
    );
    assert_eq!(
        result_of(&removed["participants"], NOBODY)["result"],
        "not_member"
    );
    let (status, body) = send(
        &gateway,
        &session,
        json!({ "to": group, "text": { "body": "without carol" } }),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    handle
        .wait_phone_message(DAVE, WAIT, |m| m.text.as_deref() == Some("without carol"))
        .await
        .expect("dave reads it");
    assert!(
        handle
            .phone_messages(CAROL)
            .unwrap()
            .iter()
            .all(|m| m.text.as_deref() != Some("without carol")),
        "carol still reads the group"
    );

    // Subject and settings.
    let (status, changed) = gateway
        .call(
            Method::PATCH,
            &one,
            Some(json!({ "subject": "Support 2", "announce": true, "locked": true })),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["subject"], "Support 2");
    assert_eq!(changed["settings"]["announce"], true);
    assert_eq!(changed["settings"]["locked"], true);

    // The invite: read, previewed, used by a phone, reset.
    let (status, invite) = gateway
        .call(Method::GET, &format!("{one}/invite"), None)
        .await;
    assert_eq!(status, 200, "{invite}");
    let code = invite["code"].as_str().unwrap().to_owned();
    assert!(invite["link"].as_str().unwrap().ends_with(&code));
    let (status, preview) = gateway
        .call(Method::GET, &format!("{groups}/invite/{code}"), None)
        .await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview["subject"], "Support 2");
    assert_eq!(handle.group_join(FRANK, &code).unwrap(), group);
    let (status, reset) = gateway
        .call(Method::POST, &format!("{one}/invite/reset"), None)
        .await;
    assert_eq!(status, 200, "{reset}");
    assert_ne!(reset["code"], code.as_str());

    // Refusals: not an admin (Carol's group, made on her phone), no such
    // group, bad input before WhatsApp.
    let (theirs, _) = handle.group_create(CAROL, "Carol's", &[ALICE]).unwrap();
    events
        .wait("carol's group joined", &session, |e| {
            e["event"] == "group.joined" && e["data"]["group"] == theirs.as_str()
        })
        .await;
    let cases = [
        (
            Method::POST,
            format!("{groups}/{theirs}/participants"),
            Some(json!({ "add": [DAVE] })),
            403,
            "not_group_admin",
        ),
        (
            Method::GET,
            format!("{groups}/120363099999999999@g.us"),
            None,
            404,
            "group_not_found",
        ),
        (
            Method::POST,
            groups.clone(),
            Some(json!({ "subject": "" })),
            422,
            "invalid_subject",
        ),
        (
            Method::POST,
            groups.clone(),
            Some(json!({ "subject": "x".repeat(101) })),
            422,
            "invalid_subject",
        ),
        (
            Method::POST,
            groups.clone(),
            Some(json!({ "subject": "x", "description": "d".repeat(2049) })),
            422,
            "invalid_description",
        ),
        (
            Method::POST,
            groups.clone(),
            Some(json!({ "subject": "x", "participants": ["+1 555"] })),
            422,
            "invalid_phone",
        ),
        (
            Method::POST,
            groups.clone(),
            Some(json!({ "subject": "x", "participants": vec![BOB; 1025] })),
            422,
            "invalid_participants",
        ),
        (
            Method::POST,
            format!("{one}/participants"),
            Some(json!({ "add": [DAVE], "remove": [BOB] })),
            422,
            "invalid_participants",
        ),
        (
            Method::GET,
            format!("{groups}/not-a-group"),
            None,
            422,
            "invalid_group",
        ),
        (
            Method::GET,
            format!("/sessions/{}/groups", uuid::Uuid::nil()),
            None,
            404,
            "session_not_found",
        ),
    ];
    for (method, path, body, want, code) in cases {
        let (status, error) = gateway.call(method, &path, body).await;
        assert_eq!(status, want, "{path}: {error}");
        assert_eq!(error["error"]["code"], code, "{path}: {error}");
    }

    // Leaving: the group is gone from the list, and reading it is a 404.
    let (status, body) = gateway
        .call(Method::POST, &format!("{one}/leave"), None)
        .await;
    assert_eq!(status, 204, "{body}");
    let left = events
        .wait("group.left", &session, |e| e["event"] == "group.left")
        .await;
    assert_eq!(left["data"]["group"], group.as_str(), "{left}");
    assert_eq!(left["data"]["removed"], false, "{left}");
    assert!(
        !handle
            .group_info(&group)
            .unwrap()
            .participants
            .contains(&ALICE.to_owned())
    );
    let (_, list) = gateway.call(Method::GET, &groups, None).await;
    assert!(
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["id"] != group.as_str()),
        "{list}"
    );
    let (status, error) = gateway.call(Method::GET, &one, None).await;
    assert_eq!(status, 404, "{error}");

    // A session that is not working: the stored list still answers;
    // anything asked of WhatsApp is a 409 with its status.
    let (status, _) = gateway
        .call(Method::POST, &format!("/sessions/{session}/stop"), None)
        .await;
    assert_eq!(status, 200);
    let (status, list) = gateway.call(Method::GET, &groups, None).await;
    assert_eq!(status, 200, "{list}");
    assert!(
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["id"] == theirs.as_str()),
        "{list}"
    );
    let (status, error) = gateway
        .call(
            Method::GET,
            &format!("{groups}/{theirs}?refresh=true"),
            None,
        )
        .await;
    assert_eq!(status, 409, "{error}");
    assert_eq!(error["error"]["details"]["status"], "stopped", "{error}");
    gateway.stop().await;
}

/// What others change in a group reaches the session as events, and the
/// group list is the gateway's own: served from its store after a
/// restart, whatever the session's state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_changes_are_events_and_the_list_outlives_a_restart() {
    const ANNA: &str = "15550007001";
    const BEN: &str = "15550007002";
    const CORA: &str = "15550007003";
    const DAN: &str = "15550007004";
    let (sim, dir, gateway, mut events) = world(Limits::default()).await;
    let session = link_by_qr(&gateway, &mut events, &sim, ANNA).await;
    for phone in [BEN, CORA, DAN] {
        has_whatsapp(&sim, phone);
    }
    let handle = sim.handle();

    // Ben makes a group from his phone with the session's number in it:
    // the session has joined, added by Ben.
    let (group, _) = handle.group_create(BEN, "Ben's", &[ANNA, CORA]).unwrap();
    let joined = events
        .wait("group.joined", &session, |e| e["event"] == "group.joined")
        .await;
    assert_eq!(joined["data"]["group"], group.as_str(), "{joined}");
    assert_eq!(joined["data"]["subject"], "Ben's", "{joined}");
    assert_eq!(joined["data"]["by"]["phone"], BEN, "{joined}");
    let one = format!("/sessions/{session}/groups/{group}");
    let (status, got) = gateway.call(Method::GET, &one, None).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(
        got["participants"].as_array().map(Vec::len),
        Some(3),
        "{got}"
    );
    assert_eq!(member(&got, BEN).unwrap()["role"], "superadmin", "{got}");

    // Ben (an admin) adds Dan: named by number and LID, Ben by number.
    handle.group_change(&group, BEN, "add", &[DAN]).unwrap();
    let added = events
        .wait("dan added", &session, |e| {
            e["event"] == "group.participants" && e["data"]["action"] == "added"
        })
        .await;
    assert_eq!(added["data"]["by"]["phone"], BEN, "{added}");
    let people = added["data"]["participants"].as_array().unwrap();
    assert_eq!(people.len(), 1, "{added}");
    assert_eq!(people[0]["phone"], DAN, "{added}");
    assert!(people[0]["lid"].is_string(), "{added}");

    // Cora, a member, renames it (the group is not locked).
    handle.group_set_subject(&group, CORA, "Renamed").unwrap();
    let updated = events
        .wait("group.updated", &session, |e| e["event"] == "group.updated")
        .await;
    assert_eq!(
        updated["data"]["changes"]["subject"], "Renamed",
        "{updated}"
    );
    assert_eq!(updated["data"]["by"]["phone"], CORA, "{updated}");
    let (_, got) = gateway.call(Method::GET, &one, None).await;
    assert_eq!(got["subject"], "Renamed", "{got}");
    assert!(member(&got, DAN).is_some(), "{got}");

    // Ben promotes Cora, then removes Dan.
    handle
        .group_change(&group, BEN, "promote", &[CORA])
        .unwrap();
    let promoted = events
        .wait("cora promoted", &session, |e| {
            e["event"] == "group.participants" && e["data"]["action"] == "promoted"
        })
        .await;
    assert_eq!(
        promoted["data"]["participants"][0]["phone"], CORA,
        "{promoted}"
    );
    handle.group_change(&group, BEN, "remove", &[DAN]).unwrap();
    events
        .wait("dan removed", &session, |e| {
            e["event"] == "group.participants" && e["data"]["action"] == "removed"
        })
        .await;
    let (_, got) = gateway.call(Method::GET, &one, None).await;
    assert!(member(&got, DAN).is_none(), "{got}");
    assert_eq!(member(&got, CORA).unwrap()["role"], "admin", "{got}");

    // A second group, which Ben then removes the session from.
    let (other, _) = handle.group_create(BEN, "Short-lived", &[ANNA]).unwrap();
    events
        .wait("second group joined", &session, |e| {
            e["event"] == "group.joined" && e["data"]["group"] == other.as_str()
        })
        .await;
    handle.group_change(&other, BEN, "remove", &[ANNA]).unwrap();
    let removed = events
        .wait("removed from the second", &session, |e| {
            e["event"] == "group.left"
        })
        .await;
    assert_eq!(removed["data"]["group"], other.as_str(), "{removed}");
    assert_eq!(removed["data"]["removed"], true, "{removed}");
    assert_eq!(removed["data"]["by"]["phone"], BEN, "{removed}");

    // Stopped, then the gateway restarts: the list comes from the store.
    let (status, _) = gateway
        .call(Method::POST, &format!("/sessions/{session}/stop"), None)
        .await;
    assert_eq!(status, 200);
    let token = gateway.token.clone();
    gateway.stop().await;
    let gateway = Gateway::start_with(config(&sim, &dir, &Limits::default()), Some(token)).await;
    let (status, list) = gateway
        .call(
            Method::GET,
            &format!("/sessions/{session}/groups?limit=1"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{list}");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["id"].as_str())
        .collect();
    assert_eq!(ids, [group.as_str()], "{list}");
    assert!(list["next_cursor"].is_null(), "{list}");
    assert_eq!(list["data"][0]["subject"], "Renamed", "{list}");
    let (status, error) = gateway
        .call(
            Method::GET,
            &format!("/sessions/{session}/groups/{other}"),
            None,
        )
        .await;
    assert_eq!(status, 404, "{error}");
    gateway.stop().await;
}

/// A LID lookup's answer, once the session has it: whatsapp-rust keeps
/// a mapping learnt from a group's metadata from a task of its own, so it
/// may reach the store a moment after the call that taught it.
async fn lid_mapping(gateway: &Gateway, uri: &str) -> Value {
    tokio::time::timeout(WAIT, async {
        loop {
            let (status, body) = gateway.call(Method::GET, uri, None).await;
            match status {
                200 => return body,
                404 => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
                _ => panic!("{uri}: {status} {body}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{uri}: no mapping within {WAIT:?}"))
}

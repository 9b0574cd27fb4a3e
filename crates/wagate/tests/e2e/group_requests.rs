//! Membership requests end to end: in a group whose admins approve who
//! joins, phones that use the invite ask to join; the session (an admin)
//! sees each request as a `group.participants` `requested` event naming
//! the phone by number and LID, lists the requests, approves one (who is
//! then in, reported as `added`) and rejects another, with a result per
//! person; bad input and foreign groups are refused.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::messaging::has_whatsapp;

const ALICE: &str = "15550008001";
const BOB: &str = "15550008002";
const CAROL: &str = "15550008003";
const DAVE: &str = "15550008004";
/// Has no WhatsApp account.
const NOBODY: &str = "15550008099";

fn result_of<'a>(results: &'a Value, phone: &str) -> &'a Value {
    results["participants"]
        .as_array()
        .and_then(|all| all.iter().find(|r| r["phone"] == phone))
        .unwrap_or_else(|| panic!("no result for {phone}: {results}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_session_approves_and_rejects_requests_to_join() {
    let (sim, _dir, gateway, mut events) = world(Limits::default()).await;
    let session = link_by_qr(&gateway, &mut events, &sim, ALICE).await;
    for phone in [BOB, CAROL, DAVE] {
        has_whatsapp(&sim, phone);
    }
    let handle = sim.handle();
    let groups = format!("/sessions/{session}/groups");

    let (status, created) = gateway
        .call(
            Method::POST,
            &groups,
            Some(json!({ "subject": "Members only", "participants": [BOB] })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let group = created["group"]["id"].as_str().unwrap().to_owned();
    let one = format!("{groups}/{group}");
    let (status, changed) = gateway
        .call(Method::PATCH, &one, Some(json!({ "approval": true })))
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["settings"]["approval"], true, "{changed}");
    let (status, invite) = gateway
        .call(Method::GET, &format!("{one}/invite"), None)
        .await;
    assert_eq!(status, 200, "{invite}");
    let code = invite["code"].as_str().unwrap().to_owned();

    // The session learns Carol's and Dave's LIDs, as it would from any
    // earlier contact, so the requests can name them by both.
    let (status, checked) = gateway
        .call(
            Method::POST,
            &format!("/sessions/{session}/contacts/check"),
            Some(json!({ "phones": [CAROL, DAVE] })),
        )
        .await;
    assert_eq!(status, 200, "{checked}");

    // Carol and Dave use the invite: each asks to join.
    for phone in [CAROL, DAVE] {
        let (asked, joined) = handle.group_join_or_ask(phone, &code).unwrap();
        assert_eq!((asked.as_str(), joined), (group.as_str(), false));
        let requested = events
            .wait("a request to join", &session, |e| {
                e["event"] == "group.participants"
                    && e["data"]["action"] == "requested"
                    && e["data"]["participants"][0]["phone"] == phone
            })
            .await;
        assert_eq!(requested["data"]["group"], group.as_str(), "{requested}");
        assert!(
            requested["data"]["participants"][0]["lid"].is_string(),
            "{requested}"
        );
    }
    assert!(
        handle
            .group_info(&group)
            .unwrap()
            .participants
            .iter()
            .all(|p| p != CAROL && p != DAVE),
        "asking is not joining"
    );

    let requests_uri = format!("{one}/requests");
    let (status, listed) = gateway.call(Method::GET, &requests_uri, None).await;
    assert_eq!(status, 200, "{listed}");
    let phones: Vec<&str> = listed["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["phone"].as_str())
        .collect();
    assert_eq!(phones, [CAROL, DAVE], "{listed}");
    assert!(listed["requests"][0]["lid"].is_string(), "{listed}");
    assert!(
        listed["requests"][0]["requested_at"].is_string(),
        "{listed}"
    );

    // Carol is let in (Nobody never asked): she is a member, reported as
    // added by the session's number.
    let (status, approved) = gateway
        .call(
            Method::POST,
            &format!("{requests_uri}/approve"),
            Some(json!({ "participants": [CAROL, NOBODY] })),
        )
        .await;
    assert_eq!(status, 200, "{approved}");
    assert_eq!(result_of(&approved, CAROL)["result"], "approved");
    assert_eq!(result_of(&approved, NOBODY)["result"], "not_requested");
    let added = events
        .wait("carol added", &session, |e| {
            e["event"] == "group.participants"
                && e["data"]["action"] == "added"
                && e["data"]["participants"][0]["phone"] == CAROL
        })
        .await;
    assert_eq!(added["data"]["by"]["phone"], ALICE, "{added}");
    let server = handle.group_info(&group).unwrap();
    assert!(server.participants.iter().any(|p| p == CAROL));
    assert_eq!(server.requests, [DAVE]);

    // Dave is turned down: not a member, no request left.
    let (status, rejected) = gateway
        .call(
            Method::POST,
            &format!("{requests_uri}/reject"),
            Some(json!({ "participants": [DAVE] })),
        )
        .await;
    assert_eq!(status, 200, "{rejected}");
    assert_eq!(result_of(&rejected, DAVE)["result"], "rejected");
    let server = handle.group_info(&group).unwrap();
    assert!(server.participants.iter().all(|p| p != DAVE));
    assert!(server.requests.is_empty());
    let (status, listed) = gateway.call(Method::GET, &requests_uri, None).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["requests"], json!([]), "{listed}");

    // Refusals: bad input before WhatsApp, no such group, not an admin
    // (Bob's group, where the session is a member).
    let (theirs, _) = handle.group_create(BOB, "Bob's", &[ALICE]).unwrap();
    events
        .wait("bob's group joined", &session, |e| {
            e["event"] == "group.joined" && e["data"]["group"] == theirs.as_str()
        })
        .await;
    let cases = [
        (
            Method::POST,
            format!("{requests_uri}/approve"),
            Some(json!({ "participants": [] })),
            422,
            "invalid_participants",
        ),
        (
            Method::POST,
            format!("{requests_uri}/reject"),
            Some(json!({ "participants": ["+1 555"] })),
            422,
            "invalid_phone",
        ),
        (
            Method::GET,
            format!("{groups}/not-a-group/requests"),
            None,
            422,
            "invalid_group",
        ),
        (
            Method::GET,
            format!("{groups}/120363099999999999@g.us/requests"),
            None,
            404,
            "group_not_found",
        ),
        (
            Method::GET,
            format!("{groups}/{theirs}/requests"),
            None,
            403,
            "not_group_admin",
        ),
        (
            Method::POST,
            format!("{groups}/{theirs}/requests/approve"),
            Some(json!({ "participants": [DAVE] })),
            403,
            "not_group_admin",
        ),
    ];
    for (method, path, body, want, code) in cases {
        let (status, error) = gateway.call(method, &path, body).await;
        assert_eq!(status, want, "{path}: {error}");
        assert_eq!(error["error"]["code"], code, "{path}: {error}");
    }

    // Not working: a 409 naming the status.
    let (status, _) = gateway
        .call(Method::POST, &format!("/sessions/{session}/stop"), None)
        .await;
    assert_eq!(status, 200);
    let (status, error) = gateway.call(Method::GET, &requests_uri, None).await;
    assert_eq!(status, 409, "{error}");
    assert_eq!(error["error"]["details"]["status"], "stopped", "{error}");
    gateway.stop().await;
}

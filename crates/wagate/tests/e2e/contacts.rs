//! Contacts: who wrote is a contact with their push name; the name the
//! phone's user saves comes through the app state; the about text and the
//! profile picture come live from WhatsApp (the picture served and kept by
//! the gateway, its change reported); blocking reaches WhatsApp's
//! blocklist.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use wasim::{HistoryChat, HistoryMessage, HistorySeed};

use crate::helpers::*;

/// The linked number.
const ALICE: &str = "15550009191";
/// Someone who writes to it.
const BOB: &str = "15550009292";

/// Someone the phone's history names by LID alone: not on the simulated
/// WhatsApp until later.
const ERIN: &str = "15550009393";
const ERIN_LID: &str = "299000000000123";

const WAIT: Duration = Duration::from_secs(20);

/// A tiny JPEG's first bytes are enough: the gateway passes them on.
const PICTURE: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, 0, 16, b'J', b'F', b'I', b'F', 0, 1];

async fn contact_updated(events: &mut Events, session: &str, changed: &str) -> Value {
    events
        .wait(&format!("contact.updated ({changed})"), session, |e| {
            e["event"] == "contact.updated"
                && e["data"]["phone"] == BOB
                && e["data"]["changed"] == changed
        })
        .await
}

async fn picture(gateway: &Gateway, session: &str) -> (u16, Vec<u8>) {
    let response = gateway
        .http
        .get(format!(
            "{}/sessions/{session}/contacts/{BOB}/picture",
            gateway.base
        ))
        .bearer_auth(&gateway.token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("picture: {e}"));
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap_or_default().to_vec();
    (status, bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_has_names_about_text_and_picture_and_can_be_blocked() {
    let (sim, _dir, gateway, mut events) = world(Limits::default()).await;
    let session = link_by_qr(&gateway, &mut events, &sim, ALICE).await;
    let phones = sim.handle();
    phones.register_phone(BOB).unwrap_or_else(|e| panic!("{e}"));
    let bob_lid = phones.lid_of(BOB).unwrap_or_else(|e| panic!("{e}"));
    let id = phones
        .phone_send_text(BOB, ALICE, "hello")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    events.incoming(&session, &id).await;

    // Who wrote is a contact, with the name they gave themselves.
    let (status, list) = gateway
        .call(Method::GET, &format!("/sessions/{session}/contacts"), None)
        .await;
    assert_eq!(status, 200, "{list}");
    let bob = list["data"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["phone"] == BOB).cloned())
        .unwrap_or_else(|| panic!("no Bob: {list}"));
    assert_eq!(bob["id"], format!("{BOB}@s.whatsapp.net"), "{bob}");
    assert_eq!(bob["push_name"], format!("Phone {BOB}"), "{bob}");
    assert_eq!(bob["on_whatsapp"], true, "{bob}");
    assert_eq!(bob["saved_name"], Value::Null, "{bob}");

    // Alice saves Bob on her phone: the name comes through the app state.
    let device = device_of(&sim, ALICE);
    assert!(
        phones.wait_app_state_synced(ALICE, device, WAIT).await,
        "the session never read its app state"
    );
    phones
        .phone_save_contact(ALICE, BOB, Some("Bob Builder".into()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let event = contact_updated(&mut events, &session, "saved_name").await;
    assert_eq!(event["data"]["saved_name"], "Bob Builder", "{event}");
    assert_eq!(event["data"]["lid"], bob_lid.as_str(), "{event}");
    let (status, found) = gateway
        .call(
            Method::GET,
            &format!("/sessions/{session}/contacts?q=builder"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["data"].as_array().map(Vec::len), Some(1), "{found}");
    assert_eq!(found["data"][0]["saved_name"], "Bob Builder", "{found}");
    assert_eq!(found["data"][0]["lid"], bob_lid.as_str(), "{found}");

    // No picture yet: 404.
    let (status, _) = picture(&gateway, &session).await;
    assert_eq!(status, 404);

    // Bob sets an about text and a picture; Alice's devices are told of
    // the picture.
    phones
        .set_about(BOB, Some("Out fishing".into()))
        .unwrap_or_else(|e| panic!("{e}"));
    let picture_id = phones
        .set_picture(BOB, Some(PICTURE.to_vec().into()), false, &[ALICE.into()])
        .unwrap_or_else(|e| panic!("{e}"))
        .map(|id| id.to_string());
    let event = contact_updated(&mut events, &session, "picture").await;
    assert_eq!(
        event["data"]["picture_id"].as_str(),
        picture_id.as_deref(),
        "{event}"
    );
    let (status, details) = gateway
        .call(
            Method::GET,
            &format!("/sessions/{session}/contacts/{BOB}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{details}");
    assert_eq!(details["about"], "Out fishing", "{details}");
    assert_eq!(
        details["picture"]["id"].as_str(),
        picture_id.as_deref(),
        "{details}"
    );
    assert_eq!(details["saved_name"], "Bob Builder", "{details}");
    // By LID too: the same contact.
    let (status, by_lid) = gateway
        .call(
            Method::GET,
            &format!("/sessions/{session}/contacts/{bob_lid}@lid"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{by_lid}");
    assert_eq!(by_lid["id"], details["id"], "{by_lid}");

    let (status, bytes) = picture(&gateway, &session).await;
    assert_eq!(status, 200);
    assert_eq!(bytes, PICTURE);

    // Hidden from everyone: none to show.
    phones
        .set_picture(BOB, Some(PICTURE.to_vec().into()), true, &[])
        .unwrap_or_else(|e| panic!("{e}"));
    let (status, _) = picture(&gateway, &session).await;
    assert_eq!(status, 404);

    // An unknown contact, and not a person.
    let (status, body) = gateway
        .call(
            Method::GET,
            &format!("/sessions/{session}/contacts/15550009999"),
            None,
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "contact_not_found", "{body}");
    let (status, body) = gateway
        .call(
            Method::GET,
            &format!("/sessions/{session}/contacts/120363000000000001@g.us"),
            None,
        )
        .await;
    assert_eq!(status, 422, "{body}");

    // Blocked and unblocked: WhatsApp's blocklist says so.
    let (status, body) = gateway
        .call(
            Method::POST,
            &format!("/sessions/{session}/contacts/{BOB}/block"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["blocked"], true, "{body}");
    assert_eq!(
        phones.blocklist(ALICE).unwrap_or_else(|e| panic!("{e}")),
        vec![format!("{bob_lid}@lid")]
    );
    let (status, body) = gateway
        .call(
            Method::POST,
            &format!("/sessions/{session}/contacts/{BOB}/unblock"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        phones
            .blocklist(ALICE)
            .unwrap_or_else(|e| panic!("{e}"))
            .is_empty()
    );

    // Stopped: the live details are a 409; the list is still there.
    let (status, body) = gateway
        .call(Method::POST, &format!("/sessions/{session}/stop"), None)
        .await;
    assert!(status == 200 || status == 202, "{status} {body}");
    events.status(&session, "stopped").await;
    let (status, body) = gateway
        .call(
            Method::GET,
            &format!("/sessions/{session}/contacts/{BOB}"),
            None,
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = gateway
        .call(
            Method::GET,
            &format!("/sessions/{session}/contacts?limit=1"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"][0]["saved_name"], "Bob Builder", "{body}");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_known_by_lid_and_then_by_number_is_one_chat_and_one_contact() {
    let (sim, _dir, gateway, mut events) = world(Limits::default()).await;
    let phones = sim.handle();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    // Alice's phone has a chat with Erin's LID, and no number for it.
    let seeded = phones
        .seed_history(
            ALICE,
            HistorySeed {
                chats: vec![HistoryChat {
                    jid: format!("{ERIN_LID}@lid"),
                    name: None,
                    unread: 1,
                    messages: (0..3)
                        .map(|i| HistoryMessage {
                            id: Some(format!("ERINHIST{i}")),
                            from_me: false,
                            sender: None,
                            push_name: Some("Erin".into()),
                            timestamp: now - 3_600 + i * 60,
                            text: format!("by lid {i}"),
                        })
                        .collect(),
                }],
                push_names: vec![],
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(seeded, 3);
    let session = gateway.create_session().await;
    let code = events.qr(&session).await;
    phones
        .scan_qr(ALICE, &code)
        .unwrap_or_else(|e| panic!("scan: {e}"));
    let (mut working, mut stored) = (false, 0);
    while !working || stored < 3 {
        let event = events.next("working and the history").await;
        if event["session_id"] != session.as_str() {
            continue;
        }
        if event["event"] == "history.sync" {
            stored += event["data"]["messages"].as_u64().unwrap_or_default();
        }
        working |= event["event"] == "session.status" && event["data"]["status"] == "working";
    }
    let chats = |body: &Value| -> Vec<(String, u64)> {
        body["data"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                (
                    c["id"].as_str().unwrap_or_default().to_string(),
                    c["unread"].as_u64().unwrap_or_default(),
                )
            })
            .collect()
    };
    let (status, body) = gateway
        .call(Method::GET, &format!("/sessions/{session}/chats"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(chats(&body), vec![(format!("{ERIN_LID}@lid"), 1)], "{body}");

    // Erin joins and writes, by number: the session learns her number.
    phones
        .register_phone_with_lid(ERIN, ERIN_LID)
        .unwrap_or_else(|e| panic!("{e}"));
    let id = phones
        .phone_send_text(ERIN, ALICE, "by number")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let received = events.incoming(&session, &id).await;
    assert_eq!(
        received["data"]["chat"],
        format!("{ERIN}@s.whatsapp.net"),
        "{received}"
    );

    // One chat, under her number, with every message.
    let (status, body) = gateway
        .call(Method::GET, &format!("/sessions/{session}/chats"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        chats(&body),
        vec![(format!("{ERIN}@s.whatsapp.net"), 2)],
        "{body}"
    );
    let (status, page) = gateway
        .call(
            Method::GET,
            &format!("/sessions/{session}/chats/{ERIN}/messages"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["data"].as_array().map(Vec::len), Some(4), "{page}");
    // Named by her LID, it is the same chat.
    let (status, by_lid) = gateway
        .call(
            Method::GET,
            &format!("/sessions/{session}/chats/{ERIN_LID}@lid/messages"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{by_lid}");
    assert_eq!(by_lid["data"], page["data"], "{by_lid}");
    // `lids` resolves both ways.
    let (status, mapping) = gateway
        .call(
            Method::GET,
            &format!("/sessions/{session}/lids/{ERIN_LID}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{mapping}");
    assert_eq!(mapping["phone"], ERIN, "{mapping}");
    let (status, mapping) = gateway
        .call(
            Method::GET,
            &format!("/sessions/{session}/lids?phone={ERIN}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{mapping}");
    assert_eq!(mapping["lid"], format!("{ERIN_LID}@lid"), "{mapping}");
    // One contact with both ids, found by either.
    let (status, list) = gateway
        .call(Method::GET, &format!("/sessions/{session}/contacts"), None)
        .await;
    assert_eq!(status, 200, "{list}");
    let erins: Vec<&Value> = list["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["phone"] == ERIN || c["lid"] == ERIN_LID)
        .collect();
    assert_eq!(erins.len(), 1, "{list}");
    assert_eq!(erins[0]["id"], format!("{ERIN}@s.whatsapp.net"), "{list}");
    assert_eq!(erins[0]["lid"], ERIN_LID, "{list}");
    gateway.stop().await;
}

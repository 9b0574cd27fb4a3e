//! What a session does besides sending: edits and revokes (through the
//! outbox), read receipts, typing and contact checks (straight on the live
//! connection), each seen arriving at the simulated phone.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::messaging::{has_whatsapp, send};

const ALICE: &str = "15550003333";
const BOB: &str = "15550004444";
/// Has no WhatsApp account.
const CAROL: &str = "15550005555";

fn id_of(body: &Value) -> String {
    body["id"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| panic!("{body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_and_a_revoke_reach_the_phone_and_report_their_statuses() {
    let (sim, _dir, gateway, mut events) = world(Limits::default()).await;
    let session = link_by_qr(&gateway, &mut events, &sim, ALICE).await;
    has_whatsapp(&sim, BOB);

    let (status, original) = send(
        &gateway,
        &session,
        json!({ "to": BOB, "text": { "body": "see you at 5" } }),
    )
    .await;
    assert_eq!(status, 202, "{original}");
    let original_id = id_of(&original);
    let wa_id = original["wa_id"].as_str().unwrap_or_default().to_string();

    // Asked for at once: the outbox sends the edit after its message.
    let (status, edit) = gateway
        .call(
            Method::POST,
            &format!("/sessions/{session}/messages/{original_id}/edit"),
            Some(json!({ "text": "see you at 6" })),
        )
        .await;
    assert_eq!(status, 202, "{edit}");
    assert_eq!(edit["kind"], "edit");
    assert_eq!(edit["status"], "pending");
    assert_ne!(edit["wa_id"], original["wa_id"]);
    let edit_id = id_of(&edit);
    events.message_status(&session, &edit_id, "sent").await;

    let shown = sim
        .handle()
        .wait_phone_message(BOB, WAIT, |m| {
            m.id == wa_id && m.edited_text.as_deref() == Some("see you at 6")
        })
        .await
        .unwrap_or_else(|| panic!("{BOB} never showed the edit of {wa_id}"));
    assert_eq!(shown.text.as_deref(), Some("see you at 5"));
    assert_eq!(shown.edits, 1);

    let (status, revoke) = gateway
        .call(
            Method::DELETE,
            &format!("/sessions/{session}/messages/{original_id}"),
            None,
        )
        .await;
    assert_eq!(status, 202, "{revoke}");
    assert_eq!(revoke["kind"], "revoke");
    events
        .message_status(&session, &id_of(&revoke), "sent")
        .await;
    let revoked = sim
        .handle()
        .wait_phone_message(BOB, WAIT, |m| m.id == wa_id && m.revoked)
        .await;
    assert!(revoked.is_some(), "{BOB} never deleted {wa_id}");

    // The edit and the revoke act on the message; the phone shows one.
    let on_phone = sim.handle().phone_messages(BOB).unwrap_or_default();
    let kinds: Vec<&str> = on_phone
        .iter()
        .filter(|m| m.sender.starts_with(ALICE))
        .map(|m| m.kind.as_str())
        .collect();
    assert_eq!(kinds, ["text", "edit", "revoke"]);

    // What cannot be edited or deleted is refused before anything is stored.
    let (_, location) = send(
        &gateway,
        &session,
        json!({ "to": BOB, "location": { "latitude": 1.5, "longitude": 2.5 } }),
    )
    .await;
    let location_id = id_of(&location);
    let cases = [
        (
            Method::POST,
            format!("/sessions/{session}/messages/{location_id}/edit"),
            Some(json!({ "text": "x" })),
            409,
            "not_editable",
        ),
        (
            Method::POST,
            format!("/sessions/{session}/messages/{original_id}/edit"),
            Some(json!({ "text": "" })),
            422,
            "empty_field",
        ),
        (
            Method::POST,
            format!("/sessions/{session}/messages/{original_id}/edit"),
            Some(json!({ "body": "x" })),
            422,
            "invalid_body",
        ),
        (
            Method::POST,
            format!("/sessions/{session}/messages/{}/edit", uuid::Uuid::nil()),
            Some(json!({ "text": "x" })),
            404,
            "message_not_found",
        ),
        (
            Method::DELETE,
            format!("/sessions/{session}/messages/{}", id_of(&edit)),
            None,
            409,
            "not_revocable",
        ),
    ];
    for (method, path, body, want, code) in cases {
        let (status, error) = gateway.call(method, &path, body).await;
        assert_eq!(status, want, "{path}: {error}");
        assert_eq!(error["error"]["code"], code, "{path}: {error}");
    }
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_receipts_typing_and_contact_checks_reach_whatsapp() {
    let (sim, _dir, gateway, mut events) = world(Limits::default()).await;
    let session = link_by_qr(&gateway, &mut events, &sim, ALICE).await;
    has_whatsapp(&sim, BOB);

    // Bob writes; the session reads it: Bob's phone gets the blue ticks.
    let incoming = sim
        .handle()
        .phone_send_text(BOB, ALICE, "are you there?")
        .await
        .unwrap_or_else(|e| panic!("{BOB} sends: {e}"));
    let (status, body) = gateway
        .call(
            Method::POST,
            &format!("/sessions/{session}/chats/{BOB}/read"),
            Some(json!({ "message_ids": [incoming] })),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let receipt = sim
        .handle()
        .wait_phone_receipt(BOB, WAIT, |r| r.kind == "read" && r.ids.contains(&incoming))
        .await;
    assert!(receipt.is_some(), "{BOB} never got a read receipt");

    for state in ["composing", "recording", "paused"] {
        let (status, body) = gateway
            .call(
                Method::POST,
                &format!("/sessions/{session}/chats/{BOB}@s.whatsapp.net/typing"),
                Some(json!({ "state": state })),
            )
            .await;
        assert_eq!(status, 204, "{body}");
        let shown = sim
            .handle()
            .wait_phone_chat_state(BOB, WAIT, |s| s.state == state && s.from.starts_with(ALICE))
            .await;
        assert!(shown.is_some(), "{BOB} never saw {state}");
    }

    let (status, checked) = gateway
        .call(
            Method::POST,
            &format!("/sessions/{session}/contacts/check"),
            Some(json!({ "phones": [BOB, CAROL, BOB] })),
        )
        .await;
    assert_eq!(status, 200, "{checked}");
    let results = checked["results"]
        .as_array()
        .unwrap_or_else(|| panic!("{checked}"));
    assert_eq!(results.len(), 2, "{checked}");
    assert_eq!(results[0]["phone"], BOB);
    assert_eq!(results[0]["on_whatsapp"], true);
    assert_eq!(results[0]["jid"], format!("{BOB}@s.whatsapp.net"));
    assert_eq!(results[1]["phone"], CAROL);
    assert_eq!(results[1]["on_whatsapp"], false);
    assert_eq!(results[1]["jid"], Value::Null);

    let group = "120363000000000001@g.us";
    let cases = [
        (
            format!("/sessions/{session}/chats/{BOB}/typing"),
            json!({ "state": "dancing" }),
            422,
            "invalid_body",
        ),
        (
            format!("/sessions/{session}/chats/not-a-chat/typing"),
            json!({ "state": "paused" }),
            422,
            "invalid_recipient",
        ),
        (
            format!("/sessions/{session}/chats/{BOB}/read"),
            json!({ "message_ids": [] }),
            422,
            "invalid_message_ids",
        ),
        (
            format!("/sessions/{session}/chats/{group}/read"),
            json!({ "message_ids": ["3EB0AA"] }),
            422,
            "sender_required",
        ),
        (
            format!("/sessions/{session}/chats/{BOB}/read"),
            json!({ "message_ids": ["3EB0AA"], "sender": BOB }),
            422,
            "sender_not_allowed",
        ),
        (
            format!("/sessions/{session}/contacts/check"),
            json!({ "phones": [] }),
            422,
            "invalid_phones",
        ),
        (
            format!("/sessions/{session}/contacts/check"),
            json!({ "phones": ["+1 555"] }),
            422,
            "invalid_phone",
        ),
        (
            format!("/sessions/{}/contacts/check", uuid::Uuid::nil()),
            json!({ "phones": [BOB] }),
            404,
            "session_not_found",
        ),
    ];
    for (path, body, want, code) in cases {
        let (status, error) = gateway.call(Method::POST, &path, Some(body)).await;
        assert_eq!(status, want, "{path}: {error}");
        assert_eq!(error["error"]["code"], code, "{path}: {error}");
    }

    // Nothing to say it on while the session is stopped.
    let (status, _) = gateway
        .call(Method::POST, &format!("/sessions/{session}/stop"), None)
        .await;
    assert_eq!(status, 200);
    let (status, error) = gateway
        .call(
            Method::POST,
            &format!("/sessions/{session}/chats/{BOB}/typing"),
            Some(json!({ "state": "composing" })),
        )
        .await;
    assert_eq!(status, 409, "{error}");
    assert_eq!(error["error"]["code"], "not_started");
    gateway.stop().await;
}

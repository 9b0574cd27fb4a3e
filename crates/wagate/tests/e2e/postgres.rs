//! The gateway on PostgreSQL, whatever database the rest of the run uses:
//! skipped (saying so) where no PostgreSQL answers, required in CI
//! (`WAGATE_REQUIRE_POSTGRES=1`). The whole suite runs on PostgreSQL with
//! `WAGATE_TEST_DATABASE=postgres`.

use reqwest::Method;
use serde_json::json;

use crate::helpers::*;
use crate::messaging::{has_whatsapp, send};

const ALICE: &str = "15550004141";
const BOB: &str = "15550004242";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_session_sends_receives_and_works_again_after_a_restart() {
    let Some(dir) = DataDir::postgres().await else {
        return;
    };
    let (sim, dir, gateway, mut events) = world_in(dir, Limits::default()).await;
    let token = gateway.token.clone();
    let session = link_by_qr(&gateway, &mut events, &sim, ALICE).await;
    let device = device_of(&sim, ALICE);
    has_whatsapp(&sim, BOB);

    let (status, accepted) = send(
        &gateway,
        &session,
        json!({ "to": BOB, "text": { "body": "stored in postgres" } }),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    let sent = accepted["id"].as_str().unwrap_or_default().to_string();
    events.message_status(&session, &sent, "delivered").await;

    let wa_id = sim
        .handle()
        .phone_send_text(BOB, ALICE, "and back")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let received = events.incoming(&session, &wa_id).await;
    let received = received["data"]["message_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // Everything went to PostgreSQL: no SQLite file beside the keys.
    assert!(!dir.path().join("wagate.db").exists());

    drop(events);
    gateway.stop().await;
    let again = Gateway::start_with(config(&sim, &dir, &Limits::default()), Some(token)).await;
    let mut events = again.events().await;
    if again.session(&session).await["status"] != "working" {
        events.status(&session, "working").await;
    }
    assert_eq!(
        device_of(&sim, ALICE),
        device,
        "the same linked device, not a new link"
    );

    let (status, list) = again
        .call(
            Method::GET,
            &format!("/sessions/{session}/messages?limit=10"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{list}");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap_or_else(|| panic!("{list}"))
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, [received.as_str(), sent.as_str()], "newest first");

    // The link works: a message after the restart reaches the phone.
    let (status, accepted) = send(
        &again,
        &session,
        json!({ "to": BOB, "text": { "body": "after the restart" } }),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    let after = accepted["id"].as_str().unwrap_or_default().to_string();
    events.message_status(&session, &after, "delivered").await;
    again.stop().await;
}

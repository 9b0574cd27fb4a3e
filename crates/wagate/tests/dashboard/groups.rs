//! A session's groups and a group's participants on the dashboard, as a
//! signed-in browser gets the pages. A group's subject is written by
//! whoever made it, so it must arrive as text.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;

const HOSTILE: &str = r#"<script>window.__xss=1</script>Team"#;
const OWNER: &str = "15550005101";
const MEMBER: &str = "15550005102";

/// How long anything here may take on a loaded machine.
const WAIT: Duration = Duration::from_secs(30);

/// `GET {path}` through the API until `ready` takes the answer (the
/// session links and hears of the group on its own tasks).
async fn api_until(gateway: &Gateway, path: &str, ready: impl Fn(u16, &Value) -> bool) -> Value {
    let client = reqwest::Client::new();
    tokio::time::timeout(WAIT, async {
        loop {
            let response = client
                .get(gateway.url(&format!("/api/v1{path}")))
                .bearer_auth(&gateway.api_token)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{path}: {e}"));
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or_default();
            if ready(status, &body) {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{path}: not ready within {WAIT:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sessions_groups_and_a_groups_participants_are_listed() {
    let gateway = Gateway::start().await;
    let client = http_client();
    let cookie = session_cookie(
        &client,
        &gateway,
        &gateway.owner_email,
        &gateway.owner_password,
    )
    .await;

    // A session linked to a simulated phone, whose number a phone then
    // puts in a group.
    let created: Value = reqwest::Client::new()
        .post(gateway.url("/api/v1/sessions"))
        .bearer_auth(&gateway.api_token)
        .json(&serde_json::json!({ "label": "Groups" }))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    let id = created["id"].as_str().unwrap_or_default().to_string();
    let qr = api_until(&gateway, &format!("/sessions/{id}/qr"), |s, _| s == 200).await;
    let number = "15550005100";
    gateway
        .sim
        .scan_qr(number, qr["code"].as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("scan: {e}"));
    api_until(&gateway, &format!("/sessions/{id}"), |_, s| {
        s["status"] == "working"
    })
    .await;
    for phone in [OWNER, MEMBER] {
        gateway
            .sim
            .register_phone(phone)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let (group, _) = gateway
        .sim
        .group_create(OWNER, HOSTILE, &[number, MEMBER])
        .unwrap_or_else(|e| panic!("{e}"));
    api_until(
        &gateway,
        &format!("/sessions/{id}/groups/{group}"),
        |s, _| s == 200,
    )
    .await;

    // The list: the subject as text, linking to the group's page.
    let (status, page) = get_page(
        &client,
        &gateway,
        &cookie,
        &format!("/sessions/{id}/groups"),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains(&format!(r#"data-group-id="{group}""#)),
        "{page}"
    );
    assert!(
        page.contains("&lt;script&gt;window.__xss=1&lt;/script&gt;Team"),
        "the subject, escaped: {page}"
    );
    assert!(!page.contains(HOSTILE), "never as markup");
    let digits = group.trim_end_matches("@g.us");
    assert!(
        page.contains(&format!(r#"href="/sessions/{id}/groups/{digits}""#)),
        "{page}"
    );

    // The group's page: every participant with number and role.
    let (status, page) = get_page(
        &client,
        &gateway,
        &cookie,
        &format!("/sessions/{id}/groups/{digits}"),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page.matches("<tr data-participant>").count(), 3, "{page}");
    for phone in [OWNER, MEMBER, number] {
        assert!(page.contains(&format!("+{phone}")), "{phone}: {page}");
    }
    assert!(page.contains(r#"data-role="superadmin""#), "{page}");
    assert!(!page.contains(HOSTILE), "never as markup");

    // The session page leads there.
    let (_, page) = get_page(&client, &gateway, &cookie, &format!("/sessions/{id}")).await;
    assert!(
        page.contains(&format!(r#"href="/sessions/{id}/groups""#)),
        "{page}"
    );

    // No such group, no such session: not found.
    for path in [
        format!("/sessions/{id}/groups/120363099999999999"),
        format!("/sessions/{}/groups", uuid::Uuid::nil()),
    ] {
        let (status, _) = get_page(&client, &gateway, &cookie, &path).await;
        assert_eq!(status, 404, "{path}");
    }
    gateway.stop().await;
}

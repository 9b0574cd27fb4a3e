//! A session's chats and a chat's messages, each its own page. Names and
//! text are written by anyone who knows the number, so both pages must
//! show markup in them as text.

use serde_json::json;

use crate::helpers::*;

/// HTML that would run script if it were ever parsed as markup.
const HOSTILE: &str = r#"<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>"#;
const STRANGER: &str = "15550004545";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_list_leads_to_each_chats_messages() {
    let _slot = slot().await;
    let gateway = Gateway::start().await;
    let Some(browser) = Browser::start().await else {
        return;
    };
    browser
        .sign_in(&gateway, &gateway.owner_email, &gateway.owner_password)
        .await;
    let (id, number) = link_in_sandbox(&browser, &gateway, "Chats").await;
    gateway
        .sim
        .phone_send_text(STRANGER, &number, HOSTILE)
        .await
        .unwrap_or_else(|e| panic!("the contact sends: {e}"));
    // Stored once it shows on the session's page.
    browser
        .find("[data-messages] tr[data-direction='incoming']")
        .await;

    browser.click("a[data-chats-link]").await;
    let chat = format!("[data-chats] tr[data-chat-id='{STRANGER}@s.whatsapp.net']");
    browser.find(&chat).await;
    assert_eq!(
        browser.text(&format!("{chat} .message-text")).await,
        HOSTILE,
        "the last message, as the text it is"
    );
    assert_eq!(browser.text(&format!("{chat} [data-unread]")).await, "1");
    browser.screenshot("session-chats").await;

    browser.click(&format!("{chat} a")).await;
    let incoming = "[data-chat-messages] tr[data-direction='incoming']";
    browser.find(incoming).await;
    assert_eq!(
        browser.text(&format!("{incoming} .message-text")).await,
        HOSTILE
    );
    let xss = browser.js("return typeof window.__xss;").await;
    assert_eq!(xss, json!("undefined"), "no script from the message ran");
    let injected = browser
        .js("return document.querySelectorAll('[data-chats] img, [data-chat-messages] img, script:not([src])').length;")
        .await;
    assert_eq!(injected, json!(0));
    browser.screenshot("session-chat-messages").await;
    assert_eq!(
        browser.path().await,
        format!("/sessions/{id}/chats/{STRANGER}@s.whatsapp.net")
    );

    browser.close().await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_without_chats_says_so_and_an_unknown_chat_is_not_found() {
    let _slot = slot().await;
    let gateway = Gateway::start().await;
    let client = http_client();
    let cookie = session_cookie(
        &client,
        &gateway,
        &gateway.owner_email,
        &gateway.owner_password,
    )
    .await;
    let created = client
        .post(gateway.url("/api/v1/sessions"))
        .bearer_auth(&gateway.api_token)
        .json(&json!({ "label": "Empty" }))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(created.status().as_u16(), 201);
    let body: serde_json::Value = created.json().await.unwrap_or_default();
    let id = body["id"].as_str().unwrap_or_default().to_string();
    let get = |path: String| {
        let client = client.clone();
        let cookie = cookie.clone();
        let url = gateway.url(&path);
        async move {
            let response = client
                .get(url)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let status = response.status().as_u16();
            (status, response.text().await.unwrap_or_default())
        }
    };
    let (status, page) = get(format!("/sessions/{id}/chats")).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("data-chats-empty"), "{page}");
    let (status, _) = get(format!("/sessions/{id}/chats/15550004545@s.whatsapp.net")).await;
    assert_eq!(status, 404);
    let (status, _) = get(format!("/sessions/{id}/chats?cursor=not-an-id")).await;
    assert_eq!(status, 404);
    gateway.stop().await;
}

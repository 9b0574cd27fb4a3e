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

    // A reply from the box goes out like a message sent through the API.
    browser
        .fill("form[data-reply] #text", "We got your <message>")
        .await;
    browser.click("form[data-reply] button[type=submit]").await;
    browser.find("[data-reply-sent]").await;
    let outgoing = "[data-chat-messages] tr[data-direction='outgoing']";
    browser.find(outgoing).await;
    assert_eq!(
        browser.text(&format!("{outgoing} .message-text")).await,
        "We got your <message>"
    );
    let reached = gateway
        .sim
        .wait_phone_message(STRANGER, std::time::Duration::from_secs(20), |m| {
            m.text.as_deref() == Some("We got your <message>")
        })
        .await;
    assert!(reached.is_some(), "the contact's phone never got the reply");

    browser.close().await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_page_lists_its_messages_and_takes_a_reply() {
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
        .json(&json!({ "label": "Chats" }))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(created.status().as_u16(), 201);
    let body: serde_json::Value = created.json().await.unwrap_or_default();
    let id = body["id"].as_str().unwrap_or_default().to_string();

    let (status, page) =
        get_page(&client, &gateway, &cookie, &format!("/sessions/{id}/chats")).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("data-chats-empty"), "{page}");
    let chat = format!("/sessions/{id}/chats/{STRANGER}@s.whatsapp.net");
    let (status, _) = get_page(&client, &gateway, &cookie, &chat).await;
    assert_eq!(status, 404, "no chat yet");
    let (status, _) = get_page(
        &client,
        &gateway,
        &cookie,
        &format!("/sessions/{id}/chats?cursor=x"),
    )
    .await;
    assert_eq!(status, 404, "not a cursor");

    // A message queued through the API (the session is not linked: it
    // waits in the outbox) makes the chat.
    let sent = client
        .post(gateway.url(&format!("/api/v1/sessions/{id}/messages")))
        .bearer_auth(&gateway.api_token)
        .json(&json!({ "to": STRANGER, "text": { "body": HOSTILE } }))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or_default();
    assert_eq!(sent, 202);
    let (status, page) =
        get_page(&client, &gateway, &cookie, &format!("/sessions/{id}/chats")).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains(&format!(r#"data-chat-id="{STRANGER}@s.whatsapp.net""#)),
        "{page}"
    );
    assert!(!page.contains(HOSTILE), "escaped: {page}");
    let (status, page) = get_page(&client, &gateway, &cookie, &chat).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("&lt;script&gt;"), "shown as text: {page}");
    assert!(!page.contains(HOSTILE), "{page}");

    // The reply box: refused empty, and without the form token; sent
    // otherwise, through the outbox.
    let csrf = input_value(&page, "_csrf");
    let reply = format!("{chat}/reply");
    let (status, page) = post_form(
        &client,
        &gateway,
        &cookie,
        &reply,
        &[("_csrf", &csrf), ("text", "  ")],
    )
    .await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("data-reply-error"), "{page}");
    let (status, _) = post_form(&client, &gateway, &cookie, &reply, &[("text", "hello")]).await;
    assert_ne!(status, 200, "no form token, no reply");
    let (status, _) = post_form(
        &client,
        &gateway,
        &cookie,
        &reply,
        &[("_csrf", &csrf), ("text", "Thanks!")],
    )
    .await;
    assert_eq!(status, 303, "back to the chat's page");
    let (status, page) = get_page(&client, &gateway, &cookie, &format!("{chat}?sent=1")).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("data-reply-sent"), "{page}");
    assert!(page.contains("Thanks!"), "{page}");
    let listed = client
        .get(gateway.url(&format!("/api/v1/sessions/{id}/chats/{STRANGER}/messages")))
        .bearer_auth(&gateway.api_token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let listed: serde_json::Value = listed.json().await.unwrap_or_default();
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(2), "{listed}");
    gateway.stop().await;
}

//! A session's messages on its page. Incoming text is written by anyone
//! who knows the number, so the page must show markup in it as text.

use serde_json::json;

use crate::helpers::*;

/// HTML that would run script if it were ever parsed as markup.
const HOSTILE: &str = r#"<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>"#;
const STRANGER: &str = "15550004444";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strangers_html_shows_as_text_and_never_becomes_markup() {
    let _slot = slot().await;
    let gateway = Gateway::start().await;
    let Some(browser) = Browser::start().await else {
        return;
    };
    browser
        .sign_in(&gateway, &gateway.owner_email, &gateway.owner_password)
        .await;
    let (id, number) = link_in_sandbox(&browser, &gateway, "Inbox").await;
    browser.find("[data-messages] [data-messages-empty]").await;
    browser.find("[data-live-indicator]:not([hidden])").await;
    browser.mark_document().await;

    // A stranger writes to the linked number, straight through WhatsApp.
    gateway
        .sim
        .phone_send_text(STRANGER, &number, HOSTILE)
        .await
        .unwrap_or_else(|e| panic!("the contact sends: {e}"));
    let incoming = "[data-messages] tr[data-direction='incoming']";
    browser.find(incoming).await;
    assert!(browser.same_document().await, "arrived live, no reload");
    assert_eq!(
        browser.text(&format!("{incoming} .message-text")).await,
        HOSTILE,
        "shown as the text it is"
    );
    assert!(
        browser
            .text(&format!("{incoming} .phone"))
            .await
            .contains(STRANGER)
    );
    assert_no_markup_from_the_message(&browser).await;
    browser.screenshot("session-messages-hostile").await;

    // Rendered by the server on a fresh load, too.
    browser.goto(&gateway.url(&format!("/sessions/{id}"))).await;
    assert_eq!(
        browser.text(&format!("{incoming} .message-text")).await,
        HOSTILE
    );
    assert_no_markup_from_the_message(&browser).await;

    // An answer through the API shows as outgoing, with its status.
    let sent = reqwest::Client::new()
        .post(gateway.url(&format!("/api/v1/sessions/{id}/messages")))
        .bearer_auth(&gateway.api_token)
        .json(&json!({ "to": STRANGER, "text": { "body": "We got your <message>" } }))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or_default();
    assert_eq!(sent, 202);
    let outgoing = "[data-messages] tr[data-direction='outgoing']";
    browser
        .find(&format!("{outgoing} [data-message-status]"))
        .await;
    assert_eq!(
        browser.text(&format!("{outgoing} .message-text")).await,
        "We got your <message>"
    );
    // Newest first.
    let first = browser
        .js("return document.querySelector('[data-messages] tbody tr').getAttribute('data-direction');")
        .await;
    assert_eq!(first, json!("outgoing"));
    browser.screenshot("session-messages").await;

    browser.close().await;
    gateway.stop().await;
}

/// The page's content security policy would stop an injected script from
/// running anyway; what proves the escaping is that no element came out
/// of the message at all.
async fn assert_no_markup_from_the_message(browser: &Browser) {
    let xss = browser.js("return typeof window.__xss;").await;
    assert_eq!(xss, json!("undefined"), "no script from the message ran");
    let injected = browser
        .js("return document.querySelectorAll(\
             '[data-messages] img, [data-messages] script, img[src=\"x\"], script:not([src])'\
             ).length;")
        .await;
    assert_eq!(
        injected,
        json!(0),
        "no element from the message is in the DOM"
    );
}

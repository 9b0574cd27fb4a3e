use std::time::{Duration, Instant};

use crate::helpers::*;

/// WhatsApp's first QR ref lasts 60 seconds; the next one replaces it.
const FIRST_QR_LIFETIME: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qr_code_shows_rotates_and_links_live() {
    let _slot = slot().await;
    let started = Instant::now();
    let gateway = Gateway::start().await;
    let Some(browser) = Browser::start().await else {
        return;
    };
    browser
        .sign_in(&gateway, &gateway.owner_email, &gateway.owner_password)
        .await;

    let id = create_session(&browser, &gateway, "Support line").await;
    assert_eq!(browser.path().await, format!("/sessions/{id}"));
    browser.mark_document().await;

    // The QR image appears, loaded, with a countdown.
    browser.find("img[data-qr-image][data-expires-at]").await;
    let first_expiry = browser
        .js("return document.querySelector('img[data-qr-image]').getAttribute('data-expires-at');")
        .await
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| panic!("the QR image carries its expiry"));
    // Once it has loaded (or failed to): finding the element does not wait
    // for its image.
    let loaded = browser
        .js_async(
            "const done = arguments[arguments.length - 1]; \
             const i = document.querySelector('img[data-qr-image]'); \
             if (i.complete) { done(i.naturalWidth > 0); } else { \
               i.addEventListener('load', () => done(i.naturalWidth > 0)); \
               i.addEventListener('error', () => done(false)); }",
        )
        .await;
    assert_eq!(loaded, serde_json::json!(true), "the QR image renders");
    assert!(
        browser
            .text("[data-countdown]")
            .await
            .contains("New code in")
    );
    browser.screenshot("session-qr").await;

    // The code rotates: a new image replaces the first, no reload.
    browser
        .find_within(
            &format!("img[data-qr-image]:not([data-expires-at='{first_expiry}'])"),
            FIRST_QR_LIFETIME,
        )
        .await;
    assert!(browser.same_document().await, "replaced without a reload");

    // A simulated phone scans what the page shows; the page turns working live.
    browser.click("[data-sandbox-scan]").await;
    browser
        .find("[data-live] .badge[data-status='working']")
        .await;
    let phone = browser.text("[data-phone]").await;
    assert!(phone.starts_with("+1555"), "linked number shown: {phone}");
    browser.screenshot("session-working").await;

    // The list shows it, with the number.
    browser.goto(&gateway.url("/sessions")).await;
    let row = format!("tr[data-session-id='{id}']");
    browser
        .find(&format!("{row} .badge[data-status='working']"))
        .await;
    assert!(
        browser
            .text(&format!("{row} .cell-phone"))
            .await
            .starts_with("+1555")
    );
    browser.screenshot("sessions-list").await;

    // Log out asks first, then says what happened and what to do.
    browser
        .click(&format!("tr[data-session-id='{id}'] a"))
        .await;
    browser.click("form[action$='/action/logout'] button").await;
    browser
        .client
        .accept_alert()
        .await
        .unwrap_or_else(|e| panic!("confirm log out: {e}"));
    browser
        .find("[data-live] .badge[data-status='logged_out']")
        .await;
    assert!(browser.text("[data-explain]").await.contains("Start"));
    browser.screenshot("session-logged-out").await;

    // Delete asks first too, and lands on the list without the session.
    browser.click("form[action$='/action/delete'] button").await;
    browser
        .client
        .accept_alert()
        .await
        .unwrap_or_else(|e| panic!("confirm delete: {e}"));
    browser.find("form[action='/sessions']").await;
    assert!(!browser.exists(&row).await, "deleted");

    browser.close().await;
    gateway.stop().await;
    eprintln!(
        "a_qr_code_shows_rotates_and_links_live: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pairing_code_links_and_the_status_moves_live() {
    let _slot = slot().await;
    let gateway = Gateway::start().await;
    let Some(browser) = Browser::start().await else {
        return;
    };
    browser
        .sign_in(&gateway, &gateway.owner_email, &gateway.owner_password)
        .await;
    let id = create_session(&browser, &gateway, "Sales").await;
    browser.find(".badge[data-status='scan_qr_code']").await;

    // A malformed number is refused next to the field.
    browser.fill("#phone", "+62 812").await;
    browser
        .click("form[action$='/pairing-code'] button[type=submit]")
        .await;
    let error = browser.text("#phone-error").await;
    assert!(error.contains("international format"), "{error}");
    browser.screenshot("pairing-invalid-phone").await;

    // A good one gets a code shaped ABCD-1234, shown big with the steps.
    browser.fill("#phone", "15550002222").await;
    browser
        .click("form[action$='/pairing-code'] button[type=submit]")
        .await;
    let code = browser.text("[data-pairing-code]").await;
    let shaped = code.len() == 9
        && code.as_bytes()[4] == b'-'
        && code
            .chars()
            .filter(|c| *c != '-')
            .all(|c| c.is_ascii_alphanumeric());
    assert!(shaped, "pairing code formatted like ABCD-1234: {code:?}");
    assert!(
        browser
            .text(".pairing-result .steps")
            .await
            .contains("Link with phone number instead")
    );
    browser.screenshot("pairing-code").await;
    browser.resize(390, 844).await;
    browser.screenshot("pairing-code-phone-size").await;
    browser.resize(1280, 900).await;

    // The simulated phone types it; the page shows working without a reload.
    browser.mark_document().await;
    browser.click("[data-sandbox-enter-code]").await;
    browser
        .find(&format!(
            "[data-live][data-session-id='{id}'] .badge[data-status='working']"
        ))
        .await;
    assert_eq!(browser.text("[data-phone]").await, "+15550002222");
    browser.screenshot("pairing-working").await;

    // A simulated contact can now write to the linked number.
    browser.click("[data-sandbox-message]").await;
    let notice = browser.text(".alert-success").await;
    assert!(notice.contains("+15550002222"), "{notice}");
    browser.screenshot("sandbox-message").await;

    browser.close().await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sessions_list_follows_a_phone_linking_elsewhere() {
    let _slot = slot().await;
    let gateway = Gateway::start().await;
    let Some(browser) = Browser::start().await else {
        return;
    };
    browser
        .sign_in(&gateway, &gateway.owner_email, &gateway.owner_password)
        .await;
    let id = create_session(&browser, &gateway, "Front desk").await;
    browser.find("img[data-qr-image]").await;
    browser.goto(&gateway.url("/sessions")).await;
    let row = format!("tr[data-session-id='{id}']");
    browser
        .find(&format!("{row} .badge[data-status='scan_qr_code']"))
        .await;
    browser.find("[data-live-indicator]:not([hidden])").await;
    browser.mark_document().await;

    // The phone scans the current code straight through the simulator, as
    // a person holding a phone to another screen would.
    let qr = current_qr(&gateway, &id).await;
    gateway
        .sim
        .scan_qr("15550003333", &qr)
        .unwrap_or_else(|e| panic!("scan: {e}"));
    browser
        .find(&format!("{row} .badge[data-status='working']"))
        .await;
    assert!(browser.same_document().await, "updated without a reload");
    assert_eq!(
        browser.text(&format!("{row} .cell-phone .phone")).await,
        "+15550003333"
    );
    browser.close().await;
    gateway.stop().await;
}

/// The code the gateway shows, read through its API.
async fn current_qr(gateway: &Gateway, id: &str) -> String {
    let response = reqwest::Client::new()
        .get(gateway.url(&format!("/api/v1/sessions/{id}/qr")))
        .bearer_auth(&gateway.api_token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("qr: {e}"));
    let body: serde_json::Value = response
        .json()
        .await
        .unwrap_or_else(|e| panic!("qr body: {e}"));
    body["code"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no code: {body}"))
}

use wagate::Role;
use wagate::accounts;
use wagate::admin;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_manage_tokens_and_members_and_a_member_cannot() {
    let _slot = slot().await;
    let gateway = Gateway::start().await;
    let Some(browser) = Browser::start().await else {
        return;
    };
    browser
        .sign_in(&gateway, &gateway.owner_email, &gateway.owner_password)
        .await;

    // The owner creates a token: shown once, then listed without it.
    browser.click("nav a[href='/tokens']").await;
    browser.fill("#token-name", "CRM integration").await;
    browser
        .click("form[action='/tokens'] button[type=submit]")
        .await;
    let token = browser.text("[data-new-token] [data-secret]").await;
    assert!(token.starts_with("wag_"), "{token}");
    browser.screenshot("tokens-created").await;
    // The token works against the API.
    let status = reqwest::Client::new()
        .get(gateway.url("/api/v1/sessions"))
        .bearer_auth(&token)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or_default();
    assert_eq!(status, 200);
    browser.goto(&gateway.url("/tokens")).await;
    assert!(!browser.exists("[data-new-token]").await, "shown only once");
    // A realtime socket opened with it, which the revocation must close.
    let ws = gateway
        .url(&format!("/api/v1/ws?token={token}"))
        .replacen("http", "ws", 1);
    let (mut socket, _) = tokio_tungstenite::connect_async(ws)
        .await
        .unwrap_or_else(|e| panic!("realtime: {e}"));
    // Revoking asks first and takes effect at once.
    browser.click("form[action$='/revoke'] button").await;
    browser
        .client
        .accept_alert()
        .await
        .unwrap_or_else(|e| panic!("confirm revoke: {e}"));
    browser.find("form[action='/tokens']").await;
    let status = reqwest::Client::new()
        .get(gateway.url("/api/v1/sessions"))
        .bearer_auth(&token)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or_default();
    assert_eq!(status, 401, "revoked");
    let closed = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        use futures::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(frame))) => break frame,
                Some(Ok(_)) => {}
                other => panic!("the socket ended without a close frame: {other:?}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the revoked token's realtime socket stayed open"));
    assert_eq!(
        closed.map(|frame| u16::from(frame.code)),
        Some(wagate::CLOSE_TOKEN_REVOKED)
    );

    // The owner adds a member, whose password is shown once.
    browser.click("nav a[href='/members']").await;
    browser.fill("#member-email", "mia@example.com").await;
    browser
        .click("form[action='/members'] button[type=submit]")
        .await;
    let password = browser.text("[data-secret]").await;
    browser.screenshot("members-added").await;
    browser.sign_out().await;

    // The member signs in: sessions yes, tokens no.
    browser
        .sign_in(&gateway, "mia@example.com", &password)
        .await;
    assert_eq!(browser.path().await, "/sessions");
    assert!(
        !browser.exists("nav a[href='/tokens']").await,
        "no tokens tab"
    );
    assert!(
        !browser.exists("nav a[href='/members']").await,
        "no members tab"
    );
    browser.goto(&gateway.url("/tokens")).await;
    assert!(browser.text("h1").await.contains("Not allowed"));
    browser.screenshot("member-tokens-forbidden").await;
    let forbidden = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
        .get(gateway.url("/tokens"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or_default();
    assert_eq!(forbidden, 303, "signed out: sent to sign in");

    browser.close().await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_of_another_organization_sees_none_of_these_sessions() {
    let _slot = slot().await;
    let gateway = Gateway::start().await;
    let Some(browser) = Browser::start().await else {
        return;
    };
    browser
        .sign_in(&gateway, &gateway.owner_email, &gateway.owner_password)
        .await;
    let id = create_session(&browser, &gateway, "Default org's line").await;
    browser.sign_out().await;

    let store = gateway.store.as_ref();
    admin::create_org(store, "globex")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let other = accounts::create_user(store, "globex", "gus@globex.example", Role::Owner)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let password = other
        .password
        .map(|p| p.expose().clone())
        .unwrap_or_else(|| panic!("new account"));

    browser
        .sign_in(&gateway, "gus@globex.example", &password)
        .await;
    browser.find("[data-empty]").await;
    assert!(!browser.exists("tr[data-session-id]").await);
    browser.screenshot("other-org-empty").await;
    browser.goto(&gateway.url(&format!("/sessions/{id}"))).await;
    assert_eq!(browser.text("h1").await, "Not found");
    browser
        .goto(&gateway.url(&format!("/sessions/{id}/qr.svg")))
        .await;
    assert!(
        !browser.exists("svg").await,
        "no QR code of another organization"
    );
    browser.close().await;
    gateway.stop().await;
}

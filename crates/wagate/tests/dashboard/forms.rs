use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_and_forms_say_what_is_wrong_next_to_the_field() {
    let _slot = slot().await;
    let gateway = Gateway::start().await;
    let Some(browser) = Browser::start().await else {
        return;
    };

    // Signed out, every page leads to the sign-in form.
    browser.goto(&gateway.url("/sessions")).await;
    browser.find("form[action='/login']").await;
    assert_eq!(browser.path().await, "/login");

    // A wrong password.
    browser.fill("#email", &gateway.owner_email).await;
    browser.fill("#password", "not-the-password").await;
    browser.click("form[action='/login'] button").await;
    assert_eq!(
        browser.text("#password-error").await,
        "Wrong email or password."
    );
    browser.screenshot("sign-in-wrong-password").await;

    // A malformed email.
    browser.fill("#email", "not an email").await;
    browser.fill("#password", "whatever").await;
    browser.click("form[action='/login'] button").await;
    assert!(browser.text("#email-error").await.contains("email address"));

    browser
        .sign_in(&gateway, &gateway.owner_email, &gateway.owner_password)
        .await;
    assert_eq!(browser.path().await, "/sessions");
    browser.screenshot("sessions-empty").await;

    // A label over 100 characters.
    browser.fill("#label", &"x".repeat(101)).await;
    browser
        .click("form[action='/sessions'] button[type=submit]")
        .await;
    let error = browser.text("#label-error").await;
    assert!(error.contains("100 characters"), "{error}");
    assert!(
        !browser.exists("tr[data-session-id]").await,
        "nothing created"
    );
    browser.screenshot("session-label-too-long").await;

    // A malformed member email.
    browser.goto(&gateway.url("/members")).await;
    browser.fill("#member-email", "mia-at-example").await;
    browser
        .click("form[action='/members'] button[type=submit]")
        .await;
    assert!(
        browser
            .text("#member-email-error")
            .await
            .contains("email address")
    );

    // A token without a name.
    browser.goto(&gateway.url("/tokens")).await;
    browser
        .click("form[action='/tokens'] button[type=submit]")
        .await;
    assert!(browser.text("#token-name-error").await.contains("name"));

    browser.close().await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_wrong_passwords_lock_the_email_for_a_while() {
    let gateway = Gateway::start().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let response = post_login(&client, &gateway, "wrong").await;
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429]);
    gateway.stop().await;
}

/// Signs in like a browser would; returns the session cookie (`name=value`).
async fn sign_in_http(client: &reqwest::Client, gateway: &Gateway) -> String {
    let response = post_login(client, gateway, &gateway.owner_password).await;
    assert_eq!(response.status().as_u16(), 303);
    let header = set_cookie_header(&response, "wagate_session");
    assert!(
        header.contains("HttpOnly") && header.contains("SameSite=Lax"),
        "{header}"
    );
    assert!(!header.contains("Secure"), "plain http: not Secure");
    set_cookie(&response, "wagate_session")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_without_the_csrf_token_are_refused() {
    let gateway = Gateway::start().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let session = sign_in_http(&client, &gateway).await;

    let forged = client
        .post(gateway.url("/sessions"))
        .header("cookie", &session)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("label=forged")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(forged.status().as_u16(), 403);
    let sessions = client
        .get(gateway.url("/api/v1/sessions"))
        .bearer_auth(&gateway.api_token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let body: serde_json::Value = sessions.json().await.unwrap_or_default();
    assert_eq!(body["data"].as_array().map(Vec::len), Some(0), "{body}");

    // The realtime socket refuses a page of another origin.
    let cross_site = client
        .get(gateway.url("/ui/events"))
        .header("cookie", &session)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cross_site.status().as_u16(), 403);
    gateway.stop().await;
}

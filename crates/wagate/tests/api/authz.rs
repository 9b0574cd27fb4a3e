//! The authorization matrix: every REST endpoint, the realtime socket and
//! every dashboard route, called with each kind of wrong credentials; each
//! cell names the exact answer. The REST table must cover every operation
//! of the OpenAPI document, so a new endpoint cannot skip it.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};
use wagate::accounts;
use wagate::admin;
use wagate::{Email, Role};
use wagate::{SESSION_COOKIE, hash_cookie, start_session};

use crate::helpers::{Response, TestApp};

/// Whose resource an endpoint acts on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// One of the organization's sessions, messages, webhooks: another
    /// organization's token must find nothing.
    Resource,
    /// The organization's own collection: any valid token is served its
    /// own (the other organization's view is checked elsewhere).
    Collection,
}

/// One REST operation, as the OpenAPI document names it.
struct Rest {
    method: Method,
    path: &'static str,
    body: Option<Value>,
    scope: Scope,
}

fn rest(method: Method, path: &'static str, body: Option<Value>, scope: Scope) -> Rest {
    Rest {
        method,
        path,
        body,
        scope,
    }
}

/// Every REST operation, with a body that passes validation (so the
/// credentials are what decides the answer).
fn rest_table() -> Vec<Rest> {
    use Scope::{Collection, Resource};
    let text = json!({ "to": "15550001111", "text": { "body": "hello" } });
    let hook = json!({ "url": "https://93.184.215.14/hooks/wagate" });
    vec![
        rest(
            Method::POST,
            "/sessions",
            Some(json!({ "start": false })),
            Collection,
        ),
        rest(Method::GET, "/sessions", None, Collection),
        rest(Method::GET, "/sessions/{id}", None, Resource),
        rest(
            Method::PATCH,
            "/sessions/{id}",
            Some(json!({ "label": "x" })),
            Resource,
        ),
        rest(Method::DELETE, "/sessions/{id}", None, Resource),
        rest(Method::POST, "/sessions/{id}/start", None, Resource),
        rest(Method::POST, "/sessions/{id}/stop", None, Resource),
        rest(Method::POST, "/sessions/{id}/restart", None, Resource),
        rest(Method::POST, "/sessions/{id}/logout", None, Resource),
        rest(Method::GET, "/sessions/{id}/qr", None, Resource),
        rest(
            Method::POST,
            "/sessions/{id}/pairing-code",
            Some(json!({ "phone": "628123456789" })),
            Resource,
        ),
        rest(
            Method::POST,
            "/sessions/{id}/messages",
            Some(text),
            Resource,
        ),
        rest(Method::GET, "/sessions/{id}/messages", None, Resource),
        rest(
            Method::GET,
            "/sessions/{id}/messages/{message_id}",
            None,
            Resource,
        ),
        rest(
            Method::DELETE,
            "/sessions/{id}/messages/{message_id}",
            None,
            Resource,
        ),
        rest(
            Method::POST,
            "/sessions/{id}/messages/{message_id}/edit",
            Some(json!({ "text": "edited" })),
            Resource,
        ),
        rest(
            Method::GET,
            "/sessions/{id}/messages/{message_id}/media",
            None,
            Resource,
        ),
        rest(
            Method::POST,
            "/sessions/{id}/chats/{chat}/read",
            Some(json!({ "message_ids": ["3EB0AAAA"] })),
            Resource,
        ),
        rest(
            Method::POST,
            "/sessions/{id}/chats/{chat}/typing",
            Some(json!({ "state": "composing" })),
            Resource,
        ),
        rest(
            Method::POST,
            "/sessions/{id}/chats/{chat}/archive",
            None,
            Resource,
        ),
        rest(
            Method::POST,
            "/sessions/{id}/chats/{chat}/unarchive",
            None,
            Resource,
        ),
        rest(
            Method::POST,
            "/sessions/{id}/chats/{chat}/pin",
            None,
            Resource,
        ),
        rest(
            Method::POST,
            "/sessions/{id}/chats/{chat}/unpin",
            None,
            Resource,
        ),
        rest(
            Method::POST,
            "/sessions/{id}/chats/{chat}/mute",
            Some(json!({ "until": null })),
            Resource,
        ),
        rest(
            Method::POST,
            "/sessions/{id}/chats/{chat}/unmute",
            None,
            Resource,
        ),
        rest(
            Method::POST,
            "/sessions/{id}/chats/{chat}/history",
            Some(json!({ "count": 10 })),
            Resource,
        ),
        rest(
            Method::POST,
            "/sessions/{id}/presence",
            Some(json!({ "state": "unavailable" })),
            Resource,
        ),
        rest(Method::GET, "/sessions/{id}/chats", None, Resource),
        rest(
            Method::GET,
            "/sessions/{id}/chats/{chat}/messages",
            None,
            Resource,
        ),
        rest(Method::GET, "/sessions/{id}/lids/{lid}", None, Resource),
        rest(Method::GET, "/sessions/{id}/lids", None, Resource),
        rest(
            Method::POST,
            "/sessions/{id}/calls/{call}/reject",
            None,
            Resource,
        ),
        rest(
            Method::POST,
            "/sessions/{id}/contacts/{contact}/presence/subscribe",
            None,
            Resource,
        ),
        rest(
            Method::POST,
            "/sessions/{id}/contacts/{contact}/presence/unsubscribe",
            None,
            Resource,
        ),
        rest(
            Method::POST,
            "/sessions/{id}/contacts/check",
            Some(json!({ "phones": ["15550001111"] })),
            Resource,
        ),
        rest(Method::GET, "/sessions/{id}/contacts", None, Resource),
        rest(
            Method::GET,
            "/sessions/{id}/contacts/{contact}",
            None,
            Resource,
        ),
        rest(
            Method::GET,
            "/sessions/{id}/contacts/{contact}/picture",
            None,
            Resource,
        ),
        rest(
            Method::POST,
            "/sessions/{id}/contacts/{contact}/block",
            None,
            Resource,
        ),
        rest(
            Method::POST,
            "/sessions/{id}/contacts/{contact}/unblock",
            None,
            Resource,
        ),
        rest(
            Method::POST,
            "/sessions/{id}/groups",
            Some(json!({ "subject": "Team" })),
            Resource,
        ),
        rest(Method::GET, "/sessions/{id}/groups", None, Resource),
        rest(Method::GET, "/sessions/{id}/groups/{group}", None, Resource),
        rest(
            Method::PATCH,
            "/sessions/{id}/groups/{group}",
            Some(json!({ "subject": "Team" })),
            Resource,
        ),
        rest(
            Method::POST,
            "/sessions/{id}/groups/{group}/participants",
            Some(json!({ "add": ["15550001111"] })),
            Resource,
        ),
        rest(
            Method::GET,
            "/sessions/{id}/groups/{group}/invite",
            None,
            Resource,
        ),
        rest(
            Method::POST,
            "/sessions/{id}/groups/{group}/invite/reset",
            None,
            Resource,
        ),
        rest(
            Method::POST,
            "/sessions/{id}/groups/join",
            Some(json!({ "code": "AbCdEf" })),
            Resource,
        ),
        rest(
            Method::GET,
            "/sessions/{id}/groups/invite/{code}",
            None,
            Resource,
        ),
        rest(
            Method::POST,
            "/sessions/{id}/groups/{group}/leave",
            None,
            Resource,
        ),
        rest(
            Method::PUT,
            "/sessions/{id}/groups/{group}/picture",
            None,
            Resource,
        ),
        rest(
            Method::DELETE,
            "/sessions/{id}/groups/{group}/picture",
            None,
            Resource,
        ),
        rest(
            Method::GET,
            "/sessions/{id}/groups/{group}/requests",
            None,
            Resource,
        ),
        rest(
            Method::POST,
            "/sessions/{id}/groups/{group}/requests/approve",
            Some(json!({ "participants": ["15550001111"] })),
            Resource,
        ),
        rest(
            Method::POST,
            "/sessions/{id}/groups/{group}/requests/reject",
            Some(json!({ "participants": ["15550001111"] })),
            Resource,
        ),
        // The socket, named by a session of the first organization.
        rest(Method::GET, "/ws", None, Resource),
        rest(Method::POST, "/webhooks", Some(hook), Collection),
        rest(Method::GET, "/webhooks", None, Collection),
        rest(Method::GET, "/webhooks/{id}", None, Resource),
        rest(
            Method::PATCH,
            "/webhooks/{id}",
            Some(json!({ "enabled": false })),
            Resource,
        ),
        rest(Method::DELETE, "/webhooks/{id}", None, Resource),
        rest(
            Method::POST,
            "/webhooks/{id}/rotate-secret",
            Some(json!({})),
            Resource,
        ),
        rest(Method::GET, "/webhooks/{id}/deliveries", None, Resource),
        rest(Method::POST, "/webhooks/{id}/test", None, Resource),
        rest(
            Method::POST,
            "/webhooks/{id}/deliveries/retry",
            Some(json!({ "since": "2026-01-01T00:00:00Z" })),
            Resource,
        ),
        rest(
            Method::POST,
            "/webhooks/{id}/deliveries/{delivery_id}/retry",
            None,
            Resource,
        ),
    ]
}

/// The first organization's resources that the paths name.
struct Owned {
    session: String,
    message: String,
    webhook: String,
    delivery: String,
}

impl Owned {
    fn uri(&self, path: &str) -> String {
        let id = if path.starts_with("/webhooks") {
            &self.webhook
        } else {
            &self.session
        };
        let filled = path
            .replace("{id}", id)
            .replace("{message_id}", &self.message)
            .replace("{delivery_id}", &self.delivery)
            .replace("{chat}", "15550001111")
            .replace("{group}", "120363000000000001@g.us")
            .replace("{code}", "AbCdEf")
            .replace("{lid}", "123456789012345@lid")
            .replace("{contact}", "15550001111")
            .replace("{call}", "8D3F6A1B2C4E5F60718293A4B5C6D7E8");
        if path == "/ws" {
            format!("/api/v1/ws?session_id={}", self.session)
        } else if path.ends_with("/lids") {
            // Its one query parameter is required.
            format!("/api/v1{filled}?phone=15550001111")
        } else {
            format!("/api/v1{filled}")
        }
    }
}

async fn owned_resources(app: &TestApp) -> Owned {
    let created = |response: Response| -> String {
        assert!(response.status.is_success(), "{}", response.json());
        response.json()["id"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no id: {}", response.json()))
    };
    let webhook = created(
        app.call(
            Method::POST,
            "/api/v1/webhooks",
            Some(json!({ "url": "https://93.184.215.14/hooks/wagate" })),
        )
        .await,
    );
    // Started against a server that is not there: it keeps retrying, and
    // accepts messages meanwhile.
    let session = created(
        app.call(Method::POST, "/api/v1/sessions", Some(json!({})))
            .await,
    );
    let message = created(
        app.call(
            Method::POST,
            &format!("/api/v1/sessions/{session}/messages"),
            Some(json!({ "to": "15550001111", "text": { "body": "hi" } })),
        )
        .await,
    );
    let deliveries = app
        .call(
            Method::GET,
            &format!("/api/v1/webhooks/{webhook}/deliveries"),
            None,
        )
        .await;
    let delivery = deliveries.json()["data"][0]["id"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no delivery: {}", deliveries.json()));
    Owned {
        session,
        message,
        webhook,
        delivery,
    }
}

fn request(method: &Method, uri: &str, auth: Option<&str>, body: Option<&Value>) -> Request<Body> {
    let mut builder = Request::builder().method(method.clone()).uri(uri);
    if let Some(auth) = auth {
        builder = builder.header(header::AUTHORIZATION, auth);
    }
    let body = match body {
        Some(body) => {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
            Body::from(body.to_string())
        }
        None => Body::empty(),
    };
    builder.body(body).unwrap_or_else(|e| panic!("{e}"))
}

/// Every operation of the OpenAPI document, as `METHOD /path`.
async fn documented_operations(app: &TestApp) -> BTreeSet<String> {
    let spec = app
        .send(request(&Method::GET, "/api/v1/openapi.json", None, None))
        .await
        .json();
    let Some(paths) = spec["paths"].as_object() else {
        panic!("no paths in the OpenAPI document");
    };
    paths
        .iter()
        .flat_map(|(path, operations)| {
            operations
                .as_object()
                .into_iter()
                .flat_map(|ops| ops.keys())
                .map(move |method| format!("{} {path}", method.to_uppercase()))
        })
        .collect()
}

#[tokio::test]
async fn the_rest_table_covers_every_documented_operation() {
    let app = TestApp::spawn().await;
    let documented = documented_operations(&app).await;
    let tabled: BTreeSet<String> = rest_table()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        documented, tabled,
        "every documented operation must be in the authorization table, and only those"
    );
}

#[tokio::test]
async fn every_rest_endpoint_refuses_wrong_credentials() {
    let app = TestApp::spawn().await;
    let owned = owned_resources(&app).await;
    let revoked = admin::create_token(app.store.as_ref(), "default")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    admin::revoke_token(app.store.as_ref(), revoked.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let revoked = format!("Bearer {}", revoked.token.plaintext().expose());
    let intruder = format!("Bearer {}", app.other_org_token().await);

    for row in rest_table() {
        let uri = owned.uri(row.path);
        let body = row.body.as_ref();
        let what = format!("{} {uri}", row.method);
        let cells: [(&str, Option<&str>, StatusCode, &str); 4] = [
            (
                "no credentials",
                None,
                StatusCode::UNAUTHORIZED,
                "missing_token",
            ),
            (
                "a malformed token",
                Some("Bearer wag_!!not*a*token"),
                StatusCode::UNAUTHORIZED,
                "invalid_token",
            ),
            (
                "a revoked token",
                Some(&revoked),
                StatusCode::UNAUTHORIZED,
                "invalid_token",
            ),
            (
                "another organization's token",
                Some(&intruder),
                StatusCode::NOT_FOUND,
                "",
            ),
        ];
        for (cell, auth, status, code) in cells {
            if status == StatusCode::NOT_FOUND && row.scope == Scope::Collection {
                continue;
            }
            let response = app.send(request(&row.method, &uri, auth, body)).await;
            assert_eq!(response.status, status, "{what} with {cell}");
            let answered = response.json()["error"]["code"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if code.is_empty() {
                assert!(
                    answered.ends_with("_not_found"),
                    "{what} with {cell}: {answered}"
                );
            } else {
                assert_eq!(answered, code, "{what} with {cell}");
            }
        }
    }
    // The socket also takes its token in the query string.
    let ws = format!(
        "/api/v1/ws?token=wag_!!not*a*token&session_id={}",
        owned.session
    );
    app.send(request(&Method::GET, &ws, None, None))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_token");

    // Nothing of the first organization moved.
    let session = app
        .call(
            Method::GET,
            &format!("/api/v1/sessions/{}", owned.session),
            None,
        )
        .await;
    assert_eq!(session.status, StatusCode::OK);
    assert_eq!(session.json()["label"], Value::Null);
    let webhook = app
        .call(
            Method::GET,
            &format!("/api/v1/webhooks/{}", owned.webhook),
            None,
        )
        .await;
    assert_eq!(webhook.json()["enabled"], true);
}

/// A dashboard route and what a signed-in user of the first organization
/// may need to reach it.
struct Page {
    method: Method,
    path: String,
    /// Only owners and admins may use it: a member gets 403.
    managers_only: bool,
    /// Names one of the organization's sessions: a user of another
    /// organization gets 404.
    resource: bool,
}

fn dashboard_table(session: &str, token: &str) -> Vec<Page> {
    let page = |method: Method, path: String, managers_only: bool, resource: bool| Page {
        method,
        path,
        managers_only,
        resource,
    };
    let s = format!("/sessions/{session}");
    let mut pages = vec![
        page(Method::POST, "/logout".into(), false, false),
        page(Method::POST, "/org".into(), false, false),
        page(Method::GET, "/sessions".into(), false, false),
        page(Method::POST, "/sessions".into(), false, false),
        page(Method::GET, s.clone(), false, true),
        page(Method::POST, format!("{s}/action/stop"), false, true),
        page(Method::POST, format!("{s}/pairing-code"), false, true),
        page(Method::GET, format!("{s}/live"), false, true),
        page(Method::GET, format!("{s}/row"), false, true),
        page(Method::GET, format!("{s}/qr.svg"), false, true),
        page(Method::GET, "/ui/events".into(), false, false),
        page(Method::GET, "/tokens".into(), true, false),
        page(Method::POST, "/tokens".into(), true, false),
        page(Method::POST, format!("/tokens/{token}/revoke"), true, false),
        page(Method::GET, "/members".into(), true, false),
        page(Method::POST, "/members".into(), true, false),
    ];
    if cfg!(feature = "sandbox") {
        for action in ["scan", "enter-code", "message"] {
            pages.push(page(
                Method::POST,
                format!("{s}/sandbox/{action}"),
                false,
                true,
            ));
        }
    }
    pages
}

/// A browser request: the cookie, and for a form its CSRF field.
fn browser(method: &Method, uri: &str, cookie: Option<&str>, csrf: &str) -> Request<Body> {
    let mut builder = Request::builder().method(method.clone()).uri(uri);
    if let Some(cookie) = cookie {
        builder = builder.header(header::COOKIE, format!("{SESSION_COOKIE}={cookie}"));
    }
    let body = if method == Method::POST {
        builder = builder.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        Body::from(format!(
            "_csrf={csrf}&label=x&phone=628123456789&email=new%40example.com&role=member&name=x"
        ))
    } else {
        Body::empty()
    };
    builder.body(body).unwrap_or_else(|e| panic!("{e}"))
}

/// Signs `email` in (as the sign-in form would, minus the password): the
/// cookie and the CSRF token of the new browser session.
async fn signed_in(app: &TestApp, org: &str, email: &str, role: Role) -> (String, String) {
    let issued = accounts::create_user(app.store.as_ref(), org, email, role)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let users = app.store.users();
    let email = Email::try_from(email).unwrap_or_else(|e| panic!("{e}"));
    let user = users
        .find_user(&email)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no user"));
    let cookie = start_session(app.store.as_ref(), user.id, issued.org.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let csrf = users
        .find_web_session(&hash_cookie(&cookie))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no web session"))
        .csrf_token;
    (cookie, csrf)
}

fn location(response: &axum::response::Response) -> Option<&str> {
    response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn every_dashboard_route_refuses_wrong_credentials() {
    let app = TestApp::spawn().await;
    let session = app.stopped_session().await;
    let token = admin::create_token(app.store.as_ref(), "default")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let _ = app.other_org_token().await;
    let (member, member_csrf) =
        signed_in(&app, "default", "member@example.com", Role::Member).await;
    let (outsider, outsider_csrf) =
        signed_in(&app, "other", "owner@other.example", Role::Owner).await;
    // Signed out: the cookie is still sent, its session is gone.
    let (revoked, _) = signed_in(&app, "default", "gone@example.com", Role::Admin).await;
    app.store
        .users()
        .delete_web_session(&hash_cookie(&revoked))
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let mut checked = 0;
    for page in dashboard_table(&session, &token.id.to_string()) {
        let what = format!("{} {}", page.method, page.path);
        // Not signed in, however: the sign-in page, never the page itself.
        for (cell, cookie) in [
            ("no cookie", None),
            ("a malformed cookie", Some("%%not a session%%")),
            ("a signed-out cookie", Some(revoked.as_str())),
        ] {
            let response = app
                .router
                .clone()
                .oneshot_checked(browser(&page.method, &page.path, cookie, ""))
                .await;
            assert_eq!(
                response.status(),
                StatusCode::SEE_OTHER,
                "{what} with {cell}"
            );
            assert_eq!(location(&response), Some("/login"), "{what} with {cell}");
            checked += 1;
        }
        // Signed in, but not allowed: the cell applies where the page is
        // one of the organization's sessions, or for managers only.
        let signed_in = [
            (
                page.resource,
                &outsider,
                &outsider_csrf,
                StatusCode::NOT_FOUND,
                "another organization's user",
            ),
            (
                page.managers_only,
                &member,
                &member_csrf,
                StatusCode::FORBIDDEN,
                "a member",
            ),
        ];
        for (applies, cookie, csrf, status, who) in signed_in {
            if !applies {
                continue;
            }
            let response = app
                .router
                .clone()
                .oneshot_checked(browser(&page.method, &page.path, Some(cookie), csrf))
                .await;
            assert_eq!(response.status(), status, "{what} by {who}");
            checked += 1;
        }
    }
    assert!(checked > 50, "{checked} cells");
    // The member changed nothing a manager owns.
    let tokens = app.store.users().list_tokens(
        app.store
            .orgs()
            .find_org("default")
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no org"))
            .id,
    );
    let tokens = tokens.await.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        tokens.iter().all(|t| t.revoked_at.is_none()),
        "a member revoked a token"
    );
    let own = app
        .call(Method::GET, &format!("/api/v1/sessions/{session}"), None)
        .await;
    assert_eq!(own.json()["status"], "stopped");
}

/// `oneshot` that also holds the gateway to "never a 5xx".
trait OneshotChecked {
    async fn oneshot_checked(self, request: Request<Body>) -> axum::response::Response;
}

impl OneshotChecked for axum::Router {
    async fn oneshot_checked(self, request: Request<Body>) -> axum::response::Response {
        use tower::ServiceExt;
        let response = self.oneshot(request).await.unwrap_or_else(|e| match e {});
        assert!(
            !response.status().is_server_error(),
            "{}",
            response.status()
        );
        assert_ne!(response.status(), StatusCode::OK);
        response
    }
}

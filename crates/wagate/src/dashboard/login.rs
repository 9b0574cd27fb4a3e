//! Sign in, sign out, and switching the organization being viewed.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{AppendHeaders, IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::auth::{
    CurrentUser, SESSION_COOKIE, SESSION_TTL, cookie, is_https, random_token, set_cookie,
    start_session,
};
use super::csrf::{CsrfForm, NoFields, parse_form, same};
use super::error::DashError;
use super::html::{Frame, Nav, described_by, field_error, page};
use super::password;
use crate::app::AppState;
use crate::domain::{Email, OrgId};

/// The sign-in form's CSRF token, before there is a session to hold one:
/// the same random value in a cookie and in the form (double submit).
const LOGIN_COOKIE: &str = "wagate_login";

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct LoginForm {
    email: String,
    password: String,
    #[serde(rename = "_csrf")]
    csrf: String,
}

#[derive(Default)]
struct Errors<'a> {
    form: Option<&'a str>,
    email: Option<&'a str>,
    password: Option<String>,
}

fn render(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    email: &str,
    errors: &Errors<'_>,
) -> Response {
    let token = random_token();
    let password_error = errors.password.as_deref();
    let body = html! {
        section.card.narrow.login {
            h1 { "Sign in" }
            p.muted { "Manage your WhatsApp sessions." }
            @if let Some(error) = errors.form {
                div.alert.alert-error role="alert" { (error) }
            }
            form method="post" action="/login" novalidate {
                input type="hidden" name="_csrf" value=(token);
                div.field {
                    label for="email" { "Email" }
                    input #email name="email" type="email" autocomplete="username" required
                        value=(email)
                        aria-invalid=[errors.email.map(|_| "true")]
                        aria-describedby=[described_by(errors.email, "email")];
                    (field_error(errors.email, "email"))
                }
                div.field {
                    label for="password" { "Password" }
                    input #password name="password" type="password"
                        autocomplete="current-password" required
                        aria-invalid=[password_error.map(|_| "true")]
                        aria-describedby=[described_by(password_error, "password")];
                    (field_error(password_error, "password"))
                }
                button.button.primary.wide type="submit" { "Sign in" }
            }
        }
    };
    let frame = Frame {
        title: "Sign in",
        nav: Nav::None,
        user: None,
        sandbox: state.dashboard.is_sandbox(),
    };
    (
        status,
        [set_cookie(
            LOGIN_COOKIE,
            &token,
            "/login",
            3600,
            "Strict",
            is_https(headers),
        )],
        page(&frame, body),
    )
        .into_response()
}

pub(super) async fn form(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, DashError> {
    if CurrentUser::load(state.store.as_ref(), &headers)
        .await?
        .is_some()
    {
        return Ok(Redirect::to("/sessions").into_response());
    }
    Ok(render(
        &state,
        &headers,
        StatusCode::OK,
        "",
        &Errors::default(),
    ))
}

pub(super) async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, DashError> {
    let form = parse_form::<LoginForm>(&body)
        .map(|(_, form)| form)
        .unwrap_or_default();
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or("");
    if expected.is_empty() || !same(&form.csrf, expected) {
        let errors = Errors {
            form: Some("The sign-in form expired. Please try again."),
            ..Errors::default()
        };
        return Ok(render(
            &state,
            &headers,
            StatusCode::FORBIDDEN,
            &form.email,
            &errors,
        ));
    }
    let Ok(email) = Email::try_from(form.email.as_str()) else {
        let errors = Errors {
            email: Some("Enter an email address like name@example.com."),
            ..Errors::default()
        };
        return Ok(render(
            &state,
            &headers,
            StatusCode::UNPROCESSABLE_ENTITY,
            &form.email,
            &errors,
        ));
    };
    let limiter = state.dashboard.limiter();
    if let Some(wait) = limiter.locked_for(email.as_str()) {
        let minutes = wait.as_secs().div_ceil(60);
        let errors = Errors {
            password: Some(format!(
                "Too many wrong passwords for this email. Try again in {minutes} minute{}.",
                if minutes == 1 { "" } else { "s" }
            )),
            ..Errors::default()
        };
        return Ok(render(
            &state,
            &headers,
            StatusCode::TOO_MANY_REQUESTS,
            email.as_str(),
            &errors,
        ));
    }

    let user = state.store.users().find_user(&email).await?;
    let presented = form.password;
    // argon2 is deliberately slow: keep it off the async workers.
    let verified = {
        let stored = user.as_ref().map(|u| u.password_hash.clone());
        tokio::task::spawn_blocking(move || match stored {
            Some(stored) => password::verify(&presented, &stored),
            None => {
                password::verify_dummy(&presented);
                false
            }
        })
        .await
        .map_err(|e| DashError::Internal(e.to_string()))?
    };
    let user = match user {
        Some(user) if verified => user,
        _ => {
            limiter.record_failure(email.as_str());
            let errors = Errors {
                password: Some("Wrong email or password.".into()),
                ..Errors::default()
            };
            return Ok(render(
                &state,
                &headers,
                StatusCode::UNAUTHORIZED,
                email.as_str(),
                &errors,
            ));
        }
    };
    limiter.record_success(email.as_str());
    let memberships = state.store.users().memberships(user.id).await?;
    let Some(first) = memberships.first() else {
        let errors = Errors {
            form: Some(
                "This account is not a member of any organization. Ask an owner or admin to add you.",
            ),
            ..Errors::default()
        };
        return Ok(render(
            &state,
            &headers,
            StatusCode::FORBIDDEN,
            email.as_str(),
            &errors,
        ));
    };
    let value = start_session(state.store.as_ref(), user.id, first.org.id).await?;
    let secure = is_https(&headers);
    tracing::info!(user_id = %user.id, "dashboard sign-in");
    // Appended, not inserted: both are `Set-Cookie`.
    Ok((
        AppendHeaders([
            set_cookie(
                SESSION_COOKIE,
                &value,
                "/",
                SESSION_TTL.num_seconds(),
                "Lax",
                secure,
            ),
            set_cookie(LOGIN_COOKIE, "", "/login", 0, "Strict", secure),
        ]),
        Redirect::to("/sessions"),
    )
        .into_response())
}

pub(super) async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    CsrfForm { user, .. }: CsrfForm<NoFields>,
) -> Result<Response, DashError> {
    state
        .store
        .users()
        .delete_web_session(user.session_hash())
        .await?;
    Ok((
        [set_cookie(
            SESSION_COOKIE,
            "",
            "/",
            0,
            "Lax",
            is_https(&headers),
        )],
        Redirect::to("/login"),
    )
        .into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct SwitchOrg {
    org_id: String,
}

pub(super) async fn switch_org(
    State(state): State<AppState>,
    CsrfForm { user, form }: CsrfForm<SwitchOrg>,
) -> Result<Response, DashError> {
    let org: OrgId = form.org_id.parse().map_err(|_| DashError::NotFound)?;
    if !user.memberships().iter().any(|m| m.org.id == org) {
        return Err(DashError::NotFound);
    }
    state
        .store
        .users()
        .set_web_session_org(user.session_hash(), org)
        .await?;
    Ok(Redirect::to("/sessions").into_response())
}

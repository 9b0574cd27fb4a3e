//! Members of the current organization, and adding people to it. Owners
//! and admins only; nobody grants a role above their own.

use std::fmt::Write;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::accounts::{AccountError, IssuedUser, add_user};
use super::auth::Manager;
use super::csrf::CsrfForm;
use super::error::DashError;
use super::html::{Frame, Nav, csrf_field, esc, field_error, invalid_attrs, page};
use super::view::time;
use crate::app::AppState;
use crate::domain::{Email, Role};

#[derive(Default)]
struct View<'a> {
    email: &'a str,
    role: Option<Role>,
    email_error: Option<&'a str>,
    role_error: Option<&'a str>,
    added: Option<&'a IssuedUser>,
}

async fn render(
    state: &AppState,
    Manager(user): &Manager,
    status: StatusCode,
    view: &View<'_>,
) -> Result<Response, DashError> {
    let members = state.store.users().members(user.org().id).await?;
    let mut rows = String::new();
    for member in &members {
        let you = if member.user_id == user.id() {
            r#" <span class="muted small">(you)</span>"#
        } else {
            ""
        };
        let _ = write!(
            rows,
            r#"<tr><td>{email}{you}</td><td><span class="role role-{role}">{role}</span></td><td>{since}</td></tr>"#,
            email = esc(member.email.as_str()),
            role = member.role,
            since = time(member.since),
        );
    }
    let mut options = String::new();
    let chosen = view.role.unwrap_or(Role::Member);
    for role in Role::ALL.into_iter().filter(|r| user.role().can_grant(*r)) {
        let selected = if role == chosen { " selected" } else { "" };
        let _ = write!(
            options,
            r#"<option value="{role}"{selected}>{role}</option>"#
        );
    }
    let added = view
        .added
        .map(|added| match &added.password {
            Some(password) => format!(
                r#"<div class="alert alert-success secret-once" role="status"><p><strong>{email} can now sign in as {role}.</strong> Give them this password — it is not shown again:</p><code class="secret" data-secret>{password}</code></div>"#,
                email = esc(added.email.as_str()),
                role = added.role,
                password = esc(password.expose()),
            ),
            None => format!(
                r#"<div class="alert alert-success" role="status"><strong>{email}</strong> already had an account and was added as {role}; they sign in with their existing password.</div>"#,
                email = esc(added.email.as_str()),
                role = added.role,
            ),
        })
        .unwrap_or_default();
    let body = format!(
        r#"<div class="page-head"><div><h1>Members</h1><p class="muted">People who can sign in to <strong>{org}</strong>. Owners and admins manage members and API tokens; members work with sessions.</p></div></div>
{added}
<section class="card">
<form method="post" action="/members" class="create-form" novalidate>
{csrf}
<div class="field grow">
<label for="member-email">Email</label>
<input id="member-email" name="email" type="email" placeholder="name@example.com" value="{email}"{email_attrs}>
{email_error}
</div>
<div class="field">
<label for="member-role">Role</label>
<select id="member-role" name="role"{role_attrs}>{options}</select>
{role_error}
</div>
<button type="submit" class="button primary">Add member</button>
</form>
</section>
<section class="card flush">
<div class="table-wrap"><table>
<thead><tr><th>Email</th><th>Role</th><th>Member since</th></tr></thead>
<tbody>{rows}</tbody>
</table></div>
</section>"#,
        org = esc(&user.org().name),
        csrf = csrf_field(user),
        email = esc(view.email),
        email_attrs = invalid_attrs(view.email_error, "member-email"),
        email_error = field_error(view.email_error, "member-email"),
        role_attrs = invalid_attrs(view.role_error, "member-role"),
        role_error = field_error(view.role_error, "member-role"),
    );
    let frame = Frame {
        title: "Members",
        nav: Nav::Members,
        user: Some(user),
        sandbox: state.dashboard.is_sandbox(),
    };
    Ok((status, page(&frame, &body)).into_response())
}

pub async fn list(State(state): State<AppState>, manager: Manager) -> Result<Response, DashError> {
    render(&state, &manager, StatusCode::OK, &View::default()).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Add {
    email: String,
    role: String,
}

pub async fn add(
    State(state): State<AppState>,
    CsrfForm { user, form }: CsrfForm<Add>,
) -> Result<Response, DashError> {
    let manager = Manager::try_from(user)?;
    let role = form.role.parse::<Role>().ok();
    let email = match Email::try_from(form.email.as_str()) {
        Ok(email) => email,
        Err(_) => {
            let view = View {
                email: &form.email,
                role,
                email_error: Some("Enter an email address like name@example.com."),
                ..View::default()
            };
            return render(&state, &manager, StatusCode::UNPROCESSABLE_ENTITY, &view).await;
        }
    };
    let role = match role {
        Some(role) if manager.0.role().can_grant(role) => role,
        _ => {
            let view = View {
                email: &form.email,
                role: None,
                role_error: Some("Choose a role you are allowed to give."),
                ..View::default()
            };
            return render(&state, &manager, StatusCode::UNPROCESSABLE_ENTITY, &view).await;
        }
    };
    match add_user(state.store.as_ref(), manager.0.org().clone(), email, role).await {
        Ok(added) => {
            tracing::info!(org_id = %added.org.id, role = %added.role, "member added from the dashboard");
            let view = View {
                added: Some(&added),
                ..View::default()
            };
            render(&state, &manager, StatusCode::CREATED, &view).await
        }
        Err(AccountError::AlreadyMember(email)) => {
            let message = format!("{email} is already a member of this organization.");
            let view = View {
                email: &form.email,
                role: Some(role),
                email_error: Some(&message),
                ..View::default()
            };
            render(&state, &manager, StatusCode::CONFLICT, &view).await
        }
        Err(other) => Err(DashError::Internal(other.to_string())),
    }
}

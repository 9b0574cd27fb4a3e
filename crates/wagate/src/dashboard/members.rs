//! Members of the current organization, and adding people to it. Owners
//! and admins only; nobody grants a role above their own.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::accounts::{AccountError, IssuedUser, add_user};
use super::auth::Manager;
use super::csrf::CsrfForm;
use super::error::DashError;
use super::html::{Nav, TextField, csrf_field, described_by, field_error, user_page};
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
    let chosen = view.role.unwrap_or(Role::Member);
    let body = html! {
        div.page-head {
            div {
                h1 { "Members" }
                p.muted {
                    "People who can sign in to " strong { (user.org().name) }
                    ". Owners and admins manage members, webhooks and API tokens; members work with sessions."
                }
            }
        }
        @if let Some(added) = view.added {
            @match &added.password {
                Some(password) => {
                    div.alert.alert-success.secret-once role="status" {
                        p {
                            strong { (added.email.as_str()) " can now sign in as " (added.role) "." }
                            " Give them this password — it is not shown again:"
                        }
                        code.secret data-secret { (password.expose()) }
                    }
                }
                None => {
                    div.alert.alert-success role="status" {
                        strong { (added.email.as_str()) }
                        " already had an account and was added as " (added.role)
                        "; they sign in with their existing password."
                    }
                }
            }
        }
        section.card {
            form.create-form method="post" action="/members" novalidate {
                (csrf_field(user))
                (TextField {
                    label: "Email",
                    id: "member-email",
                    name: "email",
                    kind: "email",
                    placeholder: "name@example.com",
                    value: view.email,
                    error: view.email_error,
                }
                .render())
                div.field {
                    label for="member-role" { "Role" }
                    select #member-role name="role"
                        aria-invalid=[view.role_error.map(|_| "true")]
                        aria-describedby=[described_by(view.role_error, "member-role")] {
                        @for role in Role::ALL.into_iter().filter(|r| user.role().can_grant(*r)) {
                            option value=(role) selected[role == chosen] { (role) }
                        }
                    }
                    (field_error(view.role_error, "member-role"))
                }
                button.button.primary type="submit" { "Add member" }
            }
        }
        section.card.flush {
            div.table-wrap {
                table {
                    thead { tr { th { "Email" } th { "Role" } th { "Member since" } } }
                    tbody {
                        @for member in &members {
                            tr {
                                td {
                                    (member.email.as_str())
                                    @if member.user_id == user.id() {
                                        " " span.muted.small { "(you)" }
                                    }
                                }
                                td { span class={ "role role-" (member.role) } { (member.role) } }
                                td { (time(member.since)) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(user_page(
        state,
        user,
        "Members",
        Nav::Members,
        status,
        body,
    ))
}

pub(super) async fn list(
    State(state): State<AppState>,
    manager: Manager,
) -> Result<Response, DashError> {
    render(&state, &manager, StatusCode::OK, &View::default()).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Add {
    email: String,
    role: String,
}

pub(super) async fn add(
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

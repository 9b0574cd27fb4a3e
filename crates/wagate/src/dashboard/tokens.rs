//! API tokens of the current organization: list, create (shown once),
//! revoke. Owners and admins only: the handlers take [`Manager`].

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::auth::Manager;
use super::csrf::{CsrfForm, NoFields};
use super::error::DashError;
use super::html::{Nav, TextField, button_form, csrf_field, user_page};
use super::view::time;
use crate::app::AppState;
use crate::domain::{ApiToken, TokenId};

const MAX_NAME: usize = 60;

#[derive(Default)]
struct View<'a> {
    name: &'a str,
    error: Option<&'a str>,
    issued: Option<(&'a str, &'a str)>,
}

async fn render(
    state: &AppState,
    Manager(user): &Manager,
    status: StatusCode,
    view: &View<'_>,
) -> Result<Response, DashError> {
    let tokens = state.store.users().list_tokens(user.org().id).await?;
    let body = html! {
        div.page-head {
            div {
                h1 { "API tokens" }
                p.muted {
                    "Programs use these to call the API of " strong { (user.org().name) }
                    " as " code { "Authorization: Bearer …" } "."
                }
            }
        }
        @if let Some((name, token)) = view.issued {
            div.alert.alert-success.secret-once role="status" data-new-token {
                p { strong { "Token “" (name) "” created." } " Copy it now — it is not shown again." }
                code.secret data-secret { (token) }
            }
        }
        section.card {
            form.create-form method="post" action="/tokens" novalidate {
                (csrf_field(user))
                (TextField {
                    label: "New token",
                    id: "token-name",
                    name: "name",
                    kind: "text",
                    placeholder: "Name, e.g. CRM integration",
                    value: view.name,
                    error: view.error,
                }
                .render())
                button.button.primary type="submit" { "Create token" }
            }
        }
        section.card.flush {
            div.table-wrap {
                table {
                    thead { tr { th { "Name" } th { "Id" } th { "Created" } th { "State" } th {} } }
                    tbody {
                        @for token in &tokens {
                            tr data-token-id=(token.id) {
                                td {
                                    @match &token.name {
                                        Some(name) => (name),
                                        None => span.muted { "Unnamed" },
                                    }
                                }
                                td.mono.small { (token.id) }
                                td { (time(token.created_at)) }
                                @match token.revoked_at {
                                    Some(at) => {
                                        td {
                                            span.badge.badge-stopped { "Revoked" } " "
                                            span.muted.small { (time(at)) }
                                        }
                                        td.cell-actions {}
                                    }
                                    None => {
                                        td { span.badge.badge-working { "Active" } }
                                        td.cell-actions {
                                            (button_form(
                                                user,
                                                &format!("/tokens/{}/revoke", token.id),
                                                "Revoke",
                                                "button danger-outline small",
                                                Some("Revoke this token? Programs using it stop working at once."),
                                            ))
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if tokens.is_empty() {
                p.empty { "No API tokens yet." }
            }
        }
    };
    Ok(user_page(
        state,
        user,
        "API tokens",
        Nav::Tokens,
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
pub(super) struct Create {
    name: String,
}

pub(super) async fn create(
    State(state): State<AppState>,
    CsrfForm { user, form }: CsrfForm<Create>,
) -> Result<Response, DashError> {
    let manager = Manager::try_from(user)?;
    let name = form.name.trim();
    let problem = if name.is_empty() {
        Some("Give the token a name, so you can tell it apart later.".to_string())
    } else if name.chars().count() > MAX_NAME {
        Some(format!("The name must be at most {MAX_NAME} characters."))
    } else if name.chars().any(char::is_control) {
        Some("The name must not contain control characters.".to_string())
    } else {
        None
    };
    if let Some(problem) = problem {
        let view = View {
            name: &form.name,
            error: Some(&problem),
            issued: None,
        };
        return render(&state, &manager, StatusCode::UNPROCESSABLE_ENTITY, &view).await;
    }
    let id = TokenId::new();
    let token = ApiToken::generate();
    state
        .store
        .users()
        .insert_named_token(id, manager.0.org().id, &token.hash(), name)
        .await?;
    tracing::info!(token_id = %id, "API token created from the dashboard");
    let view = View {
        issued: Some((name, token.plaintext().expose().as_str())),
        ..View::default()
    };
    render(&state, &manager, StatusCode::CREATED, &view).await
}

pub(super) async fn revoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
    CsrfForm { user, .. }: CsrfForm<NoFields>,
) -> Result<Response, DashError> {
    let manager = Manager::try_from(user)?;
    let id: TokenId = id.parse().map_err(|_| DashError::NotFound)?;
    if !state
        .store
        .users()
        .revoke_org_token(manager.0.org().id, id)
        .await?
    {
        return Err(DashError::NotFound);
    }
    // Realtime sockets it opened close now, not at their next check.
    state.revocations.notify();
    tracing::info!(token_id = %id, "API token revoked from the dashboard");
    Ok(Redirect::to("/tokens").into_response())
}

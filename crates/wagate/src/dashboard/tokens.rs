//! API tokens of the current organization: list, create (shown once),
//! revoke. Owners and admins only: the handlers take [`Manager`].

use std::fmt::Write;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::auth::Manager;
use super::csrf::CsrfForm;
use super::error::DashError;
use super::html::{Frame, Nav, button_form, csrf_field, esc, field_error, invalid_attrs, page};
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
    let mut rows = String::new();
    for token in &tokens {
        let name = token
            .name
            .as_deref()
            .map_or_else(|| r#"<span class="muted">Unnamed</span>"#.to_string(), esc);
        let (state_cell, action) = match token.revoked_at {
            Some(at) => (
                format!(
                    r#"<span class="badge badge-stopped">Revoked</span> <span class="muted small">{}</span>"#,
                    time(at)
                ),
                String::new(),
            ),
            None => (
                r#"<span class="badge badge-working">Active</span>"#.to_string(),
                button_form(
                    user,
                    &format!("/tokens/{}/revoke", token.id),
                    "Revoke",
                    "button danger-outline small",
                    Some("Revoke this token? Programs using it stop working at once."),
                ),
            ),
        };
        let _ = write!(
            rows,
            r#"<tr data-token-id="{id}"><td>{name}</td><td class="mono small">{id}</td><td>{created}</td><td>{state_cell}</td><td class="cell-actions">{action}</td></tr>"#,
            id = token.id,
            created = time(token.created_at),
        );
    }
    let empty = if tokens.is_empty() {
        r#"<p class="empty">No API tokens yet.</p>"#
    } else {
        ""
    };
    let issued = view
        .issued
        .map(|(name, token)| {
            format!(
                r#"<div class="alert alert-success secret-once" role="status" data-new-token><p><strong>Token “{}” created.</strong> Copy it now — it is not shown again.</p><code class="secret" data-secret>{}</code></div>"#,
                esc(name),
                esc(token)
            )
        })
        .unwrap_or_default();
    let body = format!(
        r#"<div class="page-head"><div><h1>API tokens</h1><p class="muted">Programs use these to call the API of <strong>{org}</strong> as <code>Authorization: Bearer …</code>.</p></div></div>
{issued}
<section class="card">
<form method="post" action="/tokens" class="create-form" novalidate>
{csrf}
<div class="field grow">
<label for="token-name">New token</label>
<input id="token-name" name="name" type="text" placeholder="Name, e.g. CRM integration" value="{name}"{attrs}>
{name_error}
</div>
<button type="submit" class="button primary">Create token</button>
</form>
</section>
<section class="card flush">
<div class="table-wrap"><table>
<thead><tr><th>Name</th><th>Id</th><th>Created</th><th>State</th><th></th></tr></thead>
<tbody>{rows}</tbody>
</table></div>
{empty}
</section>"#,
        org = esc(&user.org().name),
        csrf = csrf_field(user),
        name = esc(view.name),
        attrs = invalid_attrs(view.error, "token-name"),
        name_error = field_error(view.error, "token-name"),
    );
    let frame = Frame {
        title: "API tokens",
        nav: Nav::Tokens,
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
pub struct Create {
    name: String,
}

pub async fn create(
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

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NoFields {}

pub async fn revoke(
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
    tracing::info!(token_id = %id, "API token revoked from the dashboard");
    Ok(Redirect::to("/tokens").into_response())
}

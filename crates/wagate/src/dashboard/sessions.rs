//! The sessions page: every session of the current organization, live, and
//! the form to create one.

use std::fmt::Write;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::auth::CurrentUser;
use super::csrf::CsrfForm;
use super::error::DashError;
use super::html::{Frame, Nav, csrf_field, esc, field_error, invalid_attrs, page};
use super::view::{badge, phone, time};
use crate::app::AppState;
use crate::domain::Label;
use crate::store::{SessionQuery, SessionRecord};

/// The page lists this many; the API pages through the rest.
const PAGE: u32 = 100;

/// One table row; also served alone so the page script can refresh it.
pub fn row(session: &SessionRecord) -> String {
    let label = session.label.as_ref().map_or_else(
        || r#"<span class="muted">Untitled</span>"#.to_string(),
        |l| esc(l.as_str()),
    );
    let linked = match (&session.phone, &session.push_name) {
        (Some(number), Some(name)) => format!(
            r#"<span class="phone">{}</span><span class="push-name">{}</span>"#,
            phone(number),
            esc(name)
        ),
        (Some(number), None) => format!(r#"<span class="phone">{}</span>"#, phone(number)),
        _ => r#"<span class="muted">Not linked</span>"#.to_string(),
    };
    format!(
        r#"<tr data-session-id="{id}"><td class="cell-label"><a href="/sessions/{id}">{label}</a></td><td>{badge}</td><td class="cell-phone">{linked}</td><td class="cell-time">{updated}</td></tr>"#,
        id = session.id,
        badge = badge(session.status),
        updated = time(session.updated_at),
    )
}

#[derive(Default)]
struct CreateForm<'a> {
    label: &'a str,
    error: Option<String>,
}

async fn render(
    state: &AppState,
    user: &CurrentUser,
    status: StatusCode,
    create: &CreateForm<'_>,
) -> Result<Response, DashError> {
    let page_of = state
        .sessions
        .list(
            user.org().id,
            &SessionQuery {
                status: None,
                limit: PAGE,
                after: None,
            },
        )
        .await?;
    let mut rows = String::new();
    for session in &page_of.sessions {
        rows.push_str(&row(session));
    }
    let empty = if page_of.sessions.is_empty() {
        r#"<p class="empty" data-empty>No sessions yet. Create one to link a WhatsApp number.</p>"#
    } else {
        ""
    };
    let more = if page_of.next.is_some() {
        format!(
            r#"<p class="muted small">Showing the first {PAGE} sessions; use the API to list the rest.</p>"#
        )
    } else {
        String::new()
    };
    let error = create.error.as_deref();
    let mut body = String::new();
    let _ = write!(
        body,
        r#"<div class="page-head"><div><h1>Sessions</h1><p class="muted">Each session is one linked WhatsApp number in <strong>{org}</strong>.</p></div></div>
<section class="card">
<form method="post" action="/sessions" class="create-form" novalidate>
{csrf}
<div class="field grow">
<label for="label">New session</label>
<input id="label" name="label" type="text" placeholder="Label, e.g. Support line" maxlength="400" value="{label}"{attrs}>
{label_error}
</div>
<button type="submit" class="button primary">Create session</button>
</form>
</section>
<section class="card flush">
<div class="table-wrap"><table class="sessions" data-live-list>
<thead><tr><th>Label</th><th>Status</th><th>Phone</th><th>Last change</th></tr></thead>
<tbody data-rows>{rows}</tbody>
</table></div>
{empty}
</section>
{more}
<div data-live data-list></div>"#,
        org = esc(&user.org().name),
        csrf = csrf_field(user),
        label = esc(create.label),
        attrs = invalid_attrs(error, "label"),
        label_error = field_error(error, "label"),
    );
    let frame = Frame {
        title: "Sessions",
        nav: Nav::Sessions,
        user: Some(user),
        sandbox: state.dashboard.is_sandbox(),
    };
    Ok((status, page(&frame, &body)).into_response())
}

pub async fn list(State(state): State<AppState>, user: CurrentUser) -> Result<Response, DashError> {
    render(&state, &user, StatusCode::OK, &CreateForm::default()).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Create {
    label: String,
}

pub async fn create(
    State(state): State<AppState>,
    CsrfForm { user, form }: CsrfForm<Create>,
) -> Result<Response, DashError> {
    let trimmed = form.label.trim();
    let label = if trimmed.is_empty() {
        Ok(None)
    } else {
        Label::try_from(trimmed.to_string()).map(Some)
    };
    let label = match label {
        Ok(label) => label,
        Err(error) => {
            let create = CreateForm {
                label: &form.label,
                error: Some(format!("The {error}.")),
            };
            return render(&state, &user, StatusCode::UNPROCESSABLE_ENTITY, &create).await;
        }
    };
    // The same call the API's POST /sessions makes.
    let record = state
        .sessions
        .create(user.org().id, label, Default::default(), true)
        .await?;
    tracing::info!(session_id = %record.id, "session created from the dashboard");
    Ok(Redirect::to(&format!("/sessions/{}", record.id)).into_response())
}

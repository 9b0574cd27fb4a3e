//! The sessions page: every session of the current organization, live, and
//! the form to create one.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::auth::CurrentUser;
use super::csrf::CsrfForm;
use super::error::DashError;
use super::html::{Nav, csrf_field, described_by, field_error, user_page};
use super::view::{badge, phone, time};
use crate::app::AppState;
use crate::domain::Label;
use crate::store::{SessionQuery, SessionRecord};

/// The page lists this many; the API pages through the rest.
const PAGE: u32 = 100;

/// One table row; also served alone so the page script can refresh it.
pub(super) fn row(session: &SessionRecord) -> Markup {
    html! {
        tr data-session-id=(session.id) {
            td.cell-label {
                a href={ "/sessions/" (session.id) } {
                    @match &session.label {
                        Some(label) => (label.as_str()),
                        None => span.muted { "Untitled" },
                    }
                }
            }
            td { (badge(session.status)) }
            td.cell-phone {
                @match (&session.phone, &session.push_name) {
                    (Some(number), name) => {
                        span.phone { (phone(number)) }
                        @if let Some(name) = name { span.push-name { (name) } }
                    }
                    _ => span.muted { "Not linked" },
                }
            }
            td.cell-time { (time(session.updated_at)) }
        }
    }
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
    let error = create.error.as_deref();
    let body = html! {
        div.page-head {
            div {
                h1 { "Sessions" }
                p.muted {
                    "Each session is one linked WhatsApp number in "
                    strong { (user.org().name) } "."
                }
            }
        }
        section.card {
            form.create-form method="post" action="/sessions" novalidate {
                (csrf_field(user))
                div.field.grow {
                    label for="label" { "New session" }
                    input #label name="label" type="text" placeholder="Label, e.g. Support line"
                        maxlength="400" value=(create.label)
                        aria-invalid=[error.map(|_| "true")]
                        aria-describedby=[described_by(error, "label")];
                    (field_error(error, "label"))
                }
                button.button.primary type="submit" { "Create session" }
            }
        }
        section.card.flush {
            div.table-wrap {
                table.sessions data-live-list {
                    thead { tr { th { "Label" } th { "Status" } th { "Phone" } th { "Last change" } } }
                    tbody data-rows {
                        @for session in &page_of.sessions { (row(session)) }
                    }
                }
            }
            @if page_of.sessions.is_empty() {
                p.empty data-empty { "No sessions yet. Create one to link a WhatsApp number." }
            }
        }
        @if page_of.next.is_some() {
            p.muted.small { "Showing the first " (PAGE) " sessions; use the API to list the rest." }
        }
        div data-live data-list {}
    };
    Ok(user_page(
        state,
        user,
        "Sessions",
        Nav::Sessions,
        status,
        body,
    ))
}

pub(super) async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
) -> Result<Response, DashError> {
    render(&state, &user, StatusCode::OK, &CreateForm::default()).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Create {
    label: String,
}

pub(super) async fn create(
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
        .create(
            user.org().id,
            label,
            Default::default(),
            Default::default(),
            true,
        )
        .await?;
    tracing::info!(session_id = %record.id, "session created from the dashboard");
    Ok(Redirect::to(&format!("/sessions/{}", record.id)).into_response())
}

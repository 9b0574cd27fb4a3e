//! One session: its status, linking (QR code or pairing code), and the
//! start / stop / restart / log out / delete actions.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::auth::CurrentUser;
use super::csrf::{CsrfForm, NoFields};
use super::error::DashError;
use super::html::{Nav, button_form, csrf_field, described_by, field_error, user_page};
use super::view::{badge, explain, phone, sentence, time};
use crate::app::AppState;
use crate::domain::{Phone, SessionId, SessionStatus};
use crate::http::error::ApiError;
use crate::session::Expiring;
use crate::session::manager::ManagerError;
use crate::store::SessionRecord;

/// What a page shows besides the session itself.
#[derive(Default)]
pub(super) struct Extras {
    /// A pairing code just issued, and the number it is for.
    pub pairing: Option<(Phone, Expiring)>,
    /// The pairing form's input and its error.
    pub phone_input: String,
    pub phone_error: Option<String>,
    /// A success message above the panel.
    pub notice: Option<String>,
    /// A failure message above the panel.
    pub error: Option<String>,
}

pub(super) fn parse_id(raw: &str) -> Result<SessionId, DashError> {
    raw.parse().map_err(|_| DashError::NotFound)
}

/// The manager's errors in the API's words, which are written for people.
pub(super) fn describe(error: ManagerError) -> Result<String, DashError> {
    match error {
        ManagerError::NotFound => Err(DashError::NotFound),
        ManagerError::Store(e) => Err(e.into()),
        other => Ok(sentence(&ApiError::from(other).to_string())),
    }
}

/// The part of the page the script swaps when the status changes.
pub(super) async fn live_block(
    state: &AppState,
    user: &CurrentUser,
    record: &SessionRecord,
    extras: &Extras,
) -> Markup {
    // A page answering a form (a fresh pairing code, a message) is not
    // swapped when the socket connects, or the answer would vanish as it
    // appears; status changes still swap it.
    let answers_a_form = extras.pairing.is_some()
        || extras.phone_error.is_some()
        || extras.notice.is_some()
        || extras.error.is_some();
    let linking = match record.status {
        SessionStatus::ScanQrCode => Some(linking(state, user, record, extras).await),
        _ => None,
    };
    let explained = explain(record.status, record.status_reason);
    let tone = if record.status == SessionStatus::Failed {
        "alert alert-error"
    } else {
        "alert alert-warning"
    };
    html! {
        div data-live data-session-id=(record.id) data-status=(record.status.as_str())
            data-keep[answers_a_form] {
            @if let Some(notice) = &extras.notice {
                div.alert.alert-success role="status" { (notice) }
            }
            @if let Some(error) = &extras.error {
                div.alert.alert-error role="alert" { (error) }
            }
            section.card.status-card {
                div.status-row {
                    div.kv { span { "Status" } (badge(record.status)) }
                    @if let Some(number) = &record.phone {
                        div.kv { span { "Phone" } strong.phone data-phone { (phone(number)) } }
                        @if let Some(name) = &record.push_name {
                            div.kv { span { "Name" } strong { (name) } }
                        }
                    }
                    div.kv { span { "Last change" } (time(record.updated_at)) }
                }
                div.actions { (actions(user, record)) }
            }
            @if let Some((headline, advice)) = explained {
                div class=(tone) role="alert" data-explain { strong { (headline) } " " (advice) }
            }
            @match record.status {
                SessionStatus::Starting => {
                    section.card.center {
                        div.spinner aria-hidden="true" {}
                        p { "Connecting to WhatsApp…" }
                    }
                }
                SessionStatus::ScanQrCode => { @if let Some(linking) = linking { (linking) } }
                SessionStatus::Working => {
                    section.card {
                        h2 { "Linked" }
                        p {
                            "This session is connected as "
                            strong.phone { @if let Some(number) = &record.phone { (phone(number)) } }
                            @if let Some(name) = &record.push_name { " (" (name) ")" }
                            ". It stays connected and reconnects on its own."
                        }
                    }
                    (sandbox_working(state, user, record))
                }
                SessionStatus::Stopped => {
                    section.card {
                        p {
                            "This session is stopped. Press " strong { "Start" }
                            " to connect; a linked phone reconnects without scanning again."
                        }
                    }
                }
                SessionStatus::Failed | SessionStatus::LoggedOut => {}
            }
        }
    }
}

fn actions(user: &CurrentUser, record: &SessionRecord) -> Markup {
    let base = format!("/sessions/{}/action", record.id);
    let status = record.status;
    html! {
        @if !status.is_active() {
            (button_form(user, &format!("{base}/start"), "Start", "button primary", None))
        }
        @if status.is_active() {
            (button_form(user, &format!("{base}/stop"), "Stop", "button", None))
            (button_form(user, &format!("{base}/restart"), "Restart", "button", None))
        }
        @if record.is_linked() {
            (button_form(
                user,
                &format!("{base}/logout"),
                "Log out",
                "button danger-outline",
                Some("Log out this session? The phone is unlinked and must be linked again with a new code."),
            ))
        }
        (button_form(
            user,
            &format!("{base}/delete"),
            "Delete",
            "button danger",
            Some("Delete this session? It is unlinked from the phone and removed for good."),
        ))
    }
}

async fn linking(
    state: &AppState,
    user: &CurrentUser,
    record: &SessionRecord,
    extras: &Extras,
) -> Markup {
    let id = record.id;
    let qr = state.sessions.qr(user.org().id, id).await.ok();
    let error = extras.phone_error.as_deref();
    html! {
        div.link-grid {
            section.card.qr-card {
                h2 { "Scan the QR code" }
                div.qr-frame data-qr data-session-id=(id) {
                    @match &qr {
                        Some(qr) => {
                            img.qr-image
                                src={ "/sessions/" (id) "/qr.svg?v=" (qr.expires_at.timestamp_millis()) }
                                alt="QR code to scan with WhatsApp" data-qr-image
                                data-expires-at=(qr.expires_at.to_rfc3339());
                        }
                        None => {
                            div.qr-placeholder data-qr-image {
                                div.spinner aria-hidden="true" {}
                                span { "Preparing the QR code…" }
                            }
                        }
                    }
                }
                p.countdown data-countdown {}
                ol.steps {
                    li { "Open " strong { "WhatsApp" } " on the phone." }
                    li { "Go to " strong { "Settings → Linked devices → Link a device" } "." }
                    li { "Point the phone at this code. It refreshes about every 20 seconds." }
                }
                (sandbox_scan(state, user, record))
            }
            section.card {
                h2 { "Link with phone number instead" }
                p.muted { "If scanning is awkward, get a code to type into the phone." }
                form method="post" action={ "/sessions/" (id) "/pairing-code" } novalidate {
                    (csrf_field(user))
                    div.field {
                        label for="phone" { "Phone number" }
                        input #phone name="phone" type="text" inputmode="numeric" autocomplete="tel"
                            placeholder="628123456789" value=(extras.phone_input)
                            aria-invalid=[error.map(|_| "true")]
                            aria-describedby=[described_by(error, "phone")];
                        p.hint { "International format: country code first, digits only, no + and no spaces." }
                        (field_error(error, "phone"))
                    }
                    button.button.primary type="submit" { "Get pairing code" }
                }
                @if let Some((number, code)) = &extras.pairing {
                    div.pairing-result data-pairing {
                        p.muted { "Pairing code for " strong { (phone(number.as_str())) } }
                        div.pairing-code data-pairing-code { (code.code) }
                        p.countdown data-countdown data-expires-at=(code.expires_at.to_rfc3339()) {}
                        ol.steps {
                            li { "Open " strong { "WhatsApp" } " on the phone with number " (phone(number.as_str())) "." }
                            li { "Go to " strong { "Settings → Linked devices → Link a device" } "." }
                            li { "Tap " strong { "Link with phone number instead" } "." }
                            li { "Type the code " strong { (code.code) } "." }
                        }
                        (sandbox_enter_code(state, user, record, number, &code.code))
                    }
                }
            }
        }
    }
}

#[cfg(feature = "sandbox")]
fn sandbox_scan(state: &AppState, user: &CurrentUser, record: &SessionRecord) -> Markup {
    super::sandbox::scan_form(state, user, record)
}
#[cfg(not(feature = "sandbox"))]
fn sandbox_scan(_: &AppState, _: &CurrentUser, _: &SessionRecord) -> Markup {
    html! {}
}

#[cfg(feature = "sandbox")]
fn sandbox_enter_code(
    state: &AppState,
    user: &CurrentUser,
    record: &SessionRecord,
    number: &Phone,
    code: &str,
) -> Markup {
    super::sandbox::enter_code_form(state, user, record, number, code)
}
#[cfg(not(feature = "sandbox"))]
fn sandbox_enter_code(
    _: &AppState,
    _: &CurrentUser,
    _: &SessionRecord,
    _: &Phone,
    _: &str,
) -> Markup {
    html! {}
}

#[cfg(feature = "sandbox")]
fn sandbox_working(state: &AppState, user: &CurrentUser, record: &SessionRecord) -> Markup {
    super::sandbox::message_form(state, user, record)
}
#[cfg(not(feature = "sandbox"))]
fn sandbox_working(_: &AppState, _: &CurrentUser, _: &SessionRecord) -> Markup {
    html! {}
}

pub(super) async fn render(
    state: &AppState,
    user: &CurrentUser,
    record: &SessionRecord,
    status: StatusCode,
    extras: &Extras,
) -> Response {
    let title = record
        .label
        .as_ref()
        .map_or("Untitled session", |l| l.as_str());
    let live = live_block(state, user, record, extras).await;
    let messages = match super::messages::section(state, user, record.id).await {
        Ok(section) => section,
        // The session's controls still work without its message list.
        Err(error) => {
            tracing::error!(session_id = %record.id, ?error, "could not list messages");
            html! {
                div.alert.alert-error role="alert" data-messages {
                    "The messages could not be loaded. Reload the page to try again."
                }
            }
        }
    };
    let body = html! {
        div.page-head {
            div {
                a.back href="/sessions" { "← Sessions" }
                h1 { (title) }
                p.muted.mono.small { (record.id) }
            }
            div.actions {
                a.button data-chats-link href={ "/sessions/" (record.id) "/chats" } { "Chats" }
                a.button data-groups-link href={ "/sessions/" (record.id) "/groups" } { "Groups" }
            }
        }
        (live)
        (messages)
    };
    user_page(state, user, title, Nav::Sessions, status, body)
}

pub(super) async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, DashError> {
    let record = state.sessions.get(user.org().id, parse_id(&id)?).await?;
    Ok(render(&state, &user, &record, StatusCode::OK, &Extras::default()).await)
}

pub(super) async fn action(
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    CsrfForm { user, .. }: CsrfForm<NoFields>,
) -> Result<Response, DashError> {
    let org = user.org().id;
    let id = parse_id(&id)?;
    let sessions = &state.sessions;
    // The same manager calls the API's lifecycle endpoints make.
    let result = match action.as_str() {
        "start" => sessions.start(org, id).await.map(|_| ()),
        "stop" => sessions.stop(org, id).await.map(|_| ()),
        "restart" => sessions.restart(org, id).await.map(|_| ()),
        "logout" => sessions.logout(org, id).await.map(|_| ()),
        "delete" => {
            sessions.delete(org, id).await?;
            tracing::info!(session_id = %id, "session deleted from the dashboard");
            return Ok(Redirect::to("/sessions").into_response());
        }
        _ => return Err(DashError::NotFound),
    };
    match result {
        Ok(()) => Ok(Redirect::to(&format!("/sessions/{id}")).into_response()),
        Err(error) => {
            let message = describe(error)?;
            let record = sessions.get(org, id).await?;
            let extras = Extras {
                error: Some(message),
                ..Extras::default()
            };
            Ok(render(&state, &user, &record, StatusCode::CONFLICT, &extras).await)
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct PairingForm {
    phone: String,
}

pub(super) async fn pairing_code(
    State(state): State<AppState>,
    Path(id): Path<String>,
    CsrfForm { user, form }: CsrfForm<PairingForm>,
) -> Result<Response, DashError> {
    let org = user.org().id;
    let id = parse_id(&id)?;
    let record = state.sessions.get(org, id).await?;
    // Forgive what people type around a number; the strict check follows.
    let cleaned: String = form
        .phone
        .trim()
        .trim_start_matches('+')
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.'))
        .collect();
    let phone = match Phone::try_from(cleaned) {
        Ok(phone) => phone,
        Err(_) => {
            let extras = Extras {
                phone_input: form.phone,
                phone_error: Some(
                    "Enter the number in international format: country code first, 8 to 15 digits, like 628123456789.".into(),
                ),
                ..Extras::default()
            };
            return Ok(render(
                &state,
                &user,
                &record,
                StatusCode::UNPROCESSABLE_ENTITY,
                &extras,
            )
            .await);
        }
    };
    match state.sessions.pairing_code(org, id, phone.clone()).await {
        Ok(code) => {
            let record = state.sessions.get(org, id).await?;
            let extras = Extras {
                phone_input: phone.to_string(),
                pairing: Some((phone, code)),
                ..Extras::default()
            };
            Ok(render(&state, &user, &record, StatusCode::OK, &extras).await)
        }
        Err(error) => {
            let message = describe(error)?;
            let record = state.sessions.get(org, id).await?;
            let extras = Extras {
                phone_input: form.phone,
                phone_error: Some(message),
                ..Extras::default()
            };
            Ok(render(&state, &user, &record, StatusCode::CONFLICT, &extras).await)
        }
    }
}

//! One session: its status, linking (QR code or pairing code), and the
//! start / stop / restart / log out / delete actions.

use std::fmt::Write;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::auth::CurrentUser;
use super::csrf::CsrfForm;
use super::error::DashError;
use super::html::{Frame, Nav, button_form, csrf_field, esc, field_error, invalid_attrs, page};
use super::view::{badge, explain, phone, time};
use crate::app::AppState;
use crate::domain::{Phone, SessionId, SessionStatus};
use crate::http::error::ApiError;
use crate::session::{Expiring, ManagerError};
use crate::store::SessionRecord;

/// What a page shows besides the session itself.
#[derive(Default)]
pub struct Extras {
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

pub fn parse_id(raw: &str) -> Result<SessionId, DashError> {
    raw.parse().map_err(|_| DashError::NotFound)
}

/// The manager's errors in the API's words, which are written for people.
pub fn describe(error: ManagerError) -> Result<String, DashError> {
    match error {
        ManagerError::NotFound => Err(DashError::NotFound),
        ManagerError::Store(e) => Err(e.into()),
        other => {
            let message = ApiError::from(other).to_string();
            let mut chars = message.chars();
            Ok(chars.next().map_or_else(String::new, |first| {
                format!("{}{}.", first.to_uppercase(), chars.as_str())
            }))
        }
    }
}

/// The part of the page the script swaps when the status changes.
pub async fn live_block(
    state: &AppState,
    user: &CurrentUser,
    record: &SessionRecord,
    extras: &Extras,
) -> String {
    let mut out = String::new();
    // A page answering a form (a fresh pairing code, a message) is not
    // swapped when the socket connects, or the answer would vanish as it
    // appears; status changes still swap it.
    let answers_a_form = extras.pairing.is_some()
        || extras.phone_error.is_some()
        || extras.notice.is_some()
        || extras.error.is_some();
    let keep = if answers_a_form { " data-keep" } else { "" };
    let _ = write!(
        out,
        r#"<div data-live data-session-id="{id}" data-status="{status}"{keep}>"#,
        id = record.id,
        status = record.status.as_str()
    );
    if let Some(notice) = &extras.notice {
        let _ = write!(
            out,
            r#"<div class="alert alert-success" role="status">{}</div>"#,
            esc(notice)
        );
    }
    if let Some(error) = &extras.error {
        let _ = write!(
            out,
            r#"<div class="alert alert-error" role="alert">{}</div>"#,
            esc(error)
        );
    }

    // Status summary and actions.
    let linked = match (&record.phone, &record.push_name) {
        (Some(number), name) => format!(
            r#"<div class="kv"><span>Phone</span><strong class="phone" data-phone>{}</strong></div>{}"#,
            phone(number),
            name.as_ref()
                .map(|n| format!(
                    r#"<div class="kv"><span>Name</span><strong>{}</strong></div>"#,
                    esc(n)
                ))
                .unwrap_or_default()
        ),
        _ => String::new(),
    };
    let _ = write!(
        out,
        r#"<section class="card status-card"><div class="status-row"><div class="kv"><span>Status</span>{badge}</div>{linked}<div class="kv"><span>Last change</span>{updated}</div></div><div class="actions">{actions}</div></section>"#,
        badge = badge(record.status),
        updated = time(record.updated_at),
        actions = actions(user, record),
    );

    if let Some((headline, advice)) = explain(record.status, record.status_reason) {
        let tone = if record.status == SessionStatus::Failed {
            "alert-error"
        } else {
            "alert-warning"
        };
        let _ = write!(
            out,
            r#"<div class="alert {tone}" role="alert" data-explain><strong>{}</strong> {}</div>"#,
            esc(headline),
            esc(advice)
        );
    }

    match record.status {
        SessionStatus::Starting => out.push_str(
            r#"<section class="card center"><div class="spinner" aria-hidden="true"></div><p>Connecting to WhatsApp…</p></section>"#,
        ),
        SessionStatus::ScanQrCode => {
            out.push_str(&linking(state, user, record, extras).await);
        }
        SessionStatus::Working => {
            let _ = write!(
                out,
                r#"<section class="card"><h2>Linked</h2><p>This session is connected as <strong class="phone">{}</strong>{}. It stays connected and reconnects on its own.</p></section>"#,
                record.phone.as_deref().map(phone).unwrap_or_default(),
                record
                    .push_name
                    .as_ref()
                    .map(|n| format!(" ({})", esc(n)))
                    .unwrap_or_default()
            );
            out.push_str(&sandbox_working(state, user, record));
        }
        SessionStatus::Stopped => out.push_str(
            r#"<section class="card"><p>This session is stopped. Press <strong>Start</strong> to connect; a linked phone reconnects without scanning again.</p></section>"#,
        ),
        SessionStatus::Failed | SessionStatus::LoggedOut => {}
    }
    out.push_str("</div>");
    out
}

fn actions(user: &CurrentUser, record: &SessionRecord) -> String {
    let base = format!("/sessions/{}/action", record.id);
    let mut out = String::new();
    let status = record.status;
    if !status.is_active() {
        out.push_str(&button_form(
            user,
            &format!("{base}/start"),
            "Start",
            "button primary",
            None,
        ));
    }
    if status.is_active() {
        out.push_str(&button_form(
            user,
            &format!("{base}/stop"),
            "Stop",
            "button",
            None,
        ));
        out.push_str(&button_form(
            user,
            &format!("{base}/restart"),
            "Restart",
            "button",
            None,
        ));
    }
    if record.is_linked() {
        out.push_str(&button_form(
            user,
            &format!("{base}/logout"),
            "Log out",
            "button danger-outline",
            Some("Log out this session? The phone is unlinked and must be linked again with a new code."),
        ));
    }
    out.push_str(&button_form(
        user,
        &format!("{base}/delete"),
        "Delete",
        "button danger",
        Some("Delete this session? It is unlinked from the phone and removed for good."),
    ));
    out
}

async fn linking(
    state: &AppState,
    user: &CurrentUser,
    record: &SessionRecord,
    extras: &Extras,
) -> String {
    let id = record.id;
    let qr = match state.sessions.qr(user.org().id, id).await {
        Ok(qr) => format!(
            r#"<img class="qr-image" src="/sessions/{id}/qr.svg?v={v}" alt="QR code to scan with WhatsApp" data-qr-image data-expires-at="{at}">"#,
            v = qr.expires_at.timestamp_millis(),
            at = qr.expires_at.to_rfc3339(),
        ),
        Err(_) => r#"<div class="qr-placeholder" data-qr-image><div class="spinner" aria-hidden="true"></div><span>Preparing the QR code…</span></div>"#.to_string(),
    };
    let pairing = match &extras.pairing {
        Some((number, code)) => format!(
            r#"<div class="pairing-result" data-pairing>
<p class="muted">Pairing code for <strong>{number}</strong></p>
<div class="pairing-code" data-pairing-code>{code}</div>
<p class="countdown" data-countdown data-expires-at="{at}"></p>
<ol class="steps">
<li>Open <strong>WhatsApp</strong> on the phone with number {number}.</li>
<li>Go to <strong>Settings → Linked devices → Link a device</strong>.</li>
<li>Tap <strong>Link with phone number instead</strong>.</li>
<li>Type the code <strong>{code}</strong>.</li>
</ol>
{sandbox}
</div>"#,
            number = phone(number.as_str()),
            code = esc(&code.code),
            at = code.expires_at.to_rfc3339(),
            sandbox = sandbox_enter_code(state, user, record, number, &code.code),
        ),
        None => String::new(),
    };
    let error = extras.phone_error.as_deref();
    format!(
        r#"<div class="link-grid">
<section class="card qr-card">
<h2>Scan the QR code</h2>
<div class="qr-frame" data-qr data-session-id="{id}">{qr}</div>
<p class="countdown" data-countdown></p>
<ol class="steps">
<li>Open <strong>WhatsApp</strong> on the phone.</li>
<li>Go to <strong>Settings → Linked devices → Link a device</strong>.</li>
<li>Point the phone at this code. It refreshes about every 20 seconds.</li>
</ol>
{sandbox_scan}
</section>
<section class="card">
<h2>Link with phone number instead</h2>
<p class="muted">If scanning is awkward, get a code to type into the phone.</p>
<form method="post" action="/sessions/{id}/pairing-code" novalidate>
{csrf}
<div class="field">
<label for="phone">Phone number</label>
<input id="phone" name="phone" type="text" inputmode="numeric" autocomplete="tel" placeholder="628123456789" value="{phone_value}"{attrs}>
<p class="hint">International format: country code first, digits only, no + and no spaces.</p>
{phone_error}
</div>
<button type="submit" class="button primary">Get pairing code</button>
</form>
{pairing}
</section>
</div>"#,
        csrf = csrf_field(user),
        phone_value = esc(&extras.phone_input),
        attrs = invalid_attrs(error, "phone"),
        phone_error = field_error(error, "phone"),
        sandbox_scan = sandbox_scan(state, user, record),
    )
}

#[cfg(feature = "sandbox")]
fn sandbox_scan(state: &AppState, user: &CurrentUser, record: &SessionRecord) -> String {
    super::sandbox::scan_form(state, user, record)
}
#[cfg(not(feature = "sandbox"))]
fn sandbox_scan(_: &AppState, _: &CurrentUser, _: &SessionRecord) -> String {
    String::new()
}

#[cfg(feature = "sandbox")]
fn sandbox_enter_code(
    state: &AppState,
    user: &CurrentUser,
    record: &SessionRecord,
    number: &Phone,
    code: &str,
) -> String {
    super::sandbox::enter_code_form(state, user, record, number, code)
}
#[cfg(not(feature = "sandbox"))]
fn sandbox_enter_code(
    _: &AppState,
    _: &CurrentUser,
    _: &SessionRecord,
    _: &Phone,
    _: &str,
) -> String {
    String::new()
}

#[cfg(feature = "sandbox")]
fn sandbox_working(state: &AppState, user: &CurrentUser, record: &SessionRecord) -> String {
    super::sandbox::message_form(state, user, record)
}
#[cfg(not(feature = "sandbox"))]
fn sandbox_working(_: &AppState, _: &CurrentUser, _: &SessionRecord) -> String {
    String::new()
}

pub async fn render(
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
    let body = format!(
        r#"<div class="page-head"><div><a class="back" href="/sessions">← Sessions</a><h1>{title}</h1><p class="muted mono small">{id}</p></div></div>
{live}"#,
        title = esc(title),
        id = record.id,
        live = live_block(state, user, record, extras).await,
    );
    let frame = Frame {
        title,
        nav: Nav::Sessions,
        user: Some(user),
        sandbox: state.dashboard.is_sandbox(),
    };
    (status, page(&frame, &body)).into_response()
}

pub async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, DashError> {
    let record = state.sessions.get(user.org().id, parse_id(&id)?).await?;
    Ok(render(&state, &user, &record, StatusCode::OK, &Extras::default()).await)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NoFields {}

pub async fn action(
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
pub struct PairingForm {
    phone: String,
}

pub async fn pairing_code(
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

//! Sandbox builds: buttons on the session page that act as a simulated
//! phone, so the whole linking flow can be seen without one. The phones
//! are wasim's, in this process; sessions of a sandbox gateway connect
//! nowhere else.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use rand::Rng;
use serde::Deserialize;

use super::auth::CurrentUser;
use super::csrf::CsrfForm;
use super::error::DashError;
use super::html::csrf_field;
use super::session::{Extras, describe, parse_id, render};
use crate::app::AppState;
use crate::domain::{Phone, SessionStatus};
use crate::store::SessionRecord;

/// The simulated phone types slowly (the code's key derivation is costly
/// on purpose); give it room on a busy machine.
const ENTER_CODE_TIMEOUT: Duration = Duration::from_secs(60);

/// A random US-style test number (+1 555 01xx xxxx), so repeated demos do
/// not collide in the simulator.
fn demo_number() -> String {
    format!("1555{:07}", rand::rng().random_range(0..10_000_000))
}

pub(crate) fn scan_form(state: &AppState, user: &CurrentUser, record: &SessionRecord) -> Markup {
    html! {
        @if state.dashboard.is_sandbox() {
            div.sandbox-box {
                p { strong { "Sandbox:" } " no phone needed." }
                form.inline-form method="post" action={ "/sessions/" (record.id) "/sandbox/scan" } {
                    (csrf_field(user))
                    input type="hidden" name="phone" value=(demo_number());
                    button.button.sandbox type="submit" data-sandbox-scan { "Scan with a simulated phone" }
                }
            }
        }
    }
}

pub(crate) fn enter_code_form(
    state: &AppState,
    user: &CurrentUser,
    record: &SessionRecord,
    number: &Phone,
    code: &str,
) -> Markup {
    html! {
        @if state.dashboard.is_sandbox() {
            div.sandbox-box {
                form.inline-form method="post" action={ "/sessions/" (record.id) "/sandbox/enter-code" } {
                    (csrf_field(user))
                    input type="hidden" name="phone" value=(number.as_str());
                    input type="hidden" name="code" value=(code);
                    button.button.sandbox type="submit" data-sandbox-enter-code {
                        "Enter the code on a simulated phone"
                    }
                }
            }
        }
    }
}

pub(crate) fn message_form(state: &AppState, user: &CurrentUser, record: &SessionRecord) -> Markup {
    html! {
        @if state.dashboard.is_sandbox() && record.phone.is_some() {
            section.card.sandbox-card {
                h2 { "Sandbox: send a message from a simulated contact" }
                form.create-form method="post" action={ "/sessions/" (record.id) "/sandbox/message" } novalidate {
                    (csrf_field(user))
                    div.field {
                        label for="from" { "Contact's number" }
                        input #from name="from" type="text" inputmode="numeric" value=(demo_number());
                    }
                    div.field.grow {
                        label for="text" { "Message" }
                        input #text name="text" type="text" value="Hello from the sandbox!";
                    }
                    button.button.sandbox type="submit" data-sandbox-message { "Send" }
                }
            }
        }
    }
}

fn sim(state: &AppState) -> Result<&wasim::SimHandle, DashError> {
    state.dashboard.sim().ok_or(DashError::NotFound)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ScanForm {
    phone: String,
}

async fn page_with(
    state: &AppState,
    user: &CurrentUser,
    record: &SessionRecord,
    status: StatusCode,
    extras: Extras,
) -> Result<Response, DashError> {
    let record = state.sessions.get(user.org().id, record.id).await?;
    Ok(render(state, user, &record, status, &extras).await)
}

fn failed(message: String) -> Extras {
    Extras {
        error: Some(message),
        ..Extras::default()
    }
}

pub(crate) async fn scan(
    State(state): State<AppState>,
    Path(id): Path<String>,
    CsrfForm { user, form }: CsrfForm<ScanForm>,
) -> Result<Response, DashError> {
    let sim = sim(&state)?;
    let record = state.sessions.get(user.org().id, parse_id(&id)?).await?;
    let phone = Phone::try_from(form.phone.trim()).map_err(|_| DashError::NotFound)?;
    // The code the page shows right now, as the phone's camera would see it.
    let code = match state.sessions.qr(user.org().id, record.id).await {
        Ok(code) => code,
        Err(error) => {
            let extras = failed(describe(error)?);
            return page_with(&state, &user, &record, StatusCode::CONFLICT, extras).await;
        }
    };
    if let Err(error) = sim.scan_qr(phone.as_str(), &code.code) {
        let extras = failed(format!("The simulated phone could not scan: {error}."));
        return page_with(&state, &user, &record, StatusCode::CONFLICT, extras).await;
    }
    tracing::info!(session_id = %record.id, "sandbox phone scanned the QR code");
    Ok(Redirect::to(&format!("/sessions/{}", record.id)).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct EnterCodeForm {
    phone: String,
    code: String,
}

pub(crate) async fn enter_code(
    State(state): State<AppState>,
    Path(id): Path<String>,
    CsrfForm { user, form }: CsrfForm<EnterCodeForm>,
) -> Result<Response, DashError> {
    let sim = sim(&state)?;
    let record = state.sessions.get(user.org().id, parse_id(&id)?).await?;
    let phone = Phone::try_from(form.phone.trim()).map_err(|_| DashError::NotFound)?;
    let outcome = tokio::time::timeout(
        ENTER_CODE_TIMEOUT,
        sim.enter_code(phone.as_str(), &form.code),
    )
    .await;
    let message = match outcome {
        Ok(Ok(outcome)) => {
            tracing::info!(session_id = %record.id, ?outcome, "sandbox phone entered the pairing code");
            return Ok(Redirect::to(&format!("/sessions/{}", record.id)).into_response());
        }
        Ok(Err(error)) => format!("The simulated phone could not enter the code: {error}."),
        Err(_) => "The simulated phone did not finish entering the code in time.".to_string(),
    };
    page_with(
        &state,
        &user,
        &record,
        StatusCode::CONFLICT,
        failed(message),
    )
    .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct MessageForm {
    from: String,
    text: String,
}

pub(crate) async fn message(
    State(state): State<AppState>,
    Path(id): Path<String>,
    CsrfForm { user, form }: CsrfForm<MessageForm>,
) -> Result<Response, DashError> {
    let sim = sim(&state)?;
    let record = state.sessions.get(user.org().id, parse_id(&id)?).await?;
    let (Some(to), SessionStatus::Working) = (record.phone.clone(), record.status) else {
        let extras = failed("The session must be linked and working to receive a message.".into());
        return page_with(&state, &user, &record, StatusCode::CONFLICT, extras).await;
    };
    let Ok(from) = Phone::try_from(form.from.trim()) else {
        let extras =
            failed("Enter the contact's number in international format, like 15550101234.".into());
        return page_with(
            &state,
            &user,
            &record,
            StatusCode::UNPROCESSABLE_ENTITY,
            extras,
        )
        .await;
    };
    let text = if form.text.trim().is_empty() {
        "Hello from the sandbox"
    } else {
        form.text.trim()
    };
    let extras = match sim.phone_send_text(from.as_str(), &to, text).await {
        Ok(message_id) => Extras {
            notice: Some(format!(
                "+{from} sent “{text}” to +{to} (message id {message_id}). The gateway receives it like any WhatsApp message."
            )),
            ..Extras::default()
        },
        Err(error) => failed(format!("The simulated contact could not send: {error}.")),
    };
    page_with(&state, &user, &record, StatusCode::OK, extras).await
}

/// What `serve --sandbox` runs besides the gateway: the simulator, and a
/// temporary directory for the database and the sessions' device keys,
/// deleted on exit, so every sandbox starts fresh and prints a fresh
/// sign-in.
pub(crate) struct SandboxEnv {
    sim: wasim::Simulator,
    _dir: tempfile::TempDir,
}

impl SandboxEnv {
    /// Starts the simulator when `config` asks for the sandbox and points
    /// the configuration at it; otherwise leaves `config` alone.
    pub(crate) async fn prepare(
        mut config: crate::config::Config,
    ) -> anyhow::Result<(crate::config::Config, Option<Self>)> {
        use anyhow::Context;

        if !config.sandbox {
            return Ok((config, None));
        }
        let sim = wasim::Simulator::start(wasim::SimConfig {
            latency: std::time::Duration::from_millis(config.sandbox_latency_ms),
            latency_jitter: std::time::Duration::from_millis(config.sandbox_latency_jitter_ms),
            ..wasim::SimConfig::default()
        })
        .await
        .context("starting the sandbox's WhatsApp simulator")?;
        let dir = tempfile::Builder::new()
            .prefix("wagate-sandbox-")
            .tempdir()
            .context("creating the sandbox's data directory")?;
        config.whatsapp_url = Some(url::Url::parse(&sim.ws_url()).context("the simulator's URL")?);
        config.data_dir = dir.path().to_path_buf();
        // A file, not `sqlite::memory:`: an in-memory database lives and dies
        // with its connection, and sqlx closes a connection whose query was
        // cancelled (a browser giving up on a request), which silently
        // swapped in an empty database under load.
        let database = dir.path().join("wagate.db");
        let database = database
            .to_str()
            .context("the sandbox's temporary directory is not UTF-8")?;
        config.database_url = Some(crate::secret::Secret::new(format!("sqlite://{database}")));
        // A sandbox is tried on one machine: its webhook receivers are local.
        config.allow_private_network = true;
        tracing::info!(simulator = %sim.ws_url(), "sandbox: sessions connect to the built-in simulator");
        Ok((config, Some(Self { sim, _dir: dir })))
    }

    pub(crate) fn handle(&self) -> wasim::SimHandle {
        self.sim.handle()
    }
}

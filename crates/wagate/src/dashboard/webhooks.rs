//! Webhooks of the current organization: list them with their recent
//! deliveries, create one (its secret shown once), enable, disable,
//! delete, send a test event. Owners and admins only, like API tokens: a
//! webhook receives every message the organization's sessions get. Input
//! is checked by the same code as the REST API (`webhooks::manage`).

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use super::auth::{CurrentUser, Manager};
use super::csrf::{CsrfForm, NoFields};
use super::error::DashError;
use super::html::{Nav, TextField, button_form, csrf_field, described_by, field_error, user_page};
use super::view::{sentence, time};
use crate::app::AppState;
use crate::domain::{DeliveryStatus, DisabledReason, WebhookId};
use crate::events::EventType;
use crate::store::{DeliveryQuery, DeliveryRecord, SessionQuery, SessionRecord, WebhookRecord};
use crate::webhooks::manage::{self, InvalidWebhook, MAX_WEBHOOKS, WebhookError, WebhookInput};

/// Deliveries shown per webhook; the API pages through the rest.
const RECENT_DELIVERIES: u32 = 10;
/// A checkbox per event type is named `event:<type>`: forms keep the last
/// of repeated fields, so each type gets a field of its own.
const EVENT_FIELD: &str = "event:";

/// What the page shows besides the list.
#[derive(Default)]
struct View<'a> {
    url: &'a str,
    events: Vec<EventType>,
    session: &'a str,
    error: Option<&'a InvalidWebhook>,
    created: Option<(&'a WebhookRecord, &'a str)>,
    notice: Option<String>,
    alert: Option<String>,
}

async fn render(
    state: &AppState,
    Manager(user): &Manager,
    status: StatusCode,
    view: &View<'_>,
) -> Result<Response, DashError> {
    let org = user.org().id;
    let hooks = state
        .store
        .webhooks()
        .list_webhooks(org, u32::try_from(MAX_WEBHOOKS).unwrap_or(u32::MAX), None)
        .await?;
    let sessions = state
        .sessions
        .list(
            org,
            &SessionQuery {
                status: None,
                limit: 100,
                after: None,
            },
        )
        .await?
        .sessions;
    let mut cards = Vec::with_capacity(hooks.len());
    for hook in &hooks {
        let deliveries = state
            .store
            .webhooks()
            .list_deliveries(
                org,
                hook.id,
                &DeliveryQuery {
                    status: None,
                    limit: RECENT_DELIVERIES,
                    before: None,
                },
            )
            .await?;
        cards.push(card(user, hook, &deliveries, &sessions));
    }
    let body = html! {
        div.page-head {
            div {
                h1 { "Webhooks" }
                p.muted {
                    "URLs that receive the events of " strong { (user.org().name) }
                    " as signed POST requests (Standard Webhooks)."
                }
            }
        }
        @if let Some(notice) = &view.notice {
            div.alert.alert-success role="status" data-notice { (notice) }
        }
        @if let Some(alert) = &view.alert {
            div.alert.alert-error role="alert" { (alert) }
        }
        @if let Some((hook, secret)) = view.created {
            div.alert.alert-success.secret-once role="status" data-new-webhook {
                p {
                    strong { "Webhook to " (hook.url.as_str()) " created." }
                    " Copy its signing secret now — it is not shown again:"
                }
                code.secret data-secret { (secret) }
            }
        }
        (create_form(user, view, &sessions))
        @if hooks.is_empty() {
            section.card { p.empty data-empty { "No webhooks yet." } }
        }
        @for card in cards { (card) }
    };
    Ok(user_page(
        state,
        user,
        "Webhooks",
        Nav::Webhooks,
        status,
        body,
    ))
}

fn create_form(user: &CurrentUser, view: &View<'_>, sessions: &[SessionRecord]) -> Markup {
    let error_on = |field: &str| {
        view.error
            .filter(|e| e.field == field)
            .map(|e| sentence(&e.message))
    };
    let (url_error, events_error, session_error) =
        (error_on("url"), error_on("events"), error_on("sessions"));
    html! {
        section.card {
            h2 { "New webhook" }
            form.webhook-form method="post" action="/webhooks" novalidate {
                (csrf_field(user))
                (TextField {
                    label: "URL",
                    id: "webhook-url",
                    name: "url",
                    kind: "url",
                    placeholder: "https://example.com/hooks/whatsapp",
                    value: view.url,
                    error: url_error.as_deref(),
                }
                .render())
                fieldset.field #webhook-events
                    aria-describedby=[described_by(events_error.as_deref(), "webhook-events")] {
                    legend { "Events" }
                    p.hint { "Leave all unticked for every event, including types added later." }
                    div.checks {
                        @for event in EventType::ALL {
                            label.check {
                                input type="checkbox" name={ (EVENT_FIELD) (event.as_str()) } value="on"
                                    checked[view.events.contains(&event)];
                                " " code { (event.as_str()) }
                            }
                        }
                    }
                    (field_error(events_error.as_deref(), "webhook-events"))
                }
                div.field {
                    label for="webhook-session" { "Session" }
                    select #webhook-session name="session"
                        aria-invalid=[session_error.as_ref().map(|_| "true")]
                        aria-describedby=[described_by(session_error.as_deref(), "webhook-session")] {
                        option value="" { "All sessions" }
                        @for session in sessions {
                            @let id = session.id.to_string();
                            option value=(id) selected[view.session == id] { (session_name(session)) }
                        }
                    }
                    (field_error(session_error.as_deref(), "webhook-session"))
                }
                button.button.primary type="submit" { "Create webhook" }
            }
        }
    }
}

fn session_name(session: &SessionRecord) -> String {
    match &session.label {
        Some(label) => label.as_str().to_string(),
        None => format!("Untitled ({})", session.id),
    }
}

fn card(
    user: &CurrentUser,
    hook: &WebhookRecord,
    deliveries: &[DeliveryRecord],
    sessions: &[SessionRecord],
) -> Markup {
    let base = format!("/webhooks/{}/action", hook.id);
    html! {
        section.card.webhook data-webhook-id=(hook.id) {
            div.webhook-head {
                div {
                    h2.mono.webhook-url { (hook.url.as_str()) }
                    p.muted.small {
                        @match &hook.event_types {
                            None => "Every event",
                            Some(types) => {
                                @for (i, event) in types.iter().enumerate() {
                                    @if i > 0 { ", " }
                                    code { (event.as_str()) }
                                }
                            }
                        }
                        " · "
                        @match &hook.session_ids {
                            None => "every session",
                            Some(ids) => {
                                @for (i, id) in ids.iter().enumerate() {
                                    @if i > 0 { ", " }
                                    @match sessions.iter().find(|s| s.id == *id) {
                                        Some(session) => (session_name(session)),
                                        None => span.mono { (id) },
                                    }
                                }
                            }
                        }
                        " · created " (time(hook.created_at))
                    }
                }
                div {
                    @if hook.enabled {
                        span.badge.badge-working data-webhook-state="enabled" { "Enabled" }
                    } @else {
                        span.badge.badge-stopped data-webhook-state="disabled" { "Disabled" }
                        @if let Some(reason) = hook.disabled_reason {
                            " " span.muted.small { (disabled_because(reason)) }
                        }
                    }
                }
            }
            div.actions {
                @if hook.enabled {
                    (button_form(user, &format!("{base}/test"), "Send test event", "button primary", None))
                    (button_form(user, &format!("{base}/disable"), "Disable", "button", None))
                } @else {
                    (button_form(user, &format!("{base}/enable"), "Enable", "button primary", None))
                }
                (button_form(
                    user,
                    &format!("{base}/delete"),
                    "Delete",
                    "button danger",
                    Some("Delete this webhook? It stops receiving events and its delivery log is removed."),
                ))
            }
            h3 { "Recent deliveries" }
            @if deliveries.is_empty() {
                p.muted.small data-no-deliveries { "Nothing delivered yet." }
            } @else {
                div.table-wrap {
                    table.deliveries {
                        thead {
                            tr {
                                th { "Created" } th { "Event" } th { "Status" } th { "Attempts" }
                                th { "Last answer" } th { "Last attempt" }
                            }
                        }
                        tbody {
                            @for delivery in deliveries { (delivery_row(delivery)) }
                        }
                    }
                }
            }
        }
    }
}

fn disabled_because(reason: DisabledReason) -> &'static str {
    match reason {
        DisabledReason::Gone => "by the gateway: the receiver answered 410 Gone",
        DisabledReason::Failing => "by the gateway: every delivery failed for too long",
    }
}

fn delivery_row(delivery: &DeliveryRecord) -> Markup {
    let badge = match delivery.status {
        DeliveryStatus::Delivered => "badge badge-working",
        DeliveryStatus::Pending => "badge badge-starting",
        DeliveryStatus::Failed => "badge badge-failed",
    };
    html! {
        tr data-delivery-id=(delivery.id) data-event-type=(delivery.event_type) {
            td.cell-time { (time(delivery.created_at)) }
            td { code { (delivery.event_type) } }
            td { span class=(badge) data-delivery-status=(delivery.status.as_str()) { (delivery.status.as_str()) } }
            td { (delivery.attempts) }
            td {
                @if let Some(code) = delivery.last_status_code {
                    span.mono data-status-code { (code) }
                }
                @if let Some(error) = &delivery.last_error {
                    " " span.muted.small { (error) }
                }
            }
            td.cell-time {
                @if let Some(at) = delivery.last_attempt_at { (time(at)) }
            }
        }
    }
}

pub(super) async fn list(
    State(state): State<AppState>,
    manager: Manager,
) -> Result<Response, DashError> {
    render(&state, &manager, StatusCode::OK, &View::default()).await
}

/// The create form: fixed fields, plus one `event:<type>` per ticked box.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Create {
    url: String,
    session: String,
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
}

impl Create {
    fn events(&self) -> Vec<String> {
        self.rest
            .keys()
            .filter_map(|key| key.strip_prefix(EVENT_FIELD))
            .map(str::to_string)
            .collect()
    }
}

pub(super) async fn create(
    State(state): State<AppState>,
    CsrfForm { user, form }: CsrfForm<Create>,
) -> Result<Response, DashError> {
    let manager = Manager::try_from(user)?;
    let events = form.events();
    let session = form.session.trim();
    let input = WebhookInput {
        url: form.url.trim().to_string(),
        // Nothing ticked: every type, as `["*"]` in the API.
        events: (!events.is_empty()).then(|| events.clone()),
        sessions: (!session.is_empty()).then(|| vec![session.to_string()]),
        enabled: None,
    };
    let org = manager.0.org().id;
    match manage::create(state.store.as_ref(), &state.egress, org, input).await {
        Ok((record, secret)) => {
            let view = View {
                created: Some((&record, secret.expose().as_str())),
                ..View::default()
            };
            render(&state, &manager, StatusCode::CREATED, &view).await
        }
        Err(WebhookError::Invalid(invalid)) => {
            let view = View {
                url: &form.url,
                events: events.iter().filter_map(|e| EventType::parse(e)).collect(),
                session: &form.session,
                error: Some(&invalid),
                ..View::default()
            };
            render(&state, &manager, StatusCode::UNPROCESSABLE_ENTITY, &view).await
        }
        Err(other) => Err(other.into()),
    }
}

pub(super) async fn action(
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    CsrfForm { user, .. }: CsrfForm<NoFields>,
) -> Result<Response, DashError> {
    let manager = Manager::try_from(user)?;
    let org = manager.0.org().id;
    let id: WebhookId = id.parse().map_err(|_| DashError::NotFound)?;
    match action.as_str() {
        "enable" | "disable" => {
            manage::set_enabled(state.store.as_ref(), org, id, action == "enable").await?;
        }
        "delete" => manage::delete(state.store.as_ref(), org, id).await?,
        "test" => match manage::send_test(state.store.as_ref(), &state.hub, org, id).await {
            Ok(_) => {
                let view = View {
                    notice: Some(
                        "Test event queued. It is delivered like any event; reload to see the receiver's answer under Recent deliveries.".into(),
                    ),
                    ..View::default()
                };
                return render(&state, &manager, StatusCode::OK, &view).await;
            }
            Err(WebhookError::Disabled) => {
                let view = View {
                    alert: Some(sentence(&WebhookError::Disabled.to_string())),
                    ..View::default()
                };
                return render(&state, &manager, StatusCode::CONFLICT, &view).await;
            }
            Err(other) => return Err(other.into()),
        },
        _ => return Err(DashError::NotFound),
    }
    Ok(Redirect::to("/webhooks").into_response())
}

//! What the REST API and the dashboard both do to webhooks: check what a
//! person typed (one set of rules, so a URL the API refuses is refused on
//! the page too, with the same words), create, change, enable, disable
//! and delete one, and send it a test event.

use std::collections::BTreeSet;
use std::time::Duration;

use url::Url;

use crate::domain::{OrgId, SessionId, WebhookId, generate_secret};
use crate::egress::{EgressError, EgressPolicy};
use crate::events::EventType;
use crate::hub::EventHub;
use crate::secret::Secret;
use crate::store::{DeliveryRecord, NewWebhook, Store, StoreError, WebhookPatch, WebhookRecord};

/// Webhooks an organization may have: every event fans out to each.
pub(crate) const MAX_WEBHOOKS: u64 = 50;
const MAX_URL_LENGTH: usize = 2048;
const MAX_EVENT_TYPES: usize = 32;
const MAX_SESSIONS: usize = 100;
/// "Every event type", in a filter.
pub(crate) const ALL_EVENTS: &str = "*";
/// How long creating a webhook waits for DNS to check its host.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

/// One field a person got wrong: a stable code, the field, and a sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidWebhook {
    pub code: &'static str,
    pub field: &'static str,
    pub message: String,
}

fn invalid(code: &'static str, field: &'static str, message: impl Into<String>) -> InvalidWebhook {
    InvalidWebhook {
        code,
        field,
        message: message.into(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error(transparent)]
    Invalid(#[from] InvalidWebhook),
    #[error("webhook not found")]
    NotFound,
    #[error("the webhook is disabled; enable it before sending a test event")]
    Disabled,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A webhook as a person describes it, before any check.
#[derive(Debug, Clone, Default)]
pub(crate) struct WebhookInput {
    pub url: String,
    /// `None`, or a list holding `"*"`: every type.
    pub events: Option<Vec<String>>,
    /// `None`: every session.
    pub sessions: Option<Vec<String>>,
    /// Default `true`.
    pub enabled: Option<bool>,
}

pub(crate) async fn parse_url(egress: &EgressPolicy, url: &str) -> Result<Url, InvalidWebhook> {
    if url.len() > MAX_URL_LENGTH {
        return Err(invalid(
            "url_too_long",
            "url",
            format!("url must be at most {MAX_URL_LENGTH} characters"),
        ));
    }
    let parsed = Url::parse(url).map_err(|e| invalid("invalid_url", "url", e.to_string()))?;
    if !crate::egress::has_valid_host(&parsed) {
        return Err(invalid(
            "invalid_url",
            "url",
            "url's host must be a domain name or an IP address",
        ));
    }
    let refused = |error: EgressError| match error {
        EgressError::UnsupportedScheme => invalid(
            "unsupported_url_scheme",
            "url",
            "url must be an http or https URL",
        ),
        EgressError::NoHost => invalid("invalid_url", "url", "url must name a host"),
        error @ (EgressError::Forbidden(_) | EgressError::NoAddress) => invalid(
            "private_address",
            "url",
            format!("url is refused: {error}; private networks are not allowed by this gateway"),
        ),
    };
    egress.check_url(&parsed).map_err(refused)?;
    // A name that resolves to a private address is refused now, for a
    // clear answer; one that does not resolve (yet) is accepted, and each
    // delivery checks again anyway.
    match tokio::time::timeout(RESOLVE_TIMEOUT, egress.check_resolved(&parsed)).await {
        Ok(Err(error @ EgressError::Forbidden(_))) => Err(refused(error)),
        _ => Ok(parsed),
    }
}

pub(crate) fn parse_events(
    events: Option<Vec<String>>,
) -> Result<Option<Vec<EventType>>, InvalidWebhook> {
    let Some(events) = events else {
        return Ok(None);
    };
    if events.is_empty() {
        return Err(invalid(
            "empty_event_filter",
            "events",
            "events must name at least one event type, or be [\"*\"] (or absent) for all",
        ));
    }
    if events.len() > MAX_EVENT_TYPES {
        return Err(invalid(
            "too_many_event_types",
            "events",
            format!("events may name at most {MAX_EVENT_TYPES} types"),
        ));
    }
    if events.iter().any(|e| e == ALL_EVENTS) {
        return Ok(None);
    }
    let mut types = Vec::new();
    for name in &events {
        let Some(event_type) = EventType::parse(name) else {
            let known: Vec<_> = EventType::ALL.iter().map(|t| t.as_str()).collect();
            return Err(invalid(
                "unknown_event_type",
                "events",
                format!(
                    "unknown event type {name:?}; known types: {}",
                    known.join(", ")
                ),
            ));
        };
        if !types.contains(&event_type) {
            types.push(event_type);
        }
    }
    Ok(Some(types))
}

pub(crate) async fn parse_sessions(
    store: &dyn Store,
    org: OrgId,
    sessions: Option<Vec<String>>,
) -> Result<Option<Vec<SessionId>>, WebhookError> {
    let Some(sessions) = sessions else {
        return Ok(None);
    };
    if sessions.is_empty() {
        return Err(invalid(
            "empty_session_filter",
            "sessions",
            "sessions must name at least one session, or be absent for all",
        )
        .into());
    }
    if sessions.len() > MAX_SESSIONS {
        return Err(invalid(
            "too_many_sessions",
            "sessions",
            format!("sessions may name at most {MAX_SESSIONS} sessions"),
        )
        .into());
    }
    let mut ids = BTreeSet::new();
    for session in &sessions {
        let id: SessionId = session.parse().map_err(|_| {
            invalid(
                "invalid_session_id",
                "sessions",
                format!("{session:?} is not a session id (a UUID)"),
            )
        })?;
        // Another organization's session is as unknown as a missing one.
        if store.sessions().get_session(org, id).await?.is_none() {
            return Err(invalid(
                "unknown_session",
                "sessions",
                format!("no session {id} in this organization"),
            )
            .into());
        }
        ids.insert(id);
    }
    Ok(Some(ids.into_iter().collect()))
}

/// Checks `input` and creates the webhook; returns it with its secret,
/// which is never readable again.
pub(crate) async fn create(
    store: &dyn Store,
    egress: &EgressPolicy,
    org: OrgId,
    input: WebhookInput,
) -> Result<(WebhookRecord, Secret<String>), WebhookError> {
    let url = parse_url(egress, &input.url).await?;
    let event_types = parse_events(input.events)?;
    let session_ids = parse_sessions(store, org, input.sessions).await?;
    if store.webhooks().count_webhooks(org).await? >= MAX_WEBHOOKS {
        return Err(invalid(
            "too_many_webhooks",
            "url",
            format!("an organization can have at most {MAX_WEBHOOKS} webhooks"),
        )
        .into());
    }
    let secret = generate_secret();
    let record = store
        .webhooks()
        .insert_webhook(NewWebhook {
            id: WebhookId::new(),
            org_id: org,
            url,
            event_types,
            session_ids,
            enabled: input.enabled.unwrap_or(true),
            secret: secret.clone(),
        })
        .await?;
    tracing::info!(webhook_id = %record.id, "webhook created");
    Ok((record, secret))
}

/// A change to a webhook as a person describes it, before any check:
/// `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub(crate) struct WebhookChange {
    pub url: Option<String>,
    /// `Some(None)`, or a list holding `"*"`: every type.
    pub events: Option<Option<Vec<String>>>,
    /// `Some(None)`: every session.
    pub sessions: Option<Option<Vec<String>>>,
    /// Enabling a webhook the gateway disabled resumes its pending
    /// deliveries.
    pub enabled: Option<bool>,
}

/// Checks `change` and applies it.
pub(crate) async fn update(
    store: &dyn Store,
    egress: &EgressPolicy,
    org: OrgId,
    id: WebhookId,
    change: WebhookChange,
) -> Result<WebhookRecord, WebhookError> {
    let webhooks = store.webhooks();
    // Not found before invalid: another organization's webhook reveals
    // nothing, not even what its validation would say.
    webhooks
        .get_webhook(org, id)
        .await?
        .ok_or(WebhookError::NotFound)?;
    let url = match change.url {
        Some(url) => Some(parse_url(egress, &url).await?),
        None => None,
    };
    let event_types = change.events.map(parse_events).transpose()?;
    let session_ids = match change.sessions {
        Some(sessions) => Some(parse_sessions(store, org, sessions).await?),
        None => None,
    };
    webhooks
        .update_webhook(
            org,
            id,
            WebhookPatch {
                url,
                event_types,
                session_ids,
                enabled: change.enabled,
            },
        )
        .await?
        .ok_or(WebhookError::NotFound)
}

/// Enables or disables a webhook, and nothing else.
pub(crate) async fn set_enabled(
    store: &dyn Store,
    org: OrgId,
    id: WebhookId,
    enabled: bool,
) -> Result<WebhookRecord, WebhookError> {
    let patch = WebhookPatch {
        enabled: Some(enabled),
        ..WebhookPatch::default()
    };
    let record = store
        .webhooks()
        .update_webhook(org, id, patch)
        .await?
        .ok_or(WebhookError::NotFound)?;
    tracing::info!(webhook_id = %id, enabled, "webhook enabled or disabled");
    Ok(record)
}

/// Deletes a webhook and its delivery log.
pub(crate) async fn delete(
    store: &dyn Store,
    org: OrgId,
    id: WebhookId,
) -> Result<(), WebhookError> {
    if !store.webhooks().delete_webhook(org, id).await? {
        return Err(WebhookError::NotFound);
    }
    tracing::info!(webhook_id = %id, "webhook deleted");
    Ok(())
}

/// Queues a `webhook.test` event for this one webhook, whatever its
/// filters, and wakes the dispatcher: it is signed, delivered, retried
/// and logged like any other delivery, so a test proves the whole path a
/// real event takes. A disabled webhook is refused rather than left with
/// a test that would wait until someone enables it.
pub(crate) async fn send_test(
    store: &dyn Store,
    hub: &EventHub,
    org: OrgId,
    id: WebhookId,
) -> Result<DeliveryRecord, WebhookError> {
    let webhooks = store.webhooks();
    let hook = webhooks
        .get_webhook(org, id)
        .await?
        .ok_or(WebhookError::NotFound)?;
    if !hook.enabled {
        return Err(WebhookError::Disabled);
    }
    let delivery = webhooks
        .queue_test(org, id)
        .await?
        .ok_or(WebhookError::NotFound)?;
    // Not published on the hub: only this webhook is meant to see it.
    hub.committed().notify_one();
    tracing::info!(webhook_id = %id, delivery_id = %delivery.id, "webhook test event queued");
    Ok(delivery)
}

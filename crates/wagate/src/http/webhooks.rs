//! `/webhooks`: an organization's webhook endpoints, their secrets and
//! their delivery log.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Authenticated;
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path, Query, page_limit};
use crate::app::AppState;
use crate::domain::{
    DeliveryId, DeliveryStatus, DisabledReason, EventId, OrgId, SessionId, WebhookId,
    generate_secret,
};
use crate::store::{DeliveryQuery, DeliveryRecord, WebhookRecord};
use crate::webhooks::manage::{
    self, ALL_EVENTS, InvalidWebhook, WebhookChange, WebhookError, WebhookInput,
};

const DEFAULT_GRACE: Duration = Duration::from_secs(24 * 3600);
const MAX_GRACE: Duration = Duration::from_secs(7 * 24 * 3600);

/// A webhook. Each delivery is a `POST` of one event envelope (the same
/// JSON the realtime WebSocket sends) with the Standard Webhooks headers:
/// `webhook-id` (the event id, the same on every retry), `webhook-timestamp`
/// (unix seconds of the attempt) and `webhook-signature` (`v1,<base64
/// HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}">` keyed with
/// the base64 part of the secret after `whsec_`; during a rotation's grace
/// period, two such signatures separated by a space). A 2xx answer is a
/// delivery; anything else is retried with exponential backoff; `410 Gone`
/// disables the webhook.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Webhook {
    #[schema(value_type = String, format = Uuid)]
    pub id: WebhookId,
    pub url: String,
    /// Event types delivered; `["*"]` is every type, present and future.
    pub events: Vec<String>,
    /// Only these sessions' events; `null` is every session.
    #[schema(value_type = Option<Vec<String>>)]
    pub sessions: Option<Vec<SessionId>>,
    pub enabled: bool,
    /// Set when the gateway disabled it.
    pub disabled_reason: Option<DisabledReason>,
    /// Until when the secret before the last rotation still signs.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<WebhookRecord> for Webhook {
    fn from(record: WebhookRecord) -> Self {
        let previous_secret_expires_at = record
            .previous_expires_at
            .filter(|until| *until > Utc::now() && record.previous_secret.is_some());
        Self {
            id: record.id,
            url: record.url.to_string(),
            events: match record.event_types {
                None => vec![ALL_EVENTS.to_string()],
                Some(types) => types.iter().map(|t| t.as_str().to_string()).collect(),
            },
            sessions: record.session_ids,
            enabled: record.enabled,
            disabled_reason: record.disabled_reason,
            previous_secret_expires_at,
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }
}

/// A webhook with its signing secret: only shown when created or rotated.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WebhookWithSecret {
    #[serde(flatten)]
    pub webhook: Webhook,
    /// `whsec_` and base64 of 32 random bytes. Store it: it is not shown
    /// again.
    pub secret: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateWebhook {
    /// An `http` or `https` URL, up to 2048 characters; its host must not
    /// be (or resolve to) a private address unless the gateway allows it
    /// (`private_address`: a rule of the gateway's configuration, which
    /// this document cannot show).
    #[schema(min_length = 8, max_length = 2048)]
    pub url: String,
    /// Event types to deliver (up to 32); absent, `null` or `["*"]` for all.
    pub events: Option<Vec<String>>,
    /// Only these sessions (up to 100); absent or `null` for all.
    pub sessions: Option<Vec<String>>,
    /// Default `true`.
    pub enabled: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateWebhook {
    /// As when creating.
    #[schema(min_length = 8, max_length = 2048)]
    pub url: Option<String>,
    /// `null` or `["*"]`: every type; absent leaves it unchanged.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub events: Option<Option<Vec<String>>>,
    /// `null`: every session; absent leaves it unchanged.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub sessions: Option<Option<Vec<String>>>,
    /// Enabling a webhook the gateway disabled resumes its pending
    /// deliveries, oldest first.
    pub enabled: Option<bool>,
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<Vec<String>>>, D::Error> {
    Option::<Vec<String>>::deserialize(d).map(Some)
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RotateSecret {
    /// How long the old secret keeps signing next to the new one, in
    /// seconds: 0 to 604800 (7 days), default 86400.
    #[schema(minimum = 0, maximum = 604800)]
    pub grace_period_secs: Option<u64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Page size, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// `next_cursor` from the previous page.
    #[param(format = Uuid)]
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WebhookList {
    pub data: Vec<Webhook>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct DeliveryParams {
    /// Page size, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// `next_cursor` from the previous page.
    #[param(format = Uuid)]
    pub cursor: Option<String>,
    /// Only deliveries in this status.
    pub status: Option<DeliveryStatus>,
}

/// One event's delivery to the webhook, across all its attempts.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Delivery {
    #[schema(value_type = String, format = Uuid)]
    pub id: DeliveryId,
    /// Also the `webhook-id` header of every attempt.
    #[schema(value_type = String, format = Uuid)]
    pub event_id: EventId,
    pub event_type: String,
    #[schema(value_type = String, format = Uuid)]
    pub session_id: SessionId,
    pub status: DeliveryStatus,
    pub attempts: u32,
    /// While pending: when it is tried next (or, if an earlier event of the
    /// same session is still pending, as soon as that one is done).
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// The receiver's last HTTP status, if it answered.
    pub last_status_code: Option<u16>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// The first 1024 bytes of the receiver's last answer.
    pub last_response: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<DeliveryRecord> for Delivery {
    fn from(record: DeliveryRecord) -> Self {
        Self {
            id: record.id,
            event_id: record.event_id,
            event_type: record.event_type,
            session_id: record.session_id,
            status: record.status,
            attempts: record.attempts,
            next_attempt_at: record.next_attempt_at,
            last_attempt_at: record.last_attempt_at,
            last_status_code: record.last_status_code,
            last_error: record.last_error,
            last_response: record.last_response,
            delivered_at: record.delivered_at,
            created_at: record.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DeliveryList {
    pub data: Vec<Delivery>,
    /// Pass as `cursor` to get the next (older) page; `null` on the last.
    pub next_cursor: Option<String>,
}

impl From<InvalidWebhook> for ApiError {
    fn from(error: InvalidWebhook) -> Self {
        match error.code {
            // Valid requests that name what is not there, or one webhook
            // too many: not a malformed body (422), so a client can tell.
            "unknown_session" => Self::UnknownReference {
                code: error.code,
                field: error.field,
                message: error.message,
            },
            "too_many_webhooks" => Self::Conflict {
                code: error.code,
                message: error.message,
                status: None,
            },
            _ => Self::Validation {
                code: error.code,
                field: error.field,
                message: error.message,
            },
        }
    }
}

impl From<WebhookError> for ApiError {
    fn from(error: WebhookError) -> Self {
        match error {
            WebhookError::Invalid(invalid) => invalid.into(),
            WebhookError::NotFound => Self::WebhookNotFound,
            WebhookError::Disabled => Self::Conflict {
                code: "webhook_disabled",
                message: WebhookError::Disabled.to_string(),
                status: None,
            },
            WebhookError::Store(error) => error.into(),
        }
    }
}

fn invalid(code: &'static str, field: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::Validation {
        code,
        field,
        message: message.into(),
    }
}

fn invalid_cursor() -> ApiError {
    invalid(
        "invalid_cursor",
        "cursor",
        "cursor must be a next_cursor value returned by this endpoint",
    )
}

async fn find(state: &AppState, org: OrgId, id: WebhookId) -> Result<WebhookRecord, ApiError> {
    state
        .store
        .webhooks()
        .get_webhook(org, id)
        .await?
        .ok_or(ApiError::WebhookNotFound)
}

/// Create a webhook.
#[utoipa::path(
    post,
    path = "/webhooks",
    tag = "webhooks",
    request_body = CreateWebhook,
    responses(
        (status = 201, description = "Created; the secret is shown this once", body = WebhookWithSecret),
        (status = 400, description = "`malformed_json`", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 404, description = "`unknown_session`: `sessions` names a session this organization does not have", body = ErrorBody),
        (status = 409, description = "`too_many_webhooks`: the organization has as many as it may", body = ErrorBody),
        (status = 422, description = "`invalid_url`, `url_too_long`, `unsupported_url_scheme`, `private_address`, `empty_event_filter`, `too_many_event_types`, `unknown_event_type`, `empty_session_filter`, `too_many_sessions`, `invalid_session_id`, `invalid_body`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    auth: Authenticated,
    Json(body): Json<CreateWebhook>,
) -> Result<(StatusCode, Json<WebhookWithSecret>), ApiError> {
    let input = WebhookInput {
        url: body.url,
        events: body.events,
        sessions: body.sessions,
        enabled: body.enabled,
    };
    let (record, secret) =
        manage::create(state.store.as_ref(), &state.egress, auth.org_id(), input).await?;
    Ok((
        StatusCode::CREATED,
        Json(WebhookWithSecret {
            webhook: record.into(),
            secret: secret.expose().clone(),
        }),
    ))
}

/// List webhooks, oldest first.
#[utoipa::path(
    get,
    path = "/webhooks",
    tag = "webhooks",
    params(ListParams),
    responses(
        (status = 200, body = WebhookList),
        (status = 400, description = "`invalid_query`", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 422, description = "`invalid_limit`, `invalid_cursor`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    auth: Authenticated,
    Query(params): Query<ListParams>,
) -> Result<Json<WebhookList>, ApiError> {
    let limit = page_limit(params.limit)?;
    let after = params
        .cursor
        .map(|c| c.parse::<WebhookId>())
        .transpose()
        .map_err(|_| invalid_cursor())?;
    let records = state
        .store
        .webhooks()
        .list_webhooks(auth.org_id(), limit, after)
        .await?;
    let next_cursor = (records.len() == limit as usize)
        .then(|| records.last().map(|r| r.id.to_string()))
        .flatten();
    Ok(Json(WebhookList {
        data: records.into_iter().map(Webhook::from).collect(),
        next_cursor,
    }))
}

/// Get a webhook (without its secret).
#[utoipa::path(
    get,
    path = "/webhooks/{id}",
    tag = "webhooks",
    params(("id" = String, Path, format = Uuid)),
    responses(
        (status = 200, body = Webhook),
        (status = 400, description = "`invalid_path`", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "`webhook_not_found`, also for another organization's", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<WebhookId>,
) -> Result<Json<Webhook>, ApiError> {
    Ok(Json(find(&state, auth.org_id(), id).await?.into()))
}

/// Change a webhook's URL, filters or enabled flag.
#[utoipa::path(
    patch,
    path = "/webhooks/{id}",
    tag = "webhooks",
    params(("id" = String, Path, format = Uuid)),
    request_body = UpdateWebhook,
    responses(
        (status = 200, body = Webhook),
        (status = 400, description = "`invalid_path`, `malformed_json`", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "`webhook_not_found`, or `unknown_session` as for create", body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, description = "as for create", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn update(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<WebhookId>,
    Json(body): Json<UpdateWebhook>,
) -> Result<Json<Webhook>, ApiError> {
    let change = WebhookChange {
        url: body.url,
        events: body.events,
        sessions: body.sessions,
        enabled: body.enabled,
    };
    let record = manage::update(
        state.store.as_ref(),
        &state.egress,
        auth.org_id(),
        id,
        change,
    )
    .await?;
    Ok(Json(record.into()))
}

/// Delete a webhook and its delivery log.
#[utoipa::path(
    delete,
    path = "/webhooks/{id}",
    tag = "webhooks",
    params(("id" = String, Path, format = Uuid)),
    responses(
        (status = 204),
        (status = 400, description = "`invalid_path`", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "`webhook_not_found`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<WebhookId>,
) -> Result<StatusCode, ApiError> {
    manage::delete(state.store.as_ref(), auth.org_id(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Rotate the signing secret. The old secret keeps signing next to the
/// new one for the grace period, so receivers can switch without
/// rejecting a delivery. The body is optional.
#[utoipa::path(
    post,
    path = "/webhooks/{id}/rotate-secret",
    tag = "webhooks",
    params(("id" = String, Path, format = Uuid)),
    request_body(content = RotateSecret, description = "Optional"),
    responses(
        (status = 200, description = "The new secret, shown this once", body = WebhookWithSecret),
        (status = 400, description = "`invalid_path`, `malformed_json`", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "`webhook_not_found`", body = ErrorBody),
        (status = 422, description = "`invalid_grace_period`, `invalid_body`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn rotate_secret(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<WebhookId>,
    body: Bytes,
) -> Result<Json<WebhookWithSecret>, ApiError> {
    let body: RotateSecret = if body.iter().all(u8::is_ascii_whitespace) {
        RotateSecret::default()
    } else {
        super::extract::require_object(&body)?;
        let mut value: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
        crate::json::integral_floats(&mut value);
        serde_json::from_value(value).map_err(|e| ApiError::InvalidBody(e.to_string()))?
    };
    let grace = body
        .grace_period_secs
        .map_or(DEFAULT_GRACE, Duration::from_secs);
    if grace > MAX_GRACE {
        return Err(invalid(
            "invalid_grace_period",
            "grace_period_secs",
            format!(
                "grace_period_secs must be between 0 and {}",
                MAX_GRACE.as_secs()
            ),
        ));
    }
    let until = Utc::now() + chrono::Duration::from_std(grace).unwrap_or_default();
    let secret = generate_secret();
    let record = state
        .store
        .webhooks()
        .rotate_secret(auth.org_id(), id, secret.clone(), until)
        .await?
        .ok_or(ApiError::WebhookNotFound)?;
    tracing::info!(webhook_id = %id, grace_secs = grace.as_secs(), "webhook secret rotated");
    Ok(Json(WebhookWithSecret {
        webhook: record.into(),
        secret: secret.expose().clone(),
    }))
}

/// The webhook's deliveries, newest first.
#[utoipa::path(
    get,
    path = "/webhooks/{id}/deliveries",
    tag = "webhooks",
    params(("id" = String, Path, format = Uuid), DeliveryParams),
    responses(
        (status = 200, body = DeliveryList),
        (status = 400, description = "`invalid_path`, `invalid_query`", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "`webhook_not_found`", body = ErrorBody),
        (status = 422, description = "`invalid_limit`, `invalid_cursor`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn deliveries(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<WebhookId>,
    Query(params): Query<DeliveryParams>,
) -> Result<Json<DeliveryList>, ApiError> {
    let org = auth.org_id();
    let limit = page_limit(params.limit)?;
    let before = params
        .cursor
        .map(|c| c.parse::<DeliveryId>())
        .transpose()
        .map_err(|_| invalid_cursor())?;
    find(&state, org, id).await?;
    let records = state
        .store
        .webhooks()
        .list_deliveries(
            org,
            id,
            &DeliveryQuery {
                status: params.status,
                limit,
                before,
            },
        )
        .await?;
    let next_cursor = (records.len() == limit as usize)
        .then(|| records.last().map(|r| r.id.to_string()))
        .flatten();
    Ok(Json(DeliveryList {
        data: records.into_iter().map(Delivery::from).collect(),
        next_cursor,
    }))
}

/// Deliver again: the delivery becomes pending and due now, whatever its
/// status (a replay of a delivered one, a second chance for a failed one),
/// with a fresh retry window. It still waits for earlier pending events
/// of its session.
#[utoipa::path(
    post,
    path = "/webhooks/{id}/deliveries/{delivery_id}/retry",
    tag = "webhooks",
    params(
        ("id" = String, Path, format = Uuid),
        ("delivery_id" = String, Path, format = Uuid),
    ),
    responses(
        (status = 202, body = Delivery),
        (status = 400, description = "`invalid_path`", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "`webhook_not_found`, `delivery_not_found`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn retry(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((id, delivery_id)): Path<(WebhookId, DeliveryId)>,
) -> Result<(StatusCode, Json<Delivery>), ApiError> {
    let org = auth.org_id();
    find(&state, org, id).await?;
    let record = state
        .store
        .webhooks()
        .retry_delivery(org, id, delivery_id)
        .await?
        .ok_or(ApiError::DeliveryNotFound)?;
    // Wake the dispatcher now rather than at its next poll.
    state.hub.committed().notify_one();
    Ok((StatusCode::ACCEPTED, Json(record.into())))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetryDeliveries {
    /// An RFC 3339 time: deliveries of events from then on (inclusive).
    #[schema(format = DateTime, example = "2025-01-31T12:00:00Z")]
    pub since: String,
    /// Which deliveries: `failed` (the default), or `delivered` to send
    /// those again too. `pending` ones are already queued.
    pub status: Option<DeliveryStatus>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RetriedDeliveries {
    /// How many deliveries were queued again.
    pub queued: u64,
}

/// Deliver again every failed (or every delivered) delivery since a time:
/// each becomes pending and due now, with a fresh retry window. They go
/// out in order, oldest event first per session, ahead of that session's
/// newer pending events; a disabled webhook gets them once enabled.
#[utoipa::path(
    post,
    path = "/webhooks/{id}/deliveries/retry",
    tag = "webhooks",
    params(("id" = String, Path, format = Uuid)),
    request_body = RetryDeliveries,
    responses(
        (status = 202, description = "Queued again; `queued` may be 0", body = RetriedDeliveries),
        (status = 400, description = "`invalid_path`, `malformed_json`", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "`webhook_not_found`, also for another organization's", body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, description = "`invalid_since`, `invalid_status`, `invalid_body`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn retry_since(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<WebhookId>,
    Json(body): Json<RetryDeliveries>,
) -> Result<(StatusCode, Json<RetriedDeliveries>), ApiError> {
    let org = auth.org_id();
    // Not found before invalid, as for an update.
    find(&state, org, id).await?;
    let since = DateTime::parse_from_rfc3339(&body.since)
        .map_err(|e| {
            invalid(
                "invalid_since",
                "since",
                format!("since must be an RFC 3339 time such as 2025-01-31T12:00:00Z: {e}"),
            )
        })?
        .with_timezone(&Utc);
    let status = body.status.unwrap_or(DeliveryStatus::Failed);
    if status == DeliveryStatus::Pending {
        return Err(invalid(
            "invalid_status",
            "status",
            "status must be failed or delivered: pending deliveries are already queued",
        ));
    }
    let queued = state
        .store
        .webhooks()
        .replay_deliveries(org, id, since, status)
        .await?;
    tracing::info!(webhook_id = %id, %since, %status, queued, "webhook deliveries queued again");
    if queued > 0 {
        state.hub.committed().notify_one();
    }
    Ok((StatusCode::ACCEPTED, Json(RetriedDeliveries { queued })))
}

/// Send a test event: a `webhook.test` event is queued for this webhook
/// alone (whatever its filters) and delivered, signed, retried and logged
/// like any other event; follow it in the delivery log.
#[utoipa::path(
    post,
    path = "/webhooks/{id}/test",
    tag = "webhooks",
    params(("id" = String, Path, format = Uuid)),
    responses(
        (status = 202, description = "Queued; the delivery as it stands now", body = Delivery),
        (status = 400, description = "`invalid_path`", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "`webhook_not_found`, also for another organization's", body = ErrorBody),
        (status = 409, description = "`webhook_disabled`: enable it first", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn test(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<WebhookId>,
) -> Result<(StatusCode, Json<Delivery>), ApiError> {
    let delivery = manage::send_test(state.store.as_ref(), &state.hub, auth.org_id(), id).await?;
    Ok((StatusCode::ACCEPTED, Json(delivery.into())))
}

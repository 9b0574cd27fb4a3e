//! Webhooks and their delivery outbox. Deliveries are queued by the event
//! log itself (inside the transaction that appends an event, one row per
//! matching enabled webhook); this trait manages webhooks, lets the
//! dispatcher take what is due and record each attempt, and serves the
//! delivery log.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use url::Url;

use super::StoreError;
use crate::domain::{
    DeliveryId, DeliveryStatus, DisabledReason, EventId, OrgId, SessionId, WebhookId,
};
use crate::events::{Envelope, EventType};
use crate::secret::Secret;

#[derive(Debug, Clone, PartialEq)]
pub struct WebhookRecord {
    pub id: WebhookId,
    pub org_id: OrgId,
    pub url: Url,
    /// `None`: every event type, present and future.
    pub event_types: Option<Vec<EventType>>,
    /// `None`: every session of the organization.
    pub session_ids: Option<Vec<SessionId>>,
    pub enabled: bool,
    pub disabled_reason: Option<DisabledReason>,
    pub secret: Secret<String>,
    pub previous_secret: Option<Secret<String>>,
    pub previous_expires_at: Option<DateTime<Utc>>,
    pub failing_since: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub id: WebhookId,
    pub org_id: OrgId,
    pub url: Url,
    pub event_types: Option<Vec<EventType>>,
    pub session_ids: Option<Vec<SessionId>>,
    pub enabled: bool,
    pub secret: Secret<String>,
}

/// A partial update; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct WebhookPatch {
    pub url: Option<Url>,
    pub event_types: Option<Option<Vec<EventType>>>,
    pub session_ids: Option<Option<Vec<SessionId>>>,
    /// Enabling clears the gateway's reason and the failure streak.
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRecord {
    pub id: DeliveryId,
    pub webhook_id: WebhookId,
    pub event_id: EventId,
    pub session_id: SessionId,
    pub event_type: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    /// When it is tried next, while pending (it may also be waiting behind
    /// an earlier event of its session).
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    pub last_response: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct DeliveryQuery {
    pub status: Option<DeliveryStatus>,
    pub limit: u32,
    /// Only deliveries older than this one (the previous page's last).
    pub before: Option<DeliveryId>,
}

/// A delivery that is due and at the head of its (webhook, session) queue,
/// with everything an attempt needs.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub id: DeliveryId,
    pub webhook_id: WebhookId,
    pub org_id: OrgId,
    pub session_id: SessionId,
    pub event_id: EventId,
    pub attempts: u32,
    /// Start of its retry window (creation, or the last replay).
    pub retry_from: DateTime<Utc>,
    pub url: String,
    /// The current secret, then the previous one while its grace lasts.
    pub secrets: Vec<Secret<String>>,
    pub failing_since: Option<DateTime<Utc>>,
    /// The envelope JSON, exactly as logged: the body that is signed.
    pub payload: String,
}

/// What one attempt got back.
#[derive(Debug, Clone, Default)]
pub struct AttemptResult {
    pub at: DateTime<Utc>,
    pub status_code: Option<u16>,
    /// Why it failed, without the URL (it may carry credentials).
    pub error: Option<String>,
    /// The start of the response body, already capped.
    pub response: Option<String>,
}

/// What follows a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    RetryAt(DateTime<Utc>),
    /// Retries ran out: the delivery fails and its session's queue moves on.
    GiveUp,
}

#[async_trait]
pub trait WebhookStore: Send + Sync {
    async fn count_webhooks(&self, org: OrgId) -> Result<u64, StoreError>;
    async fn insert_webhook(&self, new: NewWebhook) -> Result<WebhookRecord, StoreError>;
    async fn get_webhook(
        &self,
        org: OrgId,
        id: WebhookId,
    ) -> Result<Option<WebhookRecord>, StoreError>;
    /// Oldest first, after `after` (exclusive).
    async fn list_webhooks(
        &self,
        org: OrgId,
        limit: u32,
        after: Option<WebhookId>,
    ) -> Result<Vec<WebhookRecord>, StoreError>;
    async fn update_webhook(
        &self,
        org: OrgId,
        id: WebhookId,
        patch: WebhookPatch,
    ) -> Result<Option<WebhookRecord>, StoreError>;
    /// Deletes it with its deliveries.
    async fn delete_webhook(&self, org: OrgId, id: WebhookId) -> Result<bool, StoreError>;
    /// Makes `secret` current; the old one keeps signing until
    /// `previous_expires_at`.
    async fn rotate_secret(
        &self,
        org: OrgId,
        id: WebhookId,
        secret: Secret<String>,
        previous_expires_at: DateTime<Utc>,
    ) -> Result<Option<WebhookRecord>, StoreError>;

    /// The webhook's deliveries, newest first.
    async fn list_deliveries(
        &self,
        org: OrgId,
        webhook: WebhookId,
        query: &DeliveryQuery,
    ) -> Result<Vec<DeliveryRecord>, StoreError>;
    async fn get_delivery(
        &self,
        org: OrgId,
        webhook: WebhookId,
        id: DeliveryId,
    ) -> Result<Option<DeliveryRecord>, StoreError>;
    /// Makes a delivery (whatever its status) pending and due now, with a
    /// fresh retry window.
    async fn retry_delivery(
        &self,
        org: OrgId,
        webhook: WebhookId,
        id: DeliveryId,
    ) -> Result<Option<DeliveryRecord>, StoreError>;

    /// Makes every delivery of the webhook in `status` whose event came at
    /// or after `since` pending and due now, each with a fresh retry
    /// window; returns how many. They go out oldest first per session.
    async fn replay_deliveries(
        &self,
        org: OrgId,
        webhook: WebhookId,
        since: DateTime<Utc>,
        status: DeliveryStatus,
    ) -> Result<u64, StoreError>;
    /// Logs a `webhook.test` event and queues it for webhook `id` alone,
    /// due now, in one transaction; `None` if the organization has no such
    /// webhook.
    async fn queue_test(
        &self,
        org: OrgId,
        id: WebhookId,
    ) -> Result<Option<DeliveryRecord>, StoreError>;

    /// Up to `limit` due deliveries of enabled webhooks, each the oldest
    /// pending event of its (webhook, session), soonest due first; with
    /// `owner`, only of the sessions whose lease that node holds.
    async fn due_deliveries(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        owner: Option<&str>,
    ) -> Result<Vec<DueDelivery>, StoreError>;
    /// The pending deliveries queued behind `head` in its (webhook,
    /// session) queue, in order, as long as they are due at `now`: up to
    /// `limit`, stopping at the first that is not due (a later one must
    /// not overtake it). The dispatcher sends them after the head in the
    /// same run.
    async fn queued_after(
        &self,
        head: &DueDelivery,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<DueDelivery>, StoreError>;
    /// Marks it delivered and ends the webhook's failure streak.
    async fn delivery_succeeded(
        &self,
        delivery: &DueDelivery,
        result: &AttemptResult,
    ) -> Result<(), StoreError>;
    /// [`delivery_succeeded`](Self::delivery_succeeded) for a delivered
    /// run, in one transaction, through the store's group-commit writer
    /// (committed with the other runs that ended at that moment).
    async fn deliveries_succeeded(
        &self,
        delivered: &[(DueDelivery, AttemptResult)],
    ) -> Result<(), StoreError>;
    /// Records a failed attempt; with `disable`, also disables the webhook
    /// (if still enabled) and logs a `webhook.disabled` event in the same
    /// transaction, which is returned to be published after commit.
    async fn delivery_failed(
        &self,
        delivery: &DueDelivery,
        result: &AttemptResult,
        after: AfterFailure,
        disable: Option<DisabledReason>,
    ) -> Result<Option<Envelope>, StoreError>;
}

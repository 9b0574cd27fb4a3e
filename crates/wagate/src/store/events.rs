//! The event log: every event the gateway publishes, kept for a retention
//! period so realtime clients can resume and webhooks can be delivered
//! from it. Events are appended by the aggregate that changed, inside the
//! transaction of that change; this trait only reads and prunes.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::domain::{EventId, OrgId};
use crate::events::Envelope;

#[async_trait]
pub trait EventStore: Send + Sync {
    /// Appends an event that reports no stored state change (a QR code, a
    /// pairing code).
    async fn append_event(&self, event: &mut Envelope) -> Result<(), StoreError>;
    /// The organization's events after `after` (exclusive), oldest first.
    async fn events_after(
        &self,
        org: OrgId,
        after: Option<EventId>,
        limit: u32,
    ) -> Result<Vec<Envelope>, StoreError>;
    /// The oldest event still kept, if any: a resume point older than it
    /// has lost events.
    async fn oldest_event(&self, org: OrgId) -> Result<Option<EventId>, StoreError>;
    /// Whether the organization's log still holds this event.
    async fn has_event(&self, org: OrgId, id: EventId) -> Result<bool, StoreError>;
    /// Deletes the events logged before `before`; returns how many.
    async fn prune_events(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
}

//! What the gateway forgets on purpose: events older than the retention
//! (realtime clients can resume only from within it) and cached media
//! past its own. One background task, a pass at start and then every
//! [`PASS_EVERY`].

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::media_cache::MediaCache;
use crate::store::{Store, StoreError};

/// Often enough that the log never holds much more than the retention.
pub(crate) const PASS_EVERY: Duration = Duration::from_secs(600);

pub(crate) struct Retention {
    pub store: Arc<dyn Store>,
    pub media: MediaCache,
    pub events_for: Duration,
}

impl Retention {
    /// One pass; returns how many events were pruned.
    pub(crate) async fn pass(&self) -> Result<u64, StoreError> {
        if let Err(error) = self.media.trim(None).await {
            tracing::warn!(%error, "could not trim the media cache");
        }
        let keep = chrono::Duration::from_std(self.events_for).unwrap_or(chrono::Duration::MAX);
        let before = Utc::now()
            .checked_sub_signed(keep)
            .unwrap_or(chrono::DateTime::<Utc>::MIN_UTC);
        // A notification is redelivered within hours, never after the
        // events it gave are gone.
        if let Err(error) = self.store.groups().prune_group_notices(before).await {
            tracing::warn!(%error, "could not prune applied group notifications");
        }
        self.store.events().prune_events(before).await
    }

    /// Runs a pass every [`PASS_EVERY`] until cancelled.
    pub(crate) async fn run(self, cancel: CancellationToken) {
        let mut every = tokio::time::interval(PASS_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = every.tick() => match self.pass().await {
                    Ok(0) => {}
                    Ok(pruned) => tracing::info!(pruned, "old events pruned"),
                    Err(error) => tracing::warn!(%error, "could not prune old events"),
                },
            }
        }
    }
}

//! Faults the simulator can be told to inject, and its counters.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Faults {
    delay_ms: AtomicU64,
    outage_until: Mutex<Option<Instant>>,
}

impl Faults {
    pub fn set_response_delay(&self, delay: Duration) {
        self.delay_ms.store(
            delay.as_millis().min(u64::MAX as u128) as u64,
            Ordering::Relaxed,
        );
    }

    pub fn response_delay(&self) -> Duration {
        Duration::from_millis(self.delay_ms.load(Ordering::Relaxed))
    }

    /// Refuse every new connection for `duration` (zero ends an outage).
    pub fn start_outage(&self, duration: Duration) {
        let until = (!duration.is_zero()).then(|| Instant::now() + duration);
        if let Ok(mut slot) = self.outage_until.lock() {
            *slot = until;
        }
    }

    pub fn in_outage(&self) -> bool {
        self.outage_until
            .lock()
            .map(|slot| slot.is_some_and(|until| Instant::now() < until))
            .unwrap_or(false)
    }
}

#[derive(Default, Debug, serde::Serialize)]
pub struct StatsSnapshot {
    pub connections_open: u64,
    pub connections_total: u64,
    pub connections_refused: u64,
    pub stanzas_in: u64,
    pub stanzas_out: u64,
}

#[derive(Default)]
pub struct Stats {
    /// Woken on every connection change, so tests wait instead of polling.
    changed: tokio::sync::Notify,
    open: AtomicU64,
    total: AtomicU64,
    refused: AtomicU64,
    stanzas_in: AtomicU64,
    stanzas_out: AtomicU64,
}

impl Stats {
    pub fn connection_opened(&self) {
        self.open.fetch_add(1, Ordering::Relaxed);
        self.total.fetch_add(1, Ordering::Relaxed);
        self.changed.notify_waiters();
    }
    pub fn connection_closed(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        self.changed.notify_waiters();
    }
    pub fn connection_refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        self.changed.notify_waiters();
    }

    /// Resolves once `ready` holds for the counters.
    pub async fn wait_until(&self, mut ready: impl FnMut(&StatsSnapshot) -> bool) {
        loop {
            let changed = self.changed.notified();
            if ready(&self.snapshot()) {
                return;
            }
            changed.await;
        }
    }
    pub fn stanza_in(&self) {
        self.stanzas_in.fetch_add(1, Ordering::Relaxed);
    }
    pub fn stanza_out(&self) {
        self.stanzas_out.fetch_add(1, Ordering::Relaxed);
    }
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            connections_open: self.open.load(Ordering::Relaxed),
            connections_total: self.total.load(Ordering::Relaxed),
            connections_refused: self.refused.load(Ordering::Relaxed),
            stanzas_in: self.stanzas_in.load(Ordering::Relaxed),
            stanzas_out: self.stanzas_out.load(Ordering::Relaxed),
        }
    }
}

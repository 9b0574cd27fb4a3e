//! Faults the simulator can be told to inject, and its counters.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Default)]
pub(crate) struct Faults {
    delay_ms: AtomicU64,
    jitter_ms: AtomicU64,
    outage_until: Mutex<Option<Instant>>,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Faults {
    /// Every stanza the server sends waits `delay`, give or take up to
    /// `jitter` (uniform): a network's latency. Stanzas keep their order
    /// (each connection's writer waits in turn).
    pub(crate) fn set_latency(&self, delay: Duration, jitter: Duration) {
        self.delay_ms.store(millis(delay), Ordering::Relaxed);
        self.jitter_ms.store(millis(jitter), Ordering::Relaxed);
    }

    pub(crate) fn set_response_delay(&self, delay: Duration) {
        self.set_latency(delay, Duration::ZERO);
    }

    /// The wait before the next stanza goes out.
    pub(crate) fn response_delay(&self) -> Duration {
        let delay = self.delay_ms.load(Ordering::Relaxed);
        let jitter = self.jitter_ms.load(Ordering::Relaxed);
        if jitter == 0 {
            return Duration::from_millis(delay);
        }
        let low = delay.saturating_sub(jitter);
        let high = delay.saturating_add(jitter);
        Duration::from_millis(rand::random_range(low..=high))
    }

    /// Refuse every new connection for `duration` (zero ends an outage).
    pub(crate) fn start_outage(&self, duration: Duration) {
        let until = (!duration.is_zero()).then(|| Instant::now() + duration);
        if let Ok(mut slot) = self.outage_until.lock() {
            *slot = until;
        }
    }

    pub(crate) fn in_outage(&self) -> bool {
        self.outage_until
            .lock()
            .map(|slot| slot.is_some_and(|until| Instant::now() < until))
            .unwrap_or(false)
    }
}

/// Messages the server refuses with an error ack instead of relaying, per
/// recipient phone: the next `count` of them, with `code` (463: missing
/// trusted-contact token; 479: malformed; ...). Lives in the world, which
/// the relay holds locked anyway.
#[derive(Default)]
pub(crate) struct Nacks {
    pending: HashMap<String, (u32, u16)>,
}

impl Nacks {
    /// Replaces any nack still pending for `phone`; a count of 0 clears it.
    pub(crate) fn set(&mut self, phone: &str, count: u32, code: u16) {
        if count == 0 {
            self.pending.remove(phone);
        } else {
            self.pending.insert(phone.to_owned(), (count, code));
        }
    }

    /// The code to nack the next message to `phone` with, if any; uses one up.
    pub(crate) fn take(&mut self, phone: &str) -> Option<u16> {
        let (count, code) = self.pending.get_mut(phone)?;
        let code = *code;
        *count -= 1;
        if *count == 0 {
            self.pending.remove(phone);
        }
        Some(code)
    }
}

#[derive(Default, Debug, serde::Serialize)]
pub struct StatsSnapshot {
    pub connections_open: u64,
    pub connections_total: u64,
    pub connections_refused: u64,
    /// Connections closed because a newer login of the same device
    /// replaced them, over all devices.
    pub connections_replaced: u64,
    pub stanzas_in: u64,
    pub stanzas_out: u64,
    /// Prekey digest queries answered: a device checks its keys with one
    /// after every login, so tests wait on it to know that check is done.
    pub digests_answered: u64,
}

#[derive(Default)]
pub(crate) struct Stats {
    /// Woken on every connection change, so tests wait instead of polling.
    changed: tokio::sync::Notify,
    open: AtomicU64,
    total: AtomicU64,
    refused: AtomicU64,
    replaced: AtomicU64,
    stanzas_in: AtomicU64,
    stanzas_out: AtomicU64,
    digests_answered: AtomicU64,
}

impl Stats {
    pub(crate) fn connection_opened(&self) {
        self.open.fetch_add(1, Ordering::Relaxed);
        self.total.fetch_add(1, Ordering::Relaxed);
        self.changed.notify_waiters();
    }
    pub(crate) fn connection_closed(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        self.changed.notify_waiters();
    }
    pub(crate) fn connection_replaced(&self) {
        self.replaced.fetch_add(1, Ordering::Relaxed);
        self.changed.notify_waiters();
    }
    pub(crate) fn connection_refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        self.changed.notify_waiters();
    }

    /// Resolves once `ready` holds for the counters.
    pub(crate) async fn wait_until(&self, mut ready: impl FnMut(&StatsSnapshot) -> bool) {
        loop {
            let changed = self.changed.notified();
            if ready(&self.snapshot()) {
                return;
            }
            changed.await;
        }
    }
    pub(crate) fn stanza_in(&self) {
        self.stanzas_in.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn stanza_out(&self) {
        self.stanzas_out.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn digest_answered(&self) {
        self.digests_answered.fetch_add(1, Ordering::Relaxed);
        self.changed.notify_waiters();
    }
    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            connections_open: self.open.load(Ordering::Relaxed),
            connections_total: self.total.load(Ordering::Relaxed),
            connections_refused: self.refused.load(Ordering::Relaxed),
            connections_replaced: self.replaced.load(Ordering::Relaxed),
            stanzas_in: self.stanzas_in.load(Ordering::Relaxed),
            stanzas_out: self.stanzas_out.load(Ordering::Relaxed),
            digests_answered: self.digests_answered.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_stays_within_its_jitter() {
        let faults = Faults::default();
        assert_eq!(faults.response_delay(), Duration::ZERO);
        faults.set_latency(Duration::from_millis(100), Duration::from_millis(30));
        let waits: Vec<Duration> = (0..200).map(|_| faults.response_delay()).collect();
        assert!(
            waits.iter().all(|w| (70..=130).contains(&w.as_millis())),
            "{waits:?}"
        );
        assert!(waits.iter().any(|w| *w != waits[0]), "it varies");
        // Jitter larger than the delay never goes below zero.
        faults.set_latency(Duration::from_millis(5), Duration::from_millis(50));
        assert!((0..100).all(|_| faults.response_delay() <= Duration::from_millis(55)));
    }
}

//! The realtime hub: supervisors publish session events, WebSocket clients
//! subscribe to their organization's. Each subscriber has its own bounded
//! queue; one that falls behind is cut off rather than slowing the
//! publisher or growing without limit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use tokio::sync::{Notify, mpsc};

use crate::domain::{OrgId, SessionId};
use crate::events::{Envelope, EventType};
use crate::metrics::Metrics;

/// An envelope serialized once, shared by every subscriber.
#[derive(Debug, Clone)]
pub struct Published {
    pub envelope: Envelope,
    pub json: Arc<str>,
}

/// Which of its organization's events a subscriber wants.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub session_id: Option<SessionId>,
    /// Empty means every type.
    pub types: Vec<EventType>,
}

impl Filter {
    pub fn matches(&self, envelope: &Envelope) -> bool {
        self.session_id.is_none_or(|id| id == envelope.session_id)
            && (self.types.is_empty() || self.types.contains(&envelope.data.event_type()))
    }
}

#[derive(Debug, Clone, Copy)]
pub struct HubLimits {
    /// Events queued per subscriber before it is cut off.
    pub client_buffer: usize,
    pub max_clients_per_org: usize,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SubscribeError {
    #[error("too many realtime connections for this organization")]
    TooManyClients,
}

/// Why a subscription ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// The subscriber's queue filled up: it was not reading fast enough.
    SlowConsumer,
    /// The hub is gone (the gateway is shutting down).
    HubClosed,
}

struct Subscriber {
    org_id: OrgId,
    filter: Filter,
    tx: mpsc::Sender<Arc<Published>>,
    overflowed: Arc<AtomicBool>,
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    subscribers: HashMap<u64, Subscriber>,
}

/// Where a node of several (`--nats`) hands each event it publishes, for
/// the other nodes' hubs. Must not block: the publisher is a commit path.
pub trait Relay: Send + Sync {
    fn relay(&self, published: &Published);
}

#[derive(Clone)]
pub struct EventHub {
    /// Set once when this process is one node of several.
    relay: Arc<OnceLock<Arc<dyn Relay>>>,
    registry: Arc<Mutex<Registry>>,
    limits: HubLimits,
    /// Notified on every publish: an event was committed, so webhook
    /// deliveries may have been queued with it.
    committed: Arc<Notify>,
    /// Every committed change is published here, so this is where the
    /// counts of what happened are kept (see [`Metrics::observe_event`]).
    metrics: Metrics,
}

impl std::fmt::Debug for EventHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventHub")
            .field("subscribers", &self.lock().subscribers.len())
            .field("limits", &self.limits)
            .finish()
    }
}

impl EventHub {
    pub fn new(limits: HubLimits) -> Self {
        Self {
            relay: Arc::default(),
            registry: Arc::default(),
            limits,
            committed: Arc::default(),
            metrics: Metrics::default(),
        }
    }

    /// The process's instruments, shared by everything that holds the hub.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Wakes (one waiter) after each published event; a wake-up that finds
    /// no waiter is kept for the next one, so none is lost.
    pub fn committed(&self) -> Arc<Notify> {
        Arc::clone(&self.committed)
    }

    // The registry is only touched in short, non-panicking critical sections,
    // so a poisoned lock still holds consistent data.
    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn subscribe(&self, org_id: OrgId, filter: Filter) -> Result<Subscription, SubscribeError> {
        let mut registry = self.lock();
        let open = registry
            .subscribers
            .values()
            .filter(|s| s.org_id == org_id)
            .count();
        if open >= self.limits.max_clients_per_org {
            return Err(SubscribeError::TooManyClients);
        }
        let (tx, rx) = mpsc::channel(self.limits.client_buffer);
        let overflowed = Arc::new(AtomicBool::new(false));
        let id = registry.next_id;
        registry.next_id += 1;
        registry.subscribers.insert(
            id,
            Subscriber {
                org_id,
                filter,
                tx,
                overflowed: Arc::clone(&overflowed),
            },
        );
        Ok(Subscription {
            rx,
            overflowed,
            _registration: Registration {
                id,
                registry: Arc::downgrade(&self.registry),
            },
        })
    }

    /// Sends every event published here to the other nodes too, from now
    /// on (set once).
    pub fn relay_to(&self, relay: Arc<dyn Relay>) {
        if self.relay.set(relay).is_err() {
            tracing::warn!("the hub already relays its events");
        }
    }

    /// Never blocks: a subscriber whose queue is full is dropped, and its
    /// connection closes with [`Closed::SlowConsumer`].
    pub fn publish(&self, envelope: Envelope) {
        self.committed.notify_one();
        self.metrics.observe_event(&envelope);
        let Some(published) = Self::serialize(envelope) else {
            return;
        };
        self.deliver(&published);
        if let Some(relay) = self.relay.get() {
            relay.relay(&published);
        }
    }

    /// An event another node committed and published: delivered to this
    /// node's subscribers (and it wakes the webhook dispatcher), not
    /// counted again and not relayed back.
    pub fn publish_relayed(&self, envelope: Envelope, json: Arc<str>) {
        self.committed.notify_one();
        self.deliver(&Arc::new(Published { envelope, json }));
    }

    /// Cuts every subscriber off as if it had fallen behind: each socket
    /// reads what it missed from the event log and subscribes again. For a
    /// node whose relayed events may have gaps (its link to the other
    /// nodes was down).
    pub fn resync(&self) {
        let mut registry = self.lock();
        for subscriber in registry.subscribers.values() {
            subscriber.overflowed.store(true, Ordering::Release);
        }
        registry.subscribers.clear();
    }

    fn serialize(envelope: Envelope) -> Option<Arc<Published>> {
        match serde_json::to_string(&envelope) {
            Ok(json) => Some(Arc::new(Published {
                envelope,
                json: json.into(),
            })),
            Err(error) => {
                tracing::error!(%error, "could not serialize a realtime event");
                None
            }
        }
    }

    fn deliver(&self, published: &Arc<Published>) {
        let mut registry = self.lock();
        registry.subscribers.retain(|id, subscriber| {
            if subscriber.org_id != published.envelope.org_id
                || !subscriber.filter.matches(&published.envelope)
            {
                return true;
            }
            match subscriber.tx.try_send(Arc::clone(published)) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(subscriber = id, "realtime client too slow, disconnecting");
                    subscriber.overflowed.store(true, Ordering::Release);
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
    }

    pub fn subscriber_count(&self) -> usize {
        self.lock().subscribers.len()
    }
}

/// A live subscription; dropping it deregisters the subscriber.
pub struct Subscription {
    rx: mpsc::Receiver<Arc<Published>>,
    overflowed: Arc<AtomicBool>,
    _registration: Registration,
}

impl Subscription {
    /// Whether the hub cut this subscriber off for falling behind (the
    /// events queued before that are still there to read).
    pub fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Acquire)
    }

    /// The next event, or why there will be no more.
    pub async fn recv(&mut self) -> Result<Arc<Published>, Closed> {
        match self.rx.recv().await {
            Some(event) => Ok(event),
            None if self.overflowed.load(Ordering::Acquire) => Err(Closed::SlowConsumer),
            None => Err(Closed::HubClosed),
        }
    }
}

struct Registration {
    id: u64,
    registry: std::sync::Weak<Mutex<Registry>>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(registry) = self.registry.upgrade() {
            registry
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .subscribers
                .remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::domain::SessionStatus;
    use crate::events::EventData;

    fn hub(buffer: usize) -> EventHub {
        EventHub::new(HubLimits {
            client_buffer: buffer,
            max_clients_per_org: 2,
        })
    }

    fn status_event(org: OrgId, session: SessionId) -> Envelope {
        Envelope::new(
            org,
            session,
            EventData::Status {
                status: SessionStatus::Starting,
                previous: SessionStatus::Stopped,
                reason: None,
            },
        )
    }

    #[tokio::test]
    async fn subscribers_only_see_their_organization_and_filter() -> Result<(), Closed> {
        let hub = hub(8);
        let (org, other) = (OrgId::new(), OrgId::new());
        let (s1, s2) = (SessionId::new(), SessionId::new());
        let mut all = hub
            .subscribe(org, Filter::default())
            .map_err(|_| Closed::HubClosed)?;
        let mut only_s2_qr = hub
            .subscribe(
                org,
                Filter {
                    session_id: Some(s2),
                    types: vec![EventType::SessionQr],
                },
            )
            .map_err(|_| Closed::HubClosed)?;

        hub.publish(status_event(other, s1));
        hub.publish(status_event(org, s2));
        hub.publish(Envelope::new(
            org,
            s2,
            EventData::Qr {
                code: "2@abc".into(),
                expires_at: Utc::now(),
            },
        ));

        let first = all.recv().await?;
        assert_eq!(first.envelope.org_id, org);
        assert_eq!(first.envelope.data.event_type(), EventType::SessionStatus);
        let qr = only_s2_qr.recv().await?;
        assert_eq!(qr.envelope.data.event_type(), EventType::SessionQr);
        Ok(())
    }

    #[tokio::test]
    async fn a_slow_consumer_is_cut_off_without_blocking_the_publisher() {
        let hub = hub(2);
        let org = OrgId::new();
        let Ok(mut slow) = hub.subscribe(org, Filter::default()) else {
            panic!("subscribe");
        };
        for _ in 0..3 {
            hub.publish(status_event(org, SessionId::new()));
        }
        assert_eq!(hub.subscriber_count(), 0);
        assert!(slow.recv().await.is_ok());
        assert!(slow.recv().await.is_ok());
        assert_eq!(slow.recv().await.err(), Some(Closed::SlowConsumer));
    }

    #[test]
    fn connections_per_organization_are_capped_and_freed_on_drop() {
        let hub = hub(2);
        let org = OrgId::new();
        let a = hub.subscribe(org, Filter::default());
        let _b = hub.subscribe(org, Filter::default());
        assert_eq!(
            hub.subscribe(org, Filter::default()).err(),
            Some(SubscribeError::TooManyClients)
        );
        assert!(hub.subscribe(OrgId::new(), Filter::default()).is_ok());
        drop(a);
        assert!(hub.subscribe(org, Filter::default()).is_ok());
    }
}

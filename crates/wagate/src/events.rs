//! The realtime hub: supervisors publish session events, WebSocket clients
//! subscribe to their organization's. Each subscriber has its own bounded
//! queue; one that falls behind is cut off rather than slowing the
//! publisher or growing without limit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc};
use utoipa::ToSchema;

use crate::domain::{
    EventId, Failure, MessageId, MessageStatus, OrgId, SessionId, SessionStatus, StatusReason,
    WebhookId,
};
use crate::messages::{IncomingContent, IncomingMessage};
use crate::metrics::Metrics;
use crate::webhooks::DisabledReason;

/// Declares the events once: each `EventData` variant with its name and
/// the `EventType` that names it, so the tag an event is serialized with,
/// the type a filter names and `EventType::as_str` cannot drift apart.
/// The first list holds the types filters can name; the second, the rest.
macro_rules! events {
    (
        [$(
            $(#[$($meta:tt)*])*
            $variant:ident $body:tt => $ty:ident = $name:tt,
        )+]
        [$(
            $(#[$($other_meta:tt)*])*
            $other_variant:ident $other_body:tt => $other_ty:ident = $other_name:tt,
        )+]
    ) => {
        /// The event names a client can filter on.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
        pub enum EventType {
            $(#[serde(rename = $name)] $ty,)+
            $(#[serde(rename = $other_name)] $other_ty,)+
        }

        impl EventType {
            /// The types filters can name (every type but `webhook.test`).
            pub const ALL: [Self; [$($name),+].len()] = [$(Self::$ty),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$ty => $name,)+
                    $(Self::$other_ty => $other_name,)+
                }
            }
        }

        // The names and attributes are matched as `tt`s: a `literal` or
        // `meta` fragment reaches the derives wrapped in an invisible
        // group, which utoipa does not look into.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
        #[serde(tag = "event", content = "data")]
        pub enum EventData {
            $($(#[$($meta)*])* #[serde(rename = $name)] $variant $body,)+
            $($(#[$($other_meta)*])* #[serde(rename = $other_name)] $other_variant $other_body,)+
        }

        impl EventData {
            pub fn event_type(&self) -> EventType {
                match self {
                    $(Self::$variant { .. } => EventType::$ty,)+
                    $(Self::$other_variant { .. } => EventType::$other_ty,)+
                }
            }
        }
    };
}

events! {
    [
        Status {
            status: SessionStatus,
            previous: SessionStatus,
            reason: Option<StatusReason>,
        } => SessionStatus = "session.status",
        Qr {
            code: String,
            expires_at: DateTime<Utc>,
        } => SessionQr = "session.qr",
        PairingCode {
            code: String,
            expires_at: DateTime<Utc>,
        } => SessionPairingCode = "session.pairing_code",
        /// An outgoing message changed status (its first event is `pending`).
        MessageStatus {
            #[schema(value_type = String, format = Uuid)]
            message_id: MessageId,
            /// The WhatsApp message id.
            wa_id: String,
            chat: String,
            status: MessageStatus,
            previous: Option<MessageStatus>,
            #[serde(skip_serializing_if = "Option::is_none", default)]
            failure: Option<Failure>,
        } => MessageStatus = "message.status",
        /// A message reached the session (text, media, location, contacts,
        /// poll), from someone else or from this account's own phone
        /// (`from_me`). `content.type` says which shape it has.
        MessageReceived(Box<IncomingMessage>) => MessageReceived = "message.received",
        /// Someone reacted to a message (`content.type` is `reaction`; an empty
        /// `emoji` removes their reaction).
        MessageReaction(Box<IncomingMessage>) => MessageReaction = "message.reaction",
        /// Someone voted on a poll (`content.type` is `poll_vote`; the
        /// options they chose replace their earlier vote).
        MessagePollVote(Box<IncomingMessage>) => MessagePollVote = "message.poll_vote",
        /// Someone edited a message they sent (`content.type` is `edit`).
        MessageEdited(Box<IncomingMessage>) => MessageEdited = "message.edited",
        /// Someone deleted a message for everyone (`content.type` is `revoke`).
        MessageRevoked(Box<IncomingMessage>) => MessageRevoked = "message.revoked",
        /// The gateway disabled a webhook: it answered `410 Gone`, or kept
        /// failing for longer than allowed. Its pending deliveries wait until
        /// it is enabled again. `session_id` is the session whose delivery
        /// failed last.
        WebhookDisabled {
            #[schema(value_type = String, format = Uuid)]
            webhook_id: WebhookId,
            reason: DisabledReason,
            /// The receiver's last status code, if it answered.
            status_code: Option<u16>,
        } => WebhookDisabled = "webhook.disabled",
    ]
    // Sent to one webhook on request; never fanned out, never on the
    // realtime socket, and not a type a filter can name.
    [
        /// A test delivery, asked for with `POST /webhooks/{id}/test` or from
        /// the dashboard: sent to that webhook only, whatever its filters,
        /// signed and retried like any event. `session_id` is the nil UUID:
        /// no session is involved.
        WebhookTest {
            #[schema(value_type = String, format = Uuid)]
            webhook_id: WebhookId,
        } => WebhookTest = "webhook.test",
    ]
}

impl EventType {
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl EventData {
    /// The event reporting an incoming message, by what it is.
    pub fn incoming(message: IncomingMessage) -> Self {
        let message = Box::new(message);
        match message.content {
            IncomingContent::Reaction { .. } => Self::MessageReaction(message),
            IncomingContent::PollVote { .. } => Self::MessagePollVote(message),
            IncomingContent::Edit { .. } => Self::MessageEdited(message),
            IncomingContent::Revoke { .. } => Self::MessageRevoked(message),
            _ => Self::MessageReceived(message),
        }
    }
}

/// What a realtime client receives, one JSON text frame per event; also
/// what the event log keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Envelope {
    #[schema(value_type = String, format = Uuid)]
    pub id: EventId,
    #[serde(flatten)]
    pub data: EventData,
    #[schema(value_type = String, format = Uuid)]
    pub session_id: SessionId,
    #[schema(value_type = String, format = Uuid)]
    pub org_id: OrgId,
    pub at: DateTime<Utc>,
}

impl Envelope {
    /// A new event. The store stamps the final id and time when it logs
    /// it, inside the transaction of the change it reports.
    pub fn new(org_id: OrgId, session_id: SessionId, data: EventData) -> Self {
        Self {
            id: EventId::new(),
            data,
            session_id,
            org_id,
            at: Utc::now(),
        }
    }
}

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

#[derive(Clone)]
pub struct EventHub {
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

    /// Never blocks: a subscriber whose queue is full is dropped, and its
    /// connection closes with [`Closed::SlowConsumer`].
    pub fn publish(&self, envelope: Envelope) {
        self.committed.notify_one();
        self.metrics.observe_event(&envelope);
        let json: Arc<str> = match serde_json::to_string(&envelope) {
            Ok(json) => json.into(),
            Err(error) => {
                tracing::error!(%error, "could not serialize a realtime event");
                return;
            }
        };
        let published = Arc::new(Published { envelope, json });
        let mut registry = self.lock();
        registry.subscribers.retain(|id, subscriber| {
            if subscriber.org_id != published.envelope.org_id
                || !subscriber.filter.matches(&published.envelope)
            {
                return true;
            }
            match subscriber.tx.try_send(Arc::clone(&published)) {
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
    use super::*;

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

    #[test]
    fn the_envelope_has_the_documented_shape() -> Result<(), serde_json::Error> {
        let envelope = status_event(OrgId::new(), SessionId::new());
        let value = serde_json::to_value(&envelope)?;
        for key in ["id", "event", "session_id", "org_id", "at", "data"] {
            assert!(value.get(key).is_some(), "missing {key}: {value}");
        }
        assert_eq!(value["event"], "session.status");
        assert_eq!(value["data"]["status"], "starting");
        assert_eq!(value["data"]["previous"], "stopped");
        Ok(())
    }

    /// One event of every kind. The match makes a new variant a compile
    /// error here until it has a sample.
    fn one_of_each() -> Vec<EventData> {
        let message = || {
            Box::new(IncomingMessage {
                message_id: MessageId::new(),
                wa_id: "3EB0AAAA".into(),
                chat: "15551234567@s.whatsapp.net".into(),
                sender: crate::messages::Sender {
                    phone: Some("15551234567".into()),
                    lid: None,
                },
                push_name: None,
                timestamp: Utc::now(),
                from_me: false,
                kind: "text".into(),
                content: IncomingContent::Text { body: "hi".into() },
                reply_to: None,
            })
        };
        let samples = vec![
            EventData::Status {
                status: SessionStatus::Working,
                previous: SessionStatus::Starting,
                reason: None,
            },
            EventData::Qr {
                code: "2@abc".into(),
                expires_at: Utc::now(),
            },
            EventData::PairingCode {
                code: "ABCD-EFGH".into(),
                expires_at: Utc::now(),
            },
            EventData::MessageStatus {
                message_id: MessageId::new(),
                wa_id: "3EB0AAAA".into(),
                chat: "15551234567@s.whatsapp.net".into(),
                status: MessageStatus::Sent,
                previous: Some(MessageStatus::Pending),
                failure: None,
            },
            EventData::MessageReceived(message()),
            EventData::MessageReaction(message()),
            EventData::MessagePollVote(message()),
            EventData::MessageEdited(message()),
            EventData::MessageRevoked(message()),
            EventData::WebhookDisabled {
                webhook_id: WebhookId::new(),
                reason: DisabledReason::Gone,
                status_code: Some(410),
            },
            EventData::WebhookTest {
                webhook_id: WebhookId::new(),
            },
        ];
        for sample in &samples {
            match sample {
                EventData::Status { .. }
                | EventData::Qr { .. }
                | EventData::PairingCode { .. }
                | EventData::MessageStatus { .. }
                | EventData::MessageReceived(_)
                | EventData::MessageReaction(_)
                | EventData::MessagePollVote(_)
                | EventData::MessageEdited(_)
                | EventData::MessageRevoked(_)
                | EventData::WebhookDisabled { .. }
                | EventData::WebhookTest { .. } => {}
            }
        }
        samples
    }

    #[test]
    fn each_event_is_serialized_with_its_types_name() -> Result<(), serde_json::Error> {
        let mut types = Vec::new();
        for data in one_of_each() {
            let event_type = data.event_type();
            let envelope = Envelope::new(OrgId::new(), SessionId::new(), data);
            let value = serde_json::to_value(&envelope)?;
            assert_eq!(value["event"], event_type.as_str(), "{value}");
            assert_eq!(serde_json::to_value(event_type)?, value["event"]);
            assert_eq!(serde_json::from_value::<Envelope>(value)?, envelope);
            assert!(!types.contains(&event_type), "{event_type:?} twice");
            types.push(event_type);
        }
        // Every type is some event's, and filters name all but the test.
        assert_eq!(types.len(), EventType::ALL.len() + 1);
        for event_type in EventType::ALL {
            assert!(types.contains(&event_type), "no event is {event_type:?}");
            assert_eq!(EventType::parse(event_type.as_str()), Some(event_type));
        }
        assert_eq!(EventType::parse("webhook.test"), None);
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

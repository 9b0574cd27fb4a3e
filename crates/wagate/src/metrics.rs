//! Prometheus metrics: what happened (reconnects, link times, message
//! statuses, webhook attempts), counted in [`Metrics`], each bumped at the
//! one place the thing happens — message counts from the events the store
//! committed, as [`crate::hub::EventHub::publish`] sends them.
//!
//! What is (sessions by status, the outbox, memory) is read at scrape time
//! and served with these counts as `GET /metrics` by [`scrape`], above the
//! layers these counters serve (it reads the store and the live sessions).

pub(crate) mod scrape;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

use crate::domain::{EventId, named_enum};
use crate::events::{Envelope, EventData};

named_enum! {
    /// Why a session's connection was opened again.
    pub enum ReconnectReason {
        /// The connection ended unexpectedly; the retry came after a backoff.
        ConnectionLost = "connection_lost",
        /// The phone linked and WhatsApp restarted the stream, as it always
        /// does after pairing.
        AfterPairing = "after_pairing",
        /// The QR codes of one linking round ran out; a new round begins.
        QrCodesExhausted = "qr_codes_exhausted",
        /// WhatsApp stopped answering on an open connection; the gateway
        /// dropped it and connected again at once.
        NoResponse = "no_response",
    }
}

named_enum! {
    /// How a phone was linked.
    pub enum LinkMethod {
        QrCode = "qr_code",
        PairingCode = "pairing_code",
    }
}

named_enum! {
    /// What one webhook attempt came to.
    pub enum DeliveryResult {
        Delivered = "delivered",
        /// Failed; it is tried again later.
        Retrying = "retrying",
        /// Failed, and its retry window is spent: the delivery failed for good.
        GaveUp = "gave_up",
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabel {
    method: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabel {
    event: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// From a second to about 17 minutes: a person scanning a code.
fn link_buckets() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 11))
}

/// From 10 ms to about 45 minutes: a receiver that is up, then retries.
fn lag_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 4.0, 10))
}

/// The process's instruments; cheap to clone (they are shared).
#[derive(Debug, Clone)]
pub struct Metrics {
    inner: Arc<Instruments>,
}

#[derive(Debug)]
struct Instruments {
    reconnects: Family<ReasonLabel, Counter>,
    link_seconds: HistogramFamily<MethodLabel>,
    outgoing: Family<StatusLabel, Counter>,
    incoming: Family<EventLabel, Counter>,
    deliveries: Family<ResultLabel, Counter>,
    delivery_lag: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        let instruments = Instruments {
            reconnects: Family::default(),
            link_seconds: Family::new_with_constructor(link_buckets),
            outgoing: Family::default(),
            incoming: Family::default(),
            deliveries: Family::default(),
            delivery_lag: lag_buckets(),
        };
        // Every label value shows from the first scrape, at zero, so a
        // rate over it has a start.
        for reason in ReconnectReason::ALL {
            let _ = instruments.reconnects.get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            });
        }
        Self {
            inner: Arc::new(instruments),
        }
    }
}

impl Metrics {
    pub fn reconnected(&self, reason: ReconnectReason) {
        self.inner
            .reconnects
            .get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            })
            .inc();
    }

    /// A session reached `working` `took` after its first QR code.
    pub fn linked(&self, method: LinkMethod, took: Duration) {
        self.inner
            .link_seconds
            .get_or_create(&MethodLabel {
                method: method.as_str(),
            })
            .observe(took.as_secs_f64());
    }

    /// Counts what a committed event reports: an outgoing message reaching
    /// a status, or a message arriving.
    pub fn observe_event(&self, envelope: &Envelope) {
        match &envelope.data {
            EventData::MessageStatus { status, .. } => {
                self.inner
                    .outgoing
                    .get_or_create(&StatusLabel {
                        status: status.as_str(),
                    })
                    .inc();
            }
            EventData::MessageReceived(_)
            | EventData::MessageReaction(_)
            | EventData::MessagePollVote(_)
            | EventData::MessageEdited(_)
            | EventData::MessageRevoked(_) => {
                self.inner
                    .incoming
                    .get_or_create(&EventLabel {
                        event: envelope.data.event_type().as_str(),
                    })
                    .inc();
            }
            EventData::Status { .. }
            | EventData::WebhookTest { .. }
            | EventData::Qr { .. }
            | EventData::PairingCode { .. }
            | EventData::CallReceived { .. }
            | EventData::CallRejected { .. }
            | EventData::CallEnded { .. }
            | EventData::PresenceUpdate { .. }
            | EventData::GroupJoined { .. }
            | EventData::GroupLeft { .. }
            | EventData::GroupParticipants { .. }
            | EventData::GroupUpdated { .. }
            | EventData::ChatUpdated { .. }
            | EventData::ContactUpdated { .. }
            | EventData::HistorySync { .. }
            | EventData::WebhookDisabled { .. } => {}
        }
    }

    /// A webhook attempt for `event` ended with `result`; a delivered one
    /// also records how long after the event it arrived.
    pub fn webhook_attempt(&self, event: EventId, result: DeliveryResult) {
        self.inner
            .deliveries
            .get_or_create(&ResultLabel {
                result: result.as_str(),
            })
            .inc();
        if result == DeliveryResult::Delivered
            && let Some(lag) = age_of(event)
        {
            self.inner.delivery_lag.observe(lag.as_secs_f64());
        }
    }
}

/// How long ago an event was committed: its id is a UUIDv7, stamped in
/// the transaction that logged it.
fn age_of(event: EventId) -> Option<Duration> {
    let (secs, nanos) = event.as_uuid().get_timestamp()?.to_unix();
    let at = Duration::new(secs, nanos);
    let now = Duration::from_millis(u64::try_from(Utc::now().timestamp_millis()).ok()?);
    Some(now.saturating_sub(at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::named::assert_names_round_trip;

    #[test]
    fn label_names_round_trip() {
        assert_names_round_trip::<ReconnectReason>();
        assert_names_round_trip::<LinkMethod>();
        assert_names_round_trip::<DeliveryResult>();
    }
}

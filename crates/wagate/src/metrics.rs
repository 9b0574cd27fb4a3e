//! Prometheus metrics, served as `GET /metrics` on their own listener
//! (`metrics_listen`, off unless set), never on the public API port.
//!
//! Two kinds of numbers, kept apart so none can drift:
//! - what happened (reconnects, link times, message statuses, webhook
//!   attempts): counters and histograms in [`Metrics`], each bumped at the
//!   one place the thing happens — message counts from the events the
//!   store committed, as [`crate::events::EventHub::publish`] sends them;
//! - what is (sessions by status, the outbox, memory): read at scrape
//!   time from the store, the process and the live links ([`Snapshot`]),
//!   never kept in a gauge between scrapes.
//!
//! Each scrape builds a fresh registry around the shared instruments and
//! the snapshot, so two scrapes never race over a gauge.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::app::AppState;
use crate::domain::named_enum;
use crate::domain::{EventId, SessionId, SessionStatus};
use crate::events::{Envelope, EventData};
use crate::session::engine::ClientMemory;
use crate::store::StoreError;

/// The path Prometheus scrapes.
pub const PATH: &str = "/metrics";
/// Every metric of ours starts with this (`wagate_…`).
const PREFIX: &str = "wagate";
/// What an OpenMetrics scrape answers with.
const CONTENT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

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

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SessionLabel {
    session_id: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartLabel {
    part: &'static str,
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

    /// The whole exposition: the instruments and `snapshot`.
    pub fn render(&self, snapshot: &Snapshot) -> Result<String, std::fmt::Error> {
        let mut root = Registry::default();
        if let Some(rss) = snapshot.resident_bytes {
            // The name every Prometheus client's process collector uses.
            root.register(
                "process_resident_memory_bytes",
                "Resident memory of the gateway process, in bytes",
                gauge(rss),
            );
        }
        let registry = root.sub_registry_with_prefix(PREFIX);
        let sessions = Family::<StatusLabel, Gauge>::default();
        for status in SessionStatus::ALL {
            let count = snapshot
                .sessions
                .iter()
                .find(|(s, _)| *s == status)
                .map_or(0, |(_, n)| *n);
            sessions
                .get_or_create(&StatusLabel {
                    status: status.as_str(),
                })
                .set(clamp(count));
        }
        registry.register("sessions", "Sessions, by status", sessions);
        let i = &self.inner;
        registry.register(
            "session_reconnects",
            "Connections a session opened again, by why",
            i.reconnects.clone(),
        );
        registry.register(
            "session_link_duration_seconds",
            "From a session's first QR code to working, by how the phone linked",
            i.link_seconds.clone(),
        );
        registry.register(
            "outgoing_messages",
            "Outgoing messages reaching each status (accepted ones as pending)",
            i.outgoing.clone(),
        );
        registry.register(
            "incoming_messages",
            "Messages received, by event (message.received, .reaction, .edited, .revoked)",
            i.incoming.clone(),
        );
        registry.register(
            "outbox_pending_messages",
            "Outgoing messages accepted and not yet sent, over every session",
            gauge(snapshot.outbox.pending),
        );
        let oldest = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        oldest.set(snapshot.outbox_oldest_age.map_or(0.0, |d| d.as_secs_f64()));
        registry.register(
            "outbox_oldest_pending_age_seconds",
            "How long the oldest pending outgoing message has waited (0 when none)",
            oldest,
        );
        registry.register(
            "webhook_deliveries",
            "Webhook attempts, by result",
            i.deliveries.clone(),
        );
        registry.register(
            "webhook_delivery_lag_seconds",
            "From an event to its successful webhook delivery",
            i.delivery_lag.clone(),
        );
        let memory = Family::<SessionLabel, Gauge>::default();
        // Summed over sessions: one series per part, not per part and
        // session, which at thousands of sessions no one could scrape.
        let mut parts: Vec<(&'static str, u64, u64)> = Vec::new();
        for (session, report) in &snapshot.session_memory {
            memory
                .get_or_create(&SessionLabel {
                    session_id: session.to_string(),
                })
                .set(clamp(report.total_bytes));
            for part in &report.parts {
                match parts.iter_mut().find(|(name, _, _)| *name == part.name) {
                    Some((_, bytes, entries)) => {
                        *bytes = bytes.saturating_add(part.bytes);
                        *entries = entries.saturating_add(part.entries);
                    }
                    None => parts.push((part.name, part.bytes, part.entries)),
                }
            }
        }
        registry.register(
            "session_client_memory_bytes",
            "Estimated heap held by a working session's WhatsApp client (its caches)",
            memory,
        );
        let part_bytes = Family::<PartLabel, Gauge>::default();
        let part_entries = Family::<PartLabel, Gauge>::default();
        for (part, bytes, entries) in parts {
            part_bytes
                .get_or_create(&PartLabel { part })
                .set(clamp(bytes));
            part_entries
                .get_or_create(&PartLabel { part })
                .set(clamp(entries));
        }
        registry.register(
            "client_memory_part_bytes",
            "Estimated heap of every working session's WhatsApp client, by part of its memory report, summed over sessions (the transport's buffers are outside the client's total)",
            part_bytes,
        );
        registry.register(
            "client_memory_part_entries",
            "Entries in each part of every working session's WhatsApp client, summed over sessions",
            part_entries,
        );
        let mut out = String::new();
        encode(&mut out, &root)?;
        Ok(out)
    }
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn gauge(n: u64) -> Gauge {
    let gauge = Gauge::default();
    gauge.set(clamp(n));
    gauge
}

/// How long ago an event was committed: its id is a UUIDv7, stamped in
/// the transaction that logged it.
fn age_of(event: EventId) -> Option<Duration> {
    let (secs, nanos) = event.as_uuid().get_timestamp()?.to_unix();
    let at = Duration::new(secs, nanos);
    let now = Duration::from_millis(u64::try_from(Utc::now().timestamp_millis()).ok()?);
    Some(now.saturating_sub(at))
}

/// What is, read at scrape time.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub sessions: Vec<(SessionStatus, u64)>,
    pub outbox: crate::store::OutboxDepth,
    pub outbox_oldest_age: Option<Duration>,
    pub resident_bytes: Option<u64>,
    pub session_memory: Vec<(SessionId, ClientMemory)>,
}

impl Snapshot {
    pub async fn take(state: &AppState) -> Result<Self, StoreError> {
        let sessions = state.store.sessions().count_by_status().await?;
        let outbox = state.store.messages().outbox_depth().await?;
        let outbox_oldest_age = outbox
            .oldest
            .map(|at| (Utc::now() - at).to_std().unwrap_or_default());
        Ok(Self {
            sessions,
            outbox,
            outbox_oldest_age,
            resident_bytes: memory_stats::memory_stats()
                .and_then(|m| u64::try_from(m.physical_mem).ok()),
            session_memory: state.sessions.client_memory().await,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("could not read the store")]
    Store(#[from] StoreError),
    #[error("could not encode the metrics")]
    Encode(#[from] std::fmt::Error),
}

impl IntoResponse for MetricsError {
    fn into_response(self) -> Response {
        // Logged once, here; the scraper sees only that it failed.
        tracing::error!(error = ?self, "metrics scrape failed");
        (StatusCode::INTERNAL_SERVER_ERROR, "metrics unavailable\n").into_response()
    }
}

async fn scrape(State(state): State<AppState>) -> Result<Response, MetricsError> {
    let snapshot = Snapshot::take(&state).await?;
    let body = state.metrics.render(&snapshot)?;
    Ok(([(CONTENT_TYPE, CONTENT)], body).into_response())
}

/// The metrics listener's whole surface: `GET /metrics`. It has no
/// authentication of its own: bind it where only Prometheus reaches.
pub fn router(state: AppState) -> Router {
    Router::new().route(PATH, get(scrape)).with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::named::assert_names_round_trip;
    use crate::session::engine::MemoryPart;

    #[test]
    fn label_names_round_trip() {
        assert_names_round_trip::<ReconnectReason>();
        assert_names_round_trip::<LinkMethod>();
        assert_names_round_trip::<DeliveryResult>();
    }

    fn report(total_bytes: u64, sessions_bytes: u64, waiters: u64) -> ClientMemory {
        ClientMemory {
            total_bytes,
            parts: vec![
                MemoryPart {
                    name: "signal_sessions",
                    entries: 1,
                    bytes: sessions_bytes,
                },
                MemoryPart {
                    name: "response_waiters",
                    entries: waiters,
                    bytes: 0,
                },
            ],
        }
    }

    #[test]
    fn memory_parts_are_summed_over_sessions_and_totals_kept_per_session()
    -> Result<(), std::fmt::Error> {
        let (a, b) = (SessionId::new(), SessionId::new());
        let snapshot = Snapshot {
            session_memory: vec![(a, report(1000, 700, 2)), (b, report(500, 300, 3))],
            ..Snapshot::default()
        };
        let text = Metrics::default().render(&snapshot)?;
        let lines: Vec<&str> = text.lines().collect();
        for expected in [
            format!("wagate_session_client_memory_bytes{{session_id=\"{a}\"}} 1000"),
            format!("wagate_session_client_memory_bytes{{session_id=\"{b}\"}} 500"),
            "wagate_client_memory_part_bytes{part=\"signal_sessions\"} 1000".to_string(),
            "wagate_client_memory_part_entries{part=\"signal_sessions\"} 2".to_string(),
            "wagate_client_memory_part_bytes{part=\"response_waiters\"} 0".to_string(),
            "wagate_client_memory_part_entries{part=\"response_waiters\"} 5".to_string(),
        ] {
            assert!(
                lines.contains(&expected.as_str()),
                "missing {expected} in:\n{text}"
            );
        }
        Ok(())
    }
}

//! `GET /metrics`, served on its own listener (`metrics_listen`, off
//! unless set), never on the public API port: the counters of
//! [`Metrics`] and what is, read at scrape time from the store, the
//! process and the live links ([`Snapshot`]), never kept in a gauge
//! between scrapes.
//!
//! Each scrape builds a fresh registry around the shared instruments and
//! the snapshot, so two scrapes never race over a gauge.

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
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{Metrics, StatusLabel};
use crate::app::AppState;
use crate::domain::{SessionId, SessionStatus};
use crate::session::engine::ClientMemory;
use crate::store::StoreError;

/// The path Prometheus scrapes.
pub const PATH: &str = "/metrics";
/// Every metric of ours starts with this (`wagate_…`).
const PREFIX: &str = "wagate";
/// What an OpenMetrics scrape answers with.
const CONTENT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SessionLabel {
    session_id: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartLabel {
    part: &'static str,
}

impl Metrics {
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
pub(crate) enum MetricsError {
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
    use crate::session::engine::MemoryPart;

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

//! What every handler can reach ([`AppState`]), built from configuration.
//! It sits below the handlers (`http/`, `dashboard/`, `metrics/scrape.rs`)
//! that take it; `serve.rs` binds the listeners and runs them.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::dashboard::state::Dashboard;
use crate::egress::EgressPolicy;
use crate::hub::{EventHub, HubLimits};
use crate::media_cache::MediaCache;
use crate::metrics::Metrics;
use crate::session::SupervisorPolicy;
use crate::session::backoff::RetryPolicy;
use crate::session::engine::Engine;
use crate::session::manager::SessionManager;
use crate::store::Store;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub sessions: SessionManager,
    pub hub: EventHub,
    pub body_limit: usize,
    /// Caps on what a send request may carry.
    pub media_limits: crate::messages::Limits,
    pub ws_ping_interval: Duration,
    /// Cancelled on shutdown; long-lived connections watch it.
    pub shutdown: CancellationToken,
    /// The web dashboard's own state (sign-in limits, the sandbox).
    pub dashboard: Dashboard,
    /// Which addresses webhook URLs may point at.
    pub egress: EgressPolicy,
    /// Downloaded incoming media.
    pub media_cache: MediaCache,
    /// How long the event log keeps events (and their webhook deliveries).
    pub event_retention: Duration,
    /// Counters and histograms for `/metrics` (the hub's).
    pub metrics: Metrics,
    /// Token revocations, for the realtime sockets they opened.
    pub revocations: Revocations,
}

impl AppState {
    pub fn new(
        config: &Config,
        store: Arc<dyn Store>,
        engine: Arc<dyn Engine>,
        shutdown: CancellationToken,
    ) -> Self {
        let hub = EventHub::new(HubLimits {
            client_buffer: config.ws_client_buffer,
            max_clients_per_org: config.ws_max_clients_per_org,
        });
        let sessions = SessionManager::new(
            Arc::clone(&store),
            engine,
            hub.clone(),
            SupervisorPolicy {
                link_timeout: config.link_timeout(),
                retry: RetryPolicy::with_budget(config.retry_budget()),
                liveness: config.liveness_policy(),
            },
            config.outbox_policy(),
            shutdown.child_token(),
        );
        Self {
            metrics: hub.metrics().clone(),
            store,
            sessions,
            hub,
            body_limit: config.body_limit_bytes,
            media_limits: crate::messages::Limits {
                max_media_bytes: config.media_limit_bytes,
            },
            ws_ping_interval: Duration::from_secs(config.ws_ping_interval_secs),
            shutdown,
            dashboard: Dashboard::default(),
            egress: config.egress_policy(),
            media_cache: MediaCache::new(
                config.media_cache_dir(),
                config.media_cache_bytes,
                Duration::from_secs(config.media_cache_retention_secs),
            ),
            event_retention: config.event_retention(),
            revocations: Revocations::default(),
        }
    }
}

/// Tells long-lived connections that a token was revoked in this process
/// (they then check theirs at once); a revocation made elsewhere (the
/// `token revoke` command, another process on the same database) is
/// found by their periodic check.
#[derive(Debug, Clone)]
pub struct Revocations(tokio::sync::watch::Sender<u64>);

impl Default for Revocations {
    fn default() -> Self {
        Self(tokio::sync::watch::Sender::new(0))
    }
}

impl Revocations {
    /// Some token was revoked.
    pub fn notify(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.0.subscribe()
    }
}

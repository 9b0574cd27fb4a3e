//! What every handler can reach ([`AppState`]), built from configuration.
//! It sits below the handlers (`http/`, `dashboard/`, `metrics/scrape.rs`)
//! that take it; `serve.rs` binds the listeners and runs them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::dashboard::state::Dashboard;
use crate::domain::{OrgId, TokenHash};
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
    /// Token revocations, for the realtime sockets they opened and the
    /// token cache.
    pub revocations: Revocations,
    /// The organizations of recently presented API tokens.
    pub tokens: TokenCache,
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
            tokens: TokenCache::default(),
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

    /// Changes with every revocation in this process.
    pub(crate) fn generation(&self) -> u64 {
        *self.0.borrow()
    }
}

/// How long a token looked up is believed without asking the store
/// again: the bound on how late a revocation made by another process (the
/// `token revoke` command) takes effect here. One made in this process
/// (the dashboard) empties the cache at once.
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(5);

/// Tokens kept at most; past it the cache starts over.
const TOKEN_CACHE_MAX: usize = 4096;

/// The organizations of recently presented API tokens, by hash, so a busy
/// client's requests do not each read the token from the store (a read,
/// and on SQLite a turn on a reader connection, per request).
#[derive(Clone, Default)]
pub struct TokenCache(Arc<Mutex<HashMap<TokenHash, CachedToken>>>);

struct CachedToken {
    org: OrgId,
    /// The revocation generation when it was read: any revocation since
    /// makes it stale.
    generation: u64,
    until: Instant,
}

impl TokenCache {
    /// The token's organization, if it was found live at `generation`
    /// (the current one) less than [`TOKEN_CACHE_TTL`] ago.
    pub(crate) fn get(&self, token: &TokenHash, generation: u64) -> Option<OrgId> {
        let entries = self.0.lock().ok()?;
        entries
            .get(token)
            .filter(|cached| cached.generation == generation && cached.until > Instant::now())
            .map(|cached| cached.org)
    }

    /// Keeps a live token, read at `generation` (taken before the read, so
    /// a revocation during it makes the entry stale at once).
    pub(crate) fn insert(&self, token: TokenHash, org: OrgId, generation: u64) {
        let Ok(mut entries) = self.0.lock() else {
            return;
        };
        if entries.len() >= TOKEN_CACHE_MAX {
            entries.clear();
        }
        entries.insert(
            token,
            CachedToken {
                org,
                generation,
                until: Instant::now() + TOKEN_CACHE_TTL,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_token_is_stale_after_any_revocation_in_this_process() {
        let cache = TokenCache::default();
        let revocations = Revocations::default();
        let token = TokenHash::of("wag_a");
        let org = OrgId::new();
        cache.insert(token.clone(), org, revocations.generation());
        assert_eq!(cache.get(&token, revocations.generation()), Some(org));
        assert_eq!(
            cache.get(&TokenHash::of("wag_b"), revocations.generation()),
            None
        );
        revocations.notify();
        assert_eq!(cache.get(&token, revocations.generation()), None);
    }
}

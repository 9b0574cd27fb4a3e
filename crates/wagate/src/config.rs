//! Configuration, layered: embedded defaults, then an optional TOML file,
//! then `WAGATE_*` environment variables, then command-line flags.

use crate::egress::EgressPolicy;
use crate::outbox::{OutboxPolicy, PacingPolicy};
use crate::session::liveness::LivenessPolicy;
use crate::session::server::{SimulatorNeedsLoopback, check_server_allowed};
use crate::webhooks::DeliveryPolicy;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::secret::Secret;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP API listens on.
    pub listen: SocketAddr,
    /// Address of a second listener that serves only `GET /metrics`
    /// (Prometheus), with no authentication: bind it where only the
    /// scraper reaches (loopback, a private interface). Unset, the default,
    /// serves no metrics at all.
    pub metrics_listen: Option<SocketAddr>,
    /// Directory for the database and the media cache.
    pub data_dir: PathBuf,
    /// Defaults to `sqlite://<data_dir>/wagate.db`. May hold a password.
    pub database_url: Option<Secret<String>>,
    /// Connections to a PostgreSQL database: the sessions' key reads and
    /// writes, the API's reads and the write transactions (one at a time)
    /// share them. Each is a PostgreSQL backend process (about 10 MiB of
    /// its own besides the shared buffers), and the server's
    /// `max_connections` must leave room for them. SQLite ignores it (one
    /// writer connection and a few readers).
    pub database_pool_size: u32,
    /// NATS server through which several gateway processes on one
    /// PostgreSQL database work as one gateway (`--nats`). Unset, the
    /// default, the process must be the only one serving its database.
    /// May hold credentials.
    pub nats_url: Option<Secret<String>>,
    /// This process's name among the nodes serving one database (with
    /// `--nats`): the owner written on the leases it holds. Unset, a
    /// stable name derived from the host and the data directory.
    pub node_id: Option<String>,
    /// Sessions this node owns at most (with `--nats`). Unset, no limit.
    pub node_capacity: Option<u32>,
    /// How long a session's lease lasts unrenewed (with `--nats`), in
    /// milliseconds: a node renews its leases every third of it and, when
    /// it cannot, disconnects its sessions before the lease can expire; a
    /// dead node's sessions are taken over by others after at most this
    /// long. Default 15 s.
    pub lease_time_ms: u64,
    /// WhatsApp server to connect to; unset means WhatsApp itself.
    pub whatsapp_url: Option<Url>,
    /// How long a session may wait for a phone to link before it fails.
    pub link_timeout_secs: u64,
    /// How long a session keeps retrying a lost connection before it fails.
    pub retry_budget_secs: u64,
    /// A `working` connection silent this long is pinged by the gateway.
    pub liveness_idle_ms: u64,
    /// A liveness ping unanswered this long drops the connection, which
    /// is made again (status `starting`, reason `no_response`).
    pub liveness_timeout_ms: u64,
    /// Largest request body accepted, in bytes.
    pub body_limit_bytes: usize,
    /// Events buffered per realtime client before it counts as too slow.
    pub ws_client_buffer: usize,
    /// Seconds between WebSocket pings.
    pub ws_ping_interval_secs: u64,
    /// Realtime connections allowed per organization.
    pub ws_max_clients_per_org: usize,
    /// Seconds to wait for sessions and connections to wind down on exit.
    pub shutdown_timeout_secs: u64,
    /// Run the WhatsApp simulator in-process and connect every session to
    /// it, with a throwaway database (`serve --sandbox`; needs a build with
    /// the `sandbox` feature).
    pub sandbox: bool,
    /// The sandbox's simulated network: every stanza its WhatsApp sends is
    /// delayed this long, varied by up to the jitter either way (0: none).
    pub sandbox_latency_ms: u64,
    pub sandbox_latency_jitter_ms: u64,
    /// Messages a session sends per minute at most; 0 turns pacing off
    /// (benchmarks only: an unpaced number gets banned).
    pub send_per_minute: u32,
    /// Messages per minute to chats the session never messaged before; 0
    /// gives them no budget of their own. Each session may override both
    /// (`send_per_minute`, `send_new_chats_per_minute` on the session).
    pub send_new_chats_per_minute: u32,
    /// Random stretch of each gap between sends, as a fraction (0 to 0.9).
    pub send_jitter: f64,
    /// A message still unsent this long after it was accepted fails as
    /// `expired`.
    pub message_expiry_secs: u64,
    /// Largest media file a message may carry (in the request, or fetched
    /// from its `url`), in bytes.
    pub media_limit_bytes: usize,
    /// Let webhooks and media URLs reach loopback, private and link-local
    /// addresses. Off by default (SSRF); tests and the sandbox turn it on.
    pub allow_private_network: bool,
    /// Let webhooks and media URLs reach this machine (loopback) only: any
    /// other destination is refused when connecting, without asking DNS,
    /// though the API still accepts any URL it would otherwise. For test
    /// rigs and fuzzers whose made-up URLs must not become traffic to
    /// anyone else. Off by default.
    pub egress_loopback_only: bool,
    /// How long the event log keeps events (and with them the webhook
    /// delivery log): a realtime client can resume (`?since=`) from any
    /// event this recent. Default 7 days.
    pub event_retention_secs: u64,
    /// One webhook attempt: connect, send and the answer.
    pub webhook_timeout_secs: u64,
    /// A delivery failing this long after its event is given up.
    pub webhook_retry_window_secs: u64,
    /// First retry delay of a webhook delivery; doubles per failure.
    pub webhook_backoff_base_ms: u64,
    /// Longest delay between two attempts of a delivery.
    pub webhook_backoff_max_secs: u64,
    /// A webhook whose every attempt failed for this long is disabled.
    pub webhook_disable_after_secs: u64,
    /// Webhook attempts in flight at once, across all webhooks.
    pub webhook_max_in_flight: usize,
    /// How often the webhook outbox is checked for retries coming due.
    pub webhook_poll_interval_ms: u64,
    /// Disk space the cache of downloaded incoming media may use
    /// (`<data_dir>/media`), in bytes; the least recently fetched files go
    /// first. Default 1 GiB.
    pub media_cache_bytes: u64,
    /// How long a downloaded file stays cached. Default 7 days.
    pub media_cache_retention_secs: u64,
    /// Keep each session's keys in a file of its own under
    /// `<data_dir>/sessions`, as gateways before the shared key store did.
    /// Not configurable: only the test of the upgrade from that layout
    /// sets it, to make the layout with the code that made it.
    #[doc(hidden)]
    #[serde(skip)]
    pub legacy_key_files: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080),
            metrics_listen: None,
            data_dir: PathBuf::from("./data"),
            database_url: None,
            database_pool_size: 10,
            nats_url: None,
            node_id: None,
            node_capacity: None,
            lease_time_ms: 15_000,
            whatsapp_url: None,
            link_timeout_secs: 300,
            retry_budget_secs: 600,
            liveness_idle_ms: 25_000,
            liveness_timeout_ms: 10_000,
            // Room for the largest body the API document allows outside
            // media: an edit's 65,536-character text, each character up to
            // six bytes once JSON-escaped.
            body_limit_bytes: 512 * 1024,
            ws_client_buffer: 64,
            ws_ping_interval_secs: 20,
            ws_max_clients_per_org: 32,
            shutdown_timeout_secs: 10,
            sandbox: false,
            sandbox_latency_ms: 0,
            sandbox_latency_jitter_ms: 0,
            send_per_minute: 30,
            send_new_chats_per_minute: 6,
            send_jitter: 0.3,
            message_expiry_secs: 24 * 3600,
            media_limit_bytes: 16 * 1024 * 1024,
            allow_private_network: false,
            egress_loopback_only: false,
            event_retention_secs: 7 * 24 * 3600,
            webhook_timeout_secs: 10,
            webhook_retry_window_secs: 24 * 3600,
            webhook_backoff_base_ms: 5_000,
            webhook_backoff_max_secs: 3600,
            webhook_disable_after_secs: 24 * 3600,
            webhook_max_in_flight: 64,
            webhook_poll_interval_ms: 1_000,
            media_cache_bytes: 1 << 30,
            media_cache_retention_secs: 7 * 24 * 3600,
            legacy_key_files: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("config file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("whatsapp_url must be a ws:// or wss:// URL, got {0}")]
    UnsupportedScheme(String),
    #[error(transparent)]
    SimulatorNeedsLoopback(#[from] SimulatorNeedsLoopback),
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    #[error(
        "this build has no sandbox; build with it: cargo run -p wagate --features sandbox -- serve --sandbox"
    )]
    SandboxNotBuilt,
    #[error(
        "the sandbox connects only to its own built-in simulator; remove whatsapp_url (or drop --sandbox)"
    )]
    SandboxOwnServer,
    #[error(
        "--nats (nats_url) needs a PostgreSQL database (--database postgres://…): \
         SQLite serves one process"
    )]
    NatsNeedsPostgres,
    #[error("node_id must not be empty")]
    EmptyNodeId,
    #[error(
        "event_retention_secs must be at least webhook_retry_window_secs: a delivery still being retried would lose its event"
    )]
    RetentionShorterThanRetries,
}

/// Command-line values; `None` leaves the lower layers in charge.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<Secret<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_pool_size: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats_url: Option<Secret<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_capacity: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_time_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub whatsapp_url: Option<Url>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_timeout_secs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_budget_secs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<bool>,
}

impl Config {
    /// Layers defaults, `file`, the environment and `overrides`, then
    /// validates the result.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        Self::load_from(file, overrides, Env::prefixed("WAGATE_"))
    }

    fn load_from(
        file: Option<&Path>,
        overrides: &Overrides,
        env: Env,
    ) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(ConfigError::MissingFile(file.to_path_buf()));
            }
            figment = figment.merge(Toml::file(file));
        }
        // WAGATE_CONFIG names the file and WAGATE_LOG the log filter; the
        // test harness's variables (which database the tests use, and the
        // WAGATE_REQUIRE_* that make a missing test tool a failure) share
        // the prefix. None of them is a setting.
        let env = env
            .ignore(&["CONFIG", "LOG", "TEST_DATABASE", "TEST_POSTGRES_URL"])
            .filter(|key| !key.as_str().to_ascii_uppercase().starts_with("REQUIRE_"));
        let config: Config = figment
            .merge(env)
            .merge(Serialized::defaults(overrides))
            .extract()
            .map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, value) in [
            ("link_timeout_secs", self.link_timeout_secs),
            ("retry_budget_secs", self.retry_budget_secs),
            ("liveness_idle_ms", self.liveness_idle_ms),
            ("liveness_timeout_ms", self.liveness_timeout_ms),
            ("lease_time_ms", self.lease_time_ms),
            ("ws_ping_interval_secs", self.ws_ping_interval_secs),
            ("message_expiry_secs", self.message_expiry_secs),
            ("event_retention_secs", self.event_retention_secs),
            ("webhook_timeout_secs", self.webhook_timeout_secs),
            ("webhook_retry_window_secs", self.webhook_retry_window_secs),
            ("webhook_backoff_base_ms", self.webhook_backoff_base_ms),
            ("webhook_backoff_max_secs", self.webhook_backoff_max_secs),
            (
                "webhook_disable_after_secs",
                self.webhook_disable_after_secs,
            ),
            ("webhook_poll_interval_ms", self.webhook_poll_interval_ms),
            (
                "media_cache_retention_secs",
                self.media_cache_retention_secs,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        if self.database_pool_size == 0 {
            return Err(ConfigError::Zero("database_pool_size"));
        }
        if self.media_limit_bytes == 0 {
            return Err(ConfigError::Zero("media_limit_bytes"));
        }
        if self.ws_client_buffer == 0 {
            return Err(ConfigError::Zero("ws_client_buffer"));
        }
        if self.webhook_max_in_flight == 0 {
            return Err(ConfigError::Zero("webhook_max_in_flight"));
        }
        if self.event_retention_secs < self.webhook_retry_window_secs {
            return Err(ConfigError::RetentionShorterThanRetries);
        }
        if self.node_capacity == Some(0) {
            return Err(ConfigError::Zero("node_capacity"));
        }
        if self
            .node_id
            .as_deref()
            .is_some_and(|id| id.trim().is_empty())
        {
            return Err(ConfigError::EmptyNodeId);
        }
        if self.nats_url.is_some() && !self.database_is_postgres() {
            return Err(ConfigError::NatsNeedsPostgres);
        }
        if self.sandbox {
            if !cfg!(feature = "sandbox") {
                return Err(ConfigError::SandboxNotBuilt);
            }
            // The simulator's address is only known once it runs; the
            // sandbox sets it itself and accepts no other.
            if self.whatsapp_url.is_some() {
                return Err(ConfigError::SandboxOwnServer);
            }
            return Ok(());
        }
        if let Some(url) = &self.whatsapp_url
            && !matches!(url.scheme(), "ws" | "wss")
        {
            return Err(ConfigError::UnsupportedScheme(url.to_string()));
        }
        check_server_allowed(self.whatsapp_url.as_ref())?;
        Ok(())
    }

    pub fn database_url(&self) -> Secret<String> {
        self.database_url.clone().unwrap_or_else(|| {
            Secret::new(format!(
                "sqlite://{}",
                self.data_dir.join("wagate.db").display()
            ))
        })
    }

    fn database_is_postgres(&self) -> bool {
        let url = self.database_url();
        let url = url.expose();
        url.starts_with("postgres:") || url.starts_with("postgresql:")
    }

    /// This node's name among several (`node_id`), or one derived from
    /// the host's name and the data directory: stable across restarts of
    /// the same installation, different for two on one host.
    pub fn node_id(&self) -> String {
        if let Some(id) = &self.node_id {
            return id.trim().to_string();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "node".to_string());
        let dir = std::fs::canonicalize(&self.data_dir).unwrap_or_else(|_| self.data_dir.clone());
        // FNV-1a: the same name from every build, unlike std's hasher.
        let hash = dir
            .to_string_lossy()
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
            });
        format!("{host}-{:08x}", hash & 0xffff_ffff)
    }

    /// How this node holds session leases (used with `--nats`).
    pub(crate) fn lease_policy(&self) -> crate::session::leases::LeasePolicy {
        crate::session::leases::LeasePolicy {
            node: self.node_id(),
            lease: Duration::from_millis(self.lease_time_ms),
            capacity: self.node_capacity,
        }
    }

    /// Where downloaded incoming media is cached.
    pub fn media_cache_dir(&self) -> PathBuf {
        self.data_dir.join("media")
    }

    /// Where gateways before the shared key store kept each session's keys
    /// (`<id>.db`); what is left there is imported at start.
    pub fn sessions_dir(&self) -> PathBuf {
        self.data_dir.join("sessions")
    }

    pub fn link_timeout(&self) -> Duration {
        Duration::from_secs(self.link_timeout_secs)
    }

    pub fn retry_budget(&self) -> Duration {
        Duration::from_secs(self.retry_budget_secs)
    }

    pub fn liveness_policy(&self) -> LivenessPolicy {
        LivenessPolicy {
            idle: Duration::from_millis(self.liveness_idle_ms),
            timeout: Duration::from_millis(self.liveness_timeout_ms),
        }
    }

    pub fn egress_policy(&self) -> EgressPolicy {
        EgressPolicy {
            allow_private_network: self.allow_private_network,
            loopback_only: self.egress_loopback_only,
        }
    }

    pub fn event_retention(&self) -> Duration {
        Duration::from_secs(self.event_retention_secs)
    }

    pub fn delivery_policy(&self) -> DeliveryPolicy {
        DeliveryPolicy {
            timeout: Duration::from_secs(self.webhook_timeout_secs),
            retry_window: Duration::from_secs(self.webhook_retry_window_secs),
            backoff_base: Duration::from_millis(self.webhook_backoff_base_ms),
            backoff_max: Duration::from_secs(self.webhook_backoff_max_secs),
            disable_after: Duration::from_secs(self.webhook_disable_after_secs),
            max_in_flight: self.webhook_max_in_flight,
            poll_interval: Duration::from_millis(self.webhook_poll_interval_ms),
            egress: self.egress_policy(),
        }
    }

    pub fn outbox_policy(&self) -> OutboxPolicy {
        OutboxPolicy {
            egress: self.egress_policy(),
            expiry: Duration::from_secs(self.message_expiry_secs),
            media_limit_bytes: self.media_limit_bytes,
            pacing: PacingPolicy {
                per_minute: self.send_per_minute,
                new_chats_per_minute: self.send_new_chats_per_minute,
                jitter: self.send_jitter,
            },
            ..OutboxPolicy::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn no_env() -> Env {
        Env::prefixed("WAGATE_TEST_UNSET_PREFIX_")
    }

    fn simulator_url() -> Url {
        Url::parse("ws://127.0.0.1:9000/ws/chat").unwrap_or_else(|e| panic!("{e}"))
    }

    /// Builds with the simulator feature refuse to start without a loopback
    /// server, so tests that are about layering give them one.
    fn base() -> Overrides {
        Overrides {
            whatsapp_url: cfg!(feature = "simulator").then(simulator_url),
            ..Overrides::default()
        }
    }

    #[test]
    fn defaults_need_no_configuration() -> Result<(), ConfigError> {
        let config = Config::load_from(None, &base(), no_env())?;
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.data_dir, PathBuf::from("./data"));
        assert_eq!(config.database_url().expose(), "sqlite://./data/wagate.db");
        assert_eq!(config.link_timeout(), Duration::from_secs(300));
        assert_eq!(config.retry_budget(), Duration::from_secs(600));
        Ok(())
    }

    #[test]
    // The closure's error type is figment's, not ours to shrink.
    #[allow(clippy::result_large_err)]
    fn file_then_env_then_flags_override_each_other() -> Result<(), Box<dyn std::error::Error>> {
        let mut file = tempfile::NamedTempFile::new()?;
        writeln!(
            file,
            "listen = \"127.0.0.1:9001\"\nlink_timeout_secs = 60\nretry_budget_secs = 30\ndata_dir = \"/srv/wagate\""
        )?;
        figment::Jail::expect_with(|jail| {
            jail.set_env("WAGATE_LINK_TIMEOUT_SECS", "90");
            jail.set_env("WAGATE_RETRY_BUDGET_SECS", "45");
            let overrides = Overrides {
                retry_budget_secs: Some(120),
                ..base()
            };
            let config = Config::load_from(Some(file.path()), &overrides, Env::prefixed("WAGATE_"))
                .map_err(|e| e.to_string())?;
            assert_eq!(
                config.listen.to_string(),
                "127.0.0.1:9001",
                "file beats default"
            );
            assert_eq!(config.link_timeout_secs, 90, "env beats file");
            assert_eq!(config.retry_budget_secs, 120, "flag beats env");
            assert_eq!(config.data_dir, PathBuf::from("/srv/wagate"));
            Ok(())
        });
        Ok(())
    }

    #[test]
    fn unknown_keys_and_missing_files_are_errors() -> Result<(), Box<dyn std::error::Error>> {
        let mut file = tempfile::NamedTempFile::new()?;
        writeln!(file, "lisen = \"127.0.0.1:9001\"")?;
        assert!(Config::load_from(Some(file.path()), &base(), no_env()).is_err());
        assert!(matches!(
            Config::load_from(
                Some(Path::new("/nonexistent/wagate.toml")),
                &base(),
                no_env()
            ),
            Err(ConfigError::MissingFile(_))
        ));
        Ok(())
    }

    #[test]
    fn zero_durations_are_rejected() {
        let overrides = Overrides {
            link_timeout_secs: Some(0),
            ..base()
        };
        assert!(matches!(
            Config::load_from(None, &overrides, no_env()),
            Err(ConfigError::Zero("link_timeout_secs"))
        ));
    }

    #[test]
    // The closure's error type is figment's, not ours to shrink.
    #[allow(clippy::result_large_err)]
    fn the_database_pool_size_is_set_by_env_or_flag_and_never_zero() {
        figment::Jail::expect_with(|jail| {
            let config = Config::load_from(None, &base(), Env::prefixed("WAGATE_"))
                .map_err(|e| e.to_string())?;
            assert_eq!(config.database_pool_size, 10, "default");
            jail.set_env("WAGATE_DATABASE_POOL_SIZE", "40");
            let config = Config::load_from(None, &base(), Env::prefixed("WAGATE_"))
                .map_err(|e| e.to_string())?;
            assert_eq!(config.database_pool_size, 40, "env");
            let overrides = Overrides {
                database_pool_size: Some(64),
                ..base()
            };
            let config = Config::load_from(None, &overrides, Env::prefixed("WAGATE_"))
                .map_err(|e| e.to_string())?;
            assert_eq!(config.database_pool_size, 64, "flag beats env");
            let zero = Overrides {
                database_pool_size: Some(0),
                ..base()
            };
            assert!(matches!(
                Config::load_from(None, &zero, Env::prefixed("WAGATE_")),
                Err(ConfigError::Zero("database_pool_size"))
            ));
            Ok(())
        });
    }

    #[test]
    // The closure's error type is figment's, not ours to shrink.
    #[allow(clippy::result_large_err)]
    fn the_test_harness_variables_are_not_settings() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("WAGATE_TEST_DATABASE", "sqlite");
            jail.set_env("WAGATE_REQUIRE_POSTGRES", "1");
            jail.set_env("WAGATE_REQUIRE_CHROMIUM", "1");
            jail.set_env("WAGATE_REQUIRE_A_TOOL_ADDED_LATER", "1");
            Config::load_from(None, &base(), Env::prefixed("WAGATE_"))
                .map_err(|e| e.to_string())?;
            Ok(())
        });
    }

    #[test]
    fn the_database_url_is_redacted_in_debug_output() -> Result<(), ConfigError> {
        let overrides = Overrides {
            database_url: Some(Secret::new("postgres://user:hunter2@db/wagate".into())),
            ..base()
        };
        let config = Config::load_from(None, &overrides, no_env())?;
        assert!(!format!("{config:?}").contains("hunter2"));
        Ok(())
    }

    #[test]
    fn nats_needs_postgres() -> Result<(), ConfigError> {
        let nats = Some(Secret::new("nats://127.0.0.1:4222".to_string()));
        let on_sqlite = Overrides {
            nats_url: nats.clone(),
            ..base()
        };
        let refused = Config::load_from(None, &on_sqlite, no_env());
        assert!(matches!(refused, Err(ConfigError::NatsNeedsPostgres)));
        let on_postgres = Overrides {
            nats_url: nats,
            database_url: Some(Secret::new("postgres://wagate@db/wagate".into())),
            ..base()
        };
        Config::load_from(None, &on_postgres, no_env()).map(|_| ())
    }

    #[cfg(feature = "simulator")]
    #[test]
    fn a_simulator_build_refuses_non_loopback_servers() {
        for url in [None, Some("wss://web.whatsapp.com/ws/chat")] {
            let overrides = Overrides {
                whatsapp_url: url.map(|u| Url::parse(u).unwrap_or_else(|e| panic!("{e}"))),
                ..Overrides::default()
            };
            assert!(matches!(
                Config::load_from(None, &overrides, no_env()),
                Err(ConfigError::SimulatorNeedsLoopback(_))
            ));
        }
    }

    #[cfg(not(feature = "simulator"))]
    #[test]
    fn a_default_build_accepts_any_server() -> Result<(), ConfigError> {
        let overrides = Overrides {
            whatsapp_url: Url::parse("wss://example.org/ws/chat").ok(),
            ..Overrides::default()
        };
        Config::load_from(None, &overrides, no_env()).map(|_| ())
    }

    #[test]
    fn the_sandbox_needs_its_feature_and_accepts_no_other_server() {
        let sandbox = Overrides {
            sandbox: Some(true),
            ..Overrides::default()
        };
        let result = Config::load_from(None, &sandbox, no_env());
        if cfg!(feature = "sandbox") {
            assert!(result.is_ok(), "{result:?}");
        } else {
            assert!(matches!(result, Err(ConfigError::SandboxNotBuilt)));
        }
        let elsewhere = Overrides {
            whatsapp_url: Some(simulator_url()),
            ..sandbox
        };
        assert!(Config::load_from(None, &elsewhere, no_env()).is_err());
    }
}

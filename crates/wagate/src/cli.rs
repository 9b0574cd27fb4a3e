//! Command-line interface.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use url::Url;

use anyhow::Context;

use crate::admin::{self, IssuedToken};
use crate::config::{Config, Overrides};
use crate::dashboard::accounts::{self, IssuedUser};
use crate::domain::Role;
use crate::domain::TokenId;
use crate::secret::Secret;
use crate::serve::Application;
use crate::store;

const ENV_HELP: &str = "\
Every setting can also come from a TOML file (--config) or a WAGATE_* \
environment variable named after it: WAGATE_LISTEN, WAGATE_DATA_DIR, \
WAGATE_DATABASE_URL, WAGATE_WHATSAPP_URL, WAGATE_LINK_TIMEOUT_SECS, \
WAGATE_RETRY_BUDGET_SECS, WAGATE_BODY_LIMIT_BYTES, WAGATE_WS_CLIENT_BUFFER, \
WAGATE_WS_PING_INTERVAL_SECS, WAGATE_WS_MAX_CLIENTS_PER_ORG, \
WAGATE_SHUTDOWN_TIMEOUT_SECS, WAGATE_SANDBOX, WAGATE_NATS_URL, WAGATE_NODE_ID, \
WAGATE_NODE_CAPACITY, WAGATE_LEASE_TIME_MS. Precedence: flag > environment > file > default. \
Log verbosity: WAGATE_LOG (e.g. WAGATE_LOG=debug).";

#[derive(Debug, Parser)]
#[command(name = "wagate", version, about = "Self-hosted WhatsApp gateway", after_help = ENV_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// TOML configuration file.
    #[arg(long, global = true, env = "WAGATE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory for the database (the sessions' keys included) and the media cache [default: ./data].
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL: sqlite://FILE or postgres://USER@HOST/DATABASE
    /// [default: sqlite://<data-dir>/wagate.db].
    #[arg(
        long,
        alias = "database",
        global = true,
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Connections to a PostgreSQL database [default: 10; SQLite ignores it].
    #[arg(long, global = true, value_name = "N")]
    pub database_pool_size: Option<u32>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    #[command(after_help = ENV_HELP)]
    Serve(Box<ServeArgs>),
    /// Manage organizations.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage dashboard users.
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Serve Prometheus metrics (`GET /metrics`, no authentication) on this
    /// second address; keep it where only the scraper reaches [default: off].
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// NATS server URL (nats://HOST:PORT): serve as one node of several
    /// gateway processes on one PostgreSQL database. Without it this
    /// process must be the only one serving its database.
    #[arg(long = "nats", alias = "nats-url", value_name = "URL")]
    pub nats_url: Option<String>,
    /// This node's name among several (with --nats) [default: derived
    /// from the host and the data directory].
    #[arg(long, value_name = "NAME")]
    pub node_id: Option<String>,
    /// Sessions this node owns at most (with --nats) [default: no limit].
    #[arg(long, value_name = "N")]
    pub node_capacity: Option<u32>,
    /// Milliseconds a session's lease lasts unrenewed (with --nats): the
    /// longest a dead node's sessions stay offline [default: 15000].
    #[arg(long, value_name = "MS")]
    pub lease_time_ms: Option<u64>,
    /// WhatsApp server WebSocket URL [default: WhatsApp itself].
    #[arg(long, value_name = "URL")]
    pub whatsapp_url: Option<Url>,
    /// Seconds a session waits for a phone to link before failing [default: 300].
    #[arg(long, value_name = "SECS")]
    pub link_timeout_secs: Option<u64>,
    /// Seconds of consecutive connection failures before a session fails [default: 600].
    #[arg(long, value_name = "SECS")]
    pub retry_budget_secs: Option<u64>,
    /// Try it without a phone: run the built-in WhatsApp simulator and
    /// connect every session to it, with a throwaway database. Needs a
    /// build with `--features sandbox`.
    #[arg(long)]
    pub sandbox: bool,
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create an organization.
    Create {
        /// Organization name (unique).
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user to an organization; a new account gets a generated
    /// password, printed once.
    Create {
        /// Organization name or id.
        #[arg(long)]
        org: String,
        /// Sign-in email.
        #[arg(long)]
        email: String,
        /// owner, admin or member.
        #[arg(long, default_value = "member")]
        role: Role,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token; it is printed once and stored only hashed.
    Create {
        /// Organization name or id.
        #[arg(long)]
        org: String,
    },
    /// Revoke an API token by its id.
    Revoke {
        /// Token id (as printed by `token create`).
        id: TokenId,
    },
}

impl Cli {
    /// The configuration layer these flags contribute.
    pub fn overrides(&self) -> Overrides {
        let mut overrides = Overrides {
            data_dir: self.global.data_dir.clone(),
            database_url: self.global.database_url.clone().map(Secret::new),
            database_pool_size: self.global.database_pool_size,
            ..Overrides::default()
        };
        if let Command::Serve(serve) = &self.command {
            overrides.listen = serve.listen;
            overrides.metrics_listen = serve.metrics_listen;
            overrides.nats_url = serve.nats_url.clone().map(Secret::new);
            overrides.node_id = serve.node_id.clone();
            overrides.node_capacity = serve.node_capacity;
            overrides.lease_time_ms = serve.lease_time_ms;
            overrides.whatsapp_url = serve.whatsapp_url.clone();
            overrides.link_timeout_secs = serve.link_timeout_secs;
            overrides.retry_budget_secs = serve.retry_budget_secs;
            overrides.sandbox = serve.sandbox.then_some(true);
        }
        overrides
    }
}

impl Cli {
    /// Loads the configuration and carries out the command.
    pub async fn run(self) -> anyhow::Result<()> {
        let config = Config::load(self.global.config.as_deref(), &self.overrides())?;
        match self.command {
            Command::Serve(_) => serve(config).await,
            Command::Org(OrgCommand::Create { name }) => {
                let store = open_store(&config).await?;
                let org = admin::create_org(store.as_ref(), &name).await?;
                println!("organization {} created (id {})", org.name, org.id);
                Ok(())
            }
            Command::Token(TokenCommand::Create { org }) => {
                let store = open_store(&config).await?;
                let issued = admin::create_token(store.as_ref(), &org).await?;
                print_token(&issued);
                Ok(())
            }
            Command::User(UserCommand::Create { org, email, role }) => {
                let store = open_store(&config).await?;
                let issued = accounts::create_user(store.as_ref(), &org, &email, role).await?;
                print_user(&issued);
                Ok(())
            }
            Command::Token(TokenCommand::Revoke { id }) => {
                let store = open_store(&config).await?;
                admin::revoke_token(store.as_ref(), id).await?;
                println!("token {id} revoked");
                Ok(())
            }
        }
    }
}

async fn open_store(config: &Config) -> anyhow::Result<std::sync::Arc<dyn store::Store>> {
    tokio::fs::create_dir_all(&config.data_dir)
        .await
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    Ok(store::connect_with(&config.database_url(), config.database_pool_size).await?)
}

/// Printed to stdout, never logged: this is the only time the token exists
/// outside the caller's hands.
fn print_token(issued: &IssuedToken) {
    println!(
        "API token for organization {} (token id {}); it will not be shown again:\n\n    {}\n",
        issued.org.name,
        issued.id,
        issued.token.plaintext().expose()
    );
}

/// Like [`print_token`]: stdout only, once.
fn print_user(issued: &IssuedUser) {
    match &issued.password {
        Some(password) => println!(
            "Dashboard user {} ({} of organization {}); sign in with this password, it will not be shown again:\n\n    {}\n",
            issued.email,
            issued.role,
            issued.org.name,
            password.expose()
        ),
        None => println!(
            "Existing dashboard user {} added to organization {} as {}; they keep their password.",
            issued.email, issued.org.name, issued.role
        ),
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let sandbox = config.sandbox;
    let mut app = Application::build(config).await?;
    if let Some(issued) = app.take_bootstrap_token() {
        println!("First start: created organization \"{}\".", issued.org.name);
        print_token(&issued);
    }
    if let Some(user) = app.take_bootstrap_user() {
        print_user(&user);
    }
    let dashboard = format!("http://{}/", app.addr());
    if sandbox {
        println!(
            "Sandbox: sessions connect to a built-in WhatsApp simulator; nothing is kept.\nOpen {dashboard} and sign in with the user above.\n"
        );
    } else {
        println!("Dashboard: {dashboard}");
    }
    let shutdown = app.shutdown_token();
    tokio::spawn(async move {
        wait_for_signal().await;
        shutdown.cancel();
    });
    app.run_until_stopped().await
}

async fn wait_for_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_flags_become_overrides() -> Result<(), clap::Error> {
        let cli = Cli::try_parse_from([
            "wagate",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--link-timeout-secs",
            "5",
            "--data-dir",
            "/tmp/x",
        ])?;
        let overrides = cli.overrides();
        assert_eq!(overrides.listen.map(|a| a.port()), Some(0));
        assert_eq!(overrides.link_timeout_secs, Some(5));
        assert_eq!(overrides.data_dir, Some(PathBuf::from("/tmp/x")));
        assert_eq!(overrides.retry_budget_secs, None);
        Ok(())
    }
}

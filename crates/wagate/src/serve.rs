//! Serving: builds the [`AppState`] from configuration, binds the
//! listeners, and runs everything until shutdown. The top of the library:
//! it wires every layer below.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, IssuedToken};
use crate::app::AppState;
use crate::config::Config;
#[cfg(feature = "sandbox")]
use crate::dashboard::state::Dashboard;
use crate::http;
use crate::retention::Retention;
use crate::session::leases::LeaseKeeper;
use crate::session::manager::ClusterLink;
use crate::session::whatsapp::WhatsAppEngine;
use crate::store::leases::StoreLeases;
use crate::store::process_lock::{ProcessLock, Sharing, Whoami};
use crate::store::{self, Store};
use crate::webhooks::Dispatcher;

pub fn build_app(state: AppState) -> Router {
    http::router(state)
}

/// A bound, ready-to-run gateway. Binding happens in [`Application::build`],
/// so a test can ask for port 0 and read the real one from [`Application::port`].
pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    /// The `/metrics` listener, when `metrics_listen` is set.
    metrics: Option<(TcpListener, SocketAddr)>,
    state: AppState,
    bootstrap: Option<IssuedToken>,
    bootstrap_user: Option<crate::dashboard::accounts::IssuedUser>,
    shutdown_timeout: Duration,
    /// Long-lived workers that run beside the HTTP server (see
    /// [`Application::add_task`]).
    tasks: Vec<(&'static str, BoxFuture<'static, anyhow::Result<()>>)>,
    webhooks: Dispatcher,
    /// This process's hold on its database, for its whole life (see
    /// `store/process_lock.rs`).
    process_lock: ProcessLock,
    /// How this node holds session leases, when it is one of several
    /// (`--nats`); `None` for the single process, which runs every session.
    leases: Option<crate::session::leases::LeasePolicy>,
    /// The link to the other nodes (`--nats`).
    nats: Option<async_nats::Client>,
    /// The in-process simulator and throwaway data of `serve --sandbox`;
    /// held so they live exactly as long as the gateway.
    #[cfg(feature = "sandbox")]
    sandbox: Option<crate::dashboard::sandbox::SandboxEnv>,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        config.validate()?;
        #[cfg(feature = "sandbox")]
        let (config, sandbox) = crate::dashboard::sandbox::SandboxEnv::prepare(config).await?;
        tokio::fs::create_dir_all(&config.data_dir)
            .await
            .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
        // Before the store migrates or anything resumes: a second process
        // on the same database stops here, naming the first.
        let sharing = if config.nats_url.is_some() {
            Sharing::Node
        } else {
            Sharing::Alone
        };
        let process_lock =
            ProcessLock::acquire(&config.database_url(), sharing, &Whoami::this_process()).await?;
        let store = store::connect_with(&config.database_url(), config.database_pool_size)
            .await
            .context("opening the database")?;
        let bootstrap = admin::bootstrap(store.as_ref())
            .await
            .context("creating the first organization")?;
        let bootstrap_user = crate::dashboard::accounts::bootstrap(store.as_ref())
            .await
            .context("creating the first dashboard user")?;
        let engine = if config.legacy_key_files {
            WhatsAppEngine::legacy_files(config.sessions_dir(), config.whatsapp_url.clone())
        } else {
            // Before any session starts: a session whose keys are still in
            // an old per-session file would otherwise link again.
            store::legacy_keys::import_key_files(store.as_ref(), &config.sessions_dir())
                .await
                .context("importing the old per-session key files")?;
            WhatsAppEngine::new(Arc::clone(&store), config.whatsapp_url.clone())
        };
        let engine = Arc::new(engine);
        #[allow(unused_mut)] // Only a sandbox build changes it.
        let mut state = AppState::new(&config, store, engine, CancellationToken::new());
        #[cfg(feature = "sandbox")]
        if let Some(sandbox) = &sandbox {
            state.dashboard = Dashboard::with_sandbox(sandbox.handle());
        }
        let webhooks = Dispatcher::new(
            Arc::clone(&state.store),
            state.hub.clone(),
            config.delivery_policy(),
            // One node of several: each delivers its own sessions' queues.
            config.nats_url.as_ref().map(|_| config.node_id()),
        )?;
        let nats = match &config.nats_url {
            Some(url) => Some(
                crate::cluster::connect(url.expose(), &config.node_id(), state.hub.clone()).await?,
            ),
            None => None,
        };
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let addr = listener.local_addr()?;
        let metrics = match config.metrics_listen {
            Some(at) => {
                let listener = TcpListener::bind(at)
                    .await
                    .with_context(|| format!("binding {at} (metrics_listen)"))?;
                let addr = listener.local_addr()?;
                Some((listener, addr))
            }
            None => None,
        };
        Ok(Self {
            listener,
            addr,
            metrics,
            state,
            bootstrap,
            bootstrap_user,
            shutdown_timeout: Duration::from_secs(config.shutdown_timeout_secs),
            tasks: Vec::new(),
            webhooks,
            process_lock,
            leases: (sharing == Sharing::Node).then(|| config.lease_policy()),
            nats,
            #[cfg(feature = "sandbox")]
            sandbox,
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where `/metrics` is served, if it is.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(_, addr)| *addr)
    }

    pub fn store(&self) -> Arc<dyn Store> {
        Arc::clone(&self.state.store)
    }

    /// The organization and token created on first start, if this was one.
    pub fn take_bootstrap_token(&mut self) -> Option<IssuedToken> {
        self.bootstrap.take()
    }

    /// The dashboard user created on first start (with its one-time
    /// password), if this was one.
    pub fn take_bootstrap_user(&mut self) -> Option<crate::dashboard::accounts::IssuedUser> {
        self.bootstrap_user.take()
    }

    /// The simulated phones of a `--sandbox` gateway.
    #[cfg(feature = "sandbox")]
    pub fn sandbox(&self) -> Option<wasim::SimHandle> {
        self.sandbox.as_ref().map(|s| s.handle())
    }

    /// Runs `task` beside the HTTP server for the gateway's whole life. It
    /// must run until the shutdown token is cancelled: if it ends before
    /// (returns or panics), the gateway shuts down and
    /// [`Application::run_until_stopped`] returns an error naming it.
    pub fn add_task(
        &mut self,
        name: &'static str,
        task: impl std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
    ) {
        self.tasks.push((name, Box::pin(task)));
    }

    /// Cancelling this token stops the application gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.state.shutdown.clone()
    }

    /// Resumes sessions, serves until the shutdown token is cancelled, then
    /// drains connections and sessions within the shutdown timeout.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self {
            listener,
            addr,
            metrics,
            state,
            shutdown_timeout,
            tasks: mut extra,
            webhooks,
            process_lock,
            leases,
            nats,
            // Kept until the end: sessions must stop before their simulator.
            #[cfg(feature = "sandbox")]
                sandbox: _sandbox,
            ..
        } = self;
        let shutdown = state.shutdown.clone();
        let sessions = state.sessions.clone();
        let mut extra_leases = None;
        if let (Some(policy), Some(nats)) = (leases, nats) {
            // One node of several: this node runs the sessions it takes
            // by lease, which its lease keeper decides, and sends the
            // calls for the others' sessions to them over NATS.
            let leases: Arc<dyn crate::store::LeaseStore> =
                Arc::new(StoreLeases(Arc::clone(&state.store)));
            let keeper = LeaseKeeper::new(
                Arc::clone(&leases),
                Arc::new(sessions.clone()),
                policy.clone(),
                shutdown.child_token(),
            );
            sessions.join_cluster(ClusterLink {
                node: policy.node.clone(),
                peers: crate::cluster::peers(&nats),
                keeper: keeper.handle(),
                leases,
                lease: policy.lease,
            });
            let released = crate::cluster::Released::new(&nats);
            let link = crate::cluster::serve(
                nats,
                policy.node.clone(),
                sessions.clone(),
                keeper.handle(),
                state.hub.clone(),
                shutdown.child_token(),
            );
            extra.push(("NATS link", Box::pin(link)));
            extra_leases = Some((keeper, released));
            tracing::info!(%addr, "wagate listening; sessions are taken by lease");
        } else {
            let resumed = sessions.resume_all().await.context("resuming sessions")?;
            tracing::info!(%addr, resumed, "wagate listening");
        }

        let retention = Retention {
            store: Arc::clone(&state.store),
            media: state.media_cache.clone(),
            events_for: state.event_retention,
        };
        let writer_ended = state.store.writer_ended();
        let mut tasks = JoinSet::new();
        let mut names = HashMap::new();
        if let Some((listener, metrics_addr)) = metrics {
            let app = crate::metrics::scrape::router(state.clone());
            let stop = shutdown.clone();
            tracing::info!(addr = %metrics_addr, "metrics listening");
            let server = tasks.spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await
                    .context("metrics server failed")
            });
            names.insert(server.id(), "metrics server");
        }
        let server_shutdown = shutdown.clone();
        let server = tasks.spawn(async move {
            axum::serve(listener, build_app(state))
                .with_graceful_shutdown(server_shutdown.cancelled_owned())
                .await
                .context("HTTP server failed")
        });
        names.insert(server.id(), "HTTP server");
        // Both run until the token is cancelled; an attempt cut off is made
        // again after the next start.
        let dispatcher_stop = shutdown.child_token();
        extra.push((
            "webhook dispatcher",
            Box::pin(async move {
                webhooks.run(dispatcher_stop).await;
                Ok(())
            }),
        ));
        // The store's group-commit writer: every grouped write (statuses,
        // incoming batches, key rows, delivered runs) waits on it, so if it
        // dies the gateway must not serve on without it.
        let writer_stop = shutdown.child_token();
        extra.push((
            "group-commit writer",
            Box::pin(async move {
                tokio::select! {
                    () = writer_stop.cancelled() => Ok(()),
                    why = writer_ended => Err(anyhow::anyhow!("{why}")),
                }
            }),
        ));
        let retention_stop = shutdown.child_token();
        extra.push((
            "retention",
            Box::pin(async move {
                retention.run(retention_stop).await;
                Ok(())
            }),
        ));
        if let Some((keeper, released)) = extra_leases {
            extra.push((
                "lease keeper",
                Box::pin(async move {
                    keeper.run().await;
                    // Stopped: its sessions were released, for the other
                    // nodes to take now rather than at their next pass.
                    released.announce().await;
                    Ok(())
                }),
            ));
        }
        if let Some(keeper) = process_lock.keeper(shutdown.child_token()) {
            extra.push(("database lock", Box::pin(async move { Ok(keeper.await?) })));
        }
        for (name, task) in extra {
            names.insert(tasks.spawn(task).id(), name);
        }
        // A top-level task that ends on its own leaves a process that looks
        // alive and does nothing: stop everything and exit non-zero, so a
        // service manager restarts the gateway.
        let died = tokio::select! {
            // First: tasks end *because* of a shutdown too.
            biased;
            () = shutdown.cancelled() => None,
            Some(ended) = tasks.join_next_with_id() => {
                let (name, why) = match ended {
                    Ok((id, Ok(()))) => (names.get(&id), "stopped on its own".to_string()),
                    Ok((id, Err(error))) => (names.get(&id), format!("failed: {error:#}")),
                    Err(join) => (names.get(&join.id()), format!("panicked: {join}")),
                };
                let name = name.copied().unwrap_or("a top-level task");
                tracing::error!(task = name, reason = %why, "a top-level task ended; shutting down");
                shutdown.cancel();
                Some(anyhow::anyhow!("{name} {why}"))
            }
        };
        tracing::info!("shutting down");

        if !sessions.shutdown(shutdown_timeout).await {
            tracing::warn!("some sessions did not stop in time");
        }
        let drained = tokio::time::timeout(shutdown_timeout, async {
            while let Some(joined) = tasks.join_next().await {
                joined.context("a top-level task panicked")??;
            }
            anyhow::Ok(())
        })
        .await;
        let drained = match drained {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!("HTTP connections or webhook deliveries did not drain in time");
                tasks.abort_all();
                Ok(())
            }
        };
        // Last: everything that wrote for this process has stopped.
        process_lock.release().await;
        match died {
            Some(error) => Err(error),
            None => drained,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// The store's group-commit writer is a top-level task: a bug that
    /// panics it stops the gateway with an error naming it, instead of
    /// leaving a process that looks healthy while every grouped write
    /// (statuses, incoming messages, keys) fails.
    #[tokio::test]
    async fn a_writer_that_panics_stops_the_gateway_with_an_error() -> anyhow::Result<()> {
        let dir = tempfile::TempDir::new()?;
        let config = Config {
            listen: ([127, 0, 0, 1], 0).into(),
            data_dir: dir.path().to_path_buf(),
            whatsapp_url: url::Url::parse("ws://127.0.0.1:9/ws/chat").ok(),
            ..Config::default()
        };
        let app = Application::build(config).await?;
        let port = app.port();
        let store = app.store();
        let shutdown = app.shutdown_token();
        let running = tokio::spawn(app.run_until_stopped());
        // Serving, so the writer task is being watched.
        let health = loop {
            if let Ok(response) = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await {
                break response;
            }
            tokio::task::yield_now().await;
        };
        assert!(health.status().is_success());

        store.panic_writer().await;
        let result = tokio::time::timeout(Duration::from_secs(30), running)
            .await
            .map_err(|_| anyhow::anyhow!("the gateway kept running without its writer"))??;
        let error = result.err().map(|e| format!("{e:#}"));
        assert!(
            error
                .as_deref()
                .is_some_and(|e| e.contains("group-commit writer")
                    && e.contains("panicked")
                    && e.contains("injected writer panic")),
            "{error:?}"
        );
        assert!(shutdown.is_cancelled());
        Ok(())
    }
}

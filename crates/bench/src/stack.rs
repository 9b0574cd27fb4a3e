//! The two processes under test, wasim and `wagate serve`, started as
//! children of this program (and the gateway started again on the same
//! data), with the benchmark's view of them: its API client, its realtime
//! socket and what the gateway holds.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::events::{Events, Stamp};
use crate::gateway::Gateway;
use crate::resources::{self, ClientMemory, PostgresMemory, ProcMemory};
use crate::{Args, database, mib};

/// The two processes under test and the benchmark's view of them.
pub(crate) struct Stack {
    pub(crate) sim: Child,
    pub(crate) gateway: Child,
    pub(crate) gw_pid: u32,
    pub(crate) sim_base: String,
    pub(crate) gw: Gateway,
    pub(crate) events: Events,
    pub(crate) reader: tokio::task::JoinHandle<()>,
    pub(crate) timeout: Duration,
    /// How to start the gateway again on the same data.
    pub(crate) gw_launch: Launch,
    /// The gateway's `GET /metrics` listener.
    pub(crate) metrics_base: String,
    /// The PostgreSQL database of this run, if on PostgreSQL.
    pub(crate) database: Option<database::Scratch>,
    /// Keeps the gateway's data directory until the end.
    pub(crate) _data: tempfile::TempDir,
}

/// The gateway's program and environment, to start it again.
pub(crate) struct Launch {
    pub(crate) program: PathBuf,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) base: String,
}

impl Launch {
    pub(crate) fn spawn(&self) -> anyhow::Result<Child> {
        command_or_hint(
            Command::new(&self.program)
                .arg("serve")
                .envs(self.env.iter().map(|(k, v)| (k, v)))
                .stdout(Stdio::piped()),
            &self.program,
        )
    }
}

impl Stack {
    pub(crate) async fn start(args: &Args, extra_env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let timeout = Duration::from_secs(args.timeout_secs);
        let bin_dir = std::env::current_exe()?
            .parent()
            .context("this program has no directory")?
            .to_path_buf();
        // A pool big enough for the send scenario's concurrent requests.
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(1024)
            .build()?;

        let sim_port = free_port()?;
        let sim_base = format!("http://127.0.0.1:{sim_port}");
        let sim = spawn(
            Command::new(bin_dir.join("wasim"))
                .arg("--listen")
                .arg(format!("127.0.0.1:{sim_port}"))
                .arg("--latency-ms")
                .arg(args.latency_ms.to_string())
                .arg("--latency-jitter-ms")
                .arg(args.latency_jitter_ms.to_string())
                .env("RUST_LOG", "wasim=warn")
                .stdout(Stdio::null()),
            "wasim",
            &bin_dir,
        )?;
        wait_http_ok(&http, &format!("{sim_base}/admin/stats"), timeout).await?;

        let data = tempfile::tempdir()?;
        let database = match &args.database {
            Some(url) if url.starts_with("postgres") => Some(database::Scratch::create(url).await?),
            _ => None,
        };
        let gw_port = free_port()?;
        let metrics_port = free_port()?;
        let mut env: Vec<(String, String)> = vec![
            ("WAGATE_LISTEN".into(), format!("127.0.0.1:{gw_port}")),
            (
                "WAGATE_METRICS_LISTEN".into(),
                format!("127.0.0.1:{metrics_port}"),
            ),
            ("WAGATE_DATA_DIR".into(), data.path().display().to_string()),
            (
                "WAGATE_WHATSAPP_URL".into(),
                format!("ws://127.0.0.1:{sim_port}/ws/chat"),
            ),
            // Every session's events go to the one benchmark socket; 1,000
            // sessions reconnecting at once must not overflow it.
            ("WAGATE_WS_CLIENT_BUFFER".into(), "1000000".into()),
            // Quiet unless asked: `WAGATE_LOG=info wagate-bench ...`.
            (
                "WAGATE_LOG".into(),
                std::env::var("WAGATE_LOG").unwrap_or_else(|_| "warn".into()),
            ),
        ];
        match (&database, &args.database) {
            (Some(scratch), _) => env.push(("WAGATE_DATABASE_URL".into(), scratch.url.clone())),
            (None, Some(url)) => env.push(("WAGATE_DATABASE_URL".into(), url.clone())),
            (None, None) => {}
        }
        env.extend(
            extra_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let gw_launch = Launch {
            program: bin_dir.join("wagate"),
            env,
            base: format!("http://127.0.0.1:{gw_port}"),
        };
        let mut gateway = gw_launch.spawn()?;
        let gw_pid = gateway.id().context("wagate exited at once")?;
        let token = read_token(&mut gateway).await?;
        let api = format!("http://127.0.0.1:{gw_port}/api/v1");
        wait_http_ok(&http, &format!("{}/readyz", gw_launch.base), timeout).await?;
        let gw = Gateway {
            http: http.clone(),
            api: api.clone(),
            token: token.clone(),
        };

        let events = Events::default();
        let (socket, _) = tokio_tungstenite::connect_async(format!(
            "ws://127.0.0.1:{gw_port}/api/v1/ws?token={token}"
        ))
        .await
        .context("realtime socket")?;
        let reader = tokio::spawn(events.clone().read(socket, Stamp::Arrival));
        Ok(Self {
            sim,
            gateway,
            gw_pid,
            sim_base,
            gw,
            events,
            reader,
            timeout,
            gw_launch,
            metrics_base: format!("http://127.0.0.1:{metrics_port}"),
            database,
            _data: data,
        })
    }

    /// Everything the gateway (and PostgreSQL) hold now, printed under
    /// `when`.
    pub(crate) async fn print_resources(
        &mut self,
        when: &str,
        sessions: usize,
    ) -> anyhow::Result<()> {
        let gw = ProcMemory::of(self.gw_pid)?;
        let fds = resources::open_fds(self.gw_pid);
        let per = |kib: u64| kib as f64 / sessions.max(1) as f64;
        println!(
            "[{when}] gateway RSS {} ({:.0} KiB per session), PSS {}; {fds} open file descriptors ({:.2} per session)",
            mib(gw.rss_kib),
            per(gw.rss_kib),
            mib(gw.pss_kib),
            fds as f64 / sessions.max(1) as f64
        );
        match ClientMemory::scrape(&self.gw.http, &self.metrics_base).await {
            Ok(memory) => memory.print(),
            Err(error) => println!("[{when}] no metrics: {error:#}"),
        }
        if let Some(database) = &mut self.database {
            PostgresMemory::read(&mut database.admin, &database.name)
                .await?
                .print();
        }
        Ok(())
    }

    pub(crate) async fn stop(&mut self) {
        self.reader.abort();
        stop(&mut self.gateway).await;
        stop(&mut self.sim).await;
    }
}

pub(crate) fn spawn(command: &mut Command, name: &str, bin_dir: &Path) -> anyhow::Result<Child> {
    command_or_hint(command, &bin_dir.join(name))
}

pub(crate) fn command_or_hint(command: &mut Command, program: &Path) -> anyhow::Result<Child> {
    command.kill_on_drop(true).spawn().with_context(|| {
        format!(
            "starting {} — build it first: cargo build --release -p wasim --bins && \
             cargo build --release -p wagate --features simulator",
            program.display()
        )
    })
}

/// The first start prints the organization's API token once, indented.
pub(crate) async fn read_token(gateway: &mut Child) -> anyhow::Result<String> {
    let stdout = gateway.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let token = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await? {
            let line = line.trim();
            if line.starts_with("wag_") {
                return Ok(line.to_string());
            }
        }
        bail!("wagate exited without printing a token")
    })
    .await
    .context("wagate printed no token within 60 s")??;
    drain(lines);
    Ok(token)
}

/// Keeps reading the gateway's output: a full pipe would block its
/// logging. Its logs are shown only when asked for with WAGATE_LOG.
pub(crate) fn drain(mut lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>) {
    let show = std::env::var_os("WAGATE_LOG").is_some();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if show {
                eprintln!("wagate: {line}");
            }
        }
    });
}

pub(crate) async fn wait_http_ok(
    http: &reqwest::Client,
    url: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(response) = http.get(url).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{url} did not answer within {timeout:?}");
        }
        // Polling a process that is starting up: nothing to wait on. Often
        // enough that the restart's time to an answering API is not blurred.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub(crate) async fn stop(child: &mut Child) {
    let _ = child.start_kill();
    let _ = child.wait().await;
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(probe.local_addr()?.port())
}

//! `wagate-bench`: what one gateway costs per session, against the wasim
//! simulator in a separate process.
//!
//! It starts `wasim` and a `simulator`-built `wagate serve` as child
//! processes (found next to this program, so build all three in the same
//! profile), then:
//!
//! 1. creates N sessions through the REST API, takes each QR code from
//!    `GET /sessions/{id}/qr` and scans it through the simulator's admin
//!    API, timing create → first QR and scan → `working` (p50/p95), as seen
//!    on the realtime WebSocket;
//! 2. lets the N linked sessions sit idle and reads the gateway's RSS from
//!    `/proc/PID/status`, before any session and after;
//! 3. drops every connection at the simulator and times until all N
//!    sessions are `working` again;
//! 4. stops the gateway with SIGTERM, starts it again on the same data
//!    directory and database, and times until its API answers and until
//!    all N sessions are `working` (none may ask for a new QR code).
//!
//! Memory is read after the idle wait and after each recovery: the
//! gateway's RSS and PSS and open descriptors from `/proc`, its clients'
//! own `memory_report()` from its metrics listener, and on PostgreSQL the
//! server's processes apart (`--database postgres://...`: the run gets a
//! database of its own on that server, dropped at the end).
//!
//! Timestamps are taken by the WebSocket reader when an event arrives, so a
//! busy waiter does not stretch them.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{Semaphore, watch};
use tokio_tungstenite::tungstenite::Message;

mod database;
mod inbound;
mod resources;
mod send;

use resources::{ClientMemory, PostgresMemory, ProcMemory};

#[derive(Parser)]
#[command(about = "Gateway benchmark against a separate wasim process")]
struct Args {
    /// Without a scenario: link times, memory per session, reconnect
    /// after drop-all.
    #[command(subcommand)]
    scenario: Option<Scenario>,
    /// Sessions to create, link and keep.
    #[arg(long, global = true, default_value_t = 100)]
    sessions: usize,
    /// Sessions being created and linked at once.
    #[arg(long, global = true, default_value_t = 8)]
    concurrency: usize,
    /// How long the linked sessions sit idle before the RSS is read (not
    /// used by `send`).
    #[arg(long, global = true, default_value_t = 15)]
    settle_secs: u64,
    /// Longest wait for any one step before the run is abandoned.
    #[arg(long, global = true, default_value_t = 600)]
    timeout_secs: u64,
    /// Skip the drop-all reconnect measurement (not used by `send`).
    #[arg(long, global = true)]
    no_drop: bool,
    /// A simulated network: the simulator delays every stanza it sends by
    /// this many milliseconds (0: loopback speed).
    #[arg(long, global = true, default_value_t = 0)]
    latency_ms: u64,
    /// Vary that delay by up to this many milliseconds either way.
    #[arg(long, global = true, default_value_t = 0)]
    latency_jitter_ms: u64,
    /// The gateway's database: by default the SQLite file in its fresh data
    /// directory; `postgres://user@host:port` creates a database
    /// `wagate_bench_<pid>` on that server for the run and drops it after.
    #[arg(long, global = true)]
    database: Option<String>,
    /// Skip the restart measurement (not used by `send` or `inbound`).
    #[arg(long, global = true)]
    no_restart: bool,
}

#[derive(clap::Subcommand)]
enum Scenario {
    /// Send text messages through the REST API (pacing off) and time the
    /// 202 and the server's ack (`message.status` `sent`).
    Send(send::SendArgs),
    /// Simulated contacts send texts to the linked sessions; time each to
    /// its `message.received` on the realtime socket and at a webhook.
    Inbound(inbound::InboundArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let extra_env: &[(&str, &str)] = match &args.scenario {
        None => &[],
        // Pacing off: this measures the gateway, not its anti-ban spacing.
        Some(Scenario::Send(_)) => &[("WAGATE_SEND_PER_MINUTE", "0")],
        // The webhook receiver listens on loopback.
        Some(Scenario::Inbound(_)) => &[("WAGATE_ALLOW_PRIVATE_NETWORK", "true")],
    };
    let mut stack = Stack::start(&args, extra_env).await?;
    let result = match &args.scenario {
        None => link_scenario(&args, &mut stack).await,
        Some(Scenario::Send(send_args)) => send::run(&args, send_args, &stack).await,
        Some(Scenario::Inbound(inbound_args)) => inbound::run(&args, inbound_args, &stack).await,
    };
    stack.stop().await;
    if let Some(database) = stack.database.take() {
        database.drop().await;
    }
    result
}

/// The two processes under test and the benchmark's view of them.
struct Stack {
    sim: Child,
    gateway: Child,
    gw_pid: u32,
    sim_base: String,
    gw: Gateway,
    events: Events,
    reader: tokio::task::JoinHandle<()>,
    timeout: Duration,
    /// How to start the gateway again on the same data.
    gw_launch: Launch,
    /// The gateway's `GET /metrics` listener.
    metrics_base: String,
    /// The PostgreSQL database of this run, if on PostgreSQL.
    database: Option<database::Scratch>,
    /// Keeps the gateway's data directory until the end.
    _data: tempfile::TempDir,
}

/// The gateway's program and environment, to start it again.
struct Launch {
    program: PathBuf,
    env: Vec<(String, String)>,
    base: String,
}

impl Launch {
    fn spawn(&self) -> anyhow::Result<Child> {
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
    async fn start(args: &Args, extra_env: &[(&str, &str)]) -> anyhow::Result<Self> {
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
    async fn print_resources(&mut self, when: &str, sessions: usize) -> anyhow::Result<()> {
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

    async fn stop(&mut self) {
        self.reader.abort();
        stop(&mut self.gateway).await;
        stop(&mut self.sim).await;
    }
}

/// Creates and links `sessions` sessions, `concurrency` at a time, the
/// phone of session `i` being `15560000000 + i`. Returns them in that order.
async fn link_sessions(
    stack: &Stack,
    sessions: usize,
    concurrency: usize,
) -> anyhow::Result<(Vec<Linked>, Duration)> {
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..sessions {
        let gate = Arc::clone(&gate);
        let gw = stack.gw.clone();
        let events = stack.events.clone();
        let http = stack.gw.http.clone();
        let sim_base = stack.sim_base.clone();
        let timeout = stack.timeout;
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await?;
            let phone = session_phone(i);
            link_one(&gw, &events, &http, &sim_base, &phone, timeout)
                .await
                .map(|linked| (i, linked))
        });
    }
    let mut linked = Vec::with_capacity(sessions);
    while let Some(result) = tasks.join_next().await {
        linked.push(result??);
    }
    linked.sort_by_key(|(i, _)| *i);
    Ok((
        linked.into_iter().map(|(_, l)| l).collect(),
        started.elapsed(),
    ))
}

/// The simulated phone that session `i` is linked to.
fn session_phone(i: usize) -> String {
    format!("{}", 15_560_000_000u64 + i as u64)
}

async fn link_scenario(args: &Args, stack: &mut Stack) -> anyhow::Result<()> {
    let rss_empty = rss_kib(stack.gw_pid)?;
    println!("gateway RSS with no sessions: {}", mib(rss_empty));

    // 1. Create and link.
    let (linked, link_wall) = link_sessions(stack, args.sessions, args.concurrency).await?;
    let mut ids = Vec::with_capacity(linked.len());
    let mut to_qr = Vec::with_capacity(linked.len());
    let mut to_working = Vec::with_capacity(linked.len());
    for linked in linked {
        to_qr.push(linked.to_qr);
        to_working.push(linked.to_working);
        ids.push(linked.id);
    }
    println!(
        "linked {} sessions in {:.1} s ({} at a time)",
        ids.len(),
        link_wall.as_secs_f64(),
        args.concurrency
    );
    println!("create -> first QR:  {}", percentiles(&mut to_qr));
    println!("scan -> working:     {}", percentiles(&mut to_working));

    // 2. Memory of idle linked sessions.
    tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
    let rss_linked = rss_kib(stack.gw_pid)?;
    let per_session = (rss_linked.saturating_sub(rss_empty)) as f64 / ids.len().max(1) as f64;
    println!(
        "gateway RSS with {} linked idle sessions: {} (+{} over empty; {:.0} KiB per session)",
        ids.len(),
        mib(rss_linked),
        mib(rss_linked.saturating_sub(rss_empty)),
        per_session
    );
    if let Some(pid) = stack.sim.id() {
        println!("simulator RSS: {}", mib(rss_kib(pid)?));
    }
    stack.print_resources("idle", ids.len()).await?;

    // 3. Everyone dropped at once.
    if !args.no_drop {
        drop_all(stack, &ids).await?;
        stack.print_resources("after drop-all", ids.len()).await?;
    }

    // 4. The gateway stopped and started again.
    if !args.no_restart {
        restart(stack, &ids).await?;
        tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
        let rss = rss_kib(stack.gw_pid)?;
        println!(
            "gateway RSS {}s after the restart: {} ({:.0} KiB per session, including its fixed cost)",
            args.settle_secs,
            mib(rss),
            rss as f64 / ids.len().max(1) as f64
        );
        stack.print_resources("after restart", ids.len()).await?;
    }
    Ok(())
}

/// Drops every connection at the simulator and times until each session
/// has reported `starting` and then `working` again.
async fn drop_all(stack: &Stack, ids: &[String]) -> anyhow::Result<()> {
    let (events, gw, timeout) = (&stack.events, &stack.gw, stack.timeout);
    let dropped_at = Instant::now();
    let reply: Value = gw
        .http
        .post(format!("{}/admin/faults/drop-all", stack.sim_base))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await
        .unwrap_or(Value::Null);
    eprintln!("drop-all: {reply}");
    let mut back = Vec::with_capacity(ids.len());
    for id in ids {
        let at = events
            .wait(id, timeout, |t| {
                t.first_status_after("starting", dropped_at)
                    .and_then(|lost| t.first_status_after("working", lost))
            })
            .await;
        let at = match at {
            Ok(at) => at,
            Err(e) => {
                let now = gw.get(&format!("/sessions/{id}")).await?;
                bail!(
                    "session {id} did not come back ({e}); seen: {}; now: {now}",
                    events.describe(id, dropped_at)
                );
            }
        };
        back.push(at.duration_since(dropped_at));
    }
    let all = back.iter().max().copied().unwrap_or_default();
    println!(
        "after drop-all, all {} sessions working again in {:.2} s; per session: {}",
        ids.len(),
        all.as_secs_f64(),
        percentiles(&mut back)
    );
    Ok(())
}

/// Stops the gateway with SIGTERM, starts it again on the same data
/// directory and database, and times from the new process's start until
/// its API answers and until every session is `working`. A session that
/// shows a QR code again was not kept: the run fails.
async fn restart(stack: &mut Stack, ids: &[String]) -> anyhow::Result<()> {
    let timeout = stack.timeout;
    let since = stack
        .events
        .last_id()
        .context("no event seen before the restart")?;
    let stopping = Instant::now();
    // SIGTERM through kill(1): the graceful shutdown a service manager asks for.
    let signalled = Command::new("kill")
        .arg("-TERM")
        .arg(stack.gw_pid.to_string())
        .status()
        .await?;
    if !signalled.success() {
        bail!("kill -TERM {} failed: {signalled}", stack.gw_pid);
    }
    let exit = tokio::time::timeout(timeout, stack.gateway.wait())
        .await
        .context("the gateway did not stop on SIGTERM")??;
    println!(
        "gateway stopped on SIGTERM in {:.2} s ({exit})",
        stopping.elapsed().as_secs_f64()
    );
    stack.reader.abort();

    let started = Instant::now();
    let mut gateway = stack.gw_launch.spawn()?;
    stack.gw_pid = gateway.id().context("wagate exited at once")?;
    let stdout = gateway.stdout.take().context("no stdout")?;
    drain(BufReader::new(stdout).lines());
    stack.gateway = gateway;
    let http = stack.gw.http.clone();
    wait_http_ok(&http, &format!("{}/healthz", stack.gw_launch.base), timeout).await?;
    let answering = started.elapsed();
    wait_http_ok(&http, &format!("{}/readyz", stack.gw_launch.base), timeout).await?;
    let ready = started.elapsed();
    println!(
        "restart: API answers (/healthz) {:.0} ms and is ready (/readyz) {:.0} ms after the process started",
        answering.as_secs_f64() * 1000.0,
        ready.as_secs_f64() * 1000.0
    );

    // What happened before the socket connected comes from the event log,
    // stamped with when the gateway committed it.
    let ws = stack.gw_launch.base.replace("http://", "ws://");
    let (socket, _) = tokio_tungstenite::connect_async(format!(
        "{ws}/api/v1/ws?token={}&since={since}",
        stack.gw.token
    ))
    .await
    .context("realtime socket after the restart")?;
    stack.reader = tokio::spawn(stack.events.clone().read(socket, Stamp::Committed));

    let mut back = Vec::with_capacity(ids.len());
    for id in ids {
        let at = match stack
            .events
            .wait(id, timeout, |t| t.first_status_after("working", started))
            .await
        {
            Ok(at) => at,
            Err(e) => {
                let now = stack.gw.get(&format!("/sessions/{id}")).await?;
                bail!(
                    "session {id} did not come back after the restart ({e}); seen: {}; now: {now}",
                    stack.events.describe(id, started)
                );
            }
        };
        back.push(at.saturating_duration_since(started));
    }
    let relinked = ids
        .iter()
        .filter(|id| stack.events.status_after(id, "scan_qr_code", started))
        .count();
    let all = back.iter().max().copied().unwrap_or_default();
    println!(
        "after the restart, all {} sessions working in {:.2} s from the process's start; per session: {}; relinked (asked for a QR code): {relinked}",
        ids.len(),
        all.as_secs_f64(),
        percentiles(&mut back)
    );
    if relinked > 0 {
        bail!("{relinked} sessions lost their link over the restart");
    }
    Ok(())
}

struct Linked {
    id: String,
    to_qr: Duration,
    to_working: Duration,
}

async fn link_one(
    gw: &Gateway,
    events: &Events,
    http: &reqwest::Client,
    sim_base: &str,
    phone: &str,
    timeout: Duration,
) -> anyhow::Result<Linked> {
    let created_at = Instant::now();
    let session = gw
        .post("/sessions", json!({ "label": format!("bench {phone}") }))
        .await?;
    let id = session["id"]
        .as_str()
        .context("no id in the created session")?
        .to_string();
    let qr_at = events
        .wait(&id, timeout, |t| t.first_qr)
        .await
        .with_context(|| format!("no QR for {id}"))?;
    let qr = gw.get(&format!("/sessions/{id}/qr")).await?;
    let code = qr["code"].as_str().context("no code in the QR reply")?;
    let scanned_at = Instant::now();
    let scan = http
        .post(format!("{sim_base}/admin/phones/{phone}/scan"))
        .json(&json!({ "qr": code }))
        .send()
        .await?;
    if !scan.status().is_success() {
        bail!("scan for {id}: {} {}", scan.status(), scan.text().await?);
    }
    let working_at = events
        .wait(&id, timeout, |t| {
            t.first_status_after("working", scanned_at)
        })
        .await
        .with_context(|| format!("{id} did not reach working"))?;
    Ok(Linked {
        id,
        to_qr: qr_at.saturating_duration_since(created_at),
        to_working: working_at.saturating_duration_since(scanned_at),
    })
}

#[derive(Clone)]
struct Gateway {
    http: reqwest::Client,
    api: String,
    token: String,
}

impl Gateway {
    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let response = self
            .http
            .post(format!("{}{path}", self.api))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await?;
        json_of(response, path).await
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let response = self
            .http
            .get(format!("{}{path}", self.api))
            .bearer_auth(&self.token)
            .send()
            .await?;
        json_of(response, path).await
    }
}

async fn json_of(response: reqwest::Response, path: &str) -> anyhow::Result<Value> {
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() {
        bail!("{path}: {status} {text}");
    }
    serde_json::from_str(&text).with_context(|| format!("{path}: not JSON: {text}"))
}

/// What the realtime socket said about one session, stamped on arrival.
#[derive(Default)]
struct Track {
    first_qr: Option<Instant>,
    statuses: Vec<(String, Instant)>,
}

impl Track {
    fn first_status_after(&self, status: &str, after: Instant) -> Option<Instant> {
        self.statuses
            .iter()
            .find(|(s, at)| s == status && *at >= after)
            .map(|(_, at)| *at)
    }
}

/// What the realtime socket said about one message, stamped on arrival.
#[derive(Default, Clone)]
struct MessageTrack {
    sent: Option<Instant>,
    delivered: Option<Instant>,
    read: Option<Instant>,
    failed: Option<String>,
}

#[derive(Clone)]
struct Events {
    tracks: Arc<Mutex<HashMap<String, Track>>>,
    /// `message.status` events by message id.
    messages: Arc<Mutex<HashMap<String, MessageTrack>>>,
    /// `message.received` events by text.
    received: inbound::Arrivals,
    /// The id of the last event read, to resume from after a restart.
    last_id: Arc<Mutex<Option<String>>>,
    changed: Arc<watch::Sender<u64>>,
}

/// When an event counts as having happened.
#[derive(Clone, Copy)]
enum Stamp {
    /// When the benchmark read it (to the microsecond, but late if the
    /// socket was not there yet).
    Arrival,
    /// When the gateway committed it, from its UUIDv7 id (to the
    /// millisecond): for events replayed after a restart, when the socket
    /// could only connect once the API answered.
    Committed,
}

/// The moment the UUIDv7 `id` was minted, on this machine's clock, as an
/// `Instant`.
fn committed_at(id: &str) -> Option<Instant> {
    let hex: String = id.chars().filter(|c| *c != '-').take(12).collect();
    let unix_ms = u64::from_str_radix(&hex, 16).ok()?;
    let minted = std::time::UNIX_EPOCH + Duration::from_millis(unix_ms);
    let (now, now_sys) = (Instant::now(), std::time::SystemTime::now());
    let age = now_sys.duration_since(minted).unwrap_or_default();
    now.checked_sub(age)
}

impl Default for Events {
    fn default() -> Self {
        Self {
            tracks: Arc::default(),
            messages: Arc::default(),
            received: inbound::Arrivals::default(),
            last_id: Arc::default(),
            changed: Arc::new(watch::channel(0).0),
        }
    }
}

impl Events {
    async fn read<S>(self, mut socket: S, stamp: Stamp)
    where
        S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
    {
        while let Some(message) = socket.next().await {
            let mut at = Instant::now();
            let text = match message {
                Ok(Message::Text(text)) => text,
                Ok(Message::Close(frame)) => {
                    eprintln!("the gateway closed the realtime socket: {frame:?}");
                    continue;
                }
                Err(e) => {
                    eprintln!("realtime socket: {e}");
                    continue;
                }
                Ok(_) => continue,
            };
            let Ok(event) = serde_json::from_str::<Value>(text.as_str()) else {
                continue;
            };
            if let Some(id) = event["id"].as_str() {
                if let (Stamp::Committed, Some(committed)) = (stamp, committed_at(id)) {
                    at = committed;
                }
                *self.last_id.lock().unwrap_or_else(PoisonError::into_inner) = Some(id.into());
            }
            match event["event"].as_str() {
                Some("message.status") => {
                    self.on_message_status(&event, at);
                    continue;
                }
                Some("message.received") => {
                    self.received.note(&event, at);
                    continue;
                }
                _ => {}
            }
            let Some(id) = event["session_id"].as_str() else {
                continue;
            };
            {
                let mut tracks = self.tracks.lock().unwrap_or_else(PoisonError::into_inner);
                let track = tracks.entry(id.to_string()).or_default();
                match event["event"].as_str() {
                    Some("session.qr") => {
                        track.first_qr.get_or_insert(at);
                    }
                    Some("session.status") => {
                        if let Some(status) = event["data"]["status"].as_str() {
                            track.statuses.push((status.to_string(), at));
                        }
                    }
                    _ => {}
                }
            }
            self.changed.send_modify(|n| *n += 1);
        }
        eprintln!("the realtime socket closed");
    }

    fn on_message_status(&self, event: &Value, at: Instant) {
        let data = &event["data"];
        let (Some(id), Some(status)) = (data["message_id"].as_str(), data["status"].as_str())
        else {
            return;
        };
        {
            let mut messages = self.messages.lock().unwrap_or_else(PoisonError::into_inner);
            let track = messages.entry(id.to_string()).or_default();
            match status {
                "sent" => {
                    track.sent.get_or_insert(at);
                }
                "delivered" => {
                    track.delivered.get_or_insert(at);
                }
                "read" => {
                    track.read.get_or_insert(at);
                }
                "failed" => {
                    track
                        .failed
                        .get_or_insert_with(|| data["failure"].to_string());
                }
                _ => return,
            }
        }
        self.changed.send_modify(|n| *n += 1);
    }

    /// A copy of what was seen for these messages.
    fn message_tracks<'a>(
        &self,
        ids: impl Iterator<Item = &'a str>,
    ) -> HashMap<String, MessageTrack> {
        let messages = self.messages.lock().unwrap_or_else(PoisonError::into_inner);
        ids.filter_map(|id| messages.get(id).map(|t| (id.to_string(), t.clone())))
            .collect()
    }

    /// Waits until every one of `ids` is `sent` or `failed`, or until
    /// `deadline`. Returns how many are still open.
    async fn wait_acked(&self, ids: &[String], deadline: tokio::time::Instant) -> usize {
        let mut changed = self.changed.subscribe();
        loop {
            changed.borrow_and_update();
            let open = {
                let messages = self.messages.lock().unwrap_or_else(PoisonError::into_inner);
                ids.iter()
                    .filter(|id| {
                        messages
                            .get(id.as_str())
                            .is_none_or(|t| t.sent.is_none() && t.failed.is_none())
                    })
                    .count()
            };
            if open == 0 {
                return 0;
            }
            // Events arrive in thousands a second: look again at most
            // every 50 ms rather than on every one.
            tokio::time::sleep(Duration::from_millis(50)).await;
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return open,
            }
        }
    }

    fn last_id(&self) -> Option<String> {
        self.last_id
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether the session reported `status` at or after `after`.
    fn status_after(&self, id: &str, status: &str, after: Instant) -> bool {
        self.tracks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .and_then(|t| t.first_status_after(status, after))
            .is_some()
    }

    /// The statuses seen for a session, with their time relative to `since`.
    fn describe(&self, id: &str, since: Instant) -> String {
        let tracks = self.tracks.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(track) = tracks.get(id) else {
            return "nothing".into();
        };
        track
            .statuses
            .iter()
            .map(|(status, at)| {
                let ms = if *at >= since {
                    at.duration_since(since).as_millis() as i128
                } else {
                    -(since.duration_since(*at).as_millis() as i128)
                };
                format!("{status}@{ms}ms")
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Waits until `pick` finds its instant in the session's track.
    async fn wait(
        &self,
        id: &str,
        timeout: Duration,
        pick: impl Fn(&Track) -> Option<Instant>,
    ) -> anyhow::Result<Instant> {
        let mut changed = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            changed.borrow_and_update();
            let found = self
                .tracks
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(id)
                .and_then(&pick);
            if let Some(at) = found {
                return Ok(at);
            }
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => bail!("the realtime reader stopped"),
                Err(_) => bail!("timed out after {timeout:?}"),
            }
        }
    }
}

fn spawn(command: &mut Command, name: &str, bin_dir: &Path) -> anyhow::Result<Child> {
    command_or_hint(command, &bin_dir.join(name))
}

fn command_or_hint(command: &mut Command, program: &Path) -> anyhow::Result<Child> {
    command.kill_on_drop(true).spawn().with_context(|| {
        format!(
            "starting {} — build it first: cargo build --release -p wasim --bins && \
             cargo build --release -p wagate --features simulator",
            program.display()
        )
    })
}

/// The first start prints the organization's API token once, indented.
async fn read_token(gateway: &mut Child) -> anyhow::Result<String> {
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
fn drain(mut lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>) {
    let show = std::env::var_os("WAGATE_LOG").is_some();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if show {
                eprintln!("wagate: {line}");
            }
        }
    });
}

async fn wait_http_ok(http: &reqwest::Client, url: &str, timeout: Duration) -> anyhow::Result<()> {
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

async fn stop(child: &mut Child) {
    let _ = child.start_kill();
    let _ = child.wait().await;
}

fn free_port() -> anyhow::Result<u16> {
    let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(probe.local_addr()?.port())
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let path = PathBuf::from(format!("/proc/{pid}/status"));
    let status = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS line")
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn percentiles(samples: &mut [Duration]) -> String {
    if samples.is_empty() {
        return "no samples".into();
    }
    samples.sort();
    let at = |p: f64| {
        let rank = ((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
        samples[rank - 1]
    };
    format!(
        "p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms (n={})",
        at(0.50).as_secs_f64() * 1000.0,
        at(0.95).as_secs_f64() * 1000.0,
        at(1.0).as_secs_f64() * 1000.0,
        samples.len()
    )
}

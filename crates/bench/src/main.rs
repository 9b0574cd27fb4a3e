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
//!    sessions are `working` again.
//!
//! Timestamps are taken by the WebSocket reader when an event arrives, so a
//! busy waiter does not stretch them.

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

mod inbound;
mod send;

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
        None => link_scenario(&args, &stack).await,
        Some(Scenario::Send(send_args)) => send::run(&args, send_args, &stack).await,
        Some(Scenario::Inbound(inbound_args)) => inbound::run(&args, inbound_args, &stack).await,
    };
    stack.stop().await;
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
    /// Keeps the gateway's data directory until the end.
    _data: tempfile::TempDir,
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
        let gw_port = free_port()?;
        let mut gateway = spawn(
            Command::new(bin_dir.join("wagate"))
                .arg("serve")
                .env("WAGATE_LISTEN", format!("127.0.0.1:{gw_port}"))
                .env("WAGATE_DATA_DIR", data.path())
                .env(
                    "WAGATE_WHATSAPP_URL",
                    format!("ws://127.0.0.1:{sim_port}/ws/chat"),
                )
                // Every session's events go to the one benchmark socket; 1,000
                // sessions reconnecting at once must not overflow it.
                .env("WAGATE_WS_CLIENT_BUFFER", "1000000")
                // Quiet unless asked: `WAGATE_LOG=info wagate-bench ...`.
                .env(
                    "WAGATE_LOG",
                    std::env::var("WAGATE_LOG").unwrap_or_else(|_| "warn".into()),
                )
                .envs(extra_env.iter().copied())
                .stdout(Stdio::piped()),
            "wagate",
            &bin_dir,
        )?;
        let gw_pid = gateway.id().context("wagate exited at once")?;
        let token = read_token(&mut gateway).await?;
        let api = format!("http://127.0.0.1:{gw_port}/api/v1");
        wait_http_ok(
            &http,
            &format!("http://127.0.0.1:{gw_port}/readyz"),
            timeout,
        )
        .await?;
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
        let reader = tokio::spawn(events.clone().read(socket));
        Ok(Self {
            sim,
            gateway,
            gw_pid,
            sim_base,
            gw,
            events,
            reader,
            timeout,
            _data: data,
        })
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

async fn link_scenario(args: &Args, stack: &Stack) -> anyhow::Result<()> {
    let Stack {
        sim,
        gw_pid,
        sim_base,
        gw,
        events,
        timeout,
        ..
    } = stack;
    let (gw_pid, timeout) = (*gw_pid, *timeout);
    let http = &gw.http;

    let rss_empty = rss_kib(gw_pid)?;
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
    let rss_linked = rss_kib(gw_pid)?;
    let per_session = (rss_linked.saturating_sub(rss_empty)) as f64 / ids.len().max(1) as f64;
    println!(
        "gateway RSS with {} linked idle sessions: {} (+{} over empty; {:.2} MiB per session)",
        ids.len(),
        mib(rss_linked),
        mib(rss_linked.saturating_sub(rss_empty)),
        per_session / 1024.0
    );
    if let Some(pid) = sim.id() {
        println!("simulator RSS: {}", mib(rss_kib(pid)?));
    }
    let fds = std::fs::read_dir(format!("/proc/{gw_pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    println!("gateway open file descriptors: {fds}");

    // 3. Everyone dropped at once.
    if !args.no_drop {
        let dropped_at = Instant::now();
        let reply: Value = http
            .post(format!("{sim_base}/admin/faults/drop-all"))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await
            .unwrap_or(Value::Null);
        eprintln!("drop-all: {reply}");
        let mut back = Vec::with_capacity(ids.len());
        for id in &ids {
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
        println!("gateway RSS after the reconnect: {}", mib(rss_kib(gw_pid)?));
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
    changed: Arc<watch::Sender<u64>>,
}

impl Default for Events {
    fn default() -> Self {
        Self {
            tracks: Arc::default(),
            messages: Arc::default(),
            received: inbound::Arrivals::default(),
            changed: Arc::new(watch::channel(0).0),
        }
    }
}

impl Events {
    async fn read<S>(self, mut socket: S)
    where
        S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
    {
        while let Some(message) = socket.next().await {
            let at = Instant::now();
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
    command.kill_on_drop(true).spawn().with_context(|| {
        format!(
            "starting {} — build it first: cargo build --release -p wasim --bins && \
             cargo build --release -p wagate --features simulator",
            bin_dir.join(name).display()
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
    // Keep draining: a full pipe would block the gateway's logging.
    // Its logs are shown only when asked for with WAGATE_LOG.
    let show = std::env::var_os("WAGATE_LOG").is_some();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if show {
                eprintln!("wagate: {line}");
            }
        }
    });
    Ok(token)
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
        // Polling a process that is starting up: nothing to wait on.
        tokio::time::sleep(Duration::from_millis(50)).await;
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

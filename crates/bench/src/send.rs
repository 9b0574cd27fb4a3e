//! The `send` scenario: text messages through `POST /sessions/{id}/messages`
//! with pacing off, timed to the 202 and to the server's ack.
//!
//! Every session `i` (linked to phone `15560000000 + i`) sends to its own
//! recipient, phone `15570000000 + i`. A simulated phone exists for the
//! simulator once it has an account, and using a phone creates it, so each
//! recipient first sends one text to its session's phone through the admin
//! API. Then every session sends one warm-up message (not measured: it
//! fills the client's device and Signal session caches), and then the
//! measured phases run, spreading messages over the sessions round-robin:
//!
//! - `rate`: requests started on a fixed schedule (open loop), at most
//!   `--max-in-flight` at once; if the gateway cannot keep up the schedule
//!   slips, and the achieved rate says so;
//! - `saturate`: `--in-flight` requests at a time, each starting when the
//!   previous answered (closed loop), as fast as the API accepts.
//!
//! Latency is measured from the moment a request starts: to its 202, and to
//! the `message.status` event with `status: "sent"` (the WhatsApp server's
//! ack) as stamped by the realtime socket's reader when it arrives.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::{Args, Gateway, Stack, link_sessions};

#[derive(clap::Args)]
pub(crate) struct SendArgs {
    /// Which phases to run, in this order.
    #[arg(long, value_enum, default_value_t = Mode::Both)]
    mode: Mode,
    /// Messages per second across all sessions in the `rate` phase.
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// How long each phase sends.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Requests in flight at once in the `saturate` phase.
    #[arg(long, default_value_t = 64)]
    in_flight: usize,
    /// Most requests in flight at once in the `rate` phase (the schedule
    /// slips beyond it).
    #[arg(long, default_value_t = 2048)]
    max_in_flight: usize,
    /// How long after a phase's last request its messages may take to be
    /// acked before they count as never acked.
    #[arg(long, default_value_t = 30)]
    ack_timeout_secs: u64,
    /// Messages queued (across all sessions) while the simulator refuses
    /// every connection, in the `backlog` phase; then it lets them back
    /// and the phase times the drain.
    #[arg(long, default_value_t = 20_000)]
    backlog: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Mode {
    Rate,
    Saturate,
    Both,
    /// Queue `--backlog` messages while no session is connected, then
    /// time sending them all (and the gateway's CPU per message).
    Backlog,
}

/// The recipient of session `i`'s messages.
fn recipient_phone(i: usize) -> String {
    format!("{}", 15_570_000_000u64 + i as u64)
}

pub(crate) async fn run(args: &Args, send: &SendArgs, stack: &Stack) -> anyhow::Result<()> {
    let (linked, link_wall) = link_sessions(stack, args.sessions, args.concurrency).await?;
    println!(
        "linked {} sessions in {:.1} s ({} at a time); pacing off",
        linked.len(),
        link_wall.as_secs_f64(),
        args.concurrency
    );
    let sessions: Arc<Vec<String>> = Arc::new(linked.into_iter().map(|l| l.id).collect());
    if sessions.is_empty() {
        bail!("no sessions to send from");
    }

    make_recipients(stack, sessions.len(), args.concurrency).await?;
    let warm = warm_up(stack, &sessions, send).await?;
    println!(
        "warm-up: one message per session, all {} acked in {:.2} s",
        sessions.len(),
        warm.as_secs_f64()
    );

    let mut reports = Vec::new();
    if matches!(send.mode, Mode::Rate | Mode::Both) {
        let report = phase(stack, &sessions, send, Load::Rate(send.rate)).await?;
        report.print();
        reports.push(report);
    }
    if matches!(send.mode, Mode::Saturate | Mode::Both) {
        let report = phase(stack, &sessions, send, Load::Saturate(send.in_flight)).await?;
        report.print();
        reports.push(report);
    }
    if send.mode == Mode::Backlog {
        backlog(stack, &sessions, send).await?;
    }
    print_table(&reports, sessions.len(), send);
    Ok(())
}

/// Every session cut off (the simulator drops them and refuses them back),
/// `--backlog` messages accepted meanwhile, then the simulator lets them
/// back: how long until all are acked, and the gateway's CPU per message
/// over that drain, to set beside the saturated phase's.
async fn backlog(
    stack: &Stack,
    sessions: &Arc<Vec<String>>,
    send: &SendArgs,
) -> anyhow::Result<()> {
    let outage = |millis: u64| {
        let http = stack.gw.http.clone();
        let url = format!("{}/admin/faults/outage", stack.sim_base);
        async move {
            let reply = http
                .post(&url)
                .json(&json!({ "millis": millis }))
                .send()
                .await?;
            if !reply.status().is_success() {
                bail!("{url}: {}", reply.status());
            }
            anyhow::Ok(())
        }
    };
    outage(3_600_000).await?;
    let dropped = stack
        .gw
        .http
        .post(format!("{}/admin/faults/drop-all", stack.sim_base))
        .send()
        .await?;
    if !dropped.status().is_success() {
        bail!("drop-all: {}", dropped.status());
    }
    eprintln!(
        "backlog: queueing {} messages with every session cut off",
        send.backlog
    );
    let queued_from = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..send.in_flight.max(1) {
        let gw = stack.gw.clone();
        let sessions = Arc::clone(sessions);
        let next = Arc::clone(&next);
        let total = send.backlog;
        tasks.spawn(async move {
            let mut outcomes = Vec::new();
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= total {
                    break;
                }
                let i = k % sessions.len();
                outcomes.push(
                    send_one(
                        &gw,
                        &sessions[i],
                        &recipient_phone(i),
                        &format!("queued {k}"),
                    )
                    .await,
                );
            }
            outcomes
        });
    }
    let mut ids = Vec::with_capacity(send.backlog);
    let mut refused = 0;
    while let Some(done) = tasks.join_next().await {
        for outcome in done.context("a sender task")? {
            match outcome.result {
                Ok((_, id)) => ids.push(id),
                Err(_) => refused += 1,
            }
        }
    }
    let queue_wall = queued_from.elapsed();
    let cpu_before = CpuUse::now(stack);
    let started = Instant::now();
    outage(0).await?;
    let deadline = tokio::time::Instant::now()
        + Duration::from_secs(send.ack_timeout_secs.max(ids.len() as u64 / 100));
    let open = stack.events.wait_acked(&ids, deadline).await;
    let wall = started.elapsed();
    let cpu = CpuUse::now(stack).since(&cpu_before);
    let acked = ids.len().saturating_sub(open);
    println!(
        "backlog: {} accepted in {:.1} s while cut off ({refused} refused); after the simulator let \
         the sessions back, {acked} acked in {:.1} s ({:.0}/s), {open} not acked",
        ids.len(),
        queue_wall.as_secs_f64(),
        wall.as_secs_f64(),
        per_sec(acked, wall),
    );
    println!(
        "  CPU over the drain: gateway {} = {} per acked message; simulator {}",
        cpu_secs(cpu.gateway),
        cpu.gateway
            .filter(|_| acked > 0)
            .map_or("-".to_string(), |c| format!(
                "{} µs",
                c.as_micros() / acked as u128
            )),
        cpu_secs(cpu.simulator),
    );
    Ok(())
}

fn cpu_secs(d: Option<Duration>) -> String {
    d.map_or("-".to_string(), |d| format!("{:.1} s", d.as_secs_f64()))
}

/// Each recipient phone sends one text to its session's phone, which
/// creates its account at the simulator.
async fn make_recipients(stack: &Stack, sessions: usize, concurrency: usize) -> anyhow::Result<()> {
    let gate = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..sessions {
        let gate = Arc::clone(&gate);
        let http = stack.gw.http.clone();
        let url = format!(
            "{}/admin/phones/{}/messages",
            stack.sim_base,
            recipient_phone(i)
        );
        let to = crate::session_phone(i);
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await?;
            let reply = http
                .post(&url)
                .json(&json!({ "to": to, "text": "hello from your bench recipient" }))
                .send()
                .await?;
            let status = reply.status();
            if !status.is_success() {
                bail!("{url}: {status} {}", reply.text().await.unwrap_or_default());
            }
            anyhow::Ok(())
        });
    }
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    Ok(())
}

/// One message per session, waited for until acked.
async fn warm_up(stack: &Stack, sessions: &[String], send: &SendArgs) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut ids = Vec::with_capacity(sessions.len());
    for (i, session) in sessions.iter().enumerate() {
        let outcome = send_one(&stack.gw, session, &recipient_phone(i), "warm-up").await;
        match outcome.result {
            Ok((_, id)) => ids.push(id),
            Err(e) => bail!("warm-up message from session {session}: {e}"),
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(send.ack_timeout_secs);
    let open = stack.events.wait_acked(&ids, deadline).await;
    if open > 0 {
        bail!(
            "{open} of {} warm-up messages not acked within {} s",
            ids.len(),
            send.ack_timeout_secs
        );
    }
    let failed = stack
        .events
        .message_tracks(ids.iter().map(String::as_str))
        .values()
        .filter(|t| t.failed.is_some())
        .count();
    if failed > 0 {
        bail!("{failed} warm-up messages failed");
    }
    Ok(started.elapsed())
}

#[derive(Clone, Copy)]
pub(crate) enum Load {
    /// Messages per second, open loop.
    Rate(u32),
    /// Requests in flight, closed loop.
    Saturate(usize),
}

impl Load {
    pub(crate) fn name(self) -> String {
        match self {
            Self::Rate(rate) => format!("rate {rate}/s"),
            Self::Saturate(n) => format!("saturate, {n} in flight"),
        }
    }
}

/// One request: when it started, and its 202 (when, message id) or why not.
struct Outcome {
    started: Instant,
    result: Result<(Instant, String), String>,
}

async fn send_one(gw: &Gateway, session: &str, to: &str, body: &str) -> Outcome {
    let started = Instant::now();
    let result = async {
        let response = gw
            .http
            .post(format!("{}/sessions/{session}/messages", gw.api))
            .bearer_auth(&gw.token)
            .json(&json!({ "to": to, "text": { "body": body } }))
            .send()
            .await
            .map_err(|e| format!("transport: {e}"))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| format!("transport: {e}"))?;
        let answered = Instant::now();
        if status.as_u16() != 202 {
            let code = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
                .unwrap_or_default();
            return Err(format!("{} {code}", status.as_u16()));
        }
        let reply: Value =
            serde_json::from_str(&text).map_err(|_| format!("202 with no JSON body: {text}"))?;
        match (reply["id"].as_str(), reply["status"].as_str()) {
            (Some(id), Some("pending")) => Ok((answered, id.to_string())),
            _ => Err(format!("202 with an unexpected body: {text}")),
        }
    }
    .await;
    Outcome { started, result }
}

/// The CPU time (user + system) a process has used so far.
fn cpu_time(pid: Option<u32>) -> Option<Duration> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    stat_cpu(&std::fs::read_to_string(path).ok()?)
}

/// The CPU time of each of a process's threads, summed by thread name
/// (tokio workers, SQLite workers, blocking pool, ...).
fn thread_cpu(pid: u32) -> BTreeMap<String, Duration> {
    let mut by_name: BTreeMap<String, Duration> = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return by_name;
    };
    for task in tasks.flatten() {
        let dir = task.path();
        let (Ok(comm), Ok(stat)) = (
            std::fs::read_to_string(dir.join("comm")),
            std::fs::read_to_string(dir.join("stat")),
        ) else {
            continue;
        };
        if let Some(cpu) = stat_cpu(&stat) {
            *by_name.entry(comm.trim().to_string()).or_default() += cpu;
        }
    }
    by_name
}

/// utime + stime from a `/proc/.../stat` line.
fn stat_cpu(stat: &str) -> Option<Duration> {
    // The command name may hold spaces; the fields after it do not.
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every Linux this runs on.
    Some(Duration::from_millis((utime + stime) * 10))
}

struct CpuUse {
    gateway: Option<Duration>,
    gateway_threads: BTreeMap<String, Duration>,
    simulator: Option<Duration>,
    bench: Option<Duration>,
}

impl CpuUse {
    fn now(stack: &Stack) -> Self {
        Self {
            gateway: cpu_time(Some(stack.gw_pid)),
            gateway_threads: thread_cpu(stack.gw_pid),
            simulator: cpu_time(stack.sim.id()),
            bench: cpu_time(None),
        }
    }

    fn since(&self, before: &Self) -> Self {
        let d = |a: Option<Duration>, b: Option<Duration>| Some(a?.saturating_sub(b?));
        Self {
            gateway: d(self.gateway, before.gateway),
            // Threads that ended during the phase are missing here.
            gateway_threads: self
                .gateway_threads
                .iter()
                .map(|(name, cpu)| {
                    let before = before
                        .gateway_threads
                        .get(name)
                        .copied()
                        .unwrap_or_default();
                    (name.clone(), cpu.saturating_sub(before))
                })
                .filter(|(_, cpu)| !cpu.is_zero())
                .collect(),
            simulator: d(self.simulator, before.simulator),
            bench: d(self.bench, before.bench),
        }
    }
}

struct Report {
    name: String,
    /// Requests started and the time they were spread over.
    requested: usize,
    send_window: Duration,
    accepted: usize,
    /// First request's start to the last 202.
    accept_window: Duration,
    /// First request's start to the last `sent` event.
    ack_window: Duration,
    acked: usize,
    failed: usize,
    never_acked: usize,
    rejected: BTreeMap<String, usize>,
    to_202: Vec<Duration>,
    to_sent: Vec<Duration>,
    delivered: usize,
    read: usize,
    cpu: CpuUse,
    wall: Duration,
}

async fn phase(
    stack: &Stack,
    sessions: &Arc<Vec<String>>,
    send: &SendArgs,
    load: Load,
) -> anyhow::Result<Report> {
    let duration = Duration::from_secs(send.duration_secs);
    let name = load.name();
    eprintln!("phase {name}: sending for {} s", send.duration_secs);
    let cpu_before = CpuUse::now(stack);
    let started = Instant::now();
    let outcomes = match load {
        Load::Rate(rate) => {
            send_at_rate(stack, sessions, rate, duration, send.max_in_flight).await?
        }
        Load::Saturate(in_flight) => saturate(stack, sessions, in_flight, duration).await?,
    };
    let send_window = outcomes
        .iter()
        .map(|o| o.started.duration_since(started))
        .max()
        .unwrap_or_default();
    let last_answer = outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().ok().map(|(at, _)| *at))
        .max();
    let ids: Vec<String> = outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().ok().map(|(_, id)| id.clone()))
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(send.ack_timeout_secs);
    stack.events.wait_acked(&ids, deadline).await;
    let wall = started.elapsed();
    let cpu = CpuUse::now(stack).since(&cpu_before);
    let tracks = stack.events.message_tracks(ids.iter().map(String::as_str));

    let mut rejected: BTreeMap<String, usize> = BTreeMap::new();
    let mut to_202 = Vec::with_capacity(ids.len());
    let mut to_sent = Vec::with_capacity(ids.len());
    let (mut failed, mut never_acked, mut delivered, mut read) = (0, 0, 0, 0);
    let mut last_ack = None::<Instant>;
    for outcome in &outcomes {
        let (answered, id) = match &outcome.result {
            Ok(ok) => ok,
            Err(e) => {
                *rejected.entry(e.clone()).or_default() += 1;
                continue;
            }
        };
        to_202.push(answered.duration_since(outcome.started));
        let Some(track) = tracks.get(id) else {
            never_acked += 1;
            continue;
        };
        delivered += usize::from(track.delivered.is_some());
        read += usize::from(track.read.is_some());
        match track.sent {
            Some(at) => {
                to_sent.push(at.saturating_duration_since(outcome.started));
                last_ack = Some(last_ack.map_or(at, |l| l.max(at)));
            }
            None if track.failed.is_some() => failed += 1,
            None => never_acked += 1,
        }
    }
    Ok(Report {
        name,
        requested: outcomes.len(),
        send_window,
        accepted: ids.len(),
        accept_window: last_answer.map_or(Duration::ZERO, |at| at.duration_since(started)),
        ack_window: last_ack.map_or(Duration::ZERO, |at| at.duration_since(started)),
        acked: to_sent.len(),
        failed,
        never_acked,
        rejected,
        to_202,
        to_sent,
        delivered,
        read,
        cpu,
        wall,
    })
}

/// Open loop: request `k` starts at `k / rate` seconds, to session
/// `k mod N`, as long as fewer than `max_in_flight` are unanswered.
async fn send_at_rate(
    stack: &Stack,
    sessions: &Arc<Vec<String>>,
    rate: u32,
    duration: Duration,
    max_in_flight: usize,
) -> anyhow::Result<Vec<Outcome>> {
    let total = (f64::from(rate.max(1)) * duration.as_secs_f64()).round() as usize;
    let gate = Arc::new(Semaphore::new(max_in_flight.max(1)));
    let start = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for k in 0..total {
        let at = start + Duration::from_secs_f64(k as f64 / f64::from(rate.max(1)));
        tokio::time::sleep_until(at).await;
        let permit = Arc::clone(&gate).acquire_owned().await?;
        let gw = stack.gw.clone();
        let sessions = Arc::clone(sessions);
        tasks.spawn(async move {
            let i = k % sessions.len();
            let outcome = send_one(
                &gw,
                &sessions[i],
                &recipient_phone(i),
                &format!("bench {k}"),
            )
            .await;
            drop(permit);
            outcome
        });
        // Reap as we go so the set does not hold every finished task.
        while let Some(done) = tasks.try_join_next() {
            done?;
        }
    }
    collect(tasks).await
}

/// Closed loop: `in_flight` workers, each sending its next message as soon
/// as the previous one answered, until `duration` has passed.
async fn saturate(
    stack: &Stack,
    sessions: &Arc<Vec<String>>,
    in_flight: usize,
    duration: Duration,
) -> anyhow::Result<Vec<Outcome>> {
    let next = Arc::new(AtomicUsize::new(0));
    let stop_at = Instant::now() + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..in_flight.max(1) {
        let gw = stack.gw.clone();
        let sessions = Arc::clone(sessions);
        let next = Arc::clone(&next);
        tasks.spawn(async move {
            let mut outcomes = Vec::new();
            while Instant::now() < stop_at {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let i = k % sessions.len();
                outcomes.push(
                    send_one(
                        &gw,
                        &sessions[i],
                        &recipient_phone(i),
                        &format!("bench {k}"),
                    )
                    .await,
                );
            }
            outcomes
        });
    }
    let mut all = Vec::new();
    while let Some(done) = tasks.join_next().await {
        all.extend(done.context("a sender task")?);
    }
    Ok(all)
}

async fn collect(mut tasks: tokio::task::JoinSet<Outcome>) -> anyhow::Result<Vec<Outcome>> {
    let mut all = Vec::with_capacity(tasks.len());
    while let Some(done) = tasks.join_next().await {
        all.push(done.context("a sender task")?);
    }
    Ok(all)
}

fn per_sec(n: usize, window: Duration) -> f64 {
    if window.is_zero() {
        return 0.0;
    }
    n as f64 / window.as_secs_f64()
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// p50 / p95 / p99 / max, in milliseconds.
pub(crate) fn p3(samples: &mut [Duration]) -> String {
    if samples.is_empty() {
        return "no samples".into();
    }
    samples.sort();
    let at = |p: f64| {
        let rank = ((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
        samples[rank - 1]
    };
    format!(
        "{} / {} / {} / {}",
        ms(at(0.50)),
        ms(at(0.95)),
        ms(at(0.99)),
        ms(at(1.0))
    )
}

fn cpu(d: Option<Duration>, wall: Duration) -> String {
    match d {
        Some(d) => format!(
            "{:.1} s ({:.0}% of one core)",
            d.as_secs_f64(),
            100.0 * d.as_secs_f64() / wall.as_secs_f64().max(1e-9)
        ),
        None => "unknown".into(),
    }
}

impl Report {
    fn print(&self) {
        println!("phase {}:", self.name);
        println!(
            "  requests started: {} over {:.2} s ({:.0}/s)",
            self.requested,
            self.send_window.as_secs_f64(),
            per_sec(self.requested, self.send_window)
        );
        println!(
            "  accepted (202): {} ({:.0}/s until the last 202 at {:.2} s)",
            self.accepted,
            per_sec(self.accepted, self.accept_window),
            self.accept_window.as_secs_f64()
        );
        println!(
            "  acked (sent): {} ({:.0}/s until the last ack at {:.2} s); failed {}, never acked {}",
            self.acked,
            per_sec(self.acked, self.ack_window),
            self.ack_window.as_secs_f64(),
            self.failed,
            self.never_acked
        );
        println!(
            "  also seen: delivered {}, read {}",
            self.delivered, self.read
        );
        for (why, n) in &self.rejected {
            println!("  not accepted: {n} x {why}");
        }
        let mut to_202 = self.to_202.clone();
        let mut to_sent = self.to_sent.clone();
        println!("  request -> 202  p50/p95/p99/max: {}", p3(&mut to_202));
        println!("  request -> sent p50/p95/p99/max: {}", p3(&mut to_sent));
        let per_message = |d: Option<Duration>| {
            d.map_or("unknown".to_string(), |d| {
                format!(
                    "{:.0} µs",
                    d.as_secs_f64() * 1e6 / self.accepted.max(1) as f64
                )
            })
        };
        println!(
            "  CPU over {:.1} s: gateway {} = {} per accepted message; simulator {}; bench {}",
            self.wall.as_secs_f64(),
            cpu(self.cpu.gateway, self.wall),
            per_message(self.cpu.gateway),
            cpu(self.cpu.simulator, self.wall),
            cpu(self.cpu.bench, self.wall),
        );
        let mut threads: Vec<_> = self.cpu.gateway_threads.iter().collect();
        threads.sort_by_key(|(_, cpu)| std::cmp::Reverse(**cpu));
        let threads: Vec<String> = threads
            .iter()
            .take(6)
            .map(|(name, used)| format!("{name} {}", cpu(Some(**used), self.wall)))
            .collect();
        println!("  gateway CPU by thread name: {}", threads.join("; "));
    }
}

fn print_table(reports: &[Report], sessions: usize, send: &SendArgs) {
    if reports.is_empty() {
        return;
    }
    println!();
    println!(
        "{sessions} sessions, pacing off, {} s per phase, ack timeout {} s",
        send.duration_secs, send.ack_timeout_secs
    );
    let header: Vec<&str> = reports.iter().map(|r| r.name.as_str()).collect();
    println!("| measure | {} |", header.join(" | "));
    println!("|---|{}", "---|".repeat(reports.len()));
    let row = |name: &str, cell: &dyn Fn(&Report) -> String| {
        let cells: Vec<String> = reports.iter().map(cell).collect();
        println!("| {name} | {} |", cells.join(" | "));
    };
    row("requests started, per s", &|r| {
        format!("{:.0}", per_sec(r.requested, r.send_window))
    });
    row("accepted (202), per s", &|r| {
        format!("{:.0}", per_sec(r.accepted, r.accept_window))
    });
    row("acked (`sent`), per s", &|r| {
        format!("{:.0}", per_sec(r.acked, r.ack_window))
    });
    row("accepted / acked / never acked", &|r| {
        format!("{} / {} / {}", r.accepted, r.acked, r.never_acked)
    });
    row("not accepted", &|r| {
        if r.rejected.is_empty() {
            "0".into()
        } else {
            r.rejected
                .iter()
                .map(|(why, n)| format!("{n} x {why}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    });
    row("request → 202 p50 / p95 / p99 / max", &|r| {
        p3(&mut r.to_202.clone())
    });
    row("request → `sent` p50 / p95 / p99 / max", &|r| {
        p3(&mut r.to_sent.clone())
    });
    row("gateway CPU per accepted message", &|r| {
        r.cpu.gateway.map_or("unknown".into(), |d| {
            format!("{:.0} µs", d.as_secs_f64() * 1e6 / r.accepted.max(1) as f64)
        })
    });
}

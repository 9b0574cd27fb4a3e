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

use std::time::Duration;

use clap::Parser;

mod database;
mod events;
mod gateway;
mod groups;
mod history;
mod inbound;
mod link;
mod resources;
mod send;
mod stack;

use gateway::Gateway;
use link::{link_scenario, link_sessions, session_phone};
use stack::Stack;

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
    /// A phone with a long history links: time until the gateway has
    /// stored it, the gateway's peak RSS growth meanwhile, then the chat
    /// list's and a chat's messages' latency (one session).
    History(history::HistoryArgs),
    /// A session in many groups: the group list's latency from the
    /// store; then texts into a big group, each timed to its ack (one
    /// session).
    Groups(groups::GroupsArgs),
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
        Some(Scenario::History(_)) => &[],
        // Pacing off: a text's time to its ack, not the spacing.
        Some(Scenario::Groups(_)) => &[("WAGATE_SEND_PER_MINUTE", "0")],
    };
    let mut stack = Stack::start(&args, extra_env).await?;
    let result = match &args.scenario {
        None => link_scenario(&args, &mut stack).await,
        Some(Scenario::Send(send_args)) => send::run(&args, send_args, &stack).await,
        Some(Scenario::Inbound(inbound_args)) => inbound::run(&args, inbound_args, &stack).await,
        Some(Scenario::History(history_args)) => history::run(&args, history_args, &stack).await,
        Some(Scenario::Groups(groups_args)) => groups::run(&args, groups_args, &stack).await,
    };
    stack.stop().await;
    if let Some(database) = stack.database.take() {
        database.drop().await;
    }
    result
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

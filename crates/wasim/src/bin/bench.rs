//! `wasim-bench`: how many linked clients one simulator holds, at what memory
//! cost, and how fast it completes handshakes.
//!
//! It starts the `wasim` binary as a separate process (so its RSS is its
//! own), provisions N linked devices through the admin API, then connects N
//! raw protocol clients (Noise XX + login) and holds them all open.

#![forbid(unsafe_code)]

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine as _;
use clap::Parser;
use tokio::sync::Semaphore;
use wacore_libsignal::protocol::KeyPair;
use wasim::raw_client::{RawClient, login_payload};

#[derive(Parser)]
struct Args {
    /// Linked clients to connect and hold.
    #[arg(long, default_value_t = 2000)]
    clients: usize,
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// How long to hold all connections before measuring.
    #[arg(long, default_value_t = 5)]
    hold_secs: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
        probe.local_addr()?.port()
    };
    let exe = std::env::current_exe()?;
    let wasim = exe.with_file_name("wasim");
    let mut child = tokio::process::Command::new(&wasim)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "wasim=warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {} (build it with the bench)", wasim.display()))?;
    let pid = child.id().context("wasim exited at once")?;
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    wait_until_up(&http, &base).await?;
    let rss_idle = rss_kib(pid)?;

    // Link N devices (one phone each) without the pairing dance.
    let mut devices = Vec::with_capacity(args.clients);
    for i in 0..args.clients {
        let phone = 15_551_000_000u64 + i as u64;
        let kp = KeyPair::generate(&mut rand::rng());
        let noise_pub =
            base64::engine::general_purpose::STANDARD.encode(kp.public_key.public_key_bytes());
        let reply: serde_json::Value = http
            .post(format!("{base}/admin/phones/{phone}/devices"))
            .json(&serde_json::json!({ "noise_pub": noise_pub }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let device = reply["device"].as_u64().context("device id in reply")?;
        devices.push((phone, device as u32, kp));
    }

    let ws_url = format!("ws://127.0.0.1:{port}/ws/chat");
    let gate = Arc::new(Semaphore::new(args.concurrency));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (phone, device, kp) in devices {
        let gate = gate.clone();
        let url = ws_url.clone();
        tasks.spawn(async move {
            let permit = gate.acquire_owned().await;
            let t0 = Instant::now();
            let mut client = RawClient::connect(&url, kp, &login_payload(phone, device)).await?;
            let first = client.recv_node().await?;
            if first.tag != "success" {
                bail!("login refused: {}", first.tag);
            }
            drop(permit);
            Ok::<_, anyhow::Error>((client, t0.elapsed()))
        });
    }
    let mut held = Vec::with_capacity(args.clients);
    let mut latencies = Vec::with_capacity(args.clients);
    while let Some(joined) = tasks.join_next().await {
        let (client, latency) = joined??;
        held.push(client);
        latencies.push(latency);
    }
    let elapsed = started.elapsed();
    tokio::time::sleep(Duration::from_secs(args.hold_secs)).await;

    let stats: serde_json::Value = http
        .get(format!("{base}/admin/stats"))
        .send()
        .await?
        .json()
        .await?;
    let rss = rss_kib(pid)?;
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p) as usize];
    println!("clients linked and held : {}", held.len());
    println!("simulator says open     : {}", stats["connections_open"]);
    println!(
        "handshake+login total   : {:.2?} for {} clients",
        elapsed,
        held.len()
    );
    println!(
        "handshake rate          : {:.0} per second (concurrency {})",
        held.len() as f64 / elapsed.as_secs_f64(),
        args.concurrency
    );
    println!(
        "handshake+login p50/p95 : {:.2?} / {:.2?}",
        pct(0.50),
        pct(0.95)
    );
    println!(
        "simulator RSS idle      : {:.1} MiB",
        rss_idle as f64 / 1024.0
    );
    println!("simulator RSS holding   : {:.1} MiB", rss as f64 / 1024.0);
    println!(
        "per connection          : {:.1} KiB",
        (rss.saturating_sub(rss_idle)) as f64 / held.len().max(1) as f64
    );
    drop(held);
    child.kill().await?;
    Ok(())
}

async fn wait_until_up(http: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if http.get(format!("{base}/admin/stats")).send().await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("wasim did not come up on {base}")
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmRSS in /proc status")
}

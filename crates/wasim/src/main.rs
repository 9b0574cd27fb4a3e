//! `wasim`: run the WhatsApp simulator standalone, with its admin HTTP API.

#![forbid(unsafe_code)]

use std::net::SocketAddr;

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// A protocol-level fake WhatsApp server with fake phones, for tests and benchmarks.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on (loopback only is sensible: it trusts everyone).
    #[arg(long, env = "WASIM_LISTEN", default_value = "127.0.0.1:9400")]
    listen: SocketAddr,
    /// QR refs handed to each new device.
    #[arg(long, env = "WASIM_QR_REFS", default_value_t = 6)]
    qr_refs: usize,
    /// Delay every stanza the server sends by this many milliseconds, to
    /// look like a real network.
    #[arg(long, env = "WASIM_LATENCY_MS", default_value_t = 0)]
    latency_ms: u64,
    /// Vary that delay by up to this many milliseconds either way.
    #[arg(long, env = "WASIM_LATENCY_JITTER_MS", default_value_t = 0)]
    latency_jitter_ms: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "wasim=info".into()))
        .init();
    let args = Args::parse();
    let sim = wasim::Simulator::start(wasim::SimConfig {
        bind: args.listen,
        qr_refs: args.qr_refs,
        latency: std::time::Duration::from_millis(args.latency_ms),
        latency_jitter: std::time::Duration::from_millis(args.latency_jitter_ms),
    })
    .await?;
    tracing::info!(ws = %sim.ws_url(), admin = %sim.http_url(), "wasim listening");
    tokio::signal::ctrl_c().await?;
    sim.shutdown().await;
    Ok(())
}

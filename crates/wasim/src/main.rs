//! `wasim`: run the WhatsApp simulator standalone, with its admin HTTP API.

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
    })
    .await?;
    tracing::info!(ws = %sim.ws_url(), admin = %sim.http_url(), "wasim listening");
    tokio::signal::ctrl_c().await?;
    sim.shutdown().await;
    Ok(())
}

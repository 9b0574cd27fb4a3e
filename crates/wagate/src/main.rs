use clap::Parser;
use wagate::cli::Cli;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    wagate::telemetry::init();
    cli.run().await
}

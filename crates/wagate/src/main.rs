use clap::Parser;
use wagate::Cli;

fn main() -> anyhow::Result<()> {
    quiet_library_backtraces();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let cli = Cli::parse();
            wagate::init_telemetry();
            cli.run().await
        })
}

/// `RUST_BACKTRACE=1`, which many deployments set to get a panic's
/// backtrace, also makes every `anyhow` error capture one, and
/// whatsapp-rust's errors are `anyhow` errors: each costs a stack walk when
/// it is made, and the first one logged with its backtrace loads the
/// binary's debug information for good (40 MiB with 1,000 sessions linked,
/// `heaptrack`, BENCHMARKS.md). Library backtraces are off unless
/// `RUST_LIB_BACKTRACE` asks for them; a panic still prints its backtrace
/// as `RUST_BACKTRACE` says.
fn quiet_library_backtraces() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: the first thing `main` does, before the runtime or
        // anything else has started a thread that could read the
        // environment at the same time.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var("RUST_LIB_BACKTRACE", "0")
        };
    }
}

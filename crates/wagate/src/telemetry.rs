//! Structured logging.

use tracing_subscriber::EnvFilter;

/// whatsapp-rust logs protocol detail at info, which drowns the gateway's
/// own lines; `WAGATE_LOG` overrides the whole filter.
const DEFAULT_FILTER: &str = "info,whatsapp_rust=warn,wacore=warn,sqlx=warn";

pub fn init() {
    let filter =
        EnvFilter::try_from_env("WAGATE_LOG").unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    // A second initialisation (tests) is harmless, so its error is ignored.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true)
        .try_init();
}

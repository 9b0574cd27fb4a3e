//! Structured logging.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::Directive;

/// The gateway's own lines at info, everything else at warn. whatsapp-rust
/// logs protocol detail at info under targets of its own naming
/// (`Client/…`, `AppState`, `usync`, …, not `whatsapp_rust::…`), so
/// quieting it by crate name is not enough. `WAGATE_LOG` overrides this
/// filter (not [`SECRET_TARGETS`]).
const DEFAULT_FILTER: &str = "warn,wagate=info";

/// whatsapp-rust targets whose info lines carry a pairing code (the code
/// in the clear, and the phone number it was asked for). A pairing code
/// links a device to the account while it is valid, so these are capped at
/// warn whatever `WAGATE_LOG` asks for.
pub(crate) const SECRET_TARGETS: [&str; 2] = ["Client/PairCode", "Bot/PairCode"];

/// The filter for `spec` (`WAGATE_LOG`), or the default, with the secret
/// targets capped.
pub(crate) fn filter(spec: Option<&str>) -> EnvFilter {
    let mut filter = spec
        .and_then(|spec| EnvFilter::try_new(spec).ok())
        .unwrap_or_else(|| EnvFilter::new(DEFAULT_FILTER));
    for target in SECRET_TARGETS {
        if let Ok(directive) = format!("{target}=warn").parse::<Directive>() {
            filter = filter.add_directive(directive);
        }
    }
    filter
}

pub fn init() {
    let spec = std::env::var("WAGATE_LOG").ok();
    // A second initialisation (tests) is harmless, so its error is ignored.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter(spec.as_deref()))
        .with_target(true)
        .try_init();
}

#[cfg(test)]
mod tests {
    use tracing::level_filters::LevelFilter;

    use super::*;

    #[test]
    fn pairing_code_targets_stay_at_warn_even_when_everything_is_debug() {
        for spec in [None, Some("debug"), Some("trace,Client/PairCode=trace")] {
            let rendered = filter(spec).to_string();
            for target in SECRET_TARGETS {
                assert!(
                    rendered.contains(&format!("{target}=warn")),
                    "{spec:?}: {rendered}"
                );
                assert!(
                    !rendered.contains(&format!("{target}=trace")),
                    "{spec:?}: {rendered}"
                );
            }
        }
        assert_eq!(
            filter(Some("debug")).max_level_hint(),
            Some(LevelFilter::DEBUG)
        );
    }
}

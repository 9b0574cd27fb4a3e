//! The WhatsApp server a session connects to: the version the client
//! announces there, and the rule that keeps a build without certificate
//! checks (the `simulator` feature) on this machine.

use url::Url;

/// The version string the client announces when it cannot fetch the current
/// one over HTTPS, i.e. whenever it talks to a custom server.
pub(crate) const PINNED_WHATSAPP_VERSION: (u32, u32, u32) = (2, 3000, 1_028_000_000);

/// Why a `simulator` build refused a server.
#[derive(Debug, thiserror::Error)]
#[error(
    "this build has the `simulator` feature, which skips WhatsApp's certificate checks; \
     it only connects to a server on a loopback address, so set whatsapp_url to one \
     (e.g. ws://127.0.0.1:PORT/ws/chat)"
)]
pub struct SimulatorNeedsLoopback;

/// A build that skips certificate checks must never reach a server off this
/// machine. Checked at start-up and again by the WhatsApp adapter before
/// every session connects.
pub(crate) fn check_server_allowed(url: Option<&Url>) -> Result<(), SimulatorNeedsLoopback> {
    if cfg!(feature = "simulator") && !url.is_some_and(is_loopback) {
        return Err(SimulatorNeedsLoopback);
    }
    Ok(())
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_detection() {
        for (url, loopback) in [
            ("ws://127.0.0.1:1/ws/chat", true),
            ("ws://127.8.0.1:1/", true),
            ("ws://[::1]:1/", true),
            ("ws://localhost:1/", true),
            ("wss://web.whatsapp.com/ws/chat", false),
            ("ws://10.0.0.1/", false),
        ] {
            let parsed = Url::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(is_loopback(&parsed), loopback, "{url}");
        }
    }
}

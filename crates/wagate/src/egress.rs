//! The SSRF guard for every HTTP request the gateway makes to a URL that
//! an API client named (webhook deliveries, media fetches). A guarded
//! client resolves names itself, refuses the request if any address is
//! loopback, private, link-local, multicast, unspecified or otherwise not
//! public, and connects only to the addresses it checked: reqwest uses
//! the resolver's answer as is, so a second lookup (DNS rebinding) never
//! happens. URLs that name an IP address skip DNS, so [`check_url`] must
//! be called on them (and on every redirect hop) before connecting.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// Whether private destinations are allowed. Off by default; tests and
/// the sandbox turn it on, since their receivers listen on 127.0.0.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EgressPolicy {
    pub allow_private_network: bool,
    /// Connect to this machine only: any other destination is refused when
    /// the request is made (no DNS is asked either), while URLs are still
    /// accepted as the API's contract says. For a gateway that fuzzers and
    /// tests drive with URLs of their own choosing, which must not turn
    /// into traffic to anyone else.
    pub loopback_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    #[error("only http and https URLs are allowed")]
    UnsupportedScheme,
    #[error("the URL has no host")]
    NoHost,
    #[error("the address {0} is not public (loopback, private, link-local or reserved)")]
    Forbidden(IpAddr),
    #[error("the host has no address")]
    NoAddress,
}

impl EgressPolicy {
    /// Checks what can be checked without DNS: the scheme, and the host if
    /// it is an IP address or `localhost`.
    pub fn check_url(&self, url: &Url) -> Result<(), EgressError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(EgressError::UnsupportedScheme);
        }
        let host = url.host().ok_or(EgressError::NoHost)?;
        if self.allow_private_network {
            return Ok(());
        }
        match host {
            Host::Ipv4(ip) => check_ip(IpAddr::V4(ip)),
            Host::Ipv6(ip) => check_ip(IpAddr::V6(ip)),
            // Resolved by the system to loopback without asking DNS; refused
            // here so the error is clear before anything is sent.
            Host::Domain(name) if is_localhost(name) => {
                Err(EgressError::Forbidden(IpAddr::V4(Ipv4Addr::LOCALHOST)))
            }
            Host::Domain(_) => Ok(()),
        }
    }

    /// What [`check_url`](Self::check_url) checks, plus, with
    /// `loopback_only`, that the host is a loopback address or `localhost`:
    /// called right before connecting (and on every redirect hop).
    pub fn check_destination(&self, url: &Url) -> Result<(), EgressError> {
        self.check_url(url)?;
        if !self.loopback_only {
            return Ok(());
        }
        match url.host() {
            Some(Host::Ipv4(ip)) if !ip.is_loopback() => {
                Err(EgressError::Forbidden(IpAddr::V4(ip)))
            }
            Some(Host::Ipv6(ip)) if !ip.is_loopback() => {
                Err(EgressError::Forbidden(IpAddr::V6(ip)))
            }
            Some(Host::Domain(name)) if !is_localhost(name) => Err(EgressError::NoAddress),
            _ => Ok(()),
        }
    }

    /// Resolves `url`'s host and checks every address, for a clear answer
    /// when a webhook is created. Delivery checks again (the guarded
    /// resolver), since the answer can change.
    pub async fn check_resolved(&self, url: &Url) -> Result<(), EgressError> {
        self.check_url(url)?;
        if self.allow_private_network {
            return Ok(());
        }
        if let Some(Host::Domain(name)) = url.host() {
            let port = url.port_or_known_default().unwrap_or(443);
            let addrs = resolve_checked(name, port).await?;
            if addrs.is_empty() {
                return Err(EgressError::NoAddress);
            }
        }
        Ok(())
    }

    /// A client builder with this policy applied: the guarded resolver, and
    /// no proxy (a proxy would connect on the client's behalf, to an
    /// address this guard never saw).
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        let builder = reqwest::Client::builder();
        if self.loopback_only {
            builder.no_proxy().dns_resolver(Arc::new(LoopbackResolver))
        } else if self.allow_private_network {
            builder
        } else {
            builder.no_proxy().dns_resolver(Arc::new(GuardedResolver))
        }
    }
}

/// Whether `error` (or one of its causes) is this guard's refusal.
pub(crate) fn refusal(error: &(dyn std::error::Error + 'static)) -> Option<EgressError> {
    let mut source = Some(error);
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<EgressError>() {
            return Some(refused.clone());
        }
        source = cause.source();
    }
    None
}

/// Whether `url`'s host could be looked up: an IP address, or a name made
/// of non-empty labels of letters, digits and hyphens. The URL standard
/// lets through hosts no name can have (`a*b`, `a..b`).
pub(crate) fn has_valid_host(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(name)) => name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        }),
        // No host at all is [`EgressPolicy::check_url`]'s to refuse.
        Some(_) | None => true,
    }
}

fn is_localhost(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

fn check_ip(ip: IpAddr) -> Result<(), EgressError> {
    if is_public(ip) {
        Ok(())
    } else {
        Err(EgressError::Forbidden(ip))
    }
}

async fn resolve_checked(name: &str, port: u16) -> Result<Vec<SocketAddr>, EgressError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name, port))
        .await
        .map_err(|_| EgressError::NoAddress)?
        .collect();
    // Every address, not just the first: the connector may try any of them.
    for addr in &addrs {
        check_ip(addr.ip())?;
    }
    Ok(addrs)
}

/// Resolves with the system resolver, then refuses the whole answer if
/// any address is not public.
#[derive(Debug)]
struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let addrs = resolve_checked(name.as_str(), 0).await?;
            if addrs.is_empty() {
                return Err(Box::new(EgressError::NoAddress) as Box<_>);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Resolves `localhost` names to loopback and refuses every other name
/// without asking DNS.
#[derive(Debug)]
struct LoopbackResolver;

impl Resolve for LoopbackResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let local = is_localhost(name.as_str());
        Box::pin(async move {
            if !local {
                return Err(Box::new(EgressError::NoAddress) as Box<_>);
            }
            let addrs = vec![
                SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
                SocketAddr::from((Ipv6Addr::LOCALHOST, 0)),
            ];
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Globally routable unicast, as far as the standard library and the
/// IANA special-purpose registries tell.
pub(crate) fn is_public(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => is_public_v6(ip),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let segments = ip.segments();
    let embedded_v4 = || {
        let [.., a, b] = segments;
        Ipv4Addr::from((u32::from(a) << 16) | u32::from(b))
    };
    if ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() {
        return false;
    }
    match segments[0] {
        // Unique local fc00::/7, link-local fe80::/10, old site-local fec0::/10.
        s if (s & 0xfe00) == 0xfc00 || (s & 0xffc0) == 0xfe80 || (s & 0xffc0) == 0xfec0 => false,
        // Documentation 2001:db8::/32.
        0x2001 if segments[1] == 0x0db8 => false,
        // 6to4 carries an IPv4 address in its second and third segments.
        0x2002 => is_public_v4(Ipv4Addr::from(
            (u32::from(segments[1]) << 16) | u32::from(segments[2]),
        )),
        // NAT64 64:ff9b::/96 reaches the embedded IPv4 address.
        0x0064 if segments[1] == 0xff9b && segments[2..6] == [0, 0, 0, 0] => {
            is_public_v4(embedded_v4())
        }
        // IPv4-compatible ::a.b.c.d (deprecated) and the rest of ::/8.
        0 => false,
        _ => true,
    }
}

/// A request's error and its causes, without the URL: a signed URL's
/// query string is a credential, and this text ends up in stored rows
/// (outbox, delivery log) and in logs.
pub(crate) fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else if error.is_redirect() {
        "redirect refused"
    } else {
        "request failed"
    };
    let mut detail = kind.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    detail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn loopback_only_accepts_any_url_but_connects_to_this_machine_only() {
        let policy = EgressPolicy {
            allow_private_network: true,
            loopback_only: true,
        };
        for (url, connects) in [
            ("http://127.0.0.1:8080/hook", true),
            ("http://[::1]/hook", true),
            ("http://localhost/hook", true),
            ("https://8.8.8.8/hook", false),
            ("http://10.0.0.1/hook", false),
            ("https://example.com/hook", false),
        ] {
            let Ok(url) = Url::parse(url) else {
                panic!("{url}");
            };
            assert!(policy.check_url(&url).is_ok(), "{url} is a valid URL");
            assert!(policy.check_resolved(&url).await.is_ok(), "{url}");
            assert_eq!(policy.check_destination(&url).is_ok(), connects, "{url}");
        }
        let name = |s: &str| s.parse::<Name>().unwrap_or_else(|e| panic!("{s}: {e}"));
        assert!(LoopbackResolver.resolve(name("example.com")).await.is_err());
        let local = LoopbackResolver.resolve(name("localhost")).await;
        assert!(local.is_ok_and(|mut addrs| addrs.all(|a| a.ip().is_loopback())));
    }

    #[test]
    fn only_public_unicast_addresses_pass() {
        for (ip, public) in [
            ("127.0.0.1", false),
            ("10.1.2.3", false),
            ("172.16.0.1", false),
            ("192.168.1.1", false),
            ("169.254.169.254", false),
            ("100.64.0.1", false),
            ("0.0.0.0", false),
            ("224.0.0.1", false),
            ("255.255.255.255", false),
            ("240.0.0.1", false),
            ("8.8.8.8", true),
            ("93.184.216.34", true),
            ("::1", false),
            ("::", false),
            ("fe80::1", false),
            ("fd00::1", false),
            ("ff02::1", false),
            ("::ffff:127.0.0.1", false),
            ("::ffff:8.8.8.8", true),
            ("64:ff9b::a00:1", false),
            ("2002:7f00:1::", false),
            ("2001:db8::1", false),
            ("2606:4700:4700::1111", true),
        ] {
            let parsed: IpAddr = ip.parse().unwrap_or_else(|e| panic!("{ip}: {e}"));
            assert_eq!(is_public(parsed), public, "{ip}");
        }
    }

    #[test]
    fn urls_are_checked_before_dns() {
        let deny = EgressPolicy::default();
        let allow = EgressPolicy {
            allow_private_network: true,
            ..EgressPolicy::default()
        };
        let url = |s: &str| Url::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert!(matches!(
            deny.check_url(&url("http://127.0.0.1:8080/hook")),
            Err(EgressError::Forbidden(_))
        ));
        assert!(matches!(
            deny.check_url(&url("http://[::ffff:10.0.0.1]/")),
            Err(EgressError::Forbidden(_))
        ));
        assert!(matches!(
            deny.check_url(&url("http://LOCALHOST./")),
            Err(EgressError::Forbidden(_))
        ));
        assert_eq!(
            deny.check_url(&url("ftp://example.org/")),
            Err(EgressError::UnsupportedScheme)
        );
        assert_eq!(deny.check_url(&url("https://example.org/hook")), Ok(()));
        assert_eq!(allow.check_url(&url("http://127.0.0.1:8080/hook")), Ok(()));
        assert_eq!(
            allow.check_url(&url("file:///etc/passwd")),
            Err(EgressError::UnsupportedScheme)
        );
    }

    /// The resolver path: a name that resolves to loopback is refused
    /// before any connection, and the refusal is recognisable.
    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_by_the_client() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let client = EgressPolicy::default()
            .client_builder()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        // The client alone (no check_url): the resolver refuses.
        let error = client
            .get(format!("http://localhost:{port}/"))
            .send()
            .await
            .err()
            .unwrap_or_else(|| panic!("a loopback name was fetched"));
        assert!(
            matches!(refusal(&error), Some(EgressError::Forbidden(_))),
            "{error:?}"
        );
    }
}

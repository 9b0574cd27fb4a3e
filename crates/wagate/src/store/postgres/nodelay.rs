//! TCP_NODELAY on the connections to PostgreSQL.
//!
//! sqlx 0.9.0 opens its TCP connections without `TCP_NODELAY` (a
//! regression: transact-rs/sqlx#4335, fixed upstream by #4336, not in a
//! release yet) and has no option or hook to set it. Without it, Nagle's
//! algorithm holds back the last, partial segment of a statement while the
//! server, which has nothing to answer yet, delays its ACK: about 40 ms on
//! Linux. Every write transaction holds the writer lock while it waits, so
//! under inbound load the commits fell to ~20 a second and the gateway to
//! ~550 messages a second at best, with groups, and so statements, growing
//! as the backlog grew (BENCHMARKS.md, "PostgreSQL over TCP").
//!
//! So after sqlx connects, the gateway sets the option itself: it looks
//! through its own descriptors for TCP sockets whose peer is the database
//! server and sets it on those not yet set. The socket belongs to sqlx;
//! the gateway takes a duplicate of the descriptor (`pidfd_getfd` on its
//! own process) and sets the option through that, which is the same
//! socket, or, where the system refuses that (Docker's default seccomp
//! profile), uses the descriptor's number in place. A socket is only
//! touched if its peer is the server the pool connects to, so a descriptor
//! closed and reused meanwhile is either skipped or another connection to
//! that server. Remove this module once sqlx sets the option again.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::postgres::PgConnectOptions;

/// The addresses `options` connects to over TCP (what sqlx resolves the
/// host to); empty for a Unix socket, which has no Nagle to turn off.
pub(super) async fn server_addresses(options: &PgConnectOptions) -> Vec<SocketAddr> {
    if options.get_socket().is_some() || options.get_host().starts_with('/') {
        return Vec::new();
    }
    // Brackets around an IPv6 literal are the URL's, not the address's.
    let host = options.get_host().trim_matches(['[', ']']);
    match tokio::net::lookup_host((host, options.get_port())).await {
        Ok(found) => found.collect(),
        // sqlx reports it when it connects.
        Err(_) => Vec::new(),
    }
}

/// Sets TCP_NODELAY on every socket of this process connected to the
/// server of `options` that does not have it yet (the host is looked up
/// again each time, as sqlx does for each connection). Never fails the
/// connection: if the system refuses (no `pidfd_getfd`, or a sandbox that
/// forbids it), the connection works as sqlx made it, and a warning says
/// so once.
pub(super) async fn set_on_connections_to(options: &PgConnectOptions) {
    let servers = server_addresses(options).await;
    if servers.is_empty() {
        return;
    }
    let started = std::time::Instant::now();
    let outcome = tokio::task::spawn_blocking(move || scan(&servers)).await;
    let error = match outcome {
        Ok(Ok(changed)) => {
            tracing::debug!(changed, elapsed = ?started.elapsed(), "TCP_NODELAY set");
            return;
        }
        Ok(Err(error)) => error.to_string(),
        Err(error) => error.to_string(),
    };
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            %error,
            "could not set TCP_NODELAY on the PostgreSQL connections: writes may wait ~40 ms \
             on delayed ACKs (a Unix socket, `?host=/path/to/socket/dir`, avoids it)"
        );
    }
}

/// Returns how many sockets it changed.
#[cfg(target_os = "linux")]
fn scan(servers: &[SocketAddr]) -> std::io::Result<usize> {
    scan_reaching(servers, true)
}

#[cfg(not(target_os = "linux"))]
fn scan(_servers: &[SocketAddr]) -> std::io::Result<usize> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "only done on Linux",
    ))
}

/// The scan, through [`for_each_connection_to`].
#[cfg(target_os = "linux")]
fn scan_reaching(servers: &[SocketAddr], duplicates: bool) -> std::io::Result<usize> {
    use rustix::net::sockopt::{set_tcp_nodelay, tcp_nodelay};

    let mut changed = 0;
    for_each_connection_to(servers, duplicates, |socket| {
        if tcp_nodelay(socket) == Ok(false) {
            set_tcp_nodelay(socket, true)?;
            changed += 1;
        }
        Ok(())
    })?;
    Ok(changed)
}

/// Calls `visit` with each of this process's TCP connections to one of
/// `servers`, reaching each socket (known only by its number) through a
/// duplicate from `pidfd_getfd` if `duplicates`, which stays open while it
/// is looked at whatever other threads close, and where the system refuses
/// that (Docker's default seccomp profile allows it only with
/// `CAP_SYS_PTRACE`; Linux before 5.6), or if not `duplicates`, through the
/// number itself.
#[cfg(target_os = "linux")]
fn for_each_connection_to(
    servers: &[SocketAddr],
    duplicates: bool,
    mut visit: impl FnMut(std::os::fd::BorrowedFd<'_>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    use std::os::fd::{AsFd, BorrowedFd};
    use std::os::unix::ffi::OsStrExt;

    use rustix::net::sockopt::socket_type;
    use rustix::net::{SocketType, getpeername};
    use rustix::process::{PidfdFlags, PidfdGetfdFlags, getpid, pidfd_getfd, pidfd_open};

    let mut me = if duplicates {
        pidfd_open(getpid(), PidfdFlags::empty()).ok()
    } else {
        None
    };
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let entry = entry?;
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        // Closed since the listing, or not a socket: nothing to do.
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        if !target.as_os_str().as_bytes().starts_with(b"socket:") {
            continue;
        }
        let duplicate = match &me {
            Some(pidfd) => match pidfd_getfd(pidfd, fd, PidfdGetfdFlags::empty()) {
                Ok(duplicate) => Some(duplicate),
                Err(rustix::io::Errno::BADF) => continue,
                // Refused (EPERM under a seccomp filter, ENOSYS before
                // Linux 5.6): in place from here on.
                Err(_) => {
                    me = None;
                    None
                }
            },
            None => None,
        };
        let socket = match &duplicate {
            Some(duplicate) => duplicate.as_fd(),
            // SAFETY: `fd` is a descriptor of this process, listed a moment
            // ago; it is only used for the calls below. Should another
            // thread close it meanwhile, they fail (EBADF), and should the
            // number be reused at once, the peer check below sees the new
            // socket: `visit` only ever sees a TCP connection to the
            // database server, whichever it is.
            #[allow(unsafe_code)]
            None => unsafe { BorrowedFd::borrow_raw(fd) },
        };
        let peer = getpeername(socket)
            .ok()
            .flatten()
            .and_then(|peer| SocketAddr::try_from(peer).ok());
        if peer.is_some_and(|peer| servers.contains(&peer))
            && socket_type(socket).ok() == Some(SocketType::STREAM)
        {
            visit(socket)?;
        }
    }
    Ok(())
}

/// Whether each of this process's TCP connections to one of `servers`
/// has TCP_NODELAY, by local port (for tests).
#[cfg(all(test, target_os = "linux"))]
pub(super) fn nodelay_by_local_port(
    servers: &[SocketAddr],
) -> std::io::Result<std::collections::HashMap<u16, bool>> {
    use rustix::net::getsockname;
    use rustix::net::sockopt::tcp_nodelay;

    let mut by_port = std::collections::HashMap::new();
    for_each_connection_to(servers, true, |socket| {
        if let Ok(local) = SocketAddr::try_from(getsockname(socket)?) {
            by_port.insert(local.port(), tcp_nodelay(socket)?);
        }
        Ok(())
    })?;
    Ok(by_port)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::net::{TcpListener, TcpStream};

    use super::*;

    /// Both ways of reaching a socket set the option on a connection to
    /// the server named, and only on it.
    #[test]
    fn the_scan_sets_tcp_nodelay_on_connections_to_the_server_only() -> std::io::Result<()> {
        for duplicates in [true, false] {
            let server = TcpListener::bind("127.0.0.1:0")?;
            let other = TcpListener::bind("127.0.0.1:0")?;
            let to_server = TcpStream::connect(server.local_addr()?)?;
            let to_other = TcpStream::connect(other.local_addr()?)?;
            assert!(
                !to_server.nodelay()?,
                "duplicates {duplicates}: the kernel's default"
            );
            let changed = scan_reaching(&[server.local_addr()?], duplicates)?;
            assert_eq!(changed, 1, "duplicates {duplicates}");
            assert!(to_server.nodelay()?, "duplicates {duplicates}");
            assert!(
                !to_other.nodelay()?,
                "duplicates {duplicates}: not a connection to the server"
            );
            assert_eq!(
                scan_reaching(&[server.local_addr()?], duplicates)?,
                0,
                "duplicates {duplicates}: set once"
            );
        }
        Ok(())
    }
}

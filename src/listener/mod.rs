//! One `SO_REUSEPORT` listening socket per shard.
//!
//! Every shard binds its own non-blocking, close-on-exec listener on the same
//! address with `SO_REUSEADDR` + `SO_REUSEPORT`, so the kernel spreads incoming
//! connections across shards without a shared accept queue. Binding can race
//! with a previous instance that is still shutting down, so `EADDRINUSE` is
//! retried on a short doubling schedule ([`RetrySchedule`], in `retry.rs`). When
//! binding finally fails, [`BindError`] carries diagnostics gathered at that moment
//! (`diagnostics.rs`: socket options read back from the failing fd, the current
//! listeners on the port from `/proc/net/tcp{,6}` as parsed by `proc_net.rs`, open fd
//! count, `RLIMIT_NOFILE`) so the operator can see *who* holds the port without
//! reaching for `ss`.

mod diagnostics;
mod proc_net;
mod retry;

use std::fmt;
use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

pub use proc_net::{parse_proc_net_tcp, ProcTcpRow, TCP_LISTEN};
pub use retry::{retry_on_addr_in_use, RetrySchedule};

/// Default `listen(2)` backlog (the kernel caps it at `net.core.somaxconn`).
pub const DEFAULT_BACKLOG: i32 = 4096;

/// Where and how to listen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindConfig {
    pub addr: SocketAddr,
    /// `listen(2)` backlog; [`DEFAULT_BACKLOG`] by default.
    pub backlog: i32,
}

impl BindConfig {
    /// Config for `addr` with the default backlog.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            backlog: DEFAULT_BACKLOG,
        }
    }
}

/// Binding failed; carries the stage, the OS error and diagnostics gathered at
/// failure time. `Display` renders one readable multi-line text.
#[derive(Debug)]
pub struct BindError {
    pub addr: SocketAddr,
    /// `"socket"`, `"setsockopt"`, `"bind"` or `"listen"`.
    pub stage: &'static str,
    pub source: io::Error,
    /// How many `EADDRINUSE` retries were made before giving up.
    pub retries: u32,
    /// Multi-line, already indented; each piece degrades to
    /// `unavailable: <why>` on its own.
    pub diagnostics: String,
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} failed: {}", self.stage, self.addr, self.source)?;
        if self.retries > 0 {
            let s = if self.retries == 1 {
                "retry"
            } else {
                "retries"
            };
            write!(f, " after {} {s}", self.retries)?;
        }
        write!(f, "\n  diagnostics:\n{}", self.diagnostics)
    }
}

impl std::error::Error for BindError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Create, configure, bind and listen a `SO_REUSEPORT` socket on `cfg.addr`.
///
/// socket2: domain from the address, `SOCK_STREAM`, `SO_REUSEADDR` +
/// `SO_REUSEPORT`, non-blocking, close-on-exec, bind, `listen(backlog)`.
/// `EADDRINUSE` is retried with [`RetrySchedule::default`] and
/// `thread::sleep`; `on_retry(n)` is called after each back-off (for logging).
pub fn bind_reuseport(
    cfg: &BindConfig,
    mut on_retry: impl FnMut(u32),
) -> Result<Socket, BindError> {
    // The last failing attempt's stage and socket (kept open so diagnostics
    // can read its options back).
    let mut failed: Option<(&'static str, Option<Socket>)> = None;
    let mut retries = 0u32;
    let result = retry_on_addr_in_use(
        &RetrySchedule::default(),
        || {
            failed = None;
            bind_once(cfg).map_err(|(stage, sock, e)| {
                failed = Some((stage, sock));
                e
            })
        },
        std::thread::sleep,
        |n| {
            retries = n;
            on_retry(n);
        },
    );
    result.map_err(|source| {
        let (stage, sock) = failed.unwrap_or(("socket", None));
        BindError {
            addr: cfg.addr,
            stage,
            diagnostics: diagnostics::gather(cfg.addr, sock.as_ref()),
            source,
            retries,
        }
    })
}

type StageError = (&'static str, Option<Socket>, io::Error);

fn bind_once(cfg: &BindConfig) -> Result<Socket, StageError> {
    let ty = Type::STREAM.nonblocking().cloexec();
    let sock = Socket::new(Domain::for_address(cfg.addr), ty, Some(Protocol::TCP))
        .map_err(|e| ("socket", None, e))?;
    let sock = match sock
        .set_reuse_address(true)
        .and_then(|()| sock.set_reuse_port(true))
    {
        Ok(()) => sock,
        Err(e) => return Err(("setsockopt", Some(sock), e)),
    };
    if let Err(e) = sock.bind(&SockAddr::from(cfg.addr)) {
        return Err(("bind", Some(sock), e));
    }
    if let Err(e) = sock.listen(cfg.backlog) {
        return Err(("listen", Some(sock), e));
    }
    Ok(sock)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    fn loopback(port: u16) -> BindConfig {
        BindConfig::new(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    #[test]
    fn two_reuseport_listeners_share_a_port() {
        let a = bind_reuseport(&loopback(0), |_| {}).unwrap();
        let addr = a.local_addr().unwrap().as_socket().unwrap();
        assert_ne!(addr.port(), 0);
        let mut retried = 0;
        let b = bind_reuseport(&loopback(addr.port()), |_| retried += 1).unwrap();
        assert_eq!(retried, 0);
        assert_eq!(b.local_addr().unwrap().as_socket().unwrap(), addr);
        assert!(a.nonblocking().unwrap() && b.nonblocking().unwrap());
        assert!(a.reuse_port().unwrap() && b.reuse_port().unwrap());
        // The shared port accepts connections.
        TcpStream::connect(addr).unwrap();
    }

    #[test]
    fn bind_fails_against_plain_listener_with_diagnostics() {
        let holder = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = holder.local_addr().unwrap();
        let inode = proc_net::socket_inode_of(holder.as_raw_fd()).unwrap();

        let mut retries = Vec::new();
        // The back-off schedule (how long the 7 retries wait) is asserted by
        // `retry::tests`, not timed here: this machine is shared and noisy.
        let err = bind_reuseport(&BindConfig::new(addr), |n| retries.push(n)).unwrap_err();

        assert_eq!(err.stage, "bind");
        assert_eq!(err.source.raw_os_error(), Some(libc::EADDRINUSE));
        assert_eq!(err.retries, 7);
        assert_eq!(retries, (1..=7).collect::<Vec<_>>());
        assert!(std::error::Error::source(&err).is_some());

        let text = err.to_string();
        eprintln!("{text}");
        let first = text.lines().next().unwrap();
        assert!(
            first.starts_with(&format!("bind {addr} failed: ")),
            "{first}"
        );
        assert!(first.ends_with("after 7 retries"), "{first}");
        for needle in [
            "SO_REUSEADDR=true",
            "SO_REUSEPORT=true",
            "open fds: ",
            "RLIMIT_NOFILE: soft=",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
        let listener_line = text
            .lines()
            .find(|l| l.contains(&format!("inode={inode}")))
            .unwrap_or_else(|| panic!("no listener line for inode {inode} in:\n{text}"));
        assert!(listener_line.contains(&addr.to_string()), "{listener_line}");
        assert!(listener_line.contains("this process"), "{listener_line}");
        assert!(!text.contains("unavailable"), "{text}");
    }
}

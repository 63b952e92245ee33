//! One `SO_REUSEPORT` listening socket per shard.
//!
//! Every shard binds its own non-blocking, close-on-exec listener on the same
//! address with `SO_REUSEADDR` + `SO_REUSEPORT`, so the kernel spreads incoming
//! connections across shards without a shared accept queue. Binding can race
//! with a previous instance that is still shutting down, so `EADDRINUSE` is
//! retried on a short doubling schedule ([`RetrySchedule`]). When binding
//! finally fails, [`BindError`] carries diagnostics gathered at that moment
//! (socket options read back from the failing fd, the current listeners on the
//! port from `/proc/net/tcp{,6}`, open fd count, `RLIMIT_NOFILE`) so the
//! operator can see *who* holds the port without reaching for `ss`.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

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

/// Doubling back-off for `EADDRINUSE`: `first`, `2*first`, … capped at `max`,
/// `retries` delays in total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySchedule {
    pub first: Duration,
    pub max: Duration,
    pub retries: u32,
}

impl Default for RetrySchedule {
    /// 250 µs doubling up to 32 ms, 7 retries: 250 µs … 16 ms, ~32 ms total.
    fn default() -> Self {
        Self {
            first: Duration::from_micros(250),
            max: Duration::from_millis(32),
            retries: 7,
        }
    }
}

impl RetrySchedule {
    /// The delays to sleep before each retry, in order (`retries` items).
    pub fn delays(&self) -> impl Iterator<Item = Duration> {
        let (first, max) = (self.first, self.max);
        (0..self.retries).map(move |i| {
            let factor = 1u32.checked_shl(i).unwrap_or(u32::MAX);
            first.saturating_mul(factor).min(max)
        })
    }
}

/// Run `attempt` until it succeeds. On an error whose `raw_os_error` is
/// `EADDRINUSE` only, sleep the next delay (via the injected `sleep`), call
/// `on_retry(n)` (`n` = 1-based retry number), then retry. Any other error is
/// returned at once; when the delays run out, the last error is returned.
pub fn retry_on_addr_in_use<T>(
    schedule: &RetrySchedule,
    mut attempt: impl FnMut() -> io::Result<T>,
    mut sleep: impl FnMut(Duration),
    mut on_retry: impl FnMut(u32),
) -> io::Result<T> {
    let mut delays = schedule.delays();
    let mut n = 0u32;
    loop {
        match attempt() {
            Ok(v) => return Ok(v),
            Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => match delays.next() {
                Some(d) => {
                    sleep(d);
                    n += 1;
                    on_retry(n);
                }
                None => return Err(e),
            },
            Err(e) => return Err(e),
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
            diagnostics: gather_diagnostics(cfg.addr, sock.as_ref()),
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

fn unavailable(e: impl fmt::Display) -> String {
    format!("unavailable: {e}")
}

fn fmt_limit(v: u64) -> String {
    // crate::sys reports RLIM_INFINITY as u64::MAX.
    if v == u64::MAX {
        "unlimited".to_owned()
    } else {
        v.to_string()
    }
}

/// Build the diagnostics text. Every piece is independent and falls back to
/// an inline `unavailable: <why>`; nothing here can fail or panic.
fn gather_diagnostics(addr: SocketAddr, sock: Option<&Socket>) -> String {
    let mut out = String::new();
    out.push_str(&format!("    address: {addr}\n"));

    match sock {
        Some(s) => {
            let ra = s
                .reuse_address()
                .map_or_else(unavailable, |v| v.to_string());
            let rp = s.reuse_port().map_or_else(unavailable, |v| v.to_string());
            out.push_str(&format!(
                "    failing fd {}: SO_REUSEADDR={ra} SO_REUSEPORT={rp}\n",
                s.as_raw_fd()
            ));
        }
        None => out.push_str(
            "    SO_REUSEADDR/SO_REUSEPORT: unavailable: no socket (socket() itself failed)\n",
        ),
    }

    out.push_str(&format!(
        "    listeners on port {} (/proc/net/tcp, /proc/net/tcp6, state 0A):\n",
        addr.port()
    ));
    let own = own_socket_inodes().unwrap_or_default();
    let mut found = 0usize;
    for path in ["/proc/net/tcp", "/proc/net/tcp6"] {
        match fs::read_to_string(path) {
            Ok(text) => {
                for row in parse_proc_net_tcp(&text)
                    .into_iter()
                    .filter(|r| r.state == TCP_LISTEN && r.local.port() == addr.port())
                {
                    found += 1;
                    let holder = match own.get(&row.inode) {
                        Some(fd) => format!(" (this process, fd {fd})"),
                        None => String::new(),
                    };
                    out.push_str(&format!(
                        "      {} uid={} inode={}{holder}\n",
                        row.local, row.uid, row.inode
                    ));
                }
            }
            Err(e) => out.push_str(&format!("      {path}: {}\n", unavailable(e))),
        }
    }
    if found == 0 {
        out.push_str("      none found\n");
    }

    let fds = crate::sys::open_fd_count(None).map_or_else(unavailable, |n| n.to_string());
    out.push_str(&format!("    open fds: {fds}\n"));
    let lim = crate::sys::nofile_limit().map_or_else(unavailable, |(soft, hard)| {
        format!("soft={} hard={}", fmt_limit(soft), fmt_limit(hard))
    });
    out.push_str(&format!("    RLIMIT_NOFILE: {lim}\n"));
    out
}

/// `st` value of a listening socket in `/proc/net/tcp`.
pub const TCP_LISTEN: u8 = 0x0A;

/// One parsed row of `/proc/net/tcp` or `/proc/net/tcp6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcTcpRow {
    pub local: SocketAddr,
    /// Kernel TCP state (`0x0A` = LISTEN).
    pub state: u8,
    pub uid: u32,
    pub inode: u64,
}

/// Parse the text of `/proc/net/tcp` or `/proc/net/tcp6`. The header and any
/// malformed row are skipped.
///
/// Addresses are printed by the kernel as the raw in-memory 32-bit words in
/// hex, i.e. little-endian per 32-bit word on the (little-endian) hosts
/// ringcast targets: IPv4 is one word, IPv6 four. Ports are plain hex in host
/// order.
pub fn parse_proc_net_tcp(text: &str) -> Vec<ProcTcpRow> {
    text.lines().filter_map(parse_row).collect()
}

fn parse_row(line: &str) -> Option<ProcTcpRow> {
    let f: Vec<&str> = line.split_whitespace().collect();
    // sl local rem st tx:rx tr:tm retrnsmt uid timeout inode ...
    if f.len() < 10 || !f[0].ends_with(':') {
        return None;
    }
    let local = parse_hex_addr(f[1])?;
    let state = u8::from_str_radix(f[3], 16).ok()?;
    let uid = f[7].parse().ok()?;
    let inode = f[9].parse().ok()?;
    Some(ProcTcpRow {
        local,
        state,
        uid,
        inode,
    })
}

fn parse_hex_addr(s: &str) -> Option<SocketAddr> {
    let (ip, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let w = ip.get(i * 8..i * 8 + 8)?;
        Some(u32::from_str_radix(w, 16).ok()?.to_le_bytes())
    };
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Inode of the socket behind `fd`, from the `/proc/self/fd/<fd>` link
/// (`socket:[INODE]`).
fn socket_inode_of(fd: RawFd) -> io::Result<u64> {
    let link = fs::read_link(format!("/proc/self/fd/{fd}"))?;
    let link = link.to_string_lossy();
    link.strip_prefix("socket:[")
        .and_then(|s| s.strip_suffix(']'))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("not a socket: {link}")))
}

/// Map of socket inode → fd for every socket this process holds.
fn own_socket_inodes() -> io::Result<HashMap<u64, RawFd>> {
    let mut map = HashMap::new();
    for entry in fs::read_dir("/proc/self/fd")? {
        let Ok(entry) = entry else { continue };
        let Some(fd) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        if let Ok(inode) = socket_inode_of(fd) {
            map.insert(inode, fd);
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::net::{TcpListener, TcpStream};

    fn os_err(code: i32) -> io::Error {
        io::Error::from_raw_os_error(code)
    }

    fn us(v: u64) -> Duration {
        Duration::from_micros(v)
    }

    #[test]
    fn default_delays_double_up_to_16ms() {
        let d: Vec<_> = RetrySchedule::default().delays().collect();
        assert_eq!(
            d,
            [250, 500, 1000, 2000, 4000, 8000, 16000].map(us).to_vec()
        );
    }

    #[test]
    fn delays_are_capped_at_max_and_never_overflow() {
        let s = RetrySchedule {
            first: Duration::from_millis(10),
            max: Duration::from_millis(32),
            retries: 40,
        };
        let d: Vec<_> = s.delays().collect();
        assert_eq!(d.len(), 40);
        assert_eq!(&d[..4], &[10, 20, 32, 32].map(Duration::from_millis));
        assert!(d[2..].iter().all(|&x| x == Duration::from_millis(32)));
    }

    #[test]
    fn retries_addr_in_use_then_succeeds() {
        for fails in 0..=7u32 {
            let mut calls = 0u32;
            let sleeps = RefCell::new(Vec::new());
            let retries = RefCell::new(Vec::new());
            let r = retry_on_addr_in_use(
                &RetrySchedule::default(),
                || {
                    calls += 1;
                    if calls <= fails {
                        Err(os_err(libc::EADDRINUSE))
                    } else {
                        Ok(calls)
                    }
                },
                |d| sleeps.borrow_mut().push(d),
                |n| retries.borrow_mut().push(n),
            );
            assert_eq!(r.unwrap(), fails + 1);
            let expected: Vec<_> = RetrySchedule::default()
                .delays()
                .take(fails as usize)
                .collect();
            assert_eq!(*sleeps.borrow(), expected);
            assert_eq!(*retries.borrow(), (1..=fails).collect::<Vec<_>>());
        }
        // Spot-check the exact values for N = 3.
        let mut n = 0;
        let mut sleeps = Vec::new();
        retry_on_addr_in_use(
            &RetrySchedule::default(),
            || {
                n += 1;
                if n <= 3 {
                    Err(os_err(libc::EADDRINUSE))
                } else {
                    Ok(())
                }
            },
            |d| sleeps.push(d),
            |_| {},
        )
        .unwrap();
        assert_eq!(sleeps, vec![us(250), us(500), us(1000)]);
    }

    #[test]
    fn other_errors_return_at_once() {
        let mut calls = 0;
        let mut slept = 0;
        let mut retried = 0;
        let r: io::Result<()> = retry_on_addr_in_use(
            &RetrySchedule::default(),
            || {
                calls += 1;
                Err(os_err(libc::EACCES))
            },
            |_| slept += 1,
            |_| retried += 1,
        );
        assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EACCES));
        assert_eq!((calls, slept, retried), (1, 0, 0));
    }

    #[test]
    fn exhausted_retries_return_last_error() {
        let mut calls = 0u32;
        let mut sleeps = Vec::new();
        let mut last_retry = 0;
        let r: io::Result<()> = retry_on_addr_in_use(
            &RetrySchedule::default(),
            || {
                calls += 1;
                Err(os_err(libc::EADDRINUSE))
            },
            |d| sleeps.push(d),
            |n| last_retry = n,
        );
        assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EADDRINUSE));
        assert_eq!(calls, 8, "1 attempt + 7 retries");
        assert_eq!(sleeps.len(), 7);
        assert_eq!(
            sleeps,
            RetrySchedule::default().delays().collect::<Vec<_>>()
        );
        assert_eq!(last_retry, 7);
    }

    const TCP4: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:2329 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 123456 1 0000000000000000 100 0 0 10 0
   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 999 1 0000000000000000 100 0 0 10 0
   2: 0100007F:2329 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 777 1 0000000000000000 20 4 30 10 -1
   3: garbage
";

    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0000000000000000FFFF00000100007F:1F91 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000   33        0 4343 1 0000000000000000 100 0 0 10 0
   2: B80D0120000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5 1 0000000000000000 100 0 0 10 0
";

    #[test]
    fn parses_proc_net_tcp_v4() {
        let rows = parse_proc_net_tcp(TCP4);
        assert_eq!(rows.len(), 3, "header and garbage rows are skipped");
        assert_eq!(
            rows[0],
            ProcTcpRow {
                local: "127.0.0.1:9001".parse().unwrap(),
                state: TCP_LISTEN,
                uid: 1000,
                inode: 123456,
            }
        );
        assert_eq!(rows[1].local, "0.0.0.0:22".parse().unwrap());
        assert_eq!((rows[1].uid, rows[1].inode), (0, 999));
        assert_eq!(rows[2].state, 0x01, "ESTABLISHED row parsed, not LISTEN");
    }

    #[test]
    fn parses_proc_net_tcp_v6() {
        let rows = parse_proc_net_tcp(TCP6);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].local, "[::1]:8080".parse().unwrap());
        assert_eq!((rows[0].uid, rows[0].inode), (1000, 4242));
        assert_eq!(rows[1].local, "[::ffff:127.0.0.1]:8081".parse().unwrap());
        assert_eq!(rows[2].local, "[2001:db8::1]:80".parse().unwrap());
        assert!(rows.iter().all(|r| r.state == TCP_LISTEN));
    }

    #[test]
    fn parser_rejects_malformed_addresses() {
        assert_eq!(parse_hex_addr("0100007F"), None);
        assert_eq!(parse_hex_addr("0100007:2329"), None);
        assert_eq!(parse_hex_addr("0100007G:2329"), None);
        assert_eq!(parse_hex_addr("0100007F:FFFFF"), None);
        assert!(parse_proc_net_tcp("").is_empty());
    }

    #[test]
    fn parser_reads_this_machine() {
        // Real /proc text must parse without losing rows that look valid.
        let text = fs::read_to_string("/proc/net/tcp").unwrap();
        let data_lines = text.lines().skip(1).filter(|l| !l.trim().is_empty());
        assert_eq!(parse_proc_net_tcp(&text).len(), data_lines.count());
    }

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
        let inode = socket_inode_of(holder.as_raw_fd()).unwrap();

        let mut retries = Vec::new();
        let t0 = std::time::Instant::now();
        let err = bind_reuseport(&BindConfig::new(addr), |n| retries.push(n)).unwrap_err();
        let elapsed = t0.elapsed();

        assert_eq!(err.stage, "bind");
        assert_eq!(err.source.raw_os_error(), Some(libc::EADDRINUSE));
        assert_eq!(err.retries, 7);
        assert_eq!(retries, (1..=7).collect::<Vec<_>>());
        assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
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

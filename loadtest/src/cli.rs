//! Command-line interface: clap definitions for the `fanout`, `connect`, `echo` and `floor`
//! subcommands (and the `cert` helper), plus the small value parsers they need (`ws://`,
//! `wss://` and `http://` URLs, fractions, source-IP ranges, CPU lists, durations and byte sizes). Parsers are plain functions so
//! they are unit-tested.

use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// ringcast-load: WebSocket load generator (fan-out, connection churn, echo latency).
#[derive(Parser, Debug)]
#[command(name = "ringcast-load", version, about)]
pub struct Cli {
    /// Workload to run.
    #[command(subcommand)]
    pub cmd: Command,
}

/// The workloads.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Subscribers in one room, publishers broadcasting timestamped messages.
    Fanout(Box<FanoutArgs>),
    /// Connection storm and churn: open N upgraded connections, close them, repeat.
    Connect(ConnectArgs),
    /// Round-trip latency against an echo endpoint.
    Echo(EchoArgs),
    /// Write a fresh self-signed certificate and key (PEM) for a wss:// test server.
    Cert(CertArgs),
    /// The loopback floor: the sender's CPU per frame for batched sends of prebuilt
    /// frames to N sockets, with no server in between (the yardstick for a server's CPU
    /// per delivered frame).
    Floor(FloorArgs),
}

/// `floor` options (see the `floor` module).
#[derive(Args, Debug, Clone)]
pub struct FloorArgs {
    /// Loopback connections (two descriptors each, both in this process).
    #[arg(long, default_value_t = 9000)]
    pub connections: usize,
    /// WebSocket frames per send (a fan-out server with K messages in flight sends K).
    #[arg(long, default_value_t = 16)]
    pub frames_per_send: usize,
    /// Payload bytes per frame.
    #[arg(long, default_value = "64", value_parser = parse_size)]
    pub size: usize,
    /// Rounds (one send per connection each) unread at most, the one being sent
    /// included; the sender waits for the receiver beyond that.
    #[arg(long, default_value_t = 2)]
    pub rounds_in_flight: u64,
    /// How the receiver waits: `sleep` in epoll like a client, or `busy` polling.
    #[arg(long, value_enum, default_value_t = ReceiverMode::Sleep)]
    pub receiver: ReceiverMode,
    /// Sending before the measurement starts.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Measured sending (more than 0). A round under way when it ends still finishes,
    /// so rounds of many large frames overshoot it.
    #[arg(long, default_value = "4s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Pin the sender thread to this CPU.
    #[arg(long)]
    pub sender_cpu: Option<usize>,
    /// Pin the receiver thread to this CPU.
    #[arg(long)]
    pub receiver_cpu: Option<usize>,
    /// Client source addresses, e.g. 127.0.0.1-127.0.0.16.
    #[arg(long, default_value = "127.0.0.1-127.0.0.16", value_parser = parse_src_ips)]
    pub src_ips: SrcIps,
}

/// How the `floor` receiver waits for data.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiverMode {
    /// Block in epoll_pwait2 when nothing is readable (a client's loop).
    Sleep,
    /// Poll with a zero timeout, never sleeping.
    Busy,
}

/// Options shared by every workload.
#[derive(Args, Debug, Clone)]
pub struct CommonArgs {
    /// Target URL, ws:// or wss://, e.g. ws://127.0.0.1:9001/ws/bench. Repeat the flag
    /// or give a comma list for several nodes: connection i goes to URL i mod N (fanout:
    /// subscribers and publishers round-robin, with a per-node report). Several URLs
    /// must all be ws://, or all wss:// with one host name.
    #[arg(long = "url", value_parser = parse_url, value_delimiter = ',', required = true)]
    pub urls: Vec<WsUrl>,
    /// wss:// only (and required there): PEM file with the CA certificate(s) to trust,
    /// or the server's self-signed certificate. The URL's host is the name verified.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Generator threads, one epoll loop each [default: available parallelism].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Pin generator threads to these CPUs, e.g. "1" or "0-3" or "1,3" (thread i gets
    /// entry i modulo the list length).
    #[arg(long, value_parser = parse_cpu_list)]
    pub pin_cpu: Option<CpuList>,
    /// Source addresses to spread connections over, e.g. 127.0.0.1-127.0.0.16.
    #[arg(long, default_value = "127.0.0.1", value_parser = parse_src_ips)]
    pub src_ips: SrcIps,
    /// New connections per second over all threads (0 = as fast as possible).
    #[arg(long, default_value_t = 0)]
    pub connect_rate: u64,
    /// Handshakes in progress per thread at most (bounds SYN bursts).
    #[arg(long, default_value_t = 256)]
    pub max_pending: usize,
    /// Give up on a connection whose TCP connect + upgrade takes longer than this.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// Server process id: sample its RSS and fd count from /proc.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Write the full report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Hard limit on the whole run; the run stops and reports when it passes
    /// [default: 60s, or duration + 30s when --duration is given].
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Plain progress lines even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
}

/// `fanout` options.
#[derive(Args, Debug, Clone)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Subscriber connections (they only receive).
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,
    /// Publisher connections (they send; what they receive is drained and ignored).
    /// With several --url, raised to one per URL if lower.
    #[arg(long, default_value_t = 1)]
    pub publishers: usize,
    /// Several --url that are independent servers (no cluster between them): a
    /// subscriber expects only the messages published on its own node, so the loss
    /// check, the closed loop and the drain count per node.
    #[arg(long)]
    pub independent_nodes: bool,
    /// Publish rate in messages/s over all publishers; 0 = closed loop (see --in-flight).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Closed loop only: messages outstanding at once (a new publish when one has reached
    /// every subscriber).
    #[arg(long, default_value_t = 1)]
    pub in_flight: u64,
    /// Total messages to publish (over all publishers).
    #[arg(long, conflicts_with = "duration")]
    pub messages: Option<u64>,
    /// Publish for this long instead of a fixed message count.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Message size in bytes (at least 16: sequence number + timestamp).
    #[arg(long, default_value = "64", value_parser = parse_size)]
    pub size: usize,
    /// Offer permessage-deflate (RFC 7692) on every connection and inflate what comes
    /// compressed; message bodies after the 16-byte header are JSON-like text then, so
    /// they compress like real traffic (not zeros).
    #[arg(long)]
    pub deflate: bool,
    /// Pause between "everyone connected" and the first publish, so the server has
    /// finished room joins.
    #[arg(long, default_value = "50ms", value_parser = parse_duration)]
    pub settle: Duration,
    /// Write an SVG latency-percentile plot here.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// After the drain, keep every connection open (idle) this long before closing; with
    /// --server-pid the server is sampled again at its end (`after_hold`), which shows
    /// the memory a server keeps once a fan-out is over while its clients stay. Added to
    /// the default --timeout. 0 = close at once.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub hold: Duration,
    /// Every second of the publish phase, disconnect this percentage of the subscribers
    /// (round-robin) and resume each with `?since=<last room sequence seen>`; needs a
    /// server with `--history`. Subscribers then connect with `?seq=1` and every room
    /// sequence number is checked (loss, duplicates, gap/reset messages). 0 = off.
    #[arg(long, default_value_t = 0.0, value_parser = parse_percent)]
    pub churn: f64,
    /// How churned subscribers disconnect before resuming.
    #[arg(long, value_enum, default_value_t = CloseMode::Mixed)]
    pub churn_close: CloseMode,
    /// Fraction of the subscribers that are slow consumers, `0.1` or `10%` (0 = none).
    /// They are spread evenly: with n = round(F × subscribers), subscriber j (from 0) is
    /// slow when ⌊(j+1)·n/S⌋ > ⌊j·n/S⌋. Their frames are reported apart (`slow` in the
    /// report); the loss check, the latency and the closed loop cover the fast ones.
    #[arg(long, default_value = "0", value_parser = parse_fraction)]
    pub slow_fraction: f64,
    /// How slow subscribers read: `stall` (not at all after the upgrade) or `trickle`
    /// (--slow-read-bytes every --slow-read-interval).
    #[arg(long, value_enum, default_value_t = SlowMode::Stall)]
    pub slow_mode: SlowMode,
    /// `trickle`: bytes each slow subscriber reads per interval (one read(2)).
    #[arg(long, default_value = "512", value_parser = parse_size)]
    pub slow_read_bytes: usize,
    /// `trickle`: time between two reads of a slow subscriber.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub slow_read_interval: Duration,
    /// The server's Prometheus endpoint, e.g. http://127.0.0.1:9100/metrics: every
    /// `*connections_closed_total` and `*frames_dropped_total` is scraped before the
    /// connections open and after the run; the report has the difference by `reason`.
    #[arg(long, value_parser = parse_http_url)]
    pub metrics_url: Option<HttpUrl>,
    /// With --server-pid: sample the server's RSS (`VmRSS`) this often while publishing.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub rss_interval: Duration,
    /// With --server-pid: RSS samples in this first part of the publish phase are the
    /// warm-up; the report compares the RSS at its end with the end of the run and gives
    /// the maximum after it.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub rss_warmup: Duration,
    /// How subscribers receive the room. `ws`: WebSocket upgrade on the --url path.
    /// `sse`: Server-Sent Events — each subscriber sends `GET /sse/{room}` where --url is
    /// ws://HOST:PORT/ws/{room} (query kept; wss:// gives SSE over TLS) and reads the
    /// chunked event stream; a binary message arrives as `event: binary` with base64 data,
    /// which is decoded before the usual order, loss and latency checks. Publishers stay
    /// WebSocket clients on --url. Not with --deflate or --churn.
    #[arg(long, value_enum, default_value_t = Transport::Ws)]
    pub transport: Transport,
}

/// How `fanout` subscribers receive (`--transport`).
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// WebSocket (the --url as given).
    Ws,
    /// Server-Sent Events on /sse/{room} (the --url path /ws/{room} mapped).
    Sse,
}

/// The SSE path for a WebSocket room path: `/ws/{room}[?query]` → `/sse/{room}[?query]`;
/// an error naming the path when it is not `/ws/` followed by a room name.
pub fn sse_path(ws_path: &str) -> Result<String, String> {
    match ws_path.strip_prefix("/ws/") {
        Some(rest) if !rest.is_empty() && !rest.starts_with(['?', '#', '/']) => {
            Ok(format!("/sse/{rest}"))
        }
        _ => Err(format!(
            "--transport sse: the --url path must be /ws/{{room}} (subscribers then use \
             /sse/{{room}}), not {ws_path}"
        )),
    }
}

/// How slow subscribers (`--slow-fraction`) consume.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlowMode {
    /// Stop reading once the upgrade completed: the socket buffers fill, then the
    /// server's queue, and the server applies its slow-consumer policy.
    Stall,
    /// Read `--slow-read-bytes` every `--slow-read-interval` (one read each time).
    Trickle,
}

/// Parses a fraction in 0..=1 (`0.1`) or a percentage (`10%`).
pub fn parse_fraction(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let v = match t.strip_suffix('%') {
        Some(p) => parse_percent(p)? / 100.0,
        None => t.parse::<f64>().map_err(|_| format!("{s}: not a number"))?,
    };
    if !v.is_finite() || !(0.0..=1.0).contains(&v) {
        return Err(format!("{s}: must be between 0 and 1 (or 0% and 100%)"));
    }
    Ok(v)
}

/// A parsed `http://host:port/path` URL (plain HTTP/1.1, e.g. a metrics endpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// Resolved address (IPv4).
    pub addr: SocketAddr,
    /// `Host` header value (as written in the URL).
    pub host: String,
    /// Request path including any query.
    pub path: String,
}

impl std::fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.host, self.path)
    }
}

/// Parses an `http://` URL; the host must resolve to an IPv4 address (port 80 if none).
pub fn parse_http_url(s: &str) -> Result<HttpUrl, String> {
    let rest = s
        .strip_prefix("http://")
        .ok_or_else(|| format!("{s}: only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.starts_with(':') {
        return Err(format!("{s}: missing host"));
    }
    let with_port = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| format!("{s}: {e}"))?
        .find(|a| a.is_ipv4())
        .ok_or_else(|| format!("{s}: host has no IPv4 address"))?;
    Ok(HttpUrl {
        addr,
        host: authority.to_string(),
        path: path.to_string(),
    })
}

/// Parses a percentage in 0..=100 (fractions allowed).
pub fn parse_percent(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("{s}: not a number"))?;
    if !v.is_finite() || !(0.0..=100.0).contains(&v) {
        return Err(format!("{s}: must be between 0 and 100"));
    }
    Ok(v)
}

/// How `connect` closes its connections.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseMode {
    /// WebSocket close handshake (send close, wait for the server's close).
    Clean,
    /// TCP reset: SO_LINGER 0, then close.
    Reset,
    /// close() without a close frame (FIN only): the peer just disappears.
    Vanish,
    /// Rotate clean / reset / vanish per connection.
    Mixed,
}

/// `connect` options.
#[derive(Args, Debug, Clone)]
pub struct ConnectArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Connections opened per cycle.
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// Open/close cycles.
    #[arg(long, default_value_t = 1)]
    pub cycles: u32,
    /// How connections are closed.
    #[arg(long, value_enum, default_value_t = CloseMode::Clean)]
    pub close_mode: CloseMode,
    /// Keep the last cycle's connections open this long before closing (idle RSS).
    #[arg(long, value_parser = parse_duration)]
    pub hold: Option<Duration>,
    /// Wait this long after closing before sampling the server (lets it reap sockets).
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    pub settle: Duration,
}

/// `echo` options.
#[derive(Args, Debug, Clone)]
pub struct EchoArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Client connections.
    #[arg(long, default_value_t = 100)]
    pub connections: usize,
    /// Messages per connection.
    #[arg(long, default_value_t = 1000)]
    pub messages: u64,
    /// Messages outstanding per connection.
    #[arg(long, default_value_t = 1)]
    pub in_flight: u64,
    /// Message size in bytes (at least 16).
    #[arg(long, default_value = "64", value_parser = parse_size)]
    pub size: usize,
    /// Write an SVG latency-percentile plot here.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

/// `cert` options.
#[derive(Args, Debug, Clone)]
pub struct CertArgs {
    /// Directory to write cert.pem and key.pem to (created if missing; existing files
    /// are replaced).
    #[arg(long, value_name = "DIR")]
    pub out_dir: PathBuf,
    /// Subject alternative name: an IP address or a DNS name (repeatable)
    /// [default: 127.0.0.1 and localhost].
    #[arg(long = "san", value_name = "NAME")]
    pub sans: Vec<String>,
}

/// A parsed `ws://host:port/path` or `wss://host:port/path` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUrl {
    /// Resolved server address.
    pub addr: SocketAddr,
    /// `Host` header value (as written in the URL).
    pub host: String,
    /// Request path including any query.
    pub path: String,
    /// `wss://`: TLS, with [`WsUrl::server_name`] as the name to verify.
    pub tls: bool,
    /// The host without its port (the TLS server name: an IP address or a DNS name).
    pub server_name: String,
}

/// Parses a `ws://` or `wss://` URL; the host must resolve to an IPv4 address.
pub fn parse_url(s: &str) -> Result<WsUrl, String> {
    let (rest, tls) = if let Some(r) = s.strip_prefix("ws://") {
        (r, false)
    } else if let Some(r) = s.strip_prefix("wss://") {
        (r, true)
    } else {
        return Err(format!("{s}: only ws:// and wss:// URLs are supported"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(format!("{s}: missing host"));
    }
    let (server_name, with_port) = match authority.rsplit_once(':') {
        Some((h, _)) => (h, authority.to_string()),
        None => (
            authority,
            format!("{authority}:{}", if tls { 443 } else { 80 }),
        ),
    };
    if server_name.is_empty() {
        return Err(format!("{s}: missing host"));
    }
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| format!("{s}: {e}"))?
        .find(|a| a.is_ipv4())
        .ok_or_else(|| format!("{s}: host has no IPv4 address"))?;
    Ok(WsUrl {
        addr,
        host: authority.to_string(),
        path: path.to_string(),
        tls,
        server_name: server_name.to_string(),
    })
}

/// Source addresses to bind outgoing sockets to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrcIps(pub Vec<Ipv4Addr>);

/// Most source addresses accepted (a /16).
pub const MAX_SRC_IPS: usize = 65_536;

/// Parses `A-B` (inclusive range), `A,B,C`, or a single address; items may be mixed.
pub fn parse_src_ips(s: &str) -> Result<SrcIps, String> {
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        if let Some((a, b)) = item.split_once('-') {
            let a: Ipv4Addr = a.trim().parse().map_err(|e| format!("{item}: {e}"))?;
            let b: Ipv4Addr = b.trim().parse().map_err(|e| format!("{item}: {e}"))?;
            let (lo, hi) = (u32::from(a), u32::from(b));
            if hi < lo {
                return Err(format!("{item}: range end is below its start"));
            }
            if (hi - lo) as usize >= MAX_SRC_IPS {
                return Err(format!("{item}: more than {MAX_SRC_IPS} addresses"));
            }
            out.extend((lo..=hi).map(Ipv4Addr::from));
        } else {
            out.push(item.parse().map_err(|e| format!("{item}: {e}"))?);
        }
        if out.len() > MAX_SRC_IPS {
            return Err(format!("more than {MAX_SRC_IPS} source addresses"));
        }
    }
    if out.is_empty() {
        return Err("no source address given".into());
    }
    Ok(SrcIps(out))
}

/// CPUs to pin generator threads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuList(pub Vec<usize>);

/// Parses `1`, `0-3`, `1,3,5-6`.
pub fn parse_cpu_list(s: &str) -> Result<CpuList, String> {
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let num = |x: &str| {
            x.trim()
                .parse::<usize>()
                .map_err(|e| format!("{item}: {e}"))
        };
        if let Some((a, b)) = item.split_once('-') {
            let (a, b) = (num(a)?, num(b)?);
            if b < a || b - a > 4096 {
                return Err(format!("{item}: bad CPU range"));
            }
            out.extend(a..=b);
        } else {
            out.push(num(item)?);
        }
    }
    if out.is_empty() {
        return Err("empty CPU list".into());
    }
    Ok(CpuList(out))
}

/// Parses `10s`, `500ms`, `2m`, `1.5s`, `250us` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let v: f64 = num.parse().map_err(|_| format!("{s}: not a duration"))?;
    let secs = match unit.trim() {
        "" | "s" => v,
        "ms" => v / 1e3,
        "us" => v / 1e6,
        "m" | "min" => v * 60.0,
        "h" => v * 3600.0,
        u => return Err(format!("{s}: unknown unit {u:?} (use us, ms, s, m, h)")),
    };
    if !secs.is_finite() || !(0.0..=1e7).contains(&secs) {
        return Err(format!("{s}: out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses a byte size: `64`, `1k`/`1KiB` (1024), `2m`/`2MiB`.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let v: usize = num.parse().map_err(|_| format!("{s}: not a size"))?;
    let mul = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        u => return Err(format!("{s}: unknown unit {u:?}")),
    };
    v.checked_mul(mul).ok_or_else(|| format!("{s}: too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_paths_map_from_ws_room_paths() {
        assert_eq!(sse_path("/ws/bench").unwrap(), "/sse/bench");
        assert_eq!(sse_path("/ws/a%20b?token=t").unwrap(), "/sse/a%20b?token=t");
        for bad in ["/", "/ws/", "/ws/?x=1", "/echo", "/wsroom"] {
            assert!(sse_path(bad).unwrap_err().contains("/ws/{room}"), "{bad}");
        }
    }

    #[test]
    fn src_ip_range() {
        let r = parse_src_ips("127.0.0.1-127.0.0.16").unwrap();
        assert_eq!(r.0.len(), 16);
        assert_eq!(r.0[0], Ipv4Addr::new(127, 0, 0, 1));
        assert_eq!(r.0[15], Ipv4Addr::new(127, 0, 0, 16));
        let r = parse_src_ips("127.0.0.255-127.0.1.1").unwrap();
        assert_eq!(r.0.len(), 3, "ranges cross octet boundaries");
        let r = parse_src_ips("127.0.0.1, 127.0.0.9-127.0.0.10").unwrap();
        assert_eq!(
            r.0,
            vec![
                Ipv4Addr::new(127, 0, 0, 1),
                Ipv4Addr::new(127, 0, 0, 9),
                Ipv4Addr::new(127, 0, 0, 10)
            ]
        );
        assert_eq!(parse_src_ips("10.0.0.7").unwrap().0.len(), 1);
    }

    #[test]
    fn src_ip_errors() {
        assert!(parse_src_ips("127.0.0.5-127.0.0.1").is_err());
        assert!(parse_src_ips("127.0.0.1-").is_err());
        assert!(parse_src_ips("nope").is_err());
        assert!(parse_src_ips("").is_err());
        assert!(parse_src_ips("10.0.0.0-10.2.0.0").is_err());
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("1").unwrap().0, vec![1]);
        assert_eq!(parse_cpu_list("0-2,5").unwrap().0, vec![0, 1, 2, 5]);
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("x").is_err());
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("5").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("3 weeks").is_err());
        assert_eq!(parse_size("64").unwrap(), 64);
        assert_eq!(parse_size("1KiB").unwrap(), 1024);
        assert_eq!(parse_size("2k").unwrap(), 2048);
        assert!(parse_size("1q").is_err());
    }

    #[test]
    fn urls() {
        let u = parse_url("ws://127.0.0.1:9001/ws/bench").unwrap();
        assert_eq!(u.addr, "127.0.0.1:9001".parse().unwrap());
        assert_eq!(u.host, "127.0.0.1:9001");
        assert_eq!(u.path, "/ws/bench");
        assert_eq!(u.server_name, "127.0.0.1");
        assert!(!u.tls);
        let u = parse_url("ws://127.0.0.1:9001").unwrap();
        assert_eq!(u.path, "/");
        let u = parse_url("wss://localhost:9443/echo?x=1").unwrap();
        assert!(u.tls);
        assert_eq!(u.addr, "127.0.0.1:9443".parse().unwrap());
        assert_eq!(
            (u.host.as_str(), u.path.as_str()),
            ("localhost:9443", "/echo?x=1")
        );
        assert_eq!(u.server_name, "localhost");
        assert_eq!(parse_url("wss://127.0.0.1/").unwrap().addr.port(), 443);
        assert_eq!(parse_url("ws://127.0.0.1/").unwrap().addr.port(), 80);
        assert!(parse_url("http://x/").is_err());
        assert!(parse_url("wss://:9001/").is_err());
    }

    #[test]
    fn cli_parses_slow_subscribers_and_metrics_url() {
        let cli = Cli::try_parse_from([
            "ringcast-load",
            "fanout",
            "--url",
            "ws://127.0.0.1:9001/ws/bench",
            "--slow-fraction",
            "10%",
            "--slow-mode",
            "trickle",
            "--slow-read-bytes",
            "1KiB",
            "--slow-read-interval",
            "250ms",
            "--metrics-url",
            "http://127.0.0.1:9100/metrics",
            "--rss-interval",
            "5s",
            "--rss-warmup",
            "30s",
        ])
        .unwrap();
        let Command::Fanout(f) = cli.cmd else {
            panic!("not fanout")
        };
        assert!((f.slow_fraction - 0.1).abs() < 1e-12);
        assert_eq!(f.slow_mode, SlowMode::Trickle);
        assert_eq!(f.slow_read_bytes, 1024);
        assert_eq!(f.slow_read_interval, Duration::from_millis(250));
        let m = f.metrics_url.unwrap();
        assert_eq!(m.addr, "127.0.0.1:9100".parse().unwrap());
        assert_eq!(
            (m.host.as_str(), m.path.as_str()),
            ("127.0.0.1:9100", "/metrics")
        );
        assert_eq!(m.to_string(), "http://127.0.0.1:9100/metrics");
        assert_eq!(
            (f.rss_interval, f.rss_warmup),
            (Duration::from_secs(5), Duration::from_secs(30))
        );
        assert_eq!(parse_fraction("0.25").unwrap(), 0.25);
        assert_eq!(parse_fraction("0").unwrap(), 0.0);
        assert!(parse_fraction("1.5").is_err() && parse_fraction("-0.1").is_err());
        assert!(parse_fraction("120%").is_err() && parse_fraction("x").is_err());
        assert_eq!(parse_http_url("http://127.0.0.1").unwrap().addr.port(), 80);
        assert_eq!(parse_http_url("http://127.0.0.1:1").unwrap().path, "/");
        assert!(parse_http_url("ws://127.0.0.1:1/").is_err());
        assert!(parse_http_url("http://:9100/").is_err());
    }

    #[test]
    fn cli_parses_tls_options_and_cert() {
        let cli = Cli::try_parse_from([
            "ringcast-load",
            "echo",
            "--url",
            "wss://127.0.0.1:9443/echo",
            "--tls-ca",
            "/tmp/ca.pem",
        ])
        .unwrap();
        let Command::Echo(e) = cli.cmd else {
            panic!("not echo")
        };
        assert!(e.common.urls[0].tls);
        assert_eq!(e.common.tls_ca, Some(PathBuf::from("/tmp/ca.pem")));
        let cli = Cli::try_parse_from([
            "ringcast-load",
            "cert",
            "--out-dir",
            "d",
            "--san",
            "10.0.0.1",
            "--san",
            "bench.local",
        ])
        .unwrap();
        let Command::Cert(c) = cli.cmd else {
            panic!("not cert")
        };
        assert_eq!(c.out_dir, PathBuf::from("d"));
        assert_eq!(c.sans, ["10.0.0.1", "bench.local"]);
        assert!(Cli::try_parse_from(["ringcast-load", "cert"]).is_err());
    }

    #[test]
    fn several_urls_repeated_or_comma_separated() {
        let parse = |args: &[&str]| {
            let mut v = vec!["ringcast-load", "fanout"];
            v.extend_from_slice(args);
            match Cli::try_parse_from(v).map(|c| c.cmd) {
                Ok(Command::Fanout(f)) => Ok(f.common.urls),
                Ok(_) => panic!("not fanout"),
                Err(e) => Err(e),
            }
        };
        let hosts = |u: Vec<WsUrl>| u.into_iter().map(|u| u.host).collect::<Vec<_>>();
        let one = parse(&["--url", "ws://127.0.0.1:1/ws/a"]).unwrap();
        assert_eq!(hosts(one), ["127.0.0.1:1"]);
        let repeated = parse(&["--url", "ws://127.0.0.1:1/a", "--url", "ws://127.0.0.1:2/a"]);
        assert_eq!(hosts(repeated.unwrap()), ["127.0.0.1:1", "127.0.0.1:2"]);
        let comma = parse(&[
            "--url",
            "ws://127.0.0.1:1/a,ws://127.0.0.1:2/a,ws://127.0.0.1:3/a",
        ]);
        assert_eq!(
            hosts(comma.unwrap()),
            ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]
        );
        assert!(parse(&[]).is_err(), "--url is required");
        assert!(parse(&["--url", "ws://127.0.0.1:1/a,http://x/"]).is_err());
    }

    #[test]
    fn cli_parses_fanout() {
        let cli = Cli::try_parse_from([
            "ringcast-load",
            "fanout",
            "--url",
            "ws://127.0.0.1:9001/ws/bench",
            "--subscribers",
            "10",
            "--messages",
            "5",
            "--src-ips",
            "127.0.0.1-127.0.0.4",
        ])
        .unwrap();
        let Command::Fanout(f) = cli.cmd else {
            panic!("not fanout")
        };
        assert_eq!(f.subscribers, 10);
        assert_eq!(f.messages, Some(5));
        assert_eq!(f.common.src_ips.0.len(), 4);
        assert_eq!(f.churn, 0.0);
        assert_eq!(f.churn_close, CloseMode::Mixed);
        let cli = Cli::try_parse_from([
            "ringcast-load",
            "fanout",
            "--url",
            "ws://127.0.0.1:9001/ws/bench",
            "--churn",
            "2.5",
            "--churn-close",
            "reset",
        ])
        .unwrap();
        let Command::Fanout(f) = cli.cmd else {
            panic!("not fanout")
        };
        assert_eq!((f.churn, f.churn_close), (2.5, CloseMode::Reset));
        assert_eq!(f.slow_fraction, 0.0);
        assert_eq!(f.slow_mode, SlowMode::Stall);
        assert_eq!(f.slow_read_bytes, 512);
        assert_eq!(f.slow_read_interval, Duration::from_secs(1));
        assert!(f.metrics_url.is_none());
        assert_eq!(parse_percent("10%").unwrap(), 10.0);
        assert!(parse_percent("101").is_err() && parse_percent("-1").is_err());
        assert!(parse_percent("x").is_err());
        assert!(Cli::try_parse_from([
            "ringcast-load",
            "fanout",
            "--url",
            "ws://127.0.0.1:1/",
            "--messages",
            "5",
            "--duration",
            "1s"
        ])
        .is_err());
    }
}

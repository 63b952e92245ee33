//! Command-line interface: clap definitions and their translation into a [`Config`].
//! [`sources`] adds the other places a setting can come from (`RINGCAST_*` variables,
//! a TOML file) and `--print-config`.

pub mod sources;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::app::{RoomAccess, Token};
use crate::config::{
    BrokerConfig, Config, ConnLimits, DeflateConfig, DriverConfig, HistoryConfig, Origin,
    OriginPolicy, QueueLimits, SessionConfig, ShardConfig, Timeouts,
};
use crate::conn::SlowPolicy;
use crate::driver::tls::TlsConfig;
use crate::driver::BackendChoice;

#[derive(Debug, Parser)]
#[command(
    name = "ringcast",
    version,
    about = "io_uring thread-per-core WebSocket fan-out server"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve `/ws/{room}` (WebSocket: join and publish), `/sse/{room}` (Server-Sent
    /// Events: receive), `POST /publish/{room}` (HTTP publish) and `/echo`.
    Serve(ServeArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// A feature switch (`--deflate off|on`).
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Switch {
    Off,
    On,
}

/// Parse a duration like `5s`, `250ms`, `2m`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, "s"), |i| (&s[..i], &s[i..]));
    let value: f64 = num.parse().map_err(|_| format!("not a duration: {s:?}"))?;
    let secs = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("unknown unit in {s:?} (use ms, s or m)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| e.to_string())
}

/// The longest value of a timeout, interval, grace period, linger or TTL flag, in
/// minutes ([`crate::config::MAX_DURATION`], which `Config::validate` also checks for
/// library users; here the flag's parser refuses it early, naming the value's source).
pub const MAX_DURATION_MINUTES: u64 = crate::config::MAX_DURATION.as_secs() / 60;

/// The longest `--sse-retry`, in minutes ([`crate::config::MAX_SSE_RETRY`]).
pub const MAX_SSE_RETRY_MINUTES: u64 = crate::config::MAX_SSE_RETRY.as_secs() / 60;

/// A value parser for a duration flag ([`parse_duration`]) of at most `max_minutes`
/// minutes; a longer value is refused with the maximum named.
pub fn duration_up_to(
    max_minutes: u64,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    move |s| {
        let d = parse_duration(s)?;
        if d > Duration::from_secs(max_minutes * 60) {
            return Err(format!(
                "{s:?} is longer than the maximum, {max_minutes}m ({} h)",
                max_minutes / 60
            ));
        }
        Ok(d)
    }
}

/// A value parser for a flag that takes one of `all`, by name, each listed in `--help`
/// with its one-line description. (The core's enums stay free of clap: the CLI names
/// their values here.)
pub fn choice<T: Copy + Send + Sync + 'static>(
    all: &'static [T],
    name: fn(T) -> &'static str,
    about: fn(T) -> &'static str,
) -> impl clap::builder::TypedValueParser<Value = T> {
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser as _};
    PossibleValuesParser::new(
        all.iter()
            .map(|&v| PossibleValue::new(name(v)).help(about(v))),
    )
    .map(move |s| {
        *all.iter()
            .find(|&&v| name(v) == s)
            .expect("PossibleValuesParser admits listed names only")
    })
}

/// Parse a size like `16MiB`, `64KiB`, `1024`.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, ""), |i| (&s[..i], &s[i..]));
    let value: usize = num.parse().map_err(|_| format!("not a size: {s:?}"))?;
    let mult = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("unknown unit in {s:?} (use B, KiB, MiB, GiB)")),
    };
    value
        .checked_mul(mult)
        .ok_or_else(|| format!("size too large: {s:?}"))
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Read settings from this TOML file (sections per layer, keys named as the flags;
    /// flags and RINGCAST_* variables win over it). See `--print-config`.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Print the effective configuration as TOML (secrets left out) and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Address to listen on (every shard binds it with SO_REUSEPORT).
    #[arg(long, default_value = "127.0.0.1:9001")]
    pub addr: SocketAddr,
    /// Shards (threads); default: the CPUs this process may use.
    #[arg(long)]
    pub threads: Option<usize>,
    /// I/O backend.
    #[arg(long, value_parser = choice(&BackendChoice::ALL, BackendChoice::as_str, BackendChoice::about), default_value = "auto")]
    pub backend: BackendChoice,
    /// Do not pin shard threads to CPUs.
    #[arg(long)]
    pub no_pin: bool,
    /// Largest message accepted (all fragments); over it the peer gets close 1009.
    #[arg(long, value_parser = parse_size, default_value = "16MiB")]
    pub max_message_size: usize,
    /// Largest HTTP request head accepted; over it the peer gets HTTP 431.
    #[arg(long, value_parser = parse_size, default_value = "8KiB")]
    pub max_head_bytes: usize,
    /// permessage-deflate (RFC 7692): accept clients' offers and compress each room
    /// message once for all of them.
    #[arg(long, value_enum, default_value_t = Switch::On)]
    pub deflate: Switch,
    /// Messages shorter than this go uncompressed even to clients that negotiated
    /// permessage-deflate.
    #[arg(long, value_parser = parse_size, default_value = "64B")]
    pub deflate_min_size: usize,
    /// Do not send a publisher its own messages (rooms app).
    #[arg(long)]
    pub exclude_sender: bool,
    /// Close a connection whose request (head, or a publish's body) is not in within
    /// this; one that sent part of a request gets HTTP 408 first. At most 24 h.
    #[arg(long, value_parser = duration_up_to(MAX_DURATION_MINUTES), default_value = "5s")]
    pub handshake_timeout: Duration,
    /// After our close frame, wait this long for the peer to finish closing (at most
    /// 24 h).
    #[arg(long, value_parser = duration_up_to(MAX_DURATION_MINUTES), default_value = "2s")]
    pub close_timeout: Duration,
    /// On SIGINT/SIGTERM, give connections this long to flush (at most 24 h).
    #[arg(long, value_parser = duration_up_to(MAX_DURATION_MINUTES), default_value = "5s")]
    pub shutdown_timeout: Duration,
    /// Send a ping after this long without one (0 disables heartbeats; at most 24 h).
    #[arg(long, value_parser = duration_up_to(MAX_DURATION_MINUTES), default_value = "30s")]
    pub ping_interval: Duration,
    /// SSE streams: the reconnection time sent first (`retry:`), for the client to wait
    /// before reconnecting after the stream ends. At most 1 h.
    #[arg(long, value_parser = duration_up_to(MAX_SSE_RETRY_MINUTES), default_value = "1s")]
    pub sse_retry: Duration,
    /// After a ping, close a connection that sends no frame at all within this (an SSE
    /// stream: whose heartbeat is still unwritten then). At most 24 h.
    #[arg(long, value_parser = duration_up_to(MAX_DURATION_MINUTES), default_value = "10s")]
    pub pong_timeout: Duration,
    /// Cap on a connection's unsent bytes; over it --slow-policy applies.
    #[arg(long, value_parser = parse_size, default_value = "1MiB")]
    pub max_queue_bytes: usize,
    /// What to do with a connection over --max-queue-bytes.
    #[arg(long, value_parser = choice(&SlowPolicy::ALL, SlowPolicy::as_str, SlowPolicy::about), default_value = "close")]
    pub slow_policy: SlowPolicy,
    /// SO_SNDBUF of accepted sockets (default: kernel autotuning). Bounds the kernel
    /// memory a slow consumer can hold beyond --max-queue-bytes.
    #[arg(long, value_parser = parse_size)]
    pub socket_send_buffer: Option<usize>,
    /// Most connections (and detached sessions) at once across all shards (0 = unlimited); over it: HTTP 503.
    #[arg(long, default_value_t = 0)]
    pub max_connections: usize,
    /// Include peer addresses in logs (off: they are personal data).
    #[arg(long)]
    pub log_peer_addr: bool,
    /// Prometheus endpoint and dashboard address, or `off`. Must not overlap `--addr`.
    #[arg(long, default_value = "127.0.0.1:9100")]
    pub metrics_addr: String,
    /// Prefix of every metric name.
    #[arg(long, default_value = "ringcast")]
    pub metrics_prefix: String,
    /// Constant label `name=value` added to every metric (repeatable).
    #[arg(long = "metrics-label")]
    pub metrics_labels: Vec<String>,
    /// listen(2) backlog per shard (1 or more; the kernel caps it at somaxconn).
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(i32).range(1..))]
    pub backlog: i32,
    /// io_uring submission queue size per shard.
    #[arg(long, default_value_t = 4096)]
    pub uring_entries: u32,
    /// io_uring provided receive buffers per shard (power of two).
    #[arg(long, default_value_t = 1024)]
    pub recv_buffers: u16,
    /// Size of each receive buffer.
    #[arg(long, value_parser = parse_size, default_value = "4KiB")]
    pub recv_buffer_size: usize,
    /// Messages kept per room so clients can resume with `?since=SEQ` (0 = off).
    #[arg(long, default_value_t = 0)]
    pub history: usize,
    /// Most bytes kept per room's history.
    #[arg(long, value_parser = parse_size, default_value = "256KiB")]
    pub history_bytes: usize,
    /// Drop a room's history after this long with no members and no publishes (at most
    /// 24 h).
    #[arg(long, value_parser = duration_up_to(MAX_DURATION_MINUTES), default_value = "5m")]
    pub history_ttl: Duration,
    /// Keep a session this long after its socket is lost, for the client to resume with
    /// its token (0 = sessions off; at most 24 h).
    #[arg(long, value_parser = duration_up_to(MAX_DURATION_MINUTES), default_value = "0")]
    pub session_grace: Duration,
    /// Most bytes a detached session buffers; over it the oldest messages are dropped
    /// and the resume reports how many.
    #[arg(long, value_parser = parse_size, default_value = "256KiB")]
    pub session_buffer_bytes: usize,
    /// Most detached sessions the server holds (each shard its share, rounded up); over
    /// it a shard ends its oldest detached session early (`session_evicted`).
    #[arg(long, default_value_t = 10_000)]
    pub session_max_detached: usize,
    /// Allow upgrades whose `Origin` is ORIGIN (`scheme://host[:port]`; repeatable).
    /// Default: any origin. Others get HTTP 403.
    #[arg(long = "allowed-origin", value_name = "ORIGIN", value_parser = parse_origin)]
    pub allowed_origins: Vec<Origin>,
    /// Refuse (HTTP 403) upgrades that carry no `Origin` header (non-browser clients).
    #[arg(long)]
    pub require_origin: bool,
    /// Rooms app: only connections presenting TOKEN (`Authorization: Bearer` or
    /// `?token=`) may publish; others may subscribe only.
    #[arg(long, value_name = "TOKEN", value_parser = Token::parse, conflicts_with = "publish_token_file")]
    pub publish_token: Option<Token>,
    /// Like --publish-token, read from a file (surrounding whitespace trimmed).
    #[arg(long, value_name = "PATH", value_parser = Token::from_file)]
    pub publish_token_file: Option<Token>,
    /// Rooms app: upgrades without a token get HTTP 401 (a wrong token: 403). The
    /// publish token is accepted too.
    #[arg(long, value_name = "TOKEN", value_parser = Token::parse, conflicts_with = "subscribe_token_file")]
    pub subscribe_token: Option<Token>,
    /// Like --subscribe-token, read from a file (surrounding whitespace trimmed).
    #[arg(long, value_name = "PATH", value_parser = Token::from_file)]
    pub subscribe_token_file: Option<Token>,
    /// Serve wss://: the PEM certificate chain (leaf first). Needs --tls-key and a
    /// build with the `tls` cargo feature (`make run` and `make release` have it).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key (PKCS#8, PKCS#1 or SEC1) for --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Cluster mode: share rooms with every node using this Redis (or Valkey),
    /// `redis://HOST:PORT[/DB]`, or this Redis Cluster (sharded pub/sub, Redis 7),
    /// `redis+cluster://HOST:PORT[,HOST:PORT...]`. Needs the `redis` cargo feature
    /// (`make run` has it).
    #[arg(long, value_name = "URL", value_parser = parse_broker_url)]
    pub broker: Option<String>,
    /// First part of every Redis channel and key name; nodes with the same prefix share
    /// rooms.
    #[arg(long, default_value = "ringcast")]
    pub broker_prefix: String,
    /// This node's id in logs, metrics and messages (default: hostname:port).
    #[arg(long)]
    pub node_id: Option<String>,
    /// Keep a room subscribed this long after this node's last member left (at most
    /// 24 h).
    #[arg(long, value_parser = duration_up_to(MAX_DURATION_MINUTES), default_value = "2s")]
    pub broker_linger: Duration,
    /// Most publishes waiting for the broker thread; over it a publish fails at once.
    #[arg(long, default_value_t = 65536)]
    pub broker_queue: usize,
    /// Log level filter: LEVEL or TARGET=LEVEL, comma-separated (e.g. info, debug,
    /// warn,ringcast=trace); LEVEL is one of off, error, warn, info, debug, trace.
    #[arg(long, default_value = "info", value_parser = parse_log_level)]
    pub log_level: String,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Export lifecycle spans over OTLP/HTTP (protobuf) to this collector, e.g.
    /// http://127.0.0.1:4318 (`/v1/traces` is appended). Needs the `otel` cargo feature.
    #[arg(long, value_name = "URL", value_parser = crate::telemetry::parse_endpoint)]
    pub otlp_endpoint: Option<String>,
}

impl ServeArgs {
    pub fn to_config(&self) -> Config {
        let defaults = Config::default();
        Config {
            addr: self.addr,
            threads: self.threads.unwrap_or(defaults.threads),
            pin_threads: !self.no_pin,
            backend: self.backend,
            backlog: self.backlog,
            max_connections: self.max_connections,
            shard: ShardConfig {
                limits: ConnLimits {
                    max_head_bytes: self.max_head_bytes,
                    max_message_size: self.max_message_size,
                },
                queue: QueueLimits {
                    max_bytes: self.max_queue_bytes,
                    policy: self.slow_policy,
                },
                timeouts: Timeouts {
                    handshake: self.handshake_timeout,
                    close: self.close_timeout,
                    ping_interval: self.ping_interval,
                    pong: self.pong_timeout,
                },
                shutdown_timeout: self.shutdown_timeout,
                sse_retry: self.sse_retry,
                origins: OriginPolicy {
                    allowed: self.allowed_origins.clone(),
                    require: self.require_origin,
                },
                log_peer_addr: self.log_peer_addr,
                deflate: DeflateConfig {
                    enabled: self.deflate == Switch::On,
                    min_size: self.deflate_min_size,
                },
                sessions: SessionConfig {
                    grace: self.session_grace,
                    buffer_bytes: self.session_buffer_bytes,
                    max_detached: self.session_max_detached,
                },
            },
            history: (self.history > 0).then_some(HistoryConfig {
                max_frames: self.history,
                max_bytes: self.history_bytes,
                ttl: self.history_ttl,
            }),
            driver: DriverConfig {
                uring_entries: self.uring_entries,
                recv_buffers: self.recv_buffers,
                recv_buffer_size: self.recv_buffer_size,
                socket_send_buffer: self.socket_send_buffer,
                tls: None,
            },
            broker: self.broker.as_ref().map(|url| BrokerConfig {
                url: url.clone(),
                prefix: self.broker_prefix.clone(),
                node_id: self.node_id.clone(),
                linger: self.broker_linger,
                queue: self.broker_queue,
            }),
        }
    }

    /// The TLS configuration `--tls-cert`/`--tls-key` name, loaded (None: plain ws://).
    pub fn tls_config(&self) -> Result<Option<TlsConfig>, String> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => TlsConfig::from_pem_files(cert, key).map(Some),
            _ => Ok(None),
        }
    }

    /// The checks on these flags that [`Config::validate`] does not make, each error
    /// naming its flag: `--metrics-addr` (see [`ServeArgs::metrics_socket_addr`]) and,
    /// when metrics are on, `--metrics-prefix` and every `--metrics-label`.
    pub fn check(&self) -> Result<(), String> {
        if self.metrics_socket_addr()?.is_some() {
            self.metrics_labels()?;
        }
        Ok(())
    }

    /// `--metrics-prefix` checked and the `--metrics-label` values parsed and checked
    /// (Prometheus label names, no duplicates). Errors name the flag and the value.
    pub fn metrics_labels(&self) -> Result<Vec<(String, String)>, String> {
        use crate::metrics::prometheus::{validate_labels, validate_prefix};
        validate_prefix(&self.metrics_prefix).map_err(|e| format!("--metrics-prefix: {e}"))?;
        let labels = self
            .metrics_labels
            .iter()
            .map(|l| {
                crate::metrics::parse_label(l).map_err(|e| format!("--metrics-label {l:?}: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        validate_labels(&labels).map_err(|e| format!("--metrics-label: {e}"))?;
        Ok(labels)
    }

    /// `--metrics-addr` as a socket address, `None` for `off` (or `none`). Errors: not an
    /// address, or one that overlaps `--addr` (see [`addrs_overlap`]), which the server's
    /// listeners and the metrics endpoint cannot both bind.
    pub fn metrics_socket_addr(&self) -> Result<Option<SocketAddr>, String> {
        let addr: SocketAddr = match self.metrics_addr.as_str() {
            "off" | "none" => return Ok(None),
            addr => addr
                .parse()
                .map_err(|e| format!("--metrics-addr {addr:?}: {e}"))?,
        };
        if addrs_overlap(addr, self.addr) {
            return Err(format!(
                "--metrics-addr {addr} overlaps --addr {}: the metrics endpoint needs a port \
                 of its own (choose another port, or --metrics-addr off)",
                self.addr
            ));
        }
        Ok(Some(addr))
    }

    /// The rooms app's token rules as these flags configure them.
    pub fn room_access(&self) -> RoomAccess {
        RoomAccess {
            publish_token: self
                .publish_token
                .clone()
                .or_else(|| self.publish_token_file.clone()),
            subscribe_token: self
                .subscribe_token
                .clone()
                .or_else(|| self.subscribe_token_file.clone()),
        }
    }
}

/// True when TCP listeners on `a` and `b` would conflict: the same non-zero port and
/// the same IP, or an unspecified IP (`0.0.0.0`, `::`) that covers the other's (`::`
/// also covers IPv4, as Linux's default dual-stack sockets do). Port 0 never conflicts
/// (each bind gets its own port).
pub fn addrs_overlap(a: SocketAddr, b: SocketAddr) -> bool {
    if a.port() != b.port() || a.port() == 0 {
        return false;
    }
    let covers =
        |x: SocketAddr, y: SocketAddr| x.ip().is_unspecified() && (x.is_ipv6() || y.is_ipv4());
    a.ip() == b.ip() || covers(a, b) || covers(b, a)
}

/// The levels `--log-level` accepts, alone or after `TARGET=`.
pub const LOG_LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];

/// Parse a `--log-level` value: comma-separated directives, each `LEVEL` or
/// `TARGET=LEVEL` with LEVEL one of [`LOG_LEVELS`] (any case). A bare word that is not
/// a level (`verbose`) is refused rather than read as a target, which would silently
/// turn logging off.
pub fn parse_log_level(s: &str) -> Result<String, String> {
    let accepted = || {
        format!(
            "accepted: {}, or TARGET=LEVEL, comma-separated",
            LOG_LEVELS.join(", ")
        )
    };
    for directive in s.split(',') {
        let (target, level) = match directive.rsplit_once('=') {
            Some((target, level)) => (Some(target), level),
            None => (None, directive),
        };
        if target.is_some_and(|t| t.trim().is_empty()) {
            return Err(format!(
                "{directive:?} has no target before '=' ({})",
                accepted()
            ));
        }
        if !LOG_LEVELS
            .iter()
            .any(|l| l.eq_ignore_ascii_case(level.trim()))
        {
            return Err(format!("{level:?} is not a log level ({})", accepted()));
        }
    }
    Ok(s.to_string())
}

/// Parse a `--broker` value: `redis://[USER][:PASSWORD@]HOST[:PORT][/DB]` or
/// `redis+cluster://[..@]HOST[:PORT][,HOST[:PORT]...]`, each port 1..=65535 (the
/// connection itself is made later, by the broker).
pub fn parse_broker_url(s: &str) -> Result<String, String> {
    let shape = "redis://HOST:PORT[/DB] or redis+cluster://HOST:PORT[,HOST:PORT...]";
    let (rest, many) = match (
        s.strip_prefix("redis://"),
        s.strip_prefix("redis+cluster://"),
    ) {
        (Some(rest), _) => (rest, false),
        (_, Some(rest)) => (rest, true),
        _ => return Err(format!("must be {shape}")),
    };
    let hosts = rest.rsplit_once('@').map_or(rest, |(_, hosts)| hosts);
    let (hosts, db) = hosts.split_once('/').unwrap_or((hosts, ""));
    if !(db.is_empty() || (!many && db.parse::<u32>().is_ok())) {
        return Err(format!("database {db:?} is not a number (must be {shape})"));
    }
    let hosts: Vec<&str> = hosts.split(',').collect();
    if hosts.len() > 1 && !many {
        return Err(format!(
            "several hosts need redis+cluster:// (must be {shape})"
        ));
    }
    for host in hosts {
        let (name, port) = match host.rsplit_once(':') {
            Some((name, port)) if !name.ends_with(':') => (name, Some(port)),
            _ => (host, None),
        };
        if name.is_empty() {
            return Err(format!("no host (must be {shape})"));
        }
        if let Some(port) = port {
            if !matches!(port.parse::<u16>(), Ok(1..)) {
                return Err(format!("port {port:?} is not 1..=65535"));
            }
        }
    }
    Ok(s.to_string())
}

/// A `--broker` URL fit to print: its password, if any, replaced by `***`
/// (`redis://:s3cret@h:6379` → `redis://:***@h:6379`), and whether it had one.
pub fn redact_broker_url(url: &str) -> (String, bool) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_string(), false);
    };
    let Some((userinfo, hosts)) = rest.rsplit_once('@') else {
        return (url.to_string(), false);
    };
    match userinfo.split_once(':') {
        Some((user, _)) => (format!("{scheme}://{user}:***@{hosts}"), true),
        None => (url.to_string(), false),
    }
}

/// Parse an `--allowed-origin` value.
pub fn parse_origin(s: &str) -> Result<Origin, String> {
    Origin::parse(s).ok_or_else(|| format!("not an origin (scheme://host[:port]): {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_parse() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert!(parse_duration("5h").is_err());
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("8KiB"), Ok(8192));
        assert!(parse_size("x").is_err());
    }

    #[test]
    fn durations_have_a_maximum() {
        let day = duration_up_to(MAX_DURATION_MINUTES);
        assert_eq!(day("1440m"), Ok(Duration::from_secs(86_400)));
        let err = day("86401s").unwrap_err();
        assert!(err.contains("1440m (24 h)"), "{err}");
        assert!(day("99999999999999999m").is_err());
        let retry = duration_up_to(MAX_SSE_RETRY_MINUTES);
        assert_eq!(retry("1000ms"), Ok(Duration::from_secs(1)));
        assert!(retry("61m").unwrap_err().contains("60m (1 h)"));
    }

    #[test]
    fn metrics_addr_overlapping_addr_is_refused() {
        let metrics = |addr: &str, metrics: &str| {
            let cli = Cli::try_parse_from([
                "ringcast",
                "serve",
                "--addr",
                addr,
                "--metrics-addr",
                metrics,
            ])
            .unwrap();
            let Command::Serve(args) = cli.command;
            args.metrics_socket_addr()
        };
        for (addr, m) in [
            ("127.0.0.1:9001", "127.0.0.1:9001"),
            ("0.0.0.0:9001", "127.0.0.1:9001"),
            ("127.0.0.2:9001", "0.0.0.0:9001"),
            ("[::]:9001", "127.0.0.1:9001"),
            ("[::1]:9001", "[::]:9001"),
        ] {
            let err = metrics(addr, m).unwrap_err();
            assert!(
                err.contains("overlaps --addr") && err.contains(m.trim_start_matches('[')),
                "{addr} / {m}: {err}"
            );
        }
        for (addr, m) in [
            ("127.0.0.1:9001", "127.0.0.1:9100"),
            ("127.0.0.1:9001", "127.0.0.2:9001"),
            ("0.0.0.0:9001", "[::1]:9001"),
            ("127.0.0.1:0", "127.0.0.1:0"),
        ] {
            assert!(metrics(addr, m).unwrap().is_some(), "{addr} / {m}");
        }
        assert_eq!(metrics("127.0.0.1:9001", "off"), Ok(None));
        assert!(metrics("127.0.0.1:9001", "nope")
            .unwrap_err()
            .contains("--metrics-addr"));
    }

    #[test]
    fn otlp_endpoint_flag() {
        let parsed = Cli::try_parse_from([
            "ringcast",
            "serve",
            "--otlp-endpoint",
            "http://127.0.0.1:4318",
        ]);
        if cfg!(feature = "otel") {
            let Command::Serve(args) = parsed.unwrap().command;
            assert_eq!(
                args.otlp_endpoint.as_deref(),
                Some("http://127.0.0.1:4318/v1/traces")
            );
        } else {
            let err = parsed.unwrap_err().to_string();
            assert!(err.contains(crate::telemetry::NO_EXPORTER), "{err}");
        }
    }

    #[test]
    fn access_flags() {
        let dir = std::env::temp_dir().join(format!("ringcast-token-{}", std::process::id()));
        std::fs::write(&dir, "from-file\n").unwrap();
        let path = dir.to_str().unwrap();
        let cli = Cli::try_parse_from([
            "ringcast",
            "serve",
            "--allowed-origin",
            "https://a.example",
            "--allowed-origin",
            "http://b.example:8080",
            "--require-origin",
            "--publish-token",
            "pub",
            "--subscribe-token-file",
            path,
        ])
        .unwrap();
        std::fs::remove_file(&dir).ok();
        let Command::Serve(args) = cli.command;
        let c = args.to_config();
        assert_eq!(c.shard.origins.allowed.len(), 2);
        assert!(c.shard.origins.require && c.shard.origins.permits(Some("https://A.example")));
        let rooms = args.room_access();
        assert!(rooms.publish_token.unwrap().matches("pub"));
        assert!(rooms.subscribe_token.unwrap().matches("from-file"));
        assert!(!format!("{args:?}").contains("pub\""));
        assert!(Cli::try_parse_from(["ringcast", "serve", "--allowed-origin", "x"]).is_err());
        assert!(Cli::try_parse_from(["ringcast", "serve", "--publish-token", ""]).is_err());
    }

    #[test]
    fn cli_defaults_match_config_defaults() {
        let cli = Cli::parse_from(["ringcast", "serve"]);
        let Command::Serve(args) = cli.command;
        let c = args.to_config();
        let d = Config::default();
        assert_eq!(c.addr, d.addr);
        assert_eq!(c.shard, d.shard, "every shard setting");
        assert_eq!(c.history, d.history);
        assert_eq!(
            (
                c.driver.uring_entries,
                c.driver.recv_buffers,
                c.driver.recv_buffer_size
            ),
            (
                d.driver.uring_entries,
                d.driver.recv_buffers,
                d.driver.recv_buffer_size
            )
        );
        assert_eq!(c.driver.socket_send_buffer, d.driver.socket_send_buffer);
        assert_eq!(
            (c.max_connections, c.backlog),
            (d.max_connections, d.backlog)
        );
        // With --history N, the byte cap and TTL default as the library's do.
        let cli = Cli::parse_from(["ringcast", "serve", "--history", "7"]);
        let Command::Serve(args) = cli.command;
        assert_eq!(args.to_config().history, Some(HistoryConfig::frames(7)));
    }

    #[test]
    fn deflate_flags() {
        let cli = Cli::parse_from([
            "ringcast",
            "serve",
            "--deflate",
            "off",
            "--deflate-min-size",
            "1KiB",
        ]);
        let Command::Serve(args) = cli.command;
        let d = args.to_config().shard.deflate;
        assert_eq!((d.enabled, d.min_size), (false, 1024));
        assert!(Cli::try_parse_from(["ringcast", "serve", "--deflate", "maybe"]).is_err());
    }
}

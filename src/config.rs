//! Server configuration: every tunable, its default and its validation in one place.
//!
//! The CLI (`cli.rs`) and the library builder (`server.rs`) both end up here, so a
//! limit is defined once and documented once (see the README's "Limits" table).

use std::net::SocketAddr;
use std::time::Duration;

use crate::conn::SlowPolicy;
use crate::driver::tls::TlsConfig;
use crate::driver::BackendChoice;
use crate::hub::HistoryConfig;

/// Most shards a server may run (the room directory keeps a fixed-size shard bitmap).
pub const MAX_SHARDS: usize = 256;

/// Everything a [`crate::Server`] needs to know before it starts.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address every shard's SO_REUSEPORT listener binds to.
    pub addr: SocketAddr,
    /// Number of shards (threads). Default: the CPUs this process may run on.
    pub threads: usize,
    /// Pin shard `i` to CPU `i` when there are at least as many CPUs as shards.
    pub pin_threads: bool,
    /// Which I/O backend drives the shards.
    pub backend: BackendChoice,
    /// `listen(2)` backlog of each listener.
    pub backlog: i32,
    /// Largest request head (request line + headers) accepted; over it: HTTP 431.
    pub max_head_bytes: usize,
    /// Largest message (all fragments together) accepted; over it: close 1009.
    pub max_message_size: usize,
    /// A handshake not finished within this is closed (slowloris defence).
    pub handshake_timeout: Duration,
    /// After our close frame is sent, how long to wait for the peer to finish the close.
    pub close_timeout: Duration,
    /// On shutdown, how long connections get to flush before they are dropped.
    pub shutdown_timeout: Duration,
    /// Send a ping after this long without one (zero disables heartbeats).
    pub ping_interval: Duration,
    /// After a ping, a connection that sends no frame at all within this is closed.
    pub pong_timeout: Duration,
    /// Cap on a connection's unsent bytes; over it `slow_policy` applies.
    pub max_queue_bytes: usize,
    /// What to do with a connection whose queue is over `max_queue_bytes`.
    pub slow_policy: SlowPolicy,
    /// SO_SNDBUF for accepted sockets (None: kernel autotuning, up to
    /// `net.ipv4.tcp_wmem` max — about 4 MiB a slow socket can pin beyond our queue cap).
    pub socket_send_buffer: Option<usize>,
    /// Most connections at once across all shards (0 = unlimited); over it: HTTP 503.
    pub max_connections: usize,
    /// Include peer addresses in logs (off by default: they are personal data).
    pub log_peer_addr: bool,
    /// io_uring: submission queue entries per shard ring.
    pub uring_entries: u32,
    /// io_uring: number of buffers in each shard's provided buffer ring (power of two).
    pub recv_buffers: u16,
    /// Size of each receive buffer (io_uring ring buffers, epoll scratch buffer).
    pub recv_buffer_size: usize,
    /// Messages kept per room for resuming clients (0 = history off: no sequence
    /// numbers, no ring, publishes take no lock).
    pub history: usize,
    /// Most bytes kept per room's history (sequence-framed wire bytes).
    pub history_bytes: usize,
    /// A room's history is dropped after this long with no members, publishes or resumes.
    pub history_ttl: Duration,
    /// Which `Origin` headers an upgrade may carry (`--allowed-origin`,
    /// `--require-origin`); checked before the handler's upgrade hook, failure: HTTP 403.
    pub origins: OriginPolicy,
    /// Serve `wss://`: every accepted connection starts with a TLS handshake (cargo
    /// feature `tls`; `--tls-cert`/`--tls-key`). None: plain `ws://`.
    pub tls: Option<TlsConfig>,
}

/// A parsed `scheme://host[:port]` origin: scheme and host lower-cased, the port made
/// explicit (80 for http/ws, 443 for https/wss) so `https://a.example` and
/// `https://a.example:443` are the same origin while ports otherwise compare exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl Origin {
    /// Parse an origin as browsers send it (no path, query or user info); `None` for
    /// anything else, including the opaque origin `null`.
    pub fn parse(s: &str) -> Option<Origin> {
        let (scheme, rest) = s.trim().split_once("://")?;
        let valid_scheme = scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
        if scheme.is_empty() || !valid_scheme || rest.contains(['/', '?', '#', '@']) {
            return None;
        }
        let (host, port) = match rest.strip_prefix('[') {
            Some(v6) => {
                let (addr, after) = v6.split_once(']')?;
                (format!("[{addr}]"), after)
            }
            None => match rest.rfind(':') {
                Some(i) => (rest[..i].to_owned(), &rest[i..]),
                None => (rest.to_owned(), ""),
            },
        };
        if host.is_empty() || host.contains(char::is_whitespace) {
            return None;
        }
        let scheme = scheme.to_ascii_lowercase();
        let port = match port {
            "" => match scheme.as_str() {
                "http" | "ws" => Some(80),
                "https" | "wss" => Some(443),
                _ => None,
            },
            p => Some(p.strip_prefix(':')?.parse().ok()?),
        };
        Some(Origin {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

/// The `Origin` rule of upgrades: an allow-list (empty: any origin) and whether a
/// request without `Origin` (a non-browser client) is refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginPolicy {
    /// The origins allowed; empty: any.
    pub allowed: Vec<Origin>,
    /// Refuse upgrades that carry no `Origin` header.
    pub require: bool,
}

impl OriginPolicy {
    /// A policy allowing exactly `allowed` (none: any), requiring `Origin` if `require`.
    pub fn new<S: AsRef<str>>(allowed: &[S], require: bool) -> Result<Self, ConfigError> {
        let allowed = allowed
            .iter()
            .map(|a| {
                Origin::parse(a.as_ref()).ok_or_else(|| {
                    ConfigError(format!(
                        "--allowed-origin must be scheme://host[:port], got {:?}",
                        a.as_ref()
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(OriginPolicy { allowed, require })
    }

    /// Whether an upgrade carrying this `Origin` (or none) may proceed.
    pub fn permits(&self, origin: Option<&str>) -> bool {
        match origin {
            None => !self.require,
            Some(_) if self.allowed.is_empty() => true,
            Some(o) => Origin::parse(o).is_some_and(|o| self.allowed.contains(&o)),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 9001)),
            threads: crate::sys::usable_cpus(),
            pin_threads: true,
            backend: BackendChoice::Auto,
            backlog: 4096,
            max_head_bytes: crate::proto::DEFAULT_MAX_HEAD_BYTES,
            max_message_size: crate::proto::DEFAULT_MAX_MESSAGE_SIZE,
            handshake_timeout: Duration::from_secs(5),
            close_timeout: Duration::from_secs(2),
            shutdown_timeout: Duration::from_secs(5),
            ping_interval: Duration::from_secs(30),
            pong_timeout: Duration::from_secs(10),
            max_queue_bytes: 1 << 20,
            slow_policy: SlowPolicy::Close,
            socket_send_buffer: None,
            max_connections: 0,
            log_peer_addr: false,
            uring_entries: 4096,
            recv_buffers: 1024,
            recv_buffer_size: 4096,
            history: 0,
            history_bytes: 256 << 10,
            history_ttl: Duration::from_secs(300),
            origins: OriginPolicy::default(),
            tls: None,
        }
    }
}

/// A configuration value that cannot work, with the flag it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid configuration: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Check every value; the first problem found is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |m: String| Err(ConfigError(m));
        if self.threads == 0 || self.threads > MAX_SHARDS {
            return fail(format!(
                "--threads must be 1..={MAX_SHARDS}, got {}",
                self.threads
            ));
        }
        if self.max_head_bytes < 256 {
            return fail("--max-head-bytes must be at least 256".into());
        }
        if self.max_queue_bytes < 1024 {
            return fail("--max-queue-bytes must be at least 1 KiB".into());
        }
        if !self.ping_interval.is_zero() && self.pong_timeout.is_zero() {
            return fail("--pong-timeout must be > 0 when heartbeats are on".into());
        }
        if self.max_message_size == 0 {
            return fail("--max-message-size must be at least 1".into());
        }
        if !self.recv_buffers.is_power_of_two() || self.recv_buffers > 32768 {
            return fail(format!(
                "--recv-buffers must be a power of two <= 32768, got {}",
                self.recv_buffers
            ));
        }
        if !(512..=1 << 20).contains(&self.recv_buffer_size) {
            return fail("--recv-buffer-size must be 512 B ..= 1 MiB".into());
        }
        if self.uring_entries < 64 || !self.uring_entries.is_power_of_two() {
            return fail("--uring-entries must be a power of two >= 64".into());
        }
        if self.history > 0 && self.history_bytes == 0 {
            return fail("--history-bytes must be > 0 when --history is on".into());
        }
        if self.history > 0 && self.history_ttl.is_zero() {
            return fail("--history-ttl must be > 0 when --history is on".into());
        }
        Ok(())
    }

    /// The history bounds, or `None` when history is off.
    pub fn history_config(&self) -> Option<HistoryConfig> {
        (self.history > 0).then_some(HistoryConfig {
            max_frames: self.history,
            max_bytes: self.history_bytes,
            ttl: self.history_ttl,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn rejects_zero_threads_and_odd_buffer_counts() {
        let c = Config {
            threads: 0,
            ..Config::default()
        };
        assert!(c.validate().unwrap_err().0.contains("--threads"));
        let c = Config {
            recv_buffers: 1000,
            ..Config::default()
        };
        assert!(c.validate().unwrap_err().0.contains("--recv-buffers"));
    }

    #[test]
    fn origins_compare_scheme_and_host_case_insensitively_ports_exactly() {
        let p =
            OriginPolicy::new(&["https://App.Example.com", "http://[::1]:8080"], false).unwrap();
        assert!(p.permits(Some("https://app.example.com")));
        assert!(p.permits(Some("HTTPS://APP.EXAMPLE.COM:443")));
        assert!(p.permits(Some("http://[::1]:8080")));
        assert!(!p.permits(Some("https://app.example.com:8443")));
        assert!(!p.permits(Some("http://app.example.com")));
        assert!(!p.permits(Some("https://evil.example.com")));
        assert!(!p.permits(Some("https://app.example.com.evil.com")));
        assert!(!p.permits(Some("null")));
        assert!(p.permits(None));
        let any = OriginPolicy::default();
        assert!(any.permits(Some("https://x")) && any.permits(None));
        let required = OriginPolicy::new::<&str>(&[], true).unwrap();
        assert!(!required.permits(None) && required.permits(Some("https://x")));
        assert!(OriginPolicy::new(&["https://a/path"], false).is_err());
        assert!(OriginPolicy::new(&["a.example"], false).is_err());
        assert!(OriginPolicy::new(&["https://a:99999"], false).is_err());
    }
}

//! Server configuration: the top of the layer stack composes each layer's own settings
//! ([`ShardConfig`] of the shard — itself made of the connection layer's [`ConnLimits`],
//! [`QueueLimits`] and [`Timeouts`] —, the hub's [`HistoryConfig`], the drivers'
//! [`DriverConfig`]) with what only the server knows (address, threads, backend), and
//! validates them together, naming the flag (and so the config-file key) at fault.
//!
//! The CLI (`cli.rs`, which also reads `RINGCAST_*` variables and a TOML file) and the
//! library builder ([`crate::Server`]) both end up here; the README's "Limits" table
//! documents every bound.

use std::net::SocketAddr;
use std::time::Duration;

use crate::driver::BackendChoice;

pub use crate::broker::BrokerConfig;

pub use crate::conn::{ConnLimits, QueueLimits, SlowPolicy, Timeouts};
pub use crate::driver::tls::TlsConfig;
pub use crate::driver::DriverConfig;
pub use crate::hub::directory::MAX_SHARDS;

/// The longest timeout, interval, grace period, linger or TTL: 24 hours (longer is a
/// mistake, not a setting; a value near `Duration::MAX` would overflow the deadline it
/// sets).
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// The longest SSE reconnection time (`--sse-retry`): 1 hour.
pub const MAX_SSE_RETRY: Duration = Duration::from_secs(60 * 60);
pub use crate::hub::HistoryConfig;
pub use crate::shard::session::SessionConfig;
pub use crate::shard::{DeflateConfig, Origin, OriginPolicy, ShardConfig};

/// Everything a [`crate::Server`] needs to know before it starts.
///
/// ```
/// use ringcast::config::{Config, QueueLimits, ShardConfig, SlowPolicy};
/// let cfg = Config {
///     threads: 2,
///     shard: ShardConfig {
///         queue: QueueLimits { max_bytes: 256 << 10, policy: SlowPolicy::DropOldest },
///         ..ShardConfig::default()
///     },
///     ..Config::default()
/// };
/// assert!(cfg.validate().is_ok());
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// Address every shard's SO_REUSEPORT listener binds to (port 0: the first bind
    /// picks one, the other shards join it).
    pub addr: SocketAddr,
    /// Number of shards (threads), 1..=[`MAX_SHARDS`]. Default: the CPUs this process
    /// may run on.
    pub threads: usize,
    /// Pin shard `i` to CPU `i` when there are at least as many CPUs as shards.
    pub pin_threads: bool,
    /// Which I/O backend drives the shards.
    pub backend: BackendChoice,
    /// `listen(2)` backlog of each listener.
    pub backlog: i32,
    /// Most connections at once across all shards (0 = unlimited); over it: HTTP 503.
    pub max_connections: usize,
    /// What each shard enforces on its connections.
    pub shard: ShardConfig,
    /// Per-room history for resuming clients (`None`: off — no sequence numbers, no
    /// ring, publishes take no lock).
    pub history: Option<HistoryConfig>,
    /// The I/O drivers' settings (buffers, io_uring sizes, TLS).
    pub driver: DriverConfig,
    /// Cluster mode: rooms shared with other nodes through a broker (`None`: this
    /// process alone; see [`crate::broker`]).
    pub broker: Option<BrokerConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 9001)),
            threads: crate::sys::usable_cpus(),
            pin_threads: true,
            backend: BackendChoice::Auto,
            backlog: 4096,
            max_connections: 0,
            shard: ShardConfig::default(),
            history: None,
            driver: DriverConfig::default(),
            broker: None,
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
    /// Check every value; the first problem found is returned, naming its flag.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |m: String| Err(ConfigError(m));
        let (shard, driver) = (&self.shard, &self.driver);
        if self.threads == 0 || self.threads > MAX_SHARDS {
            return fail(format!(
                "--threads must be 1..={MAX_SHARDS}, got {}",
                self.threads
            ));
        }
        if shard.limits.max_head_bytes < 256 {
            return fail("--max-head-bytes must be at least 256".into());
        }
        if shard.queue.max_bytes < 1024 {
            return fail("--max-queue-bytes must be at least 1 KiB".into());
        }
        if !shard.timeouts.ping_interval.is_zero() && shard.timeouts.pong.is_zero() {
            return fail("--pong-timeout must be > 0 when heartbeats are on".into());
        }
        if shard.sessions.enabled() && shard.sessions.buffer_bytes < 1024 {
            return fail("--session-buffer-bytes must be at least 1 KiB".into());
        }
        if shard.sessions.enabled() && shard.sessions.max_detached == 0 {
            return fail("--session-max-detached must be at least 1".into());
        }
        if shard.limits.max_message_size == 0 {
            return fail("--max-message-size must be at least 1".into());
        }
        if !driver.recv_buffers.is_power_of_two() || driver.recv_buffers > 32768 {
            return fail(format!(
                "--recv-buffers must be a power of two <= 32768, got {}",
                driver.recv_buffers
            ));
        }
        if !(512..=1 << 20).contains(&driver.recv_buffer_size) {
            return fail("--recv-buffer-size must be 512 B ..= 1 MiB".into());
        }
        if driver.uring_entries < 64 || !driver.uring_entries.is_power_of_two() {
            return fail("--uring-entries must be a power of two >= 64".into());
        }
        if let Some(history) = &self.history {
            if history.max_frames == 0 {
                return fail("--history must be > 0 when history is on".into());
            }
            if history.max_bytes == 0 {
                return fail("--history-bytes must be > 0 when --history is on".into());
            }
            if history.ttl.is_zero() {
                return fail("--history-ttl must be > 0 when --history is on".into());
            }
        }
        if let Some(problem) = self.broker.as_ref().and_then(BrokerConfig::problem) {
            return fail(problem);
        }
        for (flag, value, max) in self.durations() {
            if value > max {
                return fail(format!(
                    "{flag} must be at most {} h, got {value:?}",
                    max.as_secs() / 3600
                ));
            }
        }
        Ok(())
    }

    /// Every duration setting with its flag and its maximum ([`MAX_DURATION`],
    /// [`MAX_SSE_RETRY`]).
    fn durations(&self) -> Vec<(&'static str, Duration, Duration)> {
        let (shard, t) = (&self.shard, &self.shard.timeouts);
        let mut all = vec![
            ("--handshake-timeout", t.handshake, MAX_DURATION),
            ("--close-timeout", t.close, MAX_DURATION),
            ("--ping-interval", t.ping_interval, MAX_DURATION),
            ("--pong-timeout", t.pong, MAX_DURATION),
            ("--shutdown-timeout", shard.shutdown_timeout, MAX_DURATION),
            ("--session-grace", shard.sessions.grace, MAX_DURATION),
            ("--sse-retry", shard.sse_retry, MAX_SSE_RETRY),
        ];
        if let Some(history) = &self.history {
            all.push(("--history-ttl", history.ttl, MAX_DURATION));
        }
        if let Some(broker) = &self.broker {
            all.push(("--broker-linger", broker.linger, MAX_DURATION));
        }
        all
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
    fn durations_over_their_maximum_are_refused_by_flag() {
        let mut c = Config::default();
        c.shard.sse_retry = MAX_SSE_RETRY;
        c.shard.sessions.grace = MAX_DURATION;
        c.validate().unwrap();
        c.shard.sessions.grace = MAX_DURATION + Duration::from_millis(1);
        let err = c.validate().unwrap_err().0;
        assert!(
            err.starts_with("--session-grace must be at most 24 h"),
            "{err}"
        );
        c.shard.sessions.grace = MAX_DURATION;
        c.shard.sse_retry = Duration::MAX;
        let err = c.validate().unwrap_err().0;
        assert!(err.starts_with("--sse-retry must be at most 1 h"), "{err}");
    }

    #[test]
    fn rejects_zero_threads_and_odd_buffer_counts() {
        let c = Config {
            threads: 0,
            ..Config::default()
        };
        assert!(c.validate().unwrap_err().0.contains("--threads"));
        let mut c = Config::default();
        c.driver.recv_buffers = 1000;
        assert!(c.validate().unwrap_err().0.contains("--recv-buffers"));
    }

    #[test]
    fn session_max_detached_is_at_least_one_and_shared_rounding_up() {
        let mut c = Config::default();
        c.shard.sessions.grace = std::time::Duration::from_secs(1);
        c.shard.sessions.max_detached = 0;
        assert!(c
            .validate()
            .unwrap_err()
            .0
            .contains("--session-max-detached"));
        c.shard.sessions.max_detached = 10;
        c.validate().unwrap();
        let share = |n| c.shard.sessions.shard_share(n);
        assert_eq!((share(1), share(3), share(4), share(16)), (10, 4, 3, 1));
    }
}

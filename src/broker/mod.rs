//! Cluster adapters behind the hub's broker seam ([`crate::hub::broker`]): with
//! `serve --broker redis://HOST:PORT[/DB]` (cargo feature `redis`) every publish goes
//! through Redis and comes back to every node subscribed to the room, in Redis's order;
//! `--broker redis+cluster://HOST:PORT[,…]` does the same over a Redis Cluster with
//! sharded pub/sub (a room's traffic stays on its slot's shard).
//!
//! - [`envelope`]: the bytes of one publication on a channel (versioned header +
//!   payload; anything else is counted and dropped);
//! - [`interest`]: rooms this node wants (members here, or lingering after the last
//!   left);
//! - [`script`]: the names of a room's channel and keys, and the publish script used
//!   with `--history` (number, keep in the room's stream, publish: one command);
//! - [`stats`]: counters and the round-trip histogram;
//! - `link` (feature `redis`): the broker thread, its Redis connections and the
//!   [`crate::hub::Broker`] the shards call.
//!
//! Threading: the Redis client (the `redis` crate) runs on one thread of its own with
//! a single-threaded tokio runtime. Shards hand it publishes through a bounded queue
//! (full: the publish fails at once and is counted) and interest changes through a
//! shared table; it hands publications to the shards through
//! [`crate::hub::HubShared::deliver_inbound`] (their inboxes and coalesced wake-ups).
//! Without `--broker` none of this runs.

pub mod envelope;
pub mod interest;
#[cfg(feature = "redis")]
mod link;
pub mod script;
pub mod stats;

use std::sync::Arc;
use std::time::Duration;

use crate::hub::{Broker, HubShared};

pub use stats::{BrokerSnapshot, BrokerStats};

/// `--broker` and its companions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    /// `redis://HOST:PORT[/DB]`, or `redis+cluster://HOST:PORT[,HOST:PORT...]` for a
    /// Redis Cluster (`--broker`; see [`BrokerConfig::cluster_nodes`]).
    pub url: String,
    /// First part of every channel and key name (`--broker-prefix`, default
    /// `ringcast`): nodes with the same prefix share rooms. 1..=64 printable characters
    /// without `{`, `}`, `:` ([`BrokerConfig::problem`]), so different prefixes never
    /// share a channel.
    pub prefix: String,
    /// This node's id in envelopes, logs and metrics (`--node-id`; `None`: hostname and
    /// port).
    pub node_id: Option<String>,
    /// How long a room stays subscribed after this node's last member left
    /// (`--broker-linger`, default 2 s).
    pub linger: Duration,
    /// Publishes waiting for the broker thread, at most (`--broker-queue`, default
    /// 65 536); over it a publish fails at once.
    pub queue: usize,
}

impl BrokerConfig {
    /// Defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        BrokerConfig {
            url: url.into(),
            prefix: "ringcast".into(),
            node_id: None,
            linger: Duration::from_secs(2),
            queue: 65_536,
        }
    }

    /// The first problem with these values, naming the flag.
    pub fn problem(&self) -> Option<String> {
        if !cfg!(feature = "redis") {
            return Some("--broker needs a build with the `redis` cargo feature".into());
        }
        let cluster_ok = self
            .cluster_nodes()
            .is_some_and(|n| !n.is_empty() && n.iter().all(|u| u.len() > "redis://".len()));
        if !(self.url.starts_with("redis://") || cluster_ok) {
            return Some(format!(
                "--broker must be redis://HOST:PORT[/DB] or redis+cluster://HOST:PORT[,HOST:PORT...], got {:?}",
                self.url
            ));
        }
        if self.prefix.is_empty()
            || self.prefix.len() > 64
            || !self
                .prefix
                .bytes()
                .all(|b| b.is_ascii_graphic() && !matches!(b, b'{' | b'}' | b':'))
        {
            // No `:`: the channel is `{PREFIX:ROOM}` and rooms may hold `:`, so prefix
            // `a:b` with room `c` and prefix `a` with room `b:c` would share a channel.
            return Some(
                "--broker-prefix must be 1..=64 printable characters without { } :".into(),
            );
        }
        if let Some(id) = &self.node_id {
            if !envelope::valid_node_id(id) {
                return Some("--node-id must be 1..=64 characters of [A-Za-z0-9._:-]".into());
            }
        }
        if self.queue == 0 {
            return Some("--broker-queue must be > 0".into());
        }
        None
    }
}

impl BrokerConfig {
    /// Redis Cluster seed nodes when `url` is `redis+cluster://HOST:PORT[,HOST:PORT...]`
    /// (`[USER:PASS@]` allowed before the first host, applied to each): one
    /// `redis://HOST:PORT` per seed, as the `redis` crate's `ClusterClient` takes them.
    /// `None`: not a cluster URL. The client learns the other nodes from the seeds
    /// (`CLUSTER SLOTS`), so one reachable seed is enough.
    pub fn cluster_nodes(&self) -> Option<Vec<String>> {
        let rest = self.url.strip_prefix("redis+cluster://")?;
        let (auth, hosts) = match rest.rfind('@') {
            Some(at) => (&rest[..=at], &rest[at + 1..]),
            None => ("", rest),
        };
        Some(
            hosts
                .split(',')
                .filter(|h| !h.is_empty())
                .map(|h| format!("redis://{auth}{}", h.trim_end_matches('/')))
                .collect(),
        )
    }
}

/// The default node id: this host's name and `port` (`host:9001`), cut to a valid id.
pub fn default_node_id(port: u16) -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into our buffer.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let host: String = if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "node".into()
    };
    let mut host: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || ".-_".contains(*c))
        .take(envelope::MAX_NODE_ID - 6)
        .collect();
    if host.is_empty() {
        host.push_str("node");
    }
    format!("{host}:{port}")
}

/// A running broker: the broker thread and the [`Broker`] the hub calls.
pub struct BrokerHandle {
    #[cfg(feature = "redis")]
    link: Arc<link::RedisBroker>,
    stats: Arc<BrokerStats>,
    node_id: String,
}

impl BrokerHandle {
    /// Start the broker thread for `cfg` as node `node_id`; `history`: the room
    /// history's frame cap when `--history` is on (publishes are then numbered by
    /// Redis). It connects in the background (and reconnects with backoff): a Redis
    /// that is down at start is not an error.
    ///
    /// # Errors
    /// A URL the client refuses; a build without the `redis` feature.
    pub fn start(
        cfg: &BrokerConfig,
        node_id: String,
        history: Option<usize>,
    ) -> std::io::Result<Self> {
        let stats = Arc::new(BrokerStats::default());
        #[cfg(feature = "redis")]
        {
            let link = link::RedisBroker::start(cfg, node_id.clone(), history, stats.clone())?;
            Ok(BrokerHandle {
                link,
                stats,
                node_id,
            })
        }
        #[cfg(not(feature = "redis"))]
        {
            let _ = (cfg, history, stats, node_id);
            Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "--broker needs a build with the `redis` cargo feature",
            ))
        }
    }

    /// The broker for [`HubShared::with_broker`].
    pub fn broker(&self) -> Arc<dyn Broker> {
        #[cfg(feature = "redis")]
        {
            self.link.clone()
        }
        #[cfg(not(feature = "redis"))]
        unreachable!("never started without the feature")
    }

    /// Give the broker thread the hub it delivers inbound publications to (once, right
    /// after the hub is made).
    pub fn attach(&self, hub: &Arc<HubShared>) {
        #[cfg(feature = "redis")]
        self.link.attach(hub);
        #[cfg(not(feature = "redis"))]
        let _ = hub;
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// The broker's counters now.
    pub fn stats(&self) -> BrokerSnapshot {
        self.stats.snapshot()
    }

    /// The shared counters (for the metrics endpoint).
    pub fn stats_handle(&self) -> Arc<BrokerStats> {
        self.stats.clone()
    }

    /// Stop the broker thread and close its connections.
    pub fn shutdown(&self) {
        #[cfg(feature = "redis")]
        self.link.shutdown();
    }
}

impl Drop for BrokerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls_give_one_seed_per_host_with_the_credentials() {
        let c = BrokerConfig::new("redis+cluster://u:p@10.0.0.1:7000,10.0.0.2:7001/");
        assert_eq!(
            c.cluster_nodes().unwrap(),
            ["redis://u:p@10.0.0.1:7000", "redis://u:p@10.0.0.2:7001"]
        );
        assert_eq!(BrokerConfig::new("redis://h:1").cluster_nodes(), None);
        if cfg!(feature = "redis") {
            assert_eq!(c.problem(), None);
            assert!(BrokerConfig::new("redis+cluster://").problem().is_some());
            assert!(BrokerConfig::new("valkey://h:1").problem().is_some());
        }
    }

    #[test]
    fn a_prefix_that_could_share_a_channel_with_another_is_refused() {
        let with = |prefix: &str| BrokerConfig {
            prefix: prefix.into(),
            ..BrokerConfig::new("redis://h:1")
        };
        if cfg!(feature = "redis") {
            assert_eq!(with("ringcast-staging").problem(), None);
            for bad in ["ringcast:staging", "a{b", "a}b", ""] {
                let problem = with(bad).problem().expect(bad);
                assert!(problem.contains("--broker-prefix"), "{problem}");
            }
        }
        // Without `:` in prefixes, the prefix is what comes before the first `:`.
        assert_ne!(
            script::channel("ringcast", "staging:x"),
            script::channel("ringcast-staging", "x")
        );
        assert_eq!(
            script::room_of("ringcast", "{ringcast:staging:x}"),
            Some("staging:x")
        );
        assert_eq!(script::room_of("ringcast", "{ringcast-staging:x}"), None);
    }
}

//! [`ShardConfig`]: everything a shard needs to know about its connections, composed
//! from the connection layer's own settings plus the shard's upgrade policy,
//! permessage-deflate settings and shutdown budget. `crate::config::Config` holds one
//! and every shard shares it.

use std::time::Duration;

use crate::conn::{ConnLimits, QueueLimits, Timeouts};

use super::deflate::DeflateConfig;
use super::origin::OriginPolicy;

/// A shard's settings (read-only while it runs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardConfig {
    /// Request head and message size limits.
    pub limits: ConnLimits,
    /// Outbound queue cap and the slow-consumer policy.
    pub queue: QueueLimits,
    /// Handshake, close, heartbeat deadlines.
    pub timeouts: Timeouts,
    /// On shutdown, how long connections get to flush before they are dropped
    /// (default 5 s).
    pub shutdown_timeout: Duration,
    /// SSE streams: the reconnection time (`retry:`) sent as their first chunk
    /// (default 1 s; sent in whole milliseconds).
    pub sse_retry: Duration,
    /// Which `Origin` headers an upgrade may carry; checked before the handler's upgrade
    /// hook, failure: HTTP 403.
    pub origins: OriginPolicy,
    /// Include peer addresses in logs (off by default: they are personal data).
    pub log_peer_addr: bool,
    /// permessage-deflate (RFC 7692): on by default, messages from 64 B compressed.
    pub deflate: DeflateConfig,
}

impl Default for ShardConfig {
    fn default() -> Self {
        ShardConfig {
            limits: ConnLimits::default(),
            queue: QueueLimits::default(),
            timeouts: Timeouts::default(),
            shutdown_timeout: Duration::from_secs(5),
            sse_retry: Duration::from_secs(1),
            origins: OriginPolicy::default(),
            log_peer_addr: false,
            deflate: DeflateConfig::default(),
        }
    }
}

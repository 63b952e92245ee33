//! What a connection is allowed: the request-head and message size limits it enforces
//! while decoding ([`ConnLimits`]) and the cap on its unsent bytes with the slow-consumer
//! policy applied over it ([`QueueLimits`], [`SlowPolicy`]).

/// Limits the connection enforces while decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Largest request head (request line + headers) accepted; over it: HTTP 431
    /// (or 414 when the request line alone is over it).
    pub max_head_bytes: usize,
    /// Largest message (all fragments together) accepted; over it: close 1009.
    pub max_message_size: usize,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            max_head_bytes: crate::proto::DEFAULT_MAX_HEAD_BYTES,
            max_message_size: crate::proto::DEFAULT_MAX_MESSAGE_SIZE,
        }
    }
}

/// What happens when a connection's outbound queue would exceed its cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SlowPolicy {
    /// Discard the frame being queued.
    DropNewest,
    /// Discard the oldest unsent frames (never one partly written) to make room.
    DropOldest,
    /// Close the connection with 1008 "slow consumer".
    #[default]
    Close,
}

impl SlowPolicy {
    /// Every policy, in the order the CLI lists them.
    pub const ALL: [SlowPolicy; 3] = [
        SlowPolicy::Close,
        SlowPolicy::DropNewest,
        SlowPolicy::DropOldest,
    ];

    /// The name used by `--slow-policy`, the config file and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            SlowPolicy::DropNewest => "drop-newest",
            SlowPolicy::DropOldest => "drop-oldest",
            SlowPolicy::Close => "close",
        }
    }

    /// One line on what the policy does (for `--help`).
    pub fn about(self) -> &'static str {
        match self {
            SlowPolicy::DropNewest => "Discard the frame being queued",
            SlowPolicy::DropOldest => {
                "Discard the oldest unsent frames (never one partly written) to make room"
            }
            SlowPolicy::Close => "Close the connection with 1008 \"slow consumer\"",
        }
    }
}

/// Outbound queue cap and what to do over it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Cap on a connection's unsent bytes (default 1 MiB); over it `policy` applies, and
    /// reading from the peer pauses while over it.
    pub max_bytes: usize,
    /// What to do with a data frame that would take the queue over `max_bytes`.
    pub policy: SlowPolicy,
}

impl Default for QueueLimits {
    fn default() -> Self {
        QueueLimits {
            max_bytes: 1 << 20,
            policy: SlowPolicy::Close,
        }
    }
}

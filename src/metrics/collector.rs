//! The metrics hooks: one typed method per event, all with empty default bodies.
//!
//! A [`MetricsCollector`] is shared by every shard and called on the shard thread where
//! the event happens, with the shard's index, so an implementation can keep per-shard
//! state (no shared cache line written on the hot path). Hooks must be fast and
//! non-blocking and must not call back into the server; the engine never calls them
//! while hub state is borrowed. Adding a method later breaks no implementor.
//!
//! The default collector is [`NoopCollector`].

use std::time::Duration;

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DisconnectReason {
    /// Close handshake completed (either side started it).
    Normal,
    /// The peer broke RFC 6455 (we closed with 1002/1007/1009) or sent a bad request head.
    ProtocolError,
    /// The outbound queue overflowed under the `close` slow-client policy.
    SlowConsumer,
    /// No frame arrived within the pong timeout after a ping.
    PongTimeout,
    /// The upgrade request did not complete in time.
    HandshakeTimeout,
    /// The server shut down.
    ServerShutdown,
    /// Refused by the admission cap (HTTP 503).
    AdmissionRejected,
    /// An application callback panicked (closed with 1011).
    Panic,
    /// The peer reset or vanished without a close frame, or the close timed out.
    Reset,
}

impl DisconnectReason {
    pub const ALL: [DisconnectReason; 9] = [
        DisconnectReason::Normal,
        DisconnectReason::ProtocolError,
        DisconnectReason::SlowConsumer,
        DisconnectReason::PongTimeout,
        DisconnectReason::HandshakeTimeout,
        DisconnectReason::ServerShutdown,
        DisconnectReason::AdmissionRejected,
        DisconnectReason::Panic,
        DisconnectReason::Reset,
    ];

    /// The label value used in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            DisconnectReason::Normal => "normal",
            DisconnectReason::ProtocolError => "protocol_error",
            DisconnectReason::SlowConsumer => "slow_consumer",
            DisconnectReason::PongTimeout => "pong_timeout",
            DisconnectReason::HandshakeTimeout => "handshake_timeout",
            DisconnectReason::ServerShutdown => "server_shutdown",
            DisconnectReason::AdmissionRejected => "admission_rejected",
            DisconnectReason::Panic => "panic",
            DisconnectReason::Reset => "reset",
        }
    }
}

/// Why a queued frame was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// `drop-newest` policy: the frame being queued was discarded.
    QueueFullNewest,
    /// `drop-oldest` policy: the oldest unsent frame was discarded.
    QueueFullOldest,
    /// The connection closed with frames still queued.
    ConnectionClosed,
}

impl DropReason {
    pub const ALL: [DropReason; 3] = [
        DropReason::QueueFullNewest,
        DropReason::QueueFullOldest,
        DropReason::ConnectionClosed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::QueueFullNewest => "drop_newest",
            DropReason::QueueFullOldest => "drop_oldest",
            DropReason::ConnectionClosed => "connection_closed",
        }
    }
}

/// Typed hooks for every event the engine reports. `shard` is the index of the shard
/// thread calling (0..threads).
#[allow(unused_variables)]
pub trait MetricsCollector: Send + Sync + 'static {
    /// A WebSocket upgrade completed (101 sent).
    fn connection_opened(&self, shard: usize) {}
    /// An upgraded connection ended, after `duration` since its upgrade.
    fn connection_closed(&self, shard: usize, reason: DisconnectReason, duration: Duration) {}
    /// An upgrade request was refused with an HTTP `status` (400, 404, 426, 431, 503, …).
    fn handshake_rejected(&self, shard: usize, status: u16) {}
    /// A room got its first member on this shard.
    fn room_created(&self, shard: usize) {}
    /// A room lost its last member on this shard.
    fn room_destroyed(&self, shard: usize) {}
    /// A complete data message of `bytes` payload bytes arrived.
    fn message_received(&self, shard: usize, bytes: usize) {}
    /// A publish queued its frame to `fanout` local connections (closing ones excluded).
    fn message_published(&self, shard: usize, fanout: usize) {}
    /// The kernel accepted `frames` complete frames totalling `bytes` bytes in one send.
    fn frames_sent(&self, shard: usize, frames: usize, bytes: usize) {}
    /// A frame was dropped for `reason`.
    fn frame_dropped(&self, shard: usize, reason: DropReason) {}
    /// A connection's outbound queue holds `bytes` after an enqueue.
    fn send_queue_bytes(&self, shard: usize, bytes: usize) {}
    /// A connection missed its pong deadline.
    fn pong_timeout(&self, shard: usize) {}
    /// An application callback panicked.
    fn panic(&self, shard: usize) {}
    /// A listener bind hit EADDRINUSE and was retried.
    fn bind_retry(&self, shard: usize) {}
    /// The admission cap refused a connection (HTTP 503).
    fn admission_rejected(&self, shard: usize) {}
    /// Time from a publish to the kernel accepting the bytes of its frame for one connection
    /// (sampled: the oldest frame of each send).
    fn publish_to_write(&self, shard: usize, latency: Duration) {}
}

/// The default collector: every hook is empty, so the calls compile to nothing that
/// touches memory beyond the dynamic call.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopCollector;

impl MetricsCollector for NoopCollector {}

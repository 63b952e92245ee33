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

pub use crate::conn::{DisconnectReason, DropReason, InputThrottle};

/// Typed hooks for every event the engine reports. `shard` is the index of the shard
/// thread calling (0..threads).
#[allow(unused_variables)]
pub trait MetricsCollector: Send + Sync + 'static {
    /// A TCP connection was accepted (its upgrade may still fail: every accepted
    /// connection gets exactly one `connection_closed`).
    fn connection_opened(&self, shard: usize) {}
    /// An accepted connection ended, `duration` after it was accepted.
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
    /// After a publish (or a direct send), the largest outbound queue among the
    /// connections it was queued to holds `bytes` — once per publish, not per member,
    /// so the fan-out loop makes no hook call per subscriber.
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
    /// A client asked to resume a room from a sequence number (history on).
    fn resume_attempt(&self, shard: usize) {}
    /// A resume found every message after the client's number still retained.
    fn resume_served(&self, shard: usize) {}
    /// A resume could not be served fully: the client got a `gap` (or `reset`) message.
    fn resume_gap(&self, shard: usize) {}
    /// `frames` retained messages were replayed to one resuming connection.
    fn frames_replayed(&self, shard: usize, frames: usize) {}
    /// A peer's input was limited to keep what it makes us queue bounded: a pending pong
    /// replaced by a newer one, or reading paused while the connection's unsent bytes
    /// were over `--max-queue-bytes` (once per pause).
    fn input_throttled(&self, shard: usize, action: InputThrottle) {}
}

/// The default collector: every hook is empty, so the calls compile to nothing that
/// touches memory beyond the dynamic call.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopCollector;

impl MetricsCollector for NoopCollector {}

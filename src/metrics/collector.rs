//! The metrics hooks: one typed method per event, all with empty default bodies.
//!
//! A [`MetricsCollector`] is shared by every shard and called on the shard thread where
//! the event happens, with the shard's index, so an implementation can keep per-shard
//! state (no shared cache line written on the hot path). Hooks must be fast and
//! non-blocking and must not call back into the server; the engine never calls them
//! while hub state is borrowed. Adding a method later breaks no implementor.
//!
//! Each hook reports one kind of fact, and says which:
//! - **per connection or per shard** (most hooks): the event happened on that shard;
//!   summing over shards gives the process total.
//! - **per room** ([`MetricsCollector::room_opened`], [`MetricsCollector::room_closed`])
//!   and **per publish** ([`MetricsCollector::publish_fanned_out`],
//!   [`MetricsCollector::history_refused`]): called once per room or publish however
//!   many shards took part; `shard` is the one that made the call (the one whose join
//!   opened the room, the one that queued the publish's last part…), not the owner of
//!   the fact. Summing over shards still gives the process total.
//!
//! The default collector is [`NoopCollector`].

use std::time::Duration;

pub use crate::conn::{DisconnectReason, DropReason, InputThrottle, ResumeResult};
pub use crate::proto::handshake::Transport;

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
    /// An HTTP publish request (`POST /publish/{room}`) was answered with `status`:
    /// 202 when its body was published, else the refusal (400, 401, 403, 405, 413, …).
    fn http_publish_answered(&self, shard: usize, status: u16) {}
    /// Per room: a room got its first member in the process (no shard had members of it
    /// before). Once per room lifetime, however many shards its members join on;
    /// `shard` is the one whose join opened it. Rooms open = opened − closed.
    fn room_opened(&self, shard: usize) {}
    /// Per room: a room lost its last member in the process (no shard has members of
    /// it any more); `shard` is the one whose leave closed it.
    fn room_closed(&self, shard: usize) {}
    /// A complete data message of `bytes` payload bytes arrived.
    fn message_received(&self, shard: usize, bytes: usize) {}
    /// Per publish: a publish (`Context::publish`, each room of
    /// `Context::publish_to_joined`, `Publisher::publish`) was queued to `recipients`
    /// connections in all, over every shard that had members of the room when it was
    /// published (the sender excluded when asked; closing connections and frames refused
    /// by `drop-newest` or a slow-consumer close not counted). Called once per publish,
    /// after its last shard delivery, by the shard that made that delivery (`shard`); a
    /// publish that reached no shard is reported with 0 by its publishing shard (0 for a
    /// `Publisher` outside the shards). A publish still in flight when a shard stops is
    /// not reported.
    fn publish_fanned_out(&self, shard: usize, recipients: usize) {}
    /// The kernel accepted `frames` complete frames totalling `bytes` bytes in one send.
    fn frames_sent(&self, shard: usize, frames: usize, bytes: usize) {}
    /// The same frames as the [`MetricsCollector::frames_sent`] call just before, by
    /// the transport of their connection (for SSE a frame is one chunk: an event, a
    /// heartbeat, the last chunk; or the response head).
    fn frames_sent_on(&self, shard: usize, transport: Transport, frames: usize) {}
    /// A connection was accepted: a WebSocket upgrade (101) or an SSE stream (200).
    fn connection_accepted(&self, shard: usize, transport: Transport) {}
    /// A connection reported by [`MetricsCollector::connection_accepted`] ended (before
    /// its `connection_closed`).
    fn connection_ended(&self, shard: usize, transport: Transport) {}
    /// A frame was dropped for `reason`.
    fn frame_dropped(&self, shard: usize, reason: DropReason) {}
    /// Per shard: after a shard queued a publish to its members (or a direct send to
    /// one connection), the largest outbound queue among them holds `bytes`. Once per
    /// shard delivery, not per member, so the fan-out loop makes no hook call per
    /// subscriber; a publish delivered on two shards gives two samples.
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
    /// A resume could not be served fully: the client got a `gap` (or `reset`) message,
    /// first or in place of a message that was too large to keep.
    fn resume_gap(&self, shard: usize) {}
    /// `frames` retained messages were replayed to one resuming connection.
    fn frames_replayed(&self, shard: usize, frames: usize) {}
    /// The shard's thread compressed `messages` messages for permessage-deflate since its
    /// last report (publication forms and direct sends).
    fn deflate_compressed(&self, shard: usize, messages: u64) {}
    /// A peer's input was limited to keep what it makes us queue bounded: a pending pong
    /// replaced by a newer one, or reading paused while the connection's unsent bytes
    /// were over `--max-queue-bytes` (once per pause).
    fn input_throttled(&self, shard: usize, action: InputThrottle) {}
    /// Per publish (history on): a message of `bytes` sequence-framed bytes was numbered
    /// and delivered but not kept in its room's history, being larger than
    /// `--history-bytes` on its own; the history kept everything it had. `shard`: the
    /// publishing shard (0 for a `Publisher` outside the shards).
    fn history_refused(&self, shard: usize, bytes: usize) {}
    /// Per shard, a gauge snapshot after any change to its sessions (`--session-grace`):
    /// sessions `held` (attached or detached), of which `detached`, and the bytes their
    /// buffers hold.
    fn sessions(&self, shard: usize, held: usize, detached: usize, buffered_bytes: usize) {}
    /// A presented resume token was answered with `result` (a resume whose buffer had
    /// overflowed is reported twice: `Resumed`, then `BufferOverflow`).
    fn session_resume(&self, shard: usize, result: ResumeResult) {}
    /// A detached session ended without a resume: `GraceExpired`, `SessionEvicted`
    /// (over `--session-max-detached`), or `ServerShutdown`.
    /// (Its connection's end was reported by `connection_closed` when its socket went.)
    fn session_ended(&self, shard: usize, reason: DisconnectReason) {}
}

/// The default collector: every hook is empty, so the calls compile to nothing that
/// touches memory beyond the dynamic call.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopCollector;

impl MetricsCollector for NoopCollector {}

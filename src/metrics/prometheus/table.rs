//! The metric table: every Prometheus family ringcast exposes, declared once, in
//! exposition order, with its kind, HELP text and per-shard field(s). `metric_table!`
//! (see `declare.rs`) generates from it the per-shard block, the totals, the public
//! [`Snapshot`] and the exposition; the hooks in `mod.rs` write the fields.
//!
//! Adding a metric: a row here (and bounds below for a histogram), a hook body in
//! `mod.rs` that writes its field, the golden text in `tests.rs`.

use super::declare::metric_table;
use crate::metrics::collector::{
    DisconnectReason, DropReason, InputThrottle, ResumeResult, Transport,
};

/// Upper bounds (inclusive, nanoseconds) of `connection_duration_seconds`.
pub const CONNECTION_DURATION_BOUNDS_NS: [u64; 14] = [
    100_000_000,
    500_000_000,
    1_000_000_000,
    5_000_000_000,
    10_000_000_000,
    30_000_000_000,
    60_000_000_000,
    300_000_000_000,
    900_000_000_000,
    1_800_000_000_000,
    3_600_000_000_000,
    7_200_000_000_000,
    21_600_000_000_000,
    86_400_000_000_000,
];

/// Upper bounds (inclusive, recipients of one publish over all shards) of `broadcast_fanout`.
pub const FANOUT_BOUNDS: [u64; 17] = [
    0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000,
];

/// Upper bounds (inclusive, bytes) of `send_queue_bytes`.
pub const SEND_QUEUE_BOUNDS: [u64; 10] = [
    128, 512, 1_024, 4_096, 16_384, 65_536, 262_144, 1_048_576, 4_194_304, 16_777_216,
];

/// Upper bounds (inclusive, nanoseconds) of `publish_to_write_seconds`.
pub const PUBLISH_TO_WRITE_BOUNDS_NS: [u64; 17] = [
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
];

metric_table! {
    /// Connections accepted and not yet closed, per shard.
    connections_active: per_shard(ShardBlock::active) {
        /// Open connections (accepted, not yet closed) per shard.
        connections_active
    }
    /// TCP connections accepted.
    connections_opened_total: counter { connections_opened }
    /// Connections ended, by reason (grace_expired: a detached session ended unresumed,
    /// session_evicted: one ended early over --session-max-detached; either's connection
    /// was counted under its own cause when its socket went).
    connections_closed_total: counter_by(DisconnectReason) { connections_closed }
    /// Time from accept to close of each connection.
    connection_duration_seconds: histogram(CONNECTION_DURATION_BOUNDS_NS, Seconds) {
        connection_duration
    }
    /// Connections accepted, by transport: WebSocket upgrades (101, ws) and Server-Sent
    /// Events streams (200, sse).
    connections_accepted_total: counter_by(Transport) { connections_accepted }
    /// Accepted connections that ended, by transport (open now: accepted minus ended).
    connections_ended_total: counter_by(Transport) { connections_ended }
    /// Upgrade requests refused, by HTTP status.
    handshake_rejected_total: counter_by_status { handshake_rejected }
    /// HTTP publish requests (POST /publish/{room}) answered, by HTTP status (202:
    /// published).
    http_publish_requests_total: counter_by_status { http_publish_requests }
    /// Rooms with at least one member on any shard (each room once).
    rooms_active: gauge { rooms_active }
    /// Complete data messages received.
    messages_received_total: counter { messages_received }
    /// Payload bytes of the data messages received.
    messages_received_bytes_total: counter { messages_received_bytes }
    /// Messages published to a room (each once, however many shards delivered it).
    messages_published_total: counter { messages_published }
    /// Connections a publish was queued to, over all shards (one observation per publish).
    broadcast_fanout: histogram(FANOUT_BOUNDS, Plain) { broadcast_fanout }
    /// Complete frames accepted by the kernel.
    frames_sent_total: counter { frames_sent }
    /// Complete frames accepted by the kernel, by transport (an SSE frame is a chunk:
    /// an event, a heartbeat, the last chunk; or the response head).
    frames_sent_by_transport_total: counter_by(Transport) { frames_sent_by_transport }
    /// Bytes accepted by the kernel.
    bytes_sent_total: counter { bytes_sent }
    /// Queued frames dropped, by reason.
    frames_dropped_total: counter_by(DropReason) { frames_dropped }
    /// Largest outbound queue among the connections a shard queued a publish (or a
    /// direct send) to, in bytes (one observation per shard delivery).
    send_queue_bytes: histogram(SEND_QUEUE_BOUNDS, Plain) { send_queue_bytes }
    /// Connections that missed their pong deadline.
    pong_timeouts_total: counter { pong_timeouts }
    /// Application callbacks that panicked.
    panics_total: counter { panics }
    /// Connections refused by the admission cap.
    admission_rejected_total: counter { admission_rejected }
    /// Listener binds retried after EADDRINUSE.
    bind_retries_total: counter { bind_retries }
    /// Clients that asked to resume a room from a sequence number.
    resume_attempts_total: counter { resume_attempts }
    /// Resumes served, by result: full (nothing missing) or gap (a gap or reset message
    /// first).
    resumes_total: counter {
        /// Resumes served with every missed message.
        resumes_full [result = "full"],
        /// Resumes that began with a `gap` or `reset` message.
        resumes_gap [result = "gap"],
    }
    /// Retained messages replayed to resuming clients.
    replayed_frames_total: counter { replayed_frames }
    /// Messages published but not kept in their room's history: larger than
    /// --history-bytes on their own.
    history_refused_total: counter { history_refused }
    /// Time from a publish to the kernel accepting its frame (oldest frame of each send).
    publish_to_write_seconds: histogram(PUBLISH_TO_WRITE_BOUNDS_NS, Seconds) {
        publish_to_write
    }
    /// Peer input limited to bound memory, by action: pong_coalesced (a pending pong
    /// replaced by a newer ping's), read_paused (reading paused while unsent bytes were
    /// over the queue cap).
    input_throttled_total: counter_by(InputThrottle) { input_throttled }
    /// Messages compressed for permessage-deflate: at most once per publication form
    /// however many subscribers get it, once per direct send to such a client.
    deflate_compressions_total: counter { deflate_compressions }
    /// Sessions held (attached or detached; --session-grace).
    sessions_active: gauge { sessions_active }
    /// Sessions whose connection is gone, waiting for a resume.
    sessions_detached: gauge { sessions_detached }
    /// Bytes held in detached sessions' buffers.
    session_buffer_bytes: gauge { session_buffer_bytes }
    /// Resume tokens presented, by result: resumed, expired, unknown; buffer_overflow
    /// (also counted as resumed): the resumed session had dropped messages.
    session_resumes_total: counter_by(ResumeResult) { session_resumes }
    /// Always 1: the version and backend.
    build_info: info {
        /// Backend label (as given to [`PrometheusCollector::new`] or `set_backend`).
        ///
        /// [`PrometheusCollector::new`]: super::PrometheusCollector::new
        backend
    }
}

impl ShardBlock {
    /// `connections_opened - connections_closed` on this shard. Reads `closed` first so
    /// a concurrent open/close pair cannot make it look negative (clamped at 0 anyway).
    fn active(&self) -> u64 {
        // A session's grace_expired or session_evicted follows its connection's own
        // close: not a connection.
        let closed = self.connections_closed.get_all()
            - self.connections_closed.get(DisconnectReason::GraceExpired)
            - self
                .connections_closed
                .get(DisconnectReason::SessionEvicted);
        self.connections_opened.get().saturating_sub(closed)
    }
}

impl Snapshot {
    /// Open connections on every shard together.
    pub fn connections_total(&self) -> u64 {
        self.connections_active.iter().sum()
    }
}

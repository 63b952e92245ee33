//! The labels a connection's end and its losses are reported with: why it ended
//! ([`DisconnectReason`]), why a frame was dropped ([`DropReason`]), how a peer's input
//! was throttled ([`InputThrottle`]). Each has `ALL` and `as_str` for the metrics.

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
    /// The peer reset, vanished, or ended its side (EOF) without a close frame, or the
    /// close timed out (RFC 6455 §7.1.5: abnormal closure, 1006).
    Reset,
    /// TLS failed (handshake refused, not TLS at all, a corrupt record): the peer got
    /// the TLS alert, when there was one.
    Tls,
    /// A newer connection presented this connection's session resume token and took
    /// the session over (closed with 4409 "session taken over").
    Duplicate,
    /// A detached session was not resumed within `--session-grace` (counted when the
    /// session ends, after its connection's own end was counted under its cause).
    GraceExpired,
    /// Its resume token named a session of another shard: the socket was handed to
    /// that shard, which answers the upgrade (counted there as a new connection).
    HandedOff,
    /// A detached session was ended before its grace period was over because its shard
    /// held its share of `--session-max-detached` and another session detached (the
    /// oldest detached goes first; counted when the session ends, like `GraceExpired`).
    SessionEvicted,
}

impl DisconnectReason {
    pub const ALL: [DisconnectReason; 14] = [
        DisconnectReason::Normal,
        DisconnectReason::ProtocolError,
        DisconnectReason::SlowConsumer,
        DisconnectReason::PongTimeout,
        DisconnectReason::HandshakeTimeout,
        DisconnectReason::ServerShutdown,
        DisconnectReason::AdmissionRejected,
        DisconnectReason::Panic,
        DisconnectReason::Reset,
        DisconnectReason::Tls,
        DisconnectReason::Duplicate,
        DisconnectReason::GraceExpired,
        DisconnectReason::HandedOff,
        DisconnectReason::SessionEvicted,
    ];

    /// A reason counted when a detached **session** ends, its connection having been
    /// counted under its own cause already (`GraceExpired`, `SessionEvicted`): not a
    /// connection's end.
    pub fn ends_session_only(self) -> bool {
        matches!(
            self,
            DisconnectReason::GraceExpired | DisconnectReason::SessionEvicted
        )
    }

    /// The label value used in metrics and logs.
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
            DisconnectReason::Tls => "tls_error",
            DisconnectReason::Duplicate => "duplicate",
            DisconnectReason::GraceExpired => "grace_expired",
            DisconnectReason::HandedOff => "handed_off",
            DisconnectReason::SessionEvicted => "session_evicted",
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

/// How a peer's input was limited so that what it makes us queue stays bounded
/// (the `action` label of the `input_throttled_total` metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InputThrottle {
    /// A pending pong's payload was replaced by a newer ping's (RFC 6455 §5.5.3).
    PongCoalesced,
    /// Reading stopped because the connection's unsent bytes were over the cap.
    ReadPaused,
}

impl InputThrottle {
    pub const ALL: [InputThrottle; 2] = [InputThrottle::PongCoalesced, InputThrottle::ReadPaused];

    /// The label value used in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            InputThrottle::PongCoalesced => "pong_coalesced",
            InputThrottle::ReadPaused => "read_paused",
        }
    }
}

/// How a presented session resume token was answered (`x-ringcast-resume`), plus
/// resumes whose buffer had overflowed (counted besides `resumed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResumeResult {
    /// The session was detached or attached and is now this connection's.
    Resumed,
    /// The session ended (grace over) within the last grace period: a fresh session.
    Expired,
    /// No such session here (never, long gone, another node, malformed): a fresh session.
    Unknown,
    /// A resume whose buffer dropped messages (the client is told how many).
    BufferOverflow,
}

impl ResumeResult {
    pub const ALL: [ResumeResult; 4] = [
        ResumeResult::Resumed,
        ResumeResult::Expired,
        ResumeResult::Unknown,
        ResumeResult::BufferOverflow,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ResumeResult::Resumed => "resumed",
            ResumeResult::Expired => "expired",
            ResumeResult::Unknown => "unknown",
            ResumeResult::BufferOverflow => "buffer_overflow",
        }
    }
}

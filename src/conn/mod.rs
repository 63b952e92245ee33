//! One connection's state machine, independent of any socket.
//!
//! Phases, named for what the connection is doing (rustls style):
//! `Handshaking` (collecting the request head) → `Open` (exchanging frames) →
//! `Closing` (our close frame or HTTP error is queued, or the peer's EOF arrived; what
//! is queued drains, and we still read, to see the peer's close or EOF, until the close
//! deadline) → `Closed` (the shard has released it).
//!
//! **End of file from the peer is not an error** ([`Connection::on_eof`]): a TCP FIN
//! (or TLS `close_notify`) ends only the peer's write side, and a half-closed peer can
//! still read. So on EOF nothing more is read, but whatever is queued (the reply to its
//! close frame — RFC 6455 §5.5.1 requires it —, echoes, room frames, an HTTP error
//! response) is still written, within the close deadline; then the socket is closed.
//! Only a reset or a socket error drops the queue. An EOF without a close handshake
//! ends the connection as [`DisconnectReason::Reset`] (abnormal closure, what RFC 6455
//! §7.1.5 calls 1006) unless an earlier reason was recorded; no close frame is sent
//! for it, since the peer can no longer answer one.
//!
//! **Every byte a peer can make us queue is bounded per connection**: data frames by
//! the slow-consumer cap ([`QueueLimits`]); pongs by coalescing (at most one pending,
//! see [`OutQueue::push_pong`]); our close frame and HTTP response once each; and
//! [`Connection::may_read`] stops reading from a peer while its unsent bytes are over
//! the cap (read-side backpressure), so no request/response pattern can make the queue
//! grow with what the peer sends.
//!
//! The shard feeds received bytes with [`Connection::feed`], which decodes them and
//! returns one [`ConnEvent`] at a time for the shard to act on (handler callbacks,
//! publishes); the connection answers pings and closes itself by queueing control
//! frames. Data frames go through [`Connection::send_frame`], which applies the
//! slow-consumer policy. The driver writes [`Connection::out`] and calls
//! [`Connection::written`]. One deadline at a time ([`Timer`]) covers the handshake,
//! heartbeat (ping, then pong) and closing timeouts.

pub mod queue;
pub mod timers;

use std::time::Instant;

use crate::proto::close::codes;
use crate::proto::decoder::{Decoder, Event, ProtocolError};
use crate::proto::frame::{encode_close_frame, encode_frame, Opcode};
use crate::proto::handshake::{
    parse_upgrade, reject_response, HeadParse, Rejection, UpgradeRequest,
};
use crate::wire::{PreparedFrame, RoomId};

pub use queue::{Advanced, OutQueue};
pub use timers::{Timeouts, TimerEntry, TimerHeap};

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Handshaking,
    Open,
    Closing,
    Closed,
}

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
}

impl DisconnectReason {
    pub const ALL: [DisconnectReason; 10] = [
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
    ];

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

/// The outcome of [`Connection::send_frame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueue {
    /// Queued (possibly after dropping `dropped_oldest` older frames).
    Queued { dropped_oldest: usize },
    /// Not queued: the queue is full and the policy is `drop-newest`.
    DroppedNewest,
    /// The queue overflowed under the `close` policy: the connection is now closing
    /// with 1008; `dropped` unsent frames were discarded (the new one included).
    ClosedSlow { dropped: usize },
    /// The connection is not open: nothing queued.
    NotOpen,
}

/// The deadline a connection is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// The upgrade must complete by then.
    Handshake,
    /// Time to send a ping.
    Ping,
    /// A frame must have arrived since the ping by then.
    Pong,
    /// The closing handshake must be done by then.
    Close,
}

/// Something the shard must act on.
#[derive(Debug, PartialEq, Eq)]
pub enum ConnEvent {
    /// The request head is complete: the shard must call `accept` or `reject`.
    Upgrade(Box<UpgradeRequest>),
    /// The request head was invalid; the HTTP error response is queued.
    HandshakeRejected(Rejection),
    /// A complete text message (validated once, by the decoder).
    Text(String),
    /// A complete binary message.
    Binary(Vec<u8>),
    /// The peer sent a close frame; our reply is queued.
    PeerClose(Option<(u16, String)>),
    /// The peer broke the protocol; our close frame with `error.code` is queued.
    ProtocolError(ProtocolError),
}

/// What [`Connection::on_eof`] leaves to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eof {
    /// Write what is queued (within the close deadline), then close.
    Flush,
    /// Nothing is left to write: close now.
    Close,
}

/// What the driver should do once the queue has been written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFlush {
    /// Nothing: keep reading.
    Idle,
    /// Our last bytes (close frame or HTTP error) are out: shut down the write side
    /// (our FIN goes first: the server closes first, RFC 6455 §7.1.1) and keep reading,
    /// discarding, until the peer's EOF or the close deadline.
    ShutdownWrite,
    /// The peer's EOF arrived and everything queued is out: close the socket now.
    Close,
}

#[derive(Debug)]
pub struct Connection {
    phase: Phase,
    /// Request head while handshaking; bytes after the head until the upgrade is decided.
    head: Vec<u8>,
    decoder: Decoder,
    pub out: OutQueue,
    /// Rooms this connection joined on its shard.
    pub rooms: Vec<RoomId>,
    /// The armed deadline, if any (see [`TimerHeap`]).
    pub deadline: Option<(Instant, Timer)>,
    /// When the upgrade completed.
    pub opened_at: Option<Instant>,
    /// Our close frame (or HTTP response ending the connection) is queued.
    close_sent: bool,
    close_received: bool,
    write_shut: bool,
    /// The peer's EOF arrived (its write side is done): nothing more is read.
    peer_eof: bool,
    /// Reading is paused because the unsent bytes are over the cap (see `may_read`).
    read_paused: bool,
    /// Pongs replaced by a newer one since the shard last asked (see `take_coalesced`).
    pongs_coalesced: u32,
    /// The 101 was queued: the handler saw `on_open`.
    upgraded: bool,
    /// Bytes arrived since the last ping was sent.
    pub heard_since_ping: bool,
    /// Holds one slot of the admission cap.
    pub admitted: bool,
    /// In the shard's dirty list (has output to flush).
    pub dirty: bool,
    /// Why it is ending (the first reason recorded wins).
    pub reason: Option<DisconnectReason>,
    /// Room messages go out in the sequence framing (the client asked with `?seq=1`).
    pub sequenced: bool,
    /// Rooms resumed from history: (room, last seq replayed). Live messages up to that
    /// number are skipped (they were replayed); the mark goes with the first one after.
    pub replay_marks: Vec<(RoomId, u64)>,
}

impl Default for Connection {
    fn default() -> Self {
        Self::new()
    }
}

impl Connection {
    pub fn new() -> Self {
        Connection {
            phase: Phase::Handshaking,
            head: Vec::new(),
            decoder: Decoder::new(),
            out: OutQueue::default(),
            rooms: Vec::new(),
            deadline: None,
            opened_at: None,
            close_sent: false,
            close_received: false,
            write_shut: false,
            peer_eof: false,
            read_paused: false,
            pongs_coalesced: 0,
            upgraded: false,
            heard_since_ping: false,
            admitted: false,
            dirty: false,
            reason: None,
            sequenced: false,
            replay_marks: Vec::new(),
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn is_open(&self) -> bool {
        self.phase == Phase::Open
    }

    /// Decode from `input` until one event needs the shard (or the input is used up).
    /// Returns the bytes consumed and that event. The shard acts on each event before it
    /// feeds the rest, so a message is handled before a close that followed it.
    ///
    /// After [`ConnEvent::Upgrade`] the shard must call [`Connection::accept`] or
    /// [`Connection::reject`], then feed [`Connection::take_leftover`] (bytes that came
    /// after the request head) before any further input.
    pub fn feed(&mut self, input: &[u8], limits: ConnLimits) -> (usize, Option<ConnEvent>) {
        match self.phase {
            Phase::Handshaking => (input.len(), self.feed_head(input, limits)),
            Phase::Open | Phase::Closing => self.feed_frames(input, limits),
            Phase::Closed => (input.len(), None),
        }
    }

    fn feed_head(&mut self, input: &[u8], limits: ConnLimits) -> Option<ConnEvent> {
        self.head.extend_from_slice(input);
        match parse_upgrade(&self.head, limits.max_head_bytes) {
            Ok(HeadParse::Partial) => None,
            Ok(HeadParse::Complete { request, head_len }) => {
                self.head.drain(..head_len);
                Some(ConnEvent::Upgrade(Box::new(request)))
            }
            Err(rejection) => {
                self.reject(&rejection, &[]);
                Some(ConnEvent::HandshakeRejected(rejection))
            }
        }
    }

    /// Accept the upgrade: queue the 101 response; the connection is open.
    pub fn accept(&mut self, response: Vec<u8>) {
        self.out.push_control(PreparedFrame::from_wire(response));
        self.phase = Phase::Open;
        self.upgraded = true;
        self.deadline = None;
    }

    /// True once the upgrade was accepted (even if the connection is closing now).
    pub fn was_upgraded(&self) -> bool {
        self.upgraded
    }

    /// Bytes that arrived after the request head (to be fed once the upgrade is decided).
    pub fn take_leftover(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.head)
    }

    /// Refuse the upgrade with an HTTP error; the connection ends once it is written.
    pub fn reject(&mut self, rejection: &Rejection, extra_headers: &[(&str, &str)]) {
        self.head = Vec::new();
        self.out
            .push_control(PreparedFrame::from_wire(reject_response(
                rejection.status,
                rejection.reason,
                extra_headers,
            )));
        self.close_sent = true;
        self.phase = Phase::Closing;
        self.reason.get_or_insert(if rejection.status == 503 {
            DisconnectReason::AdmissionRejected
        } else {
            DisconnectReason::ProtocolError
        });
    }

    fn feed_frames(&mut self, input: &[u8], limits: ConnLimits) -> (usize, Option<ConnEvent>) {
        let mut used = 0;
        while used < input.len() {
            if self.close_received {
                // Nothing after a close (or a protocol error) is read.
                return (input.len(), None);
            }
            let decoded = self.decoder.decode(&input[used..], limits.max_message_size);
            used += decoded.consumed.min(input.len() - used);
            match decoded.result {
                Ok(None) => {}
                Ok(Some(event)) => {
                    if let Some(ev) = self.on_frame_event(event) {
                        return (used, Some(ev));
                    }
                }
                Err(error) => {
                    self.close_received = true;
                    if self.phase == Phase::Open {
                        self.send_close(error.code, error.reason);
                        self.reason.get_or_insert(DisconnectReason::ProtocolError);
                        return (input.len(), Some(ConnEvent::ProtocolError(error)));
                    }
                    return (input.len(), None);
                }
            }
        }
        (used, None)
    }

    fn on_frame_event(&mut self, event: Event) -> Option<ConnEvent> {
        let open = self.phase == Phase::Open;
        match event {
            Event::Text(text) if open => Some(ConnEvent::Text(text)),
            Event::Binary(payload) if open => Some(ConnEvent::Binary(payload)),
            Event::Ping(payload) if open => {
                let pong = PreparedFrame::from_wire(encode_frame(true, Opcode::Pong, &payload));
                if self.out.push_pong(pong) {
                    self.pongs_coalesced += 1;
                }
                None
            }
            Event::Close(status) => {
                self.close_received = true;
                self.reason.get_or_insert(DisconnectReason::Normal);
                if self.close_sent {
                    return None;
                }
                let code = status.as_ref().map_or(codes::NORMAL, |(c, _)| *c);
                self.send_close(code, "");
                Some(ConnEvent::PeerClose(status))
            }
            // Data and pings after our close frame, and pongs, need no answer.
            _ => None,
        }
    }

    /// Queue a close frame (once) and enter `Closing`. Nothing is queued after the
    /// peer's EOF: it can no longer answer.
    pub fn send_close(&mut self, code: u16, reason: &str) {
        if self.close_sent || self.peer_eof || self.phase == Phase::Closed {
            return;
        }
        if self.phase == Phase::Handshaking {
            // No WebSocket yet: nothing to say, just end.
            self.close_sent = true;
            self.phase = Phase::Closing;
            return;
        }
        self.out
            .push_control(PreparedFrame::from_wire(encode_close_frame(code, reason)));
        self.close_sent = true;
        self.phase = Phase::Closing;
    }

    /// Queue a ping (heartbeat), unless the previous one is still unsent (a peer that
    /// does not read must not make heartbeats pile up).
    pub fn send_ping(&mut self) {
        if self.phase == Phase::Open {
            if !self.out.ping_pending() {
                self.out.push_ping(PreparedFrame::from_wire(encode_frame(
                    true,
                    Opcode::Ping,
                    b"",
                )));
            }
            self.heard_since_ping = false;
        }
    }

    /// Pongs whose payload was replaced by a newer ping's since the last call (for the
    /// metrics); resets the count.
    pub fn take_coalesced(&mut self) -> u32 {
        std::mem::take(&mut self.pongs_coalesced)
    }

    /// Queue a data frame under the queue limits.
    pub fn send_frame(&mut self, frame: PreparedFrame, limits: QueueLimits) -> Enqueue {
        if self.phase != Phase::Open {
            return Enqueue::NotOpen;
        }
        // An empty queue always takes the frame, so one large message can still pass.
        if self.out.is_empty() || self.out.bytes() + frame.len() <= limits.max_bytes {
            self.out.push_data(frame);
            return Enqueue::Queued { dropped_oldest: 0 };
        }
        match limits.policy {
            SlowPolicy::DropNewest => Enqueue::DroppedNewest,
            SlowPolicy::DropOldest => {
                let dropped_oldest = self.out.drop_oldest(frame.len(), limits.max_bytes);
                self.out.push_data(frame);
                Enqueue::Queued { dropped_oldest }
            }
            SlowPolicy::Close => {
                let dropped = self.out.drop_unstarted_data() + 1;
                self.reason.get_or_insert(DisconnectReason::SlowConsumer);
                self.send_close(codes::POLICY, "slow consumer");
                Enqueue::ClosedSlow { dropped }
            }
        }
    }

    /// Queue a frame replayed from history: bounded by the history limits already, so
    /// not subject to the queue cap (dropping part of a replay would be a silent gap).
    pub fn push_replay(&mut self, frame: PreparedFrame) -> bool {
        if self.phase != Phase::Open {
            return false;
        }
        self.out.push_data(frame);
        true
    }

    /// True when live message `seq` of `room` was already replayed to this connection.
    /// The first message past the mark removes it (a room's messages arrive in order).
    pub fn already_replayed(&mut self, room: RoomId, seq: u64) -> bool {
        let Some(i) = self.replay_marks.iter().position(|(r, _)| *r == room) else {
            return false;
        };
        if seq <= self.replay_marks[i].1 {
            return true;
        }
        self.replay_marks.swap_remove(i);
        false
    }

    /// The kernel accepted `n` bytes.
    pub fn written(&mut self, n: usize) -> Advanced {
        self.out.advance(n)
    }

    /// Called when the queue is empty after a flush.
    pub fn after_flush(&mut self) -> AfterFlush {
        if self.write_shut || !self.out.is_empty() {
            return AfterFlush::Idle;
        }
        if self.peer_eof {
            // Both directions are done: nothing more will come, and all we had is out.
            self.write_shut = true;
            return AfterFlush::Close;
        }
        if self.close_sent {
            // Our FIN goes first (the server closes the TCP connection first, RFC 6455
            // §7.1.1) as a shutdown of the write side, not a close, even when the close
            // handshake is complete: what the peer still sends after its close frame (a
            // TLS client's close_notify) then reaches an open socket and is read and
            // discarded, instead of drawing a reset that can destroy our close reply
            // in the peer's receive buffer. Its EOF (or the close deadline) closes.
            self.write_shut = true;
            return AfterFlush::ShutdownWrite;
        }
        AfterFlush::Idle
    }

    /// The peer's write side ended (TCP FIN: a read returned 0; or TLS `close_notify`).
    /// Not an error: nothing more is read, and what is queued is still written (see the
    /// module doc). Returns [`Eof::Close`] when there is nothing left to write (the
    /// request head was incomplete, or our side was already shut down): close now.
    /// Otherwise [`Eof::Flush`]: flush, and [`Connection::after_flush`] says
    /// [`AfterFlush::Close`] once the queue is empty. No new data frames are queued from
    /// now on (the phase is `Closing`). Calling it again changes no state.
    pub fn on_eof(&mut self) -> Eof {
        if self.phase == Phase::Closed {
            return Eof::Close;
        }
        self.peer_eof = true;
        self.close_received = true;
        // Without a completed close handshake this is an abnormal closure (1006).
        self.reason.get_or_insert(DisconnectReason::Reset);
        if self.phase == Phase::Handshaking {
            // An incomplete request head: there is nothing to answer.
            self.head = Vec::new();
            return Eof::Close;
        }
        self.phase = Phase::Closing;
        if self.write_shut {
            return Eof::Close;
        }
        Eof::Flush
    }

    /// True once the peer's EOF arrived.
    pub fn peer_eof(&self) -> bool {
        self.peer_eof
    }

    /// Read-side backpressure: may the driver read from this connection now? No once
    /// the peer's EOF arrived or the connection is closed, and no while its unsent bytes
    /// (the queue's, plus `extra` the driver still holds, e.g. TLS ciphertext) are over
    /// `max_queue_bytes`: whatever the peer sends then waits in the kernel (and its
    /// sends block), so nothing it asks for (pongs, echoes, handler replies) can grow
    /// our memory. Reading resumes once the bytes are at or under the cap again.
    ///
    /// Returns `(may_read, newly_paused)`: the second is true only on the call that
    /// paused reading (for the metrics).
    pub fn may_read(&mut self, max_queue_bytes: usize, extra: usize) -> (bool, bool) {
        if self.peer_eof || self.phase == Phase::Closed {
            return (false, false);
        }
        let over = self.out.bytes() + extra > max_queue_bytes;
        let newly = over && !self.read_paused;
        self.read_paused = over;
        (!over, newly)
    }

    /// Mark closed; drops queued output and decoder state. Returns data frames dropped.
    pub fn mark_closed(&mut self, reason: DisconnectReason) -> usize {
        self.reason.get_or_insert(reason);
        self.phase = Phase::Closed;
        self.head = Vec::new();
        self.decoder = Decoder::new();
        self.deadline = None;
        self.out.clear()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::frame::encode_masked_frame;
    use crate::proto::handshake::accept_response;

    const LIMITS: ConnLimits = ConnLimits {
        max_head_bytes: 8192,
        max_message_size: 1 << 20,
    };
    const REQ: &[u8] = b"GET /ws/a HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

    /// Feed everything, collecting events (what the shard's loop does).
    fn feed_all(c: &mut Connection, mut input: &[u8]) -> Vec<ConnEvent> {
        let mut events = Vec::new();
        while !input.is_empty() {
            let (n, ev) = c.feed(input, LIMITS);
            input = &input[n..];
            events.extend(ev);
        }
        events
    }

    fn open_conn() -> Connection {
        let mut c = Connection::new();
        let Some(ConnEvent::Upgrade(req)) = feed_all(&mut c, REQ).pop() else {
            panic!("no upgrade")
        };
        c.accept(accept_response(&req.key, &[]));
        let n = c.out.bytes();
        c.written(n);
        c
    }

    fn queued(c: &Connection) -> Vec<u8> {
        c.out.pending().flatten().copied().collect()
    }

    #[test]
    fn frames_in_the_same_read_as_the_head_are_kept_for_after_accept() {
        let mut c = Connection::new();
        let mut input = REQ.to_vec();
        input.extend(encode_masked_frame(true, Opcode::Text, b"hi", [1, 2, 3, 4]));
        let Some(ConnEvent::Upgrade(req)) = feed_all(&mut c, &input).pop() else {
            panic!("no upgrade")
        };
        assert_eq!(req.path, "/ws/a");
        c.accept(accept_response(&req.key, &[]));
        let rest = c.take_leftover();
        assert_eq!(
            feed_all(&mut c, &rest),
            vec![ConnEvent::Text("hi".to_owned())]
        );
        assert!(c.is_open());
    }

    #[test]
    fn a_message_is_handed_over_before_the_close_that_follows_it() {
        let mut c = open_conn();
        let mut input = encode_masked_frame(true, Opcode::Text, b"last", [1, 2, 3, 4]);
        input.extend(encode_masked_frame(
            true,
            Opcode::Close,
            &[0x03, 0xE8],
            [1, 2, 3, 4],
        ));
        let (n, ev) = c.feed(&input, LIMITS);
        assert!(matches!(ev, Some(ConnEvent::Text(_))));
        assert!(
            c.is_open(),
            "still open while the shard handles the message"
        );
        let (_, ev) = c.feed(&input[n..], LIMITS);
        assert_eq!(ev, Some(ConnEvent::PeerClose(Some((1000, String::new())))));
    }

    #[test]
    fn ping_is_answered_with_pong_carrying_the_payload() {
        let mut c = open_conn();
        let ev = feed_all(
            &mut c,
            &encode_masked_frame(true, Opcode::Ping, b"p", [9, 9, 9, 9]),
        );
        assert!(ev.is_empty());
        assert_eq!(queued(&c), vec![0x8A, 1, b'p']);
    }

    #[test]
    fn peer_close_is_echoed_then_the_socket_closes() {
        let mut c = open_conn();
        let payload = [0x03, 0xE8, b'b', b'y', b'e'];
        let ev = feed_all(
            &mut c,
            &encode_masked_frame(true, Opcode::Close, &payload, [1, 1, 1, 1]),
        );
        assert_eq!(ev, vec![ConnEvent::PeerClose(Some((1000, "bye".into())))]);
        assert_eq!(queued(&c), vec![0x88, 2, 0x03, 0xE8]);
        assert_eq!(c.phase(), Phase::Closing);
        assert_eq!(
            c.after_flush(),
            AfterFlush::Idle,
            "close frame not written yet"
        );
        let n = c.out.bytes();
        c.written(n);
        assert_eq!(
            c.after_flush(),
            AfterFlush::ShutdownWrite,
            "handshake done: our FIN first"
        );
        assert_eq!(c.after_flush(), AfterFlush::Idle, "only once");
        assert_eq!(c.on_eof(), Eof::Close, "the peer's FIN closes");
        assert_eq!(c.reason, Some(DisconnectReason::Normal));
    }

    #[test]
    fn protocol_error_queues_close_with_its_code_and_stops_decoding() {
        let mut c = open_conn();
        // Unmasked client frame: 1002.
        let ev = feed_all(&mut c, &[0x81, 0x01, b'x']);
        assert!(matches!(ev[0], ConnEvent::ProtocolError(e) if e.code == 1002));
        let q = queued(&c);
        assert_eq!((q[0], &q[2..4]), (0x88, &[0x03, 0xEA][..]));
        let ev = feed_all(
            &mut c,
            &encode_masked_frame(true, Opcode::Text, b"late", [1, 2, 3, 4]),
        );
        assert!(ev.is_empty(), "nothing is decoded after a protocol error");
    }

    #[test]
    fn bad_request_head_gets_http_error_and_no_upgrade() {
        let mut c = Connection::new();
        let ev = feed_all(&mut c, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(matches!(&ev[0], ConnEvent::HandshakeRejected(r) if r.status == 400));
        assert!(queued(&c).starts_with(b"HTTP/1.1 400"));
        assert_eq!(c.phase(), Phase::Closing);
    }

    const QL: QueueLimits = QueueLimits {
        max_bytes: 10,
        policy: SlowPolicy::Close,
    };

    fn data(n: usize) -> PreparedFrame {
        PreparedFrame::from_wire(vec![0x82; n])
    }

    #[test]
    fn data_is_not_queued_unless_open() {
        let mut c = Connection::new();
        assert_eq!(c.send_frame(data(2), QL), Enqueue::NotOpen);
        let mut c = open_conn();
        assert_eq!(
            c.send_frame(data(2), QL),
            Enqueue::Queued { dropped_oldest: 0 }
        );
        c.send_close(1000, "");
        assert_eq!(c.send_frame(data(2), QL), Enqueue::NotOpen);
    }

    #[test]
    fn slow_policies_apply_over_the_cap() {
        let limits = |policy| QueueLimits {
            max_bytes: 10,
            policy,
        };
        let mut c = open_conn();
        for _ in 0..2 {
            c.send_frame(data(4), limits(SlowPolicy::DropNewest));
        }
        assert_eq!(
            c.send_frame(data(4), limits(SlowPolicy::DropNewest)),
            Enqueue::DroppedNewest
        );
        assert_eq!(c.out.bytes(), 8);
        assert_eq!(
            c.send_frame(data(4), limits(SlowPolicy::DropOldest)),
            Enqueue::Queued { dropped_oldest: 1 }
        );
        assert_eq!(c.out.bytes(), 8);
        assert_eq!(
            c.send_frame(data(4), limits(SlowPolicy::Close)),
            Enqueue::ClosedSlow { dropped: 3 }
        );
        assert_eq!(c.reason, Some(DisconnectReason::SlowConsumer));
        assert_eq!(c.phase(), Phase::Closing);
        // Only the close frame 1008 is left.
        let q = queued(&c);
        assert_eq!((q[0], &q[2..4]), (0x88, &1008u16.to_be_bytes()[..]));
    }

    #[test]
    fn replayed_seqs_are_skipped_until_the_first_newer_one() {
        let mut c = open_conn();
        let (a, b) = (RoomId(1), RoomId(2));
        c.replay_marks.push((a, 10));
        assert!(c.already_replayed(a, 9) && c.already_replayed(a, 10));
        assert!(!c.already_replayed(b, 3), "other rooms are not affected");
        assert!(!c.already_replayed(a, 11));
        assert!(c.replay_marks.is_empty(), "the mark is gone once passed");
        assert!(c.push_replay(data(100)), "replay ignores the queue cap");
    }

    #[test]
    fn an_empty_queue_takes_one_frame_larger_than_the_cap() {
        let mut c = open_conn();
        assert_eq!(
            c.send_frame(data(100), QL),
            Enqueue::Queued { dropped_oldest: 0 }
        );
    }

    #[test]
    fn a_ping_flood_keeps_one_pending_pong() {
        let mut c = open_conn();
        let mut input = Vec::new();
        for i in 0..1000u32 {
            input.extend(encode_masked_frame(
                true,
                Opcode::Ping,
                &i.to_be_bytes(),
                [1, 2, 3, 4],
            ));
        }
        assert!(feed_all(&mut c, &input).is_empty());
        assert_eq!(c.out.len(), 1);
        assert_eq!(c.take_coalesced(), 999);
        assert_eq!(c.take_coalesced(), 0, "taken once");
        // The latest ping is the one answered.
        assert_eq!(queued(&c), [&[0x8A, 4][..], &999u32.to_be_bytes()].concat());
    }

    #[test]
    fn heartbeat_pings_do_not_pile_up_unsent() {
        let mut c = open_conn();
        c.send_ping();
        c.send_ping();
        assert_eq!(queued(&c), vec![0x89, 0]);
        c.written(2);
        c.send_ping();
        assert_eq!(queued(&c), vec![0x89, 0]);
    }

    #[test]
    fn close_then_eof_still_writes_the_close_reply_then_closes() {
        let mut c = open_conn();
        let ev = feed_all(
            &mut c,
            &encode_masked_frame(true, Opcode::Close, &[0x03, 0xE8], [0x37, 0xfa, 0x21, 0x3d]),
        );
        assert_eq!(ev, vec![ConnEvent::PeerClose(Some((1000, String::new())))]);
        assert_eq!(c.on_eof(), Eof::Flush, "the reply is still queued");
        assert_eq!(queued(&c), vec![0x88, 2, 0x03, 0xE8]);
        assert_eq!(c.after_flush(), AfterFlush::Idle);
        c.written(4);
        assert_eq!(c.after_flush(), AfterFlush::Close);
        assert_eq!(c.reason, Some(DisconnectReason::Normal));
    }

    #[test]
    fn bare_eof_flushes_what_is_queued_then_closes_as_reset() {
        let mut c = open_conn();
        c.send_frame(data(3), QL);
        assert_eq!(c.on_eof(), Eof::Flush);
        assert_eq!(c.phase(), Phase::Closing);
        assert_eq!(c.send_frame(data(3), QL), Enqueue::NotOpen, "nothing new");
        c.send_close(1001, "going away");
        assert_eq!(
            c.out.len(),
            1,
            "no close frame to a peer that cannot answer"
        );
        assert_eq!(c.may_read(QL.max_bytes, 0), (false, false));
        assert_eq!(c.on_eof(), Eof::Flush, "a repeated EOF changes nothing");
        c.written(3);
        assert_eq!(c.after_flush(), AfterFlush::Close);
        assert_eq!(c.reason, Some(DisconnectReason::Reset));
        assert_eq!(c.after_flush(), AfterFlush::Idle, "only once");
    }

    #[test]
    fn eof_mid_head_closes_at_once_and_after_a_rejection_flushes_the_response() {
        let mut c = Connection::new();
        feed_all(&mut c, b"GET /ws/a HTTP/1.1\r\nHost");
        assert_eq!(c.on_eof(), Eof::Close);
        let mut c = Connection::new();
        feed_all(&mut c, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(c.on_eof(), Eof::Flush);
        assert!(queued(&c).starts_with(b"HTTP/1.1 400"));
        let n = c.out.bytes();
        c.written(n);
        assert_eq!(c.after_flush(), AfterFlush::Close);
        assert_eq!(c.reason, Some(DisconnectReason::ProtocolError));
    }

    #[test]
    fn eof_after_our_write_side_is_shut_closes_at_once() {
        let mut c = open_conn();
        c.send_close(1000, "");
        c.written(4);
        assert_eq!(c.after_flush(), AfterFlush::ShutdownWrite);
        assert_eq!(c.on_eof(), Eof::Close);
    }

    #[test]
    fn reading_pauses_while_unsent_bytes_are_over_the_cap() {
        let mut c = open_conn();
        assert_eq!(c.may_read(10, 0), (true, false));
        c.send_frame(data(8), QL);
        assert_eq!(c.may_read(10, 2), (true, false), "at the cap is fine");
        assert_eq!(c.may_read(10, 3), (false, true), "over it: paused");
        assert_eq!(c.may_read(10, 3), (false, false), "counted once");
        c.written(5);
        assert_eq!(c.may_read(10, 3), (true, false), "resumed");
    }
}

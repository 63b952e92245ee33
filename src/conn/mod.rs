//! One connection's state machine, independent of any socket.
//!
//! Phases, named for what the connection is doing (rustls style):
//! `Handshaking` (collecting the request head) → `Open` (exchanging frames) →
//! `Closing` (our close frame or HTTP error is queued; we still read, to see the peer's
//! close or EOF, until the close deadline) → `Closed` (the shard has released it).
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

use crate::hub::{PreparedFrame, RoomId};
use crate::proto::close::codes;
use crate::proto::decoder::{Decoder, Event, ProtocolError};
use crate::proto::frame::{encode_close_frame, encode_frame, Opcode};
use crate::proto::handshake::{
    parse_upgrade, reject_response, HeadParse, Rejection, UpgradeRequest,
};

pub use queue::{Advanced, OutQueue};
pub use timers::{TimerEntry, TimerHeap};

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Handshaking,
    Open,
    Closing,
    Closed,
}

/// Limits the connection enforces while decoding.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub max_head_bytes: usize,
    pub max_message_size: usize,
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
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    pub max_bytes: usize,
    pub policy: SlowPolicy,
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
    /// The peer reset or vanished without a close frame, or the close timed out.
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
    /// A complete data message (text is valid UTF-8).
    Message { text: bool, payload: Vec<u8> },
    /// The peer sent a close frame; our reply is queued.
    PeerClose(Option<(u16, String)>),
    /// The peer broke the protocol; our close frame with `error.code` is queued.
    ProtocolError(ProtocolError),
}

/// What the driver should do once the queue has been written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFlush {
    /// Nothing: keep reading.
    Idle,
    /// Our last bytes are out: shut down the write side, keep reading until EOF.
    ShutdownWrite,
    /// The close handshake is complete (the peer's close came first and ours is out):
    /// close the TCP connection now — the server closes first (RFC 6455 §7.1.1).
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
    /// The peer's close frame arrived (a clean close handshake, not a protocol error).
    peer_sent_close: bool,
    write_shut: bool,
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
            peer_sent_close: false,
            write_shut: false,
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
            Event::Text(payload) if open => Some(ConnEvent::Message {
                text: true,
                payload,
            }),
            Event::Binary(payload) if open => Some(ConnEvent::Message {
                text: false,
                payload,
            }),
            Event::Ping(payload) if open => {
                self.out.push_control(PreparedFrame::from_wire(encode_frame(
                    true,
                    Opcode::Pong,
                    &payload,
                )));
                None
            }
            Event::Close(status) => {
                self.close_received = true;
                self.peer_sent_close = true;
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

    /// Queue a close frame (once) and enter `Closing`.
    pub fn send_close(&mut self, code: u16, reason: &str) {
        if self.close_sent || self.phase == Phase::Closed {
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

    /// Queue a ping (heartbeat).
    pub fn send_ping(&mut self) {
        if self.phase == Phase::Open {
            self.out.push_control(PreparedFrame::from_wire(encode_frame(
                true,
                Opcode::Ping,
                b"",
            )));
            self.heard_since_ping = false;
        }
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
        if self.close_sent && !self.write_shut && self.out.is_empty() {
            self.write_shut = true;
            if self.peer_sent_close {
                return AfterFlush::Close;
            }
            return AfterFlush::ShutdownWrite;
        }
        AfterFlush::Idle
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
            vec![ConnEvent::Message {
                text: true,
                payload: b"hi".to_vec()
            }]
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
        assert!(matches!(ev, Some(ConnEvent::Message { .. })));
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
            AfterFlush::Close,
            "handshake done: close now"
        );
        assert_eq!(c.after_flush(), AfterFlush::Idle, "only once");
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
}

//! [`Connection`]: one connection's state machine (see the module doc of `conn`; an SSE
//! stream's differences are in `connection/sse.rs`), its states as enums — how far the
//! upgrade got ([`Stage`]), our direction ([`Output`]), the peer's ([`Input`]) — and what
//! it tells the shard and the driver ([`ConnEvent`], [`Enqueue`], [`Eof`],
//! [`AfterFlush`]).

use crate::proto::body::BodyReader;
use crate::proto::close::codes;
use crate::proto::decoder::{Decoder, Event, ProtocolError};
use crate::proto::deflate::Agreement;
use crate::proto::frame::{encode_close_frame, encode_frame, Opcode};
use crate::proto::handshake::{reject_response, Rejection, Transport, UpgradeRequest};
use crate::proto::request::{parse_request, PlainRequest, Request, RequestParse};
use crate::wire::PreparedFrame;

use self::sse::{sse_end, sse_heartbeat};
use super::queue::{Advanced, LocalFrame, OutQueue};
use super::{ConnLimits, DisconnectReason, QueueLimits, SlowPolicy};

/// Where a connection is in its life, as the shard and drivers see it (derived from
/// how far the upgrade got and the state of each direction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Collecting the request head.
    Handshaking,
    /// Upgraded; neither side has started to close.
    Open,
    /// Our close frame or HTTP error is queued, or the peer's EOF arrived: what is queued
    /// drains, until the close deadline.
    Closing,
    /// Released by the shard.
    Closed,
}

/// How far the HTTP upgrade got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Collecting the request head.
    Handshaking,
    /// Reading a routed plain request's body (see `http.rs`).
    Body,
    /// The 101 was queued: the handler saw `on_open`.
    Upgraded,
    /// The request was answered with an HTTP error, or with the last response of a
    /// plain request (queued): the connection ends once it is written.
    Refused,
    /// Released; `upgraded` says whether it had been upgraded.
    Closed { upgraded: bool },
}

/// Our direction of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    /// Frames (or the 101) may be queued.
    Open,
    /// Our close frame (or the HTTP response ending the connection) is queued: only
    /// control frames already queued still go.
    Closing,
    /// Everything is written and our write side is shut down (FIN sent).
    Shut,
}

/// The peer's direction of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    /// Its bytes are decoded.
    Open,
    /// Its close frame arrived, or it broke the protocol: what it still sends is read
    /// and discarded.
    Discarding,
    /// Its EOF arrived (TCP FIN or TLS `close_notify`): nothing more is read.
    Eof,
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

/// Something the shard must act on.
#[derive(Debug, PartialEq, Eq)]
pub enum ConnEvent {
    /// The request head is complete: the shard must call `accept` or `reject`.
    Upgrade(Box<UpgradeRequest>),
    /// A complete plain (non-upgrade) request head: the shard routes it (answers it,
    /// or `reject`s it). The bytes after the head are not consumed: they are fed next
    /// (its body, or the next request).
    Request(Box<PlainRequest>),
    /// The request head was invalid; the HTTP error response is queued.
    HandshakeRejected(Rejection),
    /// A complete text message (validated once, by the decoder).
    Text(String),
    /// A complete binary message.
    Binary(Vec<u8>),
    /// The complete body of a routed plain request: the shard must `respond`.
    Body(Vec<u8>),
    /// A routed plain request's body broke its framing or the cap; the HTTP error
    /// response is queued.
    BodyRejected(Rejection),
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

/// One connection's protocol and queue state (see the module doc of `conn`). The
/// shard's bookkeeping about it (rooms, deadline, flags) lives in the shard's slot.
#[derive(Debug)]
pub struct Connection {
    stage: Stage,
    output: Output,
    input: Input,
    /// Request head while handshaking; bytes after the head until the upgrade is decided.
    head: Vec<u8>,
    /// A routed plain request's body being read (stage `Body`).
    body: Option<Box<BodyReader>>,
    decoder: Decoder,
    /// Frames to write, in order (the driver reads it through [`Connection::out`]).
    out: OutQueue,
    /// Backpressure, beside the protocol state: reading is paused because the unsent
    /// bytes are over the cap (see `may_read`).
    read_paused: bool,
    /// Pongs replaced by a newer one since the shard last asked (see `take_coalesced`).
    pongs_coalesced: u32,
    /// Why it is ending (the first reason recorded wins).
    reason: Option<DisconnectReason>,
    /// permessage-deflate negotiated and our compressed output valid for the peer: data
    /// frames may go compressed (RSV1). Inbound decompression is the decoder's.
    compresses: bool,
    /// WebSocket, or an SSE stream (see `sse.rs`): set when the request is accepted.
    transport: Transport,
}

impl Default for Connection {
    fn default() -> Self {
        Self::new()
    }
}

impl Connection {
    /// A connection waiting for its request head.
    pub fn new() -> Self {
        Connection {
            stage: Stage::Handshaking,
            output: Output::Open,
            input: Input::Open,
            head: Vec::new(),
            body: None,
            decoder: Decoder::new(),
            out: OutQueue::default(),
            read_paused: false,
            pongs_coalesced: 0,
            reason: None,
            compresses: false,
            transport: Transport::WebSocket,
        }
    }

    /// The frames queued to be written, for the driver to write from (it reports what
    /// the kernel took with [`Connection::written`]).
    pub fn out(&self) -> &OutQueue {
        &self.out
    }

    /// io_uring: the first `frames` queued frames are in a send in flight (see
    /// [`OutQueue::set_in_flight`]).
    pub fn set_in_flight(&mut self, frames: usize) {
        self.out.set_in_flight(frames);
    }

    /// Give back the queue's spare capacity while the connection is idle (see
    /// [`OutQueue::shrink_idle`]).
    pub fn shrink_idle(&mut self) {
        self.out.shrink_idle();
    }

    /// Why the connection is ending, once a reason was recorded.
    pub fn reason(&self) -> Option<DisconnectReason> {
        self.reason
    }

    /// Record why the connection is ending, unless a reason was recorded before (the
    /// first one wins).
    pub fn record_reason(&mut self, reason: DisconnectReason) {
        self.reason.get_or_insert(reason);
    }

    /// The coarse state (see [`Phase`]).
    pub fn phase(&self) -> Phase {
        match (self.stage, self.output, self.input) {
            (Stage::Closed { .. }, _, _) => Phase::Closed,
            (Stage::Handshaking | Stage::Body, Output::Open, _) => Phase::Handshaking,
            (Stage::Upgraded, Output::Open, Input::Open | Input::Discarding) => Phase::Open,
            _ => Phase::Closing,
        }
    }

    /// True while messages can be exchanged.
    pub fn is_open(&self) -> bool {
        self.phase() == Phase::Open
    }

    /// Decode from `input` until one event needs the shard (or the input is used up).
    /// Returns the bytes consumed and that event. The shard acts on each event before it
    /// feeds the rest, so a message is handled before a close that followed it.
    ///
    /// After [`ConnEvent::Upgrade`] the shard must call [`Connection::accept`] or
    /// [`Connection::reject`], then feed [`Connection::take_leftover`] (bytes that came
    /// after the request head) before any further input.
    pub fn feed(&mut self, input: &[u8], limits: ConnLimits) -> (usize, Option<ConnEvent>) {
        match self.phase() {
            Phase::Handshaking if self.stage == Stage::Body => self.feed_body(input),
            Phase::Handshaking => self.feed_head(input, limits),
            Phase::Open | Phase::Closing if self.transport == Transport::Sse => {
                (input.len(), self.feed_sse(input))
            }
            Phase::Open | Phase::Closing => self.feed_frames(input, limits),
            Phase::Closed => (input.len(), None),
        }
    }

    /// A plain request's head consumes only its own bytes of `input` (what follows is
    /// its body or the next request, fed next); an upgrade's keeps the rest as the
    /// leftover.
    fn feed_head(&mut self, input: &[u8], limits: ConnLimits) -> (usize, Option<ConnEvent>) {
        let before = self.head.len();
        self.head.extend_from_slice(input);
        let event = match parse_request(&self.head, limits.max_head_bytes) {
            Ok(RequestParse::Partial) => None,
            Ok(RequestParse::Complete {
                request: Request::Upgrade(request),
                head_len,
            }) => {
                self.head.drain(..head_len);
                Some(ConnEvent::Upgrade(Box::new(request)))
            }
            Ok(RequestParse::Complete {
                request: Request::Plain(request),
                head_len,
            }) => {
                self.head = Vec::new();
                let used = head_len.saturating_sub(before).min(input.len());
                return (used, Some(ConnEvent::Request(Box::new(request))));
            }
            Err(rejection) => {
                self.reject(&rejection, &[]);
                Some(ConnEvent::HandshakeRejected(rejection))
            }
        };
        (input.len(), event)
    }

    /// Accept the upgrade: queue the 101 response; the connection is open.
    pub fn accept(&mut self, response: Vec<u8>) {
        self.out.push_control(PreparedFrame::from_wire(response));
        self.stage = Stage::Upgraded;
    }

    /// permessage-deflate was agreed in the 101 just queued: inbound messages may be
    /// compressed, and outbound ones may be when the agreement allows our output.
    pub fn enable_deflate(&mut self, agreement: Agreement) {
        self.decoder
            .enable_deflate(agreement.client_no_context_takeover);
        self.compresses = agreement.accepts_our_output();
    }

    /// True when permessage-deflate was agreed and our compressed output is valid for
    /// the peer (RFC 7692 §7.1.1): its data frames may go compressed.
    pub fn compresses(&self) -> bool {
        self.compresses
    }

    /// True once the upgrade was accepted (even if the connection is closing now).
    pub fn was_upgraded(&self) -> bool {
        matches!(
            self.stage,
            Stage::Upgraded | Stage::Closed { upgraded: true }
        )
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
        self.stage = Stage::Refused;
        self.output = Output::Closing;
        self.reason.get_or_insert(if rejection.status == 503 {
            DisconnectReason::AdmissionRejected
        } else {
            DisconnectReason::ProtocolError
        });
    }

    fn feed_frames(&mut self, input: &[u8], limits: ConnLimits) -> (usize, Option<ConnEvent>) {
        let mut used = 0;
        while used < input.len() {
            if self.input != Input::Open {
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
                    let open = self.is_open();
                    self.input = Input::Discarding;
                    if open {
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
        let open = self.is_open();
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
                self.input = Input::Discarding;
                self.reason.get_or_insert(DisconnectReason::Normal);
                if self.output != Output::Open {
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

    /// Queue a close frame (once; on an SSE stream the last chunk, which ends the
    /// response: `code` and `reason` are not sent) and enter `Closing`. Nothing is
    /// queued after the peer's EOF: it can no longer answer.
    pub fn send_close(&mut self, code: u16, reason: &str) {
        if self.output != Output::Open
            || self.input == Input::Eof
            || matches!(self.stage, Stage::Closed { .. })
        {
            return;
        }
        self.output = Output::Closing;
        if self.stage == Stage::Handshaking {
            // No WebSocket yet: nothing to say, just end.
            return;
        }
        if self.transport == Transport::Sse {
            self.out.push_control(sse_end());
            return;
        }
        self.out
            .push_control(PreparedFrame::from_wire(encode_close_frame(code, reason)));
    }

    /// Queue a ping (heartbeat; on an SSE stream the comment chunk `:`), unless the
    /// previous one is still unsent (a peer that does not read must not make heartbeats
    /// pile up). Returns false when the connection is not open (nothing is sent, no
    /// answer is awaited).
    pub fn send_ping(&mut self) -> bool {
        if !self.is_open() {
            return false;
        }
        if !self.out.ping_pending() && self.transport == Transport::Sse {
            self.out.push_ping(sse_heartbeat());
        } else if !self.out.ping_pending() {
            self.out.push_ping(PreparedFrame::from_wire(encode_frame(
                true,
                Opcode::Ping,
                b"",
            )));
        }
        true
    }

    /// Pongs whose payload was replaced by a newer ping's since the last call (for the
    /// metrics); resets the count.
    pub fn take_coalesced(&mut self) -> u32 {
        std::mem::take(&mut self.pongs_coalesced)
    }

    /// Queue a data frame under the queue limits (a [`PreparedFrame`], or a shard-local
    /// [`LocalFrame`] shared by a fan-out's members).
    pub fn send_frame(&mut self, frame: impl Into<LocalFrame>, limits: QueueLimits) -> Enqueue {
        if !self.is_open() {
            return Enqueue::NotOpen;
        }
        let frame = frame.into();
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
    pub fn push_replay(&mut self, frame: impl Into<LocalFrame>) -> bool {
        if !self.is_open() {
            return false;
        }
        self.out.push_data(frame);
        true
    }

    /// The kernel accepted `n` bytes.
    pub fn written(&mut self, n: usize) -> Advanced {
        self.out.advance(n)
    }

    /// Called when the queue is empty after a flush.
    pub fn after_flush(&mut self) -> AfterFlush {
        if self.output == Output::Shut || !self.out.is_empty() {
            return AfterFlush::Idle;
        }
        if self.input == Input::Eof {
            // Both directions are done: nothing more will come, and all we had is out.
            self.output = Output::Shut;
            return AfterFlush::Close;
        }
        if self.output == Output::Closing {
            // Our FIN goes first (the server closes the TCP connection first, RFC 6455
            // §7.1.1) as a shutdown of the write side, not a close, even when the close
            // handshake is complete: what the peer still sends after its close frame (a
            // TLS client's close_notify) then reaches an open socket and is read and
            // discarded, instead of drawing a reset that can destroy our close reply
            // in the peer's receive buffer. Its EOF (or the close deadline) closes.
            self.output = Output::Shut;
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
        if matches!(self.stage, Stage::Closed { .. }) {
            return Eof::Close;
        }
        let was = self.phase();
        self.input = Input::Eof;
        // Without a completed close handshake this is an abnormal closure (1006).
        self.reason.get_or_insert(DisconnectReason::Reset);
        if was == Phase::Handshaking {
            // An incomplete request head or body: there is nothing to answer; only
            // responses to earlier requests (keep-alive) may still be queued.
            self.head = Vec::new();
            self.body = None;
            if self.out.is_empty() {
                return Eof::Close;
            }
            self.output = Output::Closing;
            return Eof::Flush;
        }
        if self.output == Output::Shut {
            return Eof::Close;
        }
        Eof::Flush
    }

    /// True once the peer's EOF arrived.
    pub fn peer_eof(&self) -> bool {
        self.input == Input::Eof
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
        if self.input == Input::Eof || matches!(self.stage, Stage::Closed { .. }) {
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
        self.stage = Stage::Closed {
            upgraded: self.was_upgraded(),
        };
        self.head = Vec::new();
        self.body = None;
        self.decoder = Decoder::new();
        self.out.clear()
    }
}

mod http;
mod sse;
#[cfg(test)]
mod tests;

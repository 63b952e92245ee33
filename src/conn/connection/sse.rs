//! A [`Connection`] serving Server-Sent Events (`GET /sse/{room}`): output only.
//!
//! Accepted with [`Connection::accept_sse`], it is `Open` like an upgraded WebSocket:
//! the same queue, cap and slow-consumer policy carry its events (one chunk each, see
//! [`crate::proto::sse`]). What differs, in `connection.rs` through these helpers: a
//! heartbeat is the comment chunk `:` (no answer is awaited), ending it queues the last
//! chunk (`0\r\n\r\n`) instead of a close frame, and the client may send nothing after
//! its request head: the request has no body (the shard refused one with 400 before
//! accepting), so further bytes are a pipelined request, which a response that never
//! ends cannot answer (RFC 9112 §9.3.2). They end the stream with the last chunk and the
//! connection closes (`protocol_error`); the client may retry that request on a new
//! connection (RFC 9112 §9.3.1). The client's EOF ends it like a WebSocket's.

use crate::proto::decoder::ProtocolError;
use crate::proto::handshake::Transport;
use crate::proto::sse::{retry_chunk, HEARTBEAT_CHUNK, LAST_CHUNK};
use crate::wire::PreparedFrame;

use super::{ConnEvent, Connection, DisconnectReason, Input, Output, Stage};

/// The last chunk: the event stream (the chunked response) ends.
pub(super) fn sse_end() -> PreparedFrame {
    PreparedFrame::from_wire(LAST_CHUNK.to_vec())
}

/// The heartbeat comment chunk.
pub(super) fn sse_heartbeat() -> PreparedFrame {
    PreparedFrame::from_wire(HEARTBEAT_CHUNK.to_vec())
}

impl Connection {
    /// Accept the request as an SSE stream: queue `head` (the `200` response head) and
    /// the first chunk, `retry: <retry_ms>`; the connection is open, transport SSE.
    pub fn accept_sse(&mut self, mut head: Vec<u8>, retry_ms: u64) {
        head.extend_from_slice(&retry_chunk(retry_ms));
        self.out.push_control(PreparedFrame::from_wire(head));
        self.stage = Stage::Upgraded;
        self.transport = Transport::Sse;
    }

    /// WebSocket, or SSE once accepted with [`Connection::accept_sse`].
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// Bytes from an SSE client after its request head (see the module doc): the first
    /// ones end the stream with the last chunk (and are reported once, as a protocol
    /// error); everything is discarded.
    pub(super) fn feed_sse(&mut self, input: &[u8]) -> Option<ConnEvent> {
        if input.is_empty() || self.input != Input::Open {
            return None;
        }
        self.input = Input::Discarding;
        if self.output != Output::Open {
            return None;
        }
        self.reason.get_or_insert(DisconnectReason::ProtocolError);
        self.send_close(0, "");
        Some(ConnEvent::ProtocolError(ProtocolError::protocol(
            "bytes after an sse request",
        )))
    }
}

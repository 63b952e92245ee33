//! Server-Sent Events on a shard: opening a `GET /sse/{room}` stream (the same policy
//! as an upgrade — Origin, handler, admission — then the `200` head with the
//! [`super::SHARD_HEADER`] and CORS headers, the `retry:` chunk, heartbeats, `on_open`)
//! and the SSE forms of what the shard queues to such a connection: room messages
//! ([`crate::wire::Encoding::Sse`], built once per publication), one-off messages
//! ([`crate::Context::send`]) and the `gap` / `reset` announcements of a resume.
//!
//! An SSE connection is a slot like any other: the same queue, slow-consumer policy,
//! timers, shutdown and metrics paths. Its request must be HTTP/1.1 or later (chunked
//! responses are HTTP/1.1, RFC 9112 §7.1) and carry no body (RFC 9110 §9.3.1: a body on
//! a `GET` has no meaning): else 400.

use std::time::Instant;

use crate::proto::handshake::Rejection;
use crate::proto::request::PlainRequest;
use crate::proto::sse::{chunk, event, message_chunk, response_head};
use crate::wire::{ConnKey, PreparedFrame};

use super::api::Message;
use super::{Shard, SHARD_HEADER};

/// Path prefix routed to SSE (`/sse/{room}`).
pub const SSE_PREFIX: &str = "/sse/";

/// One SSE event of type `kind` (`gap`, `reset`) with `json` as its data, as a chunk.
pub(super) fn sse_control(kind: &str, json: &str) -> PreparedFrame {
    PreparedFrame::from_wire(chunk(&event(None, Some(kind), json.as_bytes())))
}

/// An application message as one SSE event for one connection ([`crate::Context::send`]).
pub(super) fn sse_message(message: Message<'_>) -> PreparedFrame {
    PreparedFrame::from_wire(match message {
        Message::Text(t) => message_chunk(None, false, t.as_bytes()),
        Message::Binary(b) => message_chunk(None, true, b),
    })
}

impl Shard {
    /// Open the SSE stream `request` asked for on `key` (see the module doc), or refuse
    /// it.
    pub(super) fn open_sse(&mut self, key: ConnKey, request: &PlainRequest, now: Instant) {
        let refusal = if request.minor_version != 1 {
            Some("http/1.1 or later required")
        } else if request.has_body() {
            Some("an sse request carries no body")
        } else {
            None
        };
        if let Some(reason) = refusal {
            let id = self.state.id;
            let rejection = Rejection {
                status: 400,
                reason,
            };
            self.state.slots[key].conn.reject(&rejection, &[]);
            self.state.metrics().handshake_rejected(id, 400);
            return;
        }
        let request = request.to_sse();
        if !self.admit(key, &request) {
            return;
        }
        let shard = self.state.id.to_string();
        let mut headers = vec![(SHARD_HEADER, shard.as_str())];
        // The Origin passed the allow-list in `admit`: a cross-origin EventSource may read.
        if let Some(origin) = request.origin.as_deref() {
            headers.push(("Access-Control-Allow-Origin", origin));
            headers.push(("Vary", "Origin"));
        }
        let retry = self.config().sse_retry.as_millis();
        let retry = u64::try_from(retry).unwrap_or(u64::MAX);
        self.state.slots[key]
            .conn
            .accept_sse(response_head(&headers), retry);
        self.opened(key, &request, now);
    }
}

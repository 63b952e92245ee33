//! Server-Sent Events on a shard: opening a `GET /sse/{room}` stream (the same policy
//! as an upgrade — Origin, handler, admission — then the `200` head with the
//! [`super::SHARD_HEADER`] and CORS headers, the `retry:` chunk, heartbeats, `on_open`).
//! What the shard queues to such a connection is SSE chunks: room messages
//! ([`crate::wire::Encoding::Sse`], built once per publication, in `publish.rs`), one-off
//! messages ([`crate::Context::send`], [`crate::wire::PreparedFrame::sse_message`]) and the `gap` /
//! `reset` announcements of a resume (`replay.rs`, [`crate::wire::PreparedFrame::sse_event`]).
//!
//! With sessions on (`--session-grace`), the stream opens or resumes a session as an
//! upgrade does (`super::session`): the `200` carries the session headers, and the
//! first event after `retry:` is `event: session` with the same facts as JSON (an
//! `EventSource` cannot read response headers). A resume token naming another shard's
//! session hands the socket to that shard, which opens the stream
//! ([`Shard::sse_stream`]).
//!
//! An SSE connection is a slot like any other: the same queue, slow-consumer policy,
//! timers, shutdown and metrics paths. Its request must be HTTP/1.1 or later (chunked
//! responses are HTTP/1.1, RFC 9112 §7.1) and carry no body (RFC 9110 §9.3.1: a body on
//! a `GET` has no meaning): else 400.

use std::time::Instant;

use crate::proto::handshake::{Rejection, UpgradeRequest};
use crate::proto::request::PlainRequest;
use crate::proto::sse::response_head;
use crate::wire::ConnKey;

use super::{Shard, SHARD_HEADER};

/// Path prefix routed to SSE (`/sse/{room}`).
pub const SSE_PREFIX: &str = "/sse/";

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
        self.sse_stream(key, &request.to_sse(), now);
    }

    /// Open the SSE stream of `request` (transport SSE, its request checked) on `key`:
    /// hand the socket over when its resume token names another shard's session, else
    /// the upgrade policy, the session, the `200`, `retry:`, the `session` event, and
    /// `on_open` or `on_resume`. Also the entry of a socket handed over to this shard.
    pub(crate) fn sse_stream(&mut self, key: ConnKey, request: &UpgradeRequest, now: Instant) {
        if let Some(shard) = self.state.session_elsewhere(request) {
            return self.hand_over(key, request, shard);
        }
        if !self.admit(key, request) {
            return;
        }
        let session = self.state.start_session(key, request, now);
        let shard = self.state.id.to_string();
        let mut headers = vec![(SHARD_HEADER, shard.as_str())];
        headers.extend(session.headers.iter().map(|(n, v)| (*n, v.as_str())));
        // The Origin passed the allow-list in `admit`: a cross-origin EventSource may read.
        if let Some(origin) = request.origin.as_deref() {
            headers.push(("Access-Control-Allow-Origin", origin));
            headers.push(("Vary", "Origin"));
        }
        let retry = self.config().sse_retry.as_millis();
        let retry = u64::try_from(retry).unwrap_or(u64::MAX);
        let conn = &mut self.state.slots[key].conn;
        conn.accept_sse(response_head(&headers), retry);
        if let Some(event) = session.sse_event() {
            conn.push_replay(event);
        }
        self.opened(key, request, now, session.from);
    }
}

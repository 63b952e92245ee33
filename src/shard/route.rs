//! Routing of plain (non-upgrade) HTTP requests ([`crate::proto::request`]): what a
//! request head that is not a WebSocket upgrade gets. `GET /sse/…` opens an SSE stream
//! (`sse.rs`); every other plain request is answered as the upgrade path always
//! answered it
//! ([`crate::proto::request::PlainRequest::upgrade_refusal`]: 405 with `Allow: GET` for
//! another method, 400 for a `GET` without `Upgrade: websocket`, …); routes that serve
//! plain requests (`GET /sse/{room}`, `POST /publish/{room}`) are matched here first.

use std::time::Instant;

use crate::proto::request::PlainRequest;
use crate::wire::ConnKey;

use super::sse::SSE_PREFIX;
use super::Shard;

impl Shard {
    /// Route the plain request `request` that arrived on `key` and answer it.
    pub(super) fn route(&mut self, key: ConnKey, request: &PlainRequest, now: Instant) {
        if request.method == "GET" && request.path.starts_with(SSE_PREFIX) {
            return self.open_sse(key, request, now);
        }
        let rejection = request.upgrade_refusal().clone();
        let id = self.state.id;
        self.state.slots[key].conn.reject(&rejection, &[]);
        self.state
            .metrics()
            .handshake_rejected(id, rejection.status);
        tracing::debug!(conn = %self.state.conn_id(key), status = rejection.status, reason = rejection.reason, method = %request.method, path = %request.path, "plain request refused");
    }
}

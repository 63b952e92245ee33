//! The read side of a shard: bytes from the driver are fed to the connection
//! ([`crate::conn::Connection::feed`]) and each event it returns is acted on (the
//! upgrade, handler callbacks, metrics); the peer's EOF; and read-side backpressure,
//! which the drivers only carry out.

use std::time::Instant;

use crate::conn::{ConnEvent, DisconnectReason, Eof, InputThrottle, Timer};
use crate::wire::ConnKey;

use super::api::Message;
use super::Shard;

impl Shard {
    /// Bytes arrived for `key`.
    pub fn on_data(&mut self, key: ConnKey, mut data: &[u8], now: Instant) {
        while !data.is_empty() {
            let Some(slot) = self.state.slots.get_mut(key) else {
                return;
            };
            slot.heard_since_ping = true;
            let (used, event) = slot.conn.feed(data, self.state.limits);
            data = &data[used..];
            match event {
                Some(event) => self.dispatch(key, event, now),
                None if used == 0 => break, // defensive: never spin on undecodable input
                None => {}
            }
        }
        // Pongs and close replies queued by the connection itself need a flush too.
        let Some(slot) = self.state.slots.get_mut(key) else {
            return;
        };
        let coalesced = slot.conn.take_coalesced();
        let queued = !slot.conn.out().is_empty();
        for _ in 0..coalesced {
            self.state
                .metrics()
                .input_throttled(self.state.id, InputThrottle::PongCoalesced);
        }
        if queued {
            self.state.mark_dirty(key);
        }
    }

    /// The peer's write side ended (a read returned 0, or TLS `close_notify`): not an
    /// error. Nothing more is read; whatever is queued (a close reply, echoes, room
    /// frames, an HTTP error response) is still written, bounded by `--close-timeout`
    /// (the close deadline is armed unless one already runs), then the connection ends
    /// — `normal` after a completed close handshake, otherwise the reason recorded
    /// earlier, or `reset` (abnormal closure). See [`crate::conn::Connection::on_eof`].
    pub fn on_eof(&mut self, key: ConnKey, now: Instant) {
        let Some(slot) = self.state.slots.get_mut(key) else {
            return;
        };
        if slot.conn.peer_eof() {
            return;
        }
        match slot.conn.on_eof() {
            Eof::Close => self.finish(key, DisconnectReason::Reset),
            Eof::Flush => {
                if !matches!(slot.deadline, Some((_, Timer::Close))) {
                    let timeout = self.config().timeouts.close;
                    self.state.arm(key, timeout, Timer::Close, now);
                }
                // Even with nothing queued: the flush pass is what closes it.
                self.state.mark_dirty(key);
            }
        }
    }

    /// Read-side backpressure: may the driver read from `key` now? False after the
    /// peer's EOF, once closed, and while its unsent bytes (its queue's plus `extra`,
    /// bytes the driver holds for it such as TLS ciphertext) are over
    /// `--max-queue-bytes`. A driver that gets false stops reading the connection and
    /// asks again when its queue has shrunk (after a write, or when it is flushed).
    /// Each pause is counted once (`input_throttled_total{action="read_paused"}`).
    pub fn may_read(&mut self, key: ConnKey, extra: usize) -> bool {
        let Some(slot) = self.state.slots.get_mut(key) else {
            return false;
        };
        let (may, newly_paused) = slot.conn.may_read(self.state.queue.max_bytes, extra);
        if newly_paused {
            self.state
                .metrics()
                .input_throttled(self.state.id, InputThrottle::ReadPaused);
            tracing::trace!(conn = %self.state.conn_id(key), "reading paused: unsent bytes over the queue cap");
        }
        may
    }

    /// Act on one event of `key`'s connection.
    fn dispatch(&mut self, key: ConnKey, event: ConnEvent, now: Instant) {
        match event {
            ConnEvent::Upgrade(request) => {
                self.upgrade(key, &request, now);
                let rest = self
                    .state
                    .slots
                    .get_mut(key)
                    .map(|s| s.conn.take_leftover());
                if let Some(rest) = rest.filter(|r| !r.is_empty()) {
                    self.on_data(key, &rest, now);
                }
            }
            ConnEvent::Request(request) => self.route(key, &request, now),
            // Text arrives as a `String`: the decoder validated it (once) while it came in.
            ConnEvent::Text(text) => {
                self.state
                    .metrics()
                    .message_received(self.state.id, text.len());
                self.call(key, |h, cx| h.on_message(cx, Message::Text(&text)));
            }
            ConnEvent::Binary(payload) => {
                self.state
                    .metrics()
                    .message_received(self.state.id, payload.len());
                self.call(key, |h, cx| h.on_message(cx, Message::Binary(&payload)));
            }
            ConnEvent::PeerClose(status) => {
                self.state.slots[key].peer_code = status.map(|(c, _)| c);
            }
            ConnEvent::HandshakeRejected(rejection) => {
                self.state
                    .metrics()
                    .handshake_rejected(self.state.id, rejection.status);
                tracing::debug!(conn = %self.state.conn_id(key), status = rejection.status, reason = rejection.reason, "handshake rejected");
            }
            ConnEvent::ProtocolError(error) => {
                tracing::debug!(conn = %self.state.conn_id(key), code = error.code, reason = error.reason, "protocol error");
            }
        }
    }
}

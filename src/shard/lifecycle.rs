//! A connection's life on a shard, from the accepted socket to the released slot:
//! [`Shard::open`], the two ways it ends ([`Shard::finish`] and the driver's
//! `on_peer_gone` / `finish_flushed`), [`Shard::release`]; and the graceful shutdown
//! (close 1001 to every open connection, drop handshakes, end detached sessions, end the
//! rest at the deadline). With `--session-grace`, a connection whose socket is lost
//! detaches its session instead of leaving its rooms ([`super::session`]), and its slot
//! outlives the socket until the session resumes or expires.

use std::os::fd::RawFd;
use std::time::Instant;

use crate::conn::{DisconnectReason, DropReason, Phase, Timer};
use crate::proto::close::codes;
use crate::wire::ConnKey;

use super::api::CloseInfo;
use super::session::SessionLink;
use super::slot::Slot;
use super::Shard;

impl Shard {
    /// A new TCP connection was accepted. Returns its key and generation.
    pub fn open(&mut self, fd: RawFd, now: Instant) -> (ConnKey, u32) {
        let generation = self.state.next_generation;
        self.state.next_generation = generation.wrapping_add(1);
        let key = self.state.slots.insert(Slot::new(fd, generation, now));
        let timeout = self.config().timeouts.handshake;
        self.state.arm(key, timeout, Timer::Handshake, now);
        self.state.metrics().connection_opened(self.state.id);
        (key, generation)
    }

    /// The connection failed (reset, socket error): it ends at once and what is queued
    /// is dropped. (The peer's EOF is [`Shard::on_eof`].)
    pub fn on_peer_gone(&mut self, key: ConnKey) {
        self.finish(key, DisconnectReason::Reset);
    }

    /// End the connection: leave rooms, release its admission slot, tell the handler
    /// and the metrics, and hand it to the driver to close. `reason` counts unless an
    /// earlier one was recorded.
    pub fn finish(&mut self, key: ConnKey, reason: DisconnectReason) {
        let Some(slot) = self.state.slots.get_mut(key) else {
            return;
        };
        if slot.conn.phase() == Phase::Closed {
            return;
        }
        let upgraded = slot.conn.was_upgraded();
        let transport = slot.conn.transport();
        let dropped = slot.conn.mark_closed(reason);
        slot.deadline = None;
        let reason = slot.conn.reason().unwrap_or(reason);
        let duration = slot.opened_at.elapsed();
        let info = CloseInfo {
            cause: reason,
            peer_code: slot.peer_code,
        };
        let taken_over = matches!(slot.session, SessionLink::TakenOver);
        let detach = self.state.detaches(key, reason);
        // A detached session keeps its admission slot until it is resumed or ends, so
        // `--max-connections` bounds connections and detached sessions together.
        if !detach {
            if std::mem::take(&mut self.state.slots[key].admitted) {
                self.state.shared.admission.release();
            }
            self.state.leave_all(key);
        }
        let metrics = self.state.metrics();
        for _ in 0..dropped {
            metrics.frame_dropped(self.state.id, DropReason::ConnectionClosed);
        }
        if upgraded {
            metrics.connection_ended(self.state.id, transport);
        }
        metrics.connection_closed(self.state.id, reason, duration);
        tracing::debug!(conn = %self.state.conn_id(key), reason = reason.as_str(), "connection closed");
        if detach {
            let now = Instant::now();
            self.state.detach(key, dropped as u64, now);
            self.evict_detached(now);
        } else if upgraded && !taken_over {
            self.state.end_attached_session(key);
            self.call(key, |h, cx| h.on_close(cx, &info));
        }
        self.state.finished.push(key);
    }

    /// Everything of `key` is written after [`crate::conn::AfterFlush::Close`]: end it.
    /// The reason was recorded when the close began (normal, server_shutdown, reset
    /// after a bare EOF, …).
    pub fn finish_flushed(&mut self, key: ConnKey) {
        self.finish(key, DisconnectReason::Normal);
    }

    /// Connections that ended: the driver must close their sockets, then `release` them.
    pub fn take_finished(&mut self, out: &mut Vec<ConnKey>) {
        out.clear();
        std::mem::swap(out, &mut self.state.finished);
    }

    /// Free the slot of a finished connection (its socket is closed, no I/O in flight),
    /// unless a detached session keeps it.
    pub fn release(&mut self, key: ConnKey) {
        if self
            .state
            .slots
            .get(key)
            .is_some_and(|s| s.conn.phase() == Phase::Closed)
            && !self.state.keeps_released_slot(key)
        {
            self.state.slots.remove(key);
        }
    }

    /// Start a graceful shutdown: close 1001 to every open connection, drop handshakes.
    /// The rest end at `--shutdown-timeout` (see [`Shard::expire_timers`]).
    pub fn begin_shutdown(&mut self, now: Instant) {
        if self.state.shutdown_deadline.is_some() {
            return;
        }
        self.state.shutdown_deadline = Some(now + self.config().shutdown_timeout);
        self.end_all_detached(now);
        let keys: Vec<ConnKey> = self.state.slots.iter().map(|(k, _)| k).collect();
        for key in keys {
            match self.state.slots[key].conn.phase() {
                Phase::Handshaking => self.finish(key, DisconnectReason::ServerShutdown),
                Phase::Open => {
                    // An open connection has no reason recorded yet: this one is it.
                    self.state.slots[key]
                        .conn
                        .record_reason(DisconnectReason::ServerShutdown);
                    self.state.close(key, codes::GOING_AWAY, "going away");
                }
                Phase::Closing | Phase::Closed => {}
            }
        }
    }

    /// Shutting down and every connection released: the loop may exit.
    pub fn is_drained(&self) -> bool {
        self.is_shutting_down() && self.state.slots.is_empty()
    }
}

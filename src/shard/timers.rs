//! Deadlines on a shard: firing due entries of the [`crate::conn::TimerHeap`] (the
//! handshake timeout — a 408 for a request partly in, else a plain close —, the
//! heartbeat's ping then pong — for an SSE stream, the heartbeat comment then whether it
//! was written —, the close timeout), starting the close deadline of connections closed
//! as slow consumers, the history sweep, the shutdown deadline, and when the driver must
//! wake up at the latest.

use std::time::Instant;

use crate::conn::{DisconnectReason, Phase, Timer};
use crate::proto::handshake::Transport;
use crate::wire::ConnKey;

use super::Shard;

impl Shard {
    /// Fire due deadlines.
    pub fn expire_timers(&mut self, now: Instant) {
        self.state.sweep_history_if_due(now);
        // Stale entries pile up under churn (each connection leaves one or two behind);
        // compact when they outnumber the live ones, so the heap stays O(connections).
        if self.state.timers.len() > 2 * self.state.slots.len() + 1024 {
            let slots = &self.state.slots;
            self.state.timers.compact(|e| {
                slots.get(e.conn).is_some_and(|s| {
                    s.generation == e.generation && s.deadline.is_some_and(|(at, _)| at == e.at)
                })
            });
        }
        let close_timeout = self.config().timeouts.close;
        for key in std::mem::take(&mut self.state.slow_closed) {
            if self
                .state
                .slots
                .get(key)
                .is_some_and(|s| s.conn.phase() == Phase::Closing)
            {
                self.state.arm(key, close_timeout, Timer::Close, now);
            }
        }
        while let Some(entry) = self.state.timers.pop_due(now) {
            let Some(slot) = self.state.slots.get_mut(entry.conn) else {
                continue;
            };
            let Some((at, timer)) = slot.deadline else {
                continue;
            };
            if slot.generation != entry.generation || at != entry.at {
                continue; // stale
            }
            slot.deadline = None;
            let key = entry.conn;
            match timer {
                Timer::Handshake => self.request_timed_out(key),
                Timer::Ping => {
                    slot.conn.shrink_idle();
                    if slot.conn.send_ping() {
                        slot.heard_since_ping = false;
                    }
                    let timeout = self.config().timeouts.pong;
                    self.state.arm(key, timeout, Timer::Pong, now);
                    self.state.mark_dirty(key);
                }
                // An SSE client answers nothing: alive means the heartbeat was written.
                Timer::Pong
                    if slot.heard_since_ping
                        || (slot.conn.transport() == Transport::Sse
                            && !slot.conn.out().ping_pending()) =>
                {
                    let interval = self.config().timeouts.ping_interval;
                    self.state.arm(key, interval, Timer::Ping, now);
                }
                Timer::Pong => {
                    self.state.metrics().pong_timeout(self.state.id);
                    self.finish(key, DisconnectReason::PongTimeout);
                }
                Timer::Close => self.finish(key, DisconnectReason::Reset),
                Timer::SessionGrace => self.end_detached(key, DisconnectReason::GraceExpired, now),
            }
        }
        if self.state.shutdown_deadline.is_some_and(|d| now >= d) {
            let keys: Vec<ConnKey> = self.state.slots.iter().map(|(k, _)| k).collect();
            for key in keys {
                self.finish(key, DisconnectReason::ServerShutdown);
            }
        }
    }

    /// The handshake timeout of `key` fired: a request partly in is answered 408 (counted
    /// as a refused upgrade or publish; the connection ends once it is written, as after
    /// any refusal), a connection between requests is closed at once.
    fn request_timed_out(&mut self, key: ConnKey) {
        let timed_out = self.state.slots[key].conn.time_out_request();
        let Some((rejection, in_body)) = timed_out else {
            return self.finish(key, DisconnectReason::HandshakeTimeout);
        };
        self.state.mark_dirty(key);
        if in_body {
            self.publish_refused(key, &rejection);
        } else {
            self.state
                .metrics()
                .handshake_rejected(self.state.id, rejection.status);
            tracing::debug!(conn = %self.state.conn_id(key), "request head timed out: 408");
        }
    }

    /// When the driver must wake up at the latest.
    pub fn next_deadline(&self) -> Option<Instant> {
        [
            self.state.timers.next(),
            self.state.shutdown_deadline,
            self.state.history_sweep_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

//! A session's connection ends: detach (keep memberships, buffer what it misses, arm
//! the grace deadline) or end the session with it; the grace deadline ends a detached
//! session (rooms left, `on_close` once, `grace_expired`), and so does a detach over the
//! shard's share of `--session-max-detached`, to the oldest detached session
//! (`session_evicted`); direct sends to a session; what the gauges report.

use std::mem;
use std::time::Instant;

use crate::conn::{DisconnectReason, Phase, Timer};
use crate::wire::{ConnKey, Direct};

use super::{Missed, Released, SessionLink};
use crate::shard::api::CloseInfo;
use crate::shard::slot::Slot;
use crate::shard::state::ShardState;
use crate::shard::Shard;

/// What buffering into detached sessions changed during one delivery, applied to the
/// shard's gauges once after it ([`ShardState::buffered`]).
#[derive(Debug, Default)]
pub(crate) struct MissedTally {
    bytes: isize,
    dropped: u64,
}

/// If `slot` holds a detached session, buffer `missed()` for it and return true (the
/// caller queues nothing). `cap` is `--session-buffer-bytes`.
#[inline]
pub(crate) fn buffer_if_detached(
    slot: &mut Slot,
    cap: usize,
    tally: &mut MissedTally,
    missed: impl FnOnce() -> Missed,
) -> bool {
    let Some(session) = slot.session.detached_mut() else {
        return false;
    };
    let (dropped, bytes) = session.buffer.push(missed(), cap);
    tally.bytes += bytes;
    tally.dropped += dropped;
    true
}

impl ShardState {
    /// Apply a delivery's [`MissedTally`] to the gauges.
    pub(crate) fn buffered(&mut self, tally: MissedTally) {
        if tally.bytes == 0 && tally.dropped == 0 {
            return;
        }
        self.sessions.buffered = self.sessions.buffered.saturating_add_signed(tally.bytes);
        self.report_sessions();
    }

    /// Report the session gauges (held, detached, buffered bytes).
    pub(crate) fn report_sessions(&self) {
        self.metrics().sessions(
            self.id,
            self.sessions.len(),
            self.sessions.detached,
            self.sessions.buffered,
        );
    }

    /// The detached sessions this shard may hold: its share of
    /// `--session-max-detached`.
    pub(crate) fn detached_share(&self) -> usize {
        let shards = self.hub.shared().shard_count();
        self.shared.cfg.sessions.shard_share(shards)
    }

    /// The server starts closing `key`: its session will end with it, not detach.
    pub(crate) fn kick_session(&mut self, key: ConnKey) {
        if let Some(slot) = self.slots.get_mut(key) {
            slot.session.kick();
        }
    }

    /// Does `key`'s session detach now that its connection ends with `reason`? Yes for
    /// a lost socket (reset, pong timeout, TLS failure) and a close the peer started
    /// with any code but 1000; no for a kick, a shutdown, or sessions off. An SSE client
    /// has no close of its own (an `EventSource` closing, a dropped socket and an EOF
    /// look alike), so every socket loss of an SSE stream detaches.
    pub(crate) fn detaches(&self, key: ConnKey, reason: DisconnectReason) -> bool {
        let slot = &self.slots[key];
        let SessionLink::Held(session) = &slot.session else {
            return false;
        };
        let lost = matches!(
            reason,
            DisconnectReason::Reset
                | DisconnectReason::PongTimeout
                | DisconnectReason::Tls
                | DisconnectReason::Normal
        );
        lost && !session.kicked
            && slot.peer_code != Some(1000)
            && slot.conn.was_upgraded()
            && self.shutdown_deadline.is_none()
            && self.shared.cfg.sessions.enabled()
    }

    /// Detach `key`'s session (its connection just ended; it keeps its rooms): arm the
    /// grace deadline. `unsent` data frames were still queued to the lost socket (not
    /// written, or written in part): they count as lost, so the resume reports them.
    /// The gauges are not reported here: [`Shard::evict_detached`] must follow (so they
    /// never show the shard over its share).
    pub(crate) fn detach(&mut self, key: ConnKey, unsent: u64, now: Instant) {
        if let SessionLink::Held(s) = &mut self.slots[key].session {
            s.detached = Some(Released(false));
            s.buffer.count_lost(unsent);
            s.detach_seq = self.sessions.push_detached(s.token.id.bits);
        }
        let grace = self.shared.cfg.sessions.grace;
        self.arm(key, grace, Timer::SessionGrace, now);
        tracing::debug!(conn = %self.conn_id(key), "session detached");
    }

    /// `key`'s connection ended for good: its session (if it held one) ends with it.
    pub(crate) fn end_attached_session(&mut self, key: ConnKey) {
        if let SessionLink::Held(s) = &self.slots[key].session {
            self.sessions.forget(s.token.id.bits);
            self.slots[key].session = SessionLink::None;
            self.report_sessions();
        }
    }

    /// The driver released `key`'s socket: false when a detached session keeps the slot
    /// (it is removed when the session is resumed or ends).
    pub(crate) fn keeps_released_slot(&mut self, key: ConnKey) -> bool {
        let Some(slot) = self.slots.get_mut(key) else {
            return false;
        };
        let Some(session) = slot.session.detached_mut() else {
            return false;
        };
        session.detached = Some(Released(true));
        // The number may name another socket from now on: nothing may use it.
        slot.fd = -1;
        true
    }

    /// A direct send to session `id` of this shard: queued to its open connection
    /// (a WebSocket frame or an SSE event, by its transport), buffered while detached,
    /// else dropped. True when queued or buffered.
    pub(crate) fn send_to_session(&mut self, id: u128, direct: Direct) -> bool {
        let Some(key) = self.sessions.holder(id) else {
            return false;
        };
        let cap = self.shared.cfg.sessions.buffer_bytes;
        let mut tally = MissedTally::default();
        let slot = &mut self.slots[key];
        let transport = slot.conn.transport();
        if buffer_if_detached(slot, cap, &mut tally, || Missed::Direct(direct.clone())) {
            self.buffered(tally);
            return true;
        }
        self.queue_to(key, direct.frame_for(transport))
    }
}

impl Shard {
    /// `key`'s grace period is over (or the server shuts down, `reason`
    /// `server_shutdown`, or its shard holds too many detached sessions, `reason`
    /// `session_evicted`): end its detached session — leave its rooms, call `on_close`
    /// once, count `reason`, free the slot. An expired or evicted session's token is
    /// answered `expired` for one grace period.
    pub(crate) fn end_detached(&mut self, key: ConnKey, reason: DisconnectReason, now: Instant) {
        let Some(slot) = self.state.slots.get_mut(key) else {
            return;
        };
        if !slot.session.is_detached() {
            return;
        }
        let SessionLink::Held(session) = mem::take(&mut slot.session) else {
            return;
        };
        slot.deadline = None;
        if mem::take(&mut slot.admitted) {
            self.state.shared.admission.release();
        }
        let released = session.detached == Some(Released(true));
        let info = CloseInfo {
            cause: reason,
            peer_code: slot.peer_code,
        };
        let share = self.state.detached_share();
        let sessions = &mut self.state.sessions;
        sessions.remove_detached(session.detach_seq, session.buffer.bytes());
        let grace = self.state.shared.cfg.sessions.grace;
        if reason.ends_session_only() {
            sessions.expire(session.token, now, grace, share);
        } else {
            sessions.forget(session.token.id.bits);
        }
        self.state.leave_all(key);
        self.state.metrics().session_ended(self.state.id, reason);
        self.state.report_sessions();
        tracing::debug!(conn = %self.state.conn_id(key), reason = reason.as_str(), "session ended");
        // The slot is kept for the callback's Context, then freed unless the driver
        // still has to release its socket (it frees the slot then).
        self.call(key, |h, cx| h.on_close(cx, &info));
        if released {
            self.state.slots.remove(key);
        }
    }

    /// A session just detached ([`ShardState::detach`]): while the shard holds more
    /// detached sessions than its share of `--session-max-detached`, end the oldest
    /// (`session_evicted`); then report the gauges.
    pub(crate) fn evict_detached(&mut self, now: Instant) {
        let share = self.state.detached_share();
        while self.state.sessions.detached > share {
            let Some(oldest) = self.state.sessions.oldest_detached() else {
                break;
            };
            let before = self.state.sessions.detached;
            self.end_detached(oldest, DisconnectReason::SessionEvicted, now);
            if self.state.sessions.detached >= before {
                debug_assert!(false, "the oldest detached session did not end");
                break;
            }
        }
        self.state.report_sessions();
    }

    /// Shutdown: every detached session ends (`server_shutdown`).
    pub(crate) fn end_all_detached(&mut self, now: Instant) {
        let keys: Vec<ConnKey> = self
            .state
            .slots
            .iter()
            .filter(|(_, s)| s.conn.phase() == Phase::Closed && s.session.is_detached())
            .map(|(k, _)| k)
            .collect();
        for key in keys {
            self.end_detached(key, DisconnectReason::ServerShutdown, now);
        }
    }
}

//! [`ShardState`]: everything of a shard except its handler and inbox, so that a
//! [`super::context::Context`] can borrow it during a callback; plus what every shard
//! shares ([`Shared`]) and the primitives the rest of `shard` builds on: queueing a
//! frame under the slow-consumer policy, the dirty list, arming a deadline, starting
//! a close.

use std::sync::Arc;
use std::time::{Duration, Instant};

use slab::Slab;

use crate::conn::{ConnLimits, DropReason, Enqueue, QueueLimits, Timer, TimerEntry, TimerHeap};
use crate::hub::Hub;
use crate::metrics::MetricsCollector;
use crate::wire::{ConnKey, PreparedFrame};

use super::admission::Admission;
use super::config::ShardConfig;
use super::session::Sessions;
use super::slot::{ConnId, Slot};

/// What every shard shares (read-mostly).
pub struct Shared {
    pub cfg: ShardConfig,
    pub metrics: Arc<dyn MetricsCollector>,
    pub admission: Admission,
}

/// Everything of a shard except the handler and the inbox.
pub struct ShardState {
    /// The shard's index (0-based), as in the metrics and [`ConnId`].
    pub(super) id: usize,
    pub(super) limits: ConnLimits,
    pub(super) queue: QueueLimits,
    pub(super) shared: Arc<Shared>,
    pub(super) slots: Slab<Slot>,
    pub(super) hub: Hub,
    pub(super) timers: TimerHeap,
    /// Connections with output to flush, each once (see [`Slot`]'s `dirty`).
    pub(super) dirty: Vec<ConnKey>,
    /// Connections that ended, for the driver to close.
    pub(super) finished: Vec<ConnKey>,
    /// Closed as slow consumers since the last timer pass: their close deadline starts
    /// now, whether or not they ever drain.
    pub(super) slow_closed: Vec<ConnKey>,
    pub(super) next_generation: u32,
    pub(super) shutdown_deadline: Option<Instant>,
    /// Shard 0 with history on: when idle room histories are next swept.
    pub(super) history_sweep_at: Option<Instant>,
    /// The sessions this shard holds (`--session-grace`).
    pub(super) sessions: Sessions,
}

impl ShardState {
    /// State for shard `id`, with no connection yet; `history_sweep_at` is when idle
    /// room histories are first swept (shard 0 with history on), else `None`.
    pub(super) fn new(
        id: usize,
        shared: Arc<Shared>,
        hub: Hub,
        history_sweep_at: Option<Instant>,
    ) -> Self {
        ShardState {
            id,
            limits: shared.cfg.limits,
            queue: shared.cfg.queue,
            shared,
            slots: Slab::new(),
            hub,
            timers: TimerHeap::default(),
            dirty: Vec::new(),
            finished: Vec::new(),
            slow_closed: Vec::new(),
            next_generation: 0,
            shutdown_deadline: None,
            history_sweep_at,
            sessions: Sessions::default(),
        }
    }

    pub(super) fn metrics(&self) -> &dyn MetricsCollector {
        &*self.shared.metrics
    }

    pub(super) fn conn_id(&self, key: ConnKey) -> ConnId {
        ConnId {
            shard: self.id,
            slot: key,
            generation: self.slots.get(key).map_or(0, |s| s.generation),
        }
    }

    /// Put `key` on the dirty list (once) so the driver flushes it.
    pub(super) fn mark_dirty(&mut self, key: ConnKey) {
        if let Some(slot) = self.slots.get_mut(key) {
            if !slot.dirty {
                slot.dirty = true;
                self.dirty.push(key);
            }
        }
    }

    /// Queue a data frame to one connection, applying the slow-consumer policy and
    /// reporting what happened. Returns true when it was queued.
    pub(super) fn queue_to(&mut self, key: ConnKey, frame: PreparedFrame) -> bool {
        let Some(slot) = self.slots.get_mut(key) else {
            return false;
        };
        let outcome = slot.conn.send_frame(frame, self.queue);
        let queued_bytes = slot.conn.out().bytes();
        if matches!(outcome, Enqueue::ClosedSlow { .. }) {
            slot.session.kick();
            self.slow_closed.push(key);
        }
        if outcome != Enqueue::NotOpen && !slot.dirty {
            slot.dirty = true;
            self.dirty.push(key);
        }
        let queued = report_enqueue(&*self.shared.metrics, self.id, outcome);
        if queued {
            self.shared.metrics.send_queue_bytes(self.id, queued_bytes);
        }
        queued
    }

    /// Start the close handshake of `key` with `code` and `reason` (see
    /// [`crate::conn::Connection::send_close`]).
    pub(super) fn close(&mut self, key: ConnKey, code: u16, reason: &str) {
        self.kick_session(key);
        if let Some(slot) = self.slots.get_mut(key) {
            slot.conn.send_close(code, reason);
            self.mark_dirty(key);
        }
    }

    /// Arm `timer` for `key`, due `after` from `now`; it replaces the armed one.
    pub(super) fn arm(&mut self, key: ConnKey, after: Duration, timer: Timer, now: Instant) {
        let at = now + after;
        let slot = &mut self.slots[key];
        slot.deadline = Some((at, timer));
        self.timers.schedule(TimerEntry {
            at,
            conn: key,
            generation: slot.generation,
        });
    }
}

/// Report one enqueue to the metrics; true when the frame was queued.
pub(super) fn report_enqueue(
    metrics: &dyn MetricsCollector,
    shard: usize,
    outcome: Enqueue,
) -> bool {
    match outcome {
        Enqueue::Queued { dropped_oldest } => {
            for _ in 0..dropped_oldest {
                metrics.frame_dropped(shard, DropReason::QueueFullOldest);
            }
            true
        }
        Enqueue::DroppedNewest => {
            metrics.frame_dropped(shard, DropReason::QueueFullNewest);
            false
        }
        Enqueue::ClosedSlow { dropped } => {
            for _ in 0..dropped {
                metrics.frame_dropped(shard, DropReason::ConnectionClosed);
            }
            false
        }
        Enqueue::NotOpen => false,
    }
}

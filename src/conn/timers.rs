//! Per-shard deadlines: one binary heap for all connections of a shard.
//!
//! A connection has at most one armed deadline ([`Timer`]: handshake, close, …), stored
//! in the shard's slot of the connection; the heap may hold stale entries, which are
//! recognised on expiry (the connection's current deadline or generation differs) and
//! skipped. So arming is O(log n), cancelling is free, and the driver waits at most
//! until [`TimerHeap::next`].

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use crate::wire::ConnKey;

/// How long a connection may take for each step of its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// The upgrade request must be complete (and TLS done) within this after accept
    /// (slowloris defence). Default 5 s.
    pub handshake: Duration,
    /// After our close frame (or the peer's EOF), the closing handshake must end within
    /// this; then the socket is closed. Default 2 s.
    pub close: Duration,
    /// Send a ping after this long without one (zero: no heartbeats). Default 30 s.
    pub ping_interval: Duration,
    /// After a ping, a connection that sends no frame at all within this is closed
    /// (must be > 0 when heartbeats are on). Default 10 s.
    pub pong: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            handshake: Duration::from_secs(5),
            close: Duration::from_secs(2),
            ping_interval: Duration::from_secs(30),
            pong: Duration::from_secs(10),
        }
    }
}

/// The deadline a connection is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// The upgrade must complete by then.
    Handshake,
    /// Time to send a ping.
    Ping,
    /// A frame must have arrived since the ping by then.
    Pong,
    /// The closing handshake must be done by then.
    Close,
    /// A detached session ends then unless resumed (`--session-grace`).
    SessionGrace,
}

/// One armed deadline in the heap: when, for which connection slot, and that slot's
/// generation then (an entry whose slot was reused, or re-armed, is stale).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimerEntry {
    pub at: Instant,
    pub conn: ConnKey,
    pub generation: u32,
}

/// A shard's deadlines, earliest first (stale entries included until popped or
/// compacted).
#[derive(Debug, Default)]
pub struct TimerHeap {
    heap: BinaryHeap<Reverse<TimerEntry>>,
}

impl TimerHeap {
    pub fn schedule(&mut self, entry: TimerEntry) {
        self.heap.push(Reverse(entry));
    }

    /// Earliest deadline (possibly stale).
    pub fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(e)| e.at)
    }

    /// Pop one entry due at `now`, if any.
    pub fn pop_due(&mut self, now: Instant) -> Option<TimerEntry> {
        match self.heap.peek() {
            Some(Reverse(e)) if e.at <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Drop every entry `is_live` rejects and give the memory back. Stale entries (of
    /// closed connections, or replaced deadlines) otherwise stay until their time comes:
    /// under heavy churn with a 30 s ping interval that is hundreds of thousands of them.
    pub fn compact(&mut self, mut is_live: impl FnMut(&TimerEntry) -> bool) {
        let mut entries = std::mem::take(&mut self.heap).into_vec();
        entries.retain(|Reverse(e)| is_live(e));
        entries.shrink_to_fit();
        self.heap = BinaryHeap::from(entries);
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn compact_keeps_only_live_entries_in_order() {
        let t0 = Instant::now();
        let mut h = TimerHeap::default();
        for i in 0..100 {
            h.schedule(TimerEntry {
                at: t0 + Duration::from_millis(100 - i as u64),
                conn: i,
                generation: 0,
            });
        }
        h.compact(|e| e.conn % 10 == 0);
        assert_eq!(h.len(), 10);
        let order: Vec<_> = std::iter::from_fn(|| h.pop_due(t0 + Duration::from_secs(1)))
            .map(|e| e.conn)
            .collect();
        assert_eq!(order, vec![90, 80, 70, 60, 50, 40, 30, 20, 10, 0]);
    }

    #[test]
    fn pops_in_deadline_order_only_when_due() {
        let t0 = Instant::now();
        let mut h = TimerHeap::default();
        for (i, ms) in [30u64, 10, 20].iter().enumerate() {
            h.schedule(TimerEntry {
                at: t0 + Duration::from_millis(*ms),
                conn: i,
                generation: 0,
            });
        }
        assert_eq!(h.next(), Some(t0 + Duration::from_millis(10)));
        assert!(h.pop_due(t0).is_none());
        let due: Vec<_> = std::iter::from_fn(|| h.pop_due(t0 + Duration::from_millis(25)))
            .map(|e| e.conn)
            .collect();
        assert_eq!(due, vec![1, 2]);
        assert_eq!(h.len(), 1);
    }
}

//! Per-room history for resumable subscriptions (`--history N`).
//!
//! The [`HistoryRegistry`] (shared by all shards, in [`super::HubShared`]) maps a room
//! name to its [`RoomHistory`] behind a mutex: the room's next sequence number and a
//! ring of the last numbered publications (at most `max_frames` of them and at most
//! `max_bytes` bytes, counted as their sequence-framed size whether or not that form is
//! built yet). A publication larger than `max_bytes` is refused and leaves the ring as
//! it was (counted in [`HistoryStats::refused`]); its number is then a hole in the ring,
//! which a resume reports with a `gap` message in its place. The ring holds the same
//! `Arc<Publication>` the shards deliver, so a replay queues the sequenced form every
//! live subscriber got (built once, see [`crate::wire::publication`]) and nothing is
//! encoded under the room's lock. Memory: a retained publication holds its payload
//! (with the WebSocket header in front) and, once a sequenced client got it, its
//! sequenced form: at most about twice the counted bytes; with permessage-deflate
//! clients also the compressed forms they got, each only kept when smaller than its
//! plain counterpart (so under four times in all, about 2.5 times for JSON).
//!
//! The room lock is the ordering point of the room: a publish takes it, numbers the
//! message, keeps it and hands it to the shards' inboxes *before* releasing it, and a
//! resume takes it to snapshot the ring and join. So every shard sees a room's messages
//! in sequence order and a resume cannot fall between snapshot and live stream.
//!
//! Lock order: registry map → room → directory. A room is dropped by
//! [`HistoryRegistry::sweep`] once it has no members and no activity for `ttl`; a dropped
//! entry is marked so a caller that raced the sweep retries on a fresh one, and rooms
//! created later start numbering above every number issued before (no number is ever
//! reused for a different message of the same room within a process).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::wire::Publication;

/// Bounds of every room's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryConfig {
    /// Most frames kept per room (> 0; `--history`).
    pub max_frames: usize,
    /// Most bytes (sequence-framed wire bytes) kept per room (`--history-bytes`,
    /// default 256 KiB); a message larger than this on its own is not kept.
    pub max_bytes: usize,
    /// A room with no members and no publish or resume for this long is dropped
    /// (`--history-ttl`, default 5 min).
    pub ttl: Duration,
}

impl HistoryConfig {
    /// Keep the last `max_frames` messages per room, with the default byte cap and TTL.
    pub fn frames(max_frames: usize) -> Self {
        HistoryConfig {
            max_frames,
            max_bytes: 256 << 10,
            ttl: Duration::from_secs(300),
        }
    }
}

/// How a resume starts, before the replayed frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumeStart {
    /// Everything after `since` is retained: no control message.
    Full,
    /// Seqs `from..=to` are no longer retained (a `gap` message goes first).
    Gap { from: u64, to: u64 },
    /// `since` was never issued in this room (history dropped, server restarted);
    /// numbering continues at `next` (a `reset` message goes first).
    Reset { next: u64 },
}

/// A snapshot for one resuming connection.
#[derive(Debug, Clone)]
pub struct Replay {
    pub start: ResumeStart,
    /// Retained publications after `since` with their numbers, in order. Numbers may
    /// skip (a message too large to keep): see [`Replay::holes`].
    pub frames: Vec<(u64, Arc<Publication>)>,
    /// The last seq issued in the room when the snapshot was taken: live messages up to
    /// it that are still in flight to the shard must be skipped for this connection.
    pub upto: u64,
}

impl Replay {
    /// The first number the replay covers: after `since` for [`ResumeStart::Full`],
    /// after the gap for [`ResumeStart::Gap`], the announced next for a reset.
    pub fn first(&self, since: u64) -> u64 {
        match self.start {
            ResumeStart::Full => since + 1,
            ResumeStart::Gap { to, .. } => to + 1,
            ResumeStart::Reset { next } => next,
        }
    }

    /// The numbers missing between `first` ([`Replay::first`]) and [`Replay::upto`]:
    /// `(index, from, to)` says that seqs `from..=to` were issued but are not retained
    /// and belong before `frames[index]` (`index == frames.len()`: after the last
    /// frame). Empty when every number from `first` to `upto` is in `frames`.
    pub fn holes(&self, first: u64) -> Vec<(usize, u64, u64)> {
        let mut holes = Vec::new();
        let mut expect = first;
        for (i, (seq, _)) in self.frames.iter().enumerate() {
            if *seq > expect {
                holes.push((i, expect, seq - 1));
            }
            expect = seq + 1;
        }
        if expect <= self.upto {
            holes.push((self.frames.len(), expect, self.upto));
        }
        holes
    }
}

/// One room's sequencer and ring.
#[derive(Debug)]
pub struct RoomHistory {
    name: Arc<str>,
    next_seq: u64,
    ring: VecDeque<(u64, Arc<Publication>)>,
    bytes: usize,
    last_activity: Instant,
    dropped: bool,
    /// The ring may miss numbers (cluster mode: the node stopped hearing the room, see
    /// [`RoomHistory::mark_stale`]); a resume goes to the broker's store first.
    stale: bool,
}

impl RoomHistory {
    fn new(name: Arc<str>, first_seq: u64, now: Instant) -> Self {
        RoomHistory {
            name,
            next_seq: first_seq.max(1),
            ring: VecDeque::new(),
            bytes: 0,
            last_activity: now,
            dropped: false,
            stale: false,
        }
    }

    /// The room's name (shared, so inbox messages need no allocation).
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The number the next publish gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Take the next number.
    pub fn assign(&mut self, now: Instant) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.last_activity = now;
        seq
    }

    /// A publication numbered elsewhere (a broker's) has `seq`: number on above it.
    pub fn observe(&mut self, seq: u64, now: Instant) {
        self.next_seq = self.next_seq.max(seq + 1);
        self.last_activity = now;
    }

    /// Forget the ring and number from 1 again: the broker's numbering of the room
    /// restarted (Redis lost the room's data, see [`crate::hub::broker`]).
    pub fn restart(&mut self) {
        self.ring.clear();
        self.bytes = 0;
        self.next_seq = 1;
    }

    /// Cluster mode: the node stopped hearing the room (it unsubscribed, or lost its
    /// broker connection), so the ring may miss numbers published since; it is kept (a
    /// resume while the broker is down is answered from it) until
    /// [`RoomHistory::refresh`].
    pub fn mark_stale(&mut self) {
        self.stale = true;
    }

    /// Whether the ring may miss numbers (see [`RoomHistory::mark_stale`]): a resume
    /// must fetch from the broker's store rather than trust it.
    pub fn is_stale(&self) -> bool {
        self.stale
    }

    /// The broker is about to refill the ring from its store (which holds everything
    /// after the resume's `since`): a stale ring is emptied first, so no number the
    /// node missed stays a hole between the old ring and the refill.
    pub fn refresh(&mut self) {
        if self.stale {
            self.ring.clear();
            self.bytes = 0;
            self.stale = false;
        }
    }

    /// Put `older` (numbered publications in ascending order, from a broker's store)
    /// in front of the ring: only those older than the oldest retained (or than the next
    /// number when the ring is empty), newest first while the bounds allow. Returns how
    /// many were kept.
    pub fn backfill(&mut self, older: &[(u64, Arc<Publication>)], cfg: &HistoryConfig) -> usize {
        let oldest = self.ring.front().map_or(self.next_seq, |(s, _)| *s);
        let mut kept = 0;
        for (seq, p) in older.iter().rev().filter(|(s, _)| *s < oldest) {
            let size = p.sequenced_len();
            if self.ring.len() >= cfg.max_frames || self.bytes + size > cfg.max_bytes {
                break;
            }
            self.bytes += size;
            self.ring.push_front((*seq, p.clone()));
            kept += 1;
        }
        kept
    }

    /// Keep `publication` (number `seq`), evicting the oldest over the bounds. One
    /// whose sequence-framed size exceeds `cfg.max_bytes` is refused (returns false)
    /// and the ring is left untouched.
    pub fn retain(&mut self, seq: u64, publication: Arc<Publication>, cfg: &HistoryConfig) -> bool {
        let size = publication.sequenced_len();
        if size > cfg.max_bytes {
            return false;
        }
        self.bytes += size;
        self.ring.push_back((seq, publication));
        while self.ring.len() > cfg.max_frames || self.bytes > cfg.max_bytes {
            match self.ring.pop_front() {
                Some((_, p)) => self.bytes -= p.sequenced_len(),
                None => break,
            }
        }
        true
    }

    /// Everything a connection that saw up to `since` needs, in order.
    pub fn replay_after(&mut self, since: u64, now: Instant) -> Replay {
        self.last_activity = now;
        let last = self.next_seq - 1;
        let oldest = self.ring.front().map_or(self.next_seq, |(s, _)| *s);
        let start = if since > last {
            ResumeStart::Reset { next: oldest }
        } else if since + 1 < oldest {
            ResumeStart::Gap {
                from: since + 1,
                to: oldest - 1,
            }
        } else {
            ResumeStart::Full
        };
        let after = match start {
            ResumeStart::Reset { .. } => 0,
            _ => self.ring.partition_point(|(s, _)| *s <= since),
        };
        Replay {
            start,
            frames: self.ring.range(after..).cloned().collect(),
            upto: last,
        }
    }

    /// Frames and bytes retained.
    pub fn retained(&self) -> (usize, usize) {
        (self.ring.len(), self.bytes)
    }
}

/// Totals over every room.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistoryStats {
    /// Rooms with a history.
    pub rooms: usize,
    /// Frames retained.
    pub frames: usize,
    /// Sequence-framed wire bytes retained.
    pub bytes: usize,
    /// Messages refused since start because one alone exceeds `max_bytes`.
    pub refused: u64,
}

type Entry = Arc<Mutex<RoomHistory>>;

/// Room name → history, shared by all shards.
#[derive(Debug)]
pub struct HistoryRegistry {
    cfg: HistoryConfig,
    rooms: RwLock<HashMap<Arc<str>, Entry>>,
    /// First number of a room created from now on (above every dropped room's numbers).
    base: AtomicU64,
    /// Frames refused by [`RoomHistory::retain`] (see [`HistoryRegistry::retain`]).
    refused: AtomicU64,
}

fn lock(entry: &Entry) -> std::sync::MutexGuard<'_, RoomHistory> {
    entry.lock().unwrap_or_else(|p| p.into_inner())
}

impl HistoryRegistry {
    pub fn new(cfg: HistoryConfig) -> Self {
        HistoryRegistry {
            cfg,
            rooms: RwLock::new(HashMap::new()),
            base: AtomicU64::new(1),
            refused: AtomicU64::new(0),
        }
    }

    /// [`RoomHistory::retain`] in `room` (locked by the caller through
    /// [`HistoryRegistry::with_room`]), counting a refusal. Returns false when refused.
    pub fn retain(&self, room: &mut RoomHistory, seq: u64, publication: Arc<Publication>) -> bool {
        let kept = room.retain(seq, publication, &self.cfg);
        if !kept {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        kept
    }

    /// [`RoomHistory::backfill`] in `room` (locked here).
    pub fn backfill(&self, room: &str, older: &[(u64, Arc<Publication>)]) -> usize {
        self.with_room(room, |h| h.backfill(older, &self.cfg))
    }

    pub fn config(&self) -> &HistoryConfig {
        &self.cfg
    }

    fn entry(&self, name: &str) -> Entry {
        if let Some(e) = self
            .rooms
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
        {
            return e.clone();
        }
        let mut map = self.rooms.write().unwrap_or_else(|p| p.into_inner());
        let base = self.base.load(Ordering::Relaxed);
        map.entry(Arc::from(name))
            .or_insert_with_key(|k| {
                Arc::new(Mutex::new(RoomHistory::new(
                    k.clone(),
                    base,
                    Instant::now(),
                )))
            })
            .clone()
    }

    /// Run `f` with `name`'s history locked (created if needed). Everything that must be
    /// ordered with the room's publishes happens inside `f`.
    pub fn with_room<R>(&self, name: &str, f: impl FnOnce(&mut RoomHistory) -> R) -> R {
        loop {
            let entry = self.entry(name);
            let mut room = lock(&entry);
            if !room.dropped {
                return f(&mut room);
            }
            // Dropped by a sweep between lookup and lock: take the fresh entry.
        }
    }

    /// Drop the rooms idle for longer than the TTL that have no members
    /// (`has_members`). Returns the rooms dropped.
    pub fn sweep(&self, now: Instant, has_members: impl Fn(&str) -> bool) -> usize {
        let mut map = self.rooms.write().unwrap_or_else(|p| p.into_inner());
        let before = map.len();
        map.retain(|name, entry| {
            let mut room = lock(entry);
            let idle = now.saturating_duration_since(room.last_activity) >= self.cfg.ttl;
            if !idle || has_members(name) {
                return true;
            }
            room.dropped = true;
            self.base.fetch_max(room.next_seq, Ordering::Relaxed);
            false
        });
        before - map.len()
    }

    /// Rooms, frames and bytes retained right now (locks each room in turn).
    pub fn stats(&self) -> HistoryStats {
        let map = self.rooms.read().unwrap_or_else(|p| p.into_inner());
        let mut stats = HistoryStats {
            rooms: map.len(),
            refused: self.refused.load(Ordering::Relaxed),
            ..HistoryStats::default()
        };
        for entry in map.values() {
            let (frames, bytes) = lock(entry).retained();
            stats.frames += frames;
            stats.bytes += bytes;
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(max_frames: usize, max_bytes: usize) -> HistoryConfig {
        HistoryConfig {
            max_frames,
            max_bytes,
            ttl: Duration::from_millis(50),
        }
    }

    use crate::wire::{Kind, Payload};

    /// A numbered publication whose sequence-framed size is `n` bytes (n >= 11).
    fn publication(n: usize, seq: u64) -> Arc<Publication> {
        let payload = Payload::encode(Kind::Binary, &vec![0; n - 11]);
        let p = Arc::new(Publication::new(Arc::from("r"), payload, None)).numbered(seq);
        assert_eq!(p.sequenced_len(), n, "sizes under 126 bytes of body only");
        p
    }

    fn publish(reg: &HistoryRegistry, room: &str, size: usize) -> u64 {
        reg.with_room(room, |h| {
            let seq = h.assign(Instant::now());
            let p = if size <= 136 {
                publication(size, seq)
            } else {
                let payload = Payload::encode(Kind::Binary, &vec![0; size]);
                Arc::new(Publication::new(Arc::from("r"), payload, None)).numbered(seq)
            };
            reg.retain(h, seq, p);
            seq
        })
    }

    fn seqs(r: &Replay) -> Vec<u64> {
        r.frames.iter().map(|(s, _)| *s).collect()
    }

    #[test]
    fn ring_is_bounded_by_count_and_bytes() {
        let reg = HistoryRegistry::new(cfg(5, 100));
        for _ in 0..10 {
            publish(&reg, "a", 12);
        }
        assert_eq!(
            reg.stats(),
            HistoryStats {
                rooms: 1,
                frames: 5,
                bytes: 60,
                refused: 0,
            }
        );
        for _ in 0..10 {
            publish(&reg, "b", 30);
        }
        assert_eq!(reg.stats().bytes, 60 + 90);
        publish(&reg, "c", 1000);
        assert_eq!(
            reg.stats().frames,
            5 + 3,
            "a frame over the byte bound is not kept"
        );
        assert_eq!(reg.stats().refused, 1);
    }

    #[test]
    fn an_oversized_frame_leaves_the_ring_untouched_and_is_a_hole() {
        let reg = HistoryRegistry::new(cfg(10, 100));
        for _ in 0..3 {
            publish(&reg, "r", 29);
        }
        let before = reg.stats();
        assert_eq!(publish(&reg, "r", 101), 4, "numbered though not kept");
        assert_eq!(
            reg.stats(),
            HistoryStats {
                refused: 1,
                ..before
            },
            "ring untouched, refusal counted"
        );
        assert_eq!(publish(&reg, "r", 12), 5);
        let now = Instant::now();
        let r = reg.with_room("r", |h| h.replay_after(0, now));
        assert_eq!(
            (r.start, seqs(&r), r.upto),
            (ResumeStart::Full, vec![1, 2, 3, 5], 5)
        );
        assert_eq!(
            r.holes(r.first(0)),
            vec![(3, 4, 4)],
            "4 missing before frames[3]"
        );
        let r = reg.with_room("r", |h| h.replay_after(4, now));
        assert_eq!((seqs(&r), r.holes(r.first(4))), (vec![5], vec![]));
        // A refused message last: the hole is after the last frame.
        assert_eq!(publish(&reg, "r", 500), 6);
        let r = reg.with_room("r", |h| h.replay_after(3, now));
        assert_eq!(seqs(&r), vec![5]);
        assert_eq!(r.holes(r.first(3)), vec![(0, 4, 4), (1, 6, 6)]);
        let r = reg.with_room("r", |h| h.replay_after(6, now));
        assert!(r.frames.is_empty() && r.holes(r.first(6)).is_empty());
    }

    #[test]
    fn replay_reports_full_gap_and_reset() {
        let reg = HistoryRegistry::new(cfg(3, 1000));
        for i in 1..=5 {
            assert_eq!(publish(&reg, "r", 12), i);
        }
        let now = Instant::now();
        let r = reg.with_room("r", |h| h.replay_after(3, now));
        assert_eq!((r.start, r.frames.len(), r.upto), (ResumeStart::Full, 2, 5));
        assert!(r.holes(r.first(3)).is_empty());
        let r = reg.with_room("r", |h| h.replay_after(0, now));
        assert_eq!(r.start, ResumeStart::Gap { from: 1, to: 2 });
        assert_eq!(seqs(&r), vec![3, 4, 5]);
        assert!(
            r.holes(r.first(0)).is_empty(),
            "the gap is the start, not a hole"
        );
        let r = reg.with_room("r", |h| h.replay_after(5, now));
        assert_eq!((r.start, r.frames.len()), (ResumeStart::Full, 0));
        let r = reg.with_room("r", |h| h.replay_after(9, now));
        assert_eq!(
            (r.start, r.frames.len()),
            (ResumeStart::Reset { next: 3 }, 3)
        );
        assert!(r.holes(r.first(9)).is_empty());
    }

    #[test]
    fn idle_rooms_without_members_are_dropped_and_numbering_never_restarts() {
        let reg = HistoryRegistry::new(cfg(3, 1000));
        for _ in 0..4 {
            publish(&reg, "idle", 12);
            publish(&reg, "busy", 12);
        }
        let later = Instant::now() + Duration::from_millis(60);
        assert_eq!(reg.sweep(later, |room| room == "busy"), 1);
        assert_eq!(reg.stats().rooms, 1);
        assert_eq!(
            publish(&reg, "idle", 12),
            5,
            "continues above the dropped numbers"
        );
        assert_eq!(reg.sweep(Instant::now(), |_| false), 0, "not idle yet");
    }

    #[test]
    fn a_broker_backfills_older_numbers_in_front_and_restarts_numbering() {
        let reg = HistoryRegistry::new(cfg(4, 1 << 20));
        let now = Instant::now();
        // A node that joined late holds 10 and 11 (numbered by the broker).
        reg.with_room("r", |h| {
            for seq in [10, 11] {
                h.observe(seq, now);
                reg.retain(h, seq, publication(20, seq));
            }
        });
        let older: Vec<_> = (5..=11).map(|s| (s, publication(20, s))).collect();
        // Only numbers older than 10 go in front, newest first, within the frame cap.
        assert_eq!(reg.backfill("r", &older), 2);
        let replay = reg.with_room("r", |h| h.replay_after(7, now));
        assert_eq!(replay.start, ResumeStart::Full);
        assert_eq!(seqs(&replay), vec![8, 9, 10, 11]);
        assert_eq!(
            reg.with_room("r", |h| h.replay_after(5, now)).start,
            ResumeStart::Gap { from: 6, to: 7 }
        );
        // Redis lost the room: the ring is forgotten and numbers start at 1 again.
        reg.with_room("r", |h| {
            h.restart();
            h.observe(1, now);
            reg.retain(h, 1, publication(20, 1));
        });
        let replay = reg.with_room("r", |h| h.replay_after(0, now));
        assert_eq!(
            (replay.start, seqs(&replay), replay.upto),
            (ResumeStart::Full, vec![1], 1)
        );
    }
}

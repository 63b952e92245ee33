//! The shard's side of history (`--history N`): sequenced publishes, their delivery,
//! resuming a room from a sequence number, and the periodic sweep of idle histories.
//!
//! A sequenced publish is not delivered locally at once: the hub sends it to every
//! shard with members, this one included, under the room's lock, so each shard
//! delivers a room's messages in number order. A resume takes the same lock to queue
//! the retained frames after `since` and join the room, so no publish falls between
//! the snapshot and the live stream; live messages already on their way with numbers up
//! to the snapshot's are skipped for that connection ([`Connection::already_replayed`]).
//! A number the history refused to keep (a message larger than `--history-bytes`) is
//! replayed as a `gap` message in its place, so a resume never skips silently.
//!
//! [`Connection::already_replayed`]: crate::conn::Connection::already_replayed

use std::time::{Duration, Instant};

use crate::conn::Phase;
use crate::hub::sequenced::{gap_message, reset_message};
use crate::hub::{ConnKey, PreparedFrame, ResumeStart, RoomId, Sequenced, SequencedPublish};
use crate::metrics::MetricsCollector;
use crate::proto::frame::Opcode;

use super::ShardState;

/// What a resume did (see [`crate::Context::resume`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resumed {
    /// Whether a `gap` or `reset` message was sent first.
    pub start: ResumeStart,
    /// Retained messages queued to the connection.
    pub replayed: usize,
    /// `gap` messages queued among or after the replayed messages, one per run of
    /// numbers that were issued but not retained (a message larger than
    /// `--history-bytes`); 0 when the replay is contiguous.
    pub holes: usize,
    /// The last number issued in the room at the resume: live messages follow it.
    pub upto: u64,
}

/// Report a sequenced publish that needs it: one that reached no shard (no part will
/// report it) and one the history refused. `shard` is the publishing shard (0 for a
/// [`crate::Publisher`] outside the shards).
pub(crate) fn report_sequenced(
    metrics: &dyn MetricsCollector,
    shard: usize,
    publish: &SequencedPublish,
) {
    if publish.shards == 0 {
        metrics.publish_fanned_out(shard, 0);
    }
    if !publish.retained {
        metrics.history_refused(shard, publish.bytes);
    }
}

fn text_frame(text: &str) -> PreparedFrame {
    PreparedFrame::encode(Opcode::Text, text.as_bytes())
}

/// How often shard 0 sweeps idle histories: a quarter of the TTL, within 100 ms..10 s.
pub fn sweep_interval(ttl: Duration) -> Duration {
    (ttl / 4).clamp(Duration::from_millis(100), Duration::from_secs(10))
}

impl ShardState {
    /// History on: number and hand `frame` to every shard with members of `room` (this
    /// one included). Returns the local members it will be queued to.
    pub(super) fn publish_sequenced(
        &mut self,
        room: &str,
        frame: &PreparedFrame,
        exclude: Option<ConnKey>,
    ) -> usize {
        let exclude = exclude.map(|key| (self.id, key));
        if let Some(publish) = self.hub.shared().publish_sequenced(room, frame, exclude) {
            report_sequenced(self.metrics(), self.id, &publish);
        }
        self.hub.rooms().lookup(room).map_or(0, |id| {
            let members = self.hub.rooms().members(id);
            members.len() - usize::from(exclude.is_some_and(|(_, k)| members.contains(&k)))
        })
    }

    /// Queue a sequenced publish to the local members of `room`: the plain or the
    /// sequence-framed frame, skipping what a resume already replayed.
    pub(super) fn deliver_sequenced(
        &mut self,
        room: RoomId,
        item: &Sequenced,
        exclude: Option<ConnKey>,
    ) -> usize {
        self.deliver_with(room, exclude, |conn| {
            if !conn.replay_marks.is_empty() && conn.already_replayed(room, item.seq) {
                return None;
            }
            Some(item.frame_for(conn.sequenced).clone())
        })
    }

    /// Replay `room` after `since` to `key` and join it, atomically with the room's
    /// publishes. `None` when history is off or the connection is not open.
    pub(super) fn resume(&mut self, key: ConnKey, room: &str, since: u64) -> Option<Resumed> {
        if self
            .slots
            .get(key)
            .is_none_or(|s| s.conn.phase() != Phase::Open)
        {
            return None;
        }
        let shared = self.hub.shared().clone();
        let history = shared.history()?;
        self.metrics().resume_attempt(self.id);
        let now = Instant::now();
        let (resumed, room_opened) = history.with_room(room, |h| {
            let replay = h.replay_after(since, now);
            let control = match replay.start {
                ResumeStart::Full => None,
                ResumeStart::Gap { from, to } => Some(gap_message(from, to)),
                ResumeStart::Reset { next } => Some(reset_message(next)),
            };
            let holes = replay.holes(replay.first(since));
            let conn = &mut self.slots[key].conn;
            conn.sequenced = true;
            if let Some(text) = control {
                conn.push_replay(text_frame(&text));
            }
            let replayed = replay.frames.len();
            let mut next_hole = holes.iter().peekable();
            for (i, (_, frame)) in replay.frames.into_iter().enumerate() {
                while let Some((_, from, to)) = next_hole.next_if(|(at, ..)| *at == i) {
                    conn.push_replay(text_frame(&gap_message(*from, *to)));
                }
                conn.push_replay(frame);
            }
            for (_, from, to) in next_hole {
                conn.push_replay(text_frame(&gap_message(*from, *to)));
            }
            let joined = self.hub.join(room, key);
            let conn = &mut self.slots[key].conn;
            if joined.new_member {
                conn.rooms.push(joined.room);
            }
            conn.replay_marks.retain(|(r, _)| *r != joined.room);
            conn.replay_marks.push((joined.room, replay.upto));
            let resumed = Resumed {
                start: replay.start,
                replayed,
                holes: holes.len(),
                upto: replay.upto,
            };
            (resumed, joined.room_opened)
        });
        self.mark_dirty(key);
        let metrics = self.metrics();
        if room_opened {
            metrics.room_opened(self.id);
        }
        metrics.frames_replayed(self.id, resumed.replayed);
        match (resumed.start, resumed.holes) {
            (ResumeStart::Full, 0) => metrics.resume_served(self.id),
            _ => metrics.resume_gap(self.id),
        }
        Some(resumed)
    }

    /// Shard 0, history on: drop idle histories when the sweep is due.
    pub(super) fn sweep_history_if_due(&mut self, now: Instant) {
        let Some(at) = self.history_sweep_at else {
            return;
        };
        if now < at {
            return;
        }
        let dropped = self.hub.shared().sweep_history(now);
        if dropped > 0 {
            tracing::debug!(dropped, "idle room histories dropped");
        }
        let ttl = self
            .hub
            .shared()
            .history()
            .map_or(Duration::ZERO, |h| h.config().ttl);
        self.history_sweep_at = Some(now + sweep_interval(ttl));
    }
}

//! The shard's side of history (`--history N`): resuming a room from a sequence number,
//! and the periodic sweep of idle histories. (Numbered publishes and their delivery go
//! through the one publish path: see [`super::publish`].)
//!
//! A numbered publish is not delivered locally at once: the hub sends it to every
//! shard with members, this one included, under the room's lock, so each shard
//! delivers a room's messages in number order. A resume takes the same lock to snapshot
//! the retained publications after `since` and join the room, so no publish falls
//! between the snapshot and the live stream; it queues their sequenced forms after the
//! lock is released (built once per publication and shared with every live subscriber,
//! compressed ones too; nothing is encoded under the lock), which keeps the order because later live
//! messages reach this shard only through its inbox, drained after this call returns.
//! Live messages already on their way with numbers up to the snapshot's are skipped for
//! that connection (its slot's replay mark: `Slot::already_replayed` in `slot.rs`).
//! A number the history refused to keep (a message larger than `--history-bytes`) is
//! replayed as a `gap` message in its place, so a resume never skips silently.
//!
//! An SSE stream resumes the same way (its `Last-Event-ID`): it gets the publications'
//! SSE chunks (with their `id:` lines) and the announcements as `event: gap` /
//! `event: reset` with the same JSON as data.

use std::time::{Duration, Instant};

use crate::conn::Phase;
use crate::hub::{FetchRequest, ResumeStart};
use crate::proto::frame::Opcode;
use crate::proto::handshake::Transport;
use crate::wire::sequence::{gap_message, reset_message};
use crate::wire::{ConnKey, Encoding, PreparedFrame};

use super::sse::sse_control;
use super::state::ShardState;

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
    /// Cluster mode: the local history could not serve it and the broker is fetching
    /// the room's messages; the replay follows when they are here (nothing was queued
    /// yet, the other fields are empty).
    pub fetching: bool,
}

fn text_frame(text: &str) -> PreparedFrame {
    PreparedFrame::encode(Opcode::Text, text.as_bytes())
}

/// How often shard 0 sweeps idle histories: a quarter of the TTL, within 100 ms..10 s.
pub fn sweep_interval(ttl: Duration) -> Duration {
    (ttl / 4).clamp(Duration::from_millis(100), Duration::from_secs(10))
}

impl ShardState {
    /// Replay `room` after `since` to `key` and join it, atomically with the room's
    /// publishes. `None` when history is off or the connection is not open.
    pub(super) fn resume(&mut self, key: ConnKey, room: &str, since: u64) -> Option<Resumed> {
        self.resume_from(key, room, since, true)
    }

    /// [`ShardState::resume`]; `offer`: in cluster mode, hand it to the broker when the
    /// local history cannot serve it (see [`crate::hub::Broker::fetch`]); false when
    /// the broker already filled the local history.
    pub(super) fn resume_from(
        &mut self,
        key: ConnKey,
        room: &str,
        since: u64,
        offer: bool,
    ) -> Option<Resumed> {
        if self
            .slots
            .get(key)
            .is_none_or(|s| s.conn.phase() != Phase::Open)
        {
            return None;
        }
        let shared = self.hub.shared().clone();
        let history = shared.history()?;
        if offer {
            self.metrics().resume_attempt(self.id);
        }
        let now = Instant::now();
        let (replay, room_opened, fetching) = history.with_room(room, |h| {
            let replay = h.replay_after(since, now);
            let joined = self.hub.join(room, key);
            // Cluster mode: not all here (or nothing of the room here, or the ring is
            // stale: the node stopped hearing the room for a while): the broker
            // fetches; live messages wait (skipped: they are in the history) until
            // the resume runs again.
            let fetching = offer
                && (replay.start != ResumeStart::Full || h.retained().0 == 0 || h.is_stale())
                && shared.broker_fetch(FetchRequest {
                    room: h.name().clone(),
                    since,
                    shard: self.id,
                    key,
                    generation: self.slots[key].generation,
                });
            let slot = &mut self.slots[key];
            if joined.new_member {
                slot.rooms.push(joined.room);
            }
            let upto = if fetching { u64::MAX } else { replay.upto };
            slot.mark_replayed(joined.room, upto);
            (replay, joined.room_opened, fetching)
        });
        if room_opened {
            self.metrics().room_opened(self.id);
        }
        if fetching {
            self.slots[key].sequenced = true;
            return Some(Resumed {
                start: ResumeStart::Full,
                replayed: 0,
                holes: 0,
                upto: 0,
                fetching: true,
            });
        }
        let control = match replay.start {
            ResumeStart::Full => None,
            ResumeStart::Gap { from, to } => Some(("gap", gap_message(from, to))),
            ResumeStart::Reset { next } => Some(("reset", reset_message(next))),
        };
        let holes = replay.holes(replay.first(since));
        let deflate = self.shared.cfg.deflate;
        let slot = &mut self.slots[key];
        slot.sequenced = true;
        let conn = &mut slot.conn;
        let min = deflate.min_size_for(conn.compresses());
        let sse = conn.transport() == Transport::Sse;
        // A WebSocket gets the control message as text, an SSE stream as its event type.
        let announce = |kind: &str, text: &str| match sse {
            true => sse_control(kind, text),
            false => text_frame(text),
        };
        if let Some((kind, text)) = control {
            conn.push_replay(announce(kind, &text));
        }
        let mut next_hole = holes.iter().peekable();
        for (i, (_, publication)) in replay.frames.iter().enumerate() {
            while let Some((_, from, to)) = next_hole.next_if(|(at, ..)| *at == i) {
                conn.push_replay(announce("gap", &gap_message(*from, *to)));
            }
            conn.push_replay(match sse {
                true => publication.frame(Encoding::Sse).clone(),
                false => publication.frame_for(true, min).clone(),
            });
        }
        for (_, from, to) in next_hole {
            conn.push_replay(announce("gap", &gap_message(*from, *to)));
        }
        let resumed = Resumed {
            start: replay.start,
            replayed: replay.frames.len(),
            holes: holes.len(),
            upto: replay.upto,
            fetching: false,
        };
        self.mark_dirty(key);
        let metrics = self.metrics();
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

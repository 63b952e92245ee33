//! [`Slot`]: what a shard keeps per connection, and [`ConnId`], the connection's name — its protocol state machine
//! ([`Connection`]), its socket, and the shard's bookkeeping about it: rooms joined,
//! replay marks and the sequence framing, the armed deadline, liveness, the admission
//! slot, the dirty-list flag, and what the application attached. The connection itself
//! never reads any of it.

use std::os::fd::RawFd;
use std::time::Instant;

use crate::conn::{Connection, Timer};
use crate::wire::RoomId;

use super::api::Identity;
use super::pending::PendingPublish;
use super::session::SessionLink;

/// A connection's identity: its shard, its slot and the slot's generation (so an id
/// of a closed connection never matches the connection that reuses its slot).
/// Displayed as `shard.slot.generation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId {
    pub shard: usize,
    pub slot: usize,
    pub generation: u32,
}

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.shard, self.slot, self.generation)
    }
}

/// One connection slot of a shard's slab.
#[derive(Debug)]
pub struct Slot {
    /// The protocol and queue state machine.
    pub conn: Connection,
    /// The socket (the driver owns it; the shard only asks for the peer's address).
    pub fd: RawFd,
    /// Distinguishes this connection from earlier ones in the same slab slot (timer
    /// entries, [`ConnId`], io_uring `user_data`).
    pub generation: u32,
    /// When the TCP connection was accepted: `connection_closed`'s duration counts
    /// from here.
    pub(super) opened_at: Instant,
    /// The armed deadline, if any: the live entry of the shard's
    /// [`crate::conn::TimerHeap`] (others for this slot are stale).
    pub(super) deadline: Option<(Instant, Timer)>,
    /// Bytes arrived since the last ping was sent (checked when the pong is due).
    pub(super) heard_since_ping: bool,
    /// Holds one slot of the admission cap (released when the connection ends).
    pub(super) admitted: bool,
    /// In the shard's dirty list (has output to flush).
    pub(super) dirty: bool,
    /// Rooms this connection joined on its shard.
    pub(super) rooms: Vec<RoomId>,
    /// Room messages go out in the sequence framing (the client asked with `?seq=1`,
    /// or resumed).
    pub(super) sequenced: bool,
    /// Rooms resumed from history: (room, last seq replayed). Live messages up to that
    /// number are skipped (they were replayed); the mark goes with the first one after.
    pub(super) replay_marks: Vec<(RoomId, u64)>,
    /// The peer's close code, when it sent one.
    pub(super) peer_code: Option<u16>,
    /// What [`crate::Upgrade::AcceptAs`] attached (boxed: one pointer when absent).
    pub(super) identity: Option<Box<Identity>>,
    /// The application's tag ([`crate::Context::set_tag`]); 0 until set.
    pub(super) tag: u32,
    /// An HTTP publish whose body is being read.
    pub(super) publish: Option<Box<PendingPublish>>,
    /// Its session (`--session-grace`): held (attached, or detached after the socket
    /// went away), or taken over by a newer connection.
    pub(super) session: SessionLink,
}

impl Slot {
    /// A slot for a connection accepted at `now` on socket `fd`, waiting for its
    /// request head.
    pub(super) fn new(fd: RawFd, generation: u32, now: Instant) -> Self {
        Slot {
            conn: Connection::new(),
            fd,
            generation,
            opened_at: now,
            deadline: None,
            heard_since_ping: false,
            admitted: false,
            dirty: false,
            rooms: Vec::new(),
            sequenced: false,
            replay_marks: Vec::new(),
            peer_code: None,
            identity: None,
            tag: 0,
            publish: None,
            session: SessionLink::None,
        }
    }

    /// Live messages of `room` up to `upto` were replayed to this connection: skip them
    /// (see [`Slot::already_replayed`]). Replaces an earlier mark for the room.
    pub(super) fn mark_replayed(&mut self, room: RoomId, upto: u64) {
        self.replay_marks.retain(|(r, _)| *r != room);
        self.replay_marks.push((room, upto));
    }

    /// True when live message `seq` of `room` was already replayed to this connection.
    /// The first message past the mark removes it (a room's messages arrive in order).
    pub(super) fn already_replayed(&mut self, room: RoomId, seq: u64) -> bool {
        let Some(i) = self.replay_marks.iter().position(|(r, _)| *r == room) else {
            return false;
        };
        if seq <= self.replay_marks[i].1 {
            return true;
        }
        self.replay_marks.swap_remove(i);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replayed_seqs_are_skipped_until_the_first_newer_one() {
        let mut c = Slot::new(-1, 0, Instant::now());
        let (a, b) = (RoomId(1), RoomId(2));
        c.replay_marks.push((a, 10));
        assert!(c.already_replayed(a, 9) && c.already_replayed(a, 10));
        assert!(!c.already_replayed(b, 3), "other rooms are not affected");
        assert!(!c.already_replayed(a, 11));
        assert!(c.replay_marks.is_empty(), "the mark is gone once passed");
    }
}

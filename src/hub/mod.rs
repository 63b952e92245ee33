//! The hub: rooms on one shard plus the cross-shard fan-out of prepared frames.
//!
//! Each shard owns a [`Hub`] (its [`Rooms`] and a handle on the [`HubShared`] state).
//! A publish encodes its frame once ([`PreparedFrame`]), the publishing shard queues it
//! to its local members, and every *other* shard that the [`Directory`] lists for the
//! room gets one [`ShardMsg::Publish`] through its crossbeam inbox, followed by a
//! wake-up that is only written when the target is not already awake.
//!
//! With history on (`--history N`, see [`history`]) a publish goes through
//! [`HubShared::publish_sequenced`] instead: numbered under the room's lock, kept in the
//! room's ring and sent as [`ShardMsg::Sequenced`] to *every* shard with members, the
//! publishing shard included, so each shard delivers a room's messages in number order.
//!
//! The hub never touches connections: it answers "who are the local members" and
//! "which shards need a message"; the shard queues frames into connections.

pub mod directory;
pub mod history;
pub mod prepared;
pub mod rooms;
pub mod sequenced;

use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

pub use directory::{Directory, ShardSet};
pub use history::{HistoryConfig, HistoryRegistry, HistoryStats, Replay, ResumeStart};
pub use prepared::PreparedFrame;
pub use rooms::{ConnKey, Joined, RoomId, Rooms};
pub use sequenced::Sequenced;

use sequenced::SeqFrameDraft;

use crate::sys::Waker;

/// Work sent to a shard from another thread.
#[derive(Debug)]
pub enum ShardMsg {
    /// Queue `frame` to every local member of `room`.
    Publish {
        room: Arc<str>,
        frame: PreparedFrame,
    },
    /// History on: queue `item` to every local member of `room` (each gets the plain or
    /// the sequence-framed frame), except `exclude` = (shard, connection).
    Sequenced {
        room: Arc<str>,
        item: Arc<Sequenced>,
        exclude: Option<(usize, ConnKey)>,
    },
    /// Begin a graceful shutdown.
    Shutdown,
}

/// One shard's inbox as seen by everyone else.
pub struct ShardInbox {
    tx: Sender<ShardMsg>,
    waker: Arc<Waker>,
}

impl ShardInbox {
    /// Deliver `msg` and wake the shard if it is not already awake.
    pub fn send(&self, msg: ShardMsg) {
        // The receiver lives as long as the shard; a send after the shard exited is moot.
        if self.tx.send(msg).is_ok() {
            if let Err(e) = self.waker.wake() {
                tracing::error!(error = %e, "failed to wake a shard");
            }
        }
    }
}

/// State shared by all shards (read-mostly).
pub struct HubShared {
    pub directory: Directory,
    inboxes: Vec<ShardInbox>,
    history: Option<HistoryRegistry>,
}

impl HubShared {
    /// Create the shared state (history off) and, for each shard, its inbox receiver.
    pub fn new(wakers: &[Arc<Waker>]) -> (Arc<Self>, Vec<Receiver<ShardMsg>>) {
        Self::with_history(wakers, None)
    }

    /// Like [`HubShared::new`], with per-room history when `history` is given.
    pub fn with_history(
        wakers: &[Arc<Waker>],
        history: Option<HistoryConfig>,
    ) -> (Arc<Self>, Vec<Receiver<ShardMsg>>) {
        let mut inboxes = Vec::with_capacity(wakers.len());
        let mut receivers = Vec::with_capacity(wakers.len());
        for waker in wakers {
            let (tx, rx) = crossbeam_channel::unbounded();
            inboxes.push(ShardInbox {
                tx,
                waker: waker.clone(),
            });
            receivers.push(rx);
        }
        let shared = HubShared {
            directory: Directory::new(),
            inboxes,
            history: history.map(HistoryRegistry::new),
        };
        (Arc::new(shared), receivers)
    }

    pub fn shard_count(&self) -> usize {
        self.inboxes.len()
    }

    pub fn inbox(&self, shard: usize) -> &ShardInbox {
        &self.inboxes[shard]
    }

    /// The history registry, when history is on.
    pub fn history(&self) -> Option<&HistoryRegistry> {
        self.history.as_ref()
    }

    /// History on: number `frame` in `room`, keep it, and send it to every shard with
    /// members (the caller's included), all under the room's lock. Returns the number,
    /// or `None` when history is off or `frame` is not a data frame.
    pub fn publish_sequenced(
        &self,
        room: &str,
        frame: &PreparedFrame,
        exclude: Option<(usize, ConnKey)>,
    ) -> Option<u64> {
        let history = self.history.as_ref()?;
        // Encoded outside the lock; only the number is written in under it.
        let draft = SeqFrameDraft::new(frame)?;
        let cfg = *history.config();
        let now = Instant::now();
        Some(history.with_room(room, |h| {
            let seq = h.assign(now);
            // One allocation per publish keeps inbox messages small (no larger than
            // `Publish`) and each shard's hand-off one reference count.
            let item = Arc::new(draft.finish(seq));
            h.retain(seq, item.framed.clone(), &cfg);
            for shard in self.directory.shards(room).iter() {
                self.inboxes[shard].send(ShardMsg::Sequenced {
                    room: h.name().clone(),
                    item: item.clone(),
                    exclude,
                });
            }
            seq
        }))
    }

    /// Drop idle rooms' history (see [`HistoryRegistry::sweep`]); 0 when history is off.
    pub fn sweep_history(&self, now: Instant) -> usize {
        self.history.as_ref().map_or(0, |h| {
            h.sweep(now, |room| !self.directory.shards(room).is_empty())
        })
    }

    /// Send `frame` to every shard with members of `room`, except `skip` (the caller's
    /// own shard, which delivers locally). Returns the number of shards messaged.
    pub fn fan_out(&self, room: &Arc<str>, frame: &PreparedFrame, skip: Option<usize>) -> usize {
        let mut sent = 0;
        for shard in self.directory.shards(room).iter() {
            if Some(shard) == skip {
                continue;
            }
            self.inboxes[shard].send(ShardMsg::Publish {
                room: room.clone(),
                frame: frame.clone(),
            });
            sent += 1;
        }
        sent
    }
}

/// A shard's part of the hub.
pub struct Hub {
    shard: usize,
    rooms: Rooms,
    shared: Arc<HubShared>,
}

impl Hub {
    pub fn new(shard: usize, shared: Arc<HubShared>) -> Self {
        Hub {
            shard,
            rooms: Rooms::new(),
            shared,
        }
    }

    pub fn shard(&self) -> usize {
        self.shard
    }

    pub fn rooms(&self) -> &Rooms {
        &self.rooms
    }

    pub fn shared(&self) -> &Arc<HubShared> {
        &self.shared
    }

    /// Add a local member; publishes this shard in the directory on the room's first join.
    pub fn join(&mut self, name: &str, conn: ConnKey) -> Joined {
        let joined = self.rooms.join(name, conn);
        if joined.room_created {
            self.shared
                .directory
                .add(self.rooms.name(joined.room), self.shard);
        }
        joined
    }

    /// Remove a local member; withdraws this shard from the directory on the last leave.
    /// Returns true when the room was destroyed on this shard.
    pub fn leave(&mut self, room: RoomId, conn: ConnKey) -> bool {
        match self.rooms.leave(room, conn) {
            Some(name) => {
                self.shared.directory.remove(&name, self.shard);
                true
            }
            None => false,
        }
    }

    /// Send a prepared frame to the other shards with members of `room`.
    pub fn fan_out_remote(&self, room: &Arc<str>, frame: &PreparedFrame) -> usize {
        self.shared.fan_out(room, frame, Some(self.shard))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::frame::Opcode;

    #[test]
    fn publish_reaches_each_other_member_shard_once_with_the_same_buffer() {
        let wakers: Vec<_> = (0..3).map(|_| Arc::new(Waker::new().unwrap())).collect();
        let (shared, rx) = HubShared::new(&wakers);
        let mut hubs: Vec<Hub> = (0..3).map(|i| Hub::new(i, shared.clone())).collect();
        hubs[0].join("r", 1);
        hubs[1].join("r", 7);
        hubs[1].join("r", 8);
        // shard 2 has no member: it must get nothing.
        let frame = PreparedFrame::encode(Opcode::Text, b"x");
        let name: Arc<str> = Arc::from("r");
        assert_eq!(hubs[0].fan_out_remote(&name, &frame), 1);
        match rx[1].try_recv().unwrap() {
            ShardMsg::Publish { frame: f, .. } => assert!(f.shares_buffer_with(&frame)),
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            rx[1].try_recv().is_err(),
            "one message per shard, not per member"
        );
        assert!(rx[0].try_recv().is_err() && rx[2].try_recv().is_err());
        // Last leave on shard 1 withdraws it from the directory.
        let room = hubs[1].rooms().lookup("r").unwrap();
        assert!(!hubs[1].leave(room, 7));
        assert!(hubs[1].leave(room, 8));
        assert_eq!(hubs[0].fan_out_remote(&name, &frame), 0);
    }

    #[test]
    fn a_burst_of_publishes_writes_one_wakeup() {
        let wakers: Vec<_> = (0..2).map(|_| Arc::new(Waker::new().unwrap())).collect();
        let (shared, _rx) = HubShared::new(&wakers);
        let mut h0 = Hub::new(0, shared.clone());
        let mut h1 = Hub::new(1, shared.clone());
        h0.join("r", 1);
        h1.join("r", 2);
        wakers[1].arm_sleep();
        let frame = PreparedFrame::encode(Opcode::Binary, b"y");
        let name: Arc<str> = Arc::from("r");
        let before = wakers[1].wakes_written();
        for _ in 0..1000 {
            h0.fan_out_remote(&name, &frame);
        }
        assert_eq!(wakers[1].wakes_written() - before, 1);
    }
}

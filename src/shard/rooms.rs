//! Room membership on a shard: joining and leaving through the shard's
//! [`crate::hub::Hub`], kept in step with each slot's list of rooms, and the
//! `rooms_active` metric (a room opens on this shard with its first member here and
//! closes with its last).

use std::sync::Arc;

use crate::conn::Phase;
use crate::wire::{ConnKey, RoomId};

use super::state::ShardState;

impl ShardState {
    /// `key` joins `room` (a valid name); nothing happens unless it is open.
    pub(super) fn join(&mut self, key: ConnKey, room: &str) {
        if self
            .slots
            .get(key)
            .is_none_or(|s| s.conn.phase() != Phase::Open)
        {
            return;
        }
        let joined = self.hub.join(room, key);
        if joined.new_member {
            self.slots[key].rooms.push(joined.room);
        }
        if joined.room_opened {
            self.metrics().room_opened(self.id);
        }
    }

    /// `key` leaves `room` (and forgets its replay mark there). False when it was not
    /// a member.
    pub(super) fn leave(&mut self, key: ConnKey, room: &str) -> bool {
        let Some(id) = self.hub.rooms().lookup(room) else {
            return false;
        };
        let Some(slot) = self.slots.get_mut(key) else {
            return false;
        };
        let Some(pos) = slot.rooms.iter().position(|r| *r == id) else {
            return false;
        };
        slot.rooms.swap_remove(pos);
        slot.replay_marks.retain(|(r, _)| *r != id);
        self.leave_room(id, key);
        true
    }

    fn leave_room(&mut self, room: RoomId, key: ConnKey) {
        if self.hub.leave(room, key).room_closed {
            self.metrics().room_closed(self.id);
        }
    }

    /// `key` leaves every room it joined (it is ending).
    pub(super) fn leave_all(&mut self, key: ConnKey) {
        self.slots[key].replay_marks.clear();
        let rooms = std::mem::take(&mut self.slots[key].rooms);
        for room in rooms {
            self.leave_room(room, key);
        }
    }

    /// Names of the rooms `key` joined.
    pub(super) fn rooms_of(&self, key: ConnKey) -> Vec<Arc<str>> {
        self.slots.get(key).map_or_else(Vec::new, |s| {
            s.rooms
                .iter()
                .map(|r| self.hub.rooms().name(*r).clone())
                .collect()
        })
    }
}

//! The rooms of one shard: room name → the local connections that joined it.
//!
//! Owned by one shard thread, no locks. Members are kept in an `IndexSet` so a join or
//! leave is O(1) and a fan-out iterates a dense array. A room exists while it has at
//! least one local member; the first join and last leave are reported so the shared
//! [`super::Directory`] can be updated.

use std::collections::HashMap;
use std::sync::Arc;

use indexmap::IndexSet;
use slab::Slab;

pub use crate::wire::{ConnKey, RoomId};

#[derive(Debug)]
struct Room {
    name: Arc<str>,
    members: IndexSet<ConnKey>,
}

/// Room table of one shard.
#[derive(Debug, Default)]
pub struct Rooms {
    by_name: HashMap<Arc<str>, RoomId>,
    rooms: Slab<Room>,
}

/// What a join changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Joined {
    pub room: RoomId,
    /// The connection was not a member before.
    pub new_member: bool,
    /// This was the room's first local member (the room was created on this shard).
    pub room_created: bool,
    /// No shard had members of the room before: it now exists in the process. Set by
    /// [`super::Hub::join`] from the [`super::Directory`]; always false from
    /// [`Rooms::join`], which knows only this shard.
    pub room_opened: bool,
}

impl Rooms {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn lookup(&self, name: &str) -> Option<RoomId> {
        self.by_name.get(name).copied()
    }

    pub fn name(&self, room: RoomId) -> &Arc<str> {
        &self.rooms[room.0].name
    }

    /// Number of rooms with at least one local member.
    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }

    pub fn join(&mut self, name: &str, conn: ConnKey) -> Joined {
        let (room, room_created) = match self.by_name.get(name) {
            Some(&id) => (id, false),
            None => {
                let name: Arc<str> = Arc::from(name);
                let id = RoomId(self.rooms.insert(Room {
                    name: name.clone(),
                    members: IndexSet::new(),
                }));
                self.by_name.insert(name, id);
                (id, true)
            }
        };
        let new_member = self.rooms[room.0].members.insert(conn);
        Joined {
            room,
            new_member,
            room_created,
            room_opened: false,
        }
    }

    /// Remove `conn` from `room`; returns the room's name when it became empty (and was removed).
    pub fn leave(&mut self, room: RoomId, conn: ConnKey) -> Option<Arc<str>> {
        let r = self.rooms.get_mut(room.0)?;
        r.members.swap_remove(&conn);
        if r.members.is_empty() {
            let r = self.rooms.remove(room.0);
            self.by_name.remove(&r.name);
            return Some(r.name);
        }
        None
    }

    pub fn members(&self, room: RoomId) -> &IndexSet<ConnKey> {
        &self.rooms[room.0].members
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_join_creates_and_last_leave_removes() {
        let mut r = Rooms::new();
        let a = r.join("news", 1);
        assert!(a.room_created && a.new_member);
        let b = r.join("news", 2);
        assert!(!b.room_created && b.new_member);
        assert!(!r.join("news", 2).new_member, "joining twice is idempotent");
        assert_eq!(r.members(a.room).len(), 2);
        assert_eq!(r.leave(a.room, 1), None);
        assert_eq!(r.leave(a.room, 2).as_deref(), Some("news"));
        assert!(r.lookup("news").is_none());
        assert!(r.is_empty());
    }
}

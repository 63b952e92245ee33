//! The room directory: which shards have members of which room.
//!
//! Shared by all shards, read on every publish and written only when a shard's first
//! member joins a room or its last member leaves, so it is a read-mostly `RwLock`ed map
//! of fixed-size shard bitmaps. A publish reads it once to decide which shards get a
//! cross-shard message: O(shards) work per publish, never O(subscribers).
//!
//! It is also where a room exists for the whole process: [`Directory::add`] reports the
//! room's first shard and [`Directory::remove`] its last, both under the write lock, so
//! a room is opened and closed once per lifetime however its members spread over shards
//! (what `rooms_active` counts) and what a broker hears as room interest
//! ([`super::broker::Broker::interest`], called through [`Directory::add_notify`] and
//! [`Directory::remove_notify`] under the write lock, so a room's on/off calls reach the
//! broker in the order the transitions happened).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Most shards a server may run: the directory keeps a fixed-size shard bitmap.
pub const MAX_SHARDS: usize = 256;

const WORDS: usize = MAX_SHARDS / 64;

/// A set of shard ids.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardSet([u64; WORDS]);

impl ShardSet {
    pub fn insert(&mut self, shard: usize) {
        self.0[shard / 64] |= 1 << (shard % 64);
    }
    pub fn remove(&mut self, shard: usize) {
        self.0[shard / 64] &= !(1 << (shard % 64));
    }
    pub fn contains(&self, shard: usize) -> bool {
        self.0[shard / 64] & (1 << (shard % 64)) != 0
    }
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }
    /// Number of shards in the set.
    pub fn len(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        (0..MAX_SHARDS).filter(|s| self.contains(*s))
    }
}

/// Room name → shards with at least one member.
#[derive(Debug, Default)]
pub struct Directory {
    rooms: RwLock<HashMap<Arc<str>, ShardSet>>,
}

impl Directory {
    pub fn new() -> Self {
        Self::default()
    }

    /// Record that `shard` now has members of `room`. Returns true when no shard had
    /// members before: the room now exists in the process.
    pub fn add(&self, room: &Arc<str>, shard: usize) -> bool {
        self.add_notify(room, shard, |_| {})
    }

    /// [`Directory::add`], calling `opened` under the write lock when the room opens.
    pub fn add_notify(
        &self,
        room: &Arc<str>,
        shard: usize,
        opened: impl FnOnce(&Arc<str>),
    ) -> bool {
        let mut map = self.rooms.write().unwrap_or_else(|p| p.into_inner());
        let set = map.entry(room.clone()).or_default();
        let open = set.is_empty();
        set.insert(shard);
        if open {
            opened(room);
        }
        open
    }

    /// Record that `shard` has no members of `room` any more. Returns true when it was
    /// the last shard with members: the room no longer exists in the process.
    pub fn remove(&self, room: &str, shard: usize) -> bool {
        self.remove_notify(room, shard, |_| {})
    }

    /// [`Directory::remove`], calling `closed` under the write lock when the room closes.
    pub fn remove_notify(&self, room: &str, shard: usize, closed: impl FnOnce(&Arc<str>)) -> bool {
        let mut map = self.rooms.write().unwrap_or_else(|p| p.into_inner());
        if let Some(set) = map.get_mut(room) {
            set.remove(shard);
            if set.is_empty() {
                if let Some((name, _)) = map.remove_entry(room) {
                    closed(&name);
                }
                return true;
            }
        }
        false
    }

    /// Shards that have members of `room` right now.
    pub fn shards(&self, room: &str) -> ShardSet {
        let map = self.rooms.read().unwrap_or_else(|p| p.into_inner());
        map.get(room).copied().unwrap_or_default()
    }

    /// Number of rooms with members on any shard.
    pub fn room_count(&self) -> usize {
        self.rooms.read().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_shards_per_room() {
        let d = Directory::new();
        let room: Arc<str> = Arc::from("a");
        assert!(d.add(&room, 0), "the first shard opens the room");
        assert!(!d.add(&room, 200));
        assert!(!d.add(&room, 0), "adding a shard twice opens nothing");
        assert_eq!(d.shards("a").iter().collect::<Vec<_>>(), vec![0, 200]);
        assert_eq!(d.shards("a").len(), 2);
        assert!(!d.remove("a", 0));
        assert_eq!(d.shards("a").iter().collect::<Vec<_>>(), vec![200]);
        assert!(!d.remove("a", 7), "a shard without members closes nothing");
        assert!(d.remove("a", 200), "the last shard closes the room");
        assert!(!d.remove("a", 200));
        assert!(d.shards("a").is_empty());
        assert_eq!(d.room_count(), 0);
        assert!(d.add(&room, 200), "reopened after closing");
    }
}

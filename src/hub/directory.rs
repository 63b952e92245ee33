//! The room directory: which shards have members of which room.
//!
//! Shared by all shards, read on every publish and written only when a shard's first
//! member joins a room or its last member leaves, so it is a read-mostly `RwLock`ed map
//! of fixed-size shard bitmaps. A publish reads it once to decide which shards get a
//! cross-shard message: O(shards) work per publish, never O(subscribers).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::config::MAX_SHARDS;

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

    /// Record that `shard` now has members of `room`.
    pub fn add(&self, room: &Arc<str>, shard: usize) {
        let mut map = self.rooms.write().unwrap_or_else(|p| p.into_inner());
        map.entry(room.clone()).or_default().insert(shard);
    }

    /// Record that `shard` has no members of `room` any more.
    pub fn remove(&self, room: &str, shard: usize) {
        let mut map = self.rooms.write().unwrap_or_else(|p| p.into_inner());
        if let Some(set) = map.get_mut(room) {
            set.remove(shard);
            if set.is_empty() {
                map.remove(room);
            }
        }
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
        d.add(&room, 0);
        d.add(&room, 200);
        assert_eq!(d.shards("a").iter().collect::<Vec<_>>(), vec![0, 200]);
        d.remove("a", 0);
        assert_eq!(d.shards("a").iter().collect::<Vec<_>>(), vec![200]);
        d.remove("a", 200);
        assert!(d.shards("a").is_empty());
        assert_eq!(d.room_count(), 0);
    }
}

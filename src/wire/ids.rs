//! Identifiers shared by the layers above: a connection's slab key on its shard and a
//! room's index in a shard's room table. Plain numbers, defined here so `conn` can hold
//! them without depending on `hub`.

/// Slab key of a connection on its shard.
pub type ConnKey = usize;

/// Index of a room in a shard's room table (valid while the room has members there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RoomId(pub(crate) usize);

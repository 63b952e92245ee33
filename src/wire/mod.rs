//! Publications and their wire forms (rank 1: below `conn` and `hub`, above `proto`).
//!
//! A publish produces one [`Publication`] (room, payload, kind, number, publish time);
//! the hub routes it and the shards queue its forms. A form is a [`PreparedFrame`]:
//! bytes encoded once per publication per [`Encoding`] actually in use and shared by
//! every subscriber on every shard ([`publication`] explains how). Also here, because
//! `conn` and `hub` both need them: the sequence framing used when history is on
//! ([`sequence`]), the identifiers [`ConnKey`] and [`RoomId`], the room-name rule
//! ([`room_name`]) and the per-publish recipient tally ([`tally`]).

pub mod compressions;
pub mod direct;
pub mod ids;
pub mod prepared;
pub mod publication;
pub mod room_name;
pub mod sequence;
pub mod tally;

pub use compressions::take_thread_compressions;
pub use direct::Direct;
pub use ids::{ConnKey, RoomId};
pub use prepared::PreparedFrame;
pub use publication::{builds, Encoding, Kind, Payload, Publication};
pub use room_name::RoomNameError;
pub use tally::PublishTally;

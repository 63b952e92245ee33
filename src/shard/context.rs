//! [`Context`]: what a [`crate::Handler`] callback may do to its connection and the hub.
//!
//! A context borrows the shard's state (not the handler), so callbacks can send, join,
//! leave, publish and close without any lock; they cannot reach into other connections'
//! state except through rooms.

use crate::conn::Phase;
use crate::proto::handshake::Transport;
use crate::wire::room_name::{self, RoomNameError};
use crate::wire::{ConnKey, PreparedFrame};

use super::api::{payload_of, prepare, Identity, Message};
use super::publisher::Publisher;
use super::replay::Resumed;
use super::slot::ConnId;
use super::sse::{sse_control, sse_message};
use super::state::ShardState;

/// Handle given to [`crate::Handler`] callbacks.
pub struct Context<'a> {
    pub(super) state: &'a mut ShardState,
    /// The connection the callback is about.
    pub(super) key: ConnKey,
}

impl Context<'_> {
    pub fn id(&self) -> ConnId {
        self.state.conn_id(self.key)
    }

    /// The identity [`crate::Upgrade::AcceptAs`] attached to this connection (`None`
    /// when it was accepted with plain [`crate::Upgrade::Accept`]).
    pub fn identity(&self) -> Option<&Identity> {
        self.state
            .slots
            .get(self.key)
            .and_then(|s| s.identity.as_deref())
    }

    /// An application-defined number stored with this connection (0 until
    /// [`Context::set_tag`]), e.g. which route it was opened for.
    pub fn tag(&self) -> u32 {
        self.state.slots.get(self.key).map_or(0, |s| s.tag)
    }

    /// Store `tag` with this connection, read back by [`Context::tag`] in its later
    /// callbacks (it lives in the connection's slot: no allocation).
    pub fn set_tag(&mut self, tag: u32) {
        if let Some(slot) = self.state.slots.get_mut(self.key) {
            slot.tag = tag;
        }
    }

    /// The shard (thread) this connection lives on.
    pub fn shard(&self) -> usize {
        self.state.id
    }

    /// The transport of this connection: [`Transport::WebSocket`], or
    /// [`Transport::Sse`] for a `GET /sse/…` event stream (which receives only: it sends
    /// no messages, so `on_message` is never called for it).
    pub fn transport(&self) -> Transport {
        self.state
            .slots
            .get(self.key)
            .map_or(Transport::WebSocket, |s| s.conn.transport())
    }

    /// Send a message to this connection only. Returns false if it is not open. On an
    /// SSE stream it is one event: text as `data:` lines, binary as the `binary` event
    /// with base64 data (see [`crate::proto::sse`]).
    pub fn send(&mut self, message: Message<'_>) -> bool {
        if self.transport() == Transport::Sse {
            return self.send_prepared(sse_message(message));
        }
        let compresses = self
            .state
            .slots
            .get(self.key)
            .is_some_and(|s| s.conn.compresses());
        let min = self.state.shared.cfg.deflate.min_size_for(compresses);
        self.send_prepared(prepare(message, min))
    }

    /// SSE streams only: send one event of type `kind` (the `event:` field; one line,
    /// non-empty, no CR or LF) with `data` (split into `data:` lines). Returns false on a
    /// WebSocket, for an invalid `kind`, or when the connection is not open.
    pub fn send_event(&mut self, kind: &str, data: &str) -> bool {
        if self.transport() != Transport::Sse || kind.is_empty() || kind.contains(['\r', '\n']) {
            return false;
        }
        self.send_prepared(sse_control(kind, data))
    }

    /// Send an already prepared frame to this connection.
    pub fn send_prepared(&mut self, frame: PreparedFrame) -> bool {
        self.state.queue_to(self.key, frame)
    }

    /// Join a room (idempotent; nothing happens once the connection is closing).
    ///
    /// `room` is a decoded name (`"café"`, which `/ws/caf%C3%A9` names too).
    ///
    /// # Errors
    /// A name that breaks the room-name rule ([`crate::wire::room_name::validate`]:
    /// 1..=128 bytes of UTF-8, no `/`, no control character, not `.` or `..`): nothing is
    /// joined.
    pub fn join(&mut self, room: &str) -> Result<(), RoomNameError> {
        room_name::validate(room)?;
        self.state.join(self.key, room);
        Ok(())
    }

    /// Leave a room. Returns false if the connection was not a member (always for a name
    /// that breaks the room-name rule: no connection can join such a room).
    pub fn leave(&mut self, room: &str) -> bool {
        self.state.leave(self.key, room)
    }

    /// Names of the rooms this connection has joined.
    pub fn rooms(&self) -> Vec<std::sync::Arc<str>> {
        self.state.rooms_of(self.key)
    }

    /// Number of rooms this connection has joined.
    pub fn joined_count(&self) -> usize {
        self.state.slots.get(self.key).map_or(0, |s| s.rooms.len())
    }

    /// Publish to every member of `room` on every shard (this connection included if it
    /// is a member). The frame is encoded once. Returns the local recipients queued
    /// (with history on: the local members it will be queued to, through the inbox).
    ///
    /// # Errors
    /// A name that breaks the room-name rule (see [`Context::join`]): nothing is sent.
    pub fn publish(&mut self, room: &str, message: Message<'_>) -> Result<usize, RoomNameError> {
        room_name::validate(room)?;
        Ok(self.state.publish(room, payload_of(message), None))
    }

    /// Publish to every room this connection joined; `include_self` decides whether the
    /// sender gets its own message. Encoded once for all rooms.
    pub fn publish_to_joined(&mut self, message: Message<'_>, include_self: bool) -> usize {
        let payload = payload_of(message);
        let exclude = (!include_self).then_some(self.key);
        self.state.publish_to_joined(self.key, &payload, exclude)
    }

    /// True when the server keeps per-room history (`history > 0`): publishes are
    /// numbered and [`Context::resume`] works.
    pub fn history_enabled(&self) -> bool {
        self.state.hub.shared().history().is_some()
    }

    /// Deliver room messages to this connection in the sequence framing (binary: 8-byte
    /// big-endian number, original opcode byte, payload). No effect with history off.
    /// Messages sent with [`Context::send`] are never framed.
    pub fn set_sequenced(&mut self, on: bool) {
        let history = self.history_enabled();
        if let Some(slot) = self.state.slots.get_mut(self.key) {
            slot.sequenced = on && history;
        }
    }

    /// Join `room`, first replaying every retained message numbered after `since`
    /// (0 = from the start), with no gap or duplicate against the live messages that
    /// follow. A `gap` (or `reset`) text message goes first when part of what was asked
    /// is no longer retained, and a `gap` stands in place of a message that was too
    /// large for the history (see [`Resumed::holes`]). Turns on the sequence framing.
    /// `Ok(None)` when history is off or the connection is not open (nothing done).
    ///
    /// # Errors
    /// A name that breaks the room-name rule (see [`Context::join`]): nothing is done.
    pub fn resume(&mut self, room: &str, since: u64) -> Result<Option<Resumed>, RoomNameError> {
        room_name::validate(room)?;
        Ok(self.state.resume(self.key, room, since))
    }

    /// Start the close handshake with `code` and `reason`.
    pub fn close(&mut self, code: u16, reason: &str) {
        self.state.close(self.key, code, reason);
    }

    /// True while the connection can still send and receive messages.
    pub fn is_open(&self) -> bool {
        self.state
            .slots
            .get(self.key)
            .is_some_and(|s| s.conn.phase() == Phase::Open)
    }

    /// A thread-safe handle that publishes from anywhere.
    pub fn publisher(&self) -> Publisher {
        Publisher::new(
            self.state.hub.shared().clone(),
            self.state.shared.metrics.clone(),
        )
    }
}

//! One shard: the connections, rooms and timers of one thread, and the logic both
//! I/O drivers share.
//!
//! A driver (io_uring or epoll) owns the sockets and the event loop; it tells the
//! shard what happened (`open`, `on_data`, `on_peer_gone`, `on_written`, inbox wake-ups,
//! time passing) and asks it what to do (`take_dirty` connections to flush,
//! `take_finished` connections to close). Everything protocol- or application-related
//! happens here, identically for both backends, so comparing backends measures I/O only.
//!
//! Callbacks into the [`Handler`] get a [`Context`] that borrows [`ShardState`] but
//! never the hub's room table in a way they could re-enter: a callback's publish is
//! an ordinary method call on the state. Panics in callbacks are caught and close only
//! that connection with 1011.

pub mod context;

use std::os::fd::RawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Receiver;
use slab::Slab;

use crate::config::Config;
use crate::conn::{
    AfterFlush, CloseCause, ConnEvent, ConnLimits, Connection, Phase, TimerEntry, TimerHeap,
};
use crate::handler::{CloseInfo, Handler, Message, Upgrade};
use crate::hub::{ConnKey, Hub, PreparedFrame, ShardMsg};
use crate::proto::close::codes;
use crate::proto::handshake::{accept_response, UpgradeRequest};

pub use context::{ConnId, Context};

/// Response header naming the shard that accepted the connection.
pub const SHARD_HEADER: &str = "x-ringcast-shard";

/// Panics caught in handler callbacks, process-wide.
pub static PANICS: AtomicU64 = AtomicU64::new(0);

/// One connection slot: the state machine plus the socket it belongs to.
#[derive(Debug)]
pub struct Slot {
    pub conn: Connection,
    pub fd: RawFd,
    pub generation: u32,
    /// The peer's close code, when it sent one.
    peer_code: Option<u16>,
}

/// Everything of a shard except the handler (so a [`Context`] can borrow it).
pub struct ShardState {
    pub id: usize,
    limits: ConnLimits,
    cfg: Arc<Config>,
    pub slots: Slab<Slot>,
    pub hub: Hub,
    timers: TimerHeap,
    dirty: Vec<ConnKey>,
    finished: Vec<ConnKey>,
    next_generation: u32,
    shutdown_deadline: Option<Instant>,
}

/// A shard: its state, its handler and its inbox.
pub struct Shard {
    pub state: ShardState,
    handler: Arc<dyn Handler>,
    inbox: Receiver<ShardMsg>,
}

impl ShardState {
    fn conn_id(&self, key: ConnKey) -> ConnId {
        ConnId {
            shard: self.id,
            slot: key,
            generation: self.slots.get(key).map_or(0, |s| s.generation),
        }
    }

    fn mark_dirty(&mut self, key: ConnKey) {
        if let Some(slot) = self.slots.get_mut(key) {
            if !slot.conn.dirty {
                slot.conn.dirty = true;
                self.dirty.push(key);
            }
        }
    }

    fn queue_to(&mut self, key: ConnKey, frame: PreparedFrame) -> bool {
        let queued = self
            .slots
            .get_mut(key)
            .is_some_and(|s| s.conn.send_frame(frame));
        if queued {
            self.mark_dirty(key);
        }
        queued
    }

    fn join(&mut self, key: ConnKey, room: &str) {
        let Some(slot) = self.slots.get(key) else {
            return;
        };
        if slot.conn.phase() != Phase::Open {
            return;
        }
        let joined = self.hub.join(room, key);
        if joined.new_member {
            self.slots[key].conn.rooms.push(joined.room);
        }
    }

    fn leave(&mut self, key: ConnKey, room: &str) -> bool {
        let Some(id) = self.hub.rooms().lookup(room) else {
            return false;
        };
        let Some(slot) = self.slots.get_mut(key) else {
            return false;
        };
        let Some(pos) = slot.conn.rooms.iter().position(|r| *r == id) else {
            return false;
        };
        slot.conn.rooms.swap_remove(pos);
        self.hub.leave(id, key);
        true
    }

    fn leave_all(&mut self, key: ConnKey) {
        let rooms = std::mem::take(&mut self.slots[key].conn.rooms);
        for room in rooms {
            self.hub.leave(room, key);
        }
    }

    fn rooms_of(&self, key: ConnKey) -> Vec<Arc<str>> {
        self.slots.get(key).map_or_else(Vec::new, |s| {
            s.conn
                .rooms
                .iter()
                .map(|r| self.hub.rooms().name(*r).clone())
                .collect()
        })
    }

    /// Queue `frame` to the local members of `room` (except `exclude`) and hand it to
    /// the other shards with members. Returns the local recipients queued.
    fn publish(&mut self, room: &str, frame: &PreparedFrame, exclude: Option<ConnKey>) -> usize {
        let name = match self.hub.rooms().lookup(room) {
            Some(id) => {
                let name = self.hub.rooms().name(id).clone();
                let queued = self.deliver_local(id, frame, exclude);
                self.hub.fan_out_remote(&name, frame);
                return queued;
            }
            None => Arc::from(room),
        };
        self.hub.fan_out_remote(&name, frame);
        0
    }

    fn deliver_local(
        &mut self,
        room: crate::hub::RoomId,
        frame: &PreparedFrame,
        exclude: Option<ConnKey>,
    ) -> usize {
        let mut queued = 0;
        let ShardState {
            slots, hub, dirty, ..
        } = self;
        for &member in hub.rooms().members(room) {
            if Some(member) == exclude {
                continue;
            }
            let Some(slot) = slots.get_mut(member) else {
                continue;
            };
            if slot.conn.send_frame(frame.clone()) {
                queued += 1;
                if !slot.conn.dirty {
                    slot.conn.dirty = true;
                    dirty.push(member);
                }
            }
        }
        queued
    }

    fn close(&mut self, key: ConnKey, code: u16, reason: &str) {
        if let Some(slot) = self.slots.get_mut(key) {
            slot.conn.send_close(code, reason);
            self.mark_dirty(key);
        }
    }

    fn arm_deadline(&mut self, key: ConnKey, at: Instant) {
        let slot = &mut self.slots[key];
        slot.conn.deadline = Some(at);
        self.timers.schedule(TimerEntry {
            at,
            conn: key,
            generation: slot.generation,
        });
    }
}

impl Shard {
    pub fn new(
        id: usize,
        cfg: Arc<Config>,
        hub: Hub,
        handler: Arc<dyn Handler>,
        inbox: Receiver<ShardMsg>,
    ) -> Self {
        let limits = ConnLimits {
            max_head_bytes: cfg.max_head_bytes,
            max_message_size: cfg.max_message_size,
        };
        Shard {
            state: ShardState {
                id,
                limits,
                cfg,
                slots: Slab::new(),
                hub,
                timers: TimerHeap::default(),
                dirty: Vec::new(),
                finished: Vec::new(),
                next_generation: 0,
                shutdown_deadline: None,
            },
            handler,
            inbox,
        }
    }

    pub fn id(&self) -> usize {
        self.state.id
    }

    pub fn config(&self) -> &Config {
        &self.state.cfg
    }

    /// Number of connection slots in use (including ones being closed).
    pub fn connection_count(&self) -> usize {
        self.state.slots.len()
    }

    pub fn slot(&self, key: ConnKey) -> Option<&Slot> {
        self.state.slots.get(key)
    }

    pub fn slot_mut(&mut self, key: ConnKey) -> Option<&mut Slot> {
        self.state.slots.get_mut(key)
    }

    pub fn is_shutting_down(&self) -> bool {
        self.state.shutdown_deadline.is_some()
    }

    /// A new TCP connection was accepted. Returns its key and generation.
    pub fn open(&mut self, fd: RawFd, now: Instant) -> (ConnKey, u32) {
        let generation = self.state.next_generation;
        self.state.next_generation = generation.wrapping_add(1) & 0x00FF_FFFF;
        let key = self.state.slots.insert(Slot {
            conn: Connection::new(),
            fd,
            generation,
            peer_code: None,
        });
        let at = now + self.state.cfg.handshake_timeout;
        self.state.arm_deadline(key, at);
        (key, generation)
    }

    /// Bytes arrived for `key`.
    pub fn on_data(&mut self, key: ConnKey, mut data: &[u8], now: Instant) {
        while !data.is_empty() {
            let Some(slot) = self.state.slots.get_mut(key) else {
                return;
            };
            let (used, event) = slot.conn.feed(data, self.state.limits);
            data = &data[used..];
            match event {
                Some(event) => self.dispatch(key, event, now),
                None if used == 0 => break, // defensive: never spin on undecodable input
                None => {}
            }
        }
        // Pongs and close replies queued by the connection itself need a flush too.
        if self
            .state
            .slots
            .get(key)
            .is_some_and(|s| !s.conn.out.is_empty())
        {
            self.state.mark_dirty(key);
        }
    }

    fn dispatch(&mut self, key: ConnKey, event: ConnEvent, now: Instant) {
        match event {
            ConnEvent::Upgrade(request) => {
                self.upgrade(key, &request);
                let rest = self
                    .state
                    .slots
                    .get_mut(key)
                    .map(|s| s.conn.take_leftover());
                if let Some(rest) = rest.filter(|r| !r.is_empty()) {
                    self.on_data(key, &rest, now);
                }
            }
            ConnEvent::Message { text, payload } => {
                let message = if text {
                    match std::str::from_utf8(&payload) {
                        Ok(s) => Message::Text(s),
                        // The decoder validated it already; never trust twice blindly.
                        Err(_) => {
                            return self
                                .state
                                .close(key, codes::INVALID_PAYLOAD, "invalid utf-8")
                        }
                    }
                } else {
                    Message::Binary(&payload)
                };
                self.call(key, |h, cx| h.on_message(cx, message));
            }
            ConnEvent::PeerClose(status) => {
                self.state.slots[key].peer_code = status.map(|(c, _)| c);
            }
            ConnEvent::HandshakeRejected(_) | ConnEvent::ProtocolError(_) => {}
        }
    }

    fn upgrade(&mut self, key: ConnKey, request: &UpgradeRequest) {
        let decision = catch_unwind(AssertUnwindSafe(|| self.handler.on_upgrade(request)));
        let decision = decision.unwrap_or_else(|panic| {
            self.report_panic(key, "on_upgrade", panic);
            Upgrade::Reject(crate::handler::Rejection {
                status: 500,
                reason: "internal error",
            })
        });
        let slot = &mut self.state.slots[key];
        match decision {
            Upgrade::Accept => {
                let shard = self.state.id.to_string();
                slot.conn.deadline = None;
                slot.conn
                    .accept(accept_response(&request.key, &[(SHARD_HEADER, &shard)]));
                self.call(key, |h, cx| h.on_open(cx, request));
            }
            Upgrade::Reject(rejection) => slot.conn.reject(&rejection, &[]),
        }
    }

    /// Run a handler callback with panic isolation.
    fn call(&mut self, key: ConnKey, f: impl FnOnce(&dyn Handler, &mut Context<'_>)) {
        let handler = self.handler.clone();
        let mut cx = Context {
            state: &mut self.state,
            key,
        };
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| f(&*handler, &mut cx))) {
            self.report_panic(key, "callback", panic);
            self.state
                .close(key, codes::INTERNAL_ERROR, "internal error");
        }
    }

    fn report_panic(&self, key: ConnKey, during: &str, panic: Box<dyn std::any::Any + Send>) {
        PANICS.fetch_add(1, Ordering::Relaxed);
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic".into());
        let rooms: Vec<_> = self.state.rooms_of(key);
        tracing::error!(conn = %self.state.conn_id(key), ?rooms, during, panic = %message, "handler panicked; connection closed with 1011");
    }

    /// The peer closed its side (EOF) or the connection failed (reset, error).
    pub fn on_peer_gone(&mut self, key: ConnKey, cause: CloseCause) {
        self.finish(key, cause);
    }

    /// End the connection: leave rooms, tell the handler, and hand it to the driver.
    pub fn finish(&mut self, key: ConnKey, cause: CloseCause) {
        let Some(slot) = self.state.slots.get_mut(key) else {
            return;
        };
        if slot.conn.phase() == Phase::Closed {
            return;
        }
        let was_open = matches!(slot.conn.phase(), Phase::Open | Phase::Closing)
            && slot.conn.cause != Some(CloseCause::HandshakeFailed);
        slot.conn.mark_closed(cause);
        let info = CloseInfo {
            cause: slot.conn.cause.unwrap_or(cause),
            peer_code: slot.peer_code,
        };
        self.state.leave_all(key);
        if was_open {
            self.call(key, |h, cx| h.on_close(cx, &info));
        }
        self.state.finished.push(key);
    }

    /// The kernel accepted `n` bytes of `key`'s queue.
    pub fn on_written(&mut self, key: ConnKey, n: usize) {
        if let Some(slot) = self.state.slots.get_mut(key) {
            slot.conn.written(n);
        }
    }

    /// The driver found `key`'s queue empty after writing: what next?
    pub fn after_flush(&mut self, key: ConnKey, now: Instant) -> AfterFlush {
        let Some(slot) = self.state.slots.get_mut(key) else {
            return AfterFlush::Idle;
        };
        let next = slot.conn.after_flush();
        if next == AfterFlush::ShutdownWrite {
            let at = now + self.state.cfg.close_timeout;
            self.state.arm_deadline(key, at);
        }
        next
    }

    /// Handle everything waiting in the inbox.
    pub fn drain_inbox(&mut self, now: Instant) {
        while let Ok(msg) = self.inbox.try_recv() {
            match msg {
                ShardMsg::Publish { room, frame } => {
                    if let Some(id) = self.state.hub.rooms().lookup(&room) {
                        self.state.deliver_local(id, &frame, None);
                    }
                }
                ShardMsg::Shutdown => self.begin_shutdown(now),
            }
        }
    }

    /// True when the inbox has work (checked by the driver before it sleeps).
    pub fn inbox_pending(&self) -> bool {
        !self.inbox.is_empty()
    }

    /// Fire due deadlines.
    pub fn expire_timers(&mut self, now: Instant) {
        while let Some(entry) = self.state.timers.pop_due(now) {
            let Some(slot) = self.state.slots.get(entry.conn) else {
                continue;
            };
            if slot.generation != entry.generation || slot.conn.deadline != Some(entry.at) {
                continue; // stale
            }
            self.finish(entry.conn, CloseCause::Timeout);
        }
        if let Some(deadline) = self.state.shutdown_deadline {
            if now >= deadline {
                let keys: Vec<ConnKey> = self.state.slots.iter().map(|(k, _)| k).collect();
                for key in keys {
                    self.finish(key, CloseCause::Shutdown);
                }
            }
        }
    }

    /// When the driver must wake up at the latest.
    pub fn next_deadline(&self) -> Option<Instant> {
        match (self.state.timers.next(), self.state.shutdown_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Start a graceful shutdown: close 1001 to every open connection, drop handshakes.
    pub fn begin_shutdown(&mut self, now: Instant) {
        if self.state.shutdown_deadline.is_some() {
            return;
        }
        self.state.shutdown_deadline = Some(now + self.state.cfg.shutdown_timeout);
        let keys: Vec<ConnKey> = self.state.slots.iter().map(|(k, _)| k).collect();
        for key in keys {
            match self.state.slots[key].conn.phase() {
                Phase::Handshaking => self.finish(key, CloseCause::Shutdown),
                Phase::Open => {
                    self.state.slots[key].conn.cause = Some(CloseCause::Shutdown);
                    self.state.close(key, codes::GOING_AWAY, "going away");
                }
                Phase::Closing | Phase::Closed => {}
            }
        }
    }

    /// Shutting down and every connection released: the loop may exit.
    pub fn is_drained(&self) -> bool {
        self.is_shutting_down() && self.state.slots.is_empty()
    }

    /// Connections with output to write (each listed once).
    pub fn take_dirty(&mut self, out: &mut Vec<ConnKey>) {
        out.clear();
        std::mem::swap(out, &mut self.state.dirty);
        for &key in out.iter() {
            if let Some(slot) = self.state.slots.get_mut(key) {
                slot.conn.dirty = false;
            }
        }
    }

    /// Connections that ended: the driver must close their sockets, then `release` them.
    pub fn take_finished(&mut self, out: &mut Vec<ConnKey>) {
        out.clear();
        std::mem::swap(out, &mut self.state.finished);
    }

    /// Free the slot of a finished connection (its socket is closed, no I/O in flight).
    pub fn release(&mut self, key: ConnKey) {
        if self
            .state
            .slots
            .get(key)
            .is_some_and(|s| s.conn.phase() == Phase::Closed)
        {
            self.state.slots.remove(key);
        }
    }
}

//! One shard: the connections, rooms and timers of one thread, and the logic both
//! I/O drivers share.
//!
//! A driver (io_uring or epoll) owns the sockets and the event loop; it tells the
//! shard what happened (`open`, `on_data`, `on_eof`, `on_peer_gone`, `on_written`,
//! inbox wake-ups, time passing) and asks it what to do (`may_read` a connection now,
//! `take_dirty` connections to flush, `after_flush` when one's queue is empty,
//! `take_finished` connections to close). Everything protocol- or application-related
//! happens here, identically for both backends, so comparing backends measures I/O only.
//!
//! End of stream and failure are different events: [`Shard::on_eof`] (the peer's FIN or
//! TLS `close_notify`) lets what is queued drain within `--close-timeout`, then closes;
//! [`Shard::on_peer_gone`] (a reset or socket error) drops it at once. Read-side
//! backpressure is decided here too ([`Shard::may_read`]): the drivers only stop and
//! resume reading.
//!
//! Callbacks into the [`Handler`] get a [`Context`] that borrows [`ShardState`]; a
//! callback's publish is an ordinary method call on that state ([`publish`]: through
//! the hub's one publish entry, then local delivery), and metrics hooks are called
//! after hub operations return, never while hub state is borrowed. Panics in
//! callbacks are caught and close only that connection with 1011.

pub mod admission;
pub mod config;
pub mod context;
pub mod deflate;
pub mod origin;
pub mod publish;
pub mod publisher;
pub mod replay;

use std::os::fd::RawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use slab::Slab;

use crate::conn::{
    AfterFlush, ConnEvent, ConnLimits, Connection, DisconnectReason, DropReason, Enqueue, Eof,
    InputThrottle, Phase, QueueLimits, Timer, TimerEntry, TimerHeap,
};
use crate::handler::{CloseInfo, Handler, Identity, Message, Peer, Rejection, Upgrade};
use crate::hub::{Hub, ShardMsg};
use crate::metrics::MetricsCollector;
use crate::proto::close::codes;
use crate::proto::handshake::{accept_response, UpgradeRequest};
use crate::wire::{ConnKey, PreparedFrame, RoomId};

pub use admission::Admission;
pub use config::ShardConfig;
pub use context::{ConnId, Context};
pub use deflate::DeflateConfig;
pub use origin::{Origin, OriginPolicy};
pub use publisher::Publisher;
pub use replay::Resumed;

/// Response header naming the shard that accepted the connection.
pub const SHARD_HEADER: &str = "x-ringcast-shard";

/// What every shard shares (read-mostly).
pub struct Shared {
    pub cfg: ShardConfig,
    pub metrics: Arc<dyn MetricsCollector>,
    pub admission: Admission,
}

/// One connection slot: the state machine plus the socket it belongs to.
#[derive(Debug)]
pub struct Slot {
    pub conn: Connection,
    pub fd: RawFd,
    pub generation: u32,
    /// The peer's close code, when it sent one.
    peer_code: Option<u16>,
    /// What [`Upgrade::AcceptAs`] attached (boxed: one pointer when absent).
    pub identity: Option<Box<Identity>>,
    /// The application's tag ([`Context::set_tag`]); 0 until set.
    pub tag: u32,
}

/// Everything of a shard except the handler (so a [`Context`] can borrow it).
pub struct ShardState {
    pub id: usize,
    limits: ConnLimits,
    queue: QueueLimits,
    shared: Arc<Shared>,
    pub slots: Slab<Slot>,
    pub hub: Hub,
    timers: TimerHeap,
    dirty: Vec<ConnKey>,
    finished: Vec<ConnKey>,
    /// Closed as slow consumers since the last timer pass: their close deadline starts
    /// now, whether or not they ever drain.
    slow_closed: Vec<ConnKey>,
    next_generation: u32,
    shutdown_deadline: Option<Instant>,
    /// Shard 0 with history on: when idle room histories are next swept.
    history_sweep_at: Option<Instant>,
}

/// A shard: its state, its handler and its inbox.
pub struct Shard {
    pub state: ShardState,
    handler: Arc<dyn Handler>,
    inbox: Receiver<ShardMsg>,
}

impl ShardState {
    fn metrics(&self) -> &dyn MetricsCollector {
        &*self.shared.metrics
    }

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

    /// Queue a data frame to one connection, applying the slow-consumer policy and
    /// reporting what happened. Returns true when it was queued.
    fn queue_to(&mut self, key: ConnKey, frame: PreparedFrame) -> bool {
        let Some(slot) = self.slots.get_mut(key) else {
            return false;
        };
        let outcome = slot.conn.send_frame(frame, self.queue);
        let queued_bytes = slot.conn.out.bytes();
        if matches!(outcome, Enqueue::ClosedSlow { .. }) {
            self.slow_closed.push(key);
        }
        if outcome != Enqueue::NotOpen && !slot.conn.dirty {
            slot.conn.dirty = true;
            self.dirty.push(key);
        }
        let queued = report_enqueue(&*self.shared.metrics, self.id, outcome);
        if queued {
            self.shared.metrics.send_queue_bytes(self.id, queued_bytes);
        }
        queued
    }

    fn join(&mut self, key: ConnKey, room: &str) {
        if self
            .slots
            .get(key)
            .is_none_or(|s| s.conn.phase() != Phase::Open)
        {
            return;
        }
        let joined = self.hub.join(room, key);
        if joined.new_member {
            self.slots[key].conn.rooms.push(joined.room);
        }
        if joined.room_opened {
            self.metrics().room_opened(self.id);
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
        slot.conn.replay_marks.retain(|(r, _)| *r != id);
        self.leave_room(id, key);
        true
    }

    fn leave_room(&mut self, room: RoomId, key: ConnKey) {
        if self.hub.leave(room, key).room_closed {
            self.metrics().room_closed(self.id);
        }
    }

    fn leave_all(&mut self, key: ConnKey) {
        self.slots[key].conn.replay_marks.clear();
        let rooms = std::mem::take(&mut self.slots[key].conn.rooms);
        for room in rooms {
            self.leave_room(room, key);
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

    fn close(&mut self, key: ConnKey, code: u16, reason: &str) {
        if let Some(slot) = self.slots.get_mut(key) {
            slot.conn.send_close(code, reason);
            self.mark_dirty(key);
        }
    }

    fn arm(&mut self, key: ConnKey, after: Duration, timer: Timer, now: Instant) {
        let at = now + after;
        let slot = &mut self.slots[key];
        slot.conn.deadline = Some((at, timer));
        self.timers.schedule(TimerEntry {
            at,
            conn: key,
            generation: slot.generation,
        });
    }
}

/// Report one enqueue to the metrics; true when the frame was queued.
fn report_enqueue(metrics: &dyn MetricsCollector, shard: usize, outcome: Enqueue) -> bool {
    match outcome {
        Enqueue::Queued { dropped_oldest } => {
            for _ in 0..dropped_oldest {
                metrics.frame_dropped(shard, DropReason::QueueFullOldest);
            }
            true
        }
        Enqueue::DroppedNewest => {
            metrics.frame_dropped(shard, DropReason::QueueFullNewest);
            false
        }
        Enqueue::ClosedSlow { dropped } => {
            for _ in 0..dropped {
                metrics.frame_dropped(shard, DropReason::ConnectionClosed);
            }
            false
        }
        Enqueue::NotOpen => false,
    }
}

impl Shard {
    pub fn new(
        id: usize,
        shared: Arc<Shared>,
        hub: Hub,
        handler: Arc<dyn Handler>,
        inbox: Receiver<ShardMsg>,
    ) -> Self {
        let (limits, queue) = (shared.cfg.limits, shared.cfg.queue);
        let history_sweep_at = hub
            .shared()
            .history()
            .filter(|_| id == 0)
            .map(|h| Instant::now() + replay::sweep_interval(h.config().ttl));
        Shard {
            state: ShardState {
                id,
                limits,
                queue,
                shared,
                slots: Slab::new(),
                hub,
                timers: TimerHeap::default(),
                dirty: Vec::new(),
                finished: Vec::new(),
                slow_closed: Vec::new(),
                next_generation: 0,
                shutdown_deadline: None,
                history_sweep_at,
            },
            handler,
            inbox,
        }
    }

    pub fn id(&self) -> usize {
        self.state.id
    }

    pub fn config(&self) -> &ShardConfig {
        &self.state.shared.cfg
    }

    pub fn slot(&self, key: ConnKey) -> Option<&Slot> {
        self.state.slots.get(key)
    }

    pub fn is_shutting_down(&self) -> bool {
        self.state.shutdown_deadline.is_some()
    }

    /// A new TCP connection was accepted. Returns its key and generation.
    pub fn open(&mut self, fd: RawFd, now: Instant) -> (ConnKey, u32) {
        let generation = self.state.next_generation;
        self.state.next_generation = generation.wrapping_add(1);
        let mut conn = Connection::new();
        conn.opened_at = Some(now);
        let key = self.state.slots.insert(Slot {
            conn,
            fd,
            generation,
            peer_code: None,
            identity: None,
            tag: 0,
        });
        let timeout = self.config().timeouts.handshake;
        self.state.arm(key, timeout, Timer::Handshake, now);
        self.state.metrics().connection_opened(self.state.id);
        (key, generation)
    }

    /// Bytes arrived for `key`.
    pub fn on_data(&mut self, key: ConnKey, mut data: &[u8], now: Instant) {
        while !data.is_empty() {
            let Some(slot) = self.state.slots.get_mut(key) else {
                return;
            };
            slot.conn.heard_since_ping = true;
            let (used, event) = slot.conn.feed(data, self.state.limits);
            data = &data[used..];
            match event {
                Some(event) => self.dispatch(key, event, now),
                None if used == 0 => break, // defensive: never spin on undecodable input
                None => {}
            }
        }
        // Pongs and close replies queued by the connection itself need a flush too.
        let Some(slot) = self.state.slots.get_mut(key) else {
            return;
        };
        let coalesced = slot.conn.take_coalesced();
        let queued = !slot.conn.out.is_empty();
        for _ in 0..coalesced {
            self.state
                .metrics()
                .input_throttled(self.state.id, InputThrottle::PongCoalesced);
        }
        if queued {
            self.state.mark_dirty(key);
        }
    }

    /// The peer's write side ended (a read returned 0, or TLS `close_notify`): not an
    /// error. Nothing more is read; whatever is queued (a close reply, echoes, room
    /// frames, an HTTP error response) is still written, bounded by `--close-timeout`
    /// (the close deadline is armed unless one already runs), then the connection ends
    /// — `normal` after a completed close handshake, otherwise the reason recorded
    /// earlier, or `reset` (abnormal closure). See [`Connection::on_eof`].
    pub fn on_eof(&mut self, key: ConnKey, now: Instant) {
        let Some(slot) = self.state.slots.get_mut(key) else {
            return;
        };
        if slot.conn.peer_eof() {
            return;
        }
        match slot.conn.on_eof() {
            Eof::Close => self.finish(key, DisconnectReason::Reset),
            Eof::Flush => {
                if !matches!(slot.conn.deadline, Some((_, Timer::Close))) {
                    let timeout = self.config().timeouts.close;
                    self.state.arm(key, timeout, Timer::Close, now);
                }
                // Even with nothing queued: the flush pass is what closes it.
                self.state.mark_dirty(key);
            }
        }
    }

    /// Read-side backpressure: may the driver read from `key` now? False after the
    /// peer's EOF, once closed, and while its unsent bytes (its queue's plus `extra`,
    /// bytes the driver holds for it such as TLS ciphertext) are over
    /// `--max-queue-bytes`. A driver that gets false stops reading the connection and
    /// asks again when its queue has shrunk (after a write, or when it is flushed).
    /// Each pause is counted once (`input_throttled_total{action="read_paused"}`).
    pub fn may_read(&mut self, key: ConnKey, extra: usize) -> bool {
        let Some(slot) = self.state.slots.get_mut(key) else {
            return false;
        };
        let (may, newly_paused) = slot.conn.may_read(self.state.queue.max_bytes, extra);
        if newly_paused {
            self.state
                .metrics()
                .input_throttled(self.state.id, InputThrottle::ReadPaused);
            tracing::trace!(conn = %self.state.conn_id(key), "reading paused: unsent bytes over the queue cap");
        }
        may
    }

    fn dispatch(&mut self, key: ConnKey, event: ConnEvent, now: Instant) {
        match event {
            ConnEvent::Upgrade(request) => {
                self.upgrade(key, &request, now);
                let rest = self
                    .state
                    .slots
                    .get_mut(key)
                    .map(|s| s.conn.take_leftover());
                if let Some(rest) = rest.filter(|r| !r.is_empty()) {
                    self.on_data(key, &rest, now);
                }
            }
            // Text arrives as a `String`: the decoder validated it (once) while it came in.
            ConnEvent::Text(text) => {
                self.state
                    .metrics()
                    .message_received(self.state.id, text.len());
                self.call(key, |h, cx| h.on_message(cx, Message::Text(&text)));
            }
            ConnEvent::Binary(payload) => {
                self.state
                    .metrics()
                    .message_received(self.state.id, payload.len());
                self.call(key, |h, cx| h.on_message(cx, Message::Binary(&payload)));
            }
            ConnEvent::PeerClose(status) => {
                self.state.slots[key].peer_code = status.map(|(c, _)| c);
            }
            ConnEvent::HandshakeRejected(rejection) => {
                self.state
                    .metrics()
                    .handshake_rejected(self.state.id, rejection.status);
                tracing::debug!(conn = %self.state.conn_id(key), status = rejection.status, reason = rejection.reason, "handshake rejected");
            }
            ConnEvent::ProtocolError(error) => {
                tracing::debug!(conn = %self.state.conn_id(key), code = error.code, reason = error.reason, "protocol error");
            }
        }
    }

    fn upgrade(&mut self, key: ConnKey, request: &UpgradeRequest, now: Instant) {
        let decision = if self.config().origins.permits(request.origin.as_deref()) {
            let peer = Peer {
                fd: self.state.slots[key].fd,
            };
            let decision = catch_unwind(AssertUnwindSafe(|| {
                self.handler.on_upgrade_from(request, peer)
            }));
            decision.unwrap_or_else(|panic| {
                self.report_panic(key, "on_upgrade", panic);
                Upgrade::Reject(Rejection {
                    status: 500,
                    reason: "internal error",
                })
            })
        } else {
            Upgrade::Reject(Rejection {
                status: 403,
                reason: "origin not allowed",
            })
        };
        let (decision, identity) = match decision {
            Upgrade::AcceptAs(identity) => (Upgrade::Accept, Some(Box::new(identity))),
            other => (other, None),
        };
        let rejection = match decision {
            Upgrade::Reject(rejection) => Some((rejection, None)),
            Upgrade::Accept | Upgrade::AcceptAs(_)
                if !self.state.shared.admission.try_acquire() =>
            {
                self.state.metrics().admission_rejected(self.state.id);
                let rejection = Rejection {
                    status: 503,
                    reason: "server at connection capacity",
                };
                Some((rejection, Some(("Retry-After", "1"))))
            }
            Upgrade::Accept | Upgrade::AcceptAs(_) => None,
        };
        let id = self.state.id;
        let slot = &mut self.state.slots[key];
        if let Some((rejection, header)) = rejection {
            slot.conn.reject(&rejection, header.as_slice());
            self.state
                .metrics()
                .handshake_rejected(id, rejection.status);
            tracing::debug!(conn = %self.state.conn_id(key), status = rejection.status, reason = rejection.reason, "upgrade refused");
            return;
        }
        slot.identity = identity;
        slot.conn.admitted = self.state.shared.admission.is_limited();
        let shard = id.to_string();
        let deflate = self.state.shared.cfg.deflate.negotiate(request);
        let extensions = deflate.map(|a| a.response_value());
        let mut headers = vec![(SHARD_HEADER, shard.as_str())];
        headers.extend(
            extensions
                .as_deref()
                .map(|v| ("Sec-WebSocket-Extensions", v)),
        );
        slot.conn.accept(accept_response(&request.key, &headers));
        if let Some(agreement) = deflate {
            slot.conn.enable_deflate(agreement);
        }
        let ping = self.config().timeouts.ping_interval;
        if ping.is_zero() {
            self.state.slots[key].conn.deadline = None;
        } else {
            self.state.arm(key, ping, Timer::Ping, now);
        }
        self.call(key, |h, cx| h.on_open(cx, request));
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
            if let Some(slot) = self.state.slots.get_mut(key) {
                slot.conn.reason.get_or_insert(DisconnectReason::Panic);
            }
            self.state
                .close(key, codes::INTERNAL_ERROR, "internal error");
        }
    }

    fn report_panic(&self, key: ConnKey, during: &str, panic: Box<dyn std::any::Any + Send>) {
        self.state.metrics().panic(self.state.id);
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic".into());
        let rooms = self.state.rooms_of(key);
        let conn = self.state.conn_id(key);
        if self.config().log_peer_addr {
            let peer = self
                .state
                .slots
                .get(key)
                .and_then(|s| crate::sys::peer_addr(s.fd).ok())
                .map_or_else(|| "unknown".to_string(), |a| a.to_string());
            tracing::error!(%conn, ?rooms, during, panic = %message, %peer, "handler panicked; connection closed with 1011");
        } else {
            tracing::error!(%conn, ?rooms, during, panic = %message, "handler panicked; connection closed with 1011");
        }
    }

    /// The connection failed (reset, socket error): it ends at once and what is queued
    /// is dropped. (The peer's EOF is [`Shard::on_eof`].)
    pub fn on_peer_gone(&mut self, key: ConnKey) {
        self.finish(key, DisconnectReason::Reset);
    }

    /// End the connection: leave rooms, release its admission slot, tell the handler
    /// and the metrics, and hand it to the driver to close.
    pub fn finish(&mut self, key: ConnKey, reason: DisconnectReason) {
        let Some(slot) = self.state.slots.get_mut(key) else {
            return;
        };
        if slot.conn.phase() == Phase::Closed {
            return;
        }
        let upgraded = slot.conn.was_upgraded();
        let dropped = slot.conn.mark_closed(reason);
        let reason = slot.conn.reason.unwrap_or(reason);
        let duration = slot.conn.opened_at.map_or(Duration::ZERO, |t| t.elapsed());
        let info = CloseInfo {
            cause: reason,
            peer_code: slot.peer_code,
        };
        if std::mem::take(&mut slot.conn.admitted) {
            self.state.shared.admission.release();
        }
        self.state.leave_all(key);
        let metrics = self.state.metrics();
        for _ in 0..dropped {
            metrics.frame_dropped(self.state.id, DropReason::ConnectionClosed);
        }
        metrics.connection_closed(self.state.id, reason, duration);
        tracing::debug!(conn = %self.state.conn_id(key), reason = reason.as_str(), "connection closed");
        if upgraded {
            self.call(key, |h, cx| h.on_close(cx, &info));
        }
        self.state.finished.push(key);
    }

    /// The kernel accepted `n` bytes of `key`'s queue.
    pub fn on_written(&mut self, key: ConnKey, n: usize) {
        let Some(slot) = self.state.slots.get_mut(key) else {
            return;
        };
        let done = slot.conn.written(n);
        let metrics = &*self.state.shared.metrics;
        metrics.frames_sent(self.state.id, done.frames, n);
        if let Some(published) = done.oldest_publish {
            metrics.publish_to_write(self.state.id, published.elapsed());
        }
    }

    /// io_uring: the first `frames` queued frames of `key` are in a send in flight.
    pub fn set_in_flight(&mut self, key: ConnKey, frames: usize) {
        if let Some(slot) = self.state.slots.get_mut(key) {
            slot.conn.out.set_in_flight(frames);
        }
    }

    /// The driver found `key`'s queue empty after writing: what next? With
    /// [`AfterFlush::Close`] the driver ends the connection with
    /// [`Shard::finish_flushed`] once its last bytes are out: at once, or for `wss://`
    /// after the `close_notify` it queues then.
    pub fn after_flush(&mut self, key: ConnKey, now: Instant) -> AfterFlush {
        let Some(slot) = self.state.slots.get_mut(key) else {
            return AfterFlush::Idle;
        };
        let next = slot.conn.after_flush();
        match next {
            AfterFlush::ShutdownWrite => {
                let timeout = self.config().timeouts.close;
                self.state.arm(key, timeout, Timer::Close, now);
            }
            AfterFlush::Close | AfterFlush::Idle => {}
        }
        next
    }

    /// Everything of `key` is written after [`AfterFlush::Close`]: end it. The reason
    /// was recorded when the close began (normal, server_shutdown, reset after a bare
    /// EOF, …).
    pub fn finish_flushed(&mut self, key: ConnKey) {
        self.finish(key, DisconnectReason::Normal);
    }

    /// Send this iteration's publishes to the other shards (see [`Hub::hand_off`]). The
    /// drivers call it once per loop iteration, before writing to sockets.
    pub fn hand_off(&mut self) {
        self.state.hub.hand_off();
    }

    /// Handle everything waiting in the inbox.
    pub fn drain_inbox(&mut self, now: Instant) {
        while let Ok(msg) = self.inbox.try_recv() {
            match msg {
                ShardMsg::Publish(publication) => self.state.deliver_inbox(&publication),
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
        self.state.sweep_history_if_due(now);
        // Stale entries pile up under churn (each connection leaves one or two behind);
        // compact when they outnumber the live ones, so the heap stays O(connections).
        if self.state.timers.len() > 2 * self.state.slots.len() + 1024 {
            let slots = &self.state.slots;
            self.state.timers.compact(|e| {
                slots.get(e.conn).is_some_and(|s| {
                    s.generation == e.generation
                        && s.conn.deadline.is_some_and(|(at, _)| at == e.at)
                })
            });
        }
        let close_timeout = self.config().timeouts.close;
        for key in std::mem::take(&mut self.state.slow_closed) {
            if self
                .state
                .slots
                .get(key)
                .is_some_and(|s| s.conn.phase() == Phase::Closing)
            {
                self.state.arm(key, close_timeout, Timer::Close, now);
            }
        }
        while let Some(entry) = self.state.timers.pop_due(now) {
            let Some(slot) = self.state.slots.get_mut(entry.conn) else {
                continue;
            };
            let Some((at, timer)) = slot.conn.deadline else {
                continue;
            };
            if slot.generation != entry.generation || at != entry.at {
                continue; // stale
            }
            slot.conn.deadline = None;
            let key = entry.conn;
            match timer {
                Timer::Handshake => self.finish(key, DisconnectReason::HandshakeTimeout),
                Timer::Ping => {
                    slot.conn.out.shrink_idle();
                    slot.conn.send_ping();
                    let timeout = self.config().timeouts.pong;
                    self.state.arm(key, timeout, Timer::Pong, now);
                    self.state.mark_dirty(key);
                }
                Timer::Pong if slot.conn.heard_since_ping => {
                    let interval = self.config().timeouts.ping_interval;
                    self.state.arm(key, interval, Timer::Ping, now);
                }
                Timer::Pong => {
                    self.state.metrics().pong_timeout(self.state.id);
                    self.finish(key, DisconnectReason::PongTimeout);
                }
                Timer::Close => self.finish(key, DisconnectReason::Reset),
            }
        }
        if self.state.shutdown_deadline.is_some_and(|d| now >= d) {
            let keys: Vec<ConnKey> = self.state.slots.iter().map(|(k, _)| k).collect();
            for key in keys {
                self.finish(key, DisconnectReason::ServerShutdown);
            }
        }
    }

    /// When the driver must wake up at the latest.
    pub fn next_deadline(&self) -> Option<Instant> {
        [
            self.state.timers.next(),
            self.state.shutdown_deadline,
            self.state.history_sweep_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Start a graceful shutdown: close 1001 to every open connection, drop handshakes.
    pub fn begin_shutdown(&mut self, now: Instant) {
        if self.state.shutdown_deadline.is_some() {
            return;
        }
        self.state.shutdown_deadline = Some(now + self.config().shutdown_timeout);
        let keys: Vec<ConnKey> = self.state.slots.iter().map(|(k, _)| k).collect();
        for key in keys {
            match self.state.slots[key].conn.phase() {
                Phase::Handshaking => self.finish(key, DisconnectReason::ServerShutdown),
                Phase::Open => {
                    self.state.slots[key].conn.reason = Some(DisconnectReason::ServerShutdown);
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

    /// Connections with output to write (each listed once). Called once per loop
    /// iteration, it also reports the compressions this shard's thread ran since.
    pub fn take_dirty(&mut self, out: &mut Vec<ConnKey>) {
        let compressed = crate::wire::take_thread_compressions();
        if compressed > 0 {
            self.state
                .metrics()
                .deflate_compressed(self.state.id, compressed);
        }
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

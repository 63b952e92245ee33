//! The event loop both backends run: one loop, written once, over [`IoBackend`].
//!
//! The backend submits and collects I/O (the shape of mio's `Selector` and monoio's
//! per-op driver); this loop owns everything else: the per-connection state
//! ([`ConnIo`]: TLS session, send state, read pause, closing), accepting and the
//! accept pause, the deadline-aware wait, delivering input to the [`Shard`], the
//! order of the loop tail, flushing, closing and the shutdown drain. One iteration:
//!
//! 1. wait: until an event, the shard's next deadline or the end of an accept pause
//!    (not at all while the inbox holds messages);
//! 2. collect the backend's events and deliver each to the shard; while bytes came
//!    in and the backend says more input is already waiting, collect and deliver
//!    again, at most [`MAX_RECHECKS`] times (io_uring: see below);
//! 3. end an accept pause that is over;
//! 4. drain the inbox, fire timers, stop accepting once shutting down, hand off to
//!    other shards;
//! 5. flush every dirty connection (and those an event asked to flush), asking each
//!    paused one whether it may read again;
//! 6. close finished connections: `close_notify` or an alert best effort, cancel
//!    their I/O, free each once no operation of it is in flight;
//! 7. restart reads that stopped or were paused and may go on;
//! 8. submit what the iteration queued (io_uring: so it leaves in this iteration,
//!    not one wait later), and exit once the shard has drained.
//!
//! Readiness and completion differ only inside the backend. A readiness backend
//! (epoll) reports [`Event::Readable`] and the loop pulls bytes with
//! [`IoBackend::read`] until it would block, asking [`Shard::may_read`] before each
//! read; a completion backend (io_uring) reports [`Event::Received`] bytes already read
//! and the loop asks after each. Either way a connection that may not read is paused
//! ([`IoBackend::pause_read`]) and resumed once its queue has shrunk. A send either
//! completes at once ([`SendStart::Written`]: the loop goes on writing), would block
//! ([`SendStart::Blocked`]: an [`Event::Writable`] follows), or is in flight
//! ([`SendStart::InFlight`]: an [`Event::Sent`] follows); in the last two states no
//! other send of that connection starts. Input is delivered to the shard exactly as
//! the socket gave it, through the connection's [`TlsSession`] for `wss://`.
//!
//! Re-checking for input before flushing (step 2) matters for io_uring: bytes that
//! arrive while the first ones are handled (a publisher's burst of messages, each
//! costing a fan-out) wait as deferred task work until the ring is entered again.
//! Left for the next iteration, they would miss this round of sends and start a round
//! of their own; under a closed-loop window of K messages the window then stays split
//! over two rounds (half the frames per send) for good. epoll reads until EAGAIN, so
//! there is never more to re-check.

use std::any::Any;
use std::io;
use std::os::fd::{IntoRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::conn::{AfterFlush, DisconnectReason, OutQueue, Phase};
use crate::driver::tls::{TlsConfig, TlsSession};
use crate::driver::{
    accept_needs_pause, deliver_tls, new_session, tls_next_step, wait_for, TlsStep, ACCEPT_PAUSE,
};
use crate::hub::ConnKey;
use crate::shard::Shard;
use crate::sys::Waker;

/// Longest sleep with nothing scheduled (bounds how stale "now" can get).
const IDLE_WAIT: Duration = Duration::from_secs(1);
/// Most extra looks for arrived bytes before an iteration flushes (bounds how long a
/// steady stream of input can hold back this iteration's sends).
const MAX_RECHECKS: usize = 4;

/// Bytes a backend read for a connection: buffer `id` (io_uring: a provided buffer;
/// epoll: its one scratch buffer, id 0), `len` bytes long. The loop hands them to the
/// shard ([`IoBackend::bytes`]) and then gives the buffer back
/// ([`IoBackend::recycle`]) in the same iteration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Buf {
    pub id: u16,
    pub len: usize,
}

/// Why a completion backend's read of a connection stopped without bytes.
// Readiness backends construct some variants, completion backends others.
#[cfg_attr(not(all(feature = "uring", feature = "epoll")), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadEnd {
    /// The peer's FIN (a read of 0 bytes): end of stream, not an error.
    Eof,
    /// The loop's own [`IoBackend::pause_read`] took effect.
    Cancelled,
    /// Stopped for a reason of our own (io_uring: the buffer ring ran dry, EINTR,
    /// EAGAIN): read again unless paused.
    Retry,
    /// A socket error (errno): the connection is gone.
    Failed(i32),
}

/// What one [`IoBackend::read`] (readiness backends) found.
// Readiness backends construct some variants, completion backends others.
#[cfg_attr(not(all(feature = "uring", feature = "epoll")), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Read {
    Data(Buf),
    /// The peer's FIN.
    Eof,
    /// Nothing more to read now (EAGAIN).
    Blocked,
    /// A socket error (errno).
    Failed(i32),
}

/// How a send the loop started went.
// Readiness backends construct some variants, completion backends others.
#[cfg_attr(not(all(feature = "uring", feature = "epoll")), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendStart {
    /// `n` bytes were written at once (readiness backends); the loop may write more.
    Written(usize),
    /// The socket is full (EAGAIN); an [`Event::Writable`] follows when it has room.
    Blocked,
    /// Submitted, covering the first `frames` queued frames (0 for raw bytes); an
    /// [`Event::Sent`] follows. The frames must stay queued until then.
    InFlight { frames: usize },
    /// A socket error (errno): the connection is gone.
    Failed(i32),
}

/// How a send in flight ended ([`Event::Sent`]).
// Readiness backends construct some variants, completion backends others.
#[cfg_attr(not(all(feature = "uring", feature = "epoll")), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendDone {
    /// `n` bytes were written (possibly fewer than submitted).
    Wrote(usize),
    /// Nothing was written for a reason that is no failure of the connection
    /// (io_uring: -EAGAIN from a worker retry, -EINTR): send the same bytes again.
    Retry,
    /// A socket error (errno), or the op was cancelled.
    Failed(i32),
}

/// One thing that happened, as a backend reports it. Every event that names a
/// connection names its current occupant: a backend drops late completions for an
/// earlier occupant of the slot (io_uring compares the generation in `user_data`).
// Readiness backends construct some variants, completion backends others.
#[cfg_attr(not(all(feature = "uring", feature = "epoll")), allow(dead_code))]
#[derive(Debug)]
pub(crate) enum Event {
    /// A connection was accepted (owned: dropped, it is closed).
    Accepted(OwnedFd),
    /// Accepting failed with this errno (backends skip their own cancels and errors
    /// they simply retry, such as EINTR and ECONNABORTED on epoll).
    AcceptFailed(i32),
    /// Readiness: the connection may have bytes to read (or EOF, or an error).
    Readable(ConnKey),
    /// Completion: bytes were read into `buf`. `more`: the read op goes on (io_uring
    /// multishot); false: it has stopped and must be restarted to read again.
    Received { key: ConnKey, buf: Buf, more: bool },
    /// Completion: the connection's read op stopped without bytes.
    ReadEnded { key: ConnKey, why: ReadEnd },
    /// Readiness: the connection's socket has room again.
    Writable(ConnKey),
    /// Completion: the connection's send in flight ended.
    Sent { key: ConnKey, done: SendDone },
}

/// An I/O backend: submits and collects I/O for one shard's sockets. Everything it
/// reports goes to the [`EventLoop`], which decides what happens next. `key` is a
/// connection's slot key, `fd` its socket (owned by the shard's slot; a backend closes
/// it only in [`release`](Self::release)).
pub(crate) trait IoBackend {
    /// Submit what is queued and sleep until an event, at most `timeout`; `None`: do
    /// not sleep at all. A backend with work it already knows of (epoll: reads to
    /// resume; io_uring: completions it reaped early and has not reported yet) does not
    /// sleep either. EINTR and timeouts are no error.
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()>;

    /// Append every event that has happened since the last call.
    fn collect(&mut self, events: &mut Vec<Event>) -> io::Result<()>;

    /// Has more input arrived that [`collect`](Self::collect) would find now, without
    /// sleeping? (io_uring: completions or deferred task work wait; entering the ring
    /// to run that work is part of asking.) Readiness backends read until EAGAIN and
    /// answer false.
    fn poll_more(&mut self) -> io::Result<bool>;

    /// Start serving a just-accepted connection (register it, start reading).
    /// An error concerns this connection only.
    fn register(&mut self, key: ConnKey, fd: RawFd, generation: u32) -> io::Result<()>;

    /// Readiness backends: read once from `fd` (the loop asked the shard first).
    /// Completion backends never report [`Event::Readable`] and answer `Blocked`.
    fn read(&mut self, fd: RawFd) -> Read;

    /// The bytes of a received buffer.
    fn bytes(&self, buf: Buf) -> &[u8];

    /// The loop is done with a received buffer.
    fn recycle(&mut self, buf: Buf);

    /// Stop reading `key` (read-side backpressure). A completion backend cancels its
    /// read op; bytes already read still arrive, then [`ReadEnd::Cancelled`].
    fn pause_read(&mut self, key: ConnKey);

    /// Is a read op of `key` still armed (completion backends)? A paused connection
    /// is resumed only once it is not.
    fn reading(&self, key: ConnKey) -> bool;

    /// Read `key` again: restart its stopped read op (completion backends), or read it
    /// at the next iteration (readiness backends: no new edge will report the input
    /// already waiting).
    fn resume_read(&mut self, key: ConnKey, fd: RawFd) -> io::Result<()>;

    /// Start sending the front of `queue` (everything queued, up to one batch).
    fn send_queue(&mut self, key: ConnKey, fd: RawFd, queue: &OutQueue) -> io::Result<SendStart>;

    /// Start sending `len` bytes at `ptr`.
    ///
    /// # Safety
    /// The bytes stay alive and unmoved until the send is reported: at once unless it
    /// returns [`SendStart::InFlight`], else until its [`Event::Sent`].
    unsafe fn send_bytes(
        &mut self,
        key: ConnKey,
        fd: RawFd,
        ptr: *const u8,
        len: usize,
    ) -> io::Result<SendStart>;

    /// `key` has finished: cancel whatever of its I/O is in flight.
    fn cancel(&mut self, key: ConnKey, fd: RawFd) -> io::Result<()>;

    /// No operation of `key` is in flight and no completion of one is waiting to be
    /// reported: its socket may be closed and its slot freed.
    fn idle(&self, key: ConnKey) -> bool;

    /// Close `key`'s socket (it is [`idle`](Self::idle)) and forget the connection.
    fn release(&mut self, key: ConnKey, fd: RawFd);

    /// Forget `key` (it is [`idle`](Self::idle)) without closing its socket, which goes
    /// to another shard (a session resume): no longer registered here, returned owned.
    fn hand_over(&mut self, key: ConnKey, fd: RawFd) -> OwnedFd;

    /// Stop accepting for a while (accept failed for lack of resources).
    fn pause_accept(&mut self) -> io::Result<()>;

    /// Accept again after [`pause_accept`](Self::pause_accept).
    fn resume_accept(&mut self);

    /// Stop accepting for good and close the listener (shutdown).
    fn stop_accepting(&mut self) -> io::Result<()>;

    /// End of iteration: hand the kernel what the iteration queued.
    fn submit(&mut self) -> io::Result<()>;

    /// Nothing of the backend's own is still in flight (io_uring: the listener's
    /// accept op has ended), so the loop may exit once the shard has drained.
    fn quiescent(&self) -> bool;
}

/// Where a connection's sending stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Sending {
    /// No send pending: flush may start one.
    #[default]
    Idle,
    /// The socket was full; waiting for [`Event::Writable`].
    Blocked,
    /// A send is in flight; waiting for [`Event::Sent`]. (Its batch or TLS ciphertext
    /// must stay put: the connection is not freed before.)
    InFlight,
}

/// Per-connection driver state, indexed by slot key.
#[derive(Default)]
struct ConnIo {
    /// `wss://`: the connection's TLS session.
    tls: Option<Box<TlsSession>>,
    sending: Sending,
    /// Reading stopped because the shard said no (backpressure, EOF or closed): input
    /// may be waiting, which the loop reads once the shard says yes.
    read_paused: bool,
    /// The connection finished; its I/O is being cancelled. Its events change nothing.
    closing: bool,
}

/// One shard's event loop over backend `B`.
pub(crate) struct EventLoop<'s, B: IoBackend> {
    backend: B,
    shard: &'s mut Shard,
    waker: Arc<Waker>,
    tls: Option<TlsConfig>,
    /// Decrypted bytes of a `wss://` read, on their way to the shard.
    plain: Vec<u8>,
    io: Vec<ConnIo>,
    events: Vec<Event>,
    /// Connections to flush besides the shard's dirty ones (a send ended, the socket
    /// has room, TLS handshake messages wait).
    to_flush: Vec<ConnKey>,
    /// Connections whose reading is to restart at the iteration's end.
    rearm: Vec<ConnKey>,
    /// Finished connections waiting for their last operation to end.
    closing: Vec<ConnKey>,
    /// Accepting is paused (out of fds or memory) until then.
    accept_paused_until: Option<Instant>,
}

impl<'s, B: IoBackend> EventLoop<'s, B> {
    pub(crate) fn new(
        backend: B,
        shard: &'s mut Shard,
        waker: Arc<Waker>,
        tls: Option<TlsConfig>,
    ) -> Self {
        EventLoop {
            backend,
            shard,
            waker,
            tls,
            plain: Vec::new(),
            io: Vec::new(),
            events: Vec::with_capacity(1024),
            to_flush: Vec::new(),
            rearm: Vec::new(),
            closing: Vec::new(),
            accept_paused_until: None,
        }
    }

    /// Run until the shard has shut down and drained.
    pub(crate) fn run(mut self) -> io::Result<()> {
        while !self.turn()? {}
        Ok(())
    }

    /// One iteration (see the module doc). Returns true once the shard has drained.
    fn turn(&mut self) -> io::Result<bool> {
        {
            self.wait()?;
            let now = Instant::now();
            let mut rechecks = 0;
            while self.deliver_events(now)? && rechecks < MAX_RECHECKS {
                if !self.backend.poll_more()? {
                    break;
                }
                rechecks += 1;
            }
            if self.accept_paused_until.is_some_and(|t| now >= t) {
                self.accept_paused_until = None;
                if !self.shard.is_shutting_down() {
                    self.backend.resume_accept();
                }
            }
            self.shard.drain_inbox(now);
            self.adopt_handed_over(now);
            self.shard.expire_timers(now);
            if self.shard.is_shutting_down() {
                self.backend.stop_accepting()?;
            }
            self.shard.hand_off();
            self.flush_all(now)?;
            self.close_finished()?;
            self.restart_reads()?;
            self.backend.submit()?;
        }
        Ok(self.shard.is_drained() && self.backend.quiescent())
    }

    /// Sleep until an event, the shard's next deadline or the end of an accept pause;
    /// not at all while the inbox holds messages.
    fn wait(&mut self) -> io::Result<()> {
        self.waker.arm_sleep();
        let timeout = if self.shard.inbox_pending() {
            None
        } else {
            let now = Instant::now();
            let mut d = wait_for(self.shard, now, IDLE_WAIT);
            if let Some(t) = self.accept_paused_until {
                d = d.min(t.saturating_duration_since(now));
            }
            Some(d)
        };
        let result = self.backend.wait(timeout);
        self.waker.awake();
        result
    }

    /// Collect the backend's events and handle each. Returns whether bytes came in.
    fn deliver_events(&mut self, now: Instant) -> io::Result<bool> {
        let mut events = std::mem::take(&mut self.events);
        self.backend.collect(&mut events)?;
        let mut received = false;
        for event in events.drain(..) {
            match event {
                Event::Accepted(fd) => self.accepted(fd, now),
                Event::AcceptFailed(errno) => self.accept_failed(errno, now)?,
                Event::Readable(key) => {
                    received = true;
                    self.read_until_blocked(key, now);
                }
                Event::Received { key, buf, more } => {
                    received = true;
                    self.deliver(key, buf, now);
                    if self.read_on(key) && !more {
                        self.rearm.push(key);
                    }
                }
                Event::ReadEnded { key, why } => self.read_ended(key, why, now),
                Event::Writable(key) => {
                    if let Some(io) = self.io.get_mut(key) {
                        if io.sending == Sending::Blocked {
                            io.sending = Sending::Idle;
                            self.to_flush.push(key);
                        }
                    }
                }
                Event::Sent { key, done } => self.sent(key, done),
            }
        }
        self.events = events;
        Ok(received)
    }

    fn accepted(&mut self, fd: OwnedFd, now: Instant) {
        if self.shard.is_shutting_down() {
            // Accepted as the listener was being closed: dropping it closes it.
            return;
        }
        match new_session(&self.tls) {
            Ok(tls) => {
                self.serve(fd, tls, now);
            }
            Err(e) => {
                tracing::warn!(error = %e, "TLS session setup failed");
                let (key, _) = self.shard.open(fd.into_raw_fd(), now);
                self.io_slot(key);
                self.shard.finish(key, DisconnectReason::Tls);
            }
        }
    }

    /// Open a slot for socket `fd` with TLS session `tls` (`wss://`) and start reading
    /// it. Returns its key, or `None` when the backend refused it (the slot finished).
    fn serve(
        &mut self,
        fd: OwnedFd,
        tls: Option<Box<TlsSession>>,
        now: Instant,
    ) -> Option<ConnKey> {
        let fd = fd.into_raw_fd();
        let (key, generation) = self.shard.open(fd, now);
        self.io_slot(key);
        self.io[key].tls = tls;
        if let Err(e) = self.backend.register(key, fd, generation) {
            tracing::warn!(error = %e, "could not start serving a connection");
            self.shard.finish(key, DisconnectReason::Reset);
            return None;
        }
        Some(key)
    }

    /// A fresh [`ConnIo`] at `key`.
    fn io_slot(&mut self, key: ConnKey) {
        if self.io.len() <= key {
            self.io.resize_with(key + 1, ConnIo::default);
        }
        self.io[key] = ConnIo::default();
    }

    /// Serve the sockets other shards handed here (session resumes, see
    /// [`crate::shard::session`]): registered like accepted ones, with the TLS session
    /// they come with, then the shard answers their upgrade.
    fn adopt_handed_over(&mut self, now: Instant) {
        while let Some(adoption) = self.shard.take_adoption() {
            if self.shard.is_shutting_down() {
                continue; // dropping the adoption closes the socket
            }
            let tls = adoption.tls.and_then(|t| t.downcast::<TlsSession>().ok());
            if tls.is_none() != self.tls.is_none() {
                tracing::warn!("a handed-over socket without its TLS session: dropped");
                continue;
            }
            if let Some(key) = self.serve(adoption.fd, tls, now) {
                self.shard
                    .adopted(key, &adoption.request, &adoption.rest, now);
            }
        }
    }

    fn accept_failed(&mut self, errno: i32, now: Instant) -> io::Result<()> {
        let e = io::Error::from_raw_os_error(errno);
        let shard = self.shard.id();
        if accept_needs_pause(errno) {
            // The connection stays in the backlog, so accepting again at once would
            // fail again at once: pause instead of spinning.
            tracing::warn!(shard, error = %e, pause = ?ACCEPT_PAUSE, "accept failed; pausing accepts");
            self.accept_paused_until = Some(now + ACCEPT_PAUSE);
            self.backend.pause_accept()
        } else {
            tracing::warn!(shard, error = %e, "accept failed");
            Ok(())
        }
    }

    /// Readiness: read `key` until it would block, the shard says stop, or it ends.
    fn read_until_blocked(&mut self, key: ConnKey, now: Instant) {
        while self.read_on(key) {
            let Some(fd) = self.shard.slot(key).map(|s| s.fd) else {
                return;
            };
            match self.backend.read(fd) {
                Read::Data(buf) => self.deliver(key, buf, now),
                Read::Eof => return self.shard.on_eof(key, now),
                Read::Blocked => return,
                Read::Failed(_) => return self.shard.on_peer_gone(key),
            }
        }
    }

    /// May `key` read on? If the shard says no (backpressure, EOF, closed), pause it.
    fn read_on(&mut self, key: ConnKey) -> bool {
        if self.io.get(key).is_none_or(|io| io.closing) {
            return false;
        }
        if self.may_read(key) {
            return true;
        }
        self.io[key].read_paused = true;
        self.backend.pause_read(key);
        false
    }

    /// Ask the shard whether `key` may read now (its queue plus TLS ciphertext held).
    fn may_read(&mut self, key: ConnKey) -> bool {
        let held = self.io[key].tls.as_ref().map_or(0, |t| t.pending());
        self.shard.may_read(key, held)
    }

    /// Hand a received buffer to the shard, through the TLS session for `wss://`,
    /// then give the buffer back.
    fn deliver(&mut self, key: ConnKey, buf: Buf, now: Instant) {
        if let Some(io) = self.io.get_mut(key).filter(|io| !io.closing) {
            let data = self.backend.bytes(buf);
            match io.tls.as_deref_mut() {
                None => self.shard.on_data(key, data, now),
                Some(tls) => {
                    if deliver_tls(self.shard, key, tls, data, &mut self.plain, now) {
                        self.to_flush.push(key);
                    }
                }
            }
        }
        self.backend.recycle(buf);
    }

    fn read_ended(&mut self, key: ConnKey, why: ReadEnd, now: Instant) {
        let Some(io) = self.io.get(key).filter(|io| !io.closing) else {
            return;
        };
        let paused = io.read_paused;
        match why {
            ReadEnd::Eof => self.shard.on_eof(key, now),
            // Our own cancel (backpressure): resume at once if the queue drained since.
            ReadEnd::Cancelled if paused => self.resume_if_allowed(key),
            ReadEnd::Retry if !paused => self.rearm.push(key),
            ReadEnd::Retry => {}
            ReadEnd::Cancelled | ReadEnd::Failed(_) => self.shard.on_peer_gone(key),
        }
    }

    /// A paused connection whose read has stopped may read again: schedule it.
    fn resume_if_allowed(&mut self, key: ConnKey) {
        let Some(io) = self.io.get(key) else {
            return;
        };
        if !io.read_paused || io.closing || self.backend.reading(key) {
            return;
        }
        if self
            .shard
            .slot(key)
            .is_some_and(|s| s.conn.phase() != Phase::Closed)
            && self.may_read(key)
        {
            self.io[key].read_paused = false;
            self.rearm.push(key);
        }
    }

    fn sent(&mut self, key: ConnKey, done: SendDone) {
        let Some(io) = self.io.get_mut(key) else {
            return;
        };
        io.sending = Sending::Idle;
        if io.closing {
            return;
        }
        if let Some(tls) = io.tls.as_deref_mut() {
            match done {
                SendDone::Wrote(n) => tls.advance(n),
                SendDone::Retry => {}
                SendDone::Failed(_) => return self.shard.on_peer_gone(key),
            }
        } else {
            self.shard.set_in_flight(key, 0);
            match done {
                SendDone::Wrote(n) => self.shard.on_written(key, n),
                // Nothing was written: send the same bytes again.
                SendDone::Retry => {}
                SendDone::Failed(_) => return self.shard.on_peer_gone(key),
            }
        }
        self.to_flush.push(key);
    }

    fn flush_all(&mut self, now: Instant) -> io::Result<()> {
        let mut keys = std::mem::take(&mut self.to_flush);
        let mut dirty = Vec::new();
        self.shard.take_dirty(&mut dirty);
        keys.append(&mut dirty);
        for &key in &keys {
            self.flush(key, now)?;
            if self.io.get(key).is_some_and(|io| io.read_paused) {
                self.resume_if_allowed(key);
            }
        }
        keys.clear();
        self.to_flush = keys;
        Ok(())
    }

    /// Write `key`'s queue until it is empty, the socket is full or a send is in
    /// flight; once it is empty, do what the shard says follows (shut down the write
    /// side, close, or nothing).
    fn flush(&mut self, key: ConnKey, now: Instant) -> io::Result<()> {
        loop {
            let Some(slot) = self.shard.slot(key) else {
                return Ok(());
            };
            let Some(io) = self.io.get_mut(key) else {
                return Ok(());
            };
            if io.sending != Sending::Idle || io.closing || slot.conn.phase() == Phase::Closed {
                return Ok(());
            }
            let fd = slot.fd;
            let started = match io.tls.as_deref_mut() {
                Some(tls) => match tls_next_step(self.shard, key, tls, now) {
                    // SAFETY: the session keeps its pending ciphertext alive and
                    // unmoved until `advance` reports it written, which happens only
                    // once the send is reported (below, or at its `Event::Sent`), and
                    // the session outlives any send in flight (see `close_finished`).
                    TlsStep::Send(ptr, len) => unsafe {
                        self.backend.send_bytes(key, fd, ptr, len)?
                    },
                    TlsStep::ShutdownWrite => {
                        shutdown_write(fd);
                        return Ok(());
                    }
                    TlsStep::Idle => return Ok(()),
                },
                None if slot.conn.out().is_empty() => {
                    match self.shard.after_flush(key, now) {
                        AfterFlush::ShutdownWrite => shutdown_write(fd),
                        AfterFlush::Close => self.shard.finish_flushed(key),
                        AfterFlush::Idle => {}
                    }
                    return Ok(());
                }
                None => self.backend.send_queue(key, fd, slot.conn.out())?,
            };
            let io = &mut self.io[key];
            match started {
                SendStart::Written(n) => match io.tls.as_deref_mut() {
                    Some(tls) => tls.advance(n),
                    None => self.shard.on_written(key, n),
                },
                SendStart::Blocked => {
                    io.sending = Sending::Blocked;
                    return Ok(());
                }
                SendStart::InFlight { frames } => {
                    io.sending = Sending::InFlight;
                    if io.tls.is_none() {
                        self.shard.set_in_flight(key, frames);
                    }
                    return Ok(());
                }
                SendStart::Failed(_) => {
                    self.shard.on_peer_gone(key);
                    return Ok(());
                }
            }
        }
    }

    /// Close the connections that finished: send what their TLS session holds (the
    /// `close_notify` or an alert) best effort, cancel their I/O, and free each once
    /// none of its operations is in flight (a send's batch or ciphertext, a read into
    /// the shard's buffers); the rest wait for their completions.
    fn close_finished(&mut self) -> io::Result<()> {
        let mut newly = Vec::new();
        self.shard.take_finished(&mut newly);
        for key in newly {
            let Some(slot) = self.shard.slot(key) else {
                continue;
            };
            let fd = slot.fd;
            let io = &mut self.io[key];
            io.closing = true;
            // A socket handed to another shard keeps its TLS session going there.
            if io.sending != Sending::InFlight && !self.shard.is_handing_over(key) {
                if let Some(tls) = io.tls.as_deref_mut() {
                    let (_, bytes) = tls.next_send(slot.conn.out());
                    if !bytes.is_empty() {
                        // SAFETY: the session stays until the connection is idle, that
                        // is until this send is reported; nothing touches its
                        // ciphertext before.
                        let started = unsafe {
                            self.backend
                                .send_bytes(key, fd, bytes.as_ptr(), bytes.len())?
                        };
                        if let SendStart::InFlight { .. } = started {
                            io.sending = Sending::InFlight;
                        }
                    }
                }
            }
            self.backend.cancel(key, fd)?;
            self.closing.push(key);
        }
        let mut closing = std::mem::take(&mut self.closing);
        closing.retain(|&key| {
            if !self.backend.idle(key) {
                return true;
            }
            if let Some(fd) = self.shard.slot(key).map(|s| s.fd) {
                if self.shard.is_handing_over(key) {
                    let owned = self.backend.hand_over(key, fd);
                    let tls = self.io[key].tls.take().map(|t| t as Box<dyn Any + Send>);
                    self.shard.send_handover(key, owned, tls);
                } else {
                    self.backend.release(key, fd);
                }
            }
            self.io[key] = ConnIo::default();
            self.shard.release(key);
            false
        });
        self.closing = closing;
        Ok(())
    }

    /// Restart the reads the iteration scheduled, for connections still open and not
    /// paused.
    fn restart_reads(&mut self) -> io::Result<()> {
        let mut keys = std::mem::take(&mut self.rearm);
        for &key in &keys {
            let Some(slot) = self.shard.slot(key) else {
                continue;
            };
            let io = &self.io[key];
            if slot.conn.phase() != Phase::Closed && !io.read_paused && !io.closing {
                self.backend.resume_read(key, slot.fd)?;
            }
        }
        keys.clear();
        self.rearm = keys;
        Ok(())
    }
}

/// Shut down `fd`'s write side (our FIN; reading goes on). Best effort: an error means
/// the connection is already gone, which its next read reports.
fn shutdown_write(fd: RawFd) {
    // SAFETY: fd is an open socket owned by a live slot; shutdown takes no memory.
    unsafe { libc::shutdown(fd, libc::SHUT_WR) };
}

#[cfg(test)]
mod tests {
    //! The loop's ordering rules, checked against a scripted completion backend (the
    //! socket-level behaviour of both real backends is what `tests/*.rs` check).

    use std::collections::{HashSet, VecDeque};
    use std::os::fd::FromRawFd;
    use std::os::unix::net::UnixStream;

    use super::*;
    use crate::handler::Handler;
    use crate::hub::{Hub, HubShared};
    use crate::metrics::NoopCollector;
    use crate::shard::{Admission, ShardConfig, Shared};

    struct Nop;
    impl Handler for Nop {}

    const UPGRADE: &[u8] = b"GET /ws/r HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n";

    /// Hands out the events a test queues, one batch per iteration, and logs what the
    /// loop asks of it. `busy`: keys with an operation in flight (the test decides).
    #[derive(Default)]
    struct Scripted {
        batches: VecDeque<Vec<Event>>,
        data: Vec<Vec<u8>>,
        busy: HashSet<ConnKey>,
        log: Vec<String>,
    }

    impl IoBackend for Scripted {
        fn wait(&mut self, _timeout: Option<Duration>) -> io::Result<()> {
            Ok(())
        }
        fn collect(&mut self, events: &mut Vec<Event>) -> io::Result<()> {
            events.extend(self.batches.pop_front().unwrap_or_default());
            Ok(())
        }
        fn poll_more(&mut self) -> io::Result<bool> {
            Ok(false)
        }
        fn register(&mut self, key: ConnKey, _fd: RawFd, _generation: u32) -> io::Result<()> {
            self.busy.insert(key);
            self.log.push(format!("register {key}"));
            Ok(())
        }
        fn read(&mut self, _fd: RawFd) -> Read {
            Read::Blocked
        }
        fn bytes(&self, buf: Buf) -> &[u8] {
            &self.data[usize::from(buf.id)][..buf.len]
        }
        fn recycle(&mut self, buf: Buf) {
            self.log.push(format!("recycle {}", buf.id));
        }
        fn pause_read(&mut self, key: ConnKey) {
            self.log.push(format!("pause {key}"));
        }
        fn reading(&self, key: ConnKey) -> bool {
            self.busy.contains(&key)
        }
        fn resume_read(&mut self, key: ConnKey, _fd: RawFd) -> io::Result<()> {
            self.log.push(format!("resume {key}"));
            Ok(())
        }
        fn send_queue(
            &mut self,
            key: ConnKey,
            _fd: RawFd,
            queue: &OutQueue,
        ) -> io::Result<SendStart> {
            self.log.push(format!("send {key}"));
            Ok(SendStart::InFlight {
                frames: queue.len(),
            })
        }
        unsafe fn send_bytes(
            &mut self,
            key: ConnKey,
            _fd: RawFd,
            _ptr: *const u8,
            _len: usize,
        ) -> io::Result<SendStart> {
            self.log.push(format!("send {key}"));
            Ok(SendStart::InFlight { frames: 0 })
        }
        fn cancel(&mut self, key: ConnKey, _fd: RawFd) -> io::Result<()> {
            self.log.push(format!("cancel {key}"));
            Ok(())
        }
        fn idle(&self, key: ConnKey) -> bool {
            !self.busy.contains(&key)
        }
        fn release(&mut self, key: ConnKey, fd: RawFd) {
            // SAFETY: the fd came from `into_raw_fd` of a socket the test created; the
            // loop releases it once.
            unsafe { libc::close(fd) };
            self.log.push(format!("release {key}"));
        }
        fn hand_over(&mut self, key: ConnKey, fd: RawFd) -> OwnedFd {
            self.log.push(format!("hand over {key}"));
            // SAFETY: as in `release`: the fd is the test's socket, given up once.
            unsafe { OwnedFd::from_raw_fd(fd) }
        }
        fn pause_accept(&mut self) -> io::Result<()> {
            Ok(())
        }
        fn resume_accept(&mut self) {}
        fn stop_accepting(&mut self) -> io::Result<()> {
            Ok(())
        }
        fn submit(&mut self) -> io::Result<()> {
            Ok(())
        }
        fn quiescent(&self) -> bool {
            true
        }
    }

    fn shard(max_queue_bytes: usize) -> (Shard, Arc<Waker>) {
        let waker = Arc::new(Waker::new().unwrap());
        let (hub, mut inboxes) = HubShared::new(std::slice::from_ref(&waker));
        let mut cfg = ShardConfig::default();
        cfg.queue.max_bytes = max_queue_bytes;
        let shared = Arc::new(Shared {
            cfg,
            metrics: Arc::new(NoopCollector),
            admission: Admission::new(16),
        });
        let shard = Shard::new(
            0,
            shared,
            Hub::new(0, hub),
            Arc::new(Nop),
            inboxes.remove(0),
        );
        (shard, waker)
    }

    /// Iteration 1 of both tests: accept a connection (key 0) and deliver its upgrade
    /// request, so its 101 response is queued and goes out as a send in flight.
    fn accept_and_upgrade(backend: &mut Scripted) -> UnixStream {
        let (ours, peer) = UnixStream::pair().unwrap();
        backend.data.push(UPGRADE.to_vec());
        let buf = Buf {
            id: 0,
            len: UPGRADE.len(),
        };
        backend.batches.push_back(vec![
            Event::Accepted(OwnedFd::from(ours)),
            Event::Received {
                key: 0,
                buf,
                more: true,
            },
        ]);
        peer
    }

    #[test]
    fn a_finished_connection_is_freed_only_once_its_send_in_flight_has_ended() {
        let (mut shard, waker) = shard(1 << 20);
        let mut backend = Scripted::default();
        let _peer = accept_and_upgrade(&mut backend);
        backend.batches.push_back(vec![Event::ReadEnded {
            key: 0,
            why: ReadEnd::Failed(libc::ECONNRESET),
        }]);
        backend.batches.push_back(vec![Event::Sent {
            key: 0,
            done: SendDone::Failed(libc::ECANCELED),
        }]);
        let mut lp = EventLoop::new(backend, &mut shard, waker, None);

        lp.turn().unwrap();
        assert_eq!(lp.backend.log, ["register 0", "recycle 0", "send 0"]);
        // The send is in flight; the reset finishes the connection.
        lp.turn().unwrap();
        assert_eq!(lp.backend.log[3..], ["cancel 0"]);
        assert!(
            lp.shard.slot(0).is_some(),
            "not freed while its send is in flight"
        );
        // The cancelled send ends: now it is freed, and nothing new was started.
        lp.backend.busy.clear();
        lp.turn().unwrap();
        assert_eq!(lp.backend.log[4..], ["release 0"]);
        assert!(lp.shard.slot(0).is_none());
    }

    #[test]
    fn a_paused_read_restarts_only_after_its_cancelled_read_has_ended() {
        // A queue cap below the 101 response: reading pauses once it is queued.
        let (mut shard, waker) = shard(64);
        let mut backend = Scripted::default();
        let _peer = accept_and_upgrade(&mut backend);
        let mut lp = EventLoop::new(backend, &mut shard, waker, None);

        lp.turn().unwrap();
        assert_eq!(
            lp.backend.log,
            ["register 0", "recycle 0", "pause 0", "send 0"]
        );
        let queued = lp.shard.slot(0).unwrap().conn.out().bytes();
        assert!(queued > 64, "the 101 response is over the cap: {queued} B");
        lp.backend.batches.push_back(vec![Event::Sent {
            key: 0,
            done: SendDone::Wrote(queued),
        }]);
        lp.backend.batches.push_back(vec![Event::ReadEnded {
            key: 0,
            why: ReadEnd::Cancelled,
        }]);
        // The response is written and the queue is empty, but the recv is still being
        // cancelled: no second read may start beside it.
        lp.turn().unwrap();
        assert_eq!(lp.backend.log.len(), 4, "{:?}", lp.backend.log);
        // The cancelled recv's last completion: reading resumes at the iteration's end.
        lp.backend.busy.clear();
        lp.turn().unwrap();
        assert_eq!(lp.backend.log[4..], ["resume 0"]);
    }
}

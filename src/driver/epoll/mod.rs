//! The epoll backend: edge-triggered readiness, one scratch read buffer per shard.
//!
//! Loop (mio-sized): wait → accept until EAGAIN → read each readable connection until
//! EAGAIN into the shard's scratch buffer and feed it → drain the inbox → fire timers →
//! write every dirty connection (one `sendmsg` per batch of queued frames, until EAGAIN)
//! → close finished connections. The wake-up eventfd is in the set; the shard's
//! deadline becomes the `epoll_wait` timeout. A `wss://` connection's bytes pass
//! through its [`TlsSession`] on the way in and out (one `send` of ciphertext per batch).
//!
//! Read-side backpressure: before each read the shard says whether the connection may
//! read ([`Shard::may_read`]); if not, reading stops and the connection is marked
//! `read_paused`. Edge-triggered readiness will not report the input already waiting
//! again, so every flush of a paused connection asks again, and once allowed the
//! connection is read at the start of the next iteration (the wait does not block
//! while such reads are due). A read of 0 is the peer's EOF ([`Shard::on_eof`]), not
//! an error.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::conn::{AfterFlush, DisconnectReason};
use crate::driver::batch::SendBatch;
use crate::driver::tls::{TlsConfig, TlsSession};
use crate::driver::DriverConfig;
use crate::driver::{
    accept_needs_pause, deliver_tls, new_session, tls_next_step, wait_for, TlsStep, ACCEPT_PAUSE,
};
use crate::hub::ConnKey;
use crate::shard::Shard;
use crate::sys::Waker;

const LISTENER: u64 = u64::MAX;
const WAKER: u64 = u64::MAX - 1;
const MAX_EVENTS: usize = 1024;
/// Longest sleep with nothing scheduled (bounds how stale "now" can get).
const IDLE_WAIT: Duration = Duration::from_secs(1);

fn token(key: ConnKey, generation: u32) -> u64 {
    (u64::from(generation) << 32) | key as u64
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Per-connection driver state, indexed by slot key.
#[derive(Default)]
struct ConnIo {
    /// The last send hit EAGAIN: wait for EPOLLOUT.
    write_blocked: bool,
    /// Reading stopped because the shard said no (backpressure, or EOF): input may be
    /// waiting that no readiness edge will report again.
    read_paused: bool,
    /// `wss://`: the connection's TLS session.
    tls: Option<Box<TlsSession>>,
}

struct Epoll {
    epfd: RawFd,
    listener: Option<socket2::Socket>,
    /// Accepting is paused (out of fds or memory) until then.
    accept_paused_until: Option<Instant>,
    waker: Arc<Waker>,
    scratch: Vec<u8>,
    /// Decrypted bytes of a `wss://` read, on their way to the shard.
    plain: Vec<u8>,
    tls: Option<TlsConfig>,
    batch: SendBatch,
    io: Vec<ConnIo>,
    to_flush: Vec<ConnKey>,
    /// Paused connections allowed to read again: read at the next iteration's start.
    resume: Vec<(ConnKey, u32)>,
    finished: Vec<ConnKey>,
}

impl Drop for Epoll {
    fn drop(&mut self) {
        // SAFETY: epfd was returned by epoll_create1 and is closed only here.
        unsafe { libc::close(self.epfd) };
    }
}

/// Run a shard on epoll until it has shut down and drained.
pub fn run(
    cfg: &DriverConfig,
    shard: &mut Shard,
    listener: socket2::Socket,
    waker: Arc<Waker>,
) -> io::Result<()> {
    // SAFETY: plain syscall with a flag argument.
    let epfd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
    let mut ep = Epoll {
        epfd,
        listener: None,
        accept_paused_until: None,
        waker: waker.clone(),
        scratch: vec![0; cfg.recv_buffer_size.max(64 * 1024)],
        plain: Vec::new(),
        tls: cfg.tls.clone(),
        batch: SendBatch::default(),
        io: Vec::new(),
        to_flush: Vec::new(),
        resume: Vec::new(),
        finished: Vec::new(),
    };
    ep.add(listener.as_raw_fd(), LISTENER, libc::EPOLLIN as u32)?;
    ep.listener = Some(listener);
    ep.add(waker.fd(), WAKER, (libc::EPOLLIN | libc::EPOLLET) as u32)?;
    ep.run(shard)
}

impl Epoll {
    fn add(&self, fd: RawFd, data: u64, events: u32) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, data, events)
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, data: u64, events: u32) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: data };
        // SAFETY: epfd and fd are open; ev is a valid epoll_event.
        cvt(unsafe { libc::epoll_ctl(self.epfd, op, fd, &mut ev) }).map(drop)
    }

    /// Stop (or resume) polling the listener while accepting is paused.
    fn listen_for_accepts(&self, on: bool) {
        if let Some(listener) = &self.listener {
            let events = if on { libc::EPOLLIN as u32 } else { 0 };
            if let Err(e) = self.ctl(libc::EPOLL_CTL_MOD, listener.as_raw_fd(), LISTENER, events) {
                tracing::warn!(error = %e, "epoll_ctl on the listener failed");
            }
        }
    }

    fn run(&mut self, shard: &mut Shard) -> io::Result<()> {
        let mut events: Vec<libc::epoll_event> =
            vec![libc::epoll_event { events: 0, u64: 0 }; MAX_EVENTS];
        loop {
            let now = Instant::now();
            self.waker.arm_sleep();
            if self.accept_paused_until.is_some_and(|t| now >= t) {
                self.accept_paused_until = None;
                self.listen_for_accepts(true);
            }
            let timeout = if shard.inbox_pending() || !self.resume.is_empty() {
                0
            } else {
                let mut d = wait_for(shard, now, IDLE_WAIT);
                if let Some(t) = self.accept_paused_until {
                    d = d.min(t.saturating_duration_since(now));
                }
                // Round up so we never wake just before a deadline.
                d.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32
            };
            // SAFETY: events has MAX_EVENTS valid entries for the kernel to fill.
            let n = unsafe {
                libc::epoll_wait(self.epfd, events.as_mut_ptr(), MAX_EVENTS as i32, timeout)
            };
            self.waker.awake();
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            let now = Instant::now();
            for ev in &events[..n.max(0) as usize] {
                let (data, flags) = (ev.u64, ev.events);
                match data {
                    LISTENER => self.accept(shard, now),
                    WAKER => {
                        self.waker.drain()?;
                    }
                    _ => self.conn_event(shard, data, flags, now),
                }
            }
            for (key, generation) in std::mem::take(&mut self.resume) {
                if let Some(slot) = shard.slot(key).filter(|s| s.generation == generation) {
                    let fd = slot.fd;
                    self.read_until_blocked(shard, key, fd, now);
                }
            }
            shard.drain_inbox(now);
            shard.expire_timers(now);
            if shard.is_shutting_down() {
                // Stop accepting: dropping the listener closes it (and leaves the epoll set).
                self.listener = None;
            }
            shard.hand_off();
            self.flush_all(shard, now);
            self.close_finished(shard);
            if shard.is_drained() {
                return Ok(());
            }
        }
    }

    fn accept(&mut self, shard: &mut Shard, now: Instant) {
        let Some(listener) = &self.listener else {
            return;
        };
        let lfd = listener.as_raw_fd();
        loop {
            // SAFETY: lfd is a listening socket; null address pointers are allowed.
            let fd = unsafe {
                libc::accept4(
                    lfd,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                )
            };
            if fd < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EAGAIN) => return,
                    Some(libc::EINTR) | Some(libc::ECONNABORTED) => continue,
                    Some(errno) if accept_needs_pause(errno) => {
                        // The rest stay in the backlog; stop polling the (level-triggered)
                        // listener for a while instead of spinning on it.
                        tracing::warn!(shard = shard.id(), error = %e, pause = ?ACCEPT_PAUSE, "accept failed; pausing accepts");
                        self.accept_paused_until = Some(now + ACCEPT_PAUSE);
                        self.listen_for_accepts(false);
                        return;
                    }
                    _ => {
                        tracing::warn!(shard = shard.id(), error = %e, "accept failed");
                        return;
                    }
                }
            }
            let (key, generation) = shard.open(fd, now);
            if self.io.len() <= key {
                self.io.resize_with(key + 1, ConnIo::default);
            }
            self.io[key] = ConnIo::default();
            match new_session(&self.tls) {
                Ok(tls) => self.io[key].tls = tls,
                Err(e) => {
                    tracing::warn!(error = %e, "TLS session setup failed");
                    shard.finish(key, DisconnectReason::Tls);
                    continue;
                }
            }
            let interest = libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET;
            if let Err(e) = self.add(fd, token(key, generation), interest as u32) {
                tracing::warn!(error = %e, "epoll_ctl add failed");
                shard.finish(key, DisconnectReason::Reset);
            }
        }
    }

    fn conn_event(&mut self, shard: &mut Shard, data: u64, flags: u32, now: Instant) {
        let key = (data & 0xFFFF_FFFF) as ConnKey;
        let generation = (data >> 32) as u32;
        let Some(slot) = shard.slot(key) else {
            return;
        };
        if slot.generation != generation {
            return;
        }
        let fd = slot.fd;
        if flags & (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0
        {
            self.read_until_blocked(shard, key, fd, now);
        }
        if flags & libc::EPOLLOUT as u32 != 0 && self.io[key].write_blocked {
            self.io[key].write_blocked = false;
            self.to_flush.push(key);
        }
    }

    /// Bytes the driver holds for `key` beyond its queue (TLS ciphertext not yet written).
    fn held(&self, key: ConnKey) -> usize {
        self.io[key].tls.as_ref().map_or(0, |t| t.pending())
    }

    fn read_until_blocked(&mut self, shard: &mut Shard, key: ConnKey, fd: RawFd, now: Instant) {
        loop {
            if !shard.may_read(key, self.held(key)) {
                self.io[key].read_paused = true;
                return;
            }
            // SAFETY: scratch is a live buffer of the given length; fd is open.
            let n =
                unsafe { libc::recv(fd, self.scratch.as_mut_ptr().cast(), self.scratch.len(), 0) };
            match n {
                0 => return shard.on_eof(key, now),
                n if n > 0 => {
                    if !self.deliver(shard, key, n as usize, now) {
                        return;
                    }
                    if shard
                        .slot(key)
                        .is_none_or(|s| s.conn.phase() == crate::conn::Phase::Closed)
                    {
                        return;
                    }
                }
                _ => {
                    let e = io::Error::last_os_error();
                    match e.raw_os_error() {
                        Some(libc::EAGAIN) => return,
                        Some(libc::EINTR) => continue,
                        _ => return shard.on_peer_gone(key),
                    }
                }
            }
        }
    }

    /// Hand `n` bytes read into the scratch buffer to the shard, through the TLS session
    /// for `wss://`. False: stop reading this connection.
    fn deliver(&mut self, shard: &mut Shard, key: ConnKey, n: usize, now: Instant) -> bool {
        let Some(tls) = self.io[key].tls.as_deref_mut() else {
            shard.on_data(key, &self.scratch[..n], now);
            return true;
        };
        let done = deliver_tls(shard, key, tls, &self.scratch[..n], &mut self.plain, now);
        if done.wants_flush {
            self.to_flush.push(key);
        }
        done.readable
    }

    fn flush_all(&mut self, shard: &mut Shard, now: Instant) {
        let mut dirty = std::mem::take(&mut self.to_flush);
        let mut more = Vec::new();
        shard.take_dirty(&mut more);
        dirty.append(&mut more);
        for &key in &dirty {
            self.flush(shard, key, now);
            self.check_resume(shard, key);
        }
        dirty.clear();
        self.to_flush = dirty;
    }

    /// A paused connection whose queue has shrunk enough may read again: schedule it.
    fn check_resume(&mut self, shard: &mut Shard, key: ConnKey) {
        if !self.io.get(key).is_some_and(|io| io.read_paused) {
            return;
        }
        let Some(generation) = shard.slot(key).map(|s| s.generation) else {
            return;
        };
        if shard.may_read(key, self.held(key)) {
            self.io[key].read_paused = false;
            self.resume.push((key, generation));
        }
    }

    /// Write `key`'s queue until it is empty or the socket is full.
    fn flush(&mut self, shard: &mut Shard, key: ConnKey, now: Instant) {
        if self.io.get(key).is_none_or(|io| io.write_blocked) {
            return;
        }
        if self.io[key].tls.is_some() {
            return self.flush_tls(shard, key, now);
        }
        loop {
            let Some(slot) = shard.slot(key) else {
                return;
            };
            if slot.conn.phase() == crate::conn::Phase::Closed {
                return;
            }
            let fd = slot.fd;
            if slot.conn.out.is_empty() {
                match shard.after_flush(key, now) {
                    // SAFETY: fd is an open socket owned by this slot.
                    AfterFlush::ShutdownWrite => unsafe {
                        libc::shutdown(fd, libc::SHUT_WR);
                    },
                    AfterFlush::Close => shard.finish_flushed(key),
                    AfterFlush::Idle => {}
                }
                return;
            }
            self.batch.fill(&slot.conn.out);
            // SAFETY: the batch's msghdr points at iovecs into memory the batch and the
            // connection's queue keep alive for the duration of this call.
            let n = unsafe {
                libc::sendmsg(
                    fd,
                    self.batch.msghdr(),
                    libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
                )
            };
            self.batch.clear();
            if n >= 0 {
                // A short write means the socket is (nearly) full: the next call says
                // EAGAIN, which arms the wait for EPOLLOUT.
                shard.on_written(key, n as usize);
                continue;
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EAGAIN) => {
                    self.io[key].write_blocked = true;
                    return;
                }
                Some(libc::EINTR) => continue,
                _ => return shard.on_peer_gone(key),
            }
        }
    }

    /// [`flush`](Self::flush) for `wss://`: encrypt a batch, send it, repeat.
    fn flush_tls(&mut self, shard: &mut Shard, key: ConnKey, now: Instant) {
        loop {
            let Some(slot) = shard.slot(key) else {
                return;
            };
            if slot.conn.phase() == crate::conn::Phase::Closed {
                return;
            }
            let fd = slot.fd;
            let Some(tls) = self.io[key].tls.as_deref_mut() else {
                return;
            };
            let (ptr, len) = match tls_next_step(shard, key, tls, now) {
                TlsStep::Send(ptr, len) => (ptr, len),
                TlsStep::ShutdownWrite => {
                    // SAFETY: fd is an open socket owned by this slot.
                    unsafe { libc::shutdown(fd, libc::SHUT_WR) };
                    return;
                }
                TlsStep::Idle => return,
            };
            // SAFETY: ptr/len is the session's pending ciphertext, alive and unchanged
            // for the duration of this call.
            let n =
                unsafe { libc::send(fd, ptr.cast(), len, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) };
            if n >= 0 {
                tls.advance(n as usize);
                continue;
            }
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::EAGAIN) => {
                    self.io[key].write_blocked = true;
                    return;
                }
                Some(libc::EINTR) => continue,
                _ => return shard.on_peer_gone(key),
            }
        }
    }

    fn close_finished(&mut self, shard: &mut Shard) {
        shard.take_finished(&mut self.finished);
        for &key in &self.finished {
            if let Some(slot) = shard.slot(key) {
                if let Some(tls) = self.io[key].tls.as_deref_mut() {
                    // Best effort: the close_notify or alert, if the socket takes it now.
                    let (_, bytes) = tls.next_send(&slot.conn.out);
                    if !bytes.is_empty() {
                        // SAFETY: bytes is alive for the call; fd is still open.
                        unsafe {
                            libc::send(
                                slot.fd,
                                bytes.as_ptr().cast(),
                                bytes.len(),
                                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
                            )
                        };
                    }
                }
                self.io[key].tls = None;
                // SAFETY: the fd belongs to this slot and is closed exactly once, here;
                // closing removes it from the epoll set.
                unsafe { libc::close(slot.fd) };
            }
            shard.release(key);
        }
    }
}

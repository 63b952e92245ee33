//! The io_uring backend.
//!
//! Per shard: one ring (`SINGLE_ISSUER | DEFER_TASKRUN` when the kernel has them, else
//! `COOP_TASKRUN`, else plain), one multishot accept on the shard's listener, one
//! multishot recv per connection drawing from the shard's provided [`BufRing`], at
//! most one `sendmsg` in flight per connection carrying everything queued
//! ([`SendBatch`]), and a read on the shard's wake-up eventfd. After the wait the loop
//! reaps until no more input has arrived (like epoll's read-until-EAGAIN, so a burst of
//! publishes leaves in one round of sends), then flushes and submits once, at the end of
//! the iteration (so what an iteration queued leaves in that iteration, not one wait
//! later: measured, that one-iteration delay halved closed-loop fan-out), then waits
//! with a timeout equal to the shard's next deadline.
//!
//! A multishot op whose completion lacks `IORING_CQE_F_MORE` has stopped (EOF, error,
//! or `-ENOBUFS` when the buffer ring ran dry) and is re-armed if the connection lives.
//! A finished connection's ops are cancelled; its socket is closed and its slot freed
//! only when no op is in flight, and `user_data` carries the slot's generation so a late
//! completion for a reused slot is ignored.
//!
//! Read-side backpressure: after each delivered buffer the shard says whether the
//! connection may read on ([`Shard::may_read`]); if not, its multishot recv is
//! cancelled (buffers the kernel already filled are still delivered: at most what
//! was in flight) and the connection is `recv_paused`. Every flush of a paused
//! connection, and the cancelled recv's last completion, ask again, and the recv is
//! re-armed once allowed. A recv completion of 0 is the peer's EOF
//! ([`Shard::on_eof`]), not an error.
//!
//! A `wss://` connection's bytes pass through its [`TlsSession`]: received buffers are
//! decrypted before the shard sees them, and its send is a plain `send` of the
//! session's pending ciphertext, which the session keeps unmoved until the completion.

mod bufring;
mod user_data;

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, squeue, types, IoUring};

use crate::conn::{AfterFlush, DisconnectReason, Phase};
use crate::driver::batch::SendBatch;
use crate::driver::tls::{TlsConfig, TlsSession};
use crate::driver::DriverConfig;
use crate::driver::{
    accept_needs_pause, deliver_tls, new_session, tls_next_step, wait_for, TlsStep, ACCEPT_PAUSE,
};
use crate::hub::ConnKey;
use crate::shard::Shard;
use crate::sys::Waker;

use bufring::BufRing;
use user_data::Op;

const BUFFER_GROUP: u16 = 0;
const IDLE_WAIT: Duration = Duration::from_secs(1);
/// Send batches kept for reuse.
const BATCH_POOL: usize = 1024;
/// Most extra looks for arrived bytes before an iteration flushes (bounds how long a
/// steady stream of input can hold back this iteration's sends).
const MAX_RECHECKS: usize = 4;

/// Check that io_uring can run here with what this driver needs (multishot recv with a
/// provided buffer ring: Linux 6.0+). Returns the reason when it cannot.
///
/// The probe runs on a short-lived thread of its own: tearing a ring down can queue
/// task work on the thread that created it, which interrupts that thread's blocking
/// socket calls (EINTR where a receive timeout is set) — the caller's thread must not
/// pay for that.
pub fn probe() -> Result<(), String> {
    std::thread::Builder::new()
        .name("ringcast-uring-probe".into())
        .spawn(probe_here)
        .map_err(|e| format!("could not spawn the probe thread: {e}"))?
        .join()
        .unwrap_or_else(|_| Err("the io_uring probe panicked".into()))
}

fn probe_here() -> Result<(), String> {
    if let Ok(v) = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled") {
        match v.trim() {
            "2" => return Err("disabled by sysctl kernel.io_uring_disabled=2".into()),
            "1" => {} // allowed for a group; the setup below tells whether we are in it
            _ => {}
        }
    }
    let ring = IoUring::new(8).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOSYS) => "the kernel has no io_uring (ENOSYS)".to_string(),
        Some(libc::EPERM) => {
            "io_uring_setup denied (EPERM: kernel.io_uring_disabled or a seccomp filter)"
                .to_string()
        }
        _ => format!("io_uring_setup failed: {e}"),
    })?;
    if !ring.params().is_feature_ext_arg() {
        return Err("the kernel lacks IORING_FEAT_EXT_ARG (needs Linux 5.11+)".into());
    }
    let bufs = BufRing::register(&ring, 2, 512, 0)
        .map_err(|e| format!("provided buffer rings unsupported (needs Linux 5.19+): {e}"))?;
    drop(bufs);
    let release = kernel_release();
    if kernel_at_least(&release, 6, 0) {
        Ok(())
    } else {
        Err(format!(
            "multishot recv needs Linux 6.0+, this is {release}"
        ))
    }
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn kernel_at_least(release: &str, major: u32, minor: u32) -> bool {
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse::<u32>().ok());
    let (Some(a), Some(b)) = (parts.next(), parts.next()) else {
        return false;
    };
    (a, b) >= (major, minor)
}

fn build_ring(entries: u32) -> io::Result<IoUring> {
    let cq = entries * 4;
    let attempts: [fn(&mut io_uring::Builder); 3] = [
        // TASKRUN_FLAG: the kernel flags pending task work in the SQ ring, so the loop
        // can tell without a syscall whether a recv has data waiting (see `more_pending`).
        |b| {
            b.setup_single_issuer()
                .setup_defer_taskrun()
                .setup_taskrun_flag();
        },
        |b| {
            b.setup_coop_taskrun().setup_taskrun_flag();
        },
        |_| {},
    ];
    let mut last = None;
    for configure in attempts {
        let mut builder = IoUring::builder();
        builder.setup_cqsize(cq);
        configure(&mut builder);
        match builder.build(entries) {
            Ok(ring) => return Ok(ring),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("io_uring setup failed")))
}

/// A send completion that is no failure of the connection: -EAGAIN (io_uring returns it
/// for a non-blocking socket when a send it already polled for once still finds the
/// socket full: it hands the op to a worker, whose attempt fails at once; seen here
/// with a 16 KiB SO_SNDBUF, and it used to drop the connection's queue) or -EINTR.
/// The same bytes are sent again: a fresh op waits for writability again.
fn send_retryable(res: i32) -> bool {
    res == -libc::EAGAIN || res == -libc::EINTR
}

/// Per-connection driver state, indexed by slot key.
#[derive(Default)]
struct ConnIo {
    recv_armed: bool,
    /// Reading is paused (the shard said no): the recv is cancelled or not re-armed.
    recv_paused: bool,
    /// A cancel of the recv was submitted and its last completion has not come yet.
    recv_cancelling: bool,
    send: Option<Box<SendBatch>>,
    /// The connection finished; its ops are being cancelled.
    closing: bool,
    /// `wss://`: the connection's TLS session.
    tls: Option<Box<TlsSession>>,
    /// A send of the TLS session's ciphertext is in flight.
    tls_send: bool,
}

impl ConnIo {
    fn idle(&self) -> bool {
        !self.recv_armed && self.send.is_none() && !self.tls_send
    }
}

struct Uring {
    // Field order matters for drop: the ring goes before the buffer memory.
    ring: IoUring,
    bufs: BufRing,
    listener: Option<socket2::Socket>,
    accept_armed: bool,
    /// Accepting is paused (out of fds or memory) until then.
    accept_paused_until: Option<Instant>,
    waker: Arc<Waker>,
    wake_buf: Box<u64>,
    tls: Option<TlsConfig>,
    /// Decrypted bytes of a `wss://` receive, on their way to the shard.
    plain: Vec<u8>,
    io: Vec<ConnIo>,
    // Boxed: a batch's msghdr must not move while its send is in flight.
    #[allow(clippy::vec_box)]
    pool: Vec<Box<SendBatch>>,
    cqes: Vec<(u64, i32, u32)>,
    to_flush: Vec<ConnKey>,
    finished: Vec<ConnKey>,
    rearm: Vec<ConnKey>,
}

impl Drop for Uring {
    fn drop(&mut self) {
        let _ = self.ring.submitter().unregister_buf_ring(self.bufs.group());
    }
}

/// Run a shard on io_uring until it has shut down and drained.
pub fn run(
    cfg: &DriverConfig,
    shard: &mut Shard,
    listener: socket2::Socket,
    waker: Arc<Waker>,
) -> io::Result<()> {
    let ring = build_ring(cfg.uring_entries)?;
    let bufs = BufRing::register(&ring, cfg.recv_buffers, cfg.recv_buffer_size, BUFFER_GROUP)?;
    let mut u = Uring {
        ring,
        bufs,
        listener: Some(listener),
        accept_armed: false,
        accept_paused_until: None,
        waker,
        wake_buf: Box::new(0),
        tls: cfg.tls.clone(),
        plain: Vec::new(),
        io: Vec::new(),
        pool: Vec::new(),
        cqes: Vec::with_capacity(1024),
        to_flush: Vec::new(),
        finished: Vec::new(),
        rearm: Vec::new(),
    };
    u.arm_accept()?;
    u.arm_wake()?;
    u.run(shard)
}

impl Uring {
    /// Queue an SQE, submitting first if the queue is full.
    fn push(&mut self, entry: squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: every buffer an entry points to (wake_buf, send batches and their
            // msghdr/iovecs, the buffer ring) is owned by `self` or by a connection slot
            // and stays alive and unmoved until the op's completion is reaped.
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                return Ok(());
            }
            self.ring.submit()?;
        }
    }

    fn arm_accept(&mut self) -> io::Result<()> {
        let Some(listener) = &self.listener else {
            return Ok(());
        };
        let fd = listener.as_raw_fd();
        let entry = opcode::AcceptMulti::new(types::Fd(fd))
            .flags(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
            .build()
            .user_data(user_data::encode(Op::Accept, 0, 0));
        self.push(entry)?;
        self.accept_armed = true;
        Ok(())
    }

    fn arm_wake(&mut self) -> io::Result<()> {
        let buf = &mut *self.wake_buf as *mut u64 as *mut u8;
        let entry = opcode::Read::new(types::Fd(self.waker.fd()), buf, 8)
            .build()
            .user_data(user_data::encode(Op::Wake, 0, 0));
        self.push(entry)
    }

    fn arm_recv(&mut self, key: ConnKey, fd: RawFd, generation: u32) -> io::Result<()> {
        let entry = opcode::RecvMulti::new(types::Fd(fd), self.bufs.group())
            .build()
            .user_data(user_data::encode(Op::Recv, key, generation));
        self.push(entry)?;
        self.io[key].recv_armed = true;
        Ok(())
    }

    fn run(&mut self, shard: &mut Shard) -> io::Result<()> {
        loop {
            self.wait(shard)?;
            let now = Instant::now();
            let mut received = self.reap(shard, now)?;
            // Read until nothing more has arrived, as epoll's read-until-EAGAIN does,
            // before anything is flushed: bytes that arrive while the first ones are
            // handled (a publisher's burst of messages, each costing a fan-out) wait
            // as deferred task work until the ring is entered with GETEVENTS. Left for
            // the next iteration, they would miss this round of sends and start a round
            // of their own; under a closed-loop window of K messages the window then
            // stays split over two rounds (half the frames per send) for good.
            let mut rechecks = 0;
            while received && rechecks < MAX_RECHECKS && self.more_pending() {
                self.ring.submit()?;
                received = self.reap(shard, now)?;
                rechecks += 1;
            }
            if self.accept_paused_until.is_some_and(|t| now >= t) {
                self.accept_paused_until = None;
                if !self.accept_armed && !shard.is_shutting_down() {
                    self.arm_accept()?;
                }
            }
            shard.drain_inbox(now);
            shard.expire_timers(now);
            if shard.is_shutting_down() {
                self.stop_accepting()?;
            }
            shard.hand_off();
            self.flush_all(shard, now)?;
            self.close_finished(shard)?;
            for key in std::mem::take(&mut self.rearm) {
                if let Some(slot) = shard.slot(key) {
                    let io = &self.io[key];
                    if slot.conn.phase() != Phase::Closed && !io.recv_armed && !io.recv_paused {
                        let (fd, generation) = (slot.fd, slot.generation);
                        self.arm_recv(key, fd, generation)?;
                    }
                }
            }
            self.bufs.commit();
            // Send now what this iteration queued (sends to sockets with room complete
            // inline), rather than at the next wait: a message received in this
            // iteration leaves in this iteration, as with epoll.
            self.ring.submit()?;
            if shard.is_drained() && !self.accept_armed {
                return Ok(());
            }
        }
    }

    /// Submit what is queued and wait for at least one completion or the next deadline.
    fn wait(&mut self, shard: &Shard) -> io::Result<()> {
        self.waker.arm_sleep();
        let result = if shard.inbox_pending() {
            self.ring.submit()
        } else {
            let now = Instant::now();
            let mut timeout = wait_for(shard, now, IDLE_WAIT);
            if let Some(t) = self.accept_paused_until {
                timeout = timeout.min(t.saturating_duration_since(now));
            }
            let ts = types::Timespec::from(timeout);
            let args = types::SubmitArgs::new().timespec(&ts);
            self.ring.submitter().submit_with_args(1, &args)
        };
        self.waker.awake();
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Whether completions or deferred task work (a recv whose data arrived) wait.
    /// The IORING_SQ_TASKRUN flag (IORING_SETUP_TASKRUN_FLAG) says so without a syscall;
    /// `submit` then enters with GETEVENTS, which runs that work.
    fn more_pending(&mut self) -> bool {
        self.ring.submission().taskrun() || !self.ring.completion().is_empty()
    }

    /// Handle every completion in the queue. Returns whether bytes from a peer were
    /// among them.
    fn reap(&mut self, shard: &mut Shard, now: Instant) -> io::Result<bool> {
        self.cqes.clear();
        self.cqes.extend(
            self.ring
                .completion()
                .map(|c| (c.user_data(), c.result(), c.flags())),
        );
        let cqes = std::mem::take(&mut self.cqes);
        let mut received = false;
        for &(data, res, flags) in &cqes {
            let Some((op, key, generation)) = user_data::decode(data) else {
                continue;
            };
            match op {
                Op::Accept => self.on_accept(shard, res, flags, now)?,
                Op::Wake => self.arm_wake()?,
                Op::Recv => {
                    received |= res > 0;
                    self.on_recv(shard, key, generation, res, flags, now)
                }
                Op::Send => self.on_send(shard, key, generation, res),
                Op::Cancel => {}
            }
        }
        self.cqes = cqes;
        Ok(received)
    }

    fn on_accept(
        &mut self,
        shard: &mut Shard,
        res: i32,
        flags: u32,
        now: Instant,
    ) -> io::Result<()> {
        if !cqueue::more(flags) {
            self.accept_armed = false;
        }
        if res >= 0 {
            let fd = res;
            if shard.is_shutting_down() {
                // SAFETY: fd was just accepted and is owned by nobody else.
                unsafe { libc::close(fd) };
            } else {
                let (key, generation) = shard.open(fd, now);
                if self.io.len() <= key {
                    self.io.resize_with(key + 1, ConnIo::default);
                }
                self.io[key] = ConnIo::default();
                match new_session(&self.tls) {
                    Ok(tls) => {
                        self.io[key].tls = tls;
                        self.arm_recv(key, fd, generation)?;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "TLS session setup failed");
                        shard.finish(key, DisconnectReason::Tls);
                    }
                }
            }
        } else if res != -libc::ECANCELED {
            let e = io::Error::from_raw_os_error(-res);
            if accept_needs_pause(-res) {
                // Re-arming at once would fail again at once (the connection stays in the
                // backlog): pause instead of spinning.
                tracing::warn!(shard = shard.id(), error = %e, pause = ?ACCEPT_PAUSE, "accept failed; pausing accepts");
                self.accept_paused_until = Some(now + ACCEPT_PAUSE);
                if self.accept_armed {
                    self.cancel_accept()?;
                }
            } else {
                tracing::warn!(shard = shard.id(), error = %e, "accept failed");
            }
        }
        if !self.accept_armed && !shard.is_shutting_down() && self.accept_paused_until.is_none() {
            self.arm_accept()?;
        }
        Ok(())
    }

    /// Is this completion for the connection currently in `key`'s slot?
    fn current(shard: &Shard, key: ConnKey, generation: u32) -> bool {
        shard.slot(key).is_some_and(|s| s.generation == generation)
    }

    fn on_recv(
        &mut self,
        shard: &mut Shard,
        key: ConnKey,
        generation: u32,
        res: i32,
        flags: u32,
        now: Instant,
    ) {
        let bid = cqueue::buffer_select(flags);
        if !Self::current(shard, key, generation) {
            if let Some(bid) = bid {
                self.bufs.recycle(bid);
            }
            return;
        }
        let more = cqueue::more(flags);
        if !more {
            self.io[key].recv_armed = false;
            self.io[key].recv_cancelling = false;
        }
        if res > 0 {
            if let Some(bid) = bid {
                if !self.io[key].closing {
                    self.deliver(shard, key, bid, res as usize, now);
                }
                self.bufs.recycle(bid);
            }
            if self.io[key].closing {
                return;
            }
            if !self.may_read(shard, key) {
                self.pause_recv(key, generation);
            } else if !more {
                self.rearm.push(key);
            }
            return;
        }
        if let Some(bid) = bid {
            self.bufs.recycle(bid);
        }
        if self.io[key].closing || more {
            return;
        }
        match -res {
            0 => shard.on_eof(key, now),
            // Our own cancel (backpressure): resume at once if the queue drained since.
            libc::ECANCELED if self.io[key].recv_paused => self.resume_if_allowed(shard, key),
            libc::ENOBUFS | libc::EINTR | libc::EAGAIN if !self.io[key].recv_paused => {
                self.rearm.push(key)
            }
            libc::ENOBUFS | libc::EINTR | libc::EAGAIN => {}
            _ => shard.on_peer_gone(key),
        }
    }

    /// Ask the shard whether `key` may read now (its queue plus TLS ciphertext held).
    fn may_read(&self, shard: &mut Shard, key: ConnKey) -> bool {
        let held = self.io[key].tls.as_ref().map_or(0, |t| t.pending());
        shard.may_read(key, held)
    }

    /// Stop reading `key`: cancel its multishot recv if it is still armed.
    fn pause_recv(&mut self, key: ConnKey, generation: u32) {
        let io = &mut self.io[key];
        io.recv_paused = true;
        if io.recv_armed && !io.recv_cancelling {
            io.recv_cancelling = true;
            let cancel = opcode::AsyncCancel::new(user_data::encode(Op::Recv, key, generation))
                .build()
                .user_data(user_data::encode(Op::Cancel, key, generation));
            // A full submission queue is submitted first; a failure there surfaces at
            // the loop's next submit.
            if let Err(e) = self.push(cancel) {
                tracing::warn!(error = %e, "could not queue a recv cancel");
            }
        }
    }

    /// A paused connection whose recv has stopped may read again: re-arm it.
    fn resume_if_allowed(&mut self, shard: &mut Shard, key: ConnKey) {
        let io = &self.io[key];
        if !io.recv_paused || io.recv_armed || io.closing {
            return;
        }
        if shard
            .slot(key)
            .is_some_and(|s| s.conn.phase() != Phase::Closed)
            && self.may_read(shard, key)
        {
            self.io[key].recv_paused = false;
            self.rearm.push(key);
        }
    }

    /// Hand a received buffer to the shard, through the TLS session for `wss://`.
    fn deliver(&mut self, shard: &mut Shard, key: ConnKey, bid: u16, len: usize, now: Instant) {
        let data = self.bufs.slice(bid, len);
        let Some(tls) = self.io[key].tls.as_deref_mut() else {
            return shard.on_data(key, data, now);
        };
        if deliver_tls(shard, key, tls, data, &mut self.plain, now).wants_flush {
            self.to_flush.push(key);
        }
    }

    fn on_send(&mut self, shard: &mut Shard, key: ConnKey, generation: u32, res: i32) {
        if !Self::current(shard, key, generation) {
            return;
        }
        if std::mem::take(&mut self.io[key].tls_send) {
            if self.io[key].closing {
                return;
            }
            if res < 0 && !send_retryable(res) {
                return shard.on_peer_gone(key);
            }
            if let Some(tls) = self.io[key].tls.as_deref_mut() {
                tls.advance(res.max(0) as usize);
            }
            self.to_flush.push(key);
            return;
        }
        if let Some(mut batch) = self.io[key].send.take() {
            batch.clear();
            if self.pool.len() < BATCH_POOL {
                self.pool.push(batch);
            }
        }
        if self.io[key].closing {
            return;
        }
        shard.set_in_flight(key, 0);
        if res >= 0 {
            shard.on_written(key, res as usize);
            self.to_flush.push(key);
        } else if send_retryable(res) {
            // Nothing was written: send the same bytes again.
            self.to_flush.push(key);
        } else {
            shard.on_peer_gone(key);
        }
    }

    fn cancel_accept(&mut self) -> io::Result<()> {
        let cancel = opcode::AsyncCancel::new(user_data::encode(Op::Accept, 0, 0))
            .build()
            .user_data(user_data::encode(Op::Cancel, 0, 0));
        self.push(cancel)
    }

    fn stop_accepting(&mut self) -> io::Result<()> {
        if self.listener.is_none() {
            return Ok(());
        }
        if self.accept_armed {
            self.cancel_accept()?;
            self.ring.submit()?;
        }
        // The accept op holds its own reference to the socket; closing our fd is safe.
        self.listener = None;
        Ok(())
    }

    fn flush_all(&mut self, shard: &mut Shard, now: Instant) -> io::Result<()> {
        let mut keys = std::mem::take(&mut self.to_flush);
        let mut dirty = Vec::new();
        shard.take_dirty(&mut dirty);
        keys.append(&mut dirty);
        for &key in &keys {
            self.flush(shard, key, now)?;
            if self.io.get(key).is_some_and(|io| io.recv_paused) {
                self.resume_if_allowed(shard, key);
            }
        }
        keys.clear();
        self.to_flush = keys;
        Ok(())
    }

    /// Start a send of everything queued, unless one is already in flight.
    fn flush(&mut self, shard: &mut Shard, key: ConnKey, now: Instant) -> io::Result<()> {
        let Some(slot) = shard.slot(key) else {
            return Ok(());
        };
        let io = &self.io[key];
        if io.send.is_some() || io.tls_send || io.closing || slot.conn.phase() == Phase::Closed {
            return Ok(());
        }
        if io.tls.is_some() {
            return self.flush_tls(shard, key, now);
        }
        let (fd, generation) = (slot.fd, slot.generation);
        if slot.conn.out.is_empty() {
            match shard.after_flush(key, now) {
                // SAFETY: fd is an open socket owned by this slot.
                AfterFlush::ShutdownWrite => unsafe {
                    libc::shutdown(fd, libc::SHUT_WR);
                },
                AfterFlush::Close => shard.finish_flushed(key),
                AfterFlush::Idle => {}
            }
            return Ok(());
        }
        let mut batch = self.pool.pop().unwrap_or_default();
        batch.fill(&slot.conn.out);
        let frames = batch.frames();
        // One contiguous piece (the common case: small frames copied together, or a lone
        // frame) goes as a plain send, which skips sendmsg's header and iovec import.
        let entry = match batch.single() {
            Some((ptr, len)) => opcode::Send::new(types::Fd(fd), ptr, len as u32)
                .flags(libc::MSG_NOSIGNAL)
                .build(),
            None => opcode::SendMsg::new(types::Fd(fd), batch.msghdr())
                .flags(libc::MSG_NOSIGNAL as u32)
                .build(),
        }
        .user_data(user_data::encode(Op::Send, key, generation));
        // The batch (and the msghdr inside its Box) must stay put until the completion,
        // and the frames it covers must stay queued.
        self.io[key].send = Some(batch);
        shard.set_in_flight(key, frames);
        self.push(entry)
    }

    /// [`flush`](Self::flush) for `wss://`: encrypt a batch and start its send.
    fn flush_tls(&mut self, shard: &mut Shard, key: ConnKey, now: Instant) -> io::Result<()> {
        let Some(slot) = shard.slot(key) else {
            return Ok(());
        };
        let (fd, generation) = (slot.fd, slot.generation);
        let Some(tls) = self.io[key].tls.as_deref_mut() else {
            return Ok(());
        };
        match tls_next_step(shard, key, tls, now) {
            TlsStep::Send(ptr, len) => {
                self.io[key].tls_send = true;
                self.push_tls_send(key, fd, generation, ptr, len)
            }
            TlsStep::ShutdownWrite => {
                // SAFETY: fd is an open socket owned by this slot.
                unsafe { libc::shutdown(fd, libc::SHUT_WR) };
                Ok(())
            }
            TlsStep::Idle => Ok(()),
        }
    }

    /// Send `len` bytes of a TLS session's pending ciphertext (at most one batch plus
    /// record overhead, so it fits the op's u32 length). The session keeps them
    /// unmoved until the completion clears `tls_send`.
    fn push_tls_send(
        &mut self,
        key: ConnKey,
        fd: RawFd,
        generation: u32,
        ptr: *const u8,
        len: usize,
    ) -> io::Result<()> {
        let entry = opcode::Send::new(types::Fd(fd), ptr, len as u32)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(user_data::encode(Op::Send, key, generation));
        self.push(entry)
    }

    fn close_finished(&mut self, shard: &mut Shard) -> io::Result<()> {
        let mut newly = Vec::new();
        shard.take_finished(&mut newly);
        for key in newly {
            let Some(slot) = shard.slot(key) else {
                continue;
            };
            let (fd, generation) = (slot.fd, slot.generation);
            self.io[key].closing = true;
            if !self.io[key].tls_send {
                if let Some(tls) = self.io[key].tls.as_deref_mut() {
                    // Best effort, queued before the cancel: the close_notify or alert.
                    let (_, bytes) = tls.next_send(&slot.conn.out);
                    let (ptr, len) = (bytes.as_ptr(), bytes.len());
                    if len > 0 {
                        self.io[key].tls_send = true;
                        self.push_tls_send(key, fd, generation, ptr, len)?;
                    }
                }
            }
            if !self.io[key].idle() {
                let cancel =
                    opcode::AsyncCancel2::new(types::CancelBuilder::fd(types::Fd(fd)).all())
                        .build()
                        .user_data(user_data::encode(Op::Cancel, key, generation));
                self.push(cancel)?;
            }
            self.finished.push(key);
        }
        // Free those with no op in flight; the rest wait for their completions.
        let mut finished = std::mem::take(&mut self.finished);
        finished.retain(|&key| {
            if !self.io[key].idle() {
                return true;
            }
            if let Some(slot) = shard.slot(key) {
                // SAFETY: no op references this fd any more; it is closed exactly once.
                unsafe { libc::close(slot.fd) };
            }
            self.io[key] = ConnIo::default();
            shard.release(key);
            false
        });
        self.finished = finished;
        Ok(())
    }
}

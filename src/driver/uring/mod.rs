//! The io_uring backend of the [`EventLoop`]: submits and collects I/O only.
//!
//! Per shard: one ring (`SINGLE_ISSUER | DEFER_TASKRUN` when the kernel has them, else
//! `COOP_TASKRUN`, else plain), one multishot accept on the shard's listener, one
//! multishot recv per connection drawing from the shard's provided [`BufRing`], at
//! most one `send`/`sendmsg` in flight per connection carrying everything queued
//! ([`SendBatch`], kept boxed and unmoved until its completion, taken from and given
//! back to a per-shard pool trimmed once idle), and a read on the shard's wake-up
//! eventfd. Connection sockets sit in the ring's sparse fixed-file table (Linux 5.19+;
//! plain fds when the kernel refuses), so ops skip the per-op fd lookup. What is queued
//! is submitted at the end of the loop's iteration ([`IoBackend::submit`]) or when it
//! waits, and every [`SUBMIT_SENDS_EVERY`] queue sends during a flush: a send to a
//! socket with room completes inline at submit, so its completion is reaped there and
//! its batch goes back to the pool at once (the completion itself is handed to the
//! loop at the next [`IoBackend::collect`], in ring order). The next sends then refill
//! batches still in cache, and the kernel copies from memory just written, as epoll's
//! `sendmsg` right after the fill does; submitted all at once at the end, a 10k-member
//! round wrote ~10 MiB of batches before the kernel read the first (profile addendum 3
//! in bench-results/profile-2026-11-30.md).
//!
//! A multishot op whose completion lacks `IORING_CQE_F_MORE` has stopped (EOF, error,
//! or `-ENOBUFS` when the buffer ring ran dry): the loop re-arms a stopped recv if the
//! connection lives; the accept is re-armed at the next submit unless accepting is
//! paused or stopped. A finished connection's ops are cancelled
//! ([`IoBackend::cancel`]); it is idle, so its socket may be closed and its slot freed,
//! only when no op is in flight and no completion reaped early waits to be reported.
//! `user_data` carries the low 24 bits of the slot's generation ([`user_data`]): a
//! completion for an earlier occupant of a reused slot is recognised here and dropped
//! (its buffer recycled).
//!
//! Read-side backpressure ([`IoBackend::pause_read`]) cancels the multishot recv;
//! buffers the kernel already filled are still delivered (at most what was in flight),
//! then the cancelled recv's last completion ([`ReadEnd::Cancelled`]). A recv
//! completion of 0 is the peer's EOF, not an error. [`IoBackend::poll_more`] tells
//! without a syscall (IORING_SQ_TASKRUN) whether input arrived while the last batch
//! was handled.

mod bufring;
mod user_data;

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, squeue, types, IoUring};

use crate::conn::OutQueue;
use crate::driver::batch::SendBatch;
use crate::driver::event_loop::{Buf, Event, IoBackend, Read, ReadEnd, SendDone, SendStart};
use crate::driver::DriverConfig;
use crate::hub::ConnKey;
use crate::sys::Waker;

use bufring::BufRing;
use user_data::Op;

const BUFFER_GROUP: u16 = 0;
/// Most connection sockets registered as fixed files per shard (the kernel also caps
/// the table at RLIMIT_NOFILE); connections on slots beyond it use plain fds.
const MAX_FIXED_FILES: u32 = 65536;
/// How often the send-batch pool is trimmed to what the last period needed.
const POOL_TRIM_EVERY: Duration = Duration::from_secs(1);
/// Batches freed at one trim from which the allocator is asked to give its free pages
/// back to the kernel (a fan-out's batches are freed in bulk when it stops).
const TRIM_RETURNS_MEMORY: usize = 256;
/// Queue sends pushed during a flush before they are submitted (and their inline
/// completions reaped): 32 batches of a 16-frame round are ~34 KiB, within L2.
const SUBMIT_SENDS_EVERY: usize = 32;

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

/// Run `$body` with `$t` bound to the connection's socket as an op target: its slot
/// `$key` in the ring's fixed-file table when `$fixed`, else the raw fd `$fd`.
macro_rules! with_target {
    ($fixed:expr, $key:expr, $fd:expr, |$t:ident| $body:expr) => {
        if $fixed {
            let $t = types::Fixed($key as u32);
            $body
        } else {
            let $t = types::Fd($fd);
            $body
        }
    };
}

/// Register a sparse fixed-file table (Linux 5.19+: IORING_RSRC_REGISTER_SPARSE) of
/// min(RLIMIT_NOFILE, [`MAX_FIXED_FILES`]) slots. Returns its size, 0 when the kernel
/// refuses (connections then use plain fds).
fn register_file_table(ring: &IoUring) -> u32 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only into `lim`, a valid rlimit.
    let n = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur.min(MAX_FIXED_FILES as u64) as u32
    } else {
        1024
    };
    match ring.submitter().register_files_sparse(n) {
        Ok(()) => n,
        Err(e) => {
            tracing::debug!(error = %e, "no fixed-file table; connections use plain fds");
            0
        }
    }
}

/// A send completion that is no failure of the connection: -EAGAIN (io_uring returns it
/// for a non-blocking socket when a send it already polled for once still finds the
/// socket full: it hands the op to a worker, whose attempt fails at once; seen here
/// with a 16 KiB SO_SNDBUF, and it used to drop the connection's queue) or -EINTR.
/// The same bytes are sent again: a fresh op waits for writability again.
fn send_retryable(res: i32) -> bool {
    res == -libc::EAGAIN || res == -libc::EINTR
}

/// The ops of one connection, indexed by slot key.
#[derive(Default)]
struct ConnOps {
    /// The slot's generation when the connection was registered.
    generation: u32,
    recv_armed: bool,
    /// A cancel of the recv was submitted and its last completion has not come yet.
    recv_cancelling: bool,
    /// The batch of the queue send in flight (boxed: its msghdr must not move).
    batch: Option<Box<SendBatch>>,
    /// A send's completion was reaped early (its batch is back in the pool) and is not
    /// yet handed to the loop.
    sent_unreported: bool,
    /// A send of raw bytes (TLS ciphertext) is in flight.
    bytes_in_flight: bool,
    /// The socket sits in the ring's fixed-file table at the slot's key: ops name it
    /// by index, sparing the kernel an fd lookup and reference count per op.
    fixed: bool,
}

impl ConnOps {
    /// An op of this connection is in the kernel (there is something to cancel).
    fn in_flight(&self) -> bool {
        self.recv_armed || self.batch.is_some() || self.bytes_in_flight
    }

    /// Nothing in flight and no completion held back for the loop.
    fn idle(&self) -> bool {
        !self.in_flight() && !self.sent_unreported
    }
}

/// The io_uring backend of one shard.
pub(crate) struct Uring {
    // Field order matters for drop: the ring goes before the buffer memory.
    ring: IoUring,
    bufs: BufRing,
    listener: Option<socket2::Socket>,
    accept_armed: bool,
    /// Accepting is paused (out of fds or memory): do not re-arm the accept.
    accept_paused: bool,
    waker: Arc<Waker>,
    wake_buf: Box<u64>,
    /// Slots in the ring's fixed-file table (0: none).
    fixed_files: u32,
    ops: Vec<ConnOps>,
    /// Completions copied out of the ring and not yet handed to the loop (user_data,
    /// result, flags): those reaped early by [`Uring::submit_sends`], in ring order.
    cqes: Vec<(u64, i32, u32)>,
    /// Queue sends pushed since the last submit.
    sends_unsubmitted: usize,
    /// The shard's send-batch pool: a queue send takes a batch, its completion gives it
    /// back. Kept as large as the most sends in flight during the last trim period, so
    /// a steady fan-out allocates nothing; trimmed (and its memory freed) once idle.
    // Boxed: a batch's msghdr must not move while its send is in flight.
    #[allow(clippy::vec_box)]
    pool: Vec<Box<SendBatch>>,
    /// Queue sends in flight now, and the most since the last trim.
    batches_out: usize,
    batches_peak: usize,
    last_trim: Instant,
    /// Sends (queue and TLS) made in the current trim period, and whether the last
    /// period made any: the period after the traffic stops returns freed memory.
    sends_this_period: usize,
    sent_last_period: bool,
}

impl Drop for Uring {
    fn drop(&mut self) {
        let _ = self.ring.submitter().unregister_buf_ring(self.bufs.group());
    }
}

impl Uring {
    /// Set up the backend for a shard: its listener (accepting starts at once) and
    /// its wake-up eventfd.
    pub(crate) fn new(
        cfg: &DriverConfig,
        listener: socket2::Socket,
        waker: Arc<Waker>,
    ) -> io::Result<Self> {
        let ring = build_ring(cfg.uring_entries)?;
        let bufs = BufRing::register(&ring, cfg.recv_buffers, cfg.recv_buffer_size, BUFFER_GROUP)?;
        let fixed_files = register_file_table(&ring);
        let mut u = Uring {
            ring,
            fixed_files,
            bufs,
            listener: Some(listener),
            accept_armed: false,
            accept_paused: false,
            waker,
            wake_buf: Box::new(0),
            ops: Vec::new(),
            cqes: Vec::with_capacity(1024),
            sends_unsubmitted: 0,
            pool: Vec::new(),
            batches_out: 0,
            batches_peak: 0,
            last_trim: Instant::now(),
            sends_this_period: 0,
            sent_last_period: false,
        };
        u.arm_accept()?;
        u.arm_wake()?;
        Ok(u)
    }

    /// Queue an SQE, submitting first if the queue is full.
    fn push(&mut self, entry: squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: every buffer an entry points to (wake_buf, send batches and their
            // msghdr/iovecs, TLS ciphertext the loop keeps unmoved, the buffer ring) is
            // owned by `self`, the loop or a connection slot and stays alive and
            // unmoved until the op's completion is reaped.
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

    fn cancel_accept(&mut self) -> io::Result<()> {
        let cancel = opcode::AsyncCancel::new(user_data::encode(Op::Accept, 0, 0))
            .build()
            .user_data(user_data::encode(Op::Cancel, 0, 0));
        self.push(cancel)
    }

    fn arm_wake(&mut self) -> io::Result<()> {
        let buf = &mut *self.wake_buf as *mut u64 as *mut u8;
        let entry = opcode::Read::new(types::Fd(self.waker.fd()), buf, 8)
            .build()
            .user_data(user_data::encode(Op::Wake, 0, 0));
        self.push(entry)
    }

    fn arm_recv(&mut self, key: ConnKey, fd: RawFd) -> io::Result<()> {
        let group = self.bufs.group();
        let entry = with_target!(self.ops[key].fixed, key, fd, |t| {
            opcode::RecvMulti::new(t, group).build()
        })
        .user_data(user_data::encode(Op::Recv, key, self.ops[key].generation));
        self.push(entry)?;
        self.ops[key].recv_armed = true;
        Ok(())
    }

    /// The ops of `key` if a completion carrying `generation` is for its current
    /// occupant.
    fn current(&mut self, key: ConnKey, generation: u32) -> Option<&mut ConnOps> {
        self.ops
            .get_mut(key)
            .filter(|ops| user_data::same_generation(ops.generation, generation))
    }

    fn on_recv(&mut self, key: ConnKey, generation: u32, res: i32, flags: u32) -> Option<Event> {
        let bid = cqueue::buffer_select(flags);
        let more = cqueue::more(flags);
        let Some(ops) = self.current(key, generation) else {
            if let Some(bid) = bid {
                self.bufs.recycle(bid);
            }
            return None;
        };
        if !more {
            ops.recv_armed = false;
            ops.recv_cancelling = false;
        }
        match (res, bid) {
            (1.., Some(id)) => {
                let buf = Buf {
                    id,
                    len: res as usize,
                };
                return Some(Event::Received { key, buf, more });
            }
            (_, Some(bid)) => self.bufs.recycle(bid),
            (_, None) => {}
        }
        if more {
            return None;
        }
        let why = match -res {
            0 => ReadEnd::Eof,
            libc::ECANCELED => ReadEnd::Cancelled,
            // Bytes without a buffer cannot happen with buffer select; read again.
            libc::ENOBUFS | libc::EINTR | libc::EAGAIN | ..0 => ReadEnd::Retry,
            errno => ReadEnd::Failed(errno),
        };
        Some(Event::ReadEnded { key, why })
    }

    fn on_send(&mut self, key: ConnKey, generation: u32, res: i32) -> Option<Event> {
        let ops = self.current(key, generation)?;
        ops.bytes_in_flight = false;
        ops.sent_unreported = false;
        if let Some(mut batch) = ops.batch.take() {
            batch.clear();
            self.pool.push(batch);
            self.batches_out -= 1;
        }
        let done = if res >= 0 {
            SendDone::Wrote(res as usize)
        } else if send_retryable(res) {
            SendDone::Retry
        } else {
            SendDone::Failed(-res)
        };
        Some(Event::Sent { key, done })
    }

    /// Once per [`POOL_TRIM_EVERY`]: keep only as many pooled batches as the period's
    /// peak of sends in flight needed on top of those out now (none once idle). Asks
    /// the allocator to return its free pages when many batches went at once, or when
    /// the traffic just stopped (a period with sends, then one without: what the
    /// fan-out's queues and batches allocated is free by then, as epoll's
    /// [`crate::sys::IdleTrim`] does).
    fn trim_pool(&mut self) {
        let now = Instant::now();
        if now.duration_since(self.last_trim) < POOL_TRIM_EVERY {
            return;
        }
        self.last_trim = now;
        let stopped = self.sent_last_period && self.sends_this_period == 0;
        self.sent_last_period = self.sends_this_period > 0;
        self.sends_this_period = 0;
        let keep = self.batches_peak.saturating_sub(self.batches_out);
        let mut freed = 0;
        if self.pool.len() > keep {
            freed = self.pool.len() - keep;
            self.pool.truncate(keep);
            self.pool.shrink_to_fit();
        }
        if freed >= TRIM_RETURNS_MEMORY || stopped {
            crate::sys::return_freed_memory();
        }
        self.batches_peak = self.batches_out;
    }

    /// Submit what is queued and copy the completions out of the ring for the next
    /// [`IoBackend::collect`]; a queue send's batch goes back to the pool now (the
    /// kernel is done with it once its completion is posted).
    fn submit_sends(&mut self) -> io::Result<()> {
        self.sends_unsubmitted = 0;
        match self.ring.submit() {
            Ok(_) => {}
            // Not submitted now (interrupted, or the kernel is short of room for
            // completions): the SQEs stay queued for the end of the iteration.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EINTR) | Some(libc::EBUSY) | Some(libc::EAGAIN)
                ) => {}
            Err(e) => return Err(e),
        }
        let start = self.cqes.len();
        self.cqes.extend(
            self.ring
                .completion()
                .map(|c| (c.user_data(), c.result(), c.flags())),
        );
        for i in start..self.cqes.len() {
            let Some((Op::Send, key, generation)) = user_data::decode(self.cqes[i].0) else {
                continue;
            };
            let Some(ops) = self.current(key, generation) else {
                continue;
            };
            if let Some(mut batch) = ops.batch.take() {
                ops.sent_unreported = true;
                batch.clear();
                self.pool.push(batch);
                self.batches_out -= 1;
            }
        }
        Ok(())
    }

    fn push_send(&mut self, key: ConnKey, fd: RawFd, ptr: *const u8, len: usize) -> io::Result<()> {
        let entry = with_target!(self.ops[key].fixed, key, fd, |t| {
            opcode::Send::new(t, ptr, len as u32)
                .flags(libc::MSG_NOSIGNAL)
                .build()
        })
        .user_data(user_data::encode(Op::Send, key, self.ops[key].generation));
        self.push(entry)
    }
}

impl IoBackend for Uring {
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.trim_pool();
        self.sends_unsubmitted = 0;
        // Completions reaped early are waiting to be collected: do not sleep.
        let timeout = timeout.filter(|_| self.cqes.is_empty());
        let result = match timeout {
            None => self.ring.submit(),
            Some(timeout) => {
                let ts = types::Timespec::from(timeout);
                let args = types::SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
            }
        };
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

    fn collect(&mut self, events: &mut Vec<Event>) -> io::Result<()> {
        // Copied out first (after those reaped early): handling a completion may queue an
        // SQE (a re-armed read).
        let mut cqes = std::mem::take(&mut self.cqes);
        cqes.extend(
            self.ring
                .completion()
                .map(|c| (c.user_data(), c.result(), c.flags())),
        );
        for &(data, res, flags) in &cqes {
            let Some((op, key, generation)) = user_data::decode(data) else {
                continue;
            };
            let event = match op {
                Op::Accept => {
                    if !cqueue::more(flags) {
                        self.accept_armed = false;
                    }
                    if res >= 0 {
                        // SAFETY: a fresh fd the kernel just accepted, owned by no one else.
                        Some(Event::Accepted(unsafe { OwnedFd::from_raw_fd(res) }))
                    } else if res != -libc::ECANCELED {
                        Some(Event::AcceptFailed(-res))
                    } else {
                        None
                    }
                }
                Op::Wake => {
                    self.arm_wake()?;
                    None
                }
                Op::Recv => self.on_recv(key, generation, res, flags),
                Op::Send => self.on_send(key, generation, res),
                Op::Cancel => None,
            };
            events.extend(event);
        }
        debug_assert!(
            self.cqes.is_empty(),
            "nothing reaps while completions are handled"
        );
        cqes.clear();
        self.cqes = cqes;
        Ok(())
    }

    fn poll_more(&mut self) -> io::Result<bool> {
        // IORING_SQ_TASKRUN (IORING_SETUP_TASKRUN_FLAG) says without a syscall whether
        // deferred task work (a recv whose data arrived) waits; entering the ring with
        // GETEVENTS runs it.
        if self.ring.submission().taskrun() || !self.ring.completion().is_empty() {
            self.sends_unsubmitted = 0;
            self.ring.submit()?;
            return Ok(true);
        }
        Ok(false)
    }

    fn register(&mut self, key: ConnKey, fd: RawFd, generation: u32) -> io::Result<()> {
        if self.ops.len() <= key {
            self.ops.resize_with(key + 1, ConnOps::default);
        }
        // A failed table update (ENOMEM) leaves the connection on its plain fd.
        let fixed = (key as u64) < u64::from(self.fixed_files)
            && self
                .ring
                .submitter()
                .register_files_update(key as u32, &[fd])
                .is_ok();
        self.ops[key] = ConnOps {
            generation,
            fixed,
            ..ConnOps::default()
        };
        self.arm_recv(key, fd)
    }

    fn read(&mut self, _fd: RawFd) -> Read {
        Read::Blocked
    }

    fn bytes(&self, buf: Buf) -> &[u8] {
        self.bufs.slice(buf.id, buf.len)
    }

    fn recycle(&mut self, buf: Buf) {
        self.bufs.recycle(buf.id);
    }

    fn pause_read(&mut self, key: ConnKey) {
        let Some(ops) = self.ops.get_mut(key) else {
            return;
        };
        if !ops.recv_armed || ops.recv_cancelling {
            return;
        }
        ops.recv_cancelling = true;
        let generation = ops.generation;
        let cancel = opcode::AsyncCancel::new(user_data::encode(Op::Recv, key, generation))
            .build()
            .user_data(user_data::encode(Op::Cancel, key, generation));
        // A full submission queue is submitted first; a failure there surfaces at the
        // loop's next submit.
        if let Err(e) = self.push(cancel) {
            tracing::warn!(error = %e, "could not queue a recv cancel");
        }
    }

    fn reading(&self, key: ConnKey) -> bool {
        self.ops.get(key).is_some_and(|ops| ops.recv_armed)
    }

    fn resume_read(&mut self, key: ConnKey, fd: RawFd) -> io::Result<()> {
        if self.reading(key) {
            return Ok(());
        }
        self.arm_recv(key, fd)
    }

    fn send_queue(&mut self, key: ConnKey, fd: RawFd, queue: &OutQueue) -> io::Result<SendStart> {
        let mut batch = self.pool.pop().unwrap_or_default();
        batch.fill(queue);
        let frames = batch.frames();
        // One contiguous piece (the common case: small frames copied together, or a lone
        // frame) goes as a plain send, which skips sendmsg's header and iovec import.
        let entry = with_target!(self.ops[key].fixed, key, fd, |t| match batch.single() {
            Some((ptr, len)) => opcode::Send::new(t, ptr, len as u32)
                .flags(libc::MSG_NOSIGNAL)
                .build(),
            None => opcode::SendMsg::new(t, batch.msghdr())
                .flags(libc::MSG_NOSIGNAL as u32)
                .build(),
        })
        .user_data(user_data::encode(Op::Send, key, self.ops[key].generation));
        // The batch (and the msghdr inside its Box) must stay put until the completion,
        // and the frames it covers must stay queued (the loop marks them in flight).
        self.ops[key].batch = Some(batch);
        self.batches_out += 1;
        self.batches_peak = self.batches_peak.max(self.batches_out);
        self.push(entry)?;
        self.sends_this_period += 1;
        self.sends_unsubmitted += 1;
        if self.sends_unsubmitted >= SUBMIT_SENDS_EVERY {
            self.submit_sends()?;
        }
        Ok(SendStart::InFlight { frames })
    }

    unsafe fn send_bytes(
        &mut self,
        key: ConnKey,
        fd: RawFd,
        ptr: *const u8,
        len: usize,
    ) -> io::Result<SendStart> {
        // At most one batch plus TLS record overhead: fits the op's u32 length.
        self.ops[key].bytes_in_flight = true;
        self.sends_this_period += 1;
        self.push_send(key, fd, ptr, len)?;
        Ok(SendStart::InFlight { frames: 0 })
    }

    fn cancel(&mut self, key: ConnKey, fd: RawFd) -> io::Result<()> {
        if !self.ops.get(key).is_some_and(ConnOps::in_flight) {
            return Ok(());
        }
        let cancel = with_target!(self.ops[key].fixed, key, fd, |t| {
            opcode::AsyncCancel2::new(types::CancelBuilder::fd(t).all()).build()
        })
        .user_data(user_data::encode(Op::Cancel, key, self.ops[key].generation));
        self.push(cancel)
    }

    fn idle(&self, key: ConnKey) -> bool {
        self.ops.get(key).is_none_or(ConnOps::idle)
    }

    fn release(&mut self, key: ConnKey, fd: RawFd) {
        // The table holds its own reference to the socket: drop it first, or the close
        // below would not close the connection.
        if self.ops.get(key).is_some_and(|ops| ops.fixed) {
            if let Err(e) = self
                .ring
                .submitter()
                .register_files_update(key as u32, &[-1])
            {
                tracing::warn!(error = %e, "could not clear a fixed-file slot");
            }
        }
        // SAFETY: no op references this fd any more (idle); it is closed exactly once.
        unsafe { libc::close(fd) };
        if let Some(ops) = self.ops.get_mut(key) {
            *ops = ConnOps::default();
        }
    }

    fn hand_over(&mut self, key: ConnKey, fd: RawFd) -> OwnedFd {
        // Out of the fixed-file table, like `release`, but the socket stays open.
        if self.ops.get(key).is_some_and(|ops| ops.fixed) {
            if let Err(e) = self
                .ring
                .submitter()
                .register_files_update(key as u32, &[-1])
            {
                tracing::warn!(error = %e, "could not clear a fixed-file slot");
            }
        }
        if let Some(ops) = self.ops.get_mut(key) {
            *ops = ConnOps::default();
        }
        // SAFETY: no op references this fd any more (idle) and the slot forgets it; the
        // returned owner is its only one from now on.
        unsafe { OwnedFd::from_raw_fd(fd) }
    }

    fn pause_accept(&mut self) -> io::Result<()> {
        self.accept_paused = true;
        if self.accept_armed {
            self.cancel_accept()?;
        }
        Ok(())
    }

    fn resume_accept(&mut self) {
        self.accept_paused = false;
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

    fn submit(&mut self) -> io::Result<()> {
        if !self.accept_armed && !self.accept_paused {
            self.arm_accept()?;
        }
        self.bufs.commit();
        // Send now what this iteration queued (sends to sockets with room complete
        // inline), rather than at the next wait: a message received in this iteration
        // leaves in this iteration, as with epoll.
        self.sends_unsubmitted = 0;
        self.ring.submit().map(drop)
    }

    fn quiescent(&self) -> bool {
        !self.accept_armed
    }
}

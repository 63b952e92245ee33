//! The epoll backend of the [`EventLoop`]: edge-triggered readiness, one scratch read
//! buffer per shard.
//!
//! [`IoBackend::wait`] is one `epoll_wait` (the loop's timeout rounded up to whole
//! milliseconds, so it never wakes just before a deadline); [`IoBackend::collect`]
//! turns what it returned into events: the listener's readiness into accepts (until
//! EAGAIN), a connection's into [`Event::Readable`] / [`Event::Writable`], the wake-up
//! eventfd's into nothing but a drain. Reads and sends are synchronous syscalls the
//! loop makes through [`IoBackend::read`] (into the scratch buffer, until EAGAIN) and
//! [`IoBackend::send_queue`] (one `sendmsg` per batch of queued frames, until EAGAIN:
//! then the loop waits for EPOLLOUT). A read of 0 is the peer's EOF, not an error.
//!
//! Read-side backpressure: the loop stops reading a paused connection, and
//! edge-triggered readiness will not report the input already waiting again; so a
//! resumed connection ([`IoBackend::resume_read`]) is reported readable at the next
//! iteration's start, and the wait does not block while such reads are due.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use crate::conn::OutQueue;
use crate::driver::batch::SendBatch;
use crate::driver::event_loop::{Buf, Event, IoBackend, Read, SendStart};
use crate::driver::DriverConfig;
use crate::hub::ConnKey;
use crate::sys::{IdleTrim, Waker};

const LISTENER: u64 = u64::MAX;
const WAKER: u64 = u64::MAX - 1;
const MAX_EVENTS: usize = 1024;

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

/// The errno of the last failed syscall.
fn errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// What a `send`/`sendmsg` result means; None: interrupted (EINTR), send again. A
/// short write means the socket is (nearly) full: the next call says EAGAIN, which
/// makes the loop wait for EPOLLOUT.
fn send_result(n: isize) -> Option<SendStart> {
    if n >= 0 {
        return Some(SendStart::Written(n as usize));
    }
    match errno() {
        libc::EAGAIN => Some(SendStart::Blocked),
        libc::EINTR => None,
        e => Some(SendStart::Failed(e)),
    }
}

/// The epoll backend of one shard.
pub(crate) struct Epoll {
    epfd: OwnedFd,
    listener: Option<socket2::Socket>,
    waker: Arc<Waker>,
    scratch: Vec<u8>,
    batch: SendBatch,
    /// What the last `epoll_wait` returned: `ready[..n_ready]`.
    ready: Vec<libc::epoll_event>,
    n_ready: usize,
    /// The generation each registered connection's token carries (None: not
    /// registered), so readiness for an earlier occupant of a slot is dropped.
    generations: Vec<Option<u32>>,
    /// Paused connections allowed to read again: readable at the next collect.
    resume: Vec<(ConnKey, u32)>,
    /// Gives the memory a fan-out's queues allocated back once the sends stop.
    idle_trim: IdleTrim,
}

impl Epoll {
    /// Set up the backend for a shard: its listener (accepting starts at once) and
    /// its wake-up eventfd.
    pub(crate) fn new(
        cfg: &DriverConfig,
        listener: socket2::Socket,
        waker: Arc<Waker>,
    ) -> io::Result<Self> {
        // SAFETY: plain syscall with a flag argument.
        let epfd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        let ep = Epoll {
            // SAFETY: epfd was just returned by epoll_create1 and is owned by no one else.
            epfd: unsafe { OwnedFd::from_raw_fd(epfd) },
            listener: None,
            waker,
            scratch: vec![0; cfg.recv_buffer_size.max(64 * 1024)],
            batch: SendBatch::default(),
            ready: vec![libc::epoll_event { events: 0, u64: 0 }; MAX_EVENTS],
            n_ready: 0,
            generations: Vec::new(),
            resume: Vec::new(),
            idle_trim: IdleTrim::new(Duration::from_secs(1)),
        };
        ep.ctl(
            libc::EPOLL_CTL_ADD,
            listener.as_raw_fd(),
            LISTENER,
            libc::EPOLLIN as u32,
        )?;
        ep.ctl(
            libc::EPOLL_CTL_ADD,
            ep.waker.fd(),
            WAKER,
            (libc::EPOLLIN | libc::EPOLLET) as u32,
        )?;
        Ok(Epoll {
            listener: Some(listener),
            ..ep
        })
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, data: u64, events: u32) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: data };
        // SAFETY: epfd and fd are open; ev is a valid epoll_event.
        cvt(unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), op, fd, &mut ev) }).map(drop)
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

    /// Accept until EAGAIN or an error the loop must hear of.
    fn accept(&mut self, events: &mut Vec<Event>) {
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
            if fd >= 0 {
                // SAFETY: a fresh fd the kernel just accepted, owned by no one else.
                events.push(Event::Accepted(unsafe { OwnedFd::from_raw_fd(fd) }));
                continue;
            }
            match errno() {
                libc::EAGAIN => return,
                libc::EINTR | libc::ECONNABORTED => continue,
                // The rest stay in the backlog; the loop decides whether to pause.
                e => return events.push(Event::AcceptFailed(e)),
            }
        }
    }

    /// Is `key` registered under the generation a token or resume entry carries?
    fn current(&self, key: ConnKey, generation: u32) -> bool {
        self.generations.get(key) == Some(&Some(generation))
    }
}

impl IoBackend for Epoll {
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.idle_trim.tick();
        let ms = match timeout {
            Some(d) if self.resume.is_empty() => {
                // Round up so we never wake just before a deadline.
                d.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32
            }
            _ => 0,
        };
        // SAFETY: ready has MAX_EVENTS valid entries for the kernel to fill.
        let n = unsafe {
            libc::epoll_wait(
                self.epfd.as_raw_fd(),
                self.ready.as_mut_ptr(),
                MAX_EVENTS as i32,
                ms,
            )
        };
        self.n_ready = n.max(0) as usize;
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        Ok(())
    }

    fn collect(&mut self, events: &mut Vec<Event>) -> io::Result<()> {
        for i in 0..std::mem::take(&mut self.n_ready) {
            let libc::epoll_event {
                events: flags,
                u64: data,
            } = self.ready[i];
            match data {
                LISTENER => self.accept(events),
                WAKER => {
                    self.waker.drain()?;
                }
                _ => {
                    let key = (data & 0xFFFF_FFFF) as ConnKey;
                    if !self.current(key, (data >> 32) as u32) {
                        continue;
                    }
                    let readable =
                        libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR;
                    if flags & readable as u32 != 0 {
                        events.push(Event::Readable(key));
                    }
                    if flags & libc::EPOLLOUT as u32 != 0 {
                        events.push(Event::Writable(key));
                    }
                }
            }
        }
        for (key, generation) in std::mem::take(&mut self.resume) {
            if self.current(key, generation) {
                events.push(Event::Readable(key));
            }
        }
        Ok(())
    }

    fn poll_more(&mut self) -> io::Result<bool> {
        Ok(false)
    }

    fn register(&mut self, key: ConnKey, fd: RawFd, generation: u32) -> io::Result<()> {
        let interest = libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET;
        self.ctl(
            libc::EPOLL_CTL_ADD,
            fd,
            token(key, generation),
            interest as u32,
        )?;
        if self.generations.len() <= key {
            self.generations.resize(key + 1, None);
        }
        self.generations[key] = Some(generation);
        Ok(())
    }

    fn read(&mut self, fd: RawFd) -> Read {
        loop {
            // SAFETY: scratch is a live buffer of the given length; fd is open.
            let n =
                unsafe { libc::recv(fd, self.scratch.as_mut_ptr().cast(), self.scratch.len(), 0) };
            return match n {
                0 => Read::Eof,
                1.. => Read::Data(Buf {
                    id: 0,
                    len: n as usize,
                }),
                _ => match errno() {
                    libc::EAGAIN => Read::Blocked,
                    libc::EINTR => continue,
                    e => Read::Failed(e),
                },
            };
        }
    }

    fn bytes(&self, buf: Buf) -> &[u8] {
        &self.scratch[..buf.len]
    }

    fn recycle(&mut self, _buf: Buf) {}

    fn pause_read(&mut self, _key: ConnKey) {}

    fn reading(&self, _key: ConnKey) -> bool {
        false
    }

    fn resume_read(&mut self, key: ConnKey, _fd: RawFd) -> io::Result<()> {
        if let Some(Some(generation)) = self.generations.get(key) {
            self.resume.push((key, *generation));
        }
        Ok(())
    }

    fn send_queue(&mut self, _key: ConnKey, fd: RawFd, queue: &OutQueue) -> io::Result<SendStart> {
        self.idle_trim.sent();
        loop {
            self.batch.fill(queue);
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
            if let Some(started) = send_result(n) {
                return Ok(started);
            }
        }
    }

    unsafe fn send_bytes(
        &mut self,
        _key: ConnKey,
        fd: RawFd,
        ptr: *const u8,
        len: usize,
    ) -> io::Result<SendStart> {
        loop {
            // SAFETY: the caller keeps ptr/len alive and unchanged for this call.
            let n =
                unsafe { libc::send(fd, ptr.cast(), len, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) };
            if let Some(started) = send_result(n) {
                return Ok(started);
            }
        }
    }

    fn cancel(&mut self, _key: ConnKey, _fd: RawFd) -> io::Result<()> {
        Ok(())
    }

    fn idle(&self, _key: ConnKey) -> bool {
        true
    }

    fn release(&mut self, key: ConnKey, fd: RawFd) {
        // SAFETY: the fd belongs to this slot and is closed exactly once, here; closing
        // removes it from the epoll set.
        unsafe { libc::close(fd) };
        if let Some(generation) = self.generations.get_mut(key) {
            *generation = None;
        }
    }

    fn hand_over(&mut self, key: ConnKey, fd: RawFd) -> OwnedFd {
        // Out of this epoll set first: another shard keeps the socket open, so closing
        // would not remove it.
        if let Err(e) = self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0) {
            tracing::warn!(error = %e, "epoll_ctl(DEL) of a handed-over socket failed");
        }
        if let Some(generation) = self.generations.get_mut(key) {
            *generation = None;
        }
        // SAFETY: the fd belongs to this slot, which forgets it here; the returned owner
        // is its only one from now on.
        unsafe { OwnedFd::from_raw_fd(fd) }
    }

    fn pause_accept(&mut self) -> io::Result<()> {
        // The listener is level-triggered: stop polling it instead of spinning on it.
        self.listen_for_accepts(false);
        Ok(())
    }

    fn resume_accept(&mut self) {
        self.listen_for_accepts(true);
    }

    fn stop_accepting(&mut self) -> io::Result<()> {
        // Dropping the listener closes it (and it leaves the epoll set).
        self.listener = None;
        Ok(())
    }

    fn submit(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn quiescent(&self) -> bool {
        true
    }
}

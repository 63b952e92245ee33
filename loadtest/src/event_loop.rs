//! The per-thread event loop: one edge-triggered epoll instance driving many
//! non-blocking sockets, with the read path that parses server frames in place.
//!
//! Why epoll and not io_uring: the generator's job is to *not* be the bottleneck, and on
//! this workload the cost is the kernel's TCP path, not syscall submission (measured:
//! io_uring send ≈ 0.97–1.06× plain `send()`). Edge-triggered epoll with one large read
//! per readable socket keeps the client simple, portable to any kernel, and cheap: a
//! single `read` typically returns dozens of small frames. It also keeps the generator
//! independent from the server's io_uring backend, so a bug there cannot hide behind a
//! matching bug here.
//!
//! Reads go into one per-thread scratch buffer. A partial frame at the end of a read is
//! copied into the connection's small carry-over buffer and prepended to the next read —
//! no per-frame allocation. A `wss://` connection reads into a second per-thread buffer
//! instead, its TLS session decrypts, and the plaintext lands in the scratch buffer at
//! the same place a plain read would have put it; from there on both paths are one.
//! An SSE subscriber's body goes through its [`sse::SseStream`] instead of the frame
//! parser; each event reaches the workload as a frame ([`sse::event_frame`]).
//! Workloads plug in through [`Handler`]. A workload may *throttle* an open connection
//! (a slow consumer): readiness no longer reads it, [`EventLoop::read_some`] does, one
//! bounded read at a time.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::codec::{self, Frame};
use crate::conn::{self, Closed, Conns, Failure, State};
use crate::sse;
use crate::tls::{self, TlsClient};

/// Token reserved for the thread's wake-up eventfd.
pub const WAKE_TOKEN: u64 = u64::MAX;

/// An epoll instance plus its event array.
pub struct Poller {
    epfd: OwnedFd,
    events: Vec<libc::epoll_event>,
    /// Number of `epoll_pwait2` calls.
    pub waits: u64,
}

impl Poller {
    /// New epoll instance returning at most `batch` events per wait.
    pub fn new(batch: usize) -> io::Result<Self> {
        // SAFETY: plain syscall; the result is checked.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Poller {
            // SAFETY: `fd` is a fresh descriptor owned by nobody else.
            epfd: unsafe { OwnedFd::from_raw_fd(fd) },
            events: vec![libc::epoll_event { events: 0, u64: 0 }; batch.max(16)],
            waits: 0,
        })
    }

    /// The epoll descriptor.
    pub fn raw(&self) -> RawFd {
        self.epfd.as_raw_fd()
    }

    /// Registers `fd` for readability (edge-triggered) under `token`.
    pub fn add_readable(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLET) as u32,
            u64: token,
        };
        // SAFETY: both descriptors are live; `ev` is a valid event.
        if unsafe { libc::epoll_ctl(self.raw(), libc::EPOLL_CTL_ADD, fd, &mut ev) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits up to `timeout_ns` (nanosecond precision via epoll_pwait2); returns the
    /// number of ready events.
    pub fn wait(&mut self, timeout_ns: u64) -> io::Result<usize> {
        let ts = libc::timespec {
            tv_sec: (timeout_ns / 1_000_000_000) as libc::time_t,
            tv_nsec: (timeout_ns % 1_000_000_000) as libc::c_long,
        };
        self.waits += 1;
        // SAFETY: the event array is valid for `len` entries; `ts` is a valid timespec;
        // a null sigmask means "do not change the mask".
        let n = unsafe {
            libc::epoll_pwait2(
                self.raw(),
                self.events.as_mut_ptr(),
                self.events.len() as i32,
                &ts,
                std::ptr::null(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                return Ok(0);
            }
            return Err(e);
        }
        Ok(n as usize)
    }

    /// Token and event mask of the `i`-th ready event.
    pub fn event(&self, i: usize) -> (u64, u32) {
        let e = self.events[i];
        (e.u64, e.events)
    }
}

/// Outcome of one `read(2)` on a socket.
enum ReadOutcome {
    /// This many bytes (> 0).
    Data(usize),
    /// Nothing to read now (EAGAIN).
    Again,
    /// EOF (`None`) or an error (errno).
    End(Option<i32>),
}

/// One `read(2)` of `fd` into `buf` (EINTR retried), counted in `stats`.
fn read_socket(fd: RawFd, buf: &mut [u8], stats: &mut LoopStats) -> ReadOutcome {
    loop {
        stats.reads += 1;
        // SAFETY: the destination is `buf`, writable for `buf.len()` bytes; `fd` is a
        // live socket we own.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n > 0 {
            stats.bytes_read += n as u64;
            return ReadOutcome::Data(n as usize);
        }
        if n == 0 {
            return ReadOutcome::End(None);
        }
        match io::Error::last_os_error().raw_os_error().unwrap_or(0) {
            libc::EAGAIN => return ReadOutcome::Again,
            libc::EINTR => continue,
            e => return ReadOutcome::End(Some(e)),
        }
    }
}

/// What a workload does with connection events. Callbacks get the connection table so
/// they can send on (or close) any connection of this thread.
pub trait Handler {
    /// The upgrade of `slot` completed.
    fn on_open(&mut self, conns: &mut Conns, slot: usize, tag: u32, now: u64);
    /// A data frame (text, binary or continuation) arrived on an open connection.
    fn on_frame(&mut self, conns: &mut Conns, slot: usize, tag: u32, frame: Frame<'_>, now: u64);
    /// The connection is gone (already removed from the table).
    fn on_closed(&mut self, slot: usize, tag: u32, why: Closed, now: u64);
}

/// Counters describing what the loop itself cost.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoopStats {
    /// read(2) calls.
    pub reads: u64,
    /// Bytes read.
    pub bytes_read: u64,
}

/// One thread's event loop.
pub struct EventLoop {
    /// The epoll instance.
    pub poller: Poller,
    /// The connections.
    pub conns: Conns,
    /// Wake-up eventfd other threads write to (owned by the coordinator).
    wake_fd: RawFd,
    scratch: Vec<u8>,
    /// wss://: ciphertext read from a socket (empty for ws://).
    cipher: Vec<u8>,
    max_payload: usize,
    /// SSE: where a binary event's base64 data is decoded ([`EventLoop::max_payload`] long).
    sse_buf: Vec<u8>,
    /// Read-side counters.
    pub stats: LoopStats,
}

/// What one [`EventLoop::poll`] call saw.
#[derive(Clone, Copy, Debug, Default)]
pub struct PollOutcome {
    /// Ready events processed.
    pub events: usize,
    /// The wake-up eventfd fired.
    pub woken: bool,
}

impl EventLoop {
    /// New loop; `max_payload` is the largest data frame the workload expects (the
    /// scratch buffer is sized so any complete frame fits in it). With `tls` every
    /// connection is a wss:// one.
    pub fn new(
        max_payload: usize,
        seed: u64,
        wake_fd: RawFd,
        tls: Option<TlsClient>,
    ) -> io::Result<Self> {
        let poller = Poller::new(1024)?;
        poller.add_readable(wake_fd, WAKE_TOKEN)?;
        let max_frame = max_payload.max(125) + codec::MAX_SERVER_HEADER;
        let scratch_len = (256 * 1024).max(2 * max_frame + codec::MAX_HANDSHAKE_RESPONSE);
        // wss://: the plaintext of one cipher read is at most that read plus one record
        // that was partly buffered in rustls before, so the carry-over and all of it
        // always fit in the scratch buffer (the read path never stops half-way).
        let max_carry = max_frame.max(codec::MAX_HANDSHAKE_RESPONSE);
        let cipher_len = scratch_len - max_carry - tls::MAX_RECORD_PLAINTEXT;
        let cipher = match tls {
            Some(_) => vec![0u8; cipher_len],
            None => Vec::new(),
        };
        Ok(EventLoop {
            poller,
            conns: Conns::new(seed, tls),
            wake_fd,
            scratch: vec![0u8; scratch_len],
            cipher,
            max_payload: max_payload.max(125),
            sse_buf: vec![0u8; max_payload.max(125)],
            stats: LoopStats::default(),
        })
    }

    /// Waits up to `timeout_ns` for events and dispatches them to `h`.
    pub fn poll<H: Handler>(&mut self, h: &mut H, timeout_ns: u64) -> io::Result<PollOutcome> {
        let n = self.poller.wait(timeout_ns)?;
        let mut out = PollOutcome {
            events: n,
            woken: false,
        };
        let now = crate::sys::now_ns();
        for i in 0..n {
            let (tok, ev) = self.poller.event(i);
            if tok == WAKE_TOKEN {
                let mut v: u64 = 0;
                // SAFETY: reads 8 bytes into a live u64 from the non-blocking eventfd,
                // which the coordinator keeps open for the whole run.
                unsafe { libc::read(self.wake_fd, (&mut v as *mut u64).cast(), 8) };
                out.woken = true;
                continue;
            }
            let (slot, gen) = conn::untoken(tok);
            self.on_event(h, slot, gen, ev, now);
            self.reap_dead(h, now);
        }
        Ok(out)
    }

    /// Reports and removes connections whose writes failed.
    pub fn reap_dead<H: Handler>(&mut self, h: &mut H, now: u64) {
        while let Some((slot, gen, why)) = self.conns.dead.pop() {
            if self.conns.get_gen(slot, gen).is_some() {
                self.finish(h, slot, why, now);
            }
        }
    }

    /// Fails connects/handshakes and close handshakes whose deadline passed.
    pub fn expire<H: Handler>(&mut self, h: &mut H, now: u64) {
        if self.conns.pending == 0 && self.conns.closing == 0 {
            return;
        }
        for slot in self.conns.live_slots() {
            let Some(c) = self.conns.get(slot) else {
                continue;
            };
            if c.deadline_ns == 0 || now < c.deadline_ns {
                continue;
            }
            let why = match c.state {
                State::Connecting | State::Handshaking => Closed::Failed(Failure::Timeout),
                State::Closing => Closed::CloseTimeout,
                State::Open => continue,
            };
            self.finish(h, slot, why, now);
        }
    }

    fn finish<H: Handler>(&mut self, h: &mut H, slot: usize, why: Closed, now: u64) {
        if let Some(c) = self.conns.remove(slot, conn::CloseHow::Vanish) {
            h.on_closed(slot, c.tag, why, now);
        }
    }

    fn on_event<H: Handler>(&mut self, h: &mut H, slot: usize, gen: u32, ev: u32, now: u64) {
        let Some(c) = self.conns.get_gen(slot, gen) else {
            return; // stale event for a closed connection
        };
        let err_or_hup = ev & (libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0;
        // Only an open connection is throttled (the upgrade is always read as usual).
        let throttled = c.throttled && c.state == State::Open;
        let fd = c.raw_fd();
        if c.state == State::Connecting {
            if ev & libc::EPOLLOUT as u32 == 0 && !err_or_hup {
                return;
            }
            let e = conn::socket_error(c.raw_fd());
            if e != 0 {
                self.finish(h, slot, Closed::Failed(Failure::Connect(e)), now);
                return;
            }
            c.state = State::Handshaking;
            self.conns.flush(slot);
        }
        if throttled {
            // Reads are the workload's (read_some); only an error or hang-up ends it here.
            if err_or_hup {
                let e = conn::socket_error(fd);
                self.ended(h, slot, gen, (e != 0).then_some(e), now);
                return;
            }
        } else if ev & (libc::EPOLLIN | libc::EPOLLRDHUP) as u32 != 0 || err_or_hup {
            self.read_ready(h, slot, gen, now);
        }
        if ev & libc::EPOLLOUT as u32 != 0 {
            if let Some(c) = self.conns.get_gen(slot, gen) {
                if c.has_pending_out() {
                    self.conns.flush(slot);
                }
            }
        }
    }

    /// Reads until the socket is drained (or throttled), parsing frames in place.
    fn read_ready<H: Handler>(&mut self, h: &mut H, slot: usize, gen: u32, now: u64) {
        loop {
            let Some(c) = self.conns.get_gen(slot, gen) else {
                return;
            };
            if c.throttled && c.state == State::Open {
                return; // became throttled in the read before (its upgrade completed)
            }
            if c.tls.is_some() {
                return self.read_ready_tls(h, slot, gen, now);
            }
            let carry_len = c.carry.len();
            let space = self.scratch.len() - carry_len;
            let fd = c.raw_fd();
            let n = match read_socket(fd, &mut self.scratch[carry_len..], &mut self.stats) {
                ReadOutcome::Data(n) => n,
                ReadOutcome::Again => return,
                ReadOutcome::End(e) => return self.ended(h, slot, gen, e, now),
            };
            self.scratch[..carry_len].copy_from_slice(&c.carry);
            c.carry.clear();
            let avail = carry_len + n;
            if !self.process(h, slot, gen, avail, now) {
                return;
            }
            if n < space {
                return; // short read: the socket is drained (stream socket, edge-triggered)
            }
        }
    }

    /// One `read(2)` of at most `max` bytes from `slot` whatever its readiness (how a
    /// throttled connection is read), then parses what arrived like any read; returns the
    /// bytes read (0: nothing there, or the connection is gone — then reported to `h`).
    pub fn read_some<H: Handler>(&mut self, h: &mut H, slot: usize, max: usize, now: u64) -> usize {
        let Some(c) = self.conns.get_mut(slot) else {
            return 0;
        };
        let (gen, fd) = (c.gen, c.raw_fd());
        let outcome = if c.tls.is_some() {
            let n = max.min(self.cipher.len());
            read_socket(fd, &mut self.cipher[..n], &mut self.stats)
        } else {
            let carry_len = c.carry.len();
            let n = max.min(self.scratch.len() - carry_len);
            read_socket(
                fd,
                &mut self.scratch[carry_len..carry_len + n],
                &mut self.stats,
            )
        };
        match outcome {
            ReadOutcome::Data(n) => {
                if c.tls.is_some() {
                    self.decrypt_and_process(h, slot, gen, n, now);
                } else {
                    let carry_len = c.carry.len();
                    self.scratch[..carry_len].copy_from_slice(&c.carry);
                    c.carry.clear();
                    self.process(h, slot, gen, carry_len + n, now);
                }
                n
            }
            ReadOutcome::Again => 0,
            ReadOutcome::End(e) => {
                self.ended(h, slot, gen, e, now);
                0
            }
        }
    }

    /// [`EventLoop::read_ready`] for a wss:// connection: reads ciphertext, decrypts
    /// into the scratch buffer (after the carry-over) and parses there.
    fn read_ready_tls<H: Handler>(&mut self, h: &mut H, slot: usize, gen: u32, now: u64) {
        loop {
            let Some(c) = self.conns.get_gen(slot, gen) else {
                return;
            };
            if c.throttled && c.state == State::Open {
                return;
            }
            let fd = c.raw_fd();
            let space = self.cipher.len();
            let n = match read_socket(fd, &mut self.cipher, &mut self.stats) {
                ReadOutcome::Data(n) => n,
                ReadOutcome::Again => return,
                ReadOutcome::End(e) => return self.ended(h, slot, gen, e, now),
            };
            if !self.decrypt_and_process(h, slot, gen, n, now) {
                return;
            }
            if n < space {
                return;
            }
        }
    }

    /// Decrypts `cipher[..n]` for `slot` and parses the plaintext; sends what the TLS
    /// session has to say (handshake messages, the queued upgrade request). Returns
    /// `false` if the connection is gone.
    fn decrypt_and_process<H: Handler>(
        &mut self,
        h: &mut H,
        slot: usize,
        gen: u32,
        n: usize,
        now: u64,
    ) -> bool {
        let Some(c) = self.conns.get_gen(slot, gen) else {
            return false;
        };
        let mut avail = c.carry.len();
        self.scratch[..avail].copy_from_slice(&c.carry);
        c.carry.clear();
        let tls = c.tls.as_mut().expect("wss:// connection has a TLS session");
        let mut input = &self.cipher[..n];
        let mut decrypted = Ok(());
        while !input.is_empty() && decrypted.is_ok() {
            decrypted = tls.decrypt(&mut input);
            avail += tls.take_plaintext(&mut self.scratch[avail..]);
            debug_assert!(
                avail < self.scratch.len(),
                "the cipher buffer is sized for this"
            );
        }
        if let Err(e) = decrypted {
            let why = match c.state {
                State::Connecting | State::Handshaking => Closed::Failed(Failure::Tls(e)),
                State::Open | State::Closing => Closed::Protocol(format!("tls: {e}")),
            };
            self.conns.flush(slot); // the alert, best effort
            self.finish(h, slot, why, now);
            return false;
        }
        if self
            .conns
            .get_gen(slot, gen)
            .is_some_and(|c| c.has_pending_out())
        {
            self.conns.flush(slot);
        }
        self.process(h, slot, gen, avail, now)
    }

    /// The socket read failed (`errno`) or hit EOF (`None`): report how it ended.
    fn ended<H: Handler>(&mut self, h: &mut H, slot: usize, gen: u32, e: Option<i32>, now: u64) {
        let Some(c) = self.conns.get_gen(slot, gen) else {
            return;
        };
        let why = match (c.state, e) {
            (State::Open | State::Closing, Some(e)) => Closed::Reset(e),
            (State::Open, None) => Closed::Eof,
            (State::Closing, None) => Closed::Clean,
            _ => Closed::Failed(Failure::Dropped),
        };
        self.finish(h, slot, why, now);
    }

    /// Handles `scratch[..avail]` for `slot`; keeps any partial tail in the carry buffer.
    /// Returns `false` if the connection is gone.
    fn process<H: Handler>(
        &mut self,
        h: &mut H,
        slot: usize,
        gen: u32,
        avail: usize,
        now: u64,
    ) -> bool {
        let EventLoop {
            conns,
            scratch,
            max_payload,
            sse_buf,
            ..
        } = self;
        let buf = &scratch[..avail];
        let mut pos = 0;
        let deflate = conns.deflate;
        let Some(c) = conns.get_gen(slot, gen) else {
            return false;
        };
        if c.state == State::Handshaking {
            let head = match c.sse {
                Some(_) => sse::head::parse_response(buf),
                None => codec::parse_upgrade_response(buf, &c.accept),
            };
            match head {
                Ok(None) => {
                    c.carry.extend_from_slice(buf);
                    return true;
                }
                Ok(Some(head)) => {
                    c.state = State::Open;
                    c.deadline_ns = 0;
                    let tag = c.tag;
                    conns.pending -= 1;
                    pos = head;
                    h.on_open(conns, slot, tag, now);
                }
                Err(e) => {
                    let why = Closed::Failed(Failure::Handshake(e));
                    if let Some(c) = conns.remove(slot, conn::CloseHow::Vanish) {
                        h.on_closed(slot, c.tag, why, now);
                    }
                    return false;
                }
            }
        }
        if conns.get_gen(slot, gen).is_some_and(|c| c.sse.is_some()) {
            return process_sse(conns, h, sse_buf, slot, gen, &buf[pos..], now);
        }
        loop {
            let Some(c) = conns.get_gen(slot, gen) else {
                return false;
            };
            let tag = c.tag;
            let state = c.state;
            match codec::parse_frame_ext(&buf[pos..], *max_payload, deflate) {
                Ok(None) => {
                    c.carry.extend_from_slice(&buf[pos..]);
                    return true;
                }
                Err(e) => {
                    conns.remove(slot, conn::CloseHow::Vanish);
                    h.on_closed(slot, tag, Closed::Protocol(e.to_string()), now);
                    return false;
                }
                Ok(Some(f)) => {
                    pos += f.consumed;
                    match f.opcode {
                        codec::OP_PING => {
                            if state == State::Open {
                                conns.send(slot, codec::OP_PONG, f.payload);
                            }
                        }
                        codec::OP_PONG => {}
                        codec::OP_CLOSE => {
                            let code = if f.payload.len() >= 2 {
                                u16::from_be_bytes([f.payload[0], f.payload[1]])
                            } else {
                                1005
                            };
                            let why = if state == State::Closing {
                                Closed::Clean
                            } else {
                                // Answer the server's close, then drop the socket.
                                conns.send(slot, codec::OP_CLOSE, &codec::close_payload(code));
                                Closed::ServerClose(code)
                            };
                            conns.remove(slot, conn::CloseHow::Vanish);
                            h.on_closed(slot, tag, why, now);
                            return false;
                        }
                        _ if f.compressed && (state == State::Open || state == State::Closing) => {
                            let on = |p: &[u8]| {
                                let f = Frame {
                                    payload: p,
                                    compressed: false,
                                    ..f
                                };
                                h.on_frame(conns, slot, tag, f, now)
                            };
                            if let Err(e) =
                                crate::deflate::with_inflated(f.payload, *max_payload, on)
                            {
                                conns.remove(slot, conn::CloseHow::Vanish);
                                h.on_closed(slot, tag, Closed::Protocol(e), now);
                                return false;
                            }
                        }
                        _ => {
                            if state == State::Open || state == State::Closing {
                                h.on_frame(conns, slot, tag, f, now);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The body bytes `body` of SSE connection `slot`: decoded by its [`sse::SseStream`],
/// each message event handed to `h` as the frame it stands for ([`sse::event_frame`],
/// binary data decoded into `buf`; `gap` / `reset` announcements are skipped). The stream's last chunk ends the connection as
/// [`Closed::StreamEnd`], broken framing or a binary event that is not base64 of at most
/// `buf.len()` bytes as [`Closed::Protocol`]. Returns `false` if the connection is gone.
fn process_sse<H: Handler>(
    conns: &mut Conns,
    h: &mut H,
    buf: &mut [u8],
    slot: usize,
    gen: u32,
    body: &[u8],
    now: u64,
) -> bool {
    let Some(c) = conns.get_gen(slot, gen) else {
        return false;
    };
    let tag = c.tag;
    let Some(mut stream) = c.sse.take() else {
        return true;
    };
    let mut bad = false;
    let fed = stream.feed(body, |ev| {
        if bad {
            return;
        }
        match sse::event_frame(&ev, buf) {
            sse::Meaning::Frame(f) => h.on_frame(conns, slot, tag, f, now),
            sse::Meaning::Announcement => {}
            sse::Meaning::BadBinary => bad = true,
        }
    });
    let Some(c) = conns.get_gen(slot, gen) else {
        return false;
    };
    let why = match fed {
        Ok(false) if !bad => {
            c.sse = Some(stream);
            return true;
        }
        Ok(_) if bad => Closed::Protocol(format!(
            "event stream: binary event data is not base64 of at most {} bytes",
            buf.len()
        )),
        Ok(_) => Closed::StreamEnd,
        Err(e) => Closed::Protocol(e.to_string()),
    };
    conns.remove(slot, conn::CloseHow::Vanish);
    h.on_closed(slot, tag, why, now);
    false
}

//! One client WebSocket (or SSE subscriber) connection and the per-thread table that
//! owns them.
//!
//! A [`Conn`] is a non-blocking TCP socket plus the little state the client needs: its
//! lifecycle [`State`], the expected `Sec-WebSocket-Accept`, a small carry-over buffer
//! for a partial frame left at the end of a read, an output buffer for whatever could
//! not be written at once, and for `wss://` its TLS [`Session`]. [`Conns`] is the slot
//! table (indices are epoll tokens, guarded by a generation counter) with the socket
//! set-up (bind to a source IP, non-blocking connect) and the write path (masked frames
//! appended, then flushed; through the session when there is one).
//!
//! Nothing here blocks and nothing here calls back into a workload: failures found while
//! writing are parked in a "dead" list that the event loop turns into callbacks.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::codec::{self, HandshakeError, HandshakeKey};
use crate::sse::{self, SseStream};
use crate::sys::Rng;
use crate::tls::{Session, TlsClient};

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// TCP connect in progress.
    Connecting,
    /// TLS handshake (wss://) and upgrade request sent (or queued), waiting for `101`
    /// (SSE: the request sent, waiting for the `200` event-stream head).
    Handshaking,
    /// Upgraded; frames flow.
    Open,
    /// We sent a close frame and wait for the server's.
    Closing,
}

/// Why a connection never reached [`State::Open`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// socket/bind/connect failed (errno).
    Connect(i32),
    /// The upgrade response was refused or malformed.
    Handshake(HandshakeError),
    /// Connect + upgrade did not finish in time.
    Timeout,
    /// The server closed or reset the socket during the handshake.
    Dropped,
    /// The TLS handshake failed (rustls' reason, e.g. an untrusted certificate).
    Tls(String),
}

impl Failure {
    /// Short, stable category used as a counter key in the report.
    pub fn category(&self) -> String {
        match self {
            Failure::Connect(e) => format!("connect: {}", io::Error::from_raw_os_error(*e)),
            Failure::Handshake(h) => match h {
                HandshakeError::BadStatus(s) => format!("handshake: {s}"),
                other => format!("handshake: {other}"),
            },
            Failure::Timeout => "connect/handshake timeout".into(),
            Failure::Dropped => "closed during handshake".into(),
            Failure::Tls(e) => format!("tls: {e}"),
        }
    }
}

/// How a connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Closed {
    /// It never opened.
    Failed(Failure),
    /// Our close handshake completed (server answered, or closed TCP after our close).
    Clean,
    /// The server sent a close frame first (we answered it).
    ServerClose(u16),
    /// TCP FIN without a close frame.
    Eof,
    /// Reset or socket error (errno).
    Reset(i32),
    /// The server sent something that is not a valid frame.
    Protocol(String),
    /// Our close handshake was not answered in time.
    CloseTimeout,
    /// SSE: the server ended the event stream (the last chunk of the chunked body).
    StreamEnd,
}

impl Closed {
    /// Whether this is an expected end after *we* asked to close.
    pub fn is_clean(&self) -> bool {
        matches!(self, Closed::Clean)
    }
}

/// How to close a connection from our side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseHow {
    /// Send a close frame and wait for the server's answer (reported via callback).
    Handshake,
    /// SO_LINGER 0 then close: the server sees a RST.
    Reset,
    /// Plain close(): the server sees a FIN without a close frame.
    Vanish,
}

/// One connection.
pub struct Conn {
    fd: OwnedFd,
    /// Lifecycle state.
    pub state: State,
    /// Generation of the slot when this connection was created (stale-event guard).
    pub gen: u32,
    /// Workload-defined tag (role, index...).
    pub tag: u32,
    /// Expected `Sec-WebSocket-Accept` (unused by an SSE connection).
    pub accept: [u8; 28],
    /// Partial frame (or partial response head) left over from the previous read.
    pub carry: Vec<u8>,
    /// Bytes queued for writing (with TLS: only a frame being encoded, handed to the
    /// session at once).
    pub wbuf: Vec<u8>,
    /// How much of `wbuf` is already written.
    pub wpos: usize,
    /// When the socket was created (ns, monotonic).
    pub started_ns: u64,
    /// Connect/handshake or close deadline (ns); 0 = none.
    pub deadline_ns: u64,
    /// wss://: the TLS session between the socket and the codec.
    pub tls: Option<Box<Session>>,
    /// The workload reads this connection itself ([`crate::event_loop::EventLoop::read_some`]):
    /// the event loop ignores its readability and only reports errors and hang-ups
    /// (a slow subscriber that stalls or trickles).
    pub throttled: bool,
    /// An SSE subscriber ([`Conns::open_sse`]): its body decoder; `None` for WebSocket.
    pub sse: Option<Box<SseStream>>,
}

impl Conn {
    /// Raw socket descriptor.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Whether bytes are waiting to be written.
    pub fn has_pending_out(&self) -> bool {
        match &self.tls {
            None => self.wpos < self.wbuf.len(),
            Some(t) => t.wants_write(),
        }
    }
}

/// Slot table of one thread's connections.
pub struct Conns {
    slots: Vec<Option<Conn>>,
    gens: Vec<u32>,
    free: Vec<u32>,
    /// Slots whose write failed; the event loop reports and removes them.
    pub dead: Vec<(usize, u32, Closed)>,
    /// PRNG for masks and keys.
    pub rng: Rng,
    /// Connections in Connecting/Handshaking state.
    pub pending: usize,
    /// Connections in Closing state.
    pub closing: usize,
    /// Count of write(2) calls (generator cost accounting).
    pub write_calls: u64,
    /// wss://: what every new connection's TLS session is made from.
    tls: Option<TlsClient>,
    /// `fanout --deflate`: every upgrade offers permessage-deflate.
    pub deflate: bool,
}

/// Builds an epoll token from a slot and its generation.
pub fn token(slot: usize, gen: u32) -> u64 {
    ((gen as u64) << 32) | slot as u64
}

/// Splits an epoll token.
pub fn untoken(t: u64) -> (usize, u32) {
    ((t & 0xFFFF_FFFF) as usize, (t >> 32) as u32)
}

impl Conns {
    /// Empty table; with `tls` every connection speaks TLS (wss://).
    pub fn new(seed: u64, tls: Option<TlsClient>) -> Self {
        Conns {
            slots: Vec::new(),
            gens: Vec::new(),
            free: Vec::new(),
            dead: Vec::new(),
            rng: Rng::new(seed),
            pending: 0,
            closing: 0,
            write_calls: 0,
            tls,
            deflate: false,
        }
    }

    /// The connection in `slot`, if any.
    pub fn get(&self, slot: usize) -> Option<&Conn> {
        self.slots.get(slot).and_then(Option::as_ref)
    }

    /// Mutable access to the connection in `slot`.
    pub fn get_mut(&mut self, slot: usize) -> Option<&mut Conn> {
        self.slots.get_mut(slot).and_then(Option::as_mut)
    }

    /// Live connection with the given generation (events for older ones are stale).
    pub fn get_gen(&mut self, slot: usize, gen: u32) -> Option<&mut Conn> {
        self.get_mut(slot).filter(|c| c.gen == gen)
    }

    /// Number of live connections.
    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Whether there are no live connections.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Slots of every live connection (allocates; for phase changes, not per frame).
    pub fn live_slots(&self) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&i| self.slots[i].is_some())
            .collect()
    }

    /// Creates a socket, binds it to `src` (port chosen at connect time), starts a
    /// non-blocking connect to `dst`, registers it with `epfd` and queues the upgrade
    /// request (behind the TLS handshake for wss://). Returns the slot.
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        &mut self,
        epfd: RawFd,
        dst: SocketAddr,
        src: Option<Ipv4Addr>,
        host: &str,
        path: &str,
        tag: u32,
        now: u64,
        timeout_ns: u64,
    ) -> Result<usize, Failure> {
        let key = HandshakeKey::from_random(self.rng.bytes16());
        let mut wbuf = Vec::with_capacity(256);
        codec::write_upgrade_request(&mut wbuf, host, path, &key);
        if self.deflate {
            crate::deflate::add_offer(&mut wbuf);
        }
        let accept = key.expected_accept();
        self.open_with(epfd, dst, src, wbuf, accept, None, tag, now, timeout_ns)
    }

    /// Like [`Conns::open`], but an SSE subscriber: the request is `GET path` for an
    /// event stream (`path` is the `/sse/{room}` one) and the body is decoded by an
    /// [`SseStream`] whose events are at most `max_event` bytes.
    #[allow(clippy::too_many_arguments)]
    pub fn open_sse(
        &mut self,
        epfd: RawFd,
        dst: SocketAddr,
        src: Option<Ipv4Addr>,
        host: &str,
        path: &str,
        tag: u32,
        now: u64,
        timeout_ns: u64,
        max_event: usize,
    ) -> Result<usize, Failure> {
        let mut wbuf = Vec::with_capacity(160);
        sse::head::write_request(&mut wbuf, host, path);
        let stream = Some(Box::new(SseStream::new(max_event)));
        self.open_with(epfd, dst, src, wbuf, [0; 28], stream, tag, now, timeout_ns)
    }

    /// Opens a connection whose request head is `wbuf` (see [`Conns::open`]).
    #[allow(clippy::too_many_arguments)]
    fn open_with(
        &mut self,
        epfd: RawFd,
        dst: SocketAddr,
        src: Option<Ipv4Addr>,
        mut wbuf: Vec<u8>,
        accept: [u8; 28],
        sse: Option<Box<SseStream>>,
        tag: u32,
        now: u64,
        timeout_ns: u64,
    ) -> Result<usize, Failure> {
        let tls = match &self.tls {
            None => None,
            Some(t) => {
                let mut s = t.session().map_err(|e| Failure::Tls(e.to_string()))?;
                s.queue(&wbuf).map_err(|e| Failure::Tls(e.to_string()))?;
                wbuf.clear();
                Some(Box::new(s))
            }
        };
        let fd = new_socket(dst, src).map_err(|e| Failure::Connect(errno(&e)))?;
        let connected = start_connect(&fd, dst).map_err(|e| Failure::Connect(errno(&e)))?;
        let slot = match self.free.pop() {
            Some(s) => s as usize,
            None => {
                self.slots.push(None);
                self.gens.push(0);
                self.slots.len() - 1
            }
        };
        let gen = self.gens[slot];
        let ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32,
            u64: token(slot, gen),
        };
        let mut ev = ev;
        // SAFETY: `epfd` is our epoll descriptor, `fd` a live socket, `ev` a valid event.
        let rc = unsafe { libc::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, fd.as_raw_fd(), &mut ev) };
        if rc != 0 {
            let e = io::Error::last_os_error();
            self.free.push(slot as u32);
            return Err(Failure::Connect(errno(&e)));
        }
        self.slots[slot] = Some(Conn {
            fd,
            state: if connected {
                State::Handshaking
            } else {
                State::Connecting
            },
            gen,
            tag,
            accept,
            carry: Vec::new(),
            wbuf,
            wpos: 0,
            started_ns: now,
            deadline_ns: now + timeout_ns,
            tls,
            throttled: false,
            sse,
        });
        self.pending += 1;
        if connected {
            self.flush(slot);
        }
        Ok(slot)
    }

    /// Removes a connection from the table and closes its socket as `how` says
    /// (`Handshake` is treated as `Vanish` here: use [`Conns::close`] for a handshake).
    pub fn remove(&mut self, slot: usize, how: CloseHow) -> Option<Conn> {
        let conn = self.slots.get_mut(slot)?.take()?;
        match conn.state {
            State::Connecting | State::Handshaking => self.pending -= 1,
            State::Closing => self.closing -= 1,
            State::Open => {}
        }
        self.gens[slot] = self.gens[slot].wrapping_add(1);
        self.free.push(slot as u32);
        if how == CloseHow::Reset {
            set_linger_zero(conn.raw_fd());
        }
        Some(conn) // dropping the returned Conn closes the socket
    }

    /// Starts closing `slot`: `Reset`/`Vanish` close at once (returns `true`); `Handshake`
    /// sends a close frame and returns `false` — the end arrives later as a callback.
    pub fn close(&mut self, slot: usize, how: CloseHow, now: u64, timeout_ns: u64) -> bool {
        match how {
            CloseHow::Reset | CloseHow::Vanish => {
                drop(self.remove(slot, how));
                true
            }
            CloseHow::Handshake => {
                let Some(c) = self.get_mut(slot) else {
                    return true;
                };
                if c.state != State::Open {
                    drop(self.remove(slot, CloseHow::Vanish));
                    return true;
                }
                c.state = State::Closing;
                c.deadline_ns = now + timeout_ns;
                self.closing += 1;
                self.send(slot, codec::OP_CLOSE, &codec::close_payload(1000));
                false
            }
        }
    }

    /// Queues a masked frame on `slot` and tries to write it now.
    pub fn send(&mut self, slot: usize, opcode: u8, payload: &[u8]) {
        let mask = self.rng.mask();
        let Some(c) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if c.wpos == c.wbuf.len() {
            c.wbuf.clear();
            c.wpos = 0;
        }
        codec::encode_client_frame(&mut c.wbuf, opcode, payload, mask);
        if let Some(tls) = &mut c.tls {
            let queued = tls.queue(&c.wbuf);
            c.wbuf.clear();
            if let Err(e) = queued {
                let why = Closed::Protocol(format!("tls: {e}"));
                self.dead.push((slot, c.gen, why));
                return;
            }
        }
        self.flush(slot);
    }

    /// Writes as much of `slot`'s output buffer as the socket takes.
    pub fn flush(&mut self, slot: usize) {
        let Some(c) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if c.state == State::Connecting {
            return;
        }
        if let Some(tls) = &mut c.tls {
            match tls.flush(c.fd.as_raw_fd(), &mut self.write_calls) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    let why = write_failed(c.state, errno(&e));
                    self.dead.push((slot, c.gen, why));
                }
            }
            return;
        }
        while c.wpos < c.wbuf.len() {
            let rest = &c.wbuf[c.wpos..];
            self.write_calls += 1;
            // SAFETY: `rest` is a valid readable slice; the fd is a live socket we own.
            let n = unsafe {
                libc::send(
                    c.fd.as_raw_fd(),
                    rest.as_ptr().cast(),
                    rest.len(),
                    libc::MSG_NOSIGNAL,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EAGAIN) => return,
                    Some(libc::EINTR) => continue,
                    code => {
                        let why = write_failed(c.state, code.unwrap_or(0));
                        self.dead.push((slot, c.gen, why));
                        c.wpos = c.wbuf.len();
                        return;
                    }
                }
            }
            c.wpos += n as usize;
        }
        c.wbuf.clear();
        c.wpos = 0;
    }
}

/// How a connection whose write failed with `code` ended.
fn write_failed(state: State, code: i32) -> Closed {
    if state == State::Handshaking {
        Closed::Failed(Failure::Dropped)
    } else {
        Closed::Reset(code)
    }
}

fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

fn sockaddr_in(a: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

fn setsockopt_int(fd: RawFd, level: i32, name: i32, v: i32) -> io::Result<()> {
    // SAFETY: passes a pointer to a live i32 and its size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&v as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn set_linger_zero(fd: RawFd) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: passes a pointer to a live linger struct and its size.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
}

/// Non-blocking TCP socket with TCP_NODELAY, bound to `src` if given. The bind uses
/// IP_BIND_ADDRESS_NO_PORT so the ephemeral port is picked at connect time per
/// 4-tuple, which lets every source address use the whole ephemeral range.
pub(crate) fn new_socket(dst: SocketAddr, src: Option<Ipv4Addr>) -> io::Result<OwnedFd> {
    if !dst.is_ipv4() {
        return Err(io::Error::from_raw_os_error(libc::EAFNOSUPPORT));
    }
    // SAFETY: plain syscall; the result is checked.
    let raw = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    setsockopt_int(raw, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1)?;
    if let Some(ip) = src {
        setsockopt_int(raw, libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT, 1)?;
        let sa = sockaddr_in(SocketAddrV4::new(ip, 0));
        // SAFETY: `sa` is a valid sockaddr_in and we pass its exact size.
        let rc = unsafe {
            libc::bind(
                raw,
                (&sa as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(fd)
}

/// Starts a non-blocking connect; `Ok(true)` if it completed at once.
pub(crate) fn start_connect(fd: &OwnedFd, dst: SocketAddr) -> io::Result<bool> {
    let SocketAddr::V4(v4) = dst else {
        return Err(io::Error::from_raw_os_error(libc::EAFNOSUPPORT));
    };
    let sa = sockaddr_in(v4);
    // SAFETY: `sa` is a valid sockaddr_in and we pass its exact size.
    let rc = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EINPROGRESS) {
        Ok(false)
    } else {
        Err(e)
    }
}

/// Pending error of a socket (SO_ERROR), 0 if none.
pub fn socket_error(fd: RawFd) -> i32 {
    let mut v: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
    // SAFETY: `v` and `len` are valid for writes of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut v as *mut i32).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return errno(&io::Error::last_os_error());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_roundtrip() {
        let t = token(12345, 7);
        assert_eq!(untoken(t), (12345, 7));
        assert_eq!(untoken(token(0, u32::MAX)), (0, u32::MAX));
    }

    #[test]
    fn failure_categories_are_readable() {
        assert!(Failure::Connect(libc::ECONNREFUSED)
            .category()
            .contains("refused"));
        assert_eq!(Failure::Timeout.category(), "connect/handshake timeout");
    }
}

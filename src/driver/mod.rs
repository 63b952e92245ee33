//! I/O drivers: the only code that makes socket syscalls.
//!
//! One event loop ([`event_loop`]) drives a [`Shard`] over either of two backends,
//! which only submit and collect I/O: [`uring`] (io_uring: multishot accept,
//! multishot recv into a provided buffer ring, one `sendmsg` in flight per connection)
//! and [`epoll`] (edge-triggered readiness, one scratch read buffer per shard,
//! `sendmsg` of gathered frames). Both are cargo features, on by default;
//! `--backend auto|uring|epoll` picks one at run time, and `auto` falls back to epoll
//! with a warning naming the reason when io_uring cannot be set up.

pub mod batch;
pub mod config;
#[cfg(feature = "epoll")]
pub mod epoll;
pub(crate) mod event_loop;
pub mod tls;
#[cfg(feature = "uring")]
pub mod uring;

#[cfg(not(any(feature = "uring", feature = "epoll")))]
compile_error!("enable at least one backend feature: `uring` or `epoll`");

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::shard::Shard;
use crate::sys::Waker;
pub use config::DriverConfig;
use tls::{AfterNotify, TlsConfig, TlsSession};

/// The backend asked for on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// io_uring when it can be set up here, else epoll (with a warning).
    #[default]
    Auto,
    Uring,
    Epoll,
}

impl BackendChoice {
    /// Every choice, in the order the CLI lists them.
    pub const ALL: [BackendChoice; 3] = [
        BackendChoice::Auto,
        BackendChoice::Uring,
        BackendChoice::Epoll,
    ];

    /// The name used by `--backend` and the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendChoice::Auto => "auto",
            BackendChoice::Uring => "uring",
            BackendChoice::Epoll => "epoll",
        }
    }

    /// One line on what the choice does (for `--help`).
    pub fn about(self) -> &'static str {
        match self {
            BackendChoice::Auto => {
                "io_uring when it can be set up here, else epoll (with a warning)"
            }
            BackendChoice::Uring => "io_uring, or fail with the reason it cannot run here",
            BackendChoice::Epoll => "epoll",
        }
    }
}

/// The backend actually running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Uring,
    Epoll,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Uring => "uring",
            Backend::Epoll => "epoll",
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Decide which backend to run, probing io_uring when it may be used.
pub fn resolve(choice: BackendChoice) -> io::Result<Backend> {
    match choice {
        BackendChoice::Uring => {
            #[cfg(feature = "uring")]
            {
                uring::probe().map_err(|why| {
                    io::Error::new(
                        io::ErrorKind::Unsupported,
                        format!("io_uring unavailable: {why}"),
                    )
                })?;
                Ok(Backend::Uring)
            }
            #[cfg(not(feature = "uring"))]
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "this build has no io_uring backend (cargo feature `uring` is off)",
            ))
        }
        BackendChoice::Epoll => {
            if cfg!(feature = "epoll") {
                Ok(Backend::Epoll)
            } else {
                Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "this build has no epoll backend (cargo feature `epoll` is off)",
                ))
            }
        }
        BackendChoice::Auto => auto(),
    }
}

#[cfg(feature = "uring")]
fn auto() -> io::Result<Backend> {
    match uring::probe() {
        Ok(()) => Ok(Backend::Uring),
        Err(why) if cfg!(feature = "epoll") => {
            tracing::warn!(reason = %why, "io_uring unavailable; falling back to epoll");
            Ok(Backend::Epoll)
        }
        Err(why) => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("io_uring unavailable ({why}) and this build has no epoll backend"),
        )),
    }
}

#[cfg(not(feature = "uring"))]
fn auto() -> io::Result<Backend> {
    Ok(Backend::Epoll)
}

/// Run one shard's event loop until it has shut down and drained.
pub fn run(
    backend: Backend,
    cfg: &DriverConfig,
    shard: &mut Shard,
    listener: socket2::Socket,
    waker: Arc<Waker>,
) -> io::Result<()> {
    match backend {
        #[cfg(feature = "uring")]
        Backend::Uring => {
            let io = uring::Uring::new(cfg, listener, waker.clone())?;
            event_loop::EventLoop::new(io, shard, waker, cfg.tls.clone()).run()
        }
        #[cfg(feature = "epoll")]
        Backend::Epoll => {
            let io = epoll::Epoll::new(cfg, listener, waker.clone())?;
            event_loop::EventLoop::new(io, shard, waker, cfg.tls.clone()).run()
        }
        #[allow(unreachable_patterns)]
        other => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("backend {other} not compiled in"),
        )),
    }
}

/// After accept fails for lack of resources (EMFILE, ENFILE, ENOBUFS, ENOMEM) a shard
/// stops accepting for this long instead of retrying at once: the pending connection
/// stays in the backlog, so retrying immediately would spin at 100 % CPU.
pub(crate) const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// Is this accept errno a lack of resources (pause) rather than a per-connection error?
pub(crate) fn accept_needs_pause(errno: i32) -> bool {
    matches!(
        errno,
        libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM
    )
}

/// How long the loop may sleep: until the shard's next deadline, at most `cap`.
pub(crate) fn wait_for(shard: &Shard, now: Instant, cap: Duration) -> Duration {
    shard
        .next_deadline()
        .map_or(cap, |d| d.saturating_duration_since(now).min(cap))
}

/// Set the options every accepted socket needs on the listener instead: TCP_NODELAY
/// (frames are batched by the engine already) and, when configured, a fixed SO_SNDBUF.
/// Linux clones an accepted TCP socket from its listener, so both are inherited; that
/// saves one or two `setsockopt` calls per accepted connection on both backends.
pub(crate) fn tune_listener(listener: &socket2::Socket, cfg: &DriverConfig) -> io::Result<()> {
    listener.set_tcp_nodelay(true)?;
    if let Some(bytes) = cfg.socket_send_buffer {
        listener.set_send_buffer_size(bytes.min(i32::MAX as usize))?;
    }
    Ok(())
}

/// Pass ciphertext the socket delivered through a `wss://` connection's session to the
/// shard (`plain` is the driver's scratch for the decrypted bytes). A failed session
/// ends the connection (its alert goes out best effort as the socket closes); the
/// peer's `close_notify` is end of stream ([`Shard::on_eof`]: what is queued still
/// goes out). Either way [`Shard::may_read`] says no from then on. Returns whether the
/// connection wants a flush (handshake messages wait to be sent).
pub(crate) fn deliver_tls(
    shard: &mut Shard,
    key: crate::hub::ConnKey,
    tls: &mut TlsSession,
    ciphertext: &[u8],
    plain: &mut Vec<u8>,
    now: Instant,
) -> bool {
    let seen = tls.receive(ciphertext, plain);
    if !plain.is_empty() {
        shard.on_data(key, plain, now);
    }
    if let Some(e) = tls.error() {
        tracing::debug!(conn = key, error = %e, "TLS failed; closing");
        shard.finish(key, crate::conn::DisconnectReason::Tls);
    } else if seen.peer_closed {
        shard.on_eof(key, now);
    }
    !seen.failed && !seen.peer_closed && tls.wants_write()
}

/// What a driver does next with a `wss://` connection's output.
pub(crate) enum TlsStep {
    /// Write `len` bytes at `ptr`: the session's pending ciphertext, kept alive and
    /// unmoved until the driver reports it written with [`TlsSession::advance`].
    Send(*const u8, usize),
    /// Everything, `close_notify` included, is out: shut down the socket's write side.
    ShutdownWrite,
    /// Nothing to write now (or the connection has just finished, its `close_notify`
    /// written: the driver closes it with the other finished ones).
    Idle,
}

/// Decide [`TlsStep`] for `key`: encrypt what its queue holds when no ciphertext is
/// pending (advancing the queue), and once both are empty ask the shard what follows,
/// queueing `close_notify` before a shutdown or close and doing either only once it
/// is written.
pub(crate) fn tls_next_step(
    shard: &mut Shard,
    key: crate::hub::ConnKey,
    tls: &mut TlsSession,
    now: Instant,
) -> TlsStep {
    loop {
        let Some(slot) = shard.slot(key) else {
            return TlsStep::Idle;
        };
        let (taken, bytes) = tls.next_send(slot.conn.out());
        let (ptr, len) = (bytes.as_ptr(), bytes.len());
        if taken > 0 {
            shard.on_written(key, taken);
        }
        if len > 0 {
            return TlsStep::Send(ptr, len);
        }
        match tls.take_after_notify() {
            Some(AfterNotify::Shutdown) => return TlsStep::ShutdownWrite,
            Some(AfterNotify::Close) => {
                shard.finish_flushed(key);
                return TlsStep::Idle;
            }
            None => {}
        }
        // Send the close_notify, then shut down or close.
        match shard.after_flush(key, now) {
            crate::conn::AfterFlush::ShutdownWrite => tls.close_notify(AfterNotify::Shutdown),
            crate::conn::AfterFlush::Close => tls.close_notify(AfterNotify::Close),
            crate::conn::AfterFlush::Idle => return TlsStep::Idle,
        }
    }
}

/// A TLS session for a just-accepted connection when the server speaks `wss://`.
fn new_session(config: &Option<TlsConfig>) -> Result<Option<Box<TlsSession>>, String> {
    config
        .as_ref()
        .map(|c| TlsSession::new(c).map(Box::new))
        .transpose()
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream};

    use super::*;

    /// `tune_listener` relies on accepted sockets inheriting the listener's options.
    #[test]
    fn accepted_sockets_inherit_the_listener_options() {
        let std_listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = std_listener.local_addr().unwrap();
        let listener = socket2::Socket::from(std_listener);
        let cfg = DriverConfig {
            socket_send_buffer: Some(64 * 1024),
            ..Default::default()
        };
        tune_listener(&listener, &cfg).unwrap();
        let _client = TcpStream::connect(addr).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert!(accepted.tcp_nodelay().unwrap());
        // The kernel doubles SO_SNDBUF for bookkeeping; the default would be larger.
        assert_eq!(accepted.send_buffer_size().unwrap(), 128 * 1024);
    }
}

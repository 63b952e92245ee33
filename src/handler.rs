//! The application API: what a program embedding ringcast implements.
//!
//! A [`Handler`] is shared by all shards (`Send + Sync`) and called on the shard thread
//! that owns the connection, with a [`Context`] that can send, join, leave, publish and
//! close. Callbacks must be quick and must not block: they run inside the event loop.
//! A panic in a callback closes only that connection (1011) and is counted; the shard
//! keeps serving everyone else.

pub use crate::proto::handshake::{Rejection, UpgradeRequest};
pub use crate::shard::context::{ConnId, Context};

/// A complete data message received from, or sent to, a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    Text(&'a str),
    Binary(&'a [u8]),
}

impl<'a> Message<'a> {
    pub fn payload(&self) -> &'a [u8] {
        match self {
            Message::Text(s) => s.as_bytes(),
            Message::Binary(b) => b,
        }
    }
}

/// The decision on an upgrade request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upgrade {
    /// Accept with no identity ([`Context::identity`] is `None`: no restrictions).
    Accept,
    /// Accept and attach this identity to the connection, visible to every later
    /// callback through [`Context::identity`].
    AcceptAs(Identity),
    /// Answer with this HTTP status and reason instead of 101 (e.g. 401, 403, 429); the
    /// reason is the plain-text body. The rejection is counted by status.
    Reject(Rejection),
}

/// Who a connection is and what it may do, decided once by [`Handler::on_upgrade`].
///
/// The server only stores it (one pointer per connection when absent); enforcing the
/// permissions is the application's job (the built-in rooms app checks `can_publish`).
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    /// A label for the application's own use (never logged by the server).
    pub name: String,
    /// May publish to rooms.
    pub can_publish: bool,
    /// May join rooms and receive their messages.
    pub can_subscribe: bool,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("name", &"<redacted>")
            .field("can_publish", &self.can_publish)
            .field("can_subscribe", &self.can_subscribe)
            .finish()
    }
}

/// The peer of a connection being upgraded, resolved only if asked (one `getpeername`).
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub(crate) fd: std::os::fd::RawFd,
}

impl Peer {
    /// The peer's address, or `None` if the socket is already gone.
    pub fn addr(&self) -> Option<std::net::SocketAddr> {
        crate::sys::peer_addr(self.fd).ok()
    }
}

/// Why a connection ended, as seen by [`Handler::on_close`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseInfo {
    pub cause: crate::conn::DisconnectReason,
    /// The close code the peer sent, if it sent a close frame.
    pub peer_code: Option<u16>,
}

/// Application callbacks. Every method has a default, so implement only what you need.
pub trait Handler: Send + Sync + 'static {
    /// Inspect the upgrade request before the 101 is sent (route, authenticate).
    ///
    /// Runs on the shard thread, inside the event loop, after the server's Origin check
    /// (`--allowed-origin`, `--require-origin`) and before the 101: it must be fast and
    /// must not block (no network or disk I/O; look tokens up in memory). A panic here
    /// answers 500 (counted).
    fn on_upgrade(&self, _request: &UpgradeRequest) -> Upgrade {
        Upgrade::Accept
    }
    /// Like [`Handler::on_upgrade`], with the peer's address available on demand
    /// ([`Peer::addr`]). This is what the server calls; the default forwards to
    /// `on_upgrade`. Same rules: shard thread, must be fast.
    fn on_upgrade_from(&self, request: &UpgradeRequest, _peer: Peer) -> Upgrade {
        self.on_upgrade(request)
    }
    /// The connection is open (the 101 is queued).
    fn on_open(&self, _cx: &mut Context<'_>, _request: &UpgradeRequest) {}
    /// A complete data message arrived.
    fn on_message(&self, _cx: &mut Context<'_>, _message: Message<'_>) {}
    /// The connection ended; it has already left all rooms. Sending is a no-op here.
    fn on_close(&self, _cx: &mut Context<'_>, _info: &CloseInfo) {}
}

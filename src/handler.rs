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
    Accept,
    /// Answer with this HTTP status and reason instead of 101.
    Reject(Rejection),
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
    fn on_upgrade(&self, _request: &UpgradeRequest) -> Upgrade {
        Upgrade::Accept
    }
    /// The connection is open (the 101 is queued).
    fn on_open(&self, _cx: &mut Context<'_>, _request: &UpgradeRequest) {}
    /// A complete data message arrived.
    fn on_message(&self, _cx: &mut Context<'_>, _message: Message<'_>) {}
    /// The connection ended; it has already left all rooms. Sending is a no-op here.
    fn on_close(&self, _cx: &mut Context<'_>, _info: &CloseInfo) {}
}

//! The values of the application API that a [`crate::Handler`] receives and returns:
//! [`Message`], [`Upgrade`], [`Identity`], [`Peer`], [`CloseInfo`] (re-exported by
//! [`crate::handler`], where the trait is), and how a message is encoded for one
//! connection ([`prepare`]) or for a publish ([`payload_of`]).
//!
//! They sit here, below the shard's [`super::context::Context`], because the context
//! and the connection slots use them while the `Handler` trait names the context: with
//! the values beside the trait, the trait, the context and the shard calling the trait
//! would import each other.

use crate::proto::frame::Opcode;
use crate::wire::{Kind, Payload, PreparedFrame};

/// A complete data message received from, or sent to, a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    Text(&'a str),
    Binary(&'a [u8]),
}

impl<'a> Message<'a> {
    /// The message's bytes (a text message's UTF-8).
    pub fn payload(&self) -> &'a [u8] {
        match self {
            Message::Text(s) => s.as_bytes(),
            Message::Binary(b) => b,
        }
    }
}

/// Encode an application message as a frame for one connection
/// ([`crate::Context::send`]), compressed when `deflate_min` is `Some(min_size)` (the
/// connection negotiated permessage-deflate), the message is at least that long and
/// compressing shrinks it.
pub fn prepare(message: Message<'_>, deflate_min: Option<usize>) -> PreparedFrame {
    match message {
        Message::Text(s) => PreparedFrame::encode_for(Opcode::Text, s.as_bytes(), deflate_min),
        Message::Binary(b) => PreparedFrame::encode_for(Opcode::Binary, b, deflate_min),
    }
}

/// Encode an application message once, ready to publish to any number of rooms (the
/// [`Payload`] of every publication it makes).
pub fn payload_of(message: Message<'_>) -> Payload {
    match message {
        Message::Text(s) => Payload::encode(Kind::Text, s.as_bytes()),
        Message::Binary(b) => Payload::encode(Kind::Binary, b),
    }
}

/// The decision on an upgrade request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upgrade {
    /// Accept with no identity ([`crate::Context::identity`] is `None`: no restrictions).
    Accept,
    /// Accept and attach this identity to the connection, visible to every later
    /// callback through [`crate::Context::identity`].
    AcceptAs(Identity),
    /// Answer with this HTTP status and reason instead of 101 (e.g. 401, 403, 429); the
    /// reason is the plain-text body. The rejection is counted by status.
    Reject(crate::proto::handshake::Rejection),
}

/// Who a connection is and what it may do, decided once by
/// [`crate::Handler::on_upgrade`].
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

/// Why a connection ended, as seen by [`crate::Handler::on_close`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseInfo {
    pub cause: crate::conn::DisconnectReason,
    /// The close code the peer sent, if it sent a close frame.
    pub peer_code: Option<u16>,
}

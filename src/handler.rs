//! The application API: what a program embedding ringcast implements.
//!
//! A [`Handler`] is shared by all shards (`Send + Sync`) and called on the shard thread
//! that owns the connection, with a [`Context`] that can send, join, leave, publish and
//! close. Callbacks must be quick and must not block: they run inside the event loop.
//! A panic in a callback closes only that connection (1011) and is counted; the shard
//! keeps serving everyone else.
//!
//! The trait is here; the values it takes and returns ([`Message`], [`Upgrade`],
//! [`Identity`], [`Peer`], [`CloseInfo`]) live in [`crate::shard::api`], the
//! [`Context`] in [`crate::shard::context`] and [`ConnId`] in [`crate::shard::slot`],
//! all re-exported here: the shard calls the trait, so none of them may import this
//! file (nor this file `crate::shard` itself, whose `mod.rs` holds the caller).

pub use crate::proto::handshake::{Rejection, Transport, UpgradeRequest};
pub use crate::shard::api::{CloseInfo, Identity, Message, Peer, Upgrade};
pub use crate::shard::context::Context;
pub use crate::shard::slot::ConnId;

/// Application callbacks. Every method has a default, so implement only what you need.
pub trait Handler: Send + Sync + 'static {
    /// Inspect the upgrade request before the 101 is sent (route, authenticate).
    ///
    /// An SSE request (`GET /sse/…`) comes here too, before its `200`: it has
    /// `request.transport == Transport::Sse` (and an empty `key`); a rejection answers it
    /// the same way. [`Context::transport`] tells the two apart in later callbacks.
    ///
    /// An HTTP publish (`POST /publish/{room}`, see [`crate::shard::http_publish`])
    /// comes here too, before its body is read: [`UpgradeRequest::is_publish`] tells
    /// it apart (its `key` is empty, its `transport` the default). Accepting it
    /// publishes the body; the default accepts every request, so a handler that does
    /// not want HTTP publishes refuses them here.
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
    /// The connection is open (the 101, or an SSE stream's 200, is queued).
    fn on_open(&self, _cx: &mut Context<'_>, _request: &UpgradeRequest) {}
    /// A connection resumed this connection's session (`--session-grace`, see
    /// [`crate::shard::session`]): the 101 (or SSE `200`) is queued, the session's rooms are joined,
    /// its buffered messages queued; called instead of [`Handler::on_open`]. The
    /// identity is the new request's (from its own `on_upgrade`), the tag the session's.
    fn on_resume(&self, _cx: &mut Context<'_>, _request: &UpgradeRequest) {}
    /// A complete data message arrived.
    fn on_message(&self, _cx: &mut Context<'_>, _message: Message<'_>) {}
    /// The connection ended; it has already left all rooms. Sending is a no-op here.
    /// With sessions, called once per session: when it ends (not when its socket is
    /// lost and it detaches, nor for a connection whose session was taken over).
    fn on_close(&self, _cx: &mut Context<'_>, _info: &CloseInfo) {}
}

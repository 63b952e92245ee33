//! A resume that lands on the wrong shard: the socket goes to the shard holding the
//! session. The accepting shard records the hand-over and finishes the slot
//! (`handed_off`); its driver cancels the socket's I/O, skips the TLS `close_notify`,
//! takes the fd (and TLS session) back from its backend without closing it and calls
//! [`Shard::send_handover`]; the holder's inbox gets an [`Adoption`], its driver
//! registers the fd as if accepted ([`Shard::take_adoption`]) and calls
//! [`Shard::adopted`], which answers the upgrade (or opens the SSE stream) here.

use std::any::Any;
use std::os::fd::OwnedFd;
use std::time::Instant;

use crate::conn::DisconnectReason;
use crate::hub::{Adoption, ShardMsg};
use crate::proto::handshake::{Transport, UpgradeRequest};
use crate::wire::ConnKey;

use crate::shard::Shard;

use super::store::Handover;

impl Shard {
    /// Hand `key` (its head is `request`) to shard `to`, which holds the session its
    /// token names.
    pub(crate) fn hand_over(&mut self, key: ConnKey, request: &UpgradeRequest, to: usize) {
        let rest = self.state.slots[key].conn.take_leftover();
        self.state.sessions.handovers.insert(
            key,
            Handover {
                to,
                request: request.clone(),
                rest,
            },
        );
        tracing::debug!(conn = %self.state.conn_id(key), to, "handing the socket to the session's shard");
        self.finish(key, DisconnectReason::HandedOff);
    }

    /// True when finished connection `key` is being handed to another shard: the
    /// driver must neither send a TLS `close_notify` nor close its socket, but pass it
    /// to [`Shard::send_handover`] once none of its I/O is in flight.
    pub fn is_handing_over(&self, key: ConnKey) -> bool {
        self.state.sessions.handovers.contains_key(&key)
    }

    /// The driver let go of `key`'s socket `fd` (and its TLS session, `wss://`): send
    /// them to the shard holding the session. The driver then releases the slot as
    /// usual.
    pub fn send_handover(&mut self, key: ConnKey, fd: OwnedFd, tls: Option<Box<dyn Any + Send>>) {
        let Some(h) = self.state.sessions.handovers.remove(&key) else {
            return;
        };
        let adoption = Adoption {
            fd,
            tls,
            request: h.request,
            rest: h.rest,
        };
        self.state
            .hub
            .shared()
            .inbox(h.to)
            .send(ShardMsg::Adopt(Box::new(adoption)));
    }

    /// The next socket handed here by another shard, for the driver to register (then
    /// [`Shard::adopted`]).
    pub fn take_adoption(&mut self) -> Option<Adoption> {
        self.state.sessions.adoptions.pop()
    }

    /// An adopted socket is registered at `key` (from [`Shard::open`]): answer its
    /// upgrade as if this shard had parsed `request`, then feed the bytes read past it.
    pub fn adopted(&mut self, key: ConnKey, request: &UpgradeRequest, rest: &[u8], now: Instant) {
        match request.transport {
            Transport::Sse => self.sse_stream(key, request, now),
            Transport::WebSocket => self.upgrade(key, request, now),
        }
        self.state.mark_dirty(key);
        if !rest.is_empty() {
            self.on_data(key, rest, now);
        }
    }
}

//! The broker seam: where a publish can leave this node and publications from
//! elsewhere come in (cluster adapters live in `broker`, above the hub, and implement
//! [`Broker`]).
//!
//! The hub calls its broker, when it has one, from two places only:
//! - **outbound**: the one publish entry ([`super::HubShared::publish`]) hands every
//!   publication (unnumbered: numbering across nodes is the broker's business) to
//!   [`Broker::publish`] before anything is delivered. [`Route::Local`] lets the hub go
//!   on as without a broker; [`Route::Taken`] means the broker delivers it: the
//!   publication comes back, from this node or another, through
//!   [`super::HubShared::deliver_inbound`], which is how every node gets one order per
//!   room.
//! - **interest**: [`Broker::interest`] with `on = true` when the node's first member of
//!   a room joins (on any shard) and `on = false` when its last member leaves, called
//!   under the directory's write lock so a room's calls arrive in order.
//!
//! - **resume** (history on): a resume that the room's local history cannot serve
//!   (the node holds nothing of the room, or `since` is older than its ring) is offered
//!   to [`Broker::fetch`]; a broker that takes it fills the local history from its own
//!   store, then sends the shard [`super::ShardMsg::Resume`], and the shard resumes
//!   the connection from the local history again.
//!
//! These calls run on a shard thread (or a `Publisher`'s) and must not block or call
//! back into the hub: a real broker queues the work for a thread of its own. Without a
//! broker (`None`, the default) the cost is one branch per publish and per room
//! open/close.

use std::sync::Arc;

use crate::wire::{ConnKey, Publication};

/// A resume taken over by a broker ([`Broker::fetch`]): who resumes which room from
/// which number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRequest {
    pub room: Arc<str>,
    /// The last number the client saw.
    pub since: u64,
    /// The connection's shard, slab key and the slot's generation (a key reused by a
    /// later connection is not resumed).
    pub shard: usize,
    pub key: ConnKey,
    pub generation: u32,
}

/// What the hub does with a publication after [`Broker::publish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Deliver it here now, as without a broker.
    Local,
    /// The broker took it over: it comes back through
    /// [`super::HubShared::deliver_inbound`] (or nowhere); the hub delivers nothing now.
    Taken,
}

/// A cluster adapter behind the hub (see the module doc). `Send + Sync`: every shard
/// calls it.
pub trait Broker: Send + Sync {
    /// Outbound: a publication made on this node. Called once per publish, before
    /// numbering and delivery.
    fn publish(&self, publication: &Arc<Publication>) -> Route;

    /// Room interest: this node's first member of `room` joined (`on`), or its last
    /// left (`!on`).
    fn interest(&self, room: &Arc<str>, on: bool);

    /// A resume the local history cannot serve (see the module doc). True: the broker
    /// took it and will send [`super::ShardMsg::Resume`] to `request.shard` (once);
    /// false (the default): the caller answers from the local history now. Must not
    /// block.
    fn fetch(&self, request: FetchRequest) -> bool {
        let _ = request;
        false
    }
}

//! One shard: the connections, rooms and timers of one thread, and the logic both
//! I/O drivers share.
//!
//! A driver (io_uring or epoll) owns the sockets and the event loop; it tells the
//! shard what happened (`open`, `on_data`, `on_eof`, `on_peer_gone`, `on_written`,
//! inbox wake-ups, time passing) and asks it what to do (`may_read` a connection now,
//! `take_dirty` connections to flush, `after_flush` when one's queue is empty,
//! `take_finished` connections to close). Everything protocol- or application-related
//! happens here, identically for both backends, so comparing backends measures I/O only.
//!
//! End of stream and failure are different events: [`Shard::on_eof`] (the peer's FIN or
//! TLS `close_notify`) lets what is queued drain within `--close-timeout`, then closes;
//! [`Shard::on_peer_gone`] (a reset or socket error) drops it at once. Read-side
//! backpressure is decided here too ([`Shard::may_read`]): the drivers only stop and
//! resume reading.
//!
//! Callbacks into the [`Handler`] get a [`Context`] that borrows [`ShardState`]; a
//! callback's publish is an ordinary method call on that state (`publish`: through
//! the hub's one publish entry, then local delivery), and metrics hooks are called
//! after hub operations return, never while hub state is borrowed. Panics in
//! callbacks are caught and close only that connection with 1011.
//!
//! The files, by concern (the [`Shard`] methods the driver calls are spread over them):
//!
//! | file | holds |
//! | --- | --- |
//! | `mod.rs` | [`Shard`]: its state, handler and inbox; construction |
//! | `state.rs` | [`ShardState`], [`Shared`]; queueing under the slow-consumer policy, dirty list, arming |
//! | `slot.rs` | [`Slot`]: a connection plus the shard's bookkeeping about it; [`ConnId`] |
//! | `input.rs` | bytes and EOF in, events out to the handler; read-side backpressure |
//! | `upgrade.rs` | the upgrade policy: origin check, handler decision, admission, 101 |
//! | `route.rs` | plain (non-upgrade) requests: `GET /sse/…` to `sse.rs`, the rest refused |
//! | `sse.rs` | SSE streams: opening one (200, CORS, `retry:`), their event forms |
//! | `callback.rs` | handler callbacks with panic isolation |
//! | `output.rs` | the write side: dirty list, written bytes, what follows a flush |
//! | `lifecycle.rs` | open, finish, release; graceful shutdown |
//! | `timers.rs` | deadlines: handshake, heartbeat, close; the history sweep |
//! | `inbox.rs` | cross-shard hand-off and the inbox |
//! | `rooms.rs` | membership: join, leave, a slot's rooms |
//! | `publish.rs` | a publish into the hub's entry; local and inbox delivery |
//! | `replay.rs` | history: resume a room, sweep idle histories |
//! | `cluster.rs` | what a broker sends a shard: resumes served after a fetch, announcements |
//! | `api.rs`, `context.rs` | the application API's values and the callback [`Context`] |
//! | `publisher.rs` | [`Publisher`]: publishing from any thread |
//! | `deflate.rs` | permessage-deflate settings and negotiation in the upgrade |
//! | `admission.rs`, `origin.rs`, `config.rs` | connection cap, Origin policy, settings |

pub mod admission;
pub mod api;
mod callback;
mod cluster;
pub mod config;
pub mod context;
pub mod deflate;
mod inbox;
mod input;
mod lifecycle;
pub mod origin;
mod output;
pub mod publish;
pub mod publisher;
pub mod replay;
mod rooms;
mod route;
pub mod slot;
mod sse;
mod state;
mod timers;
mod upgrade;

use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Receiver;

use crate::handler::Handler;
use crate::hub::{Hub, ShardMsg};
use crate::wire::ConnKey;

pub use admission::Admission;
pub use config::ShardConfig;
pub use context::Context;
pub use deflate::DeflateConfig;
pub use origin::{Origin, OriginPolicy};
pub use publisher::Publisher;
pub use replay::Resumed;
pub use slot::{ConnId, Slot};
pub use sse::SSE_PREFIX;
pub use state::{ShardState, Shared};

/// Response header naming the shard that accepted the connection.
pub const SHARD_HEADER: &str = "x-ringcast-shard";

/// A shard: its state, its handler and its inbox.
pub struct Shard {
    state: ShardState,
    handler: Arc<dyn Handler>,
    inbox: Receiver<ShardMsg>,
}

impl Shard {
    /// Shard `id` of a server: `shared` by every shard, `hub` its view of the rooms,
    /// `inbox` where other shards' publications and the shutdown reach it.
    pub fn new(
        id: usize,
        shared: Arc<Shared>,
        hub: Hub,
        handler: Arc<dyn Handler>,
        inbox: Receiver<ShardMsg>,
    ) -> Self {
        let history_sweep_at = hub
            .shared()
            .history()
            .filter(|_| id == 0)
            .map(|h| Instant::now() + replay::sweep_interval(h.config().ttl));
        Shard {
            state: ShardState::new(id, shared, hub, history_sweep_at),
            handler,
            inbox,
        }
    }

    /// The shard's index (0-based).
    pub fn id(&self) -> usize {
        self.state.id
    }

    /// The settings every shard shares.
    pub fn config(&self) -> &ShardConfig {
        &self.state.shared.cfg
    }

    /// The slot of connection `key`, if it is still held.
    pub fn slot(&self, key: ConnKey) -> Option<&Slot> {
        self.state.slots.get(key)
    }

    /// True once a graceful shutdown began ([`Shard::begin_shutdown`]).
    pub fn is_shutting_down(&self) -> bool {
        self.state.shutdown_deadline.is_some()
    }
}

//! One connection's state machine, independent of any socket.
//!
//! Phases, named for what the connection is doing (rustls style):
//! `Handshaking` (collecting the request head) → `Open` (exchanging frames) →
//! `Closing` (our close frame or HTTP error is queued, or the peer's EOF arrived; what
//! is queued drains, and we still read, to see the peer's close or EOF, until the close
//! deadline) → `Closed` (the shard has released it). A plain HTTP request routed by
//! the shard (the HTTP publish) stays `Handshaking` while its body is read, and a
//! keep-alive response returns it there for the next request head. A Server-Sent Events
//! stream (`GET /sse/…`, [`Connection::accept_sse`]) goes through the same phases,
//! output only: events are chunks in the same queue, its close is the last chunk.
//!
//! **End of file from the peer is not an error** ([`Connection::on_eof`]): a TCP FIN
//! (or TLS `close_notify`) ends only the peer's write side, and a half-closed peer can
//! still read. So on EOF nothing more is read, but whatever is queued (the reply to its
//! close frame — RFC 6455 §5.5.1 requires it —, echoes, room frames, an HTTP error
//! response) is still written, within the close deadline; then the socket is closed.
//! Only a reset or a socket error drops the queue. An EOF without a close handshake
//! ends the connection as [`DisconnectReason::Reset`] (abnormal closure, what RFC 6455
//! §7.1.5 calls 1006) unless an earlier reason was recorded; no close frame is sent
//! for it, since the peer can no longer answer one.
//!
//! **Every byte a peer can make us queue is bounded per connection**: data frames by
//! the slow-consumer cap ([`QueueLimits`]); pongs by coalescing (at most 16 unsent,
//! see [`OutQueue::push_pong`]); our close frame and HTTP response once each; and
//! [`Connection::may_read`] stops reading from a peer while its unsent bytes are over
//! the cap (read-side backpressure), so no request/response pattern can make the queue
//! grow with what the peer sends.
//!
//! The shard feeds received bytes with [`Connection::feed`], which decodes them and
//! returns one [`ConnEvent`] at a time for the shard to act on (handler callbacks,
//! publishes); the connection answers pings and closes itself by queueing control
//! frames. Data frames go through [`Connection::send_frame`], which applies the
//! slow-consumer policy. The driver writes [`Connection::out`] and calls
//! [`Connection::written`]. What the shard keeps about a connection (its rooms, its one
//! armed deadline, [`Timer`], from the per-shard [`TimerHeap`]) is the shard's, not here.

mod connection;
mod limits;
pub mod queue;
mod reason;
pub mod timers;

pub use connection::{AfterFlush, ConnEvent, Connection, Enqueue, Eof, Phase};
pub use limits::{ConnLimits, QueueLimits, SlowPolicy};
pub use queue::{Advanced, LocalFrame, OutQueue};
pub use reason::{DisconnectReason, DropReason, InputThrottle, ResumeResult};
pub use timers::{Timeouts, Timer, TimerEntry, TimerHeap};

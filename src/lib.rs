//! ringcast: a Linux WebSocket server engine for high fan-out, thread-per-core, on
//! io_uring (with an epoll backend for comparison and fallback).
//!
//! Layers, imports pointing down only:
//! 1. [`proto`] — RFC 6455 handshake and frames, sans-IO.
//! 2. [`conn`] — one connection's state machine and outbound queue.
//! 3. [`hub`] — rooms on a shard, prepared frames, cross-shard fan-out.
//! 4. [`shard`] and [`driver`] — the per-thread engine and the only code making socket
//!    syscalls (`uring`, `epoll`).
//!
//! Above them: [`server`] (start/stop, [`Publisher`]), [`handler`] (the application API),
//! [`app`] (the binary's built-in apps) and [`cli`].
//!
//! ```no_run
//! use ringcast::{Config, Context, Handler, Message, Server};
//!
//! struct Shout;
//! impl Handler for Shout {
//!     fn on_message(&self, cx: &mut Context<'_>, msg: Message<'_>) {
//!         if let Message::Text(t) = msg {
//!             cx.send(Message::Text(&t.to_uppercase()));
//!         }
//!     }
//! }
//!
//! let server = Server::start(Config::default(), Shout).unwrap();
//! server.shutdown().unwrap();
//! ```

pub mod app;
pub mod cli;
pub mod config;
pub mod conn;
pub mod driver;
pub mod handler;
pub mod hub;
pub mod listener;
pub mod metrics;
pub mod proto;
pub mod server;
pub mod shard;
pub mod sys;
pub mod telemetry;

pub use config::Config;
pub use driver::tls::TlsConfig;
pub use driver::{Backend, BackendChoice};
pub use handler::{
    CloseInfo, ConnId, Context, Handler, Identity, Message, Peer, Rejection, Upgrade,
    UpgradeRequest,
};
pub use proto::room_name::RoomNameError;
pub use server::{Publisher, RunningServer, Server, StartError};

//! ringcast: a Linux WebSocket server engine for high fan-out, thread-per-core, on
//! io_uring (with an epoll backend for comparison and fallback).
//!
//! Layers, imports pointing down only (lowest first; `tests/layering.rs` reads every
//! `crate::`/`super::` path in `src/` and fails on an import against this order or on
//! any import cycle between files):
//!
//! | rank | modules | what |
//! | --- | --- | --- |
//! | 0 | [`proto`], [`sys`] | RFC 6455 handshake and frames, sans-IO; thin syscall helpers |
//! | 1 | [`wire`] | publications and their wire forms; room names, ids |
//! | 2 | [`conn`] | one connection's state machine and outbound queue |
//! | 3 | [`hub`], [`metrics`] | rooms, directory, history, the publish entry and broker seam; metrics hooks |
//! | 4 | [`shard`], [`handler`], [`listener`] | the per-thread engine, [`Publisher`]; the application API |
//! | 5 | [`broker`] | cluster adapters behind the hub: Redis (`--broker`, feature `redis`) |
//! | 6 | [`driver`] | the only code making socket syscalls: one event loop over two backends (`uring`, `epoll`) |
//! | 7 | [`config`] | every layer's settings composed |
//! | 8 | [`server`], [`app`], [`cli`], [`telemetry`] | start/stop, built-in apps |
//!
//! No import breaks the order (the test's list of tolerated exceptions is empty). The
//! application API may live in `shard` or beside it, never in a cycle with it: the
//! [`Handler`] trait is in [`handler`], the values it takes in [`shard::api`], its
//! [`Context`] in [`shard::context`].
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
pub mod broker;
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
pub mod wire;

pub use config::Config;
pub use driver::tls::TlsConfig;
pub use driver::{Backend, BackendChoice};
pub use handler::{
    CloseInfo, ConnId, Context, Handler, Identity, Message, Peer, Rejection, Transport, Upgrade,
    UpgradeRequest,
};
pub use server::{RunningServer, Server, StartError};
pub use shard::Publisher;
pub use wire::room_name::RoomNameError;

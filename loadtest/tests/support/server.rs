//! Test support: the real ringcast server, started in the test process on an ephemeral
//! loopback port with the built-in apps, on each backend.

#![allow(dead_code)] // shared by several test binaries, each uses a part

use std::net::SocketAddr;
use std::sync::Arc;

use ringcast::app::Builtin;
use ringcast::{BackendChoice, Config, RunningServer, Server};

/// Every run is repeated on both backends.
pub const BACKENDS: [BackendChoice; 2] = [BackendChoice::Uring, BackendChoice::Epoll];

/// A ringcast server with `threads` shards on 127.0.0.1, port chosen by the kernel.
pub fn start(backend: BackendChoice, threads: usize) -> RunningServer {
    ringcast::sys::raise_nofile_limit(None).expect("raise RLIMIT_NOFILE");
    let cfg = Config {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        threads,
        backend,
        pin_threads: false,
        ..Config::default()
    };
    Server::start_shared(cfg, Arc::new(Builtin::default())).expect("server starts")
}

//! Starting a server on a port held by a plain (non-SO_REUSEPORT) listener fails, and
//! the error carries the bind diagnostics; two servers can share nothing by accident.

mod common;

use std::net::TcpListener;

use common::*;
use ringcast::{Server, StartError};

#[test]
fn a_port_held_without_reuseport_fails_with_diagnostics() {
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = holder.local_addr().unwrap();
    for backend in BACKENDS {
        let mut cfg = config(backend, 2);
        cfg.addr = addr;
        let err = match Server::start(cfg, ringcast::app::Builtin::default()) {
            Err(e) => e,
            Ok(_) => panic!("{backend:?}: start succeeded on a held port"),
        };
        assert!(matches!(err, StartError::Bind(_)), "{err:?}");
        let text = err.to_string();
        for needle in [
            &addr.to_string()[..],
            "Address already in use",
            "after 7 retries",
            "SO_REUSEADDR",
            "SO_REUSEPORT",
            "state 0A",
            "open fds",
            "RLIMIT_NOFILE",
        ] {
            assert!(
                text.contains(needle),
                "{backend:?}: missing {needle:?} in:\n{text}"
            );
        }
        // The holder's socket is listed among the listeners on that port.
        let listed = text
            .lines()
            .any(|l| l.contains(&addr.to_string()) && l.contains("inode="));
        assert!(listed, "no listener line in:\n{text}");
    }
}

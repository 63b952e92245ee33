//! Leak-free session churn: 50,000 detach/expire cycles per backend against the
//! `ringcast` binary in its own process (`--session-grace 20ms`): each cycle upgrades
//! (joining a room), resets the connection (SO_LINGER 0) and lets the session expire.
//! Afterwards no session is held, every one ended `grace_expired`, the open fd count
//! is back to its baseline exactly and the resident set near its baseline (measured
//! after a warm-up of the same churn, so allocator high-water marks are in both).

mod common;

use std::time::Duration;

use common::process::ServerProcess;
use common::{poll_until, raw_upgraded_from, source_ip};

const WARM_UP: usize = 5_000;
const CYCLES: usize = 50_000;

/// Upgrade, then reset the connection.
fn detach_cycle(addr: std::net::SocketAddr, i: usize) {
    let s = raw_upgraded_from(addr, "/ws/churn", source_ip(i));
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

/// Run `cycles` cycles from `first`, then wait until every session expired: every
/// connection counts closed twice (its reset, then its session's `grace_expired`).
fn churn(server: &ServerProcess, first: usize, cycles: usize) {
    for i in first..first + cycles {
        detach_cycle(server.addr, i);
    }
    let expired = (first + cycles) as f64;
    assert!(
        poll_until(Duration::from_secs(60), || server
            .counter("ringcast_connections_closed_total")
            - server.counter("ringcast_connections_opened_total")
            == expired),
        "every session expired"
    );
    assert_eq!(server.counter("ringcast_sessions_active"), 0.0);
    assert_eq!(server.counter("ringcast_sessions_detached"), 0.0);
    assert_eq!(server.counter("ringcast_session_buffer_bytes"), 0.0);
}

#[test]
fn fifty_thousand_detach_expire_cycles_return_fds_and_rss_to_baseline() {
    for backend in ["uring", "epoll"] {
        let server = ServerProcess::spawn(&[
            "--threads",
            "2",
            "--no-pin",
            "--backend",
            backend,
            "--session-grace",
            "20ms",
            "--metrics-addr",
            "127.0.0.1:0",
            "--log-level",
            "error",
        ]);
        let pid = server.child.id();
        churn(&server, 0, WARM_UP);
        let (fds, rss) = (server.settled_fds(), rss_kib(pid));
        churn(&server, WARM_UP, CYCLES);
        let (fds_after, rss_after) = (server.settled_fds(), rss_kib(pid));
        println!(
            "{backend}: {CYCLES} detach/expire cycles: fds {fds} -> {fds_after}, \
             RSS {rss} KiB -> {rss_after} KiB"
        );
        assert_eq!(fds_after, fds, "{backend}: fds back to baseline");
        assert!(
            rss_after <= rss + rss / 4 + 4096,
            "{backend}: RSS {rss_after} KiB vs baseline {rss} KiB"
        );
    }
}

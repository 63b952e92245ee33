//! Leak-free churn: 5,000 connect/disconnect cycles per backend, mixing clean closes,
//! abrupt resets (SO_LINGER 0) and peers that vanish without a close frame, against the
//! `ringcast` binary in its own process; afterwards the server's open fd count is back
//! to its baseline exactly and its Prometheus counters say every accepted connection
//! was closed.

mod common;

use std::io::Write;
use std::time::Duration;

use common::process::ServerProcess;
use common::{close_code, poll_until, raw_upgraded_from, read_to_close, source_ip, TIMEOUT};
use ringcast::proto::frame::{encode_masked_frame, Opcode};

const CYCLES: usize = 5000;

fn upgrade(addr: std::net::SocketAddr, i: usize) -> std::net::TcpStream {
    raw_upgraded_from(addr, "/ws/churn", source_ip(i))
}

/// What each open fd of `pid` points to, sorted (for the failure message).
fn fd_listing(pid: u32) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .map(|p| p.display().to_string())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn fds_return_to_baseline_after_mixed_churn() {
    for backend in ["uring", "epoll"] {
        let server = ServerProcess::spawn(&[
            "--threads",
            "2",
            "--no-pin",
            "--backend",
            backend,
            "--close-timeout",
            "500ms",
            "--metrics-addr",
            "127.0.0.1:0",
            "--log-level",
            "error",
        ]);
        let addr = server.addr;
        // Warm up with one connection, then take the baseline once it is gone and the
        // count holds still (a metrics scrape's socket may linger for a moment).
        drop(upgrade(addr, 0));
        assert!(poll_until(TIMEOUT, || server
            .counter("ringcast_connections_closed_total")
            == 1.0));
        let baseline = server.settled_fds();
        let before = fd_listing(server.child.id());

        for i in 0..CYCLES {
            let mut s = upgrade(addr, i);
            match i % 3 {
                0 => {
                    // Clean: close frame, wait for the server's close and EOF.
                    s.write_all(&encode_masked_frame(
                        true,
                        Opcode::Close,
                        &1000u16.to_be_bytes(),
                        [1, 2, 3, 4],
                    ))
                    .unwrap();
                    let rest = read_to_close(&mut s);
                    assert_eq!(close_code(&rest), Some(1000), "{backend}: cycle {i}");
                }
                1 => {
                    // Abrupt reset.
                    socket2::SockRef::from(&s)
                        .set_linger(Some(Duration::ZERO))
                        .unwrap();
                }
                _ => {} // Vanish: FIN without a close frame.
            }
        }
        let total = (CYCLES + 1) as f64;
        assert!(
            poll_until(Duration::from_secs(20), || server
                .counter("ringcast_connections_closed_total")
                == total),
            "{backend}: every accepted connection reported closed"
        );
        assert_eq!(server.counter("ringcast_connections_opened_total"), total);
        assert!(
            poll_until(Duration::from_secs(20), || server.settled_fds() == baseline),
            "{backend}: fds {} vs baseline {baseline}: before {before:?} after {:?}",
            server.fds(),
            fd_listing(server.child.id())
        );
    }
}

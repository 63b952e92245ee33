//! Leak-free churn: 5,000 connect/disconnect cycles per backend, mixing clean closes,
//! abrupt resets (SO_LINGER 0) and peers that vanish without a close frame; afterwards
//! the process's open fd count is back to its baseline exactly, every accepted
//! connection was reported closed, and no admission slot is held.
//! (Its own test binary: it counts the whole process's fds.)

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::*;
use ringcast::proto::frame::{encode_masked_frame, Opcode};
use ringcast::sys::open_fd_count;

const CYCLES: usize = 5000;

fn upgrade(addr: std::net::SocketAddr, i: usize) -> std::net::TcpStream {
    let mut s = tcp_from(addr, source_ip(i));
    s.write_all(&upgrade_request("/ws/churn")).unwrap();
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 512];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed during handshake");
        head.extend_from_slice(&buf[..n]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"));
    s
}

#[test]
fn fds_return_to_baseline_after_mixed_churn() {
    for backend in BACKENDS {
        let mut cfg = config(backend, 2);
        cfg.max_connections = 10_000;
        cfg.close_timeout = Duration::from_millis(500);
        let (server, rec) = start_recorded(cfg, ringcast::app::Builtin::default());
        let addr = server.local_addr();
        // Warm up, then take the baseline.
        drop(upgrade(addr, 0));
        assert!(poll_until(TIMEOUT, || server.admitted() == 0));
        let baseline = open_fd_count(None).unwrap();
        let opened_before = rec.get("opened");

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
                    assert_eq!(close_code(&rest), Some(1000), "{backend:?}: cycle {i}");
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
        assert!(
            poll_until(Duration::from_secs(20), || rec.get("closed")
                == rec.get("opened")),
            "{backend:?}: every accepted connection reported closed: {:?}",
            rec.snapshot()
        );
        assert_eq!(rec.get("opened") - opened_before, CYCLES as u64);
        assert!(
            poll_until(Duration::from_secs(20), || open_fd_count(None).unwrap()
                == baseline),
            "{backend:?}: fds {} vs baseline {baseline}",
            open_fd_count(None).unwrap()
        );
        assert_eq!(
            server.admitted(),
            0,
            "{backend:?}: no admission slot leaked"
        );
        server.shutdown().unwrap();
    }
}

//! Out of file descriptors: a server whose RLIMIT_NOFILE is exhausted pauses accepting
//! instead of spinning on the listener (the pending connections wait in the backlog),
//! keeps serving the connections it has, and accepts the waiting ones once fds free up —
//! on both backends.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::process::ServerProcess;
use common::{source_ip, tcp_from, upgrade_request};

const LIMIT: u64 = 48;
const CLIENTS: usize = 60;

/// Read until the end of a response head or `timeout`; true if a 101 arrived.
fn upgraded_within(s: &mut TcpStream, timeout: Duration) -> bool {
    s.set_read_timeout(Some(timeout)).unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    head.starts_with(b"HTTP/1.1 101")
}

#[test]
fn exhausted_fds_pause_accepting_without_spinning() {
    for backend in ["uring", "epoll"] {
        let server = ServerProcess::spawn_with(
            &[
                "--threads",
                "1",
                "--backend",
                backend,
                "--metrics-addr",
                "off",
                "--log-level",
                "error",
            ],
            Some(LIMIT),
        );
        // Every client sends its upgrade request at once; the kernel queues the ones the
        // server cannot accept yet.
        let mut clients: Vec<TcpStream> = (0..CLIENTS)
            .map(|i| {
                let mut s = tcp_from(server.addr, source_ip(i));
                s.write_all(&upgrade_request("/ws/fds")).unwrap();
                s
            })
            .collect();
        let mut upgraded = Vec::new();
        let mut waiting = Vec::new();
        for (i, s) in clients.iter_mut().enumerate() {
            if upgraded_within(s, Duration::from_millis(300)) {
                upgraded.push(i);
            } else {
                waiting.push(i);
            }
        }
        assert!(
            !waiting.is_empty(),
            "{backend}: the fd limit was never reached"
        );
        assert!(
            upgraded.len() > 10,
            "{backend}: {} upgraded",
            upgraded.len()
        );

        // While fds are exhausted the server must idle, not spin on the listener.
        let cpu_before = server.cpu_time();
        let wall = Instant::now();
        std::thread::sleep(Duration::from_millis(1000));
        let busy = (server.cpu_time() - cpu_before).as_secs_f64() / wall.elapsed().as_secs_f64();
        assert!(
            busy < 0.5,
            "{backend}: server used {:.0} % CPU while out of fds",
            busy * 100.0
        );

        // Free some fds: the waiting clients get their upgrade.
        let freed = waiting.len() + 2;
        for &i in upgraded.iter().take(freed) {
            let _ = clients[i].shutdown(std::net::Shutdown::Both);
        }
        for &i in &waiting {
            assert!(
                upgraded_within(&mut clients[i], Duration::from_secs(5)),
                "{backend}: waiting client {i} was never accepted"
            );
        }
    }
}

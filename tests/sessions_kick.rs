//! A session the server is closing cannot be resumed, through real sockets on both
//! backends. A kick (`Context::close`, and the slow-consumer `close` policy, which
//! goes the same way) starts the close handshake and marks the session to end with
//! the connection; until the client answers the close (or `--close-timeout`), the
//! session is still held. A resume in that window used to get `resumed` — with none of
//! what the rooms published since (the closing connection is out of the fan-out and
//! nothing is buffered for it) and no `lost` report. It now gets `unknown` and a fresh
//! session.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::session::session_config;
use common::*;
use ringcast::shard::session::{RESUME_HEADER, TOKEN_HEADER};
use ringcast::{Context, Handler, Message as AppMessage};

/// Joins `/ws/{room}`'s room; a text message "kick" closes the connection (4000).
struct Kicker;

impl Handler for Kicker {
    fn on_open(&self, cx: &mut Context<'_>, request: &ringcast::UpgradeRequest) {
        cx.join(request.path.trim_start_matches("/ws/")).unwrap();
    }

    fn on_message(&self, cx: &mut Context<'_>, message: AppMessage<'_>) {
        if matches!(message, AppMessage::Text("kick")) {
            cx.close(4000, "kicked");
        }
    }
}

/// Upgrade on `/ws/k` with `extra` header lines; the stream and the 101 head.
fn upgrade(addr: SocketAddr, extra: &str) -> (TcpStream, String) {
    let mut s = tcp_from(addr, source_ip(0));
    let request = String::from_utf8(upgrade_request("/ws/k")).unwrap();
    let request = request.replacen("\r\n\r\n", &format!("\r\n{extra}\r\n"), 1);
    s.write_all(request.as_bytes()).unwrap();
    let head = read_head(&mut s);
    (s, String::from_utf8(head).unwrap())
}

fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
}

#[test]
fn a_session_the_server_is_closing_is_not_resumed() {
    for backend in BACKENDS {
        let cfg = session_config(backend, 1, Duration::from_secs(60));
        let (server, rec) = start_recorded(cfg, Kicker);
        let addr = server.local_addr();
        let (mut a, head) = upgrade(addr, "");
        let token = header(&head, TOKEN_HEADER).expect("a token").to_string();
        // A masked text frame "kick" (zero mask); then read the server's close frame
        // and do not answer it: the close handshake stays open.
        a.write_all(&[0x81, 0x84, 0, 0, 0, 0, b'k', b'i', b'c', b'k'])
            .unwrap();
        a.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        while close_code(&got).is_none() {
            let n = a.read(&mut buf).unwrap();
            assert!(n > 0, "{backend:?}: closed before the close frame");
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(close_code(&got), Some(4000));
        let (_b, head) = upgrade(addr, &format!("{TOKEN_HEADER}: {token}\r\n"));
        assert_eq!(header(&head, RESUME_HEADER), Some("unknown"), "{backend:?}");
        assert_ne!(header(&head, TOKEN_HEADER), Some(token.as_str()));
        assert_eq!(rec.get("resume:unknown"), 1);
        drop(a);
        assert!(poll_until(TIMEOUT, || rec.level("detached") == 0));
        server.shutdown().unwrap();
    }
}

#[test]
fn a_session_closed_as_a_slow_consumer_is_not_resumed() {
    use ringcast::config::SlowPolicy;
    for backend in BACKENDS {
        let mut cfg = session_config(backend, 1, Duration::from_secs(60));
        cfg.shard.queue.max_bytes = 16 * 1024;
        cfg.shard.queue.policy = SlowPolicy::Close;
        cfg.driver.socket_send_buffer = Some(16 * 1024);
        let (server, rec) = start_recorded(cfg, Kicker);
        let addr = server.local_addr();
        let (a, head) = upgrade(addr, "");
        socket2::SockRef::from(&a)
            .set_recv_buffer_size(4096)
            .unwrap();
        let token = header(&head, TOKEN_HEADER).expect("a token").to_string();
        // `a` never reads: its queue passes the cap and the server starts closing it
        // (the dropped frames count as connection_closed); the close stays unanswered.
        let publisher = server.publisher();
        let big = "x".repeat(8 * 1024);
        assert!(poll_until(TIMEOUT, || {
            publisher.publish("k", AppMessage::Text(&big)).unwrap();
            rec.get("dropped:connection_closed") > 0
        }));
        let (_b, head) = upgrade(addr, &format!("{TOKEN_HEADER}: {token}\r\n"));
        assert_eq!(header(&head, RESUME_HEADER), Some("unknown"), "{backend:?}");
        drop(a);
        server.shutdown().unwrap();
    }
}

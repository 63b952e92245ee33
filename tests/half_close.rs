//! End of file from the peer is not an error (issue 12 item 2), through real sockets on
//! both backends: a peer that half-closes (`shutdown(SHUT_WR)`) right after its close
//! frame, a message, or a bad request head still receives everything the server had
//! queued for it — the close reply (RFC 6455 §5.5.1), the echo, the room frame, the
//! HTTP error, over TLS the `close_notify` too — and only then the server's FIN. A
//! queue that cannot drain is dropped at `--close-timeout`; a reset drops it at once.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use common::*;
use ringcast::app::Builtin;
use ringcast::proto::frame::{encode_masked_frame, Opcode};
use ringcast::BackendChoice;

/// The masked close frame from the issue: code 1000, mask 37 fa 21 3d.
const CLOSE_1000: [u8; 8] = [0x88, 0x82, 0x37, 0xfa, 0x21, 0x3d, 0x34, 0x12];
const TRIES: usize = 200;
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Read until the server's FIN; a reset (or a timeout) fails the test.
fn read_until_fin(s: &mut TcpStream, what: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => panic!("{what}: no clean FIN after {} bytes: {e}", out.len()),
        }
    }
}

fn recorded(
    backend: BackendChoice,
    threads: usize,
) -> (ringcast::RunningServer, std::sync::Arc<recorder::Recorder>) {
    start_recorded(config(backend, threads), Builtin::default())
}

#[test]
fn the_close_reply_reaches_a_peer_that_half_closes_after_its_close_frame() {
    for backend in BACKENDS {
        let (server, rec) = recorded(backend, 2);
        let addr = server.local_addr();
        for i in 0..TRIES {
            let mut s = raw_upgraded(addr, "/echo");
            s.write_all(&CLOSE_1000).unwrap();
            s.shutdown(Shutdown::Write).unwrap();
            let got = read_until_fin(&mut s, &format!("{backend:?} try {i}"));
            assert_eq!(
                parse_frames(&got),
                vec![(8, 1000u16.to_be_bytes().to_vec())],
                "{backend:?} try {i}: exactly the close reply 1000 before the FIN"
            );
        }
        assert!(
            poll_until(TIMEOUT, || rec.get("closed:normal") == TRIES as u64),
            "{backend:?}: every try is a normal close: {:?}",
            rec.snapshot()
        );
        assert_eq!(rec.get("closed:reset"), 0, "{backend:?}");
        server.shutdown().unwrap();
    }
}

#[test]
fn an_echo_and_a_room_frame_queued_before_the_fin_are_delivered() {
    for backend in BACKENDS {
        let (server, rec) = recorded(backend, 2);
        let addr = server.local_addr();
        for i in 0..50u32 {
            // /echo: the message, then FIN; the echo comes back, then the server's FIN
            // (no close frame: the peer can no longer answer one).
            let mut s = raw_upgraded(addr, "/echo");
            let payload = format!("echo {i}");
            s.write_all(&encode_masked_frame(
                true,
                Opcode::Text,
                payload.as_bytes(),
                KEY,
            ))
            .unwrap();
            s.shutdown(Shutdown::Write).unwrap();
            let got = read_until_fin(&mut s, &format!("{backend:?} echo {i}"));
            assert_eq!(
                parse_frames(&got),
                vec![(1, payload.into_bytes())],
                "{backend:?}"
            );

            // A room: the sender is a member, so its own publish is queued to it.
            let mut s = raw_upgraded(addr, "/ws/half-close");
            let payload = format!("room {i}");
            let mut input = encode_masked_frame(true, Opcode::Binary, payload.as_bytes(), KEY);
            input.extend_from_slice(&CLOSE_1000);
            s.write_all(&input).unwrap();
            s.shutdown(Shutdown::Write).unwrap();
            let got = read_until_fin(&mut s, &format!("{backend:?} room {i}"));
            assert_eq!(
                parse_frames(&got),
                vec![
                    (2, payload.into_bytes()),
                    (8, 1000u16.to_be_bytes().to_vec())
                ],
                "{backend:?}"
            );
        }
        assert!(
            poll_until(TIMEOUT, || rec.get("closed") == 100),
            "{:?}",
            rec.snapshot()
        );
        // A bare EOF is an abnormal closure (reset); the close handshake a normal one.
        assert_eq!(
            (rec.get("closed:reset"), rec.get("closed:normal")),
            (50, 50)
        );
        server.shutdown().unwrap();
    }
}

#[test]
fn an_http_error_queued_before_the_fin_is_delivered() {
    for backend in BACKENDS {
        let (server, rec) = recorded(backend, 1);
        let addr = server.local_addr();
        for (request, status) in [
            (upgrade_request("/nowhere"), "404"),
            (b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), "400"),
        ] {
            for i in 0..20 {
                let mut s = tcp_from(addr, source_ip(i));
                s.write_all(&request).unwrap();
                s.shutdown(Shutdown::Write).unwrap();
                let got = read_until_fin(&mut s, &format!("{backend:?} {status}"));
                let text = String::from_utf8_lossy(&got);
                assert!(
                    text.starts_with(&format!("HTTP/1.1 {status} ")) && text.contains("\r\n\r\n"),
                    "{backend:?}: {text}"
                );
                // The whole response, body included.
                let (head, body) = text.split_once("\r\n\r\n").unwrap();
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .expect("content-length");
                assert_eq!(body.len(), length, "{backend:?}: {text}");
            }
        }
        assert!(poll_until(TIMEOUT, || rec.get("rejected:404") == 20
            && rec.get("rejected:400") == 20));
        // A head cut short by EOF gets no answer and closes at once.
        let mut s = tcp_from(addr, source_ip(0));
        s.write_all(b"GET /echo HTTP/1.1\r\nHost").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        assert!(read_until_fin(&mut s, "partial head").is_empty());
        server.shutdown().unwrap();
    }
}

/// A large echo is still being written (an io_uring send in flight, the socket full)
/// when the EOF arrives: all of it, then the close reply, then the FIN.
#[test]
fn eof_while_a_large_echo_is_being_written_loses_nothing() {
    const SIZE: usize = 600 * 1024;
    for backend in BACKENDS {
        let mut cfg = config(backend, 1);
        cfg.driver.socket_send_buffer = Some(16 * 1024);
        let (server, rec) = start_recorded(cfg, Builtin::default());
        let addr = server.local_addr();
        for i in 0..5u8 {
            let mut s = raw_upgraded(addr, "/echo");
            let payload: Vec<u8> = (0..SIZE).map(|j| (j as u8) ^ i).collect();
            let mut input = encode_masked_frame(true, Opcode::Binary, &payload, KEY);
            input.extend_from_slice(&CLOSE_1000);
            // Write from another thread: the server's echo fills our receive window
            // while we are still sending.
            let mut writer = s.try_clone().unwrap();
            let sender = std::thread::spawn(move || {
                writer.write_all(&input).unwrap();
                writer.shutdown(Shutdown::Write).unwrap();
            });
            let got = read_until_fin(&mut s, &format!("{backend:?} large {i}"));
            sender.join().unwrap();
            assert!(
                got.len() >= SIZE,
                "{backend:?} try {i}: {} bytes; {:?}",
                got.len(),
                rec.snapshot()
            );
            let frames = parse_frames(&got);
            assert_eq!(frames.len(), 2, "{backend:?}");
            assert!(frames[0] == (2, payload), "{backend:?}: the echo is intact");
            assert_eq!(frames[1], (8, 1000u16.to_be_bytes().to_vec()));
        }
        assert!(
            poll_until(TIMEOUT, || rec.get("closed:normal") == 5),
            "{:?}",
            rec.snapshot()
        );
        server.shutdown().unwrap();
    }
}

/// A peer that half-closes and never reads cannot hold its queue forever: it is dropped
/// at `--close-timeout`.
#[test]
fn a_queue_that_cannot_drain_after_eof_is_dropped_at_the_close_timeout() {
    for backend in BACKENDS {
        let mut cfg = config(backend, 1);
        cfg.driver.socket_send_buffer = Some(16 * 1024);
        cfg.shard.timeouts.close = Duration::from_millis(300);
        let (server, rec) = start_recorded(cfg, Builtin::default());
        let addr = server.local_addr();
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket.connect_timeout(&addr.into(), TIMEOUT).unwrap();
        let mut s: TcpStream = socket.into();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        s.write_all(&upgrade_request("/echo")).unwrap();
        let mut head = [0u8; 1];
        let mut seen = Vec::new();
        while !seen.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut head).unwrap();
            seen.push(head[0]);
        }
        let payload = vec![7u8; 512 * 1024];
        s.write_all(&encode_masked_frame(true, Opcode::Binary, &payload, KEY))
            .unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let started = std::time::Instant::now();
        assert!(
            poll_until(TIMEOUT, || rec.get("closed:reset") == 1),
            "{backend:?}: {:?}",
            rec.snapshot()
        );
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(250),
            "{backend:?}: closed before the deadline: {took:?}"
        );
        assert!(
            rec.get("dropped:connection_closed") >= 1,
            "{backend:?}: the unsent echo is counted"
        );
        server.shutdown().unwrap();
    }
}

/// A reset is not an EOF: the connection ends at once and its queue is dropped.
#[test]
fn a_reset_drops_the_queue_at_once() {
    for backend in BACKENDS {
        let mut cfg = config(backend, 1);
        cfg.driver.socket_send_buffer = Some(16 * 1024);
        let (server, rec) = start_recorded(cfg, Builtin::default());
        let addr = server.local_addr();
        let s = raw_upgraded(addr, "/echo");
        let mut w = s.try_clone().unwrap();
        w.write_all(&encode_masked_frame(
            true,
            Opcode::Binary,
            &vec![1u8; 256 * 1024],
            KEY,
        ))
        .unwrap();
        // Wait until the echo is queued (its first bytes arrive), then reset.
        let mut first = [0u8; 1];
        (&s).read_exact(&mut first).unwrap();
        socket2::SockRef::from(&s)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop((s, w));
        assert!(
            poll_until(TIMEOUT, || rec.get("closed:reset") == 1),
            "{backend:?}: {:?}",
            rec.snapshot()
        );
        server.shutdown().unwrap();
    }
}

#[cfg(feature = "tls")]
mod tls {
    use super::*;
    use common::tls::*;

    /// Over TLS: the close reply and then the server's `close_notify` reach a peer that
    /// half-closed right after its close frame, with (`notify`) or without sending its
    /// own `close_notify` first.
    #[test]
    fn over_tls_the_close_reply_and_close_notify_arrive_before_the_fin() {
        for backend in BACKENDS {
            let (server_tls, cert) = self_signed();
            let mut cfg = config(backend, 2);
            cfg.driver.tls = Some(server_tls);
            let (server, rec) = start_recorded(cfg, Builtin::default());
            let addr = server.local_addr();
            let client = client_config(&cert);
            for i in 0..TRIES {
                let notify = i % 2 == 0;
                let mut s = tls_stream(addr, source_ip(i), &client);
                s.write_all(&upgrade_request("/echo")).unwrap();
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    s.read_exact(&mut byte).unwrap();
                    head.push(byte[0]);
                }
                assert!(head.starts_with(b"HTTP/1.1 101"));
                s.write_all(&CLOSE_1000).unwrap();
                if notify {
                    s.conn.send_close_notify();
                }
                s.flush().unwrap();
                if let Err(e) = s.sock.shutdown(Shutdown::Write) {
                    panic!("{backend:?} try {i} notify {notify}: shutdown: {e}");
                }
                // rustls reads 0 only after the server's close_notify; a FIN without it
                // is an UnexpectedEof error.
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                        Err(e) => {
                            panic!("{backend:?} try {i} (notify {notify}): {e} after {got:?}")
                        }
                    }
                }
                assert_eq!(
                    parse_frames(&got),
                    vec![(8, 1000u16.to_be_bytes().to_vec())],
                    "{backend:?} try {i}"
                );
                // Then the TCP FIN.
                match s.sock.read(&mut buf) {
                    Ok(0) => {}
                    other => panic!("{backend:?} try {i} notify {notify}: {other:?}"),
                }
            }
            assert!(
                poll_until(TIMEOUT, || rec.get("closed:normal") == TRIES as u64),
                "{backend:?}: {:?}",
                rec.snapshot()
            );
            server.shutdown().unwrap();
        }
    }
}

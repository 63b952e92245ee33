//! What a peer can make the server hold is bounded per connection (issue 12 item 1),
//! through real sockets on both backends.
//!
//! * A peer that never reads (SO_RCVBUF 4096) floods pings — empty ones (the issue's
//!   `89 80 37 fa 21 3d`) and 125-byte ones — and, on a third connection, sends an
//!   upgrade head with megabytes of pings pipelined behind it: the server binary's RSS
//!   (`VmRSS` of the spawned `ringcast`, so nothing of the test's own memory counts)
//!   stays within a few MiB of its value before, pongs are coalesced (counted in
//!   `input_throttled_total{action="pong_coalesced"}`), and every connection still
//!   answers afterwards.
//! * Read-side backpressure: a connection whose unsent bytes are over
//!   `--max-queue-bytes` is not read (counted once per pause) and is read again once
//!   its peer drains it: its later messages are still answered.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::process::ServerProcess;
use common::*;
use ringcast::app::Builtin;
use ringcast::conn::SlowPolicy;
use ringcast::proto::frame::{encode_masked_frame, Opcode};
use socket2::{Domain, Socket, Type};

/// The masked empty ping.
const EMPTY_PING: [u8; 6] = [0x89, 0x80, 0x37, 0xfa, 0x21, 0x3d];
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
/// Server RSS growth allowed over a whole flood (the issue saw +110–220 MiB for 16 MiB
/// of empty pings before the fix).
const MAX_GROWTH: u64 = 8 << 20;
/// Each flood stops at this many bytes or after FLOOD_TIME, whichever comes first...
const FLOOD_TIME: Duration = Duration::from_secs(8);
/// ...and must have sent at least this much for the test to mean anything (1 MiB of
/// empty pings queued ~25 MiB of pongs before the fix).
const MIN_FLOOD: usize = 2 << 20;

fn rss(server: &ServerProcess) -> u64 {
    ringcast::sys::rss_bytes(Some(server.child.id())).unwrap()
}

/// A labelled sample from the binary's `/metrics`.
fn sample(server: &ServerProcess, series: &str) -> f64 {
    let mut s = TcpStream::connect(server.metrics.expect("metrics on")).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in /metrics"))
}

/// A client socket with a 4 KiB receive buffer, connected to `addr`.
fn small_window(addr: SocketAddr) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect_timeout(&addr.into(), TIMEOUT).unwrap();
    let s: TcpStream = socket.into();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s
}

/// Read the response head (byte by byte, so nothing after it is consumed).
fn read_head(s: &mut impl Read) -> Vec<u8> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    head
}

/// Write `chunk` again and again, never reading, until `limit` bytes, FLOOD_TIME, or
/// the server stops reading (a write that times out: that bounds it too). Calls
/// `sample` after each chunk. Returns the bytes written.
fn flood(s: &mut TcpStream, chunk: &[u8], limit: usize, sample: impl FnMut()) -> usize {
    s.set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let sent = flood_stream(s, chunk, limit, sample);
    s.set_write_timeout(None).unwrap();
    sent
}

/// [`flood`] over any stream whose writes time out when the server stops reading.
fn flood_stream(s: &mut impl Write, chunk: &[u8], limit: usize, mut sample: impl FnMut()) -> usize {
    let started = Instant::now();
    let mut sent = 0;
    let mut stalled = false;
    while sent < limit && started.elapsed() < FLOOD_TIME {
        // Continue where a short write stopped: frames must stay whole.
        match s.write(&chunk[sent % chunk.len()..]) {
            Ok(n) => sent += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                stalled = true;
                break;
            }
            Err(e) => panic!("flood write failed after {sent} bytes: {e}"),
        }
        sample();
    }
    // End on a frame boundary, unless the server stopped reading.
    let rest = (chunk.len() - sent % chunk.len()) % chunk.len();
    if rest > 0 && !stalled {
        s.write_all(&chunk[chunk.len() - rest..]).unwrap();
        sent += rest;
    }
    sent
}

/// The connection still works: a text message is echoed back (pongs may come first).
fn still_echoes(s: &mut (impl Read + Write), what: &str) {
    s.write_all(&encode_masked_frame(
        true,
        Opcode::Text,
        b"still there?",
        KEY,
    ))
    .unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "{what}: no echo");
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "{what}: closed before the echo");
        got.extend_from_slice(&buf[..n]);
        // Server frames are whole pongs (opcode 0xA) and then the echo; parse what is
        // complete so far.
        let mut rest = &got[..];
        while rest.len() >= 2 {
            let len = (rest[1] & 0x7F) as usize;
            assert!(len < 126, "{what}: only pongs and a short echo expected");
            if rest.len() < 2 + len {
                break;
            }
            match rest[0] {
                0x8A => {}
                0x81 => {
                    assert_eq!(&rest[2..2 + len], b"still there?", "{what}");
                    return;
                }
                other => panic!(
                    "{what}: unexpected frame {other:#x} {:?}",
                    &rest[2..2 + len]
                ),
            }
            rest = &rest[2 + len..];
        }
        let consumed = got.len() - rest.len();
        got.drain(..consumed);
    }
}

#[test]
fn ping_floods_from_a_peer_that_never_reads_keep_server_memory_flat() {
    let empty_pings: Vec<u8> = EMPTY_PING.repeat(64 * 1024 / 6);
    let big_pings: Vec<u8> = (0..500)
        .flat_map(|i: u32| {
            let mut payload = vec![0u8; 125];
            payload[..4].copy_from_slice(&i.to_be_bytes());
            encode_masked_frame(true, Opcode::Ping, &payload, KEY)
        })
        .collect();
    for backend in ["uring", "epoll"] {
        let server = ServerProcess::spawn(&[
            "--threads",
            "1",
            "--no-pin",
            "--backend",
            backend,
            "--metrics-addr",
            "127.0.0.1:0",
            "--log-level",
            "error",
        ]);
        let addr = server.addr;
        let coalesced = "ringcast_input_throttled_total{action=\"pong_coalesced\"}";

        // Warm up (the code paths, the allocator's arenas), then take the baseline.
        let mut warm = small_window(addr);
        warm.write_all(&upgrade_request("/echo")).unwrap();
        read_head(&mut warm);
        warm.write_all(&empty_pings).unwrap();
        assert!(poll_until(TIMEOUT, || sample(&server, coalesced) > 0.0));
        still_echoes(&mut warm, "warm-up");
        drop(warm);
        let before = rss(&server);
        let mut peak = before;

        // 1. Empty pings (the 16 MiB), never reading.
        let mut s = small_window(addr);
        s.write_all(&upgrade_request("/echo")).unwrap();
        read_head(&mut s);
        let sent_empty = flood(&mut s, &empty_pings, 16 << 20, || {
            peak = peak.max(rss(&server))
        });

        // 2. 125-byte pings (the 48 MiB), never reading.
        let mut big = small_window(addr);
        big.write_all(&upgrade_request("/echo")).unwrap();
        read_head(&mut big);
        let sent_big = flood(&mut big, &big_pings, 48 << 20, || {
            peak = peak.max(rss(&server))
        });

        // 3. An upgrade head with megabytes of pings pipelined behind it, in one go.
        let mut piped = small_window(addr);
        let mut input = upgrade_request("/echo");
        while input.len() < 4 << 20 {
            input.extend_from_slice(&big_pings);
        }
        let sent_piped = flood(&mut piped, &input, input.len(), || {
            peak = peak.max(rss(&server))
        });
        peak = peak.max(rss(&server));

        // Every connection still answers (so all it sent was processed, not dropped).
        still_echoes(&mut s, &format!("{backend} empty pings"));
        still_echoes(&mut big, &format!("{backend} 125-byte pings"));
        assert!(read_head(&mut piped).starts_with(b"HTTP/1.1 101"));
        still_echoes(&mut piped, &format!("{backend} pipelined pings"));
        peak = peak.max(rss(&server));

        let growth = peak.saturating_sub(before);
        eprintln!(
            "{backend}: sent {sent_empty} B of empty pings, {sent_big} B of 125-byte pings, \
             {sent_piped} B pipelined; server RSS {} KiB before, peak {} KiB (+{} KiB); \
             pongs coalesced {}",
            before >> 10,
            peak >> 10,
            growth >> 10,
            sample(&server, coalesced)
        );
        assert!(
            sent_empty >= MIN_FLOOD && sent_big >= MIN_FLOOD,
            "{backend}: the server must keep reading pings: {sent_empty} / {sent_big} bytes"
        );
        assert!(
            growth < MAX_GROWTH,
            "{backend}: server RSS grew by {} KiB",
            growth >> 10
        );
        // Nearly every ping's pong was coalesced, none of them queued one by one.
        let pings = (sent_empty / 6 + sent_big / 131) as f64;
        assert!(
            sample(&server, coalesced) > pings / 2.0,
            "{backend}: {} of {pings} pongs coalesced",
            sample(&server, coalesced)
        );
        assert_eq!(
            sample(&server, "ringcast_connections_active{shard=\"0\"}"),
            3.0,
            "{backend}: no connection was closed"
        );
    }
}

#[test]
fn reading_pauses_while_the_queue_is_over_the_cap_and_resumes_once_drained() {
    const CAP: usize = 64 * 1024;
    for backend in BACKENDS {
        let mut cfg = config(backend, 1);
        cfg.shard.queue.max_bytes = CAP;
        cfg.shard.queue.policy = SlowPolicy::DropNewest;
        cfg.driver.socket_send_buffer = Some(16 * 1024);
        let (server, rec) = start_recorded(cfg, Builtin::default());
        let mut s = small_window(server.local_addr());
        s.write_all(&upgrade_request("/echo")).unwrap();
        read_head(&mut s);
        // A message over the cap is echoed into the empty queue (one large message may
        // pass), which leaves the queue over the cap: reading stops.
        let large: Vec<u8> = (0..4 * CAP).map(|i| i as u8).collect();
        s.write_all(&encode_masked_frame(true, Opcode::Binary, &large, KEY))
            .unwrap();
        assert!(
            poll_until(TIMEOUT, || rec.get("throttled:read_paused") == 1),
            "{backend:?}: {:?}",
            rec.snapshot()
        );
        // What we send now waits in the kernel: pings whose pongs would otherwise queue.
        let mut writer = s.try_clone().unwrap();
        let pinger = std::thread::spawn(move || {
            for i in 0..2000u32 {
                writer
                    .write_all(&encode_masked_frame(
                        true,
                        Opcode::Ping,
                        &i.to_be_bytes(),
                        KEY,
                    ))
                    .unwrap();
            }
            writer
                .write_all(&encode_masked_frame(true, Opcode::Text, b"after", KEY))
                .unwrap();
        });
        // Drain: the large echo, then pongs, then the echo of "after" — reading resumed.
        let mut got = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        let deadline = Instant::now() + TIMEOUT;
        let frames = loop {
            assert!(
                Instant::now() < deadline,
                "{backend:?}: no echo of \"after\""
            );
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "{backend:?}: closed");
            got.extend_from_slice(&buf[..n]);
            if got.ends_with(b"after") {
                let frames = parse_frames(&got);
                if frames.last().is_some_and(|f| f == &(1, b"after".to_vec())) {
                    break frames;
                }
            }
        };
        pinger.join().unwrap();
        assert_eq!(frames[0], (2, large), "{backend:?}: the large echo, intact");
        assert!(
            frames[1..frames.len() - 1].iter().all(|(op, _)| *op == 0xA),
            "{backend:?}: only pongs in between"
        );
        // The last pong answers the last ping.
        let last_pong = &frames[frames.len() - 2];
        assert_eq!(last_pong.1, 1999u32.to_be_bytes(), "{backend:?}");
        assert_eq!(rec.get("closed"), 0, "{backend:?}: {:?}", rec.snapshot());
        server.shutdown().unwrap();
    }
}

/// The same over `wss://`: the rustls session's buffers stay bounded too (see
/// `src/driver/tls.rs`), and pongs are coalesced before they are encrypted.
#[cfg(feature = "tls")]
#[test]
fn a_ping_flood_over_tls_keeps_server_memory_flat() {
    use rustls::pki_types::ServerName;
    let (dir, cert, key) = common::tls::self_signed_files("peer-memory");
    let client = common::tls::client_config(&common::tls::cert_from_pem(&cert));
    let pings: Vec<u8> = EMPTY_PING.repeat(64 * 1024 / 6);
    for backend in ["uring", "epoll"] {
        let server = ServerProcess::spawn(&[
            "--threads",
            "1",
            "--no-pin",
            "--backend",
            backend,
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--metrics-addr",
            "127.0.0.1:0",
            "--log-level",
            "error",
        ]);
        let addr = server.addr;
        let open = || {
            let name = ServerName::IpAddress(addr.ip().into());
            let conn = rustls::ClientConnection::new(client.clone(), name).unwrap();
            let mut s = rustls::StreamOwned::new(conn, small_window(addr));
            s.write_all(&upgrade_request("/echo")).unwrap();
            assert!(read_head(&mut s).starts_with(b"HTTP/1.1 101"));
            s
        };
        let mut warm = open();
        warm.write_all(&pings).unwrap();
        still_echoes(&mut warm, "tls warm-up");
        drop(warm);
        let before = rss(&server);
        let mut peak = before;
        let mut s = open();
        s.sock
            .set_write_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let sent = flood_stream(&mut s, &pings, 16 << 20, || peak = peak.max(rss(&server)));
        s.sock.set_write_timeout(None).unwrap();
        still_echoes(&mut s, &format!("{backend} tls"));
        peak = peak.max(rss(&server));
        let growth = peak.saturating_sub(before);
        let coalesced = sample(
            &server,
            "ringcast_input_throttled_total{action=\"pong_coalesced\"}",
        );
        eprintln!(
            "{backend} tls: sent {sent} B of empty pings; server RSS {} KiB before, peak {} KiB \
             (+{} KiB); pongs coalesced {coalesced}",
            before >> 10,
            peak >> 10,
            growth >> 10
        );
        assert!(sent >= MIN_FLOOD, "{backend}: only {sent} bytes sent");
        assert!(
            growth < MAX_GROWTH,
            "{backend}: server RSS grew by {} KiB",
            growth >> 10
        );
        assert!(
            coalesced > (sent / 6) as f64 / 2.0,
            "{backend}: {coalesced} coalesced"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

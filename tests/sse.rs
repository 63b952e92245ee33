//! Server-Sent Events (`GET /sse/{room}`) through real sockets on both backends: the
//! response head and the `retry:` chunk; WebSocket publishes reaching SSE subscribers on
//! every shard in order (text split into `data:` lines, binary as base64); resume after
//! `Last-Event-ID` (header or query) with no gap and no duplicate, and the `gap` /
//! `reset` announcements; the slow-consumer policies on a stalled SSE reader while the
//! others lose nothing; 503 / 403 (+ CORS for allowed origins) / 401; a body or a
//! pipelined request; heartbeats; graceful shutdown ending with the last chunk; the
//! handler API (transport, send, publish from an SSE connection's callback).

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::sse::*;
use common::*;
use ringcast::app::{Builtin, RoomAccess, Rooms, Token};
use ringcast::config::{HistoryConfig, Origin, OriginPolicy};
use ringcast::conn::SlowPolicy;
use ringcast::{Context, Handler, Message, Transport, UpgradeRequest};
use tungstenite::Message as WsMessage;

fn history(frames: usize) -> Option<HistoryConfig> {
    Some(HistoryConfig::frames(frames))
}

/// `n` SSE clients on `path`, connected from successive source addresses until every
/// one of `shards` shards has at least `n / shards` of them.
fn spread_sse(
    addr: std::net::SocketAddr,
    path: &str,
    n: usize,
    shards: usize,
) -> Vec<SseClient<std::net::TcpStream>> {
    let mut per = vec![0usize; shards];
    let mut out = Vec::new();
    for i in 0..2_000 {
        if out.len() == n {
            break;
        }
        let c = sse_connect(addr, path, "", i);
        assert_eq!(c.status, 200);
        let shard: usize = c.header("x-ringcast-shard").unwrap().parse().unwrap();
        let left = n - out.len();
        let missing: usize = per.iter().map(|p| (n / shards).saturating_sub(*p)).sum();
        if per[shard] < n / shards || left > missing {
            per[shard] += 1;
            out.push(c);
        }
    }
    assert_eq!(out.len(), n, "placed {per:?}");
    assert!(per.iter().all(|p| *p >= n / shards), "{per:?}");
    out
}

#[test]
fn the_head_announces_an_event_stream_and_retry_comes_first() {
    for backend in BACKENDS {
        let mut cfg = config(backend, 1);
        cfg.shard.sse_retry = Duration::from_millis(2500);
        let server = start_with(cfg, Builtin::default());
        let mut c = sse_connect(server.local_addr(), "/sse/head", "", 0);
        assert_eq!(c.status, 200, "{backend:?}");
        assert_eq!(c.header("content-type"), Some("text/event-stream"));
        assert_eq!(c.header("cache-control"), Some("no-cache"));
        assert_eq!(c.header("transfer-encoding"), Some("chunked"));
        assert_eq!(c.header("x-ringcast-shard"), Some("0"));
        assert_eq!(
            c.header("access-control-allow-origin"),
            None,
            "no Origin sent"
        );
        assert_eq!(c.next_chunk(), Some(Chunk::Retry(2500)));
        server.shutdown().unwrap();
    }
}

/// 2 shards, 40 SSE subscribers spread over both, a WebSocket publisher: every
/// subscriber gets every publish once, in order, numbered with history on; multi-line
/// text arrives as `data:` lines (CR, LF and CRLF all read as line ends), binary as the
/// `binary` event with base64.
#[test]
fn websocket_publishes_reach_sse_subscribers_on_every_shard_in_order() {
    for backend in BACKENDS {
        let mut cfg = config(backend, 2);
        cfg.history = history(256);
        let (server, rec) = start_recorded(cfg, Builtin::default());
        let addr = server.local_addr();
        let mut subscribers = spread_sse(addr, "/sse/fan", 40, 2);
        let mut publisher = connect_from(addr, "/ws/fan", source_ip(249)).0;
        let publishes = 60u64;
        for i in 0..publishes {
            let m = match i % 3 {
                0 => WsMessage::text(format!("{i} line\r\nnext\rthird\nend")),
                1 => WsMessage::binary(vec![i as u8, 0, 255, b'\n']),
                _ => WsMessage::text(format!("{i}")),
            };
            publisher.send(m).unwrap();
        }
        for (n, c) in subscribers.iter_mut().enumerate() {
            for i in 0..publishes {
                let e = c.next_event().expect("event");
                assert_eq!(e.id, Some(i + 1), "{backend:?} subscriber {n}");
                match i % 3 {
                    0 => {
                        assert_eq!(e.event, None);
                        assert_eq!(e.data, format!("{i} line\nnext\nthird\nend"));
                    }
                    1 => {
                        assert_eq!(e.event.as_deref(), Some("binary"));
                        use base64::Engine as _;
                        let bytes = base64::engine::general_purpose::STANDARD
                            .decode(&e.data)
                            .unwrap();
                        assert_eq!(bytes, vec![i as u8, 0, 255, b'\n']);
                    }
                    _ => assert_eq!(e.data, i.to_string()),
                }
            }
        }
        assert!(rec.get("accepted:sse") >= 40, "{backend:?}");
        assert!(rec.get("frames_sent:sse") >= 40 * publishes);
        server.shutdown().unwrap();
    }
}

/// Resume after `Last-Event-ID`: the missed events first, then live ones, no gap and
/// no duplicate; `?lastEventId=` works too, and the header wins over it.
#[test]
fn last_event_id_resumes_without_gap_or_duplicate() {
    for backend in BACKENDS {
        let mut cfg = config(backend, 2);
        cfg.history = history(64);
        let server = start_with(cfg, Builtin::default());
        let addr = server.local_addr();
        let publisher = server.publisher();
        for i in 1..=10 {
            publisher
                .publish("res", Message::Text(&format!("m{i}")))
                .unwrap();
        }
        let mut header = sse_connect(addr, "/sse/res", "Last-Event-ID: 4\r\n", 1);
        let mut query = sse_connect(addr, "/sse/res?lastEventId=7", "", 2);
        let mut both = sse_connect(addr, "/sse/res?lastEventId=2", "Last-Event-ID: 8\r\n", 3);
        for i in 11..=15 {
            publisher
                .publish("res", Message::Text(&format!("m{i}")))
                .unwrap();
        }
        for (c, after) in [(&mut header, 4), (&mut query, 7), (&mut both, 8)] {
            for i in after + 1..=15u64 {
                let e = c.next_event().unwrap();
                assert_eq!((e.id, e.data), (Some(i), format!("m{i}")), "{backend:?}");
            }
        }
        // A malformed id is refused like a malformed ?since=.
        let bad = sse_connect(addr, "/sse/res", "Last-Event-ID: x\r\n", 4);
        assert_eq!(bad.status, 400);
        // So are a sign (`u64::from_str` takes `+`) and a number over u64::MAX.
        for bad in ["+3", "-1", "18446744073709551616"] {
            let header = format!("Last-Event-ID: {bad}\r\n");
            let refused = sse_connect(addr, "/sse/res", &header, 4);
            assert_eq!(refused.status, 400, "{backend:?} {bad}");
            let path = format!("/sse/res?lastEventId={bad}");
            assert_eq!(
                sse_connect(addr, &path, "", 4).status,
                400,
                "{backend:?} {bad}"
            );
        }
        server.shutdown().unwrap();
    }
}

/// An evicted range is announced with `event: gap` (the WebSocket's JSON as data), an
/// id the room never issued with `event: reset`; with history off an id gets `reset`
/// too, then the live stream.
#[test]
fn evicted_ranges_and_unknown_ids_are_announced() {
    for backend in BACKENDS {
        let mut cfg = config(backend, 1);
        cfg.history = history(5);
        let server = start_with(cfg, Builtin::default());
        let addr = server.local_addr();
        let publisher = server.publisher();
        for i in 1..=20 {
            publisher
                .publish("gap", Message::Text(&format!("m{i}")))
                .unwrap();
        }
        let mut c = sse_connect(addr, "/sse/gap", "Last-Event-ID: 2\r\n", 1);
        let e = c.next_event().unwrap();
        assert_eq!(e.event.as_deref(), Some("gap"), "{backend:?}");
        assert_eq!(e.data, r#"{"type":"gap","from":3,"to":15}"#);
        for i in 16..=20u64 {
            assert_eq!(c.next_event().unwrap().id, Some(i));
        }
        let mut r = sse_connect(addr, "/sse/gap", "Last-Event-ID: 900\r\n", 2);
        let e = r.next_event().unwrap();
        assert_eq!(e.event.as_deref(), Some("reset"), "{backend:?}: {e:?}");
        assert!(e.data.starts_with(r#"{"type":"reset","next":"#));
        server.shutdown().unwrap();

        let server = start(backend, 1);
        let mut off = sse_connect(server.local_addr(), "/sse/off", "Last-Event-ID: 3\r\n", 1);
        let e = off.next_event().unwrap();
        assert_eq!(e.event.as_deref(), Some("reset"));
        assert_eq!(e.data, r#"{"type":"reset","next":0}"#);
        server
            .publisher()
            .publish("off", Message::Text("live"))
            .unwrap();
        let e = off.next_event().unwrap();
        assert_eq!(
            (e.id, e.data.as_str()),
            (None, "live"),
            "no ids without history"
        );
        server.shutdown().unwrap();
    }
}

/// One SSE subscriber stops reading (tiny receive buffer) while 10 others read: the
/// others get all 400 events in order; the stalled one is handled per policy — closed
/// (the stream ends, `slow_consumer`), or events dropped (counted) while the order of
/// what it does get is kept.
#[test]
fn a_stalled_sse_reader_is_handled_per_slow_policy() {
    const MESSAGES: u32 = 400;
    for backend in BACKENDS {
        for policy in [
            SlowPolicy::Close,
            SlowPolicy::DropNewest,
            SlowPolicy::DropOldest,
        ] {
            let mut cfg = config(backend, 2);
            cfg.shard.queue.max_bytes = 256 * 1024;
            cfg.shard.queue.policy = policy;
            cfg.driver.socket_send_buffer = Some(64 * 1024);
            // Long enough for the stalled reader, drained last, to get its last chunk.
            cfg.shard.timeouts.close = TIMEOUT;
            // At the end the drop policies' stalled reader still holds unsent bytes.
            cfg.shard.shutdown_timeout = Duration::from_millis(500);
            // The publisher does not read: it must not get its own messages back.
            let app = Builtin {
                rooms: Rooms {
                    exclude_sender: true,
                },
                ..Default::default()
            };
            let (server, rec) = start_recorded(cfg, app);
            let addr = server.local_addr();
            let socket =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            socket.set_recv_buffer_size(4096).unwrap();
            socket.connect_timeout(&addr.into(), TIMEOUT).unwrap();
            let stream: std::net::TcpStream = socket.into();
            stream.set_read_timeout(Some(TIMEOUT)).unwrap();
            let mut slow = SseClient::open(stream, &sse_request("/sse/slow", ""));
            assert_eq!(slow.status, 200);
            let readers: Vec<_> = (0..10)
                .map(|i| {
                    let mut c = sse_connect(addr, "/sse/slow", "", i + 1);
                    std::thread::spawn(move || {
                        for expected in 0..MESSAGES {
                            let e = c.next_event().expect("event");
                            let seq: u32 = e.data[..8].parse().unwrap();
                            assert_eq!(seq, expected, "reader {i}");
                        }
                    })
                })
                .collect();
            let mut publisher = connect_from(addr, "/ws/slow", source_ip(200)).0;
            let filler = "x".repeat(4000);
            for seq in 0..MESSAGES {
                publisher
                    .send(WsMessage::text(format!("{seq:08}{filler}")))
                    .unwrap();
                if seq % 4 == 3 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            for r in readers {
                r.join().expect("reader got everything in order");
            }
            match policy {
                SlowPolicy::Close => {
                    // What was queued before the close still drains (within the close
                    // timeout), then the last chunk.
                    assert!(slow.read_to_end(), "{backend:?}: the stream ends cleanly");
                    // Our EOF lets the server close at once.
                    slow.stream.shutdown(std::net::Shutdown::Write).unwrap();
                    assert!(
                        poll_until(TIMEOUT, || rec.get("closed:slow_consumer") == 1),
                        "{backend:?}: {:?}",
                        rec.snapshot()
                    );
                }
                _ => {
                    let dropped = if policy == SlowPolicy::DropNewest {
                        "dropped:drop_newest"
                    } else {
                        "dropped:drop_oldest"
                    };
                    assert!(rec.get(dropped) > 0, "{backend:?}/{policy:?}");
                    // Its stream is intact: what it gets is in order, fewer than all.
                    let marker = server.publisher();
                    let mut seen = Vec::new();
                    let deadline = Instant::now() + TIMEOUT;
                    while Instant::now() < deadline {
                        marker
                            .publish("slow", Message::Text("99999999end"))
                            .unwrap();
                        let e = slow.next_event().expect("event");
                        if e.data.ends_with("end") {
                            break;
                        }
                        seen.push(e.data[..8].parse::<u32>().unwrap());
                    }
                    assert!(
                        seen.windows(2).all(|w| w[0] < w[1]),
                        "{backend:?}/{policy:?}"
                    );
                    assert!((seen.len() as u32) < MESSAGES, "{backend:?}/{policy:?}");
                }
            }
            server.shutdown().unwrap();
        }
    }
}

#[test]
fn admission_origin_and_token_refusals() {
    for backend in BACKENDS {
        // 503 at the connection cap.
        let mut cfg = config(backend, 1);
        cfg.max_connections = 1;
        let server = start_with(cfg, Builtin::default());
        let addr = server.local_addr();
        let held = sse_connect(addr, "/sse/cap", "", 1);
        assert_eq!(held.status, 200);
        let refused = sse_connect(addr, "/sse/cap", "", 2);
        assert_eq!(refused.status, 503, "{backend:?}");
        assert_eq!(refused.header("retry-after"), Some("1"));
        server.shutdown().unwrap();

        // 403 for an Origin outside the allow-list; CORS headers for an allowed one.
        let mut cfg = config(backend, 1);
        cfg.shard.origins = OriginPolicy {
            allowed: vec![Origin::parse("https://ok.example").unwrap()],
            require: false,
        };
        let server = start_with(cfg, Builtin::default());
        let addr = server.local_addr();
        let bad = sse_connect(addr, "/sse/o", "Origin: https://evil.example\r\n", 1);
        assert_eq!(bad.status, 403, "{backend:?}");
        let good = sse_connect(addr, "/sse/o", "Origin: https://ok.example\r\n", 2);
        assert_eq!(good.status, 200);
        assert_eq!(
            good.header("access-control-allow-origin"),
            Some("https://ok.example")
        );
        assert_eq!(good.header("vary"), Some("Origin"));
        server.shutdown().unwrap();

        // Subscribe tokens: none → 401, wrong → 403, Bearer or ?token= → 200.
        let app = Builtin {
            access: RoomAccess {
                publish_token: None,
                subscribe_token: Some(Token::parse("sekrit").unwrap()),
            },
            ..Default::default()
        };
        let server = start_with(config(backend, 1), app);
        let addr = server.local_addr();
        let none = sse_connect(addr, "/sse/t", "", 1);
        assert_eq!(none.status, 401, "{backend:?}");
        assert!(none.header("www-authenticate").is_some());
        assert_eq!(sse_connect(addr, "/sse/t?token=nope", "", 2).status, 403);
        assert_eq!(sse_connect(addr, "/sse/t?token=sekrit", "", 3).status, 200);
        let bearer = sse_connect(addr, "/sse/t", "Authorization: Bearer sekrit\r\n", 4);
        assert_eq!(bearer.status, 200);
        server.shutdown().unwrap();
    }
}

/// A body on the request is refused with 400 before any streaming; bytes after the
/// head of a streaming request (a pipelined request) end the stream with the last
/// chunk, then the server closes, counted as `protocol_error`.
#[test]
fn a_body_or_a_pipelined_request_is_refused() {
    for backend in BACKENDS {
        let (server, rec) = start_recorded(config(backend, 1), Builtin::default());
        let addr = server.local_addr();
        let with_body = sse_connect(addr, "/sse/b", "Content-Length: 3\r\n", 1);
        assert_eq!(with_body.status, 400, "{backend:?}");
        let chunked = sse_connect(addr, "/sse/b", "Transfer-Encoding: chunked\r\n", 2);
        assert_eq!(chunked.status, 400);
        let old = SseClient::open(
            tcp_from(addr, source_ip(3)),
            "GET /sse/b HTTP/1.0\r\nHost: x\r\n\r\n",
        );
        assert_eq!(old.status, 400, "chunked needs HTTP/1.1");

        // The three refusals above are closed as protocol errors too.
        assert!(poll_until(TIMEOUT, || rec.get("closed:protocol_error") == 3));
        let mut c = sse_connect(addr, "/sse/b", "", 4);
        assert_eq!(c.next_chunk(), Some(Chunk::Retry(1000)));
        c.stream
            .write_all(sse_request("/sse/b", "").as_bytes())
            .unwrap();
        assert!(c.read_to_end(), "{backend:?}: last chunk, then close");
        assert!(poll_until(TIMEOUT, || rec.get("closed:protocol_error") == 4));
        server.shutdown().unwrap();
    }
}

#[test]
fn heartbeats_are_comment_chunks() {
    for backend in BACKENDS {
        let mut cfg = config(backend, 1);
        cfg.shard.timeouts.ping_interval = Duration::from_millis(50);
        // The next heartbeat is due an interval after the previous one was written.
        cfg.shard.timeouts.pong = Duration::from_millis(50);
        let server = start_with(cfg, Builtin::default());
        let mut c = sse_connect(server.local_addr(), "/sse/hb", "", 1);
        assert_eq!(c.next_chunk(), Some(Chunk::Retry(1000)));
        // Three heartbeats in a row: the connection stays up without any client bytes.
        for _ in 0..3 {
            assert_eq!(c.next_chunk(), Some(Chunk::Heartbeat), "{backend:?}");
        }
        server.shutdown().unwrap();
    }
}

#[test]
fn graceful_shutdown_ends_the_stream_with_the_last_chunk() {
    for backend in BACKENDS {
        let server = start(backend, 2);
        let addr = server.local_addr();
        let mut clients: Vec<_> = (0..6)
            .map(|i| sse_connect(addr, "/sse/bye", "", i))
            .collect();
        server
            .publisher()
            .publish("bye", Message::Text("last words"))
            .unwrap();
        for c in &mut clients {
            assert_eq!(c.next_event().unwrap().data, "last words");
        }
        let stopper = std::thread::spawn(move || server.shutdown().unwrap());
        for c in &mut clients {
            assert!(c.read_to_end(), "{backend:?}: 0\\r\\n\\r\\n then close");
        }
        stopper.join().unwrap();
    }
}

/// The handler API on an SSE connection: `Context::transport`, `Context::send` (one
/// event), and `Context::publish` from its callback reaching WebSocket subscribers.
struct Greeter;

impl Handler for Greeter {
    fn on_open(&self, cx: &mut Context<'_>, request: &UpgradeRequest) {
        if cx.transport() == Transport::Sse {
            assert_eq!(request.transport, Transport::Sse);
            cx.join("greet").unwrap();
            cx.send(Message::Text("welcome\nto sse"));
            cx.send(Message::Binary(&[1, 2, 3]));
            cx.publish("greet", Message::Text("an sse client arrived"))
                .unwrap();
        } else {
            cx.join("greet").unwrap();
        }
    }
}

#[test]
fn the_handler_sees_the_transport_sends_events_and_publishes() {
    for backend in BACKENDS {
        let server = start_with(config(backend, 2), Greeter);
        let addr = server.local_addr();
        let mut ws = connect_from(addr, "/ws/any", source_ip(1)).0;
        // The WebSocket is in the room once its first message could be published to it.
        let mut sse = sse_connect(addr, "/sse/any", "", 2);
        let e = sse.next_event().unwrap();
        assert_eq!((e.event, e.data.as_str()), (None, "welcome\nto sse"));
        let e = sse.next_event().unwrap();
        assert_eq!(
            (e.event.as_deref(), e.data.as_str()),
            (Some("binary"), "AQID")
        );
        let arrived = ws.read().unwrap();
        assert_eq!(
            arrived.into_text().unwrap().as_str(),
            "an sse client arrived"
        );
        let e = sse.next_event().unwrap();
        assert_eq!(
            e.data, "an sse client arrived",
            "{backend:?}: members include it"
        );
        server.shutdown().unwrap();
    }
}

/// The TLS listener serves `https://…/sse/{room}` the same way: the 200, the events of a
/// `wss://` publish, and the last chunk at shutdown, all inside TLS.
#[cfg(feature = "tls")]
#[test]
fn sse_over_tls() {
    use common::tls::*;
    for backend in BACKENDS {
        let (server_tls, cert) = self_signed();
        let mut cfg = config(backend, 2);
        cfg.driver.tls = Some(server_tls);
        cfg.history = history(16);
        let server = start_with(cfg, Builtin::default());
        let addr = server.local_addr();
        let client = client_config(&cert);
        let mut subscribers: Vec<_> = (0..6)
            .map(|i| {
                let stream = tls_stream(addr, source_ip(i), &client);
                let c = SseClient::open(stream, &sse_request("/sse/tls", ""));
                assert_eq!(c.status, 200, "{backend:?}");
                c
            })
            .collect();
        let mut publisher = wss_connect(addr, "/ws/tls", source_ip(7), &client);
        for i in 0..20 {
            publisher.send(WsMessage::text(format!("t{i}"))).unwrap();
        }
        for c in &mut subscribers {
            for i in 0..20u64 {
                let e = c.next_event().unwrap();
                assert_eq!(
                    (e.id, e.data),
                    (Some(i + 1), format!("t{i}")),
                    "{backend:?}"
                );
            }
        }
        drop(publisher);
        let stopper = std::thread::spawn(move || server.shutdown().unwrap());
        for c in &mut subscribers {
            while c.next_raw().is_some() {}
            assert!(c.ended, "{backend:?}: the last chunk inside TLS");
        }
        stopper.join().unwrap();
    }
}

/// A TCP proxy in front of `upstream` that can cut its first connection: forwards both
/// ways, keeps each connection's sockets and the first bytes the client sent (its
/// request head). Gives up accepting after `TIMEOUT`.
struct CuttingProxy {
    addr: std::net::SocketAddr,
    conns: std::sync::Arc<std::sync::Mutex<Vec<ProxiedConn>>>,
}

/// A proxied connection: the client's socket and what the client sent.
type ProxiedConn = (std::net::TcpStream, Vec<u8>);

impl CuttingProxy {
    fn start(upstream: std::net::SocketAddr, connections: usize) -> CuttingProxy {
        use std::io::Read;
        use std::net::{TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let conns = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = conns.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + TIMEOUT;
            let mut accepted = 0;
            while accepted < connections && Instant::now() < deadline {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                accepted += 1;
                client.set_nonblocking(false).unwrap();
                let server = TcpStream::connect(upstream).unwrap();
                let index = {
                    let mut c = record.lock().unwrap();
                    c.push((client.try_clone().unwrap(), Vec::new()));
                    c.len() - 1
                };
                let (mut c_read, mut s_write) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let head = record.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = c_read.read(&mut buf) {
                        if n == 0 || s_write.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        head.lock().unwrap()[index].1.extend_from_slice(&buf[..n]);
                    }
                    let _ = s_write.shutdown(std::net::Shutdown::Both);
                });
                let (mut s_read, mut c_write) = (server, client);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s_read, &mut c_write);
                    let _ = c_write.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        CuttingProxy { addr, conns }
    }

    /// Drop connection `i` (both directions, at once).
    fn cut(&self, i: usize) {
        let conns = self.conns.lock().unwrap();
        conns[i].0.shutdown(std::net::Shutdown::Both).unwrap();
    }

    /// What the client of connection `i` sent so far.
    fn request(&self, i: usize) -> String {
        String::from_utf8_lossy(&self.conns.lock().unwrap()[i].1).into_owned()
    }
}

/// A child process killed (and reaped) when dropped, so a failing test leaves none.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Headless Chromium's `EventSource` (the dashboard harness's playwright-core,
/// `tests/dashboard/sse.mjs`), cross-origin from about:blank: it gets m1..m5 from a
/// WebSocket publisher, the connection is cut (a proxy drops it), m6..m10 are published
/// while it is away, and it reconnects by itself (after `retry:`) sending
/// `Last-Event-ID: 5`, then gets m6..m10: every message once, in order.
#[test]
fn chromium_event_source_reconnects_and_resumes_without_loss() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let harness = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dashboard");
    assert!(
        std::path::Path::new(&chromium).exists(),
        "{chromium} not found: install it with `apt-get install -y chromium` (.ci/run does)"
    );
    assert!(
        harness.join("node_modules/playwright-core").is_dir(),
        "playwright-core missing: run `npm ci --prefix tests/dashboard` (.ci/run does)"
    );
    for backend in BACKENDS {
        let mut cfg = config(backend, 2);
        cfg.history = history(64);
        cfg.shard.sse_retry = Duration::from_millis(200);
        let server = start_with(cfg, Builtin::default());
        let addr = server.local_addr();
        let proxy = CuttingProxy::start(addr, 2);
        let room = format!("chromium-sse-{}", std::process::id());
        let mut child = KillOnDrop(
            Command::new("node")
                .arg(harness.join("sse.mjs"))
                .args(["--sse", &format!("http://{}/sse/{room}", proxy.addr)])
                .args(["--ws", &format!("ws://{addr}/ws/{room}")])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("node runs"),
        );
        let mut last = String::new();
        // sse.mjs bounds itself (browser launch 30 s, the checks 20 s): stdout ends.
        for line in std::io::BufReader::new(child.0.stdout.take().unwrap()).lines() {
            let line = line.unwrap();
            if line == "cut" {
                proxy.cut(0);
            } else {
                last = line;
            }
        }
        let status = child.0.wait().unwrap();
        println!("--- chromium against {backend:?} ---\n{last}");
        assert!(status.success(), "{backend:?}: {last}");
        let first = proxy.request(0);
        let second = proxy.request(1);
        assert!(first.contains("Origin: null"), "cross-origin: {first}");
        assert!(
            second.contains("Last-Event-ID: 5\r\n"),
            "{backend:?}: the reconnect resumes after 5: {second}"
        );
        server.shutdown().unwrap();
    }
}

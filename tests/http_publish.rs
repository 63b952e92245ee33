//! The HTTP publish API (`POST /publish/{room}`) end to end, on both backends through
//! real sockets: a POST reaches WebSocket subscribers on both shards in order (text
//! and binary); 100 pipelined publishes on one keep-alive connection; the refusals
//! (413 declared and chunked, 400 bad UTF-8 / room / chunk, 401/403 tokens, 405,
//! 417); `Expect: 100-continue` with curl and a raw socket; a stalled body or head
//! answered 408 at the handshake timeout, an idle connection closed without a word;
//! with history on, the 202 carries `seq` and `?since=` replays it; read backpressure over queued answers; over TLS (feature `tls`); and in
//! cluster mode over a real Redis (feature `redis`).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use common::*;
use ringcast::app::{Builtin, RoomAccess, Token};
use ringcast::config::HistoryConfig;
use ringcast::wire::sequence::parse_seq_payload;
use ringcast::{BackendChoice, Config};
use tungstenite::Message;

/// One HTTP response: status, headers (names lower-cased), body.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Read one response (head, then `Content-Length` bytes of body) from `r`.
fn read_response(r: &mut impl BufRead) -> Response {
    let mut line = String::new();
    r.read_line(&mut line).expect("status line");
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers = Vec::new();
    for _ in 0..100 {
        let mut line = String::new();
        r.read_line(&mut line).expect("header line");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').expect("header");
        headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    let len: usize = response
        .header("content-length")
        .map_or(0, |v| v.parse().unwrap());
    response.body = vec![0; len];
    r.read_exact(&mut response.body).expect("body");
    response
}

/// A POST of `body` to `target` with `headers` (`"Name: value"` lines).
fn post(target: &str, headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "POST {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n",
        body.len()
    );
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    let mut req = req.into_bytes();
    req.extend_from_slice(body);
    req
}

/// A keep-alive HTTP connection.
fn http(addr: SocketAddr) -> (TcpStream, BufReader<TcpStream>) {
    let s = tcp_from(addr, source_ip(0));
    let r = BufReader::new(s.try_clone().unwrap());
    (s, r)
}

/// Send `request` on a new connection and read the one response.
fn exchange(addr: SocketAddr, request: &[u8]) -> Response {
    let (mut s, mut r) = http(addr);
    s.write_all(request).unwrap();
    read_response(&mut r)
}

/// A refused request: its response, then the server closes the connection.
fn refused(addr: SocketAddr, request: &[u8]) -> Response {
    let (mut s, mut r) = http(addr);
    s.write_all(request).unwrap();
    let response = read_response(&mut r);
    assert_eq!(response.header("connection"), Some("close"));
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).expect("closed after the refusal");
    response
}

/// A subscriber of `room` accepted by shard `want`.
fn subscriber_on_shard(addr: SocketAddr, path: &str, want: usize) -> Client {
    for i in 0..200 {
        let (c, resp) = connect_from(addr, path, source_ip(i));
        if shard_of(&resp) == want {
            return c;
        }
    }
    panic!("no connection landed on shard {want}");
}

fn next_data(c: &mut Client) -> Message {
    loop {
        match c.read().expect("read") {
            Message::Ping(_) | Message::Pong(_) => continue,
            other => return other,
        }
    }
}

fn with_history(backend: BackendChoice) -> Config {
    Config {
        history: Some(HistoryConfig::frames(100)),
        ..config(backend, 2)
    }
}

#[test]
fn a_post_reaches_subscribers_on_both_shards_in_order() {
    for backend in BACKENDS {
        let (server, rec) = start_recorded(config(backend, 2), Builtin::default());
        let addr = server.local_addr();
        let mut subs = [
            subscriber_on_shard(addr, "/ws/news", 0),
            subscriber_on_shard(addr, "/ws/news", 1),
        ];
        let (mut s, mut r) = http(addr);
        for i in 0..5 {
            s.write_all(&post("/publish/news", &[], format!("text {i}").as_bytes()))
                .unwrap();
            let response = read_response(&mut r);
            assert_eq!(response.status, 202, "{backend:?}: {}", response.text());
            assert_eq!(response.header("content-type"), Some("application/json"));
            assert_eq!(response.text(), "{\"room\":\"news\"}\n");
        }
        s.write_all(&post("/publish/news?binary=1", &[], &[0, 255, 1]))
            .unwrap();
        assert_eq!(read_response(&mut r).status, 202);
        for sub in &mut subs {
            for i in 0..5 {
                assert_eq!(next_data(sub), Message::text(format!("text {i}")));
            }
            assert_eq!(next_data(sub), Message::binary(vec![0, 255, 1]));
        }
        assert!(poll_until(TIMEOUT, || rec.get("http_publish:202") == 6));
        server.shutdown().unwrap();
    }
}

#[test]
fn a_hundred_pipelined_publishes_on_one_connection() {
    for backend in BACKENDS {
        let server = start(backend, 2);
        let addr = server.local_addr();
        let mut sub = connect(addr, "/ws/pipe");
        let (mut s, mut r) = http(addr);
        let mut requests = Vec::new();
        for i in 0..100 {
            requests.extend_from_slice(&post("/publish/pipe", &[], format!("m{i}").as_bytes()));
        }
        // Every request in one write: the server answers them in order.
        s.write_all(&requests).unwrap();
        for _ in 0..100 {
            assert_eq!(read_response(&mut r).status, 202, "{backend:?}");
        }
        for i in 0..100 {
            assert_eq!(next_data(&mut sub), Message::text(format!("m{i}")));
        }
        // `Connection: close` ends it after the answer.
        s.write_all(&post("/publish/pipe", &["Connection: close"], b"last"))
            .unwrap();
        let last = read_response(&mut r);
        assert_eq!(
            (last.status, last.header("connection")),
            (202, Some("close"))
        );
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
        server.shutdown().unwrap();
    }
}

#[test]
fn http_10_closes_unless_it_asks_for_keep_alive() {
    for backend in BACKENDS {
        let server = start(backend, 1);
        let addr = server.local_addr();
        let request = b"POST /publish/old HTTP/1.0\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi";
        assert_eq!(refused(addr, request).status, 202, "{backend:?}");
        let (mut s, mut r) = http(addr);
        let keep = b"POST /publish/old HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi";
        for _ in 0..2 {
            s.write_all(keep).unwrap();
            let response = read_response(&mut r);
            assert_eq!(response.status, 202);
            assert_eq!(response.header("connection"), Some("keep-alive"));
        }
        // Host is required of HTTP/1.1 only (RFC 9112 §3.2): a 1.0 client may omit it.
        let hostless = b"POST /publish/old HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi";
        assert_eq!(refused(addr, hostless).status, 202, "{backend:?}");
        let hostless = b"POST /publish/old HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi";
        assert_eq!(refused(addr, hostless).status, 400, "{backend:?}");
        server.shutdown().unwrap();
    }
}

#[test]
fn oversized_bodies_are_413_declared_or_chunked() {
    for backend in BACKENDS {
        let mut cfg = config(backend, 1);
        cfg.shard.limits.max_message_size = 1000;
        let (server, rec) = start_recorded(cfg, Builtin::default());
        let addr = server.local_addr();
        // Declared: refused from the head alone, before any body byte is sent.
        let head = b"POST /publish/big HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n";
        assert_eq!(refused(addr, head).status, 413, "{backend:?}");
        // Chunked: refused at the size line that takes it past the cap.
        let chunked =
            b"POST /publish/big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
                        1f4\r\n";
        let mut req = chunked.to_vec();
        req.extend_from_slice(&[b'a'; 500]);
        req.extend_from_slice(b"\r\n1f5\r\n");
        assert_eq!(refused(addr, &req).status, 413);
        // Exactly the cap passes, chunked.
        let mut req = chunked.to_vec();
        req.extend_from_slice(&[b'a'; 500]);
        req.extend_from_slice(b"\r\n1f4;ext=1\r\n");
        req.extend_from_slice(&[b'b'; 500]);
        req.extend_from_slice(b"\r\n0\r\nTrailer: x\r\n\r\n");
        assert_eq!(exchange(addr, &req).status, 202);
        assert!(poll_until(TIMEOUT, || rec.get("http_publish:413") == 2));
        server.shutdown().unwrap();
    }
}

#[test]
fn bad_bodies_rooms_and_chunks_are_400() {
    for backend in BACKENDS {
        let server = start(backend, 1);
        let addr = server.local_addr();
        let bad_utf8 = post("/publish/r", &[], &[0xff, 0xfe]);
        assert_eq!(refused(addr, &bad_utf8).status, 400, "{backend:?}");
        // The same bytes are a fine binary publication.
        assert_eq!(
            exchange(addr, &post("/publish/r?binary=1", &[], &[0xff, 0xfe])).status,
            202
        );
        for room in ["%FF", "%00", "a%0Ab", "a%2Fb"] {
            let response = refused(addr, &post(&format!("/publish/{room}"), &[], b"x"));
            assert_eq!(response.status, 400, "{room}");
        }
        let bad_chunk =
            b"POST /publish/r HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        assert_eq!(refused(addr, bad_chunk).status, 400);
        // Whitespace after a chunk size is BWS before a `;` extension only (§7.1).
        let spaced = b"POST /publish/r HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
                       3 \r\nabc\r\n0\r\n\r\n";
        assert_eq!(refused(addr, spaced).status, 400, "{backend:?}");
        assert_eq!(
            refused(addr, &post("/publish/r?binary=2", &[], b"x")).status,
            400
        );
        assert_eq!(
            refused(addr, &post("/publish/r", &["Expect: teapot"], b"x")).status,
            417
        );
        assert_eq!(refused(addr, &post("/publish/", &[], b"x")).status, 404);
        server.shutdown().unwrap();
    }
}

#[test]
fn other_methods_are_405_with_allow_post() {
    for backend in BACKENDS {
        let server = start(backend, 1);
        let addr = server.local_addr();
        for method in ["GET", "PUT", "DELETE"] {
            let request = format!("{method} /publish/r HTTP/1.1\r\nHost: x\r\n\r\n");
            let response = refused(addr, request.as_bytes());
            assert_eq!(response.status, 405, "{backend:?} {method}");
            assert_eq!(response.header("allow"), Some("POST"));
        }
        server.shutdown().unwrap();
    }
}

#[test]
fn the_publish_token_is_required_when_set() {
    for backend in BACKENDS {
        let app = Builtin {
            access: RoomAccess {
                publish_token: Some(Token::parse("s3cret").unwrap()),
                subscribe_token: None,
            },
            ..Builtin::default()
        };
        let (server, rec) = start_recorded(config(backend, 1), app);
        let addr = server.local_addr();
        let mut sub = connect(addr, "/ws/t");
        let missing = refused(addr, &post("/publish/t", &[], b"x"));
        assert_eq!(missing.status, 401, "{backend:?}");
        assert!(missing
            .header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer")));
        let wrong = post("/publish/t", &["Authorization: Bearer nope"], b"x");
        assert_eq!(refused(addr, &wrong).status, 403);
        assert_eq!(
            refused(addr, &post("/publish/t?token=nope", &[], b"x")).status,
            403
        );
        let right = post(
            "/publish/t",
            &["Authorization: Bearer s3cret"],
            b"by header",
        );
        assert_eq!(exchange(addr, &right).status, 202);
        assert_eq!(
            exchange(addr, &post("/publish/t?token=s3cret", &[], b"by query")).status,
            202
        );
        assert_eq!(next_data(&mut sub), Message::text("by header"));
        assert_eq!(next_data(&mut sub), Message::text("by query"));
        assert_eq!(rec.get("http_publish:401"), 1);
        assert_eq!(rec.get("http_publish:403"), 2);
        server.shutdown().unwrap();
    }
}

#[test]
fn expect_100_continue_with_curl() {
    let dir = std::env::temp_dir().join(format!("ringcast-http-publish-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("body.bin");
    let body: Vec<u8> = (0..2048u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&file, &body).unwrap();
    for backend in BACKENDS {
        let server = start(backend, 2);
        let addr = server.local_addr();
        let mut sub = connect(addr, "/ws/curl");
        let out = Command::new("curl")
            .args(["-sS", "-v", "--max-time", "10", "--expect100-timeout", "10"])
            // curl 7.88 asks only for bodies over 1 MiB by itself (older ones: 1 KiB).
            .args(["-H", "Expect: 100-continue"])
            .arg("--data-binary")
            .arg(format!("@{}", file.display()))
            .arg(format!("http://{addr}/publish/curl?binary=1"))
            .output()
            .expect("curl runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{backend:?}: {stderr}");
        assert!(stderr.contains("Expect: 100-continue"), "{stderr}");
        assert!(stderr.contains("HTTP/1.1 100 Continue"), "{stderr}");
        assert!(stderr.contains("HTTP/1.1 202 Accepted"), "{stderr}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "{\"room\":\"curl\"}\n"
        );
        assert_eq!(next_data(&mut sub), Message::binary(body.clone()));
        server.shutdown().unwrap();
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn expect_100_continue_on_a_raw_socket() {
    for backend in BACKENDS {
        let mut cfg = config(backend, 1);
        cfg.shard.limits.max_message_size = 100;
        let server = start_with(cfg, Builtin::default());
        let addr = server.local_addr();
        let (mut s, mut r) = http(addr);
        s.write_all(b"POST /publish/e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
            .unwrap();
        // The interim answer comes before any body byte is sent.
        assert_eq!(read_response(&mut r).status, 100, "{backend:?}");
        s.write_all(b"hello").unwrap();
        assert_eq!(read_response(&mut r).status, 202);
        // A request refused from its head gets its final status at once, no 100.
        let big = b"POST /publish/e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 101\r\n\r\n";
        assert_eq!(refused(addr, big).status, 413);
        server.shutdown().unwrap();
    }
}

/// Read one response from `s`, then to EOF: the response and what followed it.
fn response_then_close(s: TcpStream) -> (Response, Vec<u8>) {
    let mut r = BufReader::new(s);
    let response = read_response(&mut r);
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).expect("closed after the response");
    (response, rest)
}

#[test]
fn a_stalled_request_gets_408_at_the_handshake_timeout_an_idle_connection_just_closes() {
    for backend in BACKENDS {
        let mut cfg = config(backend, 1);
        cfg.shard.timeouts.handshake = Duration::from_millis(300);
        let (server, rec) = start_recorded(cfg, Builtin::default());
        let addr = server.local_addr();

        // A body stalled after 4 of its 10 bytes: 408, Connection: close, then EOF.
        let mut s = tcp_from(addr, source_ip(0));
        s.write_all(b"POST /publish/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhalf")
            .unwrap();
        let (response, rest) = response_then_close(s);
        assert_eq!(response.status, 408, "{backend:?}");
        assert_eq!(response.header("connection"), Some("close"));
        assert!(rest.is_empty(), "{backend:?}: {rest:?}");
        assert!(poll_until(TIMEOUT, || rec.get("http_publish:408") == 1));

        // Half a request head (a publish's, then an upgrade's): 408 too.
        for (i, half) in [
            &b"POST /publish/slow HTTP/1.1\r\nHost: x\r\nContent-Le"[..],
            &b"GET /ws/slow HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"[..],
        ]
        .into_iter()
        .enumerate()
        {
            let mut s = tcp_from(addr, source_ip(0));
            s.write_all(half).unwrap();
            let (response, rest) = response_then_close(s);
            assert_eq!(response.status, 408, "{backend:?} {i}");
            assert_eq!(response.header("connection"), Some("close"));
            assert!(rest.is_empty(), "{backend:?} {i}: {rest:?}");
            assert!(poll_until(TIMEOUT, || rec.get("rejected:408") == i as u64 + 1));
        }

        // A keep-alive connection idle after its answered request, and one that never
        // sent a byte: closed without a response.
        let (mut s, mut r) = http(addr);
        s.write_all(&post("/publish/idle", &[], b"hi")).unwrap();
        assert_eq!(read_response(&mut r).status, 202, "{backend:?}");
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).expect("closed");
        assert!(rest.is_empty(), "{backend:?}: {rest:?}");
        let mut s = tcp_from(addr, source_ip(0));
        assert!(read_to_close(&mut s).is_empty(), "{backend:?}");

        assert!(poll_until(TIMEOUT, || rec.get("closed:handshake_timeout") == 5));
        assert_eq!(rec.get("rejected:408") + rec.get("http_publish:408"), 3);
        server.shutdown().unwrap();
    }
}

#[test]
fn with_history_the_202_carries_seq_and_since_replays_it() {
    for backend in BACKENDS {
        let server = start_with(with_history(backend), Builtin::default());
        let addr = server.local_addr();
        let (mut s, mut r) = http(addr);
        for i in 1..=3 {
            s.write_all(&post("/publish/h", &[], format!("h{i}").as_bytes()))
                .unwrap();
            let response = read_response(&mut r);
            assert_eq!(response.status, 202, "{backend:?}");
            assert_eq!(response.text(), format!("{{\"room\":\"h\",\"seq\":{i}}}\n"));
        }
        let mut late = connect(addr, "/ws/h?since=1");
        for i in 2..=3 {
            let Message::Binary(framed) = next_data(&mut late) else {
                panic!("sequence framing is binary");
            };
            let (seq, _, payload) = parse_seq_payload(&framed).expect("sequenced");
            assert_eq!((seq, payload), (i, format!("h{i}").as_bytes()));
        }
        server.shutdown().unwrap();
    }
}

#[test]
fn responses_count_toward_the_queue_cap_for_read_backpressure() {
    for backend in BACKENDS {
        let mut cfg = config(backend, 1);
        cfg.shard.queue.max_bytes = 1024;
        let (server, rec) = start_recorded(cfg, Builtin::default());
        let addr = server.local_addr();
        let (mut s, mut r) = http(addr);
        let mut requests = Vec::new();
        for i in 0..2000 {
            requests.extend_from_slice(&post("/publish/bp", &[], format!("{i}").as_bytes()));
        }
        // One write of ~140 KB: each read of it queues more than 1 KiB of 202s, so
        // reading pauses until they are written; every request is still answered.
        // (No subscriber: 2000 publishes in a burst would overflow its 1 KiB queue.)
        let writer = std::thread::spawn(move || s.write_all(&requests).map(|()| s));
        for _ in 0..2000 {
            assert_eq!(read_response(&mut r).status, 202, "{backend:?}");
        }
        writer.join().unwrap().unwrap();
        assert_eq!(rec.get("http_publish:202"), 2000);
        assert!(
            rec.get("throttled:read_paused") >= 1,
            "{:?}",
            rec.snapshot()
        );
        server.shutdown().unwrap();
    }
}

/// Cluster mode over a real Redis: a POST on node A reaches subscribers of node B (and
/// A's own), through the broker like any other publish; in order.
#[cfg(feature = "redis")]
#[test]
fn a_post_on_one_node_reaches_subscribers_on_another() {
    use common::cluster::{node, read_text};
    use common::redis::RedisServer;
    for backend in BACKENDS {
        let redis = RedisServer::start();
        let a = node(backend, redis.url(), "a", None);
        let b = node(backend, redis.url(), "b", None);
        let mut on_b = connect(b.local_addr(), "/ws/c");
        let mut on_a = connect(a.local_addr(), "/ws/c");
        assert!(
            poll_until(TIMEOUT, || redis.numsub("{ringcast:c}") == 2),
            "both nodes subscribed"
        );
        let (mut s, mut r) = http(a.local_addr());
        for i in 0..10 {
            s.write_all(&post("/publish/c", &[], format!("x{i}").as_bytes()))
                .unwrap();
            let response = read_response(&mut r);
            assert_eq!(response.status, 202, "{backend:?}");
            assert_eq!(response.text(), "{\"room\":\"c\"}\n");
        }
        for i in 0..10 {
            assert_eq!(read_text(&mut on_b), format!("x{i}"));
            assert_eq!(read_text(&mut on_a), format!("x{i}"));
        }
        drop((on_a, on_b));
        a.shutdown().unwrap();
        b.shutdown().unwrap();
    }
}

/// Over TLS (`https://`): keep-alive publishes, pipelined, reach a `wss://` subscriber.
#[cfg(feature = "tls")]
#[test]
fn publishes_over_tls() {
    use common::tls::{client_config, self_signed, tls_stream, wss_connect};
    for backend in BACKENDS {
        let (server_tls, cert) = self_signed();
        let mut cfg = config(backend, 2);
        cfg.driver.tls = Some(server_tls);
        let server = start_with(cfg, Builtin::default());
        let addr = server.local_addr();
        let client = client_config(&cert);
        let mut sub = wss_connect(addr, "/ws/tls", source_ip(1), &client);
        let mut stream = tls_stream(addr, source_ip(2), &client);
        let mut requests = Vec::new();
        for i in 0..20 {
            requests.extend_from_slice(&post("/publish/tls", &[], format!("s{i}").as_bytes()));
        }
        stream.write_all(&requests).unwrap();
        let mut r = BufReader::new(stream);
        for _ in 0..20 {
            assert_eq!(read_response(&mut r).status, 202, "{backend:?}");
        }
        for i in 0..20 {
            loop {
                match sub.read().expect("read") {
                    Message::Ping(_) | Message::Pong(_) => continue,
                    m => {
                        assert_eq!(m, Message::text(format!("s{i}")));
                        break;
                    }
                }
            }
        }
        server.shutdown().unwrap();
    }
}

#[test]
fn origin_allow_list_and_admission_cap_apply() {
    use ringcast::config::OriginPolicy;
    for backend in BACKENDS {
        let mut cfg = config(backend, 1);
        cfg.shard.origins = OriginPolicy::new(&["https://app.example"], true).unwrap();
        cfg.max_connections = 1;
        let (server, rec) = start_recorded(cfg, Builtin::default());
        let addr = server.local_addr();
        let evil = post("/publish/o", &["Origin: https://evil.example"], b"x");
        assert_eq!(refused(addr, &evil).status, 403, "{backend:?}");
        // No Origin: a backend publisher, allowed although --require-origin is set.
        let (mut s, mut r) = http(addr);
        s.write_all(&post("/publish/o", &[], b"x")).unwrap();
        assert_eq!(read_response(&mut r).status, 202);
        // That keep-alive connection holds the only admission slot.
        let full = refused(
            addr,
            &post("/publish/o", &["Origin: https://app.example"], b"y"),
        );
        assert_eq!((full.status, full.header("retry-after")), (503, Some("1")));
        s.write_all(&post("/publish/o", &[], b"z")).unwrap();
        assert_eq!(
            read_response(&mut r).status,
            202,
            "its own next request passes"
        );
        drop((s, r));
        assert!(poll_until(TIMEOUT, || {
            exchange(addr, &post("/publish/o", &["Connection: close"], b"w")).status == 202
        }));
        // (A retry above may have met the slot before it was released: 503 again.)
        assert!(rec.get("http_publish:503") >= 1);
        server.shutdown().unwrap();
    }
}

/// An application's upgrade hook sees every publish (`is_publish`) and may refuse it,
/// while its WebSocket upgrades go on.
#[test]
fn the_upgrade_hook_tells_a_publish_and_may_refuse_it() {
    use ringcast::{Rejection, Upgrade, UpgradeRequest};
    struct NoHttpPublish(Builtin);
    impl ringcast::Handler for NoHttpPublish {
        fn on_upgrade(&self, request: &UpgradeRequest) -> Upgrade {
            if request.is_publish() {
                assert!(request.key.is_empty() && request.path == "/publish/h");
                return Upgrade::Reject(Rejection {
                    status: 429,
                    reason: "publish through the websocket",
                });
            }
            self.0.on_upgrade(request)
        }
        fn on_open(&self, cx: &mut ringcast::Context<'_>, request: &UpgradeRequest) {
            self.0.on_open(cx, request);
        }
    }
    for backend in BACKENDS {
        let server = start_with(config(backend, 1), NoHttpPublish(Builtin::default()));
        let addr = server.local_addr();
        let response = refused(addr, &post("/publish/h", &[], b"x"));
        assert_eq!(response.status, 429, "{backend:?}");
        assert_eq!(response.text(), "publish through the websocket\n");
        // Its WebSocket upgrades are not publishes: they pass.
        let _ws = connect_from(addr, "/ws/h", source_ip(0));
        server.shutdown().unwrap();
    }
}

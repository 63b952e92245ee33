//! The request-head rules of the upgrade handshake (RFC 9110, RFC 9112 §2–§5, RFC 6455
//! §4.2.1; the table in the README's "Limits" section) through real sockets on both
//! backends: raw requests against a running server, asserting the status line and the
//! headers of every answer, that each rejection is a complete response (`Content-Length`
//! matching a non-empty body, `Connection: close`, then the server closes), that it is
//! counted by status, and that the accepted forms really reach their route.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use common::*;
use ringcast::app::Builtin;
use ringcast::proto::frame::{encode_masked_frame, Opcode};

/// A response head and body.
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn parse(bytes: &[u8]) -> Response {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut r = httparse::Response::new(&mut headers);
        let len = match r.parse(bytes) {
            Ok(httparse::Status::Complete(n)) => n,
            other => panic!("{other:?}: {:?}", String::from_utf8_lossy(bytes)),
        };
        assert_eq!(r.version, Some(1), "an HTTP/1.1 response");
        Response {
            status: r.code.unwrap(),
            headers: r
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_ascii_lowercase(),
                        String::from_utf8(h.value.to_vec()).unwrap(),
                    )
                })
                .collect(),
            body: bytes[len..].to_vec(),
        }
    }

    /// The only field line named `name` (panics if it appears twice).
    fn header(&self, name: &str) -> Option<&str> {
        let mut values = self.headers.iter().filter(|(n, _)| n == name);
        let first = values.next().map(|(_, v)| v.as_str());
        assert!(values.next().is_none(), "{name} twice");
        first
    }

    /// The lower-cased tokens of the `Connection` field.
    fn connection_options(&self) -> Vec<String> {
        self.header("connection")
            .unwrap_or("")
            .split(',')
            .map(|t| t.trim().to_ascii_lowercase())
            .collect()
    }
}

/// Send `request`, read until the server closes, and check that the answer is a
/// complete rejection: `status`, `Content-Type: text/plain`, `Content-Length` equal to
/// the non-empty body, `Connection` with `close`.
fn rejected(addr: SocketAddr, request: &[u8], status: u16) -> Response {
    let raw = raw_exchange(addr, request);
    let what = String::from_utf8_lossy(request).into_owned();
    let r = Response::parse(&raw);
    assert_eq!(
        r.status,
        status,
        "{what:?} got {:?}",
        String::from_utf8_lossy(&raw)
    );
    assert_eq!(r.header("content-type"), Some("text/plain"), "{what:?}");
    let length: usize = r.header("content-length").unwrap().parse().unwrap();
    assert_eq!(length, r.body.len(), "{what:?}");
    assert!(r.body.len() > 1 && r.body.ends_with(b"\n"), "{what:?}");
    assert!(
        r.connection_options().contains(&"close".to_string()),
        "{what:?}"
    );
    r
}

/// Send `request`, expect a 101, then check the connection is an echo connection (a
/// text message comes back).
fn accepted_as_echo(addr: SocketAddr, request: &[u8]) {
    let mut s = tcp_from(addr, source_ip(0));
    s.write_all(request).unwrap();
    let head = read_head(&mut s);
    let r = Response::parse(&head);
    assert_eq!(
        r.status,
        101,
        "{:?} got {:?}",
        String::from_utf8_lossy(request),
        String::from_utf8_lossy(&head)
    );
    assert_eq!(r.header("upgrade"), Some("websocket"));
    s.write_all(&encode_masked_frame(
        true,
        Opcode::Text,
        b"echo?",
        [1, 2, 3, 4],
    ))
    .unwrap();
    let mut frame = [0u8; 7];
    s.read_exact(&mut frame).unwrap();
    assert_eq!(
        frame,
        *b"\x81\x05echo?",
        "{:?}",
        String::from_utf8_lossy(request)
    );
}

/// Read a response head byte by byte (so nothing after it is consumed).
fn read_head(s: &mut TcpStream) -> Vec<u8> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "closed during the head");
        head.push(byte[0]);
        assert!(head.len() < 4096, "head too long");
    }
    head
}

/// A request with `request_line`, the standard upgrade fields (`Host` as given, none
/// when `None`), and `extra` field lines.
fn request(request_line: &str, host: Option<&str>, extra: &[&str]) -> Vec<u8> {
    let mut s = format!("{request_line}\r\n");
    if let Some(host) = host {
        s.push_str(&format!("Host: {host}\r\n"));
    }
    for line in [
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
    ]
    .iter()
    .chain(extra)
    {
        s.push_str(line);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    s.into_bytes()
}

/// `request` without the standard field named `name`.
fn without(bytes: Vec<u8>, name: &str) -> Vec<u8> {
    let text = String::from_utf8(bytes).unwrap();
    text.split_inclusive("\r\n")
        .filter(|l| !l.starts_with(&format!("{name}:")))
        .collect::<String>()
        .into_bytes()
}

#[test]
fn the_426_names_websocket_as_the_upgrade() {
    for backend in BACKENDS {
        let server = start(backend, 1);
        let addr = server.local_addr();
        let version_8 = String::from_utf8(request("GET /echo HTTP/1.1", Some("h"), &[]))
            .unwrap()
            .replace("Version: 13", "Version: 8")
            .into_bytes();
        let no_version = without(
            request("GET /echo HTTP/1.1", Some("h"), &[]),
            "Sec-WebSocket-Version",
        );
        for req in [version_8, no_version] {
            let r = rejected(addr, &req, 426);
            assert_eq!(r.header("upgrade"), Some("websocket"), "{backend:?}");
            assert_eq!(r.header("sec-websocket-version"), Some("13"));
            let options = r.connection_options();
            assert!(options.contains(&"upgrade".to_string()), "{options:?}");
        }
        server.shutdown().unwrap();
    }
}

#[test]
fn absolute_form_targets_are_accepted_and_routed_on_their_path() {
    for backend in BACKENDS {
        let server = start(backend, 1);
        let addr = server.local_addr();
        let port = addr.port();
        for target in [
            format!("http://127.0.0.1:{port}/echo"),
            format!("HTTP://127.0.0.1:{port}/echo"),
            format!("hTtPs://127.0.0.1:{port}/echo?x=1"),
            format!("ws://127.0.0.1:{port}/echo"),
            "wss://[::1]/echo".to_string(),
        ] {
            // The Host field differs on purpose: the target's authority wins.
            accepted_as_echo(
                addr,
                &request(
                    &format!("GET {target} HTTP/1.1"),
                    Some("other.example"),
                    &[],
                ),
            );
        }
        rejected(
            addr,
            &request(
                &format!("GET http://127.0.0.1:{port}/nowhere HTTP/1.1"),
                Some("h"),
                &[],
            ),
            404,
        );
        server.shutdown().unwrap();
    }
}

#[test]
fn accepted_variants_of_the_head() {
    for backend in BACKENDS {
        let server = start(backend, 1);
        let addr = server.local_addr();
        let mut cases = vec![
            // RFC 9112 §2.3: a later 1.x minor is read as 1.1.
            request("GET /echo HTTP/1.2", Some("h"), &[]),
            // RFC 3986 §6.2.2: the same URI as /echo.
            request("GET /%65cho HTTP/1.1", Some("h"), &[]),
            request("GET /ws/../echo HTTP/1.1", Some("h"), &[]),
            request(
                "GET /echo HTTP/1.1",
                Some("[::1]:9001"),
                &["Content-Length: 0"],
            ),
            // Empty lines before the request line are skipped (RFC 9112 §2.2).
            [
                b"\r\n".as_slice(),
                &request("GET /echo HTTP/1.1", Some("h"), &[]),
            ]
            .concat(),
        ];
        // Token lists: any case, whitespace, empty elements, over several field lines.
        for (upgrade, connection) in [
            ("Upgrade: WebSocket", "Connection: keep-alive, Upgrade"),
            ("Upgrade: h2c, websocket", "Connection: ,\tupgrade ,"),
            (
                "Upgrade: websocket\r\nUpgrade: h2c",
                "Connection: close\r\nConnection: UPGRADE",
            ),
        ] {
            let base = without(
                without(request("GET /echo HTTP/1.1", Some("h"), &[]), "Upgrade"),
                "Connection",
            );
            let text = String::from_utf8(base).unwrap().replacen(
                "\r\n",
                &format!("\r\n{upgrade}\r\n{connection}\r\n"),
                1,
            );
            cases.push(text.into_bytes());
        }
        for case in cases {
            accepted_as_echo(addr, &case);
        }
        server.shutdown().unwrap();
    }
}

#[test]
fn every_rule_of_the_head_answers_with_its_status() {
    let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==";
    let filler: Vec<String> = (0..64).map(|i| format!("X-Filler-{i}: v")).collect();
    let filler: Vec<&str> = filler.iter().map(String::as_str).collect();
    let big_field = format!("X-Pad: {}", "a".repeat(9000));
    let long_target = format!("GET /ws/{} HTTP/1.1", "a".repeat(9000));
    let get = |extra: &[&str]| request("GET /echo HTTP/1.1", Some("h"), extra);
    let short_key = String::from_utf8(get(&[]))
        .unwrap()
        .replace("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25j====")
        .into_bytes();
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "method",
            request("POST /echo HTTP/1.1", Some("h"), &[]),
            405,
        ),
        (
            "lower-case method",
            request("get /echo HTTP/1.1", Some("h"), &[]),
            405,
        ),
        (
            "HTTP/1.0",
            request("GET /echo HTTP/1.0", Some("h"), &[]),
            400,
        ),
        (
            "HTTP/2.0",
            request("GET /echo HTTP/2.0", Some("h"), &[]),
            505,
        ),
        (
            "h2 preface",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
            505,
        ),
        (
            "asterisk-form",
            request("GET * HTTP/1.1", Some("h"), &[]),
            400,
        ),
        (
            "authority-form",
            request("GET h:80 HTTP/1.1", Some("h"), &[]),
            400,
        ),
        (
            "other scheme",
            request("GET ftp://h/echo HTTP/1.1", Some("h"), &[]),
            400,
        ),
        (
            "userinfo",
            request("GET http://u@h/echo HTTP/1.1", Some("h"), &[]),
            400,
        ),
        (
            "fragment",
            request("GET /echo#x HTTP/1.1", Some("h"), &[]),
            400,
        ),
        (
            "bad percent",
            request("GET /echo%zz HTTP/1.1", Some("h"), &[]),
            400,
        ),
        ("no Host", request("GET /echo HTTP/1.1", None, &[]), 400),
        (
            "no Host, absolute",
            request("GET http://h/echo HTTP/1.1", None, &[]),
            400,
        ),
        ("two Host", get(&["Host: h"]), 400),
        (
            "bad Host",
            request("GET /echo HTTP/1.1", Some("a@b"), &[]),
            400,
        ),
        (
            "empty Host",
            request("GET /echo HTTP/1.1", Some(""), &[]),
            400,
        ),
        ("two keys", get(&[key]), 400),
        ("two versions", get(&["Sec-WebSocket-Version: 13"]), 400),
        (
            "two Origin",
            get(&["Origin: http://a", "Origin: http://b"]),
            400,
        ),
        ("15-byte key", short_key, 400),
        ("no Upgrade", without(get(&[]), "Upgrade"), 400),
        (
            "no Connection upgrade",
            String::from_utf8(get(&[]))
                .unwrap()
                .replace("Connection: Upgrade", "Connection: keep-alive, upgrades")
                .into_bytes(),
            400,
        ),
        (
            "Transfer-Encoding",
            get(&["Transfer-Encoding: chunked"]),
            400,
        ),
        ("Content-Length", get(&["Content-Length: 3"]), 400),
        ("obs-fold", get(&["X-A: a", " folded"]), 400),
        ("space before colon", get(&["X-A : a"]), 400),
        (
            "bare LF",
            String::from_utf8(get(&[]))
                .unwrap()
                .replacen("\r\nUpgrade", "\nUpgrade", 1)
                .into_bytes(),
            400,
        ),
        ("too many fields", get(&filler), 431),
        ("long field", get(&[&big_field]), 431),
        ("long target", request(&long_target, Some("h"), &[]), 414),
        (
            "unknown path",
            request("GET /nowhere HTTP/1.1", Some("h"), &[]),
            404,
        ),
    ];
    for backend in BACKENDS {
        let (server, rec) = start_recorded(config(backend, 1), Builtin::default());
        let addr = server.local_addr();
        let mut expected: HashMap<u16, u64> = HashMap::new();
        for (what, bytes, status) in &cases {
            let r = rejected(addr, bytes, *status);
            if *status == 405 {
                assert_eq!(r.header("allow"), Some("GET"), "{backend:?} {what}");
            }
            *expected.entry(*status).or_default() += 1;
        }
        for (status, count) in expected {
            let key = format!("rejected:{status}");
            assert!(
                poll_until(TIMEOUT, || rec.get(&key) == count),
                "{backend:?}: {key} = {}, expected {count}",
                rec.get(&key)
            );
        }
        server.shutdown().unwrap();
    }
}

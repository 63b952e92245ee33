//! Tests for the upgrade handshake: a valid request, every rule of the request head
//! (the module doc's list) with its status and reason, path normalization, the answer's
//! independence from how the bytes were split, and the response builders.

use super::*;
use crate::proto::request::parse_upgrade;
use crate::proto::DEFAULT_MAX_HEAD_BYTES;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn request_with(lines: &[&str]) -> Vec<u8> {
    let mut s = String::from("GET /chat?room=1&x=%20 HTTP/1.1\r\n");
    for l in lines {
        s.push_str(l);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    s.into_bytes()
}

fn standard_headers() -> Vec<&'static str> {
    vec![
        "Host: server.example.com",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Origin: http://example.com",
        "Sec-WebSocket-Protocol: chat, superchat",
        "Sec-WebSocket-Version: 13",
    ]
}

/// The standard request with the header starting with `prefix` replaced
/// (or removed when `replacement` is None).
fn variant(prefix: &str, replacement: Option<&'static str>) -> Vec<u8> {
    let mut lines = standard_headers();
    let at = lines
        .iter()
        .position(|l| l.starts_with(prefix))
        .expect("prefix");
    match replacement {
        Some(r) => lines[at] = r,
        None => {
            lines.remove(at);
        }
    }
    request_with(&lines)
}

fn rejection(bytes: &[u8]) -> Rejection {
    parse_upgrade(bytes, DEFAULT_MAX_HEAD_BYTES).expect_err("expected a rejection")
}

fn complete(bytes: &[u8]) -> (UpgradeRequest, usize) {
    match parse_upgrade(bytes, DEFAULT_MAX_HEAD_BYTES) {
        Ok(HeadParse::Complete { request, head_len }) => (request, head_len),
        other => panic!("expected Complete, got {other:?}"),
    }
}

#[test]
fn valid_request_with_trailing_frame_bytes() {
    let head = request_with(&standard_headers());
    let mut bytes = head.clone();
    bytes.extend_from_slice(&[0x81, 0x80, 1, 2, 3, 4]);
    let (req, head_len) = complete(&bytes);
    assert_eq!(head_len, head.len());
    assert_eq!(req.path, "/chat");
    assert_eq!(req.query.as_deref(), Some("room=1&x=%20"));
    assert_eq!(req.key, KEY);
    assert_eq!(req.origin.as_deref(), Some("http://example.com"));
    assert_eq!(
        req.header("sec-websocket-protocol"),
        Some("chat, superchat")
    );
    assert_eq!(req.header("host"), Some("server.example.com"));
    assert_eq!(req.header("missing"), None);
    assert!(req
        .headers
        .iter()
        .all(|(n, _)| n == &n.to_ascii_lowercase()));
    assert_eq!(req.headers.len(), 7);
}

#[test]
fn path_without_query() {
    let bytes = b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\
Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    let (req, _) = complete(bytes);
    assert_eq!(req.path, "/");
    assert_eq!(req.query, None);
    assert_eq!(req.origin, None);
}

#[test]
fn header_tokens_are_case_insensitive_lists() {
    let mut bytes = variant("Connection", Some("connection: keep-alive, Upgrade"));
    let (req, _) = complete(&bytes);
    assert_eq!(req.header("connection"), Some("keep-alive, Upgrade"));
    bytes = variant("Upgrade", Some("UPGRADE: h2c, WebSocket"));
    complete(&bytes);
}

#[test]
fn partial_until_blank_line() {
    let bytes = request_with(&standard_headers());
    for cut in 0..bytes.len() {
        assert_eq!(
            parse_upgrade(&bytes[..cut], DEFAULT_MAX_HEAD_BYTES),
            Ok(HeadParse::Partial),
            "cut {cut}"
        );
    }
    complete(&bytes);
}

#[test]
fn head_over_max_is_431() {
    let bytes = request_with(&standard_headers());
    // Incomplete and already longer than the limit.
    let limit = 40;
    let e = parse_upgrade(&bytes[..limit + 1], limit).unwrap_err();
    assert_eq!(
        e,
        Rejection {
            status: 431,
            reason: "request header fields too large"
        }
    );
    // Exactly at the limit and incomplete: still Partial.
    assert_eq!(
        parse_upgrade(&bytes[..limit], limit),
        Ok(HeadParse::Partial)
    );
    // Complete but longer than the limit: 431 too (split-independent).
    assert_eq!(
        parse_upgrade(&bytes, bytes.len() - 1).unwrap_err().status,
        431
    );
    // Complete at exactly the limit: fine.
    assert!(matches!(
        parse_upgrade(&bytes, bytes.len()),
        Ok(HeadParse::Complete { .. })
    ));
}

#[test]
fn too_many_headers_is_431() {
    let mut lines = standard_headers();
    let extra: Vec<String> = (0..60).map(|i| format!("X-Filler-{i}: v")).collect();
    lines.extend(extra.iter().map(String::as_str));
    let e = rejection(&request_with(&lines));
    assert_eq!(
        e,
        Rejection {
            status: 431,
            reason: "too many headers"
        }
    );
}

#[test]
fn malformed_http_is_400() {
    let e = rejection(b"GET /\x01 HTTP/1.1\r\n\r\n");
    assert_eq!(
        e,
        Rejection {
            status: 400,
            reason: "malformed http request"
        }
    );
    assert_eq!(rejection(b"\x16\x03\x01\x02\x00\r\n\r\n").status, 400);
    assert_eq!(rejection(b"GET / HTTP/2.0\r\n\r\n").status, 505);
    assert_eq!(
        rejection(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n").status,
        400
    );
}

#[test]
fn non_get_is_405() {
    let mut bytes = request_with(&standard_headers());
    bytes.splice(0..3, b"POST".iter().copied());
    assert_eq!(
        rejection(&bytes),
        Rejection {
            status: 405,
            reason: "method must be GET"
        }
    );
}

#[test]
fn http_1_0_is_400() {
    let bytes = String::from_utf8(request_with(&standard_headers()))
        .unwrap()
        .replacen("HTTP/1.1", "HTTP/1.0", 1);
    assert_eq!(
        rejection(bytes.as_bytes()),
        Rejection {
            status: 400,
            reason: "http/1.1 or later required"
        }
    );
}

#[test]
fn missing_host_is_400() {
    assert_eq!(
        rejection(&variant("Host", None)),
        Rejection {
            status: 400,
            reason: "missing host"
        }
    );
}

#[test]
fn missing_or_wrong_upgrade_is_400() {
    let expected = Rejection {
        status: 400,
        reason: "missing upgrade: websocket",
    };
    assert_eq!(rejection(&variant("Upgrade", None)), expected);
    assert_eq!(
        rejection(&variant("Upgrade", Some("Upgrade: h2c"))),
        expected
    );
    assert_eq!(
        rejection(&variant("Upgrade", Some("Upgrade: websockets"))),
        expected
    );
}

#[test]
fn missing_connection_upgrade_is_400() {
    let expected = Rejection {
        status: 400,
        reason: "missing connection: upgrade",
    };
    assert_eq!(rejection(&variant("Connection", None)), expected);
    assert_eq!(
        rejection(&variant("Connection", Some("Connection: keep-alive"))),
        expected
    );
    assert_eq!(
        rejection(&variant("Connection", Some("Connection: upgrade-ish"))),
        expected
    );
}

#[test]
fn wrong_or_missing_version_is_426() {
    let expected = Rejection {
        status: 426,
        reason: "unsupported websocket version",
    };
    assert_eq!(rejection(&variant("Sec-WebSocket-Version", None)), expected);
    for v in [
        "Sec-WebSocket-Version: 8",
        "Sec-WebSocket-Version: 13, 8",
        "Sec-WebSocket-Version: 130",
    ] {
        assert_eq!(
            rejection(&variant("Sec-WebSocket-Version", Some(v))),
            expected,
            "{v}"
        );
    }
}

#[test]
fn duplicate_version_is_400() {
    let mut lines = standard_headers();
    lines.push("Sec-WebSocket-Version: 13");
    assert_eq!(
        rejection(&request_with(&lines)),
        Rejection {
            status: 400,
            reason: "duplicate sec-websocket-version"
        }
    );
}

#[test]
fn bad_keys_are_400() {
    let invalid = Rejection {
        status: 400,
        reason: "invalid sec-websocket-key",
    };
    for key in [
        "Sec-WebSocket-Key: ",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ", // no padding
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=", // short padding
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==", // non-zero unused bits
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j====", // 15 bytes
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ2a", // 18 bytes
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub2*jZQ==", // bad alphabet
        "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAAAAA==", // 19 bytes
    ] {
        assert_eq!(
            rejection(&variant("Sec-WebSocket-Key", Some(key))),
            invalid,
            "{key}"
        );
    }
    assert_eq!(
        rejection(&variant("Sec-WebSocket-Key", None)),
        Rejection {
            status: 400,
            reason: "missing sec-websocket-key"
        }
    );
    let mut lines = standard_headers();
    lines.push("Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==");
    assert_eq!(
        rejection(&request_with(&lines)),
        Rejection {
            status: 400,
            reason: "duplicate sec-websocket-key"
        }
    );
}

#[test]
fn key_validation_accepts_canonical_keys() {
    for key in [
        KEY,
        "AAAAAAAAAAAAAAAAAAAAAA==",
        "/////////////////////w==",
        "+/+/+/+/+/+/+/+/+/+/+g==",
    ] {
        assert!(is_valid_key(key), "{key}");
    }
}

/// RFC 6455 §1.3: key "dGhlIHNhbXBsZSBub25jZQ==" → "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
/// (SHA-1 of key + GUID, base64; checked independently).
#[test]
fn accept_key_matches_rfc_example() {
    let resp = String::from_utf8(accept_response(KEY, &[])).unwrap();
    assert_eq!(
        resp,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
    );
}

#[test]
fn accept_response_appends_extra_headers() {
    let resp =
        String::from_utf8(accept_response(KEY, &[("Sec-WebSocket-Protocol", "chat")])).unwrap();
    assert!(resp.ends_with("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\r\n"));
}

#[test]
fn reject_response_layout() {
    let resp = String::from_utf8(reject_response(400, "missing host", &[("X-Id", "7")])).unwrap();
    assert_eq!(
        resp,
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\
Connection: close\r\nX-Id: 7\r\n\r\nmissing host\n"
    );
}

#[test]
fn reject_426_carries_version_header() {
    let resp =
        String::from_utf8(reject_response(426, "unsupported websocket version", &[])).unwrap();
    assert!(resp.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
    assert!(resp.contains("\r\nSec-WebSocket-Version: 13\r\n"));
    let resp = String::from_utf8(reject_response(
        426,
        "x",
        &[("sec-websocket-version", "13"), ("Upgrade", "websocket")],
    ))
    .unwrap();
    assert_eq!(resp.matches("13\r\n").count(), 1);
    assert_eq!(resp.matches("websocket\r\n").count(), 1);
}

#[test]
fn reject_405_carries_allow_header() {
    let resp = String::from_utf8(reject_response(405, "method must be GET", &[])).unwrap();
    assert!(resp.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
    assert!(resp.contains("\r\nAllow: GET\r\n"));
}

#[test]
fn reject_401_carries_a_bearer_challenge_unless_one_is_given() {
    let resp = String::from_utf8(reject_response(401, "token required", &[])).unwrap();
    assert!(resp.starts_with("HTTP/1.1 401 Unauthorized\r\n"));
    assert!(resp.contains("\r\nWWW-Authenticate: Bearer realm=\"ringcast\"\r\n"));
    let own = [("WWW-Authenticate", "Basic realm=\"x\"")];
    let resp = String::from_utf8(reject_response(401, "token required", &own)).unwrap();
    assert_eq!(resp.matches("WWW-Authenticate").count(), 1);
    assert!(resp.contains("Basic realm"));
}

#[test]
fn reject_431_and_unknown_status_phrases() {
    let resp = String::from_utf8(reject_response(431, "too many headers", &[])).unwrap();
    assert!(resp.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
    assert!(!resp.contains("Sec-WebSocket-Version"));
    let resp = String::from_utf8(reject_response(499, "x", &[])).unwrap();
    assert!(resp.starts_with("HTTP/1.1 499 Client Error\r\n"));
}

/// A head of `request_line` plus the standard fields (with `Host` replaced by `host`,
/// or dropped when `None`) and `extra` lines.
fn head(request_line: &str, host: Option<&str>, extra: &[&str]) -> Vec<u8> {
    let mut s = format!("{request_line}\r\n");
    if let Some(host) = host {
        s.push_str(&format!("Host: {host}\r\n"));
    }
    for l in standard_headers().iter().skip(1).chain(extra) {
        s.push_str(l);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    s.into_bytes()
}

fn get(target: &str) -> Vec<u8> {
    head(&format!("GET {target} HTTP/1.1"), Some("h"), &[])
}

/// Every prefix of `bytes` is `Partial` or the answer for all of `bytes`, as the server
/// re-parses after each read.
fn split_independent(bytes: &[u8], max_head: usize) -> Result<HeadParse, Rejection> {
    let whole = parse_upgrade(bytes, max_head);
    for cut in 0..bytes.len() {
        let part = parse_upgrade(&bytes[..cut], max_head);
        assert!(
            part == Ok(HeadParse::Partial) || part == whole,
            "prefix {cut} of {:?}: {part:?} vs {whole:?}",
            String::from_utf8_lossy(bytes)
        );
    }
    whole
}

fn status(bytes: &[u8]) -> u16 {
    match split_independent(bytes, DEFAULT_MAX_HEAD_BYTES) {
        Ok(HeadParse::Complete { .. }) => 101,
        Ok(HeadParse::Partial) => 0,
        Err(r) => r.status,
    }
}

#[test]
fn absolute_form_routes_on_its_path_and_its_authority_wins() {
    for (target, path, query, authority) in [
        (
            "http://127.0.0.1:9001/echo",
            "/echo",
            None,
            "127.0.0.1:9001",
        ),
        (
            "HTTP://127.0.0.1:9001/echo?x=1",
            "/echo",
            Some("x=1"),
            "127.0.0.1:9001",
        ),
        ("Ws://example.com/ws/a", "/ws/a", None, "example.com"),
        ("wss://[::1]:443", "/", None, "[::1]:443"),
        ("https://example.com?q", "/", Some("q"), "example.com"),
    ] {
        let (req, _) = complete(&get(target));
        assert_eq!(req.path, path, "{target}");
        assert_eq!(req.query.as_deref(), query, "{target}");
        assert_eq!(req.authority, authority, "{target}");
        assert_eq!(
            req.header("host"),
            Some("h"),
            "the Host field is kept as sent"
        );
    }
    let (req, _) = complete(&get("/echo"));
    assert_eq!(req.authority, "h", "origin-form: the authority is Host's");
}

#[test]
fn other_target_forms_are_400() {
    for (target, reason) in [
        ("*", "asterisk-form is for OPTIONS only"),
        ("example.com:80", "invalid request-target form"),
        ("echo", "invalid request-target form"),
        ("ftp://h/echo", "unsupported scheme in request-target"),
        ("http://user@h/echo", "userinfo in request-target"),
        ("http:///echo", "invalid authority in request-target"),
        ("http://h:99999/echo", "invalid authority in request-target"),
        ("http://[::1/echo", "invalid authority in request-target"),
        ("/echo#frag", "fragment in request-target"),
        ("/ws/100%", "invalid percent-encoding in path"),
        ("/ws/%zz", "invalid percent-encoding in path"),
    ] {
        assert_eq!(
            split_independent(&get(target), DEFAULT_MAX_HEAD_BYTES),
            Err(Rejection {
                status: 400,
                reason
            }),
            "{target}"
        );
    }
}

#[test]
fn paths_are_normalized_per_rfc_3986() {
    for (target, path) in [
        ("/%65cho", "/echo"),
        ("/%7Eu/%41", "/~u/A"),
        ("/ws/caf%c3%a9", "/ws/caf%C3%A9"),
        ("/ws/caf\u{e9}", "/ws/caf%C3%A9"),
        ("/ws/a%2fb", "/ws/a%2Fb"),
        ("/a/../echo", "/echo"),
        ("/ws/%2e%2E/echo", "/echo"),
        ("/./echo/.", "/echo/"),
        ("/..", "/"),
        ("/a/b/c/./../../g", "/a/g"),
        ("/echo?%65=%zz", "/echo"),
    ] {
        assert_eq!(complete(&get(target)).0.path, path, "{target}");
    }
    assert_eq!(
        complete(&get("/echo?%65=%zz")).0.query.as_deref(),
        Some("%65=%zz"),
        "the query is raw"
    );
}

#[test]
fn host_exactly_once_and_valid() {
    for host in [
        "h",
        "127.0.0.1:9001",
        "[::1]",
        "[::1]:80",
        "xn--caf-dma.example",
        "h:",
        "a_b.example",
    ] {
        assert_eq!(
            status(&head("GET / HTTP/1.1", Some(host), &[])),
            101,
            "{host}"
        );
    }
    for (host, reason) in [
        ("", "invalid host"),
        ("user@h", "invalid host"),
        ("h:port", "invalid host"),
        ("h:70000", "invalid host"),
        ("[::1", "invalid host"),
        ("[nope]", "invalid host"),
        ("a b", "invalid host"),
        ("h/x", "invalid host"),
    ] {
        assert_eq!(
            split_independent(&head("GET / HTTP/1.1", Some(host), &[]), 8192),
            Err(Rejection {
                status: 400,
                reason
            }),
            "{host:?}"
        );
    }
    let twice = head("GET / HTTP/1.1", Some("h"), &["Host: h"]);
    assert_eq!(
        rejection(&twice),
        Rejection {
            status: 400,
            reason: "duplicate host"
        }
    );
    // RFC 9112 §3.2 applies to every request: absolute-form does not excuse Host.
    let absolute = |host| head("GET http://h/echo HTTP/1.1", host, &[]);
    assert_eq!(rejection(&absolute(None)).reason, "missing host");
    assert_eq!(rejection(&absolute(Some("a b"))).reason, "invalid host");
    assert_eq!(complete(&absolute(Some("other:1"))).0.authority, "h");
}

#[test]
fn singleton_fields_twice_are_400() {
    for (line, reason) in [
        ("Origin: http://example.com", "duplicate origin"),
        (
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "duplicate sec-websocket-key",
        ),
        (
            "sec-websocket-version: 13",
            "duplicate sec-websocket-version",
        ),
    ] {
        assert_eq!(
            rejection(&head("GET / HTTP/1.1", Some("h"), &[line])),
            Rejection {
                status: 400,
                reason
            },
            "{line}"
        );
    }
    let auth = ["Authorization: Bearer a", "Authorization: Bearer b"];
    assert_eq!(
        rejection(&head("GET / HTTP/1.1", Some("h"), &auth)).reason,
        "duplicate authorization"
    );
}

#[test]
fn list_fields_combine_over_lines_with_any_case_and_whitespace() {
    for extra in [
        ["Upgrade: h2c", "Upgrade: WebSocket"],
        ["Connection: keep-alive ,\tUPGRADE", "X: y"],
        ["Connection: , ,upgrade,", "X: y"],
        ["Connection: close", "Connection: Upgrade"],
    ] {
        let mut lines = standard_headers();
        lines.retain(|l| {
            !(extra[0].starts_with("Upgrade") && l.starts_with("Upgrade")
                || extra[0].starts_with("Connection") && l.starts_with("Connection"))
        });
        lines.extend(extra);
        complete(&request_with(&lines));
    }
}

#[test]
fn a_body_on_the_upgrade_is_400() {
    for line in [
        "Transfer-Encoding: chunked",
        "Content-Length: 5",
        "Content-Length: 0, 0",
        "Content-Length: -0",
    ] {
        assert_eq!(
            rejection(&head("GET / HTTP/1.1", Some("h"), &[line])),
            Rejection {
                status: 400,
                reason: "a get upgrade carries no body"
            },
            "{line}"
        );
    }
    complete(&head("GET / HTTP/1.1", Some("h"), &["Content-Length: 0"]));
}

#[test]
fn field_syntax_errors_are_400() {
    for bytes in [
        // obs-fold (RFC 9112 §5.2)
        head("GET / HTTP/1.1", Some("h"), &["X-A: a", " b"]),
        // whitespace between name and colon (RFC 9112 §5.1)
        head("GET / HTTP/1.1", Some("h"), &["X-A : a"]),
        // whitespace before the first field line (RFC 9112 §2.2)
        head("GET / HTTP/1.1", None, &[" Host: h"]),
        // a control character in a value, a bare CR
        head("GET / HTTP/1.1", Some("h"), &["X-A: a\u{1}b"]),
        head("GET / HTTP/1.1", Some("h"), &["X-A: a\rb"]),
        // two spaces in the request line
        head("GET  / HTTP/1.1", Some("h"), &[]),
    ] {
        assert_eq!(
            split_independent(&bytes, DEFAULT_MAX_HEAD_BYTES),
            Err(Rejection {
                status: 400,
                reason: "malformed http request"
            }),
            "{:?}",
            String::from_utf8_lossy(&bytes)
        );
    }
}

#[test]
fn bare_lf_is_400_and_leading_empty_lines_are_skipped() {
    let crlf = get("/echo");
    let text = String::from_utf8(crlf.clone()).unwrap();
    let all_lf = text.replace("\r\n", "\n");
    let one_lf = text.replacen("\r\nUpgrade", "\nUpgrade", 1);
    for bytes in [all_lf.as_bytes(), one_lf.as_bytes()] {
        assert_eq!(
            split_independent(bytes, DEFAULT_MAX_HEAD_BYTES),
            Err(Rejection {
                status: 400,
                reason: "bare lf: lines must end in crlf"
            })
        );
    }
    let mut leading = b"\r\n".to_vec();
    leading.extend_from_slice(&crlf);
    assert_eq!(status(&leading), 101);
}

#[test]
fn versions_other_than_1_x_are_505_and_later_1_x_minors_are_1_1() {
    assert_eq!(status(&head("GET / HTTP/1.2", Some("h"), &[])), 101);
    assert_eq!(status(&head("GET / HTTP/1.9", Some("h"), &[])), 101);
    for line in [
        "GET / HTTP/2.0",
        "GET / HTTP/3",
        "GET / HTTP/0.9",
        "GET / HTTP/20",
    ] {
        assert_eq!(
            split_independent(&head(line, Some("h"), &[]), DEFAULT_MAX_HEAD_BYTES),
            Err(Rejection {
                status: 505,
                reason: "http version not supported"
            }),
            "{line}"
        );
    }
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    assert_eq!(status(preface), 505, "HTTP/2 with prior knowledge");
    for line in ["GET / HTTP/1.x", "GET / HTTQ/1.1", "GET / HTTP/1.23"] {
        assert_eq!(status(&head(line, Some("h"), &[])), 400, "{line}");
    }
    assert_eq!(status(&head("get / HTTP/1.1", Some("h"), &[])), 405);
}

#[test]
fn an_unfinished_request_line_over_the_limit_is_414() {
    let long = format!("/ws/{}", "a".repeat(DEFAULT_MAX_HEAD_BYTES));
    assert_eq!(
        split_independent(&get(&long), DEFAULT_MAX_HEAD_BYTES),
        Err(Rejection {
            status: 414,
            reason: "request-target too long"
        })
    );
    let big_field = format!("X-Pad: {}", "a".repeat(DEFAULT_MAX_HEAD_BYTES));
    assert_eq!(
        status(&head("GET / HTTP/1.1", Some("h"), &[&big_field])),
        431
    );
}

#[test]
fn reject_426_names_the_protocol_to_upgrade_to() {
    let resp =
        String::from_utf8(reject_response(426, "unsupported websocket version", &[])).unwrap();
    let body = "unsupported websocket version\n";
    assert_eq!(
        resp,
        format!(
            "HTTP/1.1 426 Upgrade Required\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
Connection: upgrade, close\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n{body}",
            body.len()
        )
    );
    let resp = String::from_utf8(reject_response(505, "http version not supported", &[])).unwrap();
    assert!(resp.starts_with("HTTP/1.1 505 HTTP Version Not Supported\r\n"));
    assert!(resp.contains("\r\nConnection: close\r\n"));
}

mod split_independence {
    use super::*;
    use proptest::prelude::*;

    const ALPHABET: &[u8] = b"\r\n \t:%/#@?*.,0129aAHT\x00\x7f\xc3\xa9";

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// Edited heads never panic, and their answer does not depend on how the bytes
        /// were split into reads (what the fuzz target checks, run in `cargo test`).
        #[test]
        fn edited_heads_answer_the_same_at_every_split(
            base in prop::sample::select(vec![
                "GET /ws/caf%C3%A9?seq=1 HTTP/1.1",
                "GET http://127.0.0.1:9001/echo HTTP/1.1",
                "GET / HTTP/1.2",
                "PRI * HTTP/2.0",
            ]),
            edits in prop::collection::vec(
                (any::<prop::sample::Index>(), prop::sample::select(ALPHABET.to_vec()), any::<bool>()),
                0..4,
            ),
            small in any::<bool>(),
            limit in 16usize..200,
        ) {
            let mut bytes = head(base, Some("h"), &["Content-Length: 0"]);
            for (at, byte, insert) in edits {
                let i = at.index(bytes.len());
                if insert {
                    bytes.insert(i, byte);
                } else {
                    bytes.remove(i);
                }
            }
            let max_head = if small { limit } else { DEFAULT_MAX_HEAD_BYTES };
            if let Ok(HeadParse::Complete { request, head_len }) = split_independent(&bytes, max_head) {
                prop_assert!(head_len <= bytes.len().min(max_head));
                prop_assert!(request.path.starts_with('/'), "{:?}", request.path);
            }
        }
    }
}

#[test]
fn crlf_anywhere_in_a_long_head_is_not_a_bare_lf() {
    // Every alignment of the line ends against the 255-byte chunks of the LF count.
    for pad in 0..300 {
        let field = format!("X-Pad: {}", "p".repeat(pad));
        complete(&head("GET / HTTP/1.1", Some("h"), &[&field, &field]));
        let bare = String::from_utf8(head("GET / HTTP/1.1", Some("h"), &[&field]))
            .unwrap()
            .replacen("\r\nUpgrade", "\nUpgrade", 1);
        assert_eq!(
            rejection(bare.as_bytes()).reason,
            "bare lf: lines must end in crlf"
        );
    }
}

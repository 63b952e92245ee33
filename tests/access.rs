//! Access control end to end, on both backends through real sockets: the Origin
//! allow-list and `require_origin` (403), the rooms app's tokens (401 without one, 403
//! with a wrong one, close 1008 for a subscriber-only connection that publishes), an
//! upgrade hook rejecting with 401/403/429 (status line, body, counted by status), and
//! the identity an upgrade hook attaches seen from `on_message`.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

use common::*;
use ringcast::app::{Builtin, RoomAccess, Token};
use ringcast::config::OriginPolicy;
use ringcast::{
    Context, Handler, Identity, Message as AppMessage, Peer, Rejection, Upgrade, UpgradeRequest,
};
use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::Message;

/// A valid upgrade request for `path` with extra header lines (`"Name: value"`).
fn request_with(path: &str, headers: &[&str]) -> Vec<u8> {
    let mut req = upgrade_request(path);
    req.truncate(req.len() - 2);
    for h in headers {
        req.extend_from_slice(h.as_bytes());
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"\r\n");
    req
}

/// Send `request` and return the response status line.
fn status_line(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = tcp_from(addr, source_ip(0));
    s.write_all(request).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n") {
        if s.read(&mut byte).unwrap() == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).trim_end().to_string()
}

/// The full response to `request` on a connection the server then closes.
fn rejected(addr: SocketAddr, request: &[u8]) -> String {
    String::from_utf8(raw_exchange(addr, request)).unwrap()
}

/// A WebSocket client to `path` with an extra header.
fn connect_with(addr: SocketAddr, path: &str, header: Option<(&'static str, &str)>) -> Client {
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    if let Some((name, value)) = header {
        req.headers_mut().insert(
            name,
            tungstenite::http::HeaderValue::from_str(value).unwrap(),
        );
    }
    tungstenite::client::client(req, tcp_from(addr, source_ip(0)))
        .expect("websocket handshake")
        .0
}

fn next_data(c: &mut Client) -> Message {
    loop {
        match c.read().unwrap() {
            Message::Ping(_) | Message::Pong(_) => continue,
            other => return other,
        }
    }
}

fn token(s: &str) -> Option<Token> {
    Some(Token::parse(s).unwrap())
}

#[test]
fn tokens_and_origins_are_enforced_before_the_101() {
    for backend in BACKENDS {
        let mut cfg = config(backend, 2);
        cfg.shard.origins = OriginPolicy::new(&["https://app.example"], false).unwrap();
        let app = Builtin {
            access: RoomAccess {
                publish_token: token("pub-secret"),
                subscribe_token: token("sub-secret"),
            },
            ..Builtin::default()
        };
        let (server, rec) = start_recorded(cfg, app);
        let addr = server.local_addr();
        let origin = "Origin: https://APP.example";

        let r = rejected(addr, &request_with("/ws/r", &[origin]));
        assert!(r.starts_with("HTTP/1.1 401 Unauthorized\r\n"), "{r}");
        assert!(
            r.contains("\r\nWWW-Authenticate: Bearer realm=\"ringcast\"\r\n"),
            "{r}"
        );
        assert!(r.ends_with("\r\n\r\ntoken required\n"), "{r}");

        let r = rejected(addr, &request_with("/ws/r?token=sub-secreT", &[origin]));
        assert!(r.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{r}");
        assert!(
            r.ends_with("invalid token\n") && !r.contains("secre"),
            "{r}"
        );
        let wrong = "Authorization: Bearer pub-secre";
        let r = rejected(addr, &request_with("/ws/r", &[origin, wrong]));
        assert!(r.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{r}");

        // A valid token from a foreign origin: 403 before any token is looked at.
        let good = "Authorization: Bearer sub-secret";
        for bad in ["https://evil.example", "https://app.example:8443", "null"] {
            let o = format!("Origin: {bad}");
            let r = rejected(addr, &request_with("/ws/r", &[&o, good]));
            assert!(r.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{r}");
            assert!(r.ends_with("origin not allowed\n"), "{r}");
        }
        // The Origin rule covers /echo too.
        let r = rejected(
            addr,
            &request_with("/echo", &["Origin: https://evil.example"]),
        );
        assert!(r.starts_with("HTTP/1.1 403"), "{r}");

        // The right token, from the allowed origin or from a non-browser client.
        for headers in [
            &[origin, good][..],
            &[good],
            &["Authorization: Bearer pub-secret"],
        ] {
            let line = status_line(addr, &request_with("/ws/r", headers));
            assert_eq!(line, "HTTP/1.1 101 Switching Protocols", "{headers:?}");
        }
        let line = status_line(addr, &request_with("/ws/r?seq=0&token=sub-secret", &[]));
        assert_eq!(line, "HTTP/1.1 101 Switching Protocols");

        assert_eq!(rec.get("rejected:401"), 1, "{:?}", rec.snapshot());
        assert_eq!(rec.get("rejected:403"), 6, "{:?}", rec.snapshot());
        server.shutdown().unwrap();
    }
}

#[test]
fn require_origin_refuses_requests_without_one() {
    for backend in BACKENDS {
        let mut cfg = config(backend, 1);
        cfg.shard.origins = OriginPolicy::new::<&str>(&[], true).unwrap();
        let (server, rec) = start_recorded(cfg, Builtin::default());
        let addr = server.local_addr();
        let r = rejected(addr, &upgrade_request("/ws/r"));
        assert!(r.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{r}");
        assert!(r.ends_with("origin not allowed\n"), "{r}");
        let any = request_with("/ws/r", &["Origin: https://anything.example"]);
        assert_eq!(status_line(addr, &any), "HTTP/1.1 101 Switching Protocols");
        assert_eq!(rec.get("rejected:403"), 1);
        server.shutdown().unwrap();
    }
}

/// Rejects `/401`, `/403` and `/429`; accepts `/as/NAME` with an identity named NAME
/// (publish allowed when NAME starts with "pub"), anything else plainly. Echoes back
/// what `Context::identity` shows, and remembers the peer address the hook saw.
#[derive(Default)]
struct Gate {
    peers: Mutex<Vec<IpAddr>>,
}

impl Handler for Gate {
    fn on_upgrade_from(&self, request: &UpgradeRequest, peer: Peer) -> Upgrade {
        let reject = |status, reason| Upgrade::Reject(Rejection { status, reason });
        match request.path.as_str() {
            "/401" => reject(401, "who are you"),
            "/403" => reject(403, "not you"),
            "/429" => reject(429, "slow down"),
            path => {
                let ip = peer.addr().expect("peer address").ip();
                self.peers.lock().unwrap().push(ip);
                match path.strip_prefix("/as/") {
                    Some(name) => Upgrade::AcceptAs(Identity {
                        name: name.to_owned(),
                        can_publish: name.starts_with("pub"),
                        can_subscribe: true,
                    }),
                    None => Upgrade::Accept,
                }
            }
        }
    }

    fn on_message(&self, cx: &mut Context<'_>, _message: AppMessage<'_>) {
        let seen = match cx.identity() {
            Some(id) => format!("{} {} {}", id.name, id.can_publish, id.can_subscribe),
            None => "none".to_string(),
        };
        cx.send(AppMessage::Text(&seen));
    }
}

#[test]
fn upgrade_hook_rejects_with_any_status_and_counts_it() {
    for backend in BACKENDS {
        let (server, rec) = start_recorded(config(backend, 2), Gate::default());
        let addr = server.local_addr();
        for (path, line, body) in [
            ("/401", "HTTP/1.1 401 Unauthorized", "who are you"),
            ("/403", "HTTP/1.1 403 Forbidden", "not you"),
            ("/429", "HTTP/1.1 429 Too Many Requests", "slow down"),
        ] {
            let r = rejected(addr, &upgrade_request(path));
            assert!(r.starts_with(&format!("{line}\r\n")), "{r}");
            assert!(r.contains("\r\nConnection: close\r\n"), "{r}");
            assert!(r.ends_with(&format!("\r\n\r\n{body}\n")), "{r}");
        }
        for status in [401, 403, 429] {
            assert_eq!(rec.get(&format!("rejected:{status}")), 1, "{status}");
        }
        server.shutdown().unwrap();
    }
}

#[test]
fn identity_from_the_hook_is_visible_in_callbacks() {
    for backend in BACKENDS {
        let gate = std::sync::Arc::new(Gate::default());
        let server = ringcast::Server::start_shared(config(backend, 2), gate.clone()).unwrap();
        let addr = server.local_addr();
        let cases = [
            ("/as/alice", "alice false true"),
            ("/as/publisher-1", "publisher-1 true true"),
            ("/plain", "none"),
        ];
        for (i, (path, want)) in cases.into_iter().enumerate() {
            let mut c = connect_from(addr, path, source_ip(3 + i)).0;
            c.send(Message::text("who am i")).unwrap();
            assert_eq!(next_data(&mut c), Message::text(want), "{path}");
        }
        let peers = gate.peers.lock().unwrap().clone();
        assert_eq!(peers, vec![source_ip(3), source_ip(4), source_ip(5)]);
        server.shutdown().unwrap();
    }
}

#[test]
fn subscriber_only_connection_cannot_publish() {
    for backend in BACKENDS {
        let app = Builtin {
            access: RoomAccess {
                publish_token: token("pub-secret"),
                subscribe_token: None,
            },
            ..Builtin::default()
        };
        let server = start_with(config(backend, 2), app);
        let addr = server.local_addr();
        let mut listener = connect(addr, "/ws/room");
        let mut sneaky = connect(addr, "/ws/room");
        let mut publisher = connect_with(
            addr,
            "/ws/room",
            Some(("Authorization", "Bearer pub-secret")),
        );
        let mut query_publisher = connect(addr, "/ws/room?token=pub-secret");

        sneaky.send(Message::text("spam")).unwrap();
        match next_data(&mut sneaky) {
            Message::Close(Some(frame)) => {
                assert_eq!(frame.code, CloseCode::Policy);
                assert_eq!(frame.reason.as_str(), "not allowed to publish");
            }
            other => panic!("expected close 1008, got {other:?}"),
        }
        publisher.send(Message::text("one")).unwrap();
        query_publisher.send(Message::text("two")).unwrap();
        // The listener's first message is a legitimate one: the spam reached no one.
        let first = next_data(&mut listener);
        let second = next_data(&mut listener);
        let mut got = [first, second];
        got.sort_by_key(|m| m.to_text().unwrap().to_string());
        assert_eq!(got, [Message::text("one"), Message::text("two")]);
        // Nothing else is pending for the listener either.
        publisher.send(Message::text("three")).unwrap();
        assert_eq!(next_data(&mut listener), Message::text("three"));
        server.shutdown().unwrap();
    }
}

#[test]
fn binary_flags_enforce_access_and_never_expose_tokens() {
    use common::process::ServerProcess;
    let file = std::env::temp_dir().join(format!("ringcast-access-{}", std::process::id()));
    std::fs::write(&file, "file-secret-42\n").unwrap();
    for backend in ["uring", "epoll"] {
        let mut server = ServerProcess::spawn(&[
            "--backend",
            backend,
            "--threads",
            "1",
            "--metrics-addr",
            "127.0.0.1:0",
            "--log-level",
            "debug",
            "--allowed-origin",
            "https://app.example",
            "--require-origin",
            "--publish-token",
            "cli-secret-17",
            "--subscribe-token-file",
            file.to_str().unwrap(),
        ]);
        let addr = server.addr;
        let origin = "Origin: https://app.example";
        let r = rejected(addr, &request_with("/ws/r?token=file-secret-42", &[]));
        assert!(r.starts_with("HTTP/1.1 403"), "{r}");
        let r = rejected(addr, &request_with("/ws/r", &[origin]));
        assert!(r.starts_with("HTTP/1.1 401"), "{r}");
        let r = rejected(addr, &request_with("/ws/r?token=nope", &[origin]));
        assert!(r.starts_with("HTTP/1.1 403"), "{r}");
        for t in ["file-secret-42", "cli-secret-17"] {
            let req = request_with(&format!("/ws/r?token={t}"), &[origin]);
            assert_eq!(status_line(addr, &req), "HTTP/1.1 101 Switching Protocols");
        }
        assert_eq!(server.counter("ringcast_handshake_rejected_total"), 3.0);
        let mut s = std::net::TcpStream::connect(server.metrics.unwrap()).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        for shown in [body.as_str(), &server.banner.join("\n")] {
            assert!(!shown.contains("secret"), "{shown}");
        }
        server.signal(libc::SIGTERM);
        assert!(server
            .wait_exit(std::time::Duration::from_secs(10))
            .success());
    }
    std::fs::remove_file(&file).ok();
}

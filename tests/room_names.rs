//! Room names through real sockets on both backends: every spelling of one name in
//! `/ws/{room}` (RFC 3986 §6.2.2) is one room, which the library API reaches by its
//! decoded name; segments the room-name rule refuses get 400 (414 when too long); the
//! library API refuses the same names with a typed error; and a room connection stays a
//! room connection after leaving every room (it is never turned into an echo).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use common::*;
use ringcast::app::Builtin;
use ringcast::proto::frame::{encode_masked_frame, Opcode};
use ringcast::wire::room_name::MAX_ROOM_NAME_BYTES;
use ringcast::{Context, Handler, Message, RoomNameError, Upgrade, UpgradeRequest};

/// Read one unfragmented server frame: (opcode, payload).
fn read_frame(s: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut header = [0u8; 2];
    s.read_exact(&mut header).unwrap();
    let len = match header[1] & 0x7F {
        126 => {
            let mut ext = [0u8; 2];
            s.read_exact(&mut ext).unwrap();
            usize::from(u16::from_be_bytes(ext))
        }
        n => usize::from(n),
    };
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).unwrap();
    (header[0] & 0x0F, payload)
}

fn read_text(s: &mut TcpStream) -> String {
    let (opcode, payload) = read_frame(s);
    assert_eq!(opcode, 1, "a text frame");
    String::from_utf8(payload).unwrap()
}

fn send_text(s: &mut TcpStream, text: &str) {
    s.write_all(&encode_masked_frame(
        true,
        Opcode::Text,
        text.as_bytes(),
        [9, 8, 7, 6],
    ))
    .unwrap();
}

/// The status line and the whole answer to an upgrade of `path` (read to close).
fn refused(addr: SocketAddr, path: &str) -> (u16, String) {
    let answer = String::from_utf8_lossy(&raw_exchange(addr, &upgrade_request(path))).into_owned();
    let status = answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, answer)
}

#[test]
fn every_spelling_of_a_name_is_one_room_and_the_publisher_reaches_it() {
    let groups: [(&str, &[&str]); 3] = [
        (
            "café",
            &[
                "/ws/caf%C3%A9",
                "/ws/caf%c3%a9",
                "/ws/caf\u{e9}",
                "/ws/%63af%C3%a9",
            ],
        ),
        ("news", &["/ws/news", "/ws/%6Eews", "/ws/%6e%65%77%73"]),
        ("a-b", &["/ws/a-b", "/ws/a%2Db", "/ws/a%2db"]),
    ];
    for backend in BACKENDS {
        // Two shards: the spellings land on either, the room is still one.
        let server = start(backend, 2);
        let addr = server.local_addr();
        let publisher = server.publisher();
        for (name, paths) in groups {
            let mut members: Vec<TcpStream> = paths.iter().map(|p| raw_upgraded(addr, p)).collect();
            let shards = publisher
                .publish(name, Message::Text(&format!("to {name}")))
                .unwrap();
            assert!(shards >= 1, "{backend:?} {name}: no shard has members");
            for (m, path) in members.iter_mut().zip(paths.iter()) {
                assert_eq!(read_text(m), format!("to {name}"), "{backend:?} {path}");
            }
            // A publish from inside the room reaches every spelling too (sender included).
            send_text(&mut members[0], "from inside");
            for (m, path) in members.iter_mut().zip(paths.iter()) {
                assert_eq!(read_text(m), "from inside", "{backend:?} {path}");
            }
        }
        server.shutdown().unwrap();
    }
}

#[test]
fn segments_the_rule_refuses_get_400_and_over_long_names_414() {
    let fits = format!("/ws/{}", "%C3%A9".repeat(MAX_ROOM_NAME_BYTES / 2)); // 128 bytes
    let over = format!("{fits}x"); // 129 bytes decoded
    for backend in BACKENDS {
        let server = start(backend, 1);
        let addr = server.local_addr();
        for (path, status, reason) in [
            ("/ws/a%2Fb", 400, "room name contains '/'"),
            ("/ws/a%2fb", 400, "room name contains '/'"),
            ("/ws/a%00", 400, "room name contains a control character"),
            ("/ws/a%0Ab", 400, "room name contains a control character"),
            ("/ws/a%7F", 400, "room name contains a control character"),
            (
                "/ws/%FF",
                400,
                "room name is not utf-8 after percent-decoding",
            ),
            (
                "/ws/caf%C3",
                400,
                "room name is not utf-8 after percent-decoding",
            ),
            (
                "/ws/%ED%A0%80",
                400,
                "room name is not utf-8 after percent-decoding",
            ),
            ("/ws/100%", 400, "invalid percent-encoding in path"),
            (over.as_str(), 414, "room name too long"),
        ] {
            let (got, answer) = refused(addr, path);
            assert_eq!(got, status, "{backend:?} {path}: {answer}");
            assert!(
                answer.ends_with(&format!("\r\n\r\n{reason}\n")),
                "{backend:?} {path}: {answer}"
            );
            assert!(answer.contains("\r\nConnection: close\r\n"), "{answer}");
            let length = format!("\r\nContent-Length: {}\r\n", reason.len() + 1);
            assert!(answer.contains(&length), "{answer}");
        }
        // 384 characters of path, 128 bytes of name: within the limit.
        let mut at_limit = raw_upgraded(addr, &fits);
        server
            .publisher()
            .publish(&"é".repeat(MAX_ROOM_NAME_BYTES / 2), Message::Text("full"))
            .unwrap();
        assert_eq!(read_text(&mut at_limit), "full", "{backend:?}");
        drop(at_limit); // a raw client does not answer the shutdown's close frame
        server.shutdown().unwrap();
    }
}

/// Joins and publishes the names its messages give, and answers with the outcome:
/// `join NAME` → "joined" or the error; `pub NAME TEXT` → "published" or the error.
struct ByName;

impl Handler for ByName {
    fn on_message(&self, cx: &mut Context<'_>, message: Message<'_>) {
        let Message::Text(text) = message else {
            return;
        };
        let answer = match text.split_once(' ') {
            Some(("join", name)) => cx.join(name).map(|()| "joined".to_string()),
            Some(("pub", rest)) => {
                let (name, body) = rest.split_once(' ').unwrap_or((rest, ""));
                cx.publish(name, Message::Text(body))
                    .map(|_| "published".to_string())
            }
            _ => Ok("?".to_string()),
        };
        let answer = answer.unwrap_or_else(|e| format!("refused: {e}"));
        cx.send(Message::Text(&answer));
    }
}

#[test]
fn the_library_api_applies_the_same_rule() {
    for backend in BACKENDS {
        let server = start_with(config(backend, 1), ByName);
        let addr = server.local_addr();
        let publisher = server.publisher();
        assert_eq!(
            publisher.publish("a/b", Message::Text("x")),
            Err(RoomNameError::Slash)
        );
        assert_eq!(
            publisher.publish("a\0", Message::Text("x")),
            Err(RoomNameError::ControlCharacter)
        );
        assert_eq!(
            publisher.publish("", Message::Text("x")),
            Err(RoomNameError::Empty)
        );
        assert_eq!(
            publisher.publish(&"é".repeat(65), Message::Text("x")),
            Err(RoomNameError::TooLong { len: 130 })
        );
        assert_eq!(publisher.publish("no members", Message::Text("x")), Ok(0));

        let mut s = raw_upgraded(addr, "/anything");
        for (request, answer) in [
            ("join a/b", "refused: room name contains '/'"),
            ("join ..", "refused: room name is a dot-segment"),
            (
                "join tab\there",
                "refused: room name contains a control character",
            ),
            ("pub a/b hello", "refused: room name contains '/'"),
            ("join café", "joined"),
        ] {
            send_text(&mut s, request);
            assert_eq!(read_text(&mut s), answer, "{backend:?} {request}");
        }
        assert_eq!(server.publisher().room_count(), 1, "only café was joined");
        // The decoded name joined through the API is the room the path names.
        let mut by_path = raw_upgraded(addr, "/ws/caf%c3%a9");
        send_text(&mut by_path, "join café");
        assert_eq!(read_text(&mut by_path), "joined");
        send_text(&mut s, "pub café hi");
        assert_eq!(
            read_text(&mut s),
            "hi",
            "{backend:?}: the publisher is a member"
        );
        assert_eq!(read_text(&mut s), "published");
        assert_eq!(read_text(&mut by_path), "hi", "{backend:?}");
        drop((s, by_path)); // raw clients do not answer the shutdown's close frame
        server.shutdown().unwrap();
    }
}

/// The built-in apps, plus two commands a room connection can send: `leave-all` (leave
/// every room, answer "left") and `marker` (answer "marker").
#[derive(Default)]
struct Leaving(Builtin);

impl Handler for Leaving {
    fn on_upgrade(&self, request: &UpgradeRequest) -> Upgrade {
        self.0.on_upgrade(request)
    }
    fn on_open(&self, cx: &mut Context<'_>, request: &UpgradeRequest) {
        self.0.on_open(cx, request);
    }
    fn on_message(&self, cx: &mut Context<'_>, message: Message<'_>) {
        match message {
            Message::Text("leave-all") => {
                for room in cx.rooms() {
                    cx.leave(&room);
                }
                cx.send(Message::Text("left"));
            }
            Message::Text("marker") => {
                cx.send(Message::Text("marker"));
            }
            other => self.0.on_message(cx, other),
        }
    }
}

#[test]
fn a_room_connection_that_left_every_room_is_not_an_echo_connection() {
    for backend in BACKENDS {
        let server = start_with(config(backend, 1), Leaving::default());
        let addr = server.local_addr();
        let mut member = raw_upgraded(addr, "/ws/r");
        send_text(&mut member, "in the room");
        assert_eq!(read_text(&mut member), "in the room", "published to r");
        send_text(&mut member, "leave-all");
        assert_eq!(read_text(&mut member), "left");
        // Published to no room: nothing comes back, so the next frame is the marker.
        send_text(&mut member, "after leaving");
        send_text(&mut member, "marker");
        assert_eq!(read_text(&mut member), "marker", "{backend:?}: echoed");
        // /echo still echoes.
        let mut echo = raw_upgraded(addr, "/echo");
        send_text(&mut echo, "echo me");
        assert_eq!(read_text(&mut echo), "echo me");
        drop((member, echo)); // raw clients do not answer the shutdown's close frame
        server.shutdown().unwrap();
    }
}

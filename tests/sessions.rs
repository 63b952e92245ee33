//! Sessions that survive a dropped connection (`--session-grace`, issue 18), through
//! real sockets on both backends: a client reset (RST) while direct sends and room
//! publishes go to it resumes with exactly those messages in order, then the live
//! stream, memberships intact; a resume after the grace period gets a fresh session
//! (`expired`), counted `grace_expired`; a second connection with the token takes the
//! session over (the first gets 4409); an overflowing buffer is reported; a resume
//! accepted by the other shard is handed to the shard holding the session.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::session::*;
use common::*;
use ringcast::shard::session::{RESUME_HEADER, TAKEN_OVER_CODE, TAKEN_OVER_REASON};
use ringcast::{CloseInfo, Context, Handler, Message as AppMessage, UpgradeRequest};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::Message;

/// Commands in text messages: "join R", "rooms", "tell SESSION TEXT" (a direct send to a
/// session through the `Publisher`), "pub R TEXT". Counts opens, resumes and closes.
#[derive(Default)]
struct Sessions {
    opened: AtomicUsize,
    resumed: AtomicUsize,
    closed: Arc<AtomicUsize>,
}

impl Handler for Sessions {
    fn on_open(&self, _cx: &mut Context<'_>, _request: &UpgradeRequest) {
        self.opened.fetch_add(1, Ordering::SeqCst);
    }

    fn on_resume(&self, cx: &mut Context<'_>, _request: &UpgradeRequest) {
        assert!(cx.session_id().is_some());
        self.resumed.fetch_add(1, Ordering::SeqCst);
    }

    fn on_message(&self, cx: &mut Context<'_>, message: AppMessage<'_>) {
        let AppMessage::Text(text) = message else {
            return;
        };
        let mut words = text.splitn(3, ' ');
        match (words.next(), words.next(), words.next()) {
            (Some("join"), Some(room), None) => {
                cx.join(room).unwrap();
                cx.send(AppMessage::Text(&format!("joined {room}")));
            }
            (Some("rooms"), None, None) => {
                let mut rooms: Vec<String> = cx.rooms().iter().map(|r| r.to_string()).collect();
                rooms.sort();
                cx.send(AppMessage::Text(&format!("rooms {}", rooms.join(","))));
            }
            (Some("tell"), Some(session), Some(body)) => {
                assert!(cx
                    .publisher()
                    .send_to_session(session, AppMessage::Text(body)));
            }
            (Some("pub"), Some(room), Some(body)) => {
                cx.publish(room, AppMessage::Text(body)).unwrap();
            }
            _ => {
                cx.send(AppMessage::Text("?"));
            }
        }
    }

    fn on_close(&self, _cx: &mut Context<'_>, _info: &CloseInfo) {
        self.closed.fetch_add(1, Ordering::SeqCst);
    }
}

fn command(c: &mut Client, line: &str) -> String {
    c.send(Message::text(line)).unwrap();
    text(c)
}

#[test]
fn a_reset_client_resumes_with_every_buffered_message_in_order_then_live() {
    for backend in BACKENDS {
        let handler = Sessions::default();
        let closed = handler.closed.clone();
        let (server, rec) =
            start_recorded(session_config(backend, 1, Duration::from_secs(60)), handler);
        let addr = server.local_addr();
        let (mut a, response) = connect_with(addr, "/s", None);
        let (id, token) = session_of(&response);
        assert!(id.starts_with("0-") && token.starts_with(&format!("{id}.")));
        assert_eq!(header(&response, RESUME_HEADER), None, "no token presented");
        assert_eq!(command(&mut a, "join news"), "joined news");
        assert_eq!(command(&mut a, "join sports"), "joined sports");
        let mut b = connect(addr, "/control");

        reset(a);
        assert!(poll_until(TIMEOUT, || rec.level("detached") == 1));
        for i in 0..50 {
            b.send(Message::text(format!("tell {id} d{i:02}"))).unwrap();
        }
        // Direct sends travel through the inbox: wait until all 50 are buffered (5
        // bytes each on the wire) so the room messages come after them.
        assert!(poll_until(TIMEOUT, || rec.level("buffered") == 250));
        for i in 0..50 {
            b.send(Message::text(format!("pub news r{i:02}"))).unwrap();
        }
        assert!(poll_until(TIMEOUT, || rec.get("published") == 50));
        assert_eq!(closed.load(Ordering::SeqCst), 0, "no on_close on detach");

        let (mut a2, response) = connect_with(addr, "/s", Some(&token));
        assert_eq!(header(&response, RESUME_HEADER), Some("resumed"));
        assert_eq!(session_of(&response), (id.clone(), token.clone()));
        let got: Vec<String> = (0..100).map(|_| text(&mut a2)).collect();
        let want: Vec<String> = (0..50)
            .map(|i| format!("d{i:02}"))
            .chain((0..50).map(|i| format!("r{i:02}")))
            .collect();
        assert_eq!(got, want, "{backend:?}");
        // Live messages follow, through both restored memberships.
        b.send(Message::text("pub sports live1")).unwrap();
        b.send(Message::text("pub news live2")).unwrap();
        assert_eq!(text(&mut a2), "live1");
        assert_eq!(text(&mut a2), "live2");
        assert_eq!(command(&mut a2, "rooms"), "rooms news,sports");
        assert_eq!((rec.level("detached"), rec.level("buffered")), (0, 0));
        assert_eq!(rec.level("sessions"), 2, "a2's and b's");
        assert_eq!(rec.get("resume:resumed"), 1);
        assert_eq!(rec.get("resume:buffer_overflow"), 0);
        assert_eq!(closed.load(Ordering::SeqCst), 0);
        server.shutdown().unwrap();
    }
}

#[test]
fn a_resume_after_the_grace_period_gets_a_fresh_session() {
    for backend in BACKENDS {
        let handler = Sessions::default();
        let closed = handler.closed.clone();
        let (server, rec) = start_recorded(
            session_config(backend, 1, Duration::from_millis(200)),
            handler,
        );
        let addr = server.local_addr();
        let (mut a, response) = connect_with(addr, "/s", None);
        let (id, token) = session_of(&response);
        assert_eq!(command(&mut a, "join news"), "joined news");
        reset(a);
        assert!(poll_until(TIMEOUT, || rec
            .get("session_ended:grace_expired")
            == 1));
        assert_eq!(closed.load(Ordering::SeqCst), 1, "on_close once, at expiry");
        assert_eq!(server.publisher().room_count(), 0, "memberships released");

        let (mut a2, response) = connect_with(addr, "/s", Some(&token));
        assert_eq!(header(&response, RESUME_HEADER), Some("expired"));
        let (id2, token2) = session_of(&response);
        assert_ne!((&id2, &token2), (&id, &token), "a fresh session");
        assert_eq!(command(&mut a2, "rooms"), "rooms ");
        // A token never issued (or malformed): unknown, fresh session too.
        let forged = format!("{id}.{}", "0".repeat(32));
        let (_a3, response) = connect_with(addr, "/s", Some(&forged));
        assert_eq!(header(&response, RESUME_HEADER), Some("unknown"));
        assert_ne!(session_of(&response).0, id);
        let (_a4, response) = connect_with(addr, "/s", Some("garbage"));
        assert_eq!(header(&response, RESUME_HEADER), Some("unknown"));
        assert_eq!(
            (rec.get("resume:expired"), rec.get("resume:unknown")),
            (1, 2)
        );
        server.shutdown().unwrap();
    }
}

#[test]
fn a_second_connection_with_the_token_takes_the_session_over() {
    for backend in BACKENDS {
        let handler = Sessions::default();
        let closed = handler.closed.clone();
        let (server, rec) =
            start_recorded(session_config(backend, 1, Duration::from_secs(60)), handler);
        let addr = server.local_addr();
        let (mut a, response) = connect_with(addr, "/s", None);
        let (_, token) = session_of(&response);
        assert_eq!(command(&mut a, "join news"), "joined news");

        let (mut a2, response) = connect_with(addr, "/s", Some(&token));
        assert_eq!(header(&response, RESUME_HEADER), Some("resumed"));
        match a.read().unwrap() {
            Message::Close(Some(frame)) => {
                assert_eq!(u16::from(frame.code), TAKEN_OVER_CODE);
                assert_eq!(frame.reason.as_str(), TAKEN_OVER_REASON);
            }
            other => panic!("{backend:?}: expected the take-over close, got {other:?}"),
        }
        assert!(poll_until(TIMEOUT, || rec.get("closed:duplicate") == 1));
        assert_eq!(command(&mut a2, "rooms"), "rooms news");
        let mut b = connect(addr, "/control");
        b.send(Message::text("pub news after")).unwrap();
        assert_eq!(text(&mut a2), "after");
        assert_eq!(closed.load(Ordering::SeqCst), 0, "the session goes on");
        assert_eq!(rec.level("sessions"), 2, "a2's and b's");
        server.shutdown().unwrap();
    }
}

#[test]
fn a_resume_reports_what_the_buffer_dropped() {
    for backend in BACKENDS {
        let mut cfg = session_config(backend, 1, Duration::from_secs(60));
        cfg.shard.sessions.buffer_bytes = 1024;
        let (server, rec) = start_recorded(cfg, Sessions::default());
        let addr = server.local_addr();
        let (mut a, response) = connect_with(addr, "/s", None);
        let (_, token) = session_of(&response);
        assert_eq!(command(&mut a, "join news"), "joined news");
        reset(a);
        assert!(poll_until(TIMEOUT, || rec.level("detached") == 1));
        let publisher = server.publisher();
        let body = |i: usize| format!("{i:03}{}", "x".repeat(97));
        for i in 0..100 {
            publisher
                .publish("news", AppMessage::Text(&body(i)))
                .unwrap();
        }
        assert!(poll_until(TIMEOUT, || rec.get("published") == 100));

        let (mut a2, response) = connect_with(addr, "/s", Some(&token));
        assert_eq!(header(&response, RESUME_HEADER), Some("resumed"));
        let first = text(&mut a2);
        let lost: usize = first
            .strip_prefix(r#"{"type":"session","lost":"#)
            .and_then(|rest| rest.strip_suffix('}'))
            .unwrap_or_else(|| panic!("{backend:?}: expected the lost count, got {first}"))
            .parse()
            .unwrap();
        assert!(lost > 0 && lost < 100, "{lost}");
        let kept: Vec<String> = (0..100 - lost).map(|_| text(&mut a2)).collect();
        let want: Vec<String> = (lost..100).map(body).collect();
        assert_eq!(kept, want, "the newest kept, in order");
        assert_eq!(rec.get("resume:buffer_overflow"), 1);
        server.shutdown().unwrap();
    }
}

#[test]
fn a_resume_accepted_by_the_other_shard_is_served_by_the_sessions_shard() {
    for backend in BACKENDS {
        let (server, rec) = start_recorded(
            session_config(backend, 2, Duration::from_secs(60)),
            Sessions::default(),
        );
        let addr = server.local_addr();
        let mut b = connect(addr, "/control");
        let (mut same, mut other) = (0, 0);
        for round in 0..200 {
            if same > 0 && other > 0 {
                break;
            }
            let (mut a, response) = connect_with(addr, "/s", None);
            let (id, token) = session_of(&response);
            let shard = shard_of(&response);
            let room = format!("room{round}");
            assert_eq!(
                command(&mut a, &format!("join {room}")),
                format!("joined {room}")
            );
            reset(a);
            assert!(poll_until(TIMEOUT, || rec.level("detached") == 1));
            b.send(Message::text(format!("tell {id} direct{round}")))
                .unwrap();
            assert!(poll_until(TIMEOUT, || rec.level("buffered") > 0));
            b.send(Message::text(format!("pub {room} room{round}")))
                .unwrap();
            let handed_before = rec.get("closed:handed_off");
            let (mut a2, response) = connect_with(addr, "/s", Some(&token));
            assert_eq!(header(&response, RESUME_HEADER), Some("resumed"));
            assert_eq!(
                shard_of(&response),
                shard,
                "answered by the session's shard"
            );
            assert_eq!(text(&mut a2), format!("direct{round}"));
            assert_eq!(text(&mut a2), format!("room{round}"));
            b.send(Message::text(format!("pub {room} live{round}")))
                .unwrap();
            assert_eq!(text(&mut a2), format!("live{round}"));
            if rec.get("closed:handed_off") > handed_before {
                other += 1;
            } else {
                same += 1;
            }
            a2.close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            }))
            .unwrap();
            while a2.read().is_ok() {}
            assert!(
                poll_until(TIMEOUT, || rec.level("sessions") == 1),
                "b's only"
            );
        }
        assert!(
            same > 0 && other > 0,
            "{backend:?}: same-shard {same}, other-shard {other} resumes"
        );
        server.shutdown().unwrap();
    }
}

/// `wss://`: a resume accepted by the other shard moves the socket with its TLS
/// session; the session's shard answers over the same TLS connection.
#[cfg(feature = "tls")]
#[test]
fn a_tls_resume_accepted_by_the_other_shard_keeps_its_tls_session() {
    use common::tls::{client_config, self_signed, tls_stream, TlsClient};
    use ringcast::shard::session::TOKEN_HEADER;
    use std::net::SocketAddr;
    use tungstenite::client::IntoClientRequest;
    use tungstenite::handshake::client::Response;

    fn wss(
        addr: SocketAddr,
        tls: &Arc<rustls::ClientConfig>,
        token: Option<&str>,
    ) -> (TlsClient, Response) {
        let mut request = format!("wss://{addr}/s").into_client_request().unwrap();
        if let Some(token) = token {
            request
                .headers_mut()
                .insert(TOKEN_HEADER, token.parse().unwrap());
        }
        tungstenite::client::client(request, tls_stream(addr, source_ip(0), tls))
            .expect("websocket handshake over TLS")
    }
    fn read_text(c: &mut TlsClient) -> String {
        loop {
            match c.read().unwrap() {
                Message::Text(t) => return t.to_string(),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    for backend in BACKENDS {
        let (server_tls, cert) = self_signed();
        let mut cfg = session_config(backend, 2, Duration::from_secs(60));
        cfg.driver.tls = Some(server_tls);
        let (server, rec) = start_recorded(cfg, Sessions::default());
        let (addr, tls) = (server.local_addr(), client_config(&cert));
        let mut handed_over = false;
        for round in 0..100 {
            let (mut a, response) = wss(addr, &tls, None);
            let (_, token) = session_of(&response);
            let shard = shard_of(&response);
            a.send(Message::text(format!("join r{round}"))).unwrap();
            assert_eq!(read_text(&mut a), format!("joined r{round}"));
            let stream = a.into_inner();
            socket2::SockRef::from(&stream.sock)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
            drop(stream);
            assert!(poll_until(TIMEOUT, || rec.level("detached") == 1));
            let handed_before = rec.get("closed:handed_off");
            let (mut a2, response) = wss(addr, &tls, Some(&token));
            assert_eq!(header(&response, RESUME_HEADER), Some("resumed"));
            assert_eq!(shard_of(&response), shard);
            a2.send(Message::text("rooms")).unwrap();
            assert_eq!(read_text(&mut a2), format!("rooms r{round}"));
            a2.close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            }))
            .unwrap();
            while a2.read().is_ok() {}
            assert!(poll_until(TIMEOUT, || rec.level("sessions") == 0));
            if rec.get("closed:handed_off") > handed_before {
                handed_over = true;
                break;
            }
        }
        assert!(
            handed_over,
            "{backend:?}: no resume landed on the other shard"
        );
        server.shutdown().unwrap();
    }
}

/// Frames still queued to the socket when it is reset cannot be resent (they were
/// framed for the old connection): the resume reports them in `lost`, never silently.
#[test]
fn frames_queued_to_a_reset_socket_are_reported_as_lost_on_resume() {
    for backend in BACKENDS {
        let mut cfg = session_config(backend, 1, Duration::from_secs(60));
        cfg.driver.socket_send_buffer = Some(16 * 1024);
        cfg.shard.queue.max_bytes = 4 << 20;
        let (server, rec) = start_recorded(cfg, Sessions::default());
        let addr = server.local_addr();
        let (mut a, response) = connect_with(addr, "/s", None);
        let (_, token) = session_of(&response);
        assert_eq!(command(&mut a, "join news"), "joined news");
        // `a` reads no more: 100 × 10 KiB is far more than the socket buffers hold.
        let publisher = server.publisher();
        let big = "b".repeat(10 * 1024);
        for _ in 0..100 {
            publisher.publish("news", AppMessage::Text(&big)).unwrap();
        }
        assert!(poll_until(TIMEOUT, || rec.get("published") == 100));
        reset(a);
        assert!(poll_until(TIMEOUT, || rec.level("detached") == 1));
        let unsent = rec.get("dropped:connection_closed");
        assert!(unsent > 0, "{backend:?}: some frames were still queued");
        for i in 0..5 {
            publisher
                .publish("news", AppMessage::Text(&format!("after{i}")))
                .unwrap();
        }
        assert!(poll_until(TIMEOUT, || rec.get("published") == 105));

        let (mut a2, response) = connect_with(addr, "/s", Some(&token));
        assert_eq!(header(&response, RESUME_HEADER), Some("resumed"));
        assert_eq!(
            text(&mut a2),
            format!(r#"{{"type":"session","lost":{unsent}}}"#),
            "{backend:?}"
        );
        let after: Vec<String> = (0..5).map(|_| text(&mut a2)).collect();
        let want: Vec<String> = (0..5).map(|i| format!("after{i}")).collect();
        assert_eq!(after, want, "{backend:?}");
        server.shutdown().unwrap();
    }
}

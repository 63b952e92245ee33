//! Sessions on Server-Sent Events streams (`--session-grace`, issue 18), through real
//! sockets on both backends: the `200` carries the session headers and the stream
//! announces them as its first event after `retry:`; an SSE client reset (RST) while
//! room messages and direct sends go to it resumes with `?resume=` and gets exactly
//! those, in order, as SSE events, then the live stream, memberships intact; an expired
//! or unknown token gets a fresh session and says so; a second stream with the token
//! takes the session over (the first ends with the last chunk); an overflowing buffer is reported
//! in the `session` event; a session resumes over the other transport (WebSocket ↔
//! SSE) with its buffer in the new transport's wire form; a resume accepted by the
//! other shard is handed to the session's shard.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::session::*;
use common::sse::*;
use common::*;
use ringcast::shard::session::{RESUME_HEADER, SESSION_HEADER, TOKEN_HEADER};
use ringcast::{Context, Handler, Message as AppMessage, Transport, UpgradeRequest};
use tungstenite::Message;

/// SSE streams `/sse/R` join `R` and `side`; WebSockets `/ws/R` join `R`. Text messages
/// on a WebSocket are commands: "tell SESSION TEXT" (a direct send through the
/// `Publisher`), "pub R TEXT". Counts opens and resumes.
#[derive(Default)]
struct Sessions {
    opened: Arc<AtomicUsize>,
    resumed: Arc<AtomicUsize>,
}

impl Handler for Sessions {
    fn on_open(&self, cx: &mut Context<'_>, request: &UpgradeRequest) {
        self.opened.fetch_add(1, Ordering::SeqCst);
        if let Some(room) = request.path.strip_prefix("/sse/") {
            assert_eq!(cx.transport(), Transport::Sse);
            cx.join(room).unwrap();
            cx.join("side").unwrap();
        } else if let Some(room) = request.path.strip_prefix("/ws/") {
            cx.join(room).unwrap();
        }
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
            (Some("tell"), Some(session), Some(body)) => {
                assert!(cx
                    .publisher()
                    .send_to_session(session, AppMessage::Text(body)));
            }
            (Some("pub"), Some(room), Some(body)) => {
                cx.publish(room, AppMessage::Text(body)).unwrap();
            }
            _ => panic!("unknown command {text}"),
        }
    }
}

type Sse = SseClient<TcpStream>;

/// The `session` event's JSON for `id`, `token` and the rest (`,"resume":…`).
fn session_json(id: &str, token: &str, rest: &str) -> String {
    format!(r#"{{"type":"session","id":"{id}","token":"{token}"{rest}}}"#)
}

/// Open `path` (an SSE stream); returns it with its session id and token (from the
/// headers), after checking that the `retry:` chunk and then the `session` event come
/// first and agree with the headers, and that the event's tail is `rest`.
fn open_sse(addr: SocketAddr, path: &str, extra: &str, rest: &str) -> (Sse, String, String) {
    let mut c = sse_connect(addr, path, extra, 0);
    assert_eq!(c.status, 200);
    let id = c.header(SESSION_HEADER).expect("session id").to_string();
    let token = c.header(TOKEN_HEADER).expect("resume token").to_string();
    assert!(matches!(c.next_chunk(), Some(Chunk::Retry(_))));
    let first = c.next_event().expect("the session event");
    assert_eq!(first.event.as_deref(), Some("session"));
    assert_eq!(first.data, session_json(&id, &token, rest));
    (c, id, token)
}

/// The next event's data, a plain (`message`) event.
fn data(c: &mut Sse) -> String {
    let e = c.next_event().expect("an event");
    assert_eq!(e.event, None, "{e:?}");
    e.data
}

#[test]
fn a_reset_sse_client_resumes_with_every_buffered_message_in_order_then_live() {
    for backend in BACKENDS {
        let handler = Sessions::default();
        let (opened, resumed) = (handler.opened.clone(), handler.resumed.clone());
        let (server, rec) =
            start_recorded(session_config(backend, 1, Duration::from_secs(60)), handler);
        let addr = server.local_addr();
        let (a, id, token) = open_sse(addr, "/sse/news", "", "");
        assert!(id.starts_with("0-") && token.starts_with(&format!("{id}.")));
        assert_eq!(a.header(RESUME_HEADER), None, "no token presented");
        let (mut b, _) = connect_with(addr, "/control", None);

        reset_sse(a);
        assert!(poll_until(TIMEOUT, || rec.level("detached") == 1));
        for i in 0..30 {
            b.send(Message::text(format!("tell {id} d{i:02}"))).unwrap();
        }
        // Direct sends travel through the inbox: wait until all 30 are buffered (5
        // bytes each, counted at their WebSocket size) so the room messages follow.
        assert!(poll_until(TIMEOUT, || rec.level("buffered") == 150));
        for i in 0..30 {
            b.send(Message::text(format!("pub news r{i:02}"))).unwrap();
        }
        assert!(poll_until(TIMEOUT, || rec.get("published") == 30));

        let path = format!("/sse/news?resume={token}");
        let (mut a2, id2, token2) = open_sse(addr, &path, "", r#","resume":"resumed","lost":0"#);
        assert_eq!(a2.header(RESUME_HEADER), Some("resumed"));
        assert_eq!((id2, token2), (id.clone(), token.clone()));
        let got: Vec<String> = (0..60).map(|_| data(&mut a2)).collect();
        let want: Vec<String> = (0..30)
            .map(|i| format!("d{i:02}"))
            .chain((0..30).map(|i| format!("r{i:02}")))
            .collect();
        assert_eq!(got, want, "{backend:?}");
        // Live messages follow, through both restored memberships, and direct sends
        // to the attached stream are SSE events too.
        b.send(Message::text("pub side live1")).unwrap();
        b.send(Message::text("pub news live2")).unwrap();
        b.send(Message::text(format!("tell {id} live3"))).unwrap();
        assert_eq!(data(&mut a2), "live1");
        assert_eq!(data(&mut a2), "live2");
        assert_eq!(data(&mut a2), "live3");
        assert_eq!((rec.level("detached"), rec.level("buffered")), (0, 0));
        assert_eq!(rec.get("resume:resumed"), 1);
        assert_eq!(rec.get("resume:buffer_overflow"), 0);
        assert_eq!(resumed.load(Ordering::SeqCst), 1);
        assert_eq!(opened.load(Ordering::SeqCst), 2, "a's and b's on_open only");

        // An SSE client has no deliberate close: its EOF detaches too.
        drop(a2);
        assert!(poll_until(TIMEOUT, || rec.level("detached") == 1));
        server.shutdown().unwrap();
    }
}

#[test]
fn an_expired_or_unknown_token_gets_a_fresh_session_and_says_so() {
    for backend in BACKENDS {
        let (server, rec) = start_recorded(
            session_config(backend, 1, Duration::from_millis(200)),
            Sessions::default(),
        );
        let addr = server.local_addr();
        let (a, id, token) = open_sse(addr, "/sse/news", "", "");
        reset_sse(a);
        assert!(poll_until(TIMEOUT, || rec
            .get("session_ended:grace_expired")
            == 1));
        assert_eq!(server.publisher().room_count(), 0, "memberships released");

        let path = format!("/sse/news?resume={token}");
        let (a2, id2, token2) = open_sse(addr, &path, "", r#","resume":"expired""#);
        assert_eq!(a2.header(RESUME_HEADER), Some("expired"));
        assert_ne!((&id2, &token2), (&id, &token), "a fresh session");
        // The token as the request header; one never issued: unknown.
        let forged = format!("{id}.{}", "0".repeat(32));
        let extra = format!("{TOKEN_HEADER}: {forged}\r\n");
        let (a3, id3, _) = open_sse(addr, "/sse/news", &extra, r#","resume":"unknown""#);
        assert_eq!(a3.header(RESUME_HEADER), Some("unknown"));
        assert_ne!(id3, id);
        let (_a4, _, _) = open_sse(
            addr,
            "/sse/news?resume=garbage",
            "",
            r#","resume":"unknown""#,
        );
        assert_eq!(
            (rec.get("resume:expired"), rec.get("resume:unknown")),
            (1, 2)
        );
        server.shutdown().unwrap();
    }
}

#[test]
fn a_second_stream_with_the_token_takes_the_session_over() {
    for backend in BACKENDS {
        let (server, rec) = start_recorded(
            session_config(backend, 1, Duration::from_secs(60)),
            Sessions::default(),
        );
        let addr = server.local_addr();
        let (mut a, id, token) = open_sse(addr, "/sse/news", "", "");
        let path = format!("/sse/news?resume={token}");
        let (mut a2, id2, _) = open_sse(addr, &path, "", r#","resume":"resumed","lost":0"#);
        assert_eq!(id2, id);
        assert!(
            a.read_to_end(),
            "{backend:?}: the older stream ends with the last chunk"
        );
        assert!(poll_until(TIMEOUT, || rec.get("closed:duplicate") == 1));
        server
            .publisher()
            .publish("side", AppMessage::Text("after"))
            .unwrap();
        assert_eq!(data(&mut a2), "after");
        assert_eq!(rec.level("detached"), 0, "the session goes on, attached");
        server.shutdown().unwrap();
    }
}

#[test]
fn an_sse_resume_reports_what_the_buffer_dropped() {
    for backend in BACKENDS {
        let mut cfg = session_config(backend, 1, Duration::from_secs(60));
        cfg.shard.sessions.buffer_bytes = 1024;
        let (server, rec) = start_recorded(cfg, Sessions::default());
        let addr = server.local_addr();
        let (a, _, token) = open_sse(addr, "/sse/news", "", "");
        reset_sse(a);
        assert!(poll_until(TIMEOUT, || rec.level("detached") == 1));
        let publisher = server.publisher();
        let body = |i: usize| format!("{i:03}{}", "x".repeat(97));
        for i in 0..100 {
            publisher
                .publish("news", AppMessage::Text(&body(i)))
                .unwrap();
        }
        assert!(poll_until(TIMEOUT, || rec.get("published") == 100));

        let mut a2 = sse_connect(addr, &format!("/sse/news?resume={token}"), "", 0);
        assert_eq!(a2.header(RESUME_HEADER), Some("resumed"));
        let first = a2.next_event().unwrap();
        assert_eq!(first.event.as_deref(), Some("session"));
        let lost: usize = first
            .data
            .split_once(r#""lost":"#)
            .and_then(|(_, rest)| rest.strip_suffix('}'))
            .unwrap_or_else(|| panic!("{backend:?}: expected the lost count in {first:?}"))
            .parse()
            .unwrap();
        assert!(lost > 0 && lost < 100, "{lost}");
        let kept: Vec<String> = (0..100 - lost).map(|_| data(&mut a2)).collect();
        let want: Vec<String> = (lost..100).map(body).collect();
        assert_eq!(kept, want, "the newest kept, in order");
        assert_eq!(rec.get("resume:buffer_overflow"), 1);
        server.shutdown().unwrap();
    }
}

#[test]
fn a_session_resumes_over_the_other_transport() {
    for backend in BACKENDS {
        let (server, rec) = start_recorded(
            session_config(backend, 1, Duration::from_secs(60)),
            Sessions::default(),
        );
        let addr = server.local_addr();
        let (mut b, _) = connect_with(addr, "/control", None);

        // A WebSocket session resumed as an SSE stream: its buffer as SSE events.
        let (ws, response) = connect_with(addr, "/ws/news", None);
        let (id, token) = session_of(&response);
        let stream: TcpStream = ws.into_inner();
        socket2::SockRef::from(&stream)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(stream);
        assert!(poll_until(TIMEOUT, || rec.level("detached") == 1));
        b.send(Message::text(format!("tell {id} direct1"))).unwrap();
        assert!(poll_until(TIMEOUT, || rec.level("buffered") > 0));
        b.send(Message::text("pub news room1")).unwrap();
        assert!(poll_until(TIMEOUT, || rec.get("published") == 1));
        let path = format!("/sse/news?resume={token}");
        let (mut sse, id2, _) = open_sse(addr, &path, "", r#","resume":"resumed","lost":0"#);
        assert_eq!(id2, id);
        assert_eq!(data(&mut sse), "direct1");
        assert_eq!(data(&mut sse), "room1");
        b.send(Message::text("pub news live1")).unwrap();
        assert_eq!(data(&mut sse), "live1");

        // That session, now an SSE stream, resumed as a WebSocket: WebSocket frames.
        reset_sse(sse);
        assert!(poll_until(TIMEOUT, || rec.level("detached") == 1));
        b.send(Message::text(format!("tell {id} direct2"))).unwrap();
        assert!(poll_until(TIMEOUT, || rec.level("buffered") > 0));
        b.send(Message::text("pub news room2")).unwrap();
        assert!(poll_until(TIMEOUT, || rec.get("published") == 3));
        let (mut ws2, response) = connect_with(addr, "/ws/news", Some(&token));
        assert_eq!(header(&response, RESUME_HEADER), Some("resumed"));
        assert_eq!(text(&mut ws2), "direct2");
        assert_eq!(text(&mut ws2), "room2");
        b.send(Message::text("pub news live2")).unwrap();
        assert_eq!(text(&mut ws2), "live2");
        assert_eq!(rec.get("resume:resumed"), 2);
        server.shutdown().unwrap();
    }
}

#[test]
fn an_sse_resume_accepted_by_the_other_shard_is_served_by_the_sessions_shard() {
    for backend in BACKENDS {
        let (server, rec) = start_recorded(
            session_config(backend, 2, Duration::from_secs(60)),
            Sessions::default(),
        );
        let addr = server.local_addr();
        let (mut b, _) = connect_with(addr, "/control", None);
        let (mut same, mut other) = (0, 0);
        // Resumed streams stay open (an SSE client's EOF would detach them).
        let mut open = Vec::new();
        for round in 0..200 {
            if same > 0 && other > 0 {
                break;
            }
            let room = format!("room{round}");
            let (a, id, token) = open_sse(addr, &format!("/sse/{room}"), "", "");
            let shard = a.header("x-ringcast-shard").unwrap().to_string();
            reset_sse(a);
            assert!(poll_until(TIMEOUT, || rec.level("detached") == 1));
            b.send(Message::text(format!("tell {id} direct{round}")))
                .unwrap();
            assert!(poll_until(TIMEOUT, || rec.level("buffered") > 0));
            b.send(Message::text(format!("pub {room} room{round}")))
                .unwrap();
            let handed_before = rec.get("closed:handed_off");
            let path = format!("/sse/{room}?resume={token}");
            let (mut a2, id2, _) = open_sse(addr, &path, "", r#","resume":"resumed","lost":0"#);
            assert_eq!(id2, id);
            assert_eq!(a2.header(RESUME_HEADER), Some("resumed"));
            assert_eq!(
                a2.header("x-ringcast-shard"),
                Some(shard.as_str()),
                "answered by the session's shard"
            );
            assert_eq!(data(&mut a2), format!("direct{round}"));
            assert_eq!(data(&mut a2), format!("room{round}"));
            b.send(Message::text(format!("pub {room} live{round}")))
                .unwrap();
            assert_eq!(data(&mut a2), format!("live{round}"));
            if rec.get("closed:handed_off") > handed_before {
                other += 1;
            } else {
                same += 1;
            }
            assert!(poll_until(TIMEOUT, || rec.level("detached") == 0));
            open.push(a2);
        }
        assert!(
            same > 0 && other > 0,
            "{backend:?}: same-shard {same}, other-shard {other} resumes"
        );
        server.shutdown().unwrap();
    }
}

//! The library API end to end: a custom `Handler` using join/leave/publish/send/close,
//! the thread-safe `Publisher`, and panic isolation (a panicking callback closes only
//! its own connection with 1011 and the shard keeps serving).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use ringcast::{CloseInfo, Context, Handler, Message as AppMessage, UpgradeRequest};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::Message;

/// Commands in text messages: "join R", "leave R", "pub R text", "close", "panic".
#[derive(Default)]
struct Commands {
    opened: AtomicUsize,
    closed: Arc<AtomicUsize>,
}

impl Handler for Commands {
    fn on_open(&self, cx: &mut Context<'_>, request: &UpgradeRequest) {
        self.opened.fetch_add(1, Ordering::SeqCst);
        cx.send(AppMessage::Text(&format!(
            "hello {} from shard {}",
            request.path,
            cx.shard()
        )));
    }

    fn on_message(&self, cx: &mut Context<'_>, message: AppMessage<'_>) {
        let AppMessage::Text(text) = message else {
            return;
        };
        let mut words = text.splitn(3, ' ');
        match (words.next(), words.next(), words.next()) {
            (Some("join"), Some(room), None) => {
                cx.join(room).expect("valid room name");
                cx.send(AppMessage::Text(&format!("joined {room}")));
            }
            (Some("leave"), Some(room), None) => {
                let was = cx.leave(room);
                cx.send(AppMessage::Text(&format!("left {room} {was}")));
            }
            (Some("pub"), Some(room), Some(body)) => {
                cx.publish(room, AppMessage::Text(body))
                    .expect("valid room name");
            }
            (Some("close"), None, None) => cx.close(4000, "asked to"),
            (Some("panic"), None, None) => panic!("magic panic message"),
            _ => {
                cx.send(AppMessage::Text("?"));
            }
        }
    }

    fn on_close(&self, _cx: &mut Context<'_>, _info: &CloseInfo) {
        self.closed.fetch_add(1, Ordering::SeqCst);
    }
}

fn text(c: &mut Client) -> String {
    loop {
        match c.read().unwrap() {
            Message::Text(t) => return t.to_string(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn join_leave_publish_close_and_publisher() {
    for backend in BACKENDS {
        let handler = Commands::default();
        let closed = handler.closed.clone();
        let server = start_with(config(backend, 2), handler);
        let addr = server.local_addr();
        let mut a = connect_from(addr, "/any", source_ip(1)).0;
        let mut b = connect_from(addr, "/any", source_ip(2)).0;
        assert!(text(&mut a).starts_with("hello /any"));
        assert!(text(&mut b).starts_with("hello /any"));
        a.send(Message::text("join news")).unwrap();
        assert_eq!(text(&mut a), "joined news");
        b.send(Message::text("join news")).unwrap();
        assert_eq!(text(&mut b), "joined news");
        b.send(Message::text("pub news from-b")).unwrap();
        assert_eq!(text(&mut a), "from-b");
        assert_eq!(text(&mut b), "from-b");

        // The Publisher reaches members from outside any shard.
        let publisher = server.publisher();
        std::thread::spawn(move || publisher.publish("news", AppMessage::Text("from-outside")))
            .join()
            .unwrap()
            .unwrap();
        assert_eq!(text(&mut a), "from-outside");
        assert_eq!(text(&mut b), "from-outside");

        a.send(Message::text("leave news")).unwrap();
        assert_eq!(text(&mut a), "left news true");
        b.send(Message::text("pub news only-b")).unwrap();
        assert_eq!(text(&mut b), "only-b");
        a.send(Message::text("leave news")).unwrap();
        assert_eq!(
            text(&mut a),
            "left news false",
            "a got nothing after leaving"
        );

        b.send(Message::text("close")).unwrap();
        match b.read().unwrap() {
            Message::Close(Some(f)) => {
                assert_eq!(f.code, CloseCode::Library(4000));
                assert_eq!(f.reason, "asked to");
            }
            other => panic!("{other:?}"),
        }
        drop(b);
        assert!(
            poll_until(TIMEOUT, || closed.load(Ordering::SeqCst) >= 1),
            "{backend:?}: on_close ran"
        );
        drop(a);
        assert!(
            poll_until(TIMEOUT, || closed.load(Ordering::SeqCst) == 2),
            "{backend:?}: on_close ran for both"
        );
        server.shutdown().unwrap();
    }
}

#[test]
fn a_panicking_callback_closes_only_its_connection_with_1011() {
    for backend in BACKENDS {
        let (server, rec) = start_recorded(config(backend, 1), Commands::default());
        let addr = server.local_addr();
        let mut victim = connect_from(addr, "/p", source_ip(1)).0;
        let mut bystander = connect_from(addr, "/p", source_ip(2)).0;
        text(&mut victim);
        text(&mut bystander);
        victim.send(Message::text("panic")).unwrap();
        match victim.read().unwrap() {
            Message::Close(Some(f)) => assert_eq!(f.code, CloseCode::Error, "{backend:?}"),
            other => panic!("{other:?}"),
        }
        assert!(
            poll_until(TIMEOUT, || rec.get("panic") == 1),
            "{backend:?}: panic counted"
        );
        // Same shard, still served.
        bystander.send(Message::text("join x")).unwrap();
        assert_eq!(text(&mut bystander), "joined x");
        let mut late = connect_from(addr, "/p", source_ip(3)).0;
        assert!(text(&mut late).starts_with("hello"));
        server.shutdown().unwrap();
    }
}

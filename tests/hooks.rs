//! Every metrics hook is called, with the right values, in a scripted session on both
//! backends (recording collector), including bad input answered with its RFC status or
//! close code and counted.

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::sync::Arc;

use common::recorder::Recorder;
use common::*;
use ringcast::app::Builtin;
use ringcast::conn::SlowPolicy;
use ringcast::proto::frame::{encode_masked_frame, Opcode};
use ringcast::{Context, Handler, Message as AppMessage, Server, UpgradeRequest};
use tungstenite::Message;

/// The built-in apps plus a panic on the message "boom".
struct Scripted(Builtin);

impl Handler for Scripted {
    fn on_upgrade(&self, r: &UpgradeRequest) -> ringcast::Upgrade {
        self.0.on_upgrade(r)
    }
    fn on_open(&self, cx: &mut Context<'_>, r: &UpgradeRequest) {
        self.0.on_open(cx, r)
    }
    fn on_message(&self, cx: &mut Context<'_>, m: AppMessage<'_>) {
        if m == AppMessage::Text("boom") {
            panic!("boom requested");
        }
        self.0.on_message(cx, m)
    }
}

#[test]
fn a_scripted_session_calls_every_hook() {
    for backend in BACKENDS {
        let mut cfg = config(backend, 2);
        cfg.max_connections = 3;
        cfg.shard.queue.max_bytes = 1024;
        cfg.shard.queue.policy = SlowPolicy::DropNewest;
        cfg.driver.socket_send_buffer = Some(16 * 1024);
        cfg.shard.timeouts.ping_interval = std::time::Duration::from_millis(300);
        cfg.shard.timeouts.pong = std::time::Duration::from_millis(200);
        let (server, rec) = start_recorded(cfg, Scripted(Builtin::default()));
        let addr = server.local_addr();

        // Two members of one room; one publishes 3 messages of 10 bytes.
        let mut a = connect_from(addr, "/ws/r", source_ip(1)).0;
        let mut b = connect_from(addr, "/ws/r", source_ip(2)).0;
        for i in 0..3 {
            a.send(Message::binary(vec![i; 10])).unwrap();
        }
        for c in [&mut a, &mut b] {
            for i in 0..3 {
                assert_eq!(c.read().unwrap(), Message::binary(vec![i; 10]));
            }
        }
        assert_eq!(rec.get("received"), 3, "{backend:?}");
        assert_eq!(rec.get("received_bytes"), 30);
        // One room and 3 publishes, wherever a and b landed (was: once per shard).
        assert_eq!(rec.get("room_opened"), 1, "{backend:?}");
        assert!(poll_until(TIMEOUT, || rec.get("published") == 3));
        assert_eq!(
            rec.get("recipients"),
            6,
            "{backend:?}: 3 publishes × 2 members"
        );
        assert!(poll_until(TIMEOUT, || rec.get("frames_sent") >= 6));
        assert!(rec.get("publish_to_write") >= 1);
        let samples = rec.get("queue_samples");
        assert!(
            (3..=6).contains(&samples),
            "{backend:?}: one sample per publish per shard delivering it: {samples}"
        );

        // A panic in a callback.
        b.send(Message::text("boom")).unwrap();
        assert!(poll_until(TIMEOUT, || rec.get("panic") == 1));
        assert!(
            poll_until(TIMEOUT, || rec.get("closed:panic") == 1),
            "{:?}",
            rec.snapshot()
        );

        // Bad input, each with its status or close code, each counted.
        let bad_head = raw_exchange(addr, b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(bad_head.starts_with(b"HTTP/1.1 400"));
        assert_eq!(rec.get("rejected:400"), 1);
        let mut s = raw_upgraded(addr, "/echo");
        s.write_all(&[0x81, 0x01, b'x']).unwrap(); // unmasked
        assert_eq!(close_code(&read_to_close(&mut s)), Some(1002));
        assert!(poll_until(TIMEOUT, || rec.get("closed:protocol_error") >= 2));

        // a stops reading, so the heartbeat drops it; b and s finish closing. Then three
        // connections fill the cap of 3 and the next is refused with 503.
        drop(s);
        assert!(
            poll_until(TIMEOUT, || server.admitted() == 0),
            "{backend:?}: {:?}",
            rec.snapshot()
        );
        // a and b gone: the room closed, once.
        assert!(
            poll_until(TIMEOUT, || rec.get("room_closed") == 1),
            "{backend:?}: {:?}",
            rec.snapshot()
        );
        let silent = raw_upgraded(addr, "/ws/r");
        let filler = (raw_upgraded(addr, "/echo"), raw_upgraded(addr, "/echo"));
        let refused = raw_exchange(addr, &upgrade_request("/echo"));
        assert!(
            refused.starts_with(b"HTTP/1.1 503"),
            "{}",
            String::from_utf8_lossy(&refused)
        );
        assert_eq!(rec.get("admission_rejected"), 1);
        // The silent one never reads (its queue overflows: drop-newest) and never
        // answers pings (pong timeout).
        let publisher = server.publisher();
        for _ in 0..4000 {
            publisher
                .publish("r", AppMessage::Binary(&[9; 500]))
                .unwrap();
        }
        assert!(
            poll_until(TIMEOUT, || rec.get("pong_timeout") >= 1),
            "{backend:?}: {:?}",
            rec.snapshot()
        );
        assert!(rec.get("dropped:drop_newest") > 0 || rec.get("dropped:connection_closed") > 0);
        drop((silent, filler));

        // A fresh client closes cleanly. Then every room is gone.
        drop((a, b));
        assert!(
            poll_until(TIMEOUT, || server.admitted() == 0),
            "{:?}",
            rec.snapshot()
        );
        let mut c = connect_from(addr, "/echo", source_ip(9)).0;
        c.close(None).unwrap();
        while c.read().is_ok() {}
        assert!(
            poll_until(TIMEOUT, || rec.get("closed") == rec.get("opened")),
            "{:?}",
            rec.snapshot()
        );
        assert!(rec.get("closed:normal") >= 1);
        // Reopened by the silent client, closed again when it went.
        assert_eq!(rec.get("room_opened"), 2, "{:?}", rec.snapshot());
        assert_eq!(rec.get("room_closed"), 2, "{:?}", rec.snapshot());
        server.shutdown().unwrap();
    }
}

/// Per-room and per-publish hooks on two shards (3 members on each, the sender
/// excluded): `room_opened` and `room_closed` once for the room, `publish_fanned_out`
/// once per publish with the recipients of both shards; per-shard hooks per shard.
#[test]
fn room_and_publish_hooks_fire_once_across_shards() {
    for backend in BACKENDS {
        let app = Builtin {
            rooms: ringcast::app::Rooms {
                exclude_sender: true,
            },
            ..Builtin::default()
        };
        let (server, rec) = start_recorded(config(backend, 2), app);
        let spread = common::spread::connect_spread(server.local_addr(), "/ws/r", &[3, 3]);
        let extras = spread.extras as u64;
        let mut clients = spread.clients;
        assert!(poll_until(TIMEOUT, || rec.get("closed") == extras));
        // Extras joined and left too; count from here.
        let opened = rec.get("room_opened");
        let closed = rec.get("room_closed");
        assert_eq!(opened - closed, 1, "{backend:?}: one room open");

        for i in 0..4u8 {
            clients[0].0.send(Message::binary(vec![i])).unwrap();
        }
        for (c, _) in clients.iter_mut().skip(1) {
            for i in 0..4u8 {
                assert_eq!(c.read().unwrap(), Message::binary(vec![i]));
            }
        }
        assert!(
            poll_until(TIMEOUT, || rec.get("published") == 4),
            "{backend:?}: {:?}",
            rec.snapshot()
        );
        assert_eq!(rec.get("recipients"), 4 * 5, "{backend:?}: 5 others each");
        assert_eq!(rec.get("queue_samples"), 4 * 2, "{backend:?}: per shard");

        for (mut c, _) in clients {
            c.close(None).unwrap();
            while c.read().is_ok() {}
        }
        assert!(poll_until(TIMEOUT, || rec.get("closed") == extras + 6));
        assert_eq!(rec.get("room_opened"), opened, "{backend:?}");
        assert_eq!(rec.get("room_closed"), closed + 1, "{backend:?}");
        server.shutdown().unwrap();
    }
}

#[test]
fn bind_retries_are_reported() {
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut cfg = config(BACKENDS[1], 1);
    cfg.addr = holder.local_addr().unwrap();
    let rec = Arc::new(Recorder::default());
    let result = Server::start_with_metrics(cfg, Arc::new(Builtin::default()), rec.clone());
    assert!(result.is_err());
    assert_eq!(rec.get("bind_retry"), 7);
}

#[test]
fn masked_frames_from_a_bad_client_are_not_echoed_after_close() {
    // A close frame followed by data: the data is never processed.
    for backend in BACKENDS {
        let (server, rec) = start_recorded(config(backend, 1), Builtin::default());
        let mut s = raw_upgraded(server.local_addr(), "/echo");
        let mut out =
            encode_masked_frame(true, Opcode::Close, &1000u16.to_be_bytes(), [1, 2, 3, 4]);
        out.extend(encode_masked_frame(
            true,
            Opcode::Text,
            b"after",
            [1, 2, 3, 4],
        ));
        s.write_all(&out).unwrap();
        let frames = parse_frames(&read_to_close(&mut s));
        assert_eq!(
            frames,
            vec![(0x8, 1000u16.to_be_bytes().to_vec())],
            "{backend:?}"
        );
        assert_eq!(rec.get("received"), 0);
        server.shutdown().unwrap();
    }
}

//! Fan-out end to end: 240 clients in one room spread over every shard; one of them
//! publishes; every client receives every message exactly once and in order — on both
//! backends. Also cross-shard delivery from the thread-safe `Publisher`. With ~120
//! members per shard, one flush makes more sends than the io_uring backend submits at
//! a time (32), so its early reaping of completions is on this path.

mod common;

use common::*;
use ringcast::Message as AppMessage;
use tungstenite::Message;

const CLIENTS: usize = 240;
const MESSAGES: usize = 25;

#[test]
fn every_client_on_every_shard_gets_every_message_once_in_order() {
    for backend in BACKENDS {
        let server = start(backend, 2);
        let addr = server.local_addr();
        let mut clients = Vec::with_capacity(CLIENTS);
        let mut per_shard = [0usize; 2];
        for i in 0..CLIENTS {
            let (c, resp) = connect_from(addr, "/ws/all", source_ip(i));
            per_shard[shard_of(&resp)] += 1;
            clients.push(c);
        }
        assert!(
            per_shard.iter().all(|n| *n > 0),
            "{backend:?}: clients on every shard: {per_shard:?}"
        );
        // Joins happen before the 101 is written, so the room is already listed.
        assert!(poll_until(TIMEOUT, || server.publisher().room_count() == 1));

        for seq in 0..MESSAGES {
            clients[0].send(Message::text(format!("m{seq}"))).unwrap();
        }
        for (i, c) in clients.iter_mut().enumerate() {
            for seq in 0..MESSAGES {
                let msg = c
                    .read()
                    .unwrap_or_else(|e| panic!("{backend:?}: client {i} message {seq}: {e}"));
                assert_eq!(
                    msg,
                    Message::text(format!("m{seq}")),
                    "{backend:?}: client {i}"
                );
            }
        }
        // Exactly once: nothing more arrives after a marker published last.
        server
            .publisher()
            .publish("all", AppMessage::Text("end"))
            .unwrap();
        for (i, c) in clients.iter_mut().enumerate() {
            assert_eq!(
                c.read().unwrap(),
                Message::text("end"),
                "{backend:?}: client {i} got an extra message"
            );
        }
        drop(clients);
        server.shutdown().unwrap();
    }
}

#[test]
fn exclude_sender_is_honoured_and_rooms_are_isolated() {
    for backend in BACKENDS {
        let cfg = config(backend, 2);
        let app = ringcast::app::Builtin {
            rooms: ringcast::app::Rooms {
                exclude_sender: true,
            },
            ..Default::default()
        };
        let server = start_with(cfg, app);
        let addr = server.local_addr();
        let mut a: Vec<_> = (0..4)
            .map(|i| connect_from(addr, "/ws/a", source_ip(i)).0)
            .collect();
        let mut b = connect(addr, "/ws/b");
        a[0].send(Message::text("to-a")).unwrap();
        for c in &mut a[1..] {
            assert_eq!(c.read().unwrap(), Message::text("to-a"));
        }
        // Sender and the other room get nothing: the next thing each sees is a marker.
        server
            .publisher()
            .publish("a", AppMessage::Text("marker"))
            .unwrap();
        server
            .publisher()
            .publish("b", AppMessage::Text("marker"))
            .unwrap();
        assert_eq!(
            a[0].read().unwrap(),
            Message::text("marker"),
            "{backend:?}: sender excluded"
        );
        assert_eq!(
            b.read().unwrap(),
            Message::text("marker"),
            "{backend:?}: room b isolated"
        );
        server.shutdown().unwrap();
    }
}

//! Cluster mode over a real Redis (`--broker`, feature `redis`), on both backends,
//! through real sockets: three nodes deliver every message of a room exactly once and
//! in one identical order to every client; a node subscribes to a room only while it
//! has members (plus the linger); a message on a room channel that ringcast did not
//! write is counted and never delivered; a client that left node A resumes on node B
//! with `?since=`, also on a node whose ring went stale when it unsubscribed; Redis
//! killed and restarted while publishing is survived (see also
//! `tests/cluster_faults.rs`).

#![cfg(feature = "redis")]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::cluster::{node, publish_from_three_and_check_one_order, read_text};
use common::redis::RedisServer;
use common::*;
use ringcast::wire::sequence::parse_seq_payload;
use ringcast::{BackendChoice, RunningServer};
use tungstenite::Message;

/// Next sequence-framed message: (seq, payload).
fn read_seq(c: &mut Client) -> (u64, Vec<u8>) {
    loop {
        match c.read().expect("read") {
            Message::Binary(b) => {
                let (seq, _op, body) = parse_seq_payload(&b).expect("sequence framing");
                return (seq, body.to_vec());
            }
            Message::Text(t) => panic!("unexpected control message {t}"),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

const CHANNEL: &str = "{ringcast:r}";

#[test]
fn three_nodes_every_client_gets_every_message_once_in_one_order() {
    for backend in BACKENDS {
        let redis = RedisServer::start();
        let nodes: Vec<RunningServer> = (0..3)
            .map(|i| node(backend, redis.url(), &format!("n{i}"), None))
            .collect();
        let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.local_addr()).collect();
        // 100 clients per node, spread over source addresses (so over both shards).
        let mut clients: Vec<Client> = (0..300)
            .map(|i| connect_from(addrs[i % 3], "/ws/r", source_ip(i)).0)
            .collect();
        assert!(
            poll_until(TIMEOUT, || redis.numsub(CHANNEL) == 3),
            "every node subscribed once"
        );
        let publishes_before = redis.calls("publish");
        // One publisher per node, all at once: 3 × 30 messages.
        const EACH: usize = 30;
        publish_from_three_and_check_one_order(&mut clients, EACH);
        // One Redis command per publish, whatever the number of nodes and clients.
        assert_eq!(redis.calls("publish") - publishes_before, (3 * EACH) as u64);
        for c in clients.iter_mut() {
            c.set_nonblocking_read_check();
        }
        let received: u64 = nodes
            .iter()
            .map(|n| n.broker_stats().unwrap().1.received)
            .sum();
        assert_eq!(
            received,
            (3 * 3 * EACH) as u64,
            "one decode per message per node"
        );
        drop(clients);
        for n in nodes {
            n.shutdown().unwrap();
        }
    }
}

/// Nothing more arrived for this client (a short non-blocking check after the test).
trait NoMore {
    fn set_nonblocking_read_check(&mut self);
}

impl NoMore for Client {
    fn set_nonblocking_read_check(&mut self) {
        self.get_mut()
            .set_read_timeout(Some(Duration::from_millis(1)))
            .unwrap();
        match self.read() {
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            other => panic!("unexpected extra message: {other:?}"),
        }
        self.get_mut().set_read_timeout(Some(TIMEOUT)).unwrap();
    }
}

#[test]
fn a_node_subscribes_only_while_it_has_members_and_unsubscribes_after_the_linger() {
    for backend in BACKENDS {
        let redis = RedisServer::start();
        let a = node(backend, redis.url(), "a", None);
        let b = node(backend, redis.url(), "b", None);
        let mut member = connect(a.local_addr(), "/ws/r");
        assert!(poll_until(TIMEOUT, || redis.numsub(CHANNEL) == 1));
        member.send(Message::text("hello")).unwrap();
        assert_eq!(read_text(&mut member), "hello");
        let (_, sb) = b.broker_stats().unwrap();
        assert_eq!(
            (sb.subscribes, sb.received),
            (0, 0),
            "b has no member: nothing for it"
        );
        // A member on b: b subscribes too; the last one leaving a: a unsubscribes
        // after the linger.
        let mut other = connect(b.local_addr(), "/ws/r");
        assert!(poll_until(TIMEOUT, || redis.numsub(CHANNEL) == 2));
        member.close(None).unwrap();
        while member.read().is_ok() {}
        assert!(
            poll_until(TIMEOUT, || redis.numsub(CHANNEL) == 1),
            "a unsubscribed"
        );
        assert_eq!(a.broker_stats().unwrap().1.unsubscribes, 1);
        other.send(Message::text("still here")).unwrap();
        assert_eq!(read_text(&mut other), "still here");
        // A reconnect within the linger does not churn the subscription.
        other.close(None).unwrap();
        while other.read().is_ok() {}
        let mut back = connect(b.local_addr(), "/ws/r");
        back.send(Message::text("back")).unwrap();
        assert_eq!(read_text(&mut back), "back");
        let (_, sb) = b.broker_stats().unwrap();
        assert_eq!(
            (sb.subscribes, sb.unsubscribes),
            (1, 0),
            "kept through the linger"
        );
        a.shutdown().unwrap();
        b.shutdown().unwrap();
    }
}

#[test]
fn a_message_ringcast_did_not_write_is_counted_and_dropped() {
    for backend in BACKENDS {
        let redis = RedisServer::start();
        let a = node(backend, redis.url(), "a", None);
        let mut c = connect(a.local_addr(), "/ws/r");
        assert!(poll_until(TIMEOUT, || redis.numsub(CHANNEL) == 1));
        // Another program's message, a truncated envelope, another version.
        for foreign in ["not ours", "RC1 t 0 0 a - - 0", "RC9 t 0 0 a - - 0\nx"] {
            redis.cli(&["PUBLISH", CHANNEL, foreign]);
        }
        assert!(poll_until(TIMEOUT, || a
            .broker_stats()
            .unwrap()
            .1
            .foreign_dropped
            == 3));
        c.send(Message::text("real")).unwrap();
        assert_eq!(
            read_text(&mut c),
            "real",
            "nothing of them reached the client"
        );
        a.shutdown().unwrap();
    }
}

#[test]
fn a_client_that_left_node_a_resumes_on_node_b_from_b_s_own_history() {
    for backend in BACKENDS {
        resume_on_another_node(backend, true);
    }
}

#[test]
fn a_client_that_left_node_a_resumes_on_node_b_from_the_room_stream() {
    for backend in BACKENDS {
        resume_on_another_node(backend, false);
    }
}

/// A client leaves node a; 200 messages are published (from both nodes); it resumes on
/// node b with `?since=` while 50 more are published: it gets exactly what it missed,
/// then the live ones, in the order a watcher saw them. `b_has_members`: a watcher on
/// b all along, so b's local history covers the range; otherwise b holds nothing of
/// the room and fetches it from the room's Redis stream.
fn resume_on_another_node(backend: BackendChoice, b_has_members: bool) {
    {
        let redis = RedisServer::start();
        let a = node(backend, redis.url(), "a", Some(500));
        let b = node(backend, redis.url(), "b", Some(500));
        let watcher_node = if b_has_members { &b } else { &a };
        let mut watcher = connect(watcher_node.local_addr(), "/ws/r?seq=1");
        let mut c = connect(a.local_addr(), "/ws/r?seq=1");
        let subscribers = if b_has_members { 2 } else { 1 };
        assert!(poll_until(TIMEOUT, || redis.numsub(CHANNEL) == subscribers));
        let publisher = a.publisher();
        for i in 0..10 {
            publisher
                .publish("r", ringcast::Message::Text(&format!("m{i}")))
                .unwrap();
        }
        let mut last = 0;
        for i in 0..10 {
            let (seq, body) = read_seq(&mut c);
            assert_eq!(body, format!("m{i}").as_bytes());
            assert!(seq > last);
            last = seq;
        }
        drop(c);
        // 200 published while away, from both nodes; more go on during the resume.
        let pb = b.publisher();
        if !b_has_members {
            assert_eq!(
                b.history_stats().unwrap().frames,
                0,
                "b holds nothing of the room"
            );
        }
        for i in 10..210 {
            let p = if i % 2 == 0 { &publisher } else { &pb };
            p.publish("r", ringcast::Message::Text(&format!("m{i}")))
                .unwrap();
        }
        let mut watcher_seen = Vec::new();
        while watcher_seen.len() < 210 {
            watcher_seen.push(read_seq(&mut watcher));
        }
        let during = std::thread::scope(|s| {
            let h = s.spawn(|| {
                for i in 210..260 {
                    publisher
                        .publish("r", ringcast::Message::Text(&format!("m{i}")))
                        .unwrap();
                }
            });
            let c = connect(b.local_addr(), &format!("/ws/r?since={last}"));
            h.join().unwrap();
            c
        });
        let mut c = during;
        while watcher_seen.len() < 260 {
            watcher_seen.push(read_seq(&mut watcher));
        }
        // Exactly what the watcher on b saw after `last`, in the same order (two nodes
        // publishing: Redis's order, not the loop's), numbers without gap.
        let missed: Vec<(u64, Vec<u8>)> = watcher_seen
            .into_iter()
            .filter(|(s, _)| *s > last)
            .collect();
        assert_eq!(missed.len(), 250);
        for (i, want) in missed.iter().enumerate() {
            let got = read_seq(&mut c);
            assert_eq!(got.0, last + 1 + i as u64, "no gap, no duplicate");
            assert_eq!(&got, want);
        }
        let (_, stats) = b.broker_stats().unwrap();
        if !b_has_members {
            assert!(stats.recovered >= 200, "fetched from the stream: {stats:?}");
        }
        a.shutdown().unwrap();
        b.shutdown().unwrap();
    }
}

#[test]
fn a_resume_on_a_node_that_unsubscribed_after_the_linger_fetches_what_it_missed() {
    for backend in BACKENDS {
        let redis = RedisServer::start();
        let a = node(backend, redis.url(), "a", Some(500));
        let b = node(backend, redis.url(), "b", Some(500));
        let mut watcher = connect(a.local_addr(), "/ws/r?seq=1");
        let mut c = connect(b.local_addr(), "/ws/r?seq=1");
        assert!(poll_until(TIMEOUT, || redis.numsub(CHANNEL) == 2));
        let publisher = a.publisher();
        let publish = |i: usize| {
            publisher
                .publish("r", ringcast::Message::Text(&format!("m{i}")))
                .unwrap()
        };
        for i in 0..5 {
            publish(i);
        }
        let mut last = 0;
        for i in 0..5 {
            let (seq, body) = read_seq(&mut c);
            assert_eq!(body, format!("m{i}").as_bytes());
            last = seq;
        }
        // b's last member leaves; after the linger b unsubscribes, its ring stops at
        // `last` but still "covers" it.
        drop(c);
        assert!(
            poll_until(TIMEOUT, || redis.numsub(CHANNEL) == 1),
            "b unsubscribed"
        );
        assert_eq!(b.broker_stats().unwrap().1.unsubscribes, 1);
        for i in 5..10 {
            publish(i);
        }
        for _ in 0..10 {
            read_seq(&mut watcher);
        }
        let mut c = connect(b.local_addr(), &format!("/ws/r?since={last}"));
        for i in 5..10 {
            let (seq, body) = read_seq(&mut c);
            assert_eq!(seq, last + 1 + (i - 5) as u64, "no hole, no duplicate");
            assert_eq!(body, format!("m{i}").as_bytes());
        }
        publish(10);
        assert_eq!(read_seq(&mut c), (last + 6, b"m10".to_vec()), "then live");
        a.shutdown().unwrap();
        b.shutdown().unwrap();
    }
}

/// The node's publish connection in `CLIENT LIST` (not subscribed, not redis-cli).
fn publish_connection_id(redis: &RedisServer) -> Option<String> {
    redis.cli(&["CLIENT", "LIST"]).lines().find_map(|line| {
        let field = |name: &str| {
            line.split(' ')
                .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
        };
        let subscriber = field("sub") != Some("0") || field("psub") != Some("0");
        (!subscriber && field("cmd") != Some("client|list"))
            .then(|| field("id").unwrap().to_owned())
    })
}

#[test]
fn a_killed_publish_connection_ends_the_session_and_publishes_work_again() {
    for backend in BACKENDS {
        let redis = RedisServer::start();
        let a = node(backend, redis.url(), "a", None);
        let mut member = connect(a.local_addr(), "/ws/r");
        assert!(poll_until(TIMEOUT, || redis.numsub(CHANNEL) == 1));
        member.send(Message::text("one")).unwrap();
        assert_eq!(read_text(&mut member), "one");
        let id = publish_connection_id(&redis).expect("the publish connection");
        redis.cli(&["CLIENT", "KILL", "ID", &id]);
        // The next publish finds the connection gone: it fails (counted) and the node
        // reconnects, subscribes again and publishes again.
        member.send(Message::text("lost")).unwrap();
        assert!(
            poll_until(TIMEOUT, || {
                let s = a.broker_stats().unwrap().1;
                s.publish_failed >= 1 && s.reconnects == 1 && s.up && s.subscribes == 2
            }),
            "reconnected: {:?}",
            a.broker_stats().unwrap().1
        );
        assert_ne!(publish_connection_id(&redis), Some(id), "a new connection");
        member.send(Message::text("two")).unwrap();
        assert_eq!(read_text(&mut member), "two");
        a.shutdown().unwrap();
    }
}

#[test]
fn a_room_s_first_member_gets_its_own_message_sent_with_the_upgrade() {
    use std::io::{Read, Write};
    for backend in BACKENDS {
        let redis = RedisServer::start();
        let a = node(backend, redis.url(), "a", None);
        // Upgrade and one text frame in one write, each to a fresh room: the publish
        // must not reach Redis before the node's SUBSCRIBE of the room.
        let mut sockets: Vec<_> = (0..30)
            .map(|i| {
                let mut s = tcp_from(a.local_addr(), source_ip(0));
                let text = format!("hello{i}");
                let mut bytes = upgrade_request(&format!("/ws/fresh{i}"));
                // FIN + text, masked with the all-zero key (RFC 6455 §5.3).
                bytes.extend_from_slice(&[0x81, 0x80 | text.len() as u8, 0, 0, 0, 0]);
                bytes.extend_from_slice(text.as_bytes());
                s.write_all(&bytes).unwrap();
                (s, text)
            })
            .collect();
        for (s, text) in &mut sockets {
            s.set_read_timeout(Some(TIMEOUT)).unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            // Bounded: at most 100 reads of at most TIMEOUT each.
            for _ in 0..100 {
                if got.windows(text.len()).any(|w| w == text.as_bytes()) {
                    break;
                }
                match s.read(&mut buf) {
                    Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
                    _ => break,
                }
            }
            assert!(
                got.windows(text.len()).any(|w| w == text.as_bytes()),
                "{text} came back to its sender: {:?}",
                String::from_utf8_lossy(&got)
            );
        }
        a.shutdown().unwrap();
    }
}

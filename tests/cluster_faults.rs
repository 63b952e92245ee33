//! Cluster mode when Redis goes away: two `ringcast` binaries on a real `redis-server`,
//! which is killed while a client publishes and started again on the same port (empty:
//! persistence is off). No node crashes or leaks fds, publishes during the outage are
//! counted as failed, both nodes reconnect and subscribe again, and delivery resumes
//! (both backends). With `--history`, a sequenced client gets every number, or a
//! `reset` announcing where the numbering (restarted by Redis's data loss) goes on.

#![cfg(feature = "redis")]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::process::ServerProcess;
use common::redis::RedisServer;
use common::*;
use tungstenite::Message;

const CHANNEL: &str = "{ringcast:r}";

/// Publish `p0`, `p1`, … on `client`, one a millisecond, until `stop` is set; bounded at
/// 60,000 messages (60 s). Returns how many were sent.
fn publish_until(stop: &AtomicBool, client: &mut Client) -> u64 {
    let mut sent = 0u64;
    while !stop.load(Ordering::Relaxed) && sent < 60_000 {
        client.send(Message::text(format!("p{sent}"))).unwrap();
        sent += 1;
        std::thread::sleep(Duration::from_millis(1));
    }
    sent
}

fn spawn_node(redis: &RedisServer, backend: &str, id: &str) -> ServerProcess {
    spawn_node_with(redis, backend, id, &[])
}

fn spawn_node_with(redis: &RedisServer, backend: &str, id: &str, extra: &[&str]) -> ServerProcess {
    let url = redis.url();
    let mut args = vec![
        "--broker",
        &url,
        "--node-id",
        id,
        "--broker-linger",
        "200ms",
        "--threads",
        "2",
        "--no-pin",
        "--backend",
        backend,
        "--metrics-addr",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    ServerProcess::spawn(&args)
}

#[test]
fn redis_killed_and_restarted_while_publishing_is_survived() {
    for backend in ["uring", "epoll"] {
        let mut redis = RedisServer::start();
        let a = spawn_node(&redis, backend, "a");
        let b = spawn_node(&redis, backend, "b");
        for n in [&a, &b] {
            assert!(poll_until(TIMEOUT, || n.counter("ringcast_broker_up") == 1.0));
        }
        let mut pub_client = connect(a.addr, "/ws/r");
        let mut sub = connect(b.addr, "/ws/r");
        assert!(poll_until(TIMEOUT, || redis.numsub(CHANNEL) == 2));
        pub_client.send(Message::text("first")).unwrap();
        assert_eq!(sub.read().unwrap(), Message::text("first"));
        let fds = (a.settled_fds(), b.settled_fds());

        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            let publishing = s.spawn(|| publish_until(&stop, &mut pub_client));
            redis.stop();
            assert!(poll_until(TIMEOUT, || a.counter("ringcast_broker_up") == 0.0));
            assert!(
                poll_until(TIMEOUT, || a
                    .counter("ringcast_broker_publish_failures_total")
                    >= 100.0),
                "publishes during the outage are counted as failed"
            );
            redis.restart();
            for n in [&a, &b] {
                assert!(
                    poll_until(TIMEOUT, || n.counter("ringcast_broker_up") == 1.0),
                    "reconnected"
                );
                assert!(n.counter("ringcast_broker_reconnects_total") >= 1.0);
            }
            assert!(
                poll_until(TIMEOUT, || redis.numsub(CHANNEL) == 2),
                "subscribed again"
            );
            stop.store(true, Ordering::Relaxed);
            assert!(publishing.join().unwrap() > 0);
        });
        pub_client.send(Message::text("after")).unwrap();
        // Delivery resumed: `after` reaches b (after whatever got through before).
        let mut got_after = false;
        for _ in 0..100_000 {
            if sub.read().unwrap() == Message::text("after") {
                got_after = true;
                break;
            }
        }
        assert!(got_after);
        for (n, before) in [(&a, fds.0), (&b, fds.1)] {
            assert!(n.counter("ringcast_broker_foreign_dropped_total") == 0.0);
            assert_eq!(n.settled_fds(), before, "no fd leaked across the reconnect");
        }
        drop((pub_client, sub));
        for mut n in [a, b] {
            assert!(n.child.try_wait().unwrap().is_none(), "node still running");
            n.signal(libc::SIGTERM);
            assert!(n.wait_exit(TIMEOUT).success());
        }
    }
}

#[test]
fn a_sequenced_client_gets_every_number_or_a_reset_across_a_redis_restart() {
    use ringcast::wire::sequence::parse_seq_payload;
    for backend in ["uring", "epoll"] {
        let mut redis = RedisServer::start();
        let history = ["--history", "1000"];
        let a = spawn_node_with(&redis, backend, "a", &history);
        let b = spawn_node_with(&redis, backend, "b", &history);
        for n in [&a, &b] {
            assert!(poll_until(TIMEOUT, || n.counter("ringcast_broker_up") == 1.0));
        }
        let mut pub_client = connect(a.addr, "/ws/r");
        let mut sub = connect(b.addr, "/ws/r?seq=1");
        assert!(poll_until(TIMEOUT, || redis.numsub(CHANNEL) == 2));
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            let publishing = s.spawn(|| publish_until(&stop, &mut pub_client));
            assert!(poll_until(TIMEOUT, || b
                .counter("ringcast_broker_received_total")
                >= 50.0));
            redis.stop();
            assert!(poll_until(TIMEOUT, || {
                a.counter("ringcast_broker_publish_failures_total") >= 100.0
            }));
            redis.restart();
            for n in [&a, &b] {
                assert!(poll_until(TIMEOUT, || n.counter("ringcast_broker_up") == 1.0));
            }
            assert!(poll_until(TIMEOUT, || redis.numsub(CHANNEL) == 2));
            let received = b.counter("ringcast_broker_received_total");
            assert!(poll_until(TIMEOUT, || {
                b.counter("ringcast_broker_received_total") >= received + 50.0
            }));
            stop.store(true, Ordering::Relaxed);
            publishing.join().unwrap();
        });
        pub_client.send(Message::text("after")).unwrap();
        // Every number in order, a reset where Redis restarted the numbering, never a
        // silent jump.
        let (mut expect, mut resets, mut numbers) = (None::<u64>, 0, 0);
        for _ in 0..200_000 {
            match sub.read().unwrap() {
                Message::Binary(b) => {
                    let (seq, _, body) = parse_seq_payload(&b).unwrap();
                    if let Some(e) = expect {
                        assert_eq!(seq, e, "no silent gap or duplicate");
                    }
                    expect = Some(seq + 1);
                    numbers += 1;
                    if body == b"after" {
                        break;
                    }
                }
                Message::Text(t) => {
                    let v: Vec<&str> = t
                        .split(['{', '}', ',', ':', '"'])
                        .filter(|s| !s.is_empty())
                        .collect();
                    assert_eq!(&v[..3], ["type", "reset", "next"], "{t}");
                    expect = Some(v[3].parse().unwrap());
                    resets += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(resets, 1, "one reset: Redis lost the room once");
        assert!(numbers > 100);
        assert!(b.counter("ringcast_broker_reconnects_total") >= 1.0);
        drop((pub_client, sub));
        for mut n in [a, b] {
            n.signal(libc::SIGTERM);
            assert!(n.wait_exit(TIMEOUT).success());
        }
    }
}

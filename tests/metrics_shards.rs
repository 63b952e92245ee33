//! Room and publish metrics on two shards, read from `/metrics` as a user would: a room
//! whose members sit on both shards is one room, and a publish is one publish observed
//! once with all its recipients, whichever shards delivered it (issue 12 item 6). With
//! history on, the same holds for sequenced publishes, and a message larger than
//! `history_bytes` is delivered, counted as refused, and leaves the history as it was
//! (a resume gets a `gap` in its place). Both backends, exact values.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use common::spread::connect_spread;
use common::{poll_until, Client, BACKENDS, TIMEOUT};
use ringcast::metrics::{MetricsCollector, MetricsServer, PrometheusCollector};
use ringcast::wire::sequence::parse_seq_payload;
use ringcast::{BackendChoice, Config, RunningServer};
use tungstenite::Message;

struct Setup {
    server: RunningServer,
    collector: Arc<PrometheusCollector>,
    metrics: MetricsServer,
}

impl Setup {
    fn start(cfg: Config) -> Self {
        ringcast::sys::raise_nofile_limit(None).expect("raise RLIMIT_NOFILE");
        let collector = Arc::new(PrometheusCollector::new(cfg.threads, "rc", vec![], "test"));
        let server = ringcast::Server::start_with_metrics(
            cfg,
            Arc::new(ringcast::app::Builtin::default()),
            Arc::clone(&collector) as Arc<dyn MetricsCollector>,
        )
        .expect("server starts");
        let metrics = MetricsServer::start(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            Arc::clone(&collector),
        )
        .unwrap();
        Setup {
            server,
            collector,
            metrics,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// `/metrics`, parsed into `name{labels}` → value (labels as written, `{}` if none).
    fn scrape(&self) -> HashMap<String, f64> {
        let mut s = TcpStream::connect(self.metrics.local_addr()).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").expect("a response");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        body.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let (key, value) = l.rsplit_once(' ').unwrap();
                let key = if key.contains('{') {
                    key.to_owned()
                } else {
                    format!("{key}{{}}")
                };
                (key, value.parse().unwrap())
            })
            .collect()
    }

    /// Wait until `done(snapshot)` holds (events land on shard threads).
    fn wait(&self, what: &str, done: impl Fn(&ringcast::metrics::Snapshot) -> bool) {
        assert!(
            poll_until(TIMEOUT, || done(&self.collector.snapshot())),
            "{what}: {:?}",
            self.collector.snapshot()
        );
    }

    fn stop(self) {
        self.metrics.shutdown();
        self.server.shutdown().unwrap();
    }
}

/// `/metrics` value of `name` with `labels` (e.g. `le="20"`), panicking if absent.
fn value(m: &HashMap<String, f64>, name: &str, labels: &str) -> f64 {
    let key = format!("rc_{name}{{{labels}}}");
    *m.get(&key).unwrap_or_else(|| panic!("no {key}"))
}

fn config(backend: BackendChoice) -> Config {
    common::config(backend, 2)
}

/// Members of `path` spread `per_shard`, with the extra connections already closed.
fn members(setup: &Setup, path: &str, per_shard: &[usize]) -> Vec<(Client, usize)> {
    let before = setup.collector.snapshot().connections_closed;
    let spread = connect_spread(setup.addr(), path, per_shard);
    let extras = spread.extras as u64;
    setup.wait("extra connections closed", |s| {
        s.connections_closed == before + extras
    });
    spread.clients
}

fn close_all(clients: Vec<(Client, usize)>) {
    for (mut c, _) in clients {
        c.close(None).unwrap();
        while c.read().is_ok() {}
    }
}

#[test]
fn a_room_and_its_publishes_count_once_on_two_shards() {
    for backend in BACKENDS {
        let setup = Setup::start(config(backend));
        // The issue's first case: 10 clients in one room over both shards, 1 room.
        let mut news = members(&setup, "/ws/news", &[5, 5]);
        let m = setup.scrape();
        assert_eq!(value(&m, "rooms_active", ""), 1.0, "{backend:?}");
        news.extend(members(&setup, "/ws/news", &[5, 5]));

        // The issue's second case: 20 clients (10 per shard) receiving 5 publishes.
        for i in 0..5 {
            news[0].0.send(Message::text(format!("m{i}"))).unwrap();
        }
        for (c, shard) in news.iter_mut() {
            for i in 0..5 {
                let got = c.read().unwrap();
                assert_eq!(
                    got,
                    Message::text(format!("m{i}")),
                    "{backend:?} shard {shard}"
                );
            }
        }
        setup.wait("5 publishes reported", |s| {
            s.messages_published == 5 && s.frames_sent == 100
        });
        let m = setup.scrape();
        let ctx = format!("{backend:?}");
        assert_eq!(value(&m, "rooms_active", ""), 1.0, "{ctx}");
        assert_eq!(value(&m, "messages_received_total", ""), 5.0, "{ctx}");
        assert_eq!(value(&m, "messages_published_total", ""), 5.0, "{ctx}");
        assert_eq!(value(&m, "broadcast_fanout_count", ""), 5.0, "{ctx}");
        assert_eq!(value(&m, "broadcast_fanout_sum", ""), 100.0, "{ctx}");
        assert_eq!(
            value(&m, "broadcast_fanout_bucket", "le=\"10\""),
            0.0,
            "{ctx}"
        );
        assert_eq!(
            value(&m, "broadcast_fanout_bucket", "le=\"20\""),
            5.0,
            "{ctx}"
        );
        assert_eq!(value(&m, "frames_sent_total", ""), 100.0, "{ctx}");
        // Per shard by design: one sample per shard that delivered a publish.
        assert_eq!(value(&m, "send_queue_bytes_count", ""), 10.0, "{ctx}");

        // From outside the shards: one publish to the 20, then one to a room nobody is in
        // (a publish with 0 recipients).
        let publisher = setup.server.publisher();
        assert_eq!(
            publisher.publish("news", ringcast::Message::Text("p")),
            Ok(2)
        );
        for (c, _) in news.iter_mut() {
            assert_eq!(c.read().unwrap(), Message::text("p"));
        }
        assert_eq!(
            publisher.publish("nobody", ringcast::Message::Text("x")),
            Ok(0)
        );
        setup.wait("7 publishes", |s| s.messages_published == 7);
        let m = setup.scrape();
        assert_eq!(value(&m, "messages_published_total", ""), 7.0, "{ctx}");
        assert_eq!(value(&m, "broadcast_fanout_count", ""), 7.0, "{ctx}");
        assert_eq!(value(&m, "broadcast_fanout_sum", ""), 120.0, "{ctx}");
        assert_eq!(
            value(&m, "broadcast_fanout_bucket", "le=\"0\""),
            1.0,
            "{ctx}"
        );
        assert_eq!(
            value(&m, "broadcast_fanout_bucket", "le=\"20\""),
            7.0,
            "{ctx}"
        );
        assert_eq!(
            value(&m, "rooms_active", ""),
            1.0,
            "no room for a publish: {ctx}"
        );

        // A second room on both shards: 2 rooms. Emptying shard 0 of `news` keeps it
        // open (members on shard 1); emptying shard 1 too closes it.
        let other = members(&setup, "/ws/other", &[1, 1]);
        assert_eq!(value(&setup.scrape(), "rooms_active", ""), 2.0, "{ctx}");
        let (on0, on1): (Vec<_>, Vec<_>) = news.into_iter().partition(|(_, s)| *s == 0);
        let closed = setup.collector.snapshot().connections_closed;
        close_all(on0);
        setup.wait("shard 0's members gone", |s| {
            s.connections_closed == closed + 10
        });
        assert_eq!(value(&setup.scrape(), "rooms_active", ""), 2.0, "{ctx}");
        close_all(on1);
        setup.wait("1 room left", |s| s.rooms_active == 1);
        close_all(other);
        setup.wait("no room left", |s| s.rooms_active == 0);
        assert_eq!(value(&setup.scrape(), "rooms_active", ""), 0.0, "{ctx}");
        setup.stop();
    }
}

/// Next room message of a sequenced client: `Ok((seq, payload))`, or `Err(text)` for a
/// control message.
fn read_sequenced(c: &mut Client) -> Result<(u64, Vec<u8>), String> {
    loop {
        match c.read().expect("read") {
            Message::Binary(b) => {
                let (seq, _, payload) = parse_seq_payload(&b).expect("sequence framing");
                return Ok((seq, payload.to_vec()));
            }
            Message::Text(t) => return Err(t.to_string()),
            _ => {}
        }
    }
}

#[test]
fn history_on_publishes_count_once_and_an_oversized_one_keeps_the_history() {
    const HISTORY_BYTES: usize = 2048;
    for backend in BACKENDS {
        let mut cfg = config(backend);
        cfg.history = Some(ringcast::config::HistoryConfig {
            max_bytes: HISTORY_BYTES,
            ..ringcast::config::HistoryConfig::frames(16)
        });
        let setup = Setup::start(cfg);
        let ctx = format!("{backend:?}");
        let mut room = members(&setup, "/ws/h", &[2, 2]);

        // 3 small, 1 too large for the history, 1 small: all 5 reach all 4 members.
        let big = vec![b'B'; HISTORY_BYTES + 1];
        let payloads: Vec<Vec<u8>> = vec![
            b"one".to_vec(),
            b"two".to_vec(),
            b"three".to_vec(),
            big.clone(),
            b"five".to_vec(),
        ];
        for p in &payloads {
            room[0].0.send(Message::binary(p.clone())).unwrap();
        }
        for (c, shard) in room.iter_mut() {
            for p in &payloads {
                let got = c.read().unwrap();
                assert_eq!(got, Message::binary(p.clone()), "{ctx} shard {shard}");
            }
        }
        setup.wait("5 publishes", |s| s.messages_published == 5);
        let m = setup.scrape();
        assert_eq!(value(&m, "rooms_active", ""), 1.0, "{ctx}");
        assert_eq!(value(&m, "messages_published_total", ""), 5.0, "{ctx}");
        assert_eq!(value(&m, "broadcast_fanout_count", ""), 5.0, "{ctx}");
        assert_eq!(value(&m, "broadcast_fanout_sum", ""), 20.0, "{ctx}");
        assert_eq!(value(&m, "history_refused_total", ""), 1.0, "{ctx}");
        let stats = setup.server.history_stats().unwrap();
        assert_eq!((stats.frames, stats.refused), (4, 1), "{ctx}: {stats:?}");

        // The history kept 1..=3 and 5: a resume from the start gets them, with a gap
        // for 4 in its place (before the fix: the ring was emptied, 1..=3 lost).
        let (mut resumer, _) =
            common::connect_from(setup.addr(), "/ws/h?since=0", common::source_ip(0));
        for seq in 1..=3 {
            let (got, payload) = read_sequenced(&mut resumer).unwrap();
            assert_eq!(
                (got, payload),
                (seq, payloads[seq as usize - 1].clone()),
                "{ctx}"
            );
        }
        assert_eq!(
            read_sequenced(&mut resumer),
            Err(r#"{"type":"gap","from":4,"to":4}"#.to_owned()),
            "{ctx}"
        );
        assert_eq!(
            read_sequenced(&mut resumer),
            Ok((5, b"five".to_vec())),
            "{ctx}"
        );
        setup.wait("resume counted", |s| s.resumes_gap == 1);
        let m = setup.scrape();
        assert_eq!(value(&m, "replayed_frames_total", ""), 4.0, "{ctx}");
        assert_eq!(value(&m, "resumes_total", "result=\"gap\""), 1.0, "{ctx}");
        assert_eq!(value(&m, "resumes_total", "result=\"full\""), 0.0, "{ctx}");

        // Live publishes go on after the replay, counted once with the resumer too.
        room[1].0.send(Message::binary(b"six".to_vec())).unwrap();
        assert_eq!(
            read_sequenced(&mut resumer),
            Ok((6, b"six".to_vec())),
            "{ctx}"
        );
        for (c, _) in room.iter_mut() {
            assert_eq!(c.read().unwrap(), Message::binary(b"six".to_vec()));
        }
        setup.wait("6 publishes", |s| s.messages_published == 6);
        let m = setup.scrape();
        assert_eq!(value(&m, "broadcast_fanout_sum", ""), 25.0, "{ctx}");
        assert_eq!(value(&m, "rooms_active", ""), 1.0, "{ctx}");

        // A publish to a room nobody is in (history still numbers and keeps it).
        let publisher = setup.server.publisher();
        assert_eq!(
            publisher.publish("empty", ringcast::Message::Text("e")),
            Ok(0)
        );
        setup.wait("7 publishes", |s| s.messages_published == 7);
        let m = setup.scrape();
        assert_eq!(
            value(&m, "broadcast_fanout_bucket", "le=\"0\""),
            1.0,
            "{ctx}"
        );
        assert_eq!(value(&m, "rooms_active", ""), 1.0, "{ctx}");
        assert_eq!(setup.server.history_stats().unwrap().rooms, 2, "{ctx}");

        close_all(room);
        drop(resumer);
        setup.wait("no room left", |s| s.rooms_active == 0);
        setup.stop();
    }
}

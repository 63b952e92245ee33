//! `fanout --slow-fraction` against the real ringcast server on both backends: the server
//! runs in the test process (small `--max-queue-bytes` and `--socket-send-buffer` so a
//! slow subscriber overflows in well under a second) with its Prometheus endpoint; the
//! `ringcast-load` binary connects over loopback from 127.0.0.1-8. Each run checks that
//! the fast subscribers lost nothing, that the slow ones are reported apart as they read
//! (stall: nothing at all; trickle: some), and that the server's closes and drops by
//! reason were scraped and match the policy. Every run is bounded by `--timeout` plus a
//! watchdog; the server is shut down at the end of each run.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringcast::app::Builtin;
use ringcast::conn::{QueueLimits, SlowPolicy};
use ringcast::metrics::{MetricsServer, PrometheusCollector};
use ringcast::{BackendChoice, Config, RunningServer, Server};
use serde_json::Value;
use support::run::{assert_clean, run, u, Run};

const BACKENDS: [BackendChoice; 2] = [BackendChoice::Uring, BackendChoice::Epoll];
const SUBSCRIBERS: u64 = 100;
const SLOW: u64 = 10;

/// The server under test and its metrics endpoint.
struct Subject {
    server: RunningServer,
    metrics: MetricsServer,
}

impl Subject {
    fn start(backend: BackendChoice, policy: SlowPolicy) -> Self {
        ringcast::sys::raise_nofile_limit(None).expect("raise RLIMIT_NOFILE");
        let mut cfg = Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            threads: 1,
            backend,
            pin_threads: false,
            ..Config::default()
        };
        cfg.shard.queue = QueueLimits {
            max_bytes: 16 * 1024,
            policy,
        };
        cfg.shard.timeouts.close = Duration::from_millis(200);
        cfg.shard.timeouts.ping_interval = Duration::ZERO;
        cfg.driver.socket_send_buffer = Some(8 * 1024);
        let prometheus = Arc::new(PrometheusCollector::new(1, "ringcast", vec![], "test"));
        let metrics = MetricsServer::start("127.0.0.1:0".parse().unwrap(), prometheus.clone())
            .expect("metrics endpoint");
        let server = Server::start_with_metrics(cfg, Arc::new(Builtin::default()), prometheus)
            .expect("server starts");
        Subject { server, metrics }
    }

    fn metrics_url(&self) -> String {
        format!("http://{}/metrics", self.metrics.local_addr())
    }

    /// One reason of a counter family, read by the generator's own scraper.
    fn counter(&self, closed: bool, reason: &str) -> f64 {
        let url = ringcast_load::cli::parse_http_url(&self.metrics_url()).unwrap();
        let c = ringcast_load::prom::scrape(&url).expect("scrape");
        let family = if closed { c.closed } else { c.dropped };
        family.get(reason).copied().unwrap_or(0.0)
    }

    fn stop(self) {
        self.server.shutdown().expect("server shuts down");
        self.metrics.shutdown();
    }
}

/// A 3 s open-loop fan-out of 1 KiB messages at 200/s to 100 subscribers, 10 % slow.
fn fanout(s: &Subject, mode: &str, extra: &[&str]) -> Run {
    let url = format!("ws://{}/ws/slow", s.server.local_addr());
    let metrics = s.metrics_url();
    let pid = std::process::id().to_string();
    let mut args = vec![
        "fanout",
        "--url",
        &url,
        "--subscribers",
        "100",
        "--slow-fraction",
        "10%",
        "--slow-mode",
        mode,
        "--rate",
        "200",
        "--size",
        "1KiB",
        "--duration",
        "3s",
        "--threads",
        "2",
        "--src-ips",
        "127.0.0.1-127.0.0.8",
        "--metrics-url",
        &metrics,
        "--server-pid",
        &pid,
        "--rss-interval",
        "500ms",
        "--rss-warmup",
        "1s",
        "--timeout",
        "30s",
    ];
    args.extend_from_slice(extra);
    run(&args, Duration::from_secs(60))
}

/// Fast subscribers got every publish; the slow ones' accounting adds up.
fn assert_split(j: &Value) -> u64 {
    let sent = u(j, "/traffic/messages_sent");
    assert!(sent > 100, "sent {sent} at 200/s for 3 s");
    let fast = SUBSCRIBERS - SLOW;
    assert_eq!(u(j, "/traffic/receivers"), fast);
    assert_eq!(u(j, "/traffic/received_frames"), sent * fast);
    for counter in ["lost_frames", "gaps", "order_violations", "malformed"] {
        assert_eq!(u(j, &format!("/traffic/{counter}")), 0, "{counter}");
    }
    assert_eq!(u(j, "/latency/count"), sent * fast, "fast frames only");
    assert_eq!(u(j, "/connections/unexpected_disconnects"), 0);
    assert_eq!(u(j, "/slow/subscribers"), SLOW);
    assert_eq!(u(j, "/slow/fast_subscribers"), fast);
    assert_eq!(u(j, "/slow/expected_frames"), sent * SLOW);
    assert_eq!(
        u(j, "/slow/received_frames")
            + u(j, "/slow/missing_in_sequence")
            + u(j, "/slow/not_received"),
        sent * SLOW
    );
    assert_eq!(u(j, "/slow/order_violations"), 0);
    let rss = &j["server"]["rss_over_time"];
    assert!(rss["samples"].as_array().unwrap().len() >= 4, "{rss:#}");
    assert!(rss["at_warmup_end_kib"].as_u64().unwrap() > 0, "{rss:#}");
    sent
}

/// Polls `f` until it returns true (at most 20 s).
fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn stalled_subscribers_are_closed_as_slow_consumers_and_fast_ones_lose_nothing() {
    for backend in BACKENDS {
        let s = Subject::start(backend, SlowPolicy::Close);
        let r = fanout(&s, "stall", &[]);
        assert_clean(&r);
        let j = &r.json;
        assert_split(j);
        assert_eq!(
            u(j, "/slow/received_frames"),
            0,
            "a stalled reader reads nothing"
        );
        assert_eq!(u(j, "/slow/missing_in_sequence"), 0);
        // Scraped by the generator: some (by now all) of the stalled ones were closed as
        // slow consumers, never more than there are slow subscribers.
        let closed = u(j, "/server_counters/connections_closed/slow_consumer");
        assert!((1..=SLOW).contains(&closed), "{backend:?}: {closed}");
        assert!(u(j, "/server_counters/frames_dropped/connection_closed") >= closed);
        assert!(j["server_counters"]["frames_dropped"]["drop_newest"].is_null());
        assert!(r
            .stdout
            .contains("server closed (by reason)    slow_consumer"));
        assert!(r.stdout.contains("slow subscribers             10 of 100"));
        // Every stalled subscriber, and no fast one, ends as a slow consumer.
        until("10 slow_consumer closes", || {
            s.counter(true, "slow_consumer") >= SLOW as f64
        });
        assert_eq!(s.counter(true, "slow_consumer"), SLOW as f64, "{backend:?}");
        s.stop();
    }
}

#[test]
fn trickling_subscribers_lose_the_oldest_frames_and_fast_ones_lose_nothing() {
    for backend in BACKENDS {
        let s = Subject::start(backend, SlowPolicy::DropOldest);
        // 1 KiB every 20 ms = 50 KiB/s of the 200 KiB/s published to each subscriber.
        let r = fanout(
            &s,
            "trickle",
            &["--slow-read-bytes", "1KiB", "--slow-read-interval", "20ms"],
        );
        assert_clean(&r);
        let j = &r.json;
        assert_split(j);
        let received = u(j, "/slow/received_frames");
        assert!(received > 0, "{backend:?}: trickle reads");
        // Every slow byte came through trickle reads of at most 1 KiB, one per 20 ms
        // per subscriber; a frame is 1024 + 4 header bytes on the wire.
        let (reads, bytes) = (u(j, "/slow/trickle_reads"), u(j, "/slow/trickle_bytes"));
        let wall = j["wall_secs"].as_f64().unwrap();
        assert!(reads >= SLOW * 10, "{backend:?}: {reads} reads");
        assert!(
            reads as f64 <= SLOW as f64 * (wall / 0.02 + 1.0),
            "{reads} in {wall} s"
        );
        assert!(bytes <= reads * 1024, "{bytes} bytes in {reads} reads");
        assert!(
            received * 1028 <= bytes,
            "{received} frames from {bytes} bytes"
        );
        assert!(u(j, "/server_counters/frames_dropped/drop_oldest") > 0);
        assert!(j["server_counters"]["connections_closed"]["slow_consumer"].is_null());
        // What the slow ones miss in sequence the server dropped (checked by the tool).
        assert!(
            u(j, "/slow/missing_in_sequence")
                <= u(j, "/server_counters/frames_dropped/drop_oldest")
        );
        assert_eq!(u(j, "/slow/open_at_end"), SLOW);
        s.stop();
    }
}

#[test]
fn stalled_subscribers_under_drop_newest_stay_connected() {
    for backend in BACKENDS {
        let s = Subject::start(backend, SlowPolicy::DropNewest);
        let r = fanout(&s, "stall", &[]);
        assert_clean(&r);
        let j = &r.json;
        let sent = assert_split(j);
        assert_eq!(u(j, "/slow/received_frames"), 0);
        let dropped = u(j, "/server_counters/frames_dropped/drop_newest");
        // Each stalled subscriber's queue overflowed: most of its frames were dropped.
        assert!(
            dropped > 0 && dropped <= sent * SLOW,
            "{backend:?}: {dropped}"
        );
        assert!(j["server_counters"]["connections_closed"]["slow_consumer"].is_null());
        assert_eq!(s.counter(true, "slow_consumer"), 0.0);
        assert_eq!(u(j, "/slow/open_at_end"), SLOW);
        s.stop();
    }
}

//! End-to-end tests: run the `ringcast-load` binary against the in-process reference
//! server (tests/support/ref_server.rs) and check real numbers from its JSON report.
//! Loopback only, small counts, and every run is bounded by `--timeout` plus a watchdog.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::ref_server::{self, Options};
use support::run::{assert_clean, assert_exact_delivery, run, tmp, u};

fn url(addr: std::net::SocketAddr, path: &str) -> String {
    format!("ws://{addr}{path}")
}

#[test]
fn fanout_closed_loop_delivers_everything_in_order() {
    let addr = ref_server::start(Options::default());
    let plot = tmp("lat.svg");
    let r = run(
        &[
            "fanout",
            "--url",
            &url(addr, "/ws/closed"),
            "--subscribers",
            "50",
            "--messages",
            "200",
            "--threads",
            "2",
            "--src-ips",
            "127.0.0.1-127.0.0.4",
            "--timeout",
            "30s",
            "--plot",
            plot.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert_clean(&r);
    let j = &r.json;
    assert_eq!(u(j, "/connections/ok"), 51);
    assert_eq!(u(j, "/connections/failed"), 0);
    assert_eq!(u(j, "/traffic/messages_sent"), 200);
    assert_exact_delivery(j, 200, 50);
    // The publisher is a room member too: it drained its own 200 echoes.
    assert_eq!(u(j, "/traffic/publisher_frames_drained"), 200);
    assert_eq!(
        u(j, "/latency/count"),
        200 * 50,
        "one sample per delivered frame"
    );
    assert!(j["latency"]["p50_us"].as_f64().unwrap() > 0.0);
    assert_eq!(j["generator"]["per_thread"].as_array().unwrap().len(), 2);
    let svg = std::fs::read_to_string(&plot).expect("plot written");
    std::fs::remove_file(&plot).ok();
    assert!(svg.starts_with("<svg") && svg.contains("<polyline"));
}

#[test]
fn fanout_closed_loop_many_in_flight_and_publishers() {
    let addr = ref_server::start(Options::default());
    let r = run(
        &[
            "fanout",
            "--url",
            &url(addr, "/ws/inflight"),
            "--subscribers",
            "30",
            "--publishers",
            "3",
            "--in-flight",
            "8",
            "--messages",
            "300",
            "--size",
            "1KiB",
            "--threads",
            "2",
            "--timeout",
            "30s",
        ],
        Duration::from_secs(60),
    );
    assert_clean(&r);
    let j = &r.json;
    assert_eq!(u(j, "/traffic/messages_sent"), 300);
    assert_eq!(u(j, "/traffic/received_frames"), 300 * 30);
    assert_eq!(u(j, "/traffic/order_violations"), 0);
    // Three publishers each get every message (all members receive every publish).
    assert_eq!(u(j, "/traffic/publisher_frames_drained"), 300 * 3);
    assert_eq!(u(j, "/latency/count"), 300 * 30);
}

#[test]
fn fanout_open_loop_with_duration() {
    let addr = ref_server::start(Options::default());
    let r = run(
        &[
            "fanout",
            "--url",
            &url(addr, "/ws/open"),
            "--subscribers",
            "20",
            "--publishers",
            "2",
            "--rate",
            "300",
            "--duration",
            "1s",
            "--threads",
            "2",
            "--connect-rate",
            "200",
            "--timeout",
            "30s",
        ],
        Duration::from_secs(60),
    );
    assert_clean(&r);
    let j = &r.json;
    let sent = u(j, "/traffic/messages_sent");
    assert!((200..=400).contains(&sent), "sent {sent} at 300/s for 1 s");
    assert_eq!(u(j, "/traffic/received_frames"), sent * 20);
    assert_eq!(u(j, "/latency/count"), sent * 20);
    // 22 connections at 200/s take about 0.1 s.
    let secs = j["connections"]["connect_secs"].as_f64().unwrap();
    assert!(secs > 0.05, "connect rate not applied: {secs}");
}

#[test]
fn fanout_detects_loss_and_exits_nonzero() {
    let addr = ref_server::start(Options {
        drop_every: Some(97),
        ..Default::default()
    });
    let r = run(
        &[
            "fanout",
            "--url",
            &url(addr, "/ws/lossy"),
            "--subscribers",
            "20",
            "--rate",
            "1000",
            "--messages",
            "100",
            "--threads",
            "2",
            "--timeout",
            "5s",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(r.code, 1, "{}", r.stdout);
    let j = &r.json;
    assert_eq!(j["ok"], Value::Bool(false));
    let lost = u(j, "/traffic/lost_frames");
    assert!(lost > 0, "{j:#}");
    assert_eq!(
        u(j, "/traffic/received_frames") + lost,
        u(j, "/traffic/expected_frames")
    );
    assert!(r.stdout.contains("FAILED"), "{}", r.stdout);
    assert!(r.stderr.contains("loss"), "{}", r.stderr);
}

#[test]
fn fanout_churn_resumes_without_loss() {
    let addr = ref_server::start(Options {
        history: true,
        ..Default::default()
    });
    let r = run(
        &[
            "fanout",
            "--url",
            &url(addr, "/ws/churn?x=1"),
            "--subscribers",
            "20",
            "--publishers",
            "2",
            "--churn",
            "25",
            "--rate",
            "200",
            "--duration",
            "3500ms",
            "--threads",
            "2",
            "--timeout",
            "30s",
        ],
        Duration::from_secs(60),
    );
    assert_clean(&r);
    let j = &r.json;
    let expected = u(j, "/traffic/expected_frames");
    assert!(expected > 0);
    assert_eq!(u(j, "/traffic/received_frames"), expected);
    assert_eq!(u(j, "/traffic/order_violations"), 0);
    assert_eq!(u(j, "/traffic/malformed"), 0);
    // 3 rounds (at 1 s, 2 s, 3 s) × ceil(25 % × 20) = 15 churns, 5 per round.
    let churned = u(j, "/churn/churned");
    assert!((10..=15).contains(&churned), "{:#}", j["churn"]);
    assert_eq!(u(j, "/churn/reconnects_ok"), churned);
    assert_eq!(u(j, "/churn/not_resumed"), 0);
    assert_eq!(u(j, "/churn/reconnect_failures"), 0);
    assert!(u(j, "/churn/subscribers_churned") >= 10, "round-robin");
    assert_eq!(u(j, "/churn/room_seq_lost"), 0);
    assert_eq!(u(j, "/churn/duplicates"), 0);
    assert_eq!(u(j, "/churn/gap_messages"), 0);
    assert_eq!(u(j, "/churn/reset_messages"), 0);
    assert_eq!(u(j, "/latency/count"), expected);
    assert!(r.stdout.contains("room seq lost / dup."), "{}", r.stdout);
}

#[test]
fn fanout_churn_detects_room_sequence_loss() {
    let addr = ref_server::start(Options {
        history: true,
        drop_every: Some(53),
        ..Default::default()
    });
    let r = run(
        &[
            "fanout",
            "--url",
            &url(addr, "/ws/churnlossy"),
            "--subscribers",
            "10",
            "--churn",
            "20",
            "--rate",
            "200",
            "--duration",
            "1500ms",
            "--threads",
            "2",
            "--timeout",
            "5s",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(r.code, 1, "{}", r.stdout);
    let j = &r.json;
    assert!(u(j, "/churn/room_seq_skipped") > 0, "{:#}", j["churn"]);
    assert_eq!(
        u(j, "/churn/room_seq_lost"),
        u(j, "/churn/room_seq_skipped")
    );
    assert!(
        r.stderr.contains("room sequence numbers lost"),
        "{}",
        r.stderr
    );
}

#[test]
fn echo_round_trips() {
    let addr = ref_server::start(Options::default());
    let r = run(
        &[
            "echo",
            "--url",
            &url(addr, "/echo"),
            "--connections",
            "20",
            "--messages",
            "100",
            "--in-flight",
            "2",
            "--size",
            "200",
            "--threads",
            "2",
            "--timeout",
            "30s",
        ],
        Duration::from_secs(60),
    );
    assert_clean(&r);
    let j = &r.json;
    assert_eq!(u(j, "/connections/ok"), 20);
    assert_eq!(u(j, "/traffic/messages_sent"), 2000);
    assert_eq!(u(j, "/traffic/received_frames"), 2000);
    assert_eq!(u(j, "/traffic/order_violations"), 0);
    assert_eq!(u(j, "/latency/count"), 2000);
}

#[test]
fn connect_churn_mixed_with_server_stats() {
    let addr = ref_server::start(Options::default());
    // The reference server lives in this test process, so our pid is the server's pid.
    let pid = std::process::id().to_string();
    let r = run(
        &[
            "connect",
            "--url",
            &url(addr, "/ws/churn"),
            "--connections",
            "60",
            "--cycles",
            "3",
            "--close-mode",
            "mixed",
            "--threads",
            "2",
            "--max-pending",
            "16",
            "--src-ips",
            "127.0.0.1-127.0.0.3",
            "--server-pid",
            &pid,
            "--settle",
            "300ms",
            "--timeout",
            "40s",
        ],
        Duration::from_secs(80),
    );
    assert_clean(&r);
    let j = &r.json;
    let cycles = j["cycles"].as_array().unwrap();
    assert_eq!(cycles.len(), 3);
    let before = u(j, "/server/before/fds");
    for c in cycles {
        assert_eq!(u(c, "/opened"), 60, "{c:#}");
        assert_eq!(u(c, "/failed"), 0);
        assert_eq!(u(c, "/closed_ok"), 60);
        assert_eq!(u(c, "/close_problems"), 0);
        // With 60 connections open the server holds at least 60 more descriptors.
        assert!(u(c, "/server_open/fds") >= before + 60, "{c:#}");
    }
    assert_eq!(u(j, "/connections/ok"), 180);
    assert!(j["connections"]["connect_rate_per_sec"].as_f64().unwrap() > 0.0);
}

#[test]
fn connect_clean_with_hold() {
    let addr = ref_server::start(Options::default());
    let pid = std::process::id().to_string();
    let r = run(
        &[
            "connect",
            "--url",
            &url(addr, "/ws/hold"),
            "--connections",
            "40",
            "--close-mode",
            "clean",
            "--hold",
            "300ms",
            "--server-pid",
            &pid,
            "--threads",
            "1",
            "--timeout",
            "30s",
        ],
        Duration::from_secs(60),
    );
    assert_clean(&r);
    let j = &r.json;
    assert_eq!(u(j, "/cycles/0/closed_ok"), 40);
    assert!(j["server"]["after_run"].is_object(), "sampled after --hold");
    assert!(j["server"]["rss_per_connection_kib"].is_number());
}

#[test]
fn fanout_hold_keeps_connections_open_and_samples_the_server_after() {
    let addr = ref_server::start(Options::default());
    let pid = std::process::id().to_string();
    let r = run(
        &[
            "fanout",
            "--url",
            &url(addr, "/ws/hold"),
            "--subscribers",
            "30",
            "--messages",
            "200",
            "--in-flight",
            "4",
            "--hold",
            "300ms",
            "--server-pid",
            &pid,
            "--threads",
            "1",
            "--timeout",
            "30s",
        ],
        Duration::from_secs(60),
    );
    assert_clean(&r);
    let j = &r.json;
    assert_eq!(u(j, "/traffic/received_frames"), 30 * 200);
    // Every connection (30 subscribers + 1 publisher) is still open at the end of the
    // hold: the server (this process) still holds a descriptor for each.
    let before = u(j, "/server/before/fds");
    assert!(
        u(j, "/server/after_hold/fds") >= before + 31,
        "{:#}",
        j["server"]
    );
    assert!(j["server"]["rss_kept_after_traffic_per_connection_kib"].is_number());
}

#[test]
fn fanout_hold_longer_than_the_timeout_leaves_fails_without_waiting() {
    let addr = ref_server::start(Options::default());
    let pid = std::process::id().to_string();
    let r = run(
        &[
            "fanout",
            "--url",
            &url(addr, "/ws/hold-cut"),
            "--subscribers",
            "10",
            "--messages",
            "50",
            "--hold",
            "60s",
            "--timeout",
            "15s",
            "--server-pid",
            &pid,
            "--threads",
            "1",
        ],
        Duration::from_secs(60),
    );
    // The connections would close at the deadline in the middle of the hold: the run
    // says so, fails, does not wait and has no after-hold sample to misread.
    assert_eq!(r.code, 1, "stdout:\n{}", r.stdout);
    assert!(r.elapsed < Duration::from_secs(15), "{:?}", r.elapsed);
    let problems = r.json["problems"].to_string();
    assert!(problems.contains("--hold"), "{problems}");
    assert_eq!(u(&r.json, "/traffic/received_frames"), 10 * 50);
    assert!(
        r.json["server"]["after_hold"].is_null(),
        "{:#}",
        r.json["server"]
    );
}

#[test]
fn silent_server_times_out_instead_of_hanging() {
    let addr = ref_server::start(Options {
        silent: true,
        ..Default::default()
    });
    let r = run(
        &[
            "fanout",
            "--url",
            &url(addr, "/ws/x"),
            "--subscribers",
            "5",
            "--messages",
            "10",
            "--threads",
            "1",
            "--connect-timeout",
            "500ms",
            "--timeout",
            "5s",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(r.code, 1);
    assert!(r.elapsed < Duration::from_secs(10), "{:?}", r.elapsed);
    assert_eq!(u(&r.json, "/connections/failed"), 6);
    assert_eq!(
        u(&r.json, "/connections/failures/connect~1handshake timeout"),
        6
    );
}

#[test]
fn refused_connections_fail_fast() {
    // Bind then drop a listener to get a port with (almost certainly) nobody on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = run(
        &[
            "echo",
            "--url",
            &format!("ws://127.0.0.1:{port}/echo"),
            "--connections",
            "4",
            "--messages",
            "1",
            "--threads",
            "1",
            "--timeout",
            "10s",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(r.code, 1);
    assert!(r.elapsed < Duration::from_secs(5), "{:?}", r.elapsed);
    assert_eq!(u(&r.json, "/connections/failed"), 4);
    let f = r.json["connections"]["failures"].as_object().unwrap();
    assert!(f.keys().any(|k| k.contains("refused")), "{f:?}");
}

#[test]
fn too_many_connections_for_rlimit_fails_clearly() {
    let r = run(
        &[
            "connect",
            "--url",
            "ws://127.0.0.1:9/x",
            "--connections",
            "100000000",
            "--timeout",
            "5s",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("RLIMIT_NOFILE"), "{}", r.stderr);
}

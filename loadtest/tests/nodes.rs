//! `fanout` over several `--url`s against two real ringcast servers started in the test
//! process, on both backends. The two servers are independent (a room lives in one
//! process), so with `--independent-nodes` each subscriber must receive exactly the
//! messages published on its own node: the per-node counts in the report are exact and
//! checked against each node's own publish count. One URL leaves the report as it was
//! (no per-node section). Every run is bounded by `--timeout` plus a watchdog; both
//! servers are shut down at the end of each run.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::run::{assert_clean, assert_exact_delivery, run, u};
use support::server::{start, BACKENDS};

const SUBSCRIBERS: u64 = 40;
const MESSAGES: u64 = 200;

fn fanout(urls: &[&str], extra: &[&str]) -> support::run::Run {
    let subs = SUBSCRIBERS.to_string();
    let msgs = MESSAGES.to_string();
    let mut args = vec!["fanout"];
    for url in urls {
        args.extend(["--url", url]);
    }
    args.extend([
        "--subscribers",
        &subs,
        "--messages",
        &msgs,
        "--threads",
        "2",
        "--src-ips",
        "127.0.0.1-127.0.0.4",
        "--timeout",
        "30s",
    ]);
    args.extend_from_slice(extra);
    run(&args, Duration::from_secs(60))
}

/// Node `i` of the report: its URL, publishers and subscribers as spread round-robin,
/// and exactly its own publishes delivered to each of its subscribers.
fn assert_node(j: &Value, i: usize, url: &str) -> u64 {
    let n = &j["nodes"][i];
    assert_eq!(n["url"], Value::from(url), "{n:#}");
    assert_eq!(u(n, "/publishers"), 1, "one publisher per URL: {n:#}");
    assert_eq!(u(n, "/subscribers"), SUBSCRIBERS / 2, "{n:#}");
    let sent = u(n, "/messages_sent");
    assert!(sent > 0, "node {i} published nothing: {n:#}");
    assert_eq!(u(n, "/expected_frames"), sent * SUBSCRIBERS / 2, "{n:#}");
    assert_eq!(u(n, "/received_frames"), sent * SUBSCRIBERS / 2, "{n:#}");
    assert_eq!(u(n, "/lost_frames"), 0, "{n:#}");
    assert_eq!(u(n, "/latency/count"), sent * SUBSCRIBERS / 2, "{n:#}");
    assert!(n["latency"]["p99_us"].as_f64().unwrap() >= n["latency"]["p50_us"].as_f64().unwrap());
    sent
}

#[test]
fn two_independent_nodes_each_deliver_their_own_publishes() {
    for backend in BACKENDS {
        let (a, b) = (start(backend, 1), start(backend, 1));
        let ua = format!("ws://{}/ws/nodes", a.local_addr());
        let ub = format!("ws://{}/ws/nodes", b.local_addr());
        // A comma list; `--publishers` left at 1 is raised to one per URL.
        let both = format!("{ua},{ub}");
        let r = fanout(&[&both], &["--independent-nodes", "--in-flight", "4"]);
        assert_clean(&r);
        let j = &r.json;
        assert_eq!(
            u(j, "/connections/requested"),
            SUBSCRIBERS + 2,
            "{backend:?}"
        );
        assert_eq!(u(j, "/connections/ok"), SUBSCRIBERS + 2, "{backend:?}");
        assert_eq!(u(j, "/traffic/messages_sent"), MESSAGES, "{backend:?}");
        let sent = assert_node(j, 0, &ua) + assert_node(j, 1, &ub);
        assert_eq!(sent, MESSAGES, "{backend:?}");
        // The totals are the nodes' sums.
        assert_eq!(u(j, "/traffic/received_frames"), MESSAGES * SUBSCRIBERS / 2);
        assert_eq!(u(j, "/latency/count"), MESSAGES * SUBSCRIBERS / 2);
        assert!(
            r.stdout.contains("node 1") && r.stdout.contains(&ub),
            "{}",
            r.stdout
        );
        a.shutdown().expect("server a shuts down");
        b.shutdown().expect("server b shuts down");
    }
}

#[test]
fn repeated_url_flags_and_open_loop_spread_publishers_over_nodes() {
    for backend in BACKENDS {
        let (a, b) = (start(backend, 1), start(backend, 1));
        let ua = format!("ws://{}/ws/open", a.local_addr());
        let ub = format!("ws://{}/ws/open", b.local_addr());
        let r = fanout(
            &[&ua, &ub],
            &["--independent-nodes", "--publishers", "2", "--rate", "400"],
        );
        assert_clean(&r);
        let j = &r.json;
        let sent = assert_node(j, 0, &ua) + assert_node(j, 1, &ub);
        assert_eq!(sent, MESSAGES, "{backend:?}");
        a.shutdown().expect("server a shuts down");
        b.shutdown().expect("server b shuts down");
    }
}

#[test]
fn one_url_has_no_node_section() {
    for backend in BACKENDS {
        let s = start(backend, 1);
        let url = format!("ws://{}/ws/one", s.local_addr());
        let r = fanout(&[&url], &[]);
        assert_clean(&r);
        let j = &r.json;
        assert_exact_delivery(j, MESSAGES, SUBSCRIBERS);
        assert!(j.get("nodes").is_none(), "{j:#}");
        assert!(!r.stdout.contains("node 0"), "{}", r.stdout);
        s.shutdown().expect("server shuts down");
    }
}

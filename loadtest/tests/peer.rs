//! `fanout` against a "peer" broadcast server — one that listens on `/` and sends every
//! data message to every client, sender included, as the Bun, Node `ws` and
//! tokio-tungstenite servers of `make compare-peers` do. The generator needs no special
//! mode for it: `--url ws://HOST:PORT/` puts subscribers and publishers on `/`, and the
//! publishers drain their own echoes. The server is the tungstenite reference server of
//! tests/support with `Options::peer`; every run is bounded by `--timeout` plus a
//! watchdog.

mod support;

use std::time::Duration;

use support::ref_server::{self, Options};
use support::run::{assert_clean, assert_exact_delivery, run, u};

fn fanout(url: &str, extra: &[&str]) -> support::run::Run {
    let mut args = vec![
        "fanout",
        "--url",
        url,
        "--subscribers",
        "30",
        "--messages",
        "150",
        "--threads",
        "2",
        "--timeout",
        "30s",
    ];
    args.extend_from_slice(extra);
    run(&args, Duration::from_secs(60))
}

#[test]
fn closed_loop_against_a_peer_server_on_root() {
    let addr = ref_server::start(Options {
        peer: true,
        ..Options::default()
    });
    let r = fanout(
        &format!("ws://{addr}/"),
        &["--publishers", "2", "--in-flight", "4"],
    );
    assert_clean(&r);
    let j = &r.json;
    assert_exact_delivery(j, 150, 30);
    // Sender included: each publisher drained every message, its own and the other's.
    assert_eq!(u(j, "/traffic/publisher_frames_drained"), 2 * 150);
}

#[test]
fn open_loop_against_a_peer_server_on_root() {
    let addr = ref_server::start(Options {
        peer: true,
        ..Options::default()
    });
    let r = fanout(&format!("ws://{addr}"), &["--rate", "500"]);
    assert_clean(&r);
    assert_exact_delivery(&r.json, 150, 30);
    assert_eq!(u(&r.json, "/traffic/publisher_frames_drained"), 150);
}

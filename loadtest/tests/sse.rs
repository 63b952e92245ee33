//! `fanout --transport sse` against the real ringcast server started in the test process,
//! on both backends: subscribers read `GET /sse/{room}` event streams (binary payloads
//! as base64 `event: binary` events) while the publisher is a WebSocket client on
//! `/ws/{room}`; every subscriber must get every publish exactly once, in order, with a
//! latency sample each. Also the combinations `--transport sse` refuses. Every run is
//! bounded by `--timeout` plus a watchdog; the server is shut down after each run.

mod support;

use std::time::Duration;

use support::run::{assert_clean, assert_exact_delivery, run, u};
use support::server::{start, BACKENDS};

fn fanout(url: &str, extra: &[&str]) -> support::run::Run {
    let mut args = vec![
        "fanout",
        "--url",
        url,
        "--transport",
        "sse",
        "--subscribers",
        "40",
        "--threads",
        "2",
        "--src-ips",
        "127.0.0.1-127.0.0.4",
        "--timeout",
        "30s",
    ];
    args.extend_from_slice(extra);
    run(&args, Duration::from_secs(60))
}

#[test]
fn sse_subscribers_get_every_publish_on_both_backends() {
    for backend in BACKENDS {
        for (size, in_flight) in [("64", "1"), ("1k", "8")] {
            let server = start(backend, 2);
            let url = format!("ws://{}/ws/sse-bench", server.local_addr());
            let r = fanout(
                &url,
                &[
                    "--messages",
                    "200",
                    "--size",
                    size,
                    "--in-flight",
                    in_flight,
                ],
            );
            assert_clean(&r);
            assert_exact_delivery(&r.json, 200, 40);
            assert_eq!(u(&r.json, "/latency/count"), 200 * 40, "{backend:?}");
            server.shutdown().expect("server shuts down");
        }
    }
}

#[test]
fn open_loop_sse_fanout_on_both_backends() {
    for backend in BACKENDS {
        let server = start(backend, 2);
        let url = format!("ws://{}/ws/sse-open", server.local_addr());
        let r = fanout(&url, &["--messages", "150", "--rate", "500"]);
        assert_clean(&r);
        assert_exact_delivery(&r.json, 150, 40);
        server.shutdown().expect("server shuts down");
    }
}

#[test]
fn refuses_what_makes_no_sense_over_sse() {
    // Refused before any connection: the address is never dialled.
    for (extra, needle) in [
        (&["--deflate"][..], "--deflate"),
        (&["--churn", "5"][..], "--churn"),
    ] {
        let r = fanout("ws://127.0.0.1:9/ws/room", extra);
        assert_eq!(r.code, 1, "{}", r.stdout);
        assert!(
            r.stdout.contains("--transport sse") && r.stdout.contains(needle),
            "{}",
            r.stdout
        );
    }
    let r = fanout("ws://127.0.0.1:9/echo", &[]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("/ws/{room}"), "{}", r.stdout);
}

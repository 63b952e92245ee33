//! wss:// end to end: the `ringcast-load` binary against a TLS WebSocket server that is
//! not ringcast (Python `websockets` + `ssl`, tests/support/wss_server.py) holding a
//! certificate from `ringcast-load cert`, through real sockets on loopback. Checks the
//! counts in the JSON report (nothing lost, nothing out of order), the clean close
//! handshake over TLS, and that an untrusted or wrongly named certificate, or a missing
//! or unusable `--tls-ca`, fails fast with the reason. Every run is bounded by
//! `--timeout` plus a watchdog.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use support::run::{assert_clean, assert_exact_delivery, run, u, TempDir};
use support::wss_server::{self, WssServer};

/// A fresh directory with a `cert` pair for `sans` (default names when empty).
fn cert_dir(name: &str, sans: &[&str]) -> (TempDir, PathBuf, PathBuf) {
    let dir = TempDir::new(name);
    let (cert, key) = wss_server::make_cert(&dir.0, sans);
    (dir, cert, key)
}

/// A server with a fresh default certificate; returns it, the certificate to trust and
/// the directory holding them (removed when dropped).
fn server(name: &str) -> (WssServer, PathBuf, TempDir) {
    let (dir, cert, key) = cert_dir(name, &[]);
    let srv = wss_server::start(&cert, &key, dir.0.join("server.log"));
    (srv, cert, dir)
}

#[test]
fn echo_over_tls_round_trips_in_order() {
    let (srv, ca, _dir) = server("echo");
    let ca = ca.to_str().unwrap();
    let r = run(
        &[
            "echo",
            "--url",
            &srv.url("/echo"),
            "--tls-ca",
            ca,
            "--connections",
            "10",
            "--messages",
            "100",
            "--in-flight",
            "4",
            "--threads",
            "2",
            "--timeout",
            "30s",
        ],
        Duration::from_secs(60),
    );
    assert_clean(&r);
    let j = &r.json;
    assert_eq!(u(j, "/connections/ok"), 10);
    assert_eq!(u(j, "/traffic/messages_sent"), 1000);
    assert_eq!(u(j, "/traffic/received_frames"), 1000);
    assert_eq!(u(j, "/traffic/order_violations"), 0);
    assert_eq!(u(j, "/traffic/malformed"), 0);
    assert_eq!(u(j, "/latency/count"), 1000);

    // Messages larger than a TLS record (16 KiB) and than one read: frames are
    // reassembled across records, reads and the carry-over.
    let r = run(
        &[
            "echo",
            "--url",
            &srv.url("/echo"),
            "--tls-ca",
            ca,
            "--connections",
            "3",
            "--messages",
            "20",
            "--in-flight",
            "4",
            "--size",
            "300KiB",
            "--threads",
            "1",
            "--timeout",
            "30s",
        ],
        Duration::from_secs(60),
    );
    assert_clean(&r);
    assert_eq!(u(&r.json, "/traffic/received_frames"), 60);
    assert_eq!(u(&r.json, "/traffic/malformed"), 0);
}

#[test]
fn fanout_over_tls_delivers_everything_in_order() {
    let (srv, ca, _dir) = server("fanout");
    let r = run(
        &[
            "fanout",
            "--url",
            &srv.url("/ws/tls"),
            "--tls-ca",
            ca.to_str().unwrap(),
            "--subscribers",
            "20",
            "--publishers",
            "2",
            "--in-flight",
            "8",
            "--messages",
            "300",
            "--size",
            "1KiB",
            "--threads",
            "2",
            "--src-ips",
            "127.0.0.1-127.0.0.4",
            "--timeout",
            "30s",
        ],
        Duration::from_secs(60),
    );
    assert_clean(&r);
    let j = &r.json;
    assert_eq!(u(j, "/connections/ok"), 22);
    assert_eq!(u(j, "/connections/failed"), 0);
    assert_eq!(u(j, "/traffic/messages_sent"), 300);
    assert_exact_delivery(j, 300, 20);
    // Both publishers are room members and drained every message.
    assert_eq!(u(j, "/traffic/publisher_frames_drained"), 300 * 2);
    assert_eq!(u(j, "/latency/count"), 300 * 20);
}

#[test]
fn connect_over_tls_closes_cleanly() {
    let (srv, ca, _dir) = server("connect");
    let r = run(
        &[
            "connect",
            "--url",
            &srv.url("/ws/idle"),
            "--tls-ca",
            ca.to_str().unwrap(),
            "--connections",
            "30",
            "--cycles",
            "2",
            "--close-mode",
            "clean",
            "--threads",
            "2",
            "--timeout",
            "30s",
        ],
        Duration::from_secs(60),
    );
    assert_clean(&r);
    let cycles = r.json["cycles"].as_array().unwrap();
    assert_eq!(cycles.len(), 2);
    for c in cycles {
        assert_eq!(u(c, "/opened"), 30, "{c:#}");
        // Our close frame and the server's answer both went through TLS.
        assert_eq!(u(c, "/closed_ok"), 30, "{c:#}");
        assert_eq!(u(c, "/close_problems"), 0, "{c:#}");
    }
}

/// The failure categories of a run's report, joined.
fn failures(j: &Value) -> String {
    let f = j["connections"]["failures"].as_object().expect("failures");
    f.keys().cloned().collect::<Vec<_>>().join("; ")
}

/// An echo run that must fail: 3 connections, short timeouts.
fn echo_expecting_failure(url: &str, ca: &str) -> support::run::Run {
    let r = run(
        &[
            "echo",
            "--url",
            url,
            "--tls-ca",
            ca,
            "--connections",
            "3",
            "--messages",
            "1",
            "--threads",
            "1",
            "--connect-timeout",
            "3s",
            "--timeout",
            "10s",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.elapsed < Duration::from_secs(8), "{:?}", r.elapsed);
    assert_eq!(u(&r.json, "/connections/ok"), 0);
    assert_eq!(u(&r.json, "/connections/failed"), 3);
    assert!(r.stderr.contains("3 connections failed"), "{}", r.stderr);
    r
}

#[test]
fn untrusted_or_misnamed_certificate_fails_fast_with_the_reason() {
    let (srv, _, _dir) = server("wrongca-server");
    // Trusting another `cert` output: the server's certificate has an unknown issuer.
    let (_other_dir, other, _) = cert_dir("wrongca-client", &[]);
    let r = echo_expecting_failure(&srv.url("/echo"), other.to_str().unwrap());
    let f = failures(&r.json);
    assert!(
        f.contains("tls: invalid peer certificate: UnknownIssuer"),
        "{f}"
    );
    assert!(r.stdout.contains("certificate"), "{}", r.stdout);

    // The right certificate, but it names only `localhost` and the URL says 127.0.0.1.
    let (dir, cert, key) = cert_dir("misnamed", &["localhost"]);
    let srv = wss_server::start(&cert, &key, dir.0.join("server.log"));
    let ca = cert.to_str().unwrap();
    let r = echo_expecting_failure(&srv.url("/echo"), ca);
    let f = failures(&r.json);
    assert!(f.contains("certificate not valid for name"), "{f}");
    assert!(f.contains("127.0.0.1"), "{f}");
    // ... and the same server is fine under the name it has.
    let url = format!("wss://localhost:{}/echo", srv.port);
    let r = run(
        &[
            "echo",
            "--url",
            &url,
            "--tls-ca",
            ca,
            "--connections",
            "2",
            "--messages",
            "10",
            "--threads",
            "1",
            "--timeout",
            "10s",
        ],
        Duration::from_secs(30),
    );
    assert_clean(&r);
    assert_eq!(u(&r.json, "/traffic/received_frames"), 20);
}

#[test]
fn wss_without_a_usable_ca_is_refused_before_connecting() {
    let (_dir, cert, key) = cert_dir("noca", &[]);
    let missing = cert.with_file_name("missing.pem");
    let cases: [(&str, Vec<&str>, &str); 4] = [
        (
            "wss://127.0.0.1:9/echo",
            vec![],
            "wss:// needs --tls-ca FILE",
        ),
        (
            "wss://127.0.0.1:9/echo",
            vec!["--tls-ca", missing.to_str().unwrap()],
            "cannot read",
        ),
        (
            "wss://127.0.0.1:9/echo",
            vec!["--tls-ca", key.to_str().unwrap()],
            "no certificate found",
        ),
        (
            "ws://127.0.0.1:9/echo",
            vec!["--tls-ca", cert.to_str().unwrap()],
            "--tls-ca is only used with wss://",
        ),
    ];
    for (url, extra, want) in cases {
        let mut args = vec![
            "echo",
            "--url",
            url,
            "--connections",
            "1",
            "--timeout",
            "5s",
        ];
        args.extend(extra);
        let r = run(&args, Duration::from_secs(20));
        assert_eq!(r.code, 1, "{args:?}: {}", r.stdout);
        assert!(r.stderr.contains(want), "{args:?}: {}", r.stderr);
        // Refused up front: no connection was even attempted.
        assert_eq!(u(&r.json, "/connections/requested"), 0, "{args:?}");
    }
}

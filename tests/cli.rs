//! The `ringcast` binary: `--version`, `serve` prints where it listens and exits 0 on
//! SIGTERM and SIGINT, and a bind failure exits non-zero with the diagnostics.

mod common;

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use common::process::ServerProcess;

const BIN: &str = env!("CARGO_BIN_EXE_ringcast");

#[test]
fn version_is_printed() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ringcast "));
}

fn serve_then_signal(backend: &str, signal: libc::c_int) {
    let mut server = ServerProcess::spawn(&[
        "--threads",
        "2",
        "--backend",
        backend,
        "--log-level",
        "warn",
        "--metrics-addr",
        "off",
    ]);
    assert!(
        server.banner[0].contains(&format!("backend {backend}")),
        "{:?}",
        server.banner
    );
    let (mut ws, response) = tungstenite::connect(format!("ws://{}/echo", server.addr)).unwrap();
    assert!(response.headers().contains_key("x-ringcast-shard"));
    ws.send(tungstenite::Message::text("ping")).unwrap();
    assert_eq!(ws.read().unwrap(), tungstenite::Message::text("ping"));
    drop(ws);
    server.signal(signal);
    let status = server.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{backend}: exit status");
}

#[test]
fn serve_exits_cleanly_on_sigterm_and_sigint() {
    for backend in ["uring", "epoll"] {
        serve_then_signal(backend, libc::SIGTERM);
        serve_then_signal(backend, libc::SIGINT);
    }
}

#[test]
fn bind_failure_exits_non_zero_with_diagnostics() {
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = holder.local_addr().unwrap().to_string();
    let out = Command::new(BIN)
        .args([
            "serve",
            "--addr",
            &addr,
            "--log-level",
            "error",
            "--metrics-addr",
            "off",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("SO_REUSEPORT") && err.contains("RLIMIT_NOFILE"),
        "{err}"
    );
}

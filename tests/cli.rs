//! The `ringcast` binary: `--version`, `serve` prints where it listens and exits 0 on
//! SIGTERM and SIGINT, and a bind failure exits non-zero with the diagnostics.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ringcast");

#[test]
fn version_is_printed() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ringcast "));
}

fn serve_then_signal(backend: &str, signal: libc::c_int) {
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--threads",
            "2",
            "--backend",
            backend,
            "--log-level",
            "warn",
            "--metrics-addr",
            "off",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("listening on ws://127.0.0.1:"), "{line}");
    assert!(line.contains(&format!("backend {backend}")), "{line}");
    let addr = line
        .split("ws://")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    let (mut ws, _) = tungstenite::connect(format!("ws://{addr}/echo")).unwrap();
    ws.send(tungstenite::Message::text("ping")).unwrap();
    assert_eq!(ws.read().unwrap(), tungstenite::Message::text("ping"));
    drop(ws);
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, signal) };
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "server did not exit");
        std::thread::sleep(Duration::from_millis(10));
    };
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

//! The `ringcast` binary: `--version`, `serve` prints where it listens and exits 0 on
//! SIGTERM and SIGINT, a bind failure exits non-zero with the diagnostics, a
//! `--metrics-addr` overlapping `--addr` is refused before anything binds; with
//! the `tls` feature, `--tls-cert/--tls-key` serve wss:// and unusable files are named.

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

/// `--metrics-addr` equal to (or overlapping) `--addr` is refused before anything binds,
/// with a message naming both flags, not left to fail as a listener bind error.
#[test]
fn metrics_addr_overlapping_addr_is_refused_up_front() {
    // A free port: bound once to learn it, then released.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for (addr, metrics) in [
        (format!("127.0.0.1:{port}"), format!("127.0.0.1:{port}")),
        (format!("0.0.0.0:{port}"), format!("127.0.0.1:{port}")),
    ] {
        let mut child = Command::new(BIN)
            .args([
                "serve",
                "--addr",
                &addr,
                "--metrics-addr",
                &metrics,
                "--log-level",
                "error",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if std::time::Instant::now() > deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        if status.is_none() {
            // Still running: the check is missing. Stop our own child (by its PID).
            child.kill().unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert_eq!(status.and_then(|s| s.code()), Some(1), "{addr} / {metrics}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("--metrics-addr {metrics} overlaps --addr {addr}")),
            "{err}"
        );
        assert!(
            !err.contains("SO_REUSEPORT"),
            "refused before binding: {err}"
        );
        assert!(out.stdout.is_empty(), "nothing listened");
    }
}

#[cfg(feature = "tls")]
#[test]
fn serve_speaks_wss_with_tls_cert_and_key() {
    let (dir, cert, key) = common::tls::self_signed_files("cli-tls");
    for backend in ["uring", "epoll"] {
        let mut server = ServerProcess::spawn(&[
            "--backend",
            backend,
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--log-level",
            "warn",
            "--metrics-addr",
            "off",
        ]);
        assert!(
            server.banner[0].contains("listening on wss://"),
            "{:?}",
            server.banner
        );
        let client = common::tls::client_config(&common::tls::cert_from_pem(&cert));
        let mut ws = common::tls::wss_connect(server.addr, "/echo", common::source_ip(0), &client);
        ws.send(tungstenite::Message::text("over tls")).unwrap();
        assert_eq!(ws.read().unwrap(), tungstenite::Message::text("over tls"));
        drop(ws);
        server.signal(libc::SIGTERM);
        assert_eq!(server.wait_exit(Duration::from_secs(10)).code(), Some(0));
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[cfg(feature = "tls")]
#[test]
fn unusable_tls_files_exit_non_zero_naming_the_file() {
    let (dir, cert, _key) = common::tls::self_signed_files("cli-tls-bad");
    let missing = dir.join("missing-key.pem");
    let out = Command::new(BIN)
        .args(["serve", "--addr", "127.0.0.1:0", "--metrics-addr", "off"])
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--tls-key") && err.contains("missing-key.pem"),
        "{err}"
    );
    // A certificate file given as the key: no key in it.
    let out = Command::new(BIN)
        .args(["serve", "--addr", "127.0.0.1:0", "--metrics-addr", "off"])
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&cert)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no usable PEM private key"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

//! Test support: a TLS WebSocket server that is not ringcast — Python `websockets` behind
//! an `ssl` context (tests/support/wss_server.py) run as a child process, with a
//! certificate made by `ringcast-load cert`. `/echo` echoes, `/ws/{room}` broadcasts to
//! every member (the sender included). The child is killed when the handle drops, and
//! exits by itself after 120 s anyway.

#![allow(dead_code)] // shared by several test binaries, each uses a part

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running server.
pub struct WssServer {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Where its stderr goes (for failure messages).
    pub log: PathBuf,
}

impl WssServer {
    /// `wss://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("wss://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for WssServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `ringcast-load cert --out-dir DIR [--san ...]`; returns (cert.pem, key.pem).
pub fn make_cert(dir: &Path, sans: &[&str]) -> (PathBuf, PathBuf) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringcast-load"));
    cmd.arg("cert").arg("--out-dir").arg(dir);
    for s in sans {
        cmd.args(["--san", s]);
    }
    let out = cmd.output().expect("run ringcast-load cert");
    assert!(
        out.status.success(),
        "ringcast-load cert failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (dir.join("cert.pem"), dir.join("key.pem"))
}

/// Fails the test with the install instruction unless python3 has `websockets` >= 13.
fn require_websockets() {
    let probe = Command::new("python3")
        .args(["-c", "import websockets.asyncio.server"])
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "the Python package `websockets` (>= 13) is not importable by python3 ({}): \
             install it with `python3 -m pip install 'websockets>=13'` (.ci/run does)",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("import failed")
        ),
        Err(e) => panic!(
            "python3 cannot be run ({e}): install Python 3 and then \
             `python3 -m pip install 'websockets>=13'` (.ci/run does)"
        ),
    }
}

/// Starts the server with `cert`/`key` and waits (at most 20 s) until it listens.
pub fn start(cert: &Path, key: &Path, log: PathBuf) -> WssServer {
    require_websockets();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/wss_server.py");
    let mut child = Command::new("python3")
        .arg(&script)
        .arg(cert)
        .arg(key)
        .arg("120")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("server log file"))
        .spawn()
        .expect("start python3 wss_server.py");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_default();
    let port = line
        .trim()
        .strip_prefix("port ")
        .and_then(|p| p.parse().ok());
    let mut server = WssServer {
        child,
        port: 0,
        log,
    };
    match port {
        Some(p) => server.port = p,
        None => {
            let _ = server.child.kill();
            let _ = server.child.wait();
            let err = std::fs::read_to_string(&server.log).unwrap_or_default();
            panic!("wss_server.py did not report its port (got {line:?}):\n{err}");
        }
    }
    server
}

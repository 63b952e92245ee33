//! The live dashboard in a real headless browser: Debian's Chromium (`/usr/bin/chromium`)
//! driven by `tests/dashboard/check.mjs` (playwright-core, installed by
//! `npm ci --prefix tests/dashboard`) loads `GET /`, which connects to `/stats`; the test
//! passes when the page shows the expected number of connections.
//!
//! Two cases: a bare [`MetricsServer`] with 50 synthetic `connection_opened` calls, and
//! the real binary (`serve --addr 127.0.0.1:0 --metrics-addr 127.0.0.1:0`) with 50 real
//! WebSocket clients.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringcast::metrics::{MetricsCollector, MetricsServer, PrometheusCollector};

const CLIENTS: usize = 50;

fn dashboard_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dashboard")
}

/// Fail with the install line when a prerequisite is missing.
fn check_prerequisites() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} not found: install it with `apt-get install -y chromium`"
    );
    assert!(
        Command::new("node")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "node not found: install Node.js 18+ (`apt-get install -y nodejs npm`)"
    );
    assert!(
        dashboard_dir()
            .join("node_modules/playwright-core")
            .is_dir(),
        "playwright-core missing: run `npm ci --prefix tests/dashboard`"
    );
}

/// Run the browser check against `url`, expecting `expect` connections; returns the
/// script's JSON line.
fn browser_check(url: &str, expect: usize, extra: &[&str]) -> String {
    check_prerequisites();
    let started = Instant::now();
    let out = Command::new("node")
        .arg(dashboard_dir().join("check.mjs"))
        .args(["--url", url, "--expect", &expect.to_string()])
        .args(["--timeout", "30000"])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        out.status.success(),
        "dashboard check failed after {:?}: {stdout}\n{}",
        started.elapsed(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("\"total\":\"{expect}\"")),
        "{stdout}"
    );
    stdout
}

#[test]
fn dashboard_shows_synthetic_connections() {
    let collector = Arc::new(PrometheusCollector::new(2, "ringcast", vec![], "uring"));
    for i in 0..CLIENTS {
        collector.connection_opened(i % 2);
    }
    let server = MetricsServer::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        Arc::clone(&collector),
    )
    .unwrap();
    // Traffic while the page watches, so the rates and the sparkline have data.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let (c, stop) = (Arc::clone(&collector), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                c.message_received(0, 32);
                c.message_published(1, CLIENTS / 2);
                c.frames_sent(1, CLIENTS / 2, CLIENTS / 2 * 34);
                c.publish_to_write(1, Duration::from_micros(40 + (i % 50) * 10));
                i += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let url = format!("http://{}/", server.local_addr());
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-synthetic.png");
    let json = browser_check(
        &url,
        CLIENTS,
        &["--settle", "2500", "--screenshot", shot.to_str().unwrap()],
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    traffic.join().unwrap();
    assert!(json.contains("\"shards\":[25,25]"), "{json}");
    assert!(json.contains("\"sparkline\":true"), "{json}");
    server.shutdown();
}

/// The running binary, killed on drop.
struct Binary {
    child: Child,
    ws_addr: SocketAddr,
    metrics_addr: SocketAddr,
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address in `line` after `scheme` (up to whitespace or `/`).
fn addr_after(line: &str, scheme: &str) -> Option<SocketAddr> {
    let rest = &line[line.find(scheme)? + scheme.len()..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '/')
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn start_binary() -> Binary {
    let exe = env!("CARGO_BIN_EXE_ringcast");
    let help = Command::new(exe)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&help.stdout).contains("--metrics-addr"),
        "the binary has no --metrics-addr flag yet"
    );
    ringcast::sys::raise_nofile_limit(None).expect("raise RLIMIT_NOFILE");
    let mut child = Command::new(exe)
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--threads",
            "2",
            "--no-pin",
        ])
        .args(["--metrics-addr", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start ringcast");
    let stdout = child.stdout.take().unwrap();
    // Read the two address lines on a thread so a silent binary cannot hang the test.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (mut ws_addr, mut metrics_addr) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while ws_addr.is_none() || metrics_addr.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match rx.recv_timeout(left) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!("no address lines from the binary; got {seen:?}");
            }
        };
        if line.starts_with("ringcast listening on ws://") {
            ws_addr = addr_after(&line, "ws://");
        } else if line.starts_with("metrics on http://") {
            metrics_addr = addr_after(&line, "http://");
        }
        seen.push(line);
    }
    Binary {
        child,
        ws_addr: ws_addr.unwrap(),
        metrics_addr: metrics_addr.unwrap(),
    }
}

#[test]
fn dashboard_shows_fifty_real_clients() {
    check_prerequisites();
    let bin = start_binary();
    let mut clients: Vec<common::Client> = (0..CLIENTS)
        .map(|i| common::connect_from(bin.ws_addr, "/ws/dashboard", common::source_ip(i)).0)
        .collect();
    let url = format!("http://{}/", bin.metrics_addr);
    let json = browser_check(&url, CLIENTS, &[]);
    assert!(json.contains("\"ok\":true"), "{json}");

    // Closing ten of them shows on the page too.
    for mut c in clients.drain(..10) {
        let _ = c.close(None);
        let _ = c.flush();
        let deadline = Instant::now() + common::TIMEOUT;
        while c.read().is_ok() && Instant::now() < deadline {}
    }
    browser_check(&url, CLIENTS - 10, &[]);
    drop(clients);
}

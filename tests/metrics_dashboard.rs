//! The live dashboard in a real headless browser: Debian's Chromium (`/usr/bin/chromium`)
//! driven by `tests/dashboard/check.mjs` (playwright-core, installed by
//! `npm ci --prefix tests/dashboard`) loads `GET /`, which connects to `/stats`; the test
//! passes when the page shows the expected number of connections.
//!
//! Two cases: a bare [`MetricsServer`] with 50 synthetic `connection_opened` calls, and
//! the real binary (`serve --addr 127.0.0.1:0 --metrics-addr 127.0.0.1:0`) with 50 real
//! WebSocket clients.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
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
                c.publish_fanned_out(1, CLIENTS / 2);
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

#[test]
fn dashboard_shows_fifty_real_clients() {
    check_prerequisites();
    ringcast::sys::raise_nofile_limit(None).expect("raise RLIMIT_NOFILE");
    let bin = common::process::ServerProcess::spawn(&[
        "--threads",
        "2",
        "--no-pin",
        "--metrics-addr",
        "127.0.0.1:0",
    ]);
    let metrics_addr = bin.metrics.expect("metrics address");
    let mut clients: Vec<common::Client> = (0..CLIENTS)
        .map(|i| common::connect_from(bin.addr, "/ws/dashboard", common::source_ip(i)).0)
        .collect();
    let url = format!("http://{metrics_addr}/");
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

//! Test support: runs the `ringcast-load` binary with a JSON report and a time limit,
//! plus small helpers to read the report.

#![allow(dead_code)] // shared by several test binaries, each uses a part

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh path in the temp directory (unique per process and call).
pub fn tmp(name: &str) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("rl-e2e-{}-{n}-{name}", std::process::id()))
}

/// A directory under the temp directory, removed (with its contents) on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh, empty directory.
    pub fn new(name: &str) -> TempDir {
        let d = tmp(name);
        std::fs::create_dir_all(&d).expect("create temp dir");
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What one `ringcast-load` run did.
pub struct Run {
    /// Exit code (-1 if killed by a signal).
    pub code: i32,
    /// What it printed.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
    /// The `--json` report (`null` if none was written).
    pub json: Value,
    /// Wall time of the run.
    pub elapsed: Duration,
}

/// Runs the binary with `args` plus `--json`, killing it if it outlives `limit`.
pub fn run(args: &[&str], limit: Duration) -> Run {
    let json = tmp("report.json");
    let t0 = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringcast-load"))
        .args(args)
        .arg("--json")
        .arg(&json)
        .arg("--no-progress")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ringcast-load");
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > limit {
            child.kill().ok();
            child.wait().ok();
            panic!("ringcast-load ran longer than {limit:?}: {args:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    let text = std::fs::read_to_string(&json).unwrap_or_else(|_| "null".into());
    std::fs::remove_file(&json).ok();
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        json: serde_json::from_str(&text).expect("valid JSON report"),
        elapsed: t0.elapsed(),
    }
}

/// The unsigned integer at JSON pointer `path` (panics if absent).
pub fn u(v: &Value, path: &str) -> u64 {
    v.pointer(path)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{path} missing in {v:#}"))
}

/// A fan-out report with `frames` expected and delivered to each of `receivers`
/// subscribers: all of them arrived, none lost, skipped, out of order or malformed.
pub fn assert_exact_delivery(j: &Value, frames: u64, receivers: u64) {
    assert_eq!(u(j, "/traffic/receivers"), receivers);
    assert_eq!(u(j, "/traffic/expected_frames"), frames * receivers);
    assert_eq!(u(j, "/traffic/received_frames"), frames * receivers);
    for counter in ["lost_frames", "gaps", "order_violations", "malformed"] {
        assert_eq!(u(j, &format!("/traffic/{counter}")), 0, "{counter}");
    }
}

/// Exit 0, `ok: true` in the report, "result: OK" printed.
pub fn assert_clean(r: &Run) {
    assert_eq!(
        r.code, 0,
        "exit code\nstdout:\n{}\nstderr:\n{}",
        r.stdout, r.stderr
    );
    assert_eq!(r.json["ok"], Value::Bool(true), "{:#}", r.json["problems"]);
    assert!(r.stdout.contains("result: OK"), "{}", r.stdout);
}

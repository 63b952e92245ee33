//! `ringcast serve --config FILE`, `RINGCAST_*` variables and `--print-config`, through
//! the binary: precedence flag > variable > file > default, a server configured by a
//! file, and errors that name the file and the key.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::process::ServerProcess;

const BIN: &str = env!("CARGO_BIN_EXE_ringcast");

/// A config file that removes itself.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, text: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("ringcast-{}-{name}.toml", std::process::id()));
        std::fs::write(&path, text).unwrap();
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        std::fs::remove_file(&self.0).ok();
    }
}

/// Run the binary with a clean `RINGCAST_*` environment plus `env`.
fn run(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(BIN);
    for (key, _) in std::env::vars() {
        if key.starts_with("RINGCAST_") {
            command.env_remove(key);
        }
    }
    command
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

#[test]
fn flags_beat_variables_beat_the_file_beats_defaults() {
    let file = TempFile::new(
        "precedence",
        "[queue]\nmax-queue-bytes = \"2MiB\"\nslow-policy = \"drop-oldest\"\n\
         [history]\nhistory = 8\n",
    );
    let out = run(
        &[
            "serve",
            "--config",
            file.path(),
            "--history",
            "10",
            "--print-config",
        ],
        &[
            ("RINGCAST_MAX_QUEUE_BYTES", "3MiB"),
            ("RINGCAST_HISTORY", "9"),
            ("RINGCAST_PING_INTERVAL", "7s"),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let printed = String::from_utf8(out.stdout).unwrap();
    for line in [
        "history = 10\n",                  // flag over variable and file
        "max-queue-bytes = \"3MiB\"\n",    // variable over file
        "ping-interval = \"7s\"\n",        // variable over default
        "slow-policy = \"drop-oldest\"\n", // file over default
        "history-ttl = \"5m\"\n",          // default
    ] {
        assert!(printed.contains(line), "missing {line:?} in:\n{printed}");
    }
}

#[test]
fn a_server_runs_on_the_settings_of_its_file() {
    for backend in ["uring", "epoll"] {
        let file = TempFile::new(
            &format!("serve-{backend}"),
            &format!(
                "[server]\nthreads = 1\nbackend = \"{backend}\"\n[log]\nlog-level = \"warn\"\n"
            ),
        );
        let server = ServerProcess::spawn(&["--config", file.path(), "--metrics-addr", "off"]);
        assert!(
            server.banner[0].contains(&format!("backend {backend}, 1 shards")),
            "{:?}",
            server.banner
        );
        let (mut ws, _) = tungstenite::connect(format!("ws://{}/echo", server.addr)).unwrap();
        ws.send(tungstenite::Message::text("from a file")).unwrap();
        assert_eq!(
            ws.read().unwrap(),
            tungstenite::Message::text("from a file")
        );
    }
}

#[test]
fn a_bad_file_stops_the_server_before_it_starts_naming_file_and_key() {
    let file = TempFile::new("typo", "[queue]\nmax-queue-byte = \"1MiB\"\n");
    let out = run(&["serve", "--config", file.path()], &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(file.path()) && err.contains("[queue] max-queue-byte"),
        "{err}"
    );
    let file = TempFile::new("value", "[conn]\nping-interval = \"soon\"\n");
    let out = run(&["serve", "--config", file.path()], &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(file.path()) && err.contains("[conn] ping-interval") && err.contains("soon"),
        "{err}"
    );
    let out = run(
        &["serve", "--print-config"],
        &[("RINGCAST_MAX_QUEUE_BYTES", "huge")],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("max-queue-bytes"),
        "{out:?}"
    );
}

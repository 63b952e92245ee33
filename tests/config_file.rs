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
        String::from_utf8_lossy(&out.stderr).contains("RINGCAST_MAX_QUEUE_BYTES"),
        "{out:?}"
    );
}

/// Run `serve --print-config` with `file` (when given) and `env`; expect a failure (2
/// for a value the parser refuses, 1 for a check on the settings together) and a
/// message holding every one of `expected`, and nothing printed on stdout.
fn refused(file: Option<&TempFile>, flags: &[&str], env: &[(&str, &str)], expected: &[&str]) {
    let mut args = vec!["serve"];
    if let Some(file) = file {
        args.extend(["--config", file.path()]);
    }
    args.extend(flags);
    args.push("--print-config");
    let out = run(&args, env);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(1 | 2)),
        "{args:?} {env:?}: {out:?}"
    );
    assert!(out.stdout.is_empty(), "nothing printed: {out:?}");
    for e in expected {
        assert!(err.contains(e), "{args:?} {env:?}: {e:?} missing in {err}");
    }
}

#[test]
fn an_error_is_blamed_on_the_exact_key_not_one_it_starts_with() {
    for (name, text, key, not) in [
        (
            "hb",
            "[history]\nhistory = 10\nhistory-bytes = \"lots\"\n",
            "[history] history-bytes:",
            "[history] history:",
        ),
        (
            "bq",
            "[broker]\nbroker = \"redis://127.0.0.1:9\"\nbroker-queue = \"many\"\n",
            "[broker] broker-queue:",
            "[broker] broker:",
        ),
        (
            "ptf",
            "[access]\npublish-token-file = \"/nonexistent-token\"\n",
            "[access] publish-token-file:",
            "[access] publish-token:",
        ),
    ] {
        let file = TempFile::new(name, text);
        refused(Some(&file), &[], &[], &[file.path(), key]);
        let out = run(&["serve", "--config", file.path(), "--print-config"], &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains(not), "{text:?}: {err}");
    }
}

#[test]
fn start_time_checks_name_the_file_and_key_or_the_variable_and_stop_print_config() {
    let cases = [
        ("[server]\nthreads = 0\n", "[server] threads:"),
        (
            "[metrics]\nmetrics-label = [\"bad label\"]\n",
            "[metrics] metrics-label:",
        ),
        ("[tls]\ntls-cert = \"/nonexistent.pem\"\n", "[tls] tls-cert"),
        ("[log]\nlog-level = \"verbose\"\n", "[log] log-level:"),
        ("[server]\nbacklog = -5\n", "[server] backlog:"),
    ];
    for (i, (text, key)) in cases.iter().enumerate() {
        let file = TempFile::new(&format!("check{i}"), text);
        refused(Some(&file), &[], &[], &[file.path(), key]);
    }
    refused(
        None,
        &[],
        &[("RINGCAST_THREADS", "0")],
        &["RINGCAST_THREADS"],
    );
    refused(
        None,
        &[],
        &[("RINGCAST_HISTORY_BYTES", "lots")],
        &["RINGCAST_HISTORY_BYTES", "lots"],
    );
    refused(
        None,
        &[],
        &[("RINGCAST_TLS_CERT", "/x.pem")],
        &["RINGCAST_TLS_CERT"],
    );
    // A flag is named as the flag, even with a file or variable setting it too.
    let file = TempFile::new("flag-wins", "[server]\nthreads = 2\n");
    refused(
        Some(&file),
        &["--threads", "0"],
        &[("RINGCAST_THREADS", "3")],
        &["--threads must be"],
    );
}

#[test]
fn log_level_and_backlog_values_are_checked() {
    refused(
        None,
        &["--log-level", "verbose"],
        &[],
        &[
            "--log-level",
            "verbose",
            "off, error, warn, info, debug, trace",
        ],
    );
    refused(None, &["--backlog=-5"], &[], &["--backlog", "-5"]);
    let out = run(
        &[
            "serve",
            "--log-level",
            "warn,ringcast=DEBUG",
            "--print-config",
        ],
        &[],
    );
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn broker_urls_are_checked_by_the_flag_and_printed_without_the_password() {
    refused(
        None,
        &["--broker", "redis://127.0.0.1:99999"],
        &[],
        &["--broker", "99999"],
    );
    refused(
        None,
        &[],
        &[("RINGCAST_BROKER", "redis://127.0.0.1:0")],
        &["RINGCAST_BROKER"],
    );
    if !cfg!(feature = "redis") {
        refused(
            None,
            &["--broker", "redis://127.0.0.1:9650"],
            &[],
            &["`redis` cargo feature"],
        );
        return;
    }
    let printed = |url: &str| {
        let out = run(&["serve", "--broker", url, "--print-config"], &[]);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let plain = printed("redis://127.0.0.1:9650");
    assert!(
        plain.contains("\nbroker = \"redis://127.0.0.1:9650\"\n"),
        "{plain}"
    );
    let secret = printed("redis://:s3cret@127.0.0.1:9650/1");
    assert!(!secret.contains("s3cret"), "{secret}");
    assert!(
        secret.contains("password is not printed")
            && secret.contains("\nbroker = \"redis://:***@127.0.0.1:9650/1\"\n"),
        "{secret}"
    );
}

#[test]
fn durations_over_their_maximum_are_refused_naming_the_source_and_the_maximum() {
    let huge = "99999999999999999m";
    for (flag, section, max) in [
        ("session-grace", "sessions", "1440m (24 h)"),
        ("sse-retry", "conn", "60m (1 h)"),
        ("ping-interval", "conn", "1440m (24 h)"),
        ("pong-timeout", "conn", "1440m (24 h)"),
        ("handshake-timeout", "conn", "1440m (24 h)"),
        ("close-timeout", "conn", "1440m (24 h)"),
        ("shutdown-timeout", "server", "1440m (24 h)"),
        ("history-ttl", "history", "1440m (24 h)"),
        ("broker-linger", "broker", "1440m (24 h)"),
    ] {
        let long_flag = format!("--{flag}");
        refused(None, &[&long_flag, huge], &[], &[&long_flag, huge, max]);
        let var = format!("RINGCAST_{}", flag.to_uppercase().replace('-', "_"));
        refused(None, &[], &[(&var, huge)], &[&var, huge, max]);
        let file = TempFile::new(
            &format!("max-{flag}"),
            &format!("[{section}]\n{flag} = \"{huge}\"\n"),
        );
        let key = format!("[{section}] {flag}");
        refused(Some(&file), &[], &[], &[file.path(), &key, huge, max]);
    }
    // The maximum itself is accepted (just over it is not).
    let out = run(
        &[
            "serve",
            "--session-grace",
            "24m",
            "--sse-retry",
            "60m",
            "--handshake-timeout",
            "1440m",
            "--print-config",
        ],
        &[],
    );
    assert!(out.status.success(), "{out:?}");
    refused(
        None,
        &["--sse-retry", "3601s"],
        &[],
        &["--sse-retry", "60m (1 h)"],
    );
}

//! Interoperability with clients nobody here wrote: the Python `websockets` client and the
//! Node.js `ws` client, run as subprocesses (`tests/interop/python/interop.py`,
//! `tests/interop/node/interop.js`) against a server on each backend (2 shards, a 2 MiB
//! message limit). Each script checks fan-out (100 connections, 50 messages, in order),
//! `/echo` of a 1 MiB binary and a 200-fragment text message, close codes 1009 and 1007,
//! a clean close handshake, and permessage-deflate (a room message compressed, RSV1 seen,
//! for a client that negotiated it and plain for one that did not, in the same room; both
//! clients offer the extension by default, so the checks above run compressed too); it
//! prints what it checked and exits non-zero on a failure. `tests/interop/python/resume.py`
//! runs a session resume cycle (`--session-grace`) in step with the test, which checks the
//! server's state at each of the script's `WAIT` lines.
//!
//! Server-Sent Events: `httpx` streaming with `httpx-sse` (`tests/interop/python/sse.py`).
//!
//! Headless Chromium (the dashboard harness's playwright-core, `tests/dashboard/deflate.mjs`)
//! checks permessage-deflate the same way, RSV1 seen by a frame-recording proxy.
//!
//! The clients must be installed (`.ci/run` installs both):
//! `python3 -m pip install 'websockets>=13' httpx httpx-sse` and
//! `npm ci --prefix tests/interop/node`.
//! A missing client fails the test with that instruction; it never passes silently.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use ringcast::BackendChoice;

/// The servers' message limit: the scripts send limit + 1 MiB to get 1009.
const MAX_MESSAGE_SIZE: usize = 2 << 20;
/// Each script gives up after 60 s by itself; this is the backstop.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

/// Run `cmd` to completion (killed after `SCRIPT_TIMEOUT`); returns (success, stdout, stderr).
fn run(mut cmd: Command, what: &str) -> (bool, String, String) {
    let mut child: Child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start {cmd:?}: {e}"));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut out = String::new();
            let _ = pipe.read_to_string(&mut out);
            out
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let (stdout, mut stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    if status.is_none() {
        stderr.push_str(&format!("\n{what}: killed after {SCRIPT_TIMEOUT:?}\n"));
    }
    (status.is_some_and(|s| s.success()), stdout, stderr)
}

/// Start a server on `backend` (serving wss:// with `tls`), run the client command
/// built by `client` against it.
fn check_client(
    backend: BackendChoice,
    name: &str,
    tls: Option<ringcast::TlsConfig>,
    client: impl Fn(&str) -> Command,
) {
    let mut cfg = config(backend, 2);
    cfg.shard.limits.max_message_size = MAX_MESSAGE_SIZE;
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    cfg.driver.tls = tls;
    let server = start_with(cfg, ringcast::app::Builtin::default());
    let base = format!("{scheme}://{}", server.local_addr());
    let what = format!("{name} against {backend:?}");
    let (ok, stdout, stderr) = run(client(&base), &what);
    println!("--- {what} ---\n{stdout}{stderr}");
    server.shutdown().unwrap();
    assert!(ok, "{what} failed:\n{stdout}{stderr}");
}

fn require_python_websockets() {
    let probe = Command::new("python3")
        .args([
            "-c",
            "import websockets, websockets.asyncio.client; print(websockets.__version__)",
        ])
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

#[test]
fn python_websockets_client_interoperates() {
    require_python_websockets();
    let script = interop_dir().join("python/interop.py");
    for backend in BACKENDS {
        check_client(backend, "python websockets", None, |base| {
            let mut cmd = Command::new("python3");
            cmd.arg(&script)
                .arg(base)
                .args(["--max-message-size", &MAX_MESSAGE_SIZE.to_string()]);
            cmd
        });
    }
}

/// Server-Sent Events read by `httpx` streaming and parsed by `httpx-sse`
/// (`tests/interop/python/sse.py`): 200 subscribers over 2 shards get 100 WebSocket
/// publishes in order, a resume from an id, a `gap` event for an evicted range.
#[test]
fn python_httpx_sse_client_interoperates() {
    let probe = Command::new("python3")
        .args(["-c", "import httpx, httpx_sse, websockets.asyncio.client"])
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "the Python packages `httpx` and `httpx-sse` (and `websockets` >= 13) are not \
             importable by python3 ({}): install them with \
             `python3 -m pip install httpx httpx-sse` (.ci/run does)",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("import failed")
        ),
        Err(e) => panic!("python3 cannot be run ({e}): install Python 3 (.ci/run needs it)"),
    }
    let script = interop_dir().join("python/sse.py");
    for backend in BACKENDS {
        let mut cfg = config(backend, 2);
        cfg.history = Some(ringcast::config::HistoryConfig::frames(50));
        let server = start_with(cfg, ringcast::app::Builtin::default());
        let what = format!("python httpx-sse against {backend:?}");
        let mut cmd = Command::new("python3");
        cmd.arg(&script).arg(server.local_addr().to_string());
        let (ok, stdout, stderr) = run(cmd, &what);
        println!("--- {what} ---\n{stdout}{stderr}");
        server.shutdown().unwrap();
        assert!(ok, "{what} failed:\n{stdout}{stderr}");
    }
}

#[test]
fn node_ws_client_interoperates() {
    let dir = interop_dir().join("node");
    let probe = Command::new("node")
        .args(["-e", "console.log(require('ws/package.json').version)"])
        .current_dir(&dir)
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "the npm package `ws` is not installed in tests/interop/node ({}): \
             install it with `npm ci --prefix tests/interop/node` (.ci/run does)",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .find(|l| l.contains("Error"))
                .unwrap_or("require('ws') failed")
        ),
        Err(e) => panic!(
            "node cannot be run ({e}): install Node.js (>= 18) and npm, then \
             `npm ci --prefix tests/interop/node` (.ci/run does)"
        ),
    }
    for backend in BACKENDS {
        check_client(backend, "node ws", None, |base| {
            let mut cmd = Command::new("node");
            cmd.arg(dir.join("interop.js"))
                .arg(base)
                .args(["--max-message-size", &MAX_MESSAGE_SIZE.to_string()])
                .current_dir(&dir);
            cmd
        });
    }
}

/// The same Python checks over wss://: the server loads a PEM certificate and key from
/// files (as `--tls-cert`/`--tls-key` do) and the client trusts only that certificate.
#[cfg(feature = "tls")]
#[test]
fn python_websockets_client_interoperates_over_tls() {
    require_python_websockets();
    let (dir, cert_path, key_path) = common::tls::self_signed_files("interop-tls");
    let script = interop_dir().join("python/interop.py");
    for backend in BACKENDS {
        let tls =
            ringcast::TlsConfig::from_pem_files(&cert_path, &key_path).expect("PEM files load");
        check_client(backend, "python websockets over TLS", Some(tls), |base| {
            let mut cmd = Command::new("python3");
            cmd.arg(&script)
                .arg(base)
                .arg("--ca-file")
                .arg(&cert_path)
                .args(["--max-message-size", &MAX_MESSAGE_SIZE.to_string()]);
            cmd
        });
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A TCP proxy in front of `upstream` for up to `connections` connections: forwards both
/// ways and records the first header byte of every frame the server sends (after its 101
/// head), so a test sees RSV1 on the wire whatever the client is. Gives up accepting
/// after `TIMEOUT`.
fn frame_recording_proxy(
    upstream: std::net::SocketAddr,
    connections: usize,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
) {
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::sync::{Arc, Mutex};

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    thread::spawn(move || {
        let deadline = Instant::now() + TIMEOUT;
        let mut accepted = 0;
        while accepted < connections && Instant::now() < deadline {
            let Ok((client, _)) = listener.accept() else {
                thread::sleep(Duration::from_millis(5));
                continue;
            };
            accepted += 1;
            client.set_nonblocking(false).unwrap();
            let server = TcpStream::connect(upstream).unwrap();
            let (mut c_read, mut s_write) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            thread::spawn(move || {
                let _ = std::io::copy(&mut c_read, &mut s_write);
                let _ = s_write.shutdown(std::net::Shutdown::Write);
            });
            let record = record.clone();
            let (mut s_read, mut c_write) = (server, client);
            thread::spawn(move || {
                let (mut buf, mut chunk, mut head_done) = (Vec::new(), [0u8; 16384], false);
                while let Ok(n) = s_read.read(&mut chunk) {
                    if n == 0 || c_write.write_all(&chunk[..n]).is_err() {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if !head_done {
                        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                            continue;
                        };
                        buf.drain(..end + 4);
                        head_done = true;
                    }
                    while buf.len() >= 2 {
                        let (len, hdr) = match buf[1] & 0x7f {
                            126 if buf.len() >= 4 => {
                                (usize::from(u16::from_be_bytes([buf[2], buf[3]])), 4)
                            }
                            127 if buf.len() >= 10 => (
                                u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize,
                                10,
                            ),
                            126 | 127 => break,
                            n => (usize::from(n), 2),
                        };
                        if buf.len() < hdr + len {
                            break;
                        }
                        record.lock().unwrap().push(buf[0]);
                        buf.drain(..hdr + len);
                    }
                }
                let _ = c_write.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (addr, seen)
}

/// Headless Chromium (through the dashboard harness's playwright-core) gets a room
/// message compressed (RSV1 seen on the wire by a proxy) and intact, while a client that
/// offers nothing, in the same room, gets it as a plain frame (tungstenite fails the
/// connection on RSV1 without the extension).
#[test]
fn chromium_gets_room_messages_compressed() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let harness = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dashboard");
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} not found: install it with `apt-get install -y chromium` (.ci/run does)"
    );
    assert!(
        harness.join("node_modules/playwright-core").is_dir(),
        "playwright-core missing: run `npm ci --prefix tests/dashboard` (.ci/run does)"
    );
    for backend in BACKENDS {
        let server = start(backend, 2);
        let room = format!("/ws/chromium-{}", std::process::id());
        let mut plain = connect(server.local_addr(), &room);
        let (proxy, seen) = frame_recording_proxy(server.local_addr(), 2);
        let mut cmd = Command::new("node");
        cmd.arg(harness.join("deflate.mjs"))
            .args(["--ws", &format!("ws://{proxy}{room}")]);
        let what = format!("chromium against {backend:?}");
        let (ok, stdout, stderr) = run(cmd, &what);
        println!("--- {what} ---\n{stdout}{stderr}");
        assert!(ok, "{what} failed:\n{stdout}{stderr}");
        let message = plain.read().unwrap();
        assert_eq!(message.len(), 4096, "{what}: the plain client");
        assert!(message.is_text());
        assert!(
            poll_until(TIMEOUT, || seen.lock().unwrap().len() >= 2),
            "{what}: frames seen {:x?}",
            seen.lock().unwrap()
        );
        let seen = seen.lock().unwrap().clone();
        let text: Vec<u8> = seen.iter().copied().filter(|b| b & 0x0f == 1).collect();
        assert!(
            !text.is_empty() && text.iter().all(|b| b & 0x40 != 0),
            "{what}: every text frame to Chromium compressed, first bytes {seen:x?}"
        );
        server.shutdown().unwrap();
    }
}

/// The session resume cycle (`--session-grace`) with the Python `websockets` client
/// (`tests/interop/python/resume.py`): reset, messages buffered, `?resume=TOKEN`, the
/// buffered messages in order then live, an unknown token. The script waits at each
/// `WAIT <what>` line until this side has seen the server reach that state.
#[test]
fn python_websockets_client_resumes_a_session() {
    use std::io::{BufRead, BufReader, Write};
    use std::sync::mpsc;

    require_python_websockets();
    let script = interop_dir().join("python/resume.py");
    for backend in BACKENDS {
        let mut cfg = config(backend, 2);
        cfg.shard.sessions.grace = Duration::from_secs(60);
        let (server, rec) = start_recorded(cfg, ringcast::app::Builtin::default());
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(format!("ws://{}", server.local_addr()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = mpsc::channel();
        let reader = thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut printed = String::new();
        while let Ok(line) = lines.recv_timeout(SCRIPT_TIMEOUT) {
            printed.push_str(&line);
            printed.push('\n');
            let reached = match line.as_str() {
                "WAIT detached" => poll_until(TIMEOUT, || rec.level("detached") == 1),
                "WAIT buffered" => poll_until(TIMEOUT, || rec.get("published") == 20),
                _ => continue,
            };
            assert!(
                reached,
                "{backend:?}: server never reached `{line}`:\n{printed}"
            );
            writeln!(stdin, "go").unwrap();
        }
        // The loop ends when the script closed its stdout (it is exiting) or went silent.
        if !poll_until(TIMEOUT, || child.try_wait().unwrap().is_some()) {
            let _ = child.kill();
        }
        let status = child.wait().unwrap();
        reader.join().unwrap();
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        println!("--- python resume against {backend:?} ---\n{printed}{stderr}");
        assert!(
            status.success(),
            "{backend:?}: resume.py failed:\n{printed}{stderr}"
        );
        assert_eq!(rec.get("resume:resumed"), 1);
        assert_eq!(rec.get("resume:unknown"), 1);
        server.shutdown().unwrap();
    }
}

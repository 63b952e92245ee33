//! End-to-end tests of the metrics endpoint: a [`MetricsServer`] on 127.0.0.1:0 serving a
//! collector driven by direct hook calls (a scripted session over two shards). `/metrics`
//! is fetched over a real socket, parsed by Python's `prometheus_client` text parser (the
//! reference implementation; `pip install prometheus_client`) and its values asserted
//! exactly; `/` must be the self-contained dashboard and `/stats` must upgrade and push
//! JSON; bad requests get 404/405/426/431, a full server 503, and shutdown is prompt.
//! `engine_session_counts_exactly` drives the real engine (both backends) with
//! `Server::start_with_metrics` and scrapes after a scripted client session.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringcast::metrics::http::{MetricsServerOptions, METRICS_CONTENT_TYPE};
use ringcast::metrics::{
    DisconnectReason, DropReason, MetricsCollector, MetricsServer, PrometheusCollector,
};
use ringcast::Transport;

const TIMEOUT: Duration = Duration::from_secs(10);

fn local() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A scripted session on two shards: 7 connections accepted (4 on shard 0, 3 on shard 1),
/// 4 closed (protocol error, slow consumer, pong timeout, admission), two rooms (opened
/// by different shards), 4 messages in, 2 publishes to 3 and 2 recipients, 2 frames
/// dropped, one message too large for the history.
fn scripted() -> Arc<PrometheusCollector> {
    let c = Arc::new(PrometheusCollector::new(
        2,
        "ringcast",
        vec![
            ("env".to_owned(), "test".to_owned()),
            ("note".to_owned(), "quote \" back\\slash".to_owned()),
        ],
        "uring",
    ));
    for shard in [0, 0, 0, 1, 1] {
        c.connection_opened(shard);
    }
    c.handshake_rejected(1, 404);
    c.connection_opened(1);
    c.connection_closed(1, DisconnectReason::ProtocolError, Duration::from_millis(2));
    c.room_opened(0);
    c.room_opened(1);
    for (shard, bytes) in [(0, 5), (0, 7), (1, 11), (1, 13)] {
        c.message_received(shard, bytes);
    }
    c.publish_fanned_out(0, 3);
    c.publish_fanned_out(1, 2);
    c.history_refused(1, 300_000);
    c.frames_sent(0, 3, 3 * 7);
    c.frames_sent(1, 2, 2 * 7);
    c.frames_sent_on(0, Transport::WebSocket, 3);
    c.frames_sent_on(1, Transport::Sse, 2);
    c.connection_accepted(0, Transport::WebSocket);
    c.connection_accepted(1, Transport::Sse);
    c.connection_ended(1, Transport::Sse);
    c.send_queue_bytes(0, 7);
    c.send_queue_bytes(1, 100_000);
    c.publish_to_write(0, Duration::from_micros(20));
    c.publish_to_write(1, Duration::from_micros(700));
    c.frame_dropped(1, DropReason::QueueFullOldest);
    c.frame_dropped(1, DropReason::QueueFullOldest);
    c.connection_closed(1, DisconnectReason::SlowConsumer, Duration::from_secs(3));
    c.pong_timeout(0);
    c.connection_closed(0, DisconnectReason::PongTimeout, Duration::from_secs(40));
    c.admission_rejected(0);
    c.connection_opened(0);
    c.connection_closed(0, DisconnectReason::AdmissionRejected, Duration::ZERO);
    c
}

struct Response {
    status: u16,
    head: String,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

fn exchange(addr: SocketAddr, request: &[u8]) -> Response {
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(request).unwrap();
    read_response(&mut s)
}

fn read_response(s: &mut TcpStream) -> Response {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("read failed after {} bytes: {e}", raw.len()),
        }
    }
    let text = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("complete head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    Response {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

fn get(addr: SocketAddr, path: &str) -> Response {
    exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: test\r\n\r\n").as_bytes(),
    )
}

/// Parse with `prometheus_client`: families as `TYPE name type` lines and samples as
/// `name{k="v",…} value` lines (labels sorted), one map entry per sample.
const PARSER: &str = r#"
import sys
try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    print("MISSING prometheus_client")
    sys.exit(3)
text = sys.stdin.read()
for fam in text_string_to_metric_families(text):
    print("TYPE %s %s" % (fam.name, fam.type))
    for s in fam.samples:
        labels = ",".join('%s=%s' % (k, repr(v)) for k, v in sorted(s.labels.items()))
        print("SAMPLE %s{%s} %r" % (s.name, labels, s.value))
"#;

struct Parsed {
    types: BTreeMap<String, String>,
    samples: BTreeMap<String, f64>,
}

fn python_parse(text: &str) -> Parsed {
    let mut child = Command::new("python3")
        .args(["-c", PARSER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 must be installed to validate the exposition");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.code() != Some(3),
        "Python module prometheus_client is missing: run `python3 -m pip install prometheus_client`"
    );
    assert!(
        out.status.success(),
        "prometheus_client rejected the exposition: {}\n--- text ---\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut parsed = Parsed {
        types: BTreeMap::new(),
        samples: BTreeMap::new(),
    };
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("TYPE ") {
            let (name, typ) = rest.split_once(' ').unwrap();
            parsed.types.insert(name.to_owned(), typ.to_owned());
        } else if let Some(rest) = line.strip_prefix("SAMPLE ") {
            let (key, value) = rest.rsplit_once(' ').unwrap();
            let prev = parsed
                .samples
                .insert(key.to_owned(), value.parse().unwrap());
            assert!(prev.is_none(), "duplicate sample {key}");
        }
    }
    parsed
}

/// The parsed value of sample `name` with the constant labels plus `extra` (`k='v'` items,
/// merged and sorted like the parser's output).
fn value(p: &Parsed, name: &str, extra: &[&str]) -> f64 {
    let mut labels: Vec<String> = vec!["env='test'".into(), "note='quote \" back\\\\slash'".into()];
    labels.extend(extra.iter().map(|s| s.to_string()));
    labels.sort();
    let key = format!("{name}{{{}}}", labels.join(","));
    *p.samples
        .get(&key)
        .unwrap_or_else(|| panic!("no sample {key}; have {:#?}", p.samples.keys()))
}

#[test]
fn metrics_endpoint_serves_exact_valid_exposition() {
    let collector = scripted();
    let server = MetricsServer::start(local(), Arc::clone(&collector)).unwrap();
    let addr = server.local_addr();
    assert_ne!(addr.port(), 0);

    let r = get(addr, "/metrics");
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(r.header("content-type"), Some(METRICS_CONTENT_TYPE));
    assert_eq!(
        r.header("content-length")
            .map(|v| v.parse::<usize>().unwrap()),
        Some(r.body.len())
    );
    assert_eq!(r.body, collector.render(), "served text = render()");

    // Structure, checked here too: HELP then TYPE before each family's samples, every
    // sample carries the constant labels.
    let mut typed = String::new();
    for line in r.body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            typed = rest.split(' ').next().unwrap().to_owned();
        } else if !line.starts_with('#') {
            assert!(line.starts_with(&typed), "{line} outside family {typed}");
            assert!(
                line.contains("{env=\"test\",note=\"quote \\\" back\\\\slash\""),
                "constant labels missing: {line}"
            );
        }
    }

    let p = python_parse(&r.body);
    let expect_types = [
        ("ringcast_connections_active", "gauge"),
        ("ringcast_connections_opened", "counter"),
        ("ringcast_connections_closed", "counter"),
        ("ringcast_connections_accepted", "counter"),
        ("ringcast_connections_ended", "counter"),
        ("ringcast_frames_sent_by_transport", "counter"),
        ("ringcast_connection_duration_seconds", "histogram"),
        ("ringcast_handshake_rejected", "counter"),
        ("ringcast_rooms_active", "gauge"),
        ("ringcast_messages_received", "counter"),
        ("ringcast_messages_received_bytes", "counter"),
        ("ringcast_messages_published", "counter"),
        ("ringcast_broadcast_fanout", "histogram"),
        ("ringcast_frames_sent", "counter"),
        ("ringcast_bytes_sent", "counter"),
        ("ringcast_frames_dropped", "counter"),
        ("ringcast_send_queue_bytes", "histogram"),
        ("ringcast_pong_timeouts", "counter"),
        ("ringcast_panics", "counter"),
        ("ringcast_admission_rejected", "counter"),
        ("ringcast_bind_retries", "counter"),
        ("ringcast_resume_attempts", "counter"),
        ("ringcast_resumes", "counter"),
        ("ringcast_replayed_frames", "counter"),
        ("ringcast_history_refused", "counter"),
        ("ringcast_http_publish_requests", "counter"),
        ("ringcast_publish_to_write_seconds", "histogram"),
        ("ringcast_input_throttled", "counter"),
        ("ringcast_deflate_compressions", "counter"),
        ("ringcast_sessions_active", "gauge"),
        ("ringcast_sessions_detached", "gauge"),
        ("ringcast_session_buffer_bytes", "gauge"),
        ("ringcast_session_resumes", "counter"),
        ("ringcast_build_info", "gauge"),
    ];
    let got: Vec<(&str, &str)> = p
        .types
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut want = expect_types.to_vec();
    want.sort();
    assert_eq!(got, want, "families and types");

    let v = |name: &str, extra: &[&str]| value(&p, name, extra);
    assert_eq!(v("ringcast_connections_active", &["shard='0'"]), 2.0);
    assert_eq!(v("ringcast_connections_active", &["shard='1'"]), 1.0);
    assert_eq!(v("ringcast_connections_opened_total", &[]), 7.0);
    for (reason, n) in [
        ("normal", 0.0),
        ("protocol_error", 1.0),
        ("slow_consumer", 1.0),
        ("pong_timeout", 1.0),
        ("admission_rejected", 1.0),
        ("reset", 0.0),
        ("tls_error", 0.0),
    ] {
        let label = format!("reason='{reason}'");
        assert_eq!(
            v("ringcast_connections_closed_total", &[&label]),
            n,
            "{reason}"
        );
    }
    assert_eq!(
        v("ringcast_handshake_rejected_total", &["status='404'"]),
        1.0
    );
    assert_eq!(v("ringcast_rooms_active", &[]), 2.0);
    assert_eq!(v("ringcast_messages_received_total", &[]), 4.0);
    assert_eq!(v("ringcast_messages_received_bytes_total", &[]), 36.0);
    assert_eq!(v("ringcast_messages_published_total", &[]), 2.0);
    assert_eq!(v("ringcast_frames_sent_total", &[]), 5.0);
    let by = |name: &str, t: &str| v(name, &[&format!("transport='{t}'")]);
    assert_eq!(by("ringcast_frames_sent_by_transport_total", "ws"), 3.0);
    assert_eq!(by("ringcast_frames_sent_by_transport_total", "sse"), 2.0);
    assert_eq!(by("ringcast_connections_accepted_total", "ws"), 1.0);
    assert_eq!(by("ringcast_connections_accepted_total", "sse"), 1.0);
    assert_eq!(by("ringcast_connections_ended_total", "sse"), 1.0);
    assert_eq!(by("ringcast_connections_ended_total", "ws"), 0.0);
    assert_eq!(v("ringcast_bytes_sent_total", &[]), 35.0);
    assert_eq!(
        v("ringcast_frames_dropped_total", &["reason='drop_oldest'"]),
        2.0
    );
    assert_eq!(
        v("ringcast_frames_dropped_total", &["reason='drop_newest'"]),
        0.0
    );
    assert_eq!(v("ringcast_pong_timeouts_total", &[]), 1.0);
    assert_eq!(v("ringcast_panics_total", &[]), 0.0);
    assert_eq!(v("ringcast_admission_rejected_total", &[]), 1.0);
    assert_eq!(v("ringcast_bind_retries_total", &[]), 0.0);
    assert_eq!(v("ringcast_history_refused_total", &[]), 1.0);
    assert_eq!(
        v(
            "ringcast_build_info",
            &[
                "backend='uring'",
                &format!("version='{}'", env!("CARGO_PKG_VERSION"))
            ]
        ),
        1.0
    );

    // Histograms: cumulative buckets, +Inf = _count, exact sums.
    assert_eq!(v("ringcast_broadcast_fanout_bucket", &["le='1'"]), 0.0);
    assert_eq!(v("ringcast_broadcast_fanout_bucket", &["le='2'"]), 1.0);
    assert_eq!(v("ringcast_broadcast_fanout_bucket", &["le='5'"]), 2.0);
    assert_eq!(v("ringcast_broadcast_fanout_bucket", &["le='+Inf'"]), 2.0);
    assert_eq!(v("ringcast_broadcast_fanout_sum", &[]), 5.0);
    assert_eq!(v("ringcast_broadcast_fanout_count", &[]), 2.0);
    assert_eq!(
        v(
            "ringcast_publish_to_write_seconds_bucket",
            &["le='0.000025'"]
        ),
        1.0
    );
    assert_eq!(
        v("ringcast_publish_to_write_seconds_bucket", &["le='0.0005'"]),
        1.0
    );
    assert_eq!(
        v("ringcast_publish_to_write_seconds_bucket", &["le='0.001'"]),
        2.0
    );
    assert_eq!(v("ringcast_publish_to_write_seconds_sum", &[]), 0.00072);
    assert_eq!(v("ringcast_publish_to_write_seconds_count", &[]), 2.0);
    assert_eq!(
        v("ringcast_connection_duration_seconds_bucket", &["le='0.1'"]),
        2.0
    );
    assert_eq!(
        v("ringcast_connection_duration_seconds_bucket", &["le='5'"]),
        3.0
    );
    assert_eq!(
        v("ringcast_connection_duration_seconds_bucket", &["le='60'"]),
        4.0
    );
    assert_eq!(v("ringcast_connection_duration_seconds_sum", &[]), 43.002);
    assert_eq!(v("ringcast_connection_duration_seconds_count", &[]), 4.0);
    assert_eq!(v("ringcast_send_queue_bytes_bucket", &["le='128'"]), 1.0);
    assert_eq!(v("ringcast_send_queue_bytes_bucket", &["le='65536'"]), 1.0);
    assert_eq!(v("ringcast_send_queue_bytes_bucket", &["le='262144'"]), 2.0);
    assert_eq!(v("ringcast_send_queue_bytes_sum", &[]), 100_007.0);
    for (name, _) in expect_types.iter().filter(|(_, t)| *t == "histogram") {
        let buckets: Vec<f64> = p
            .samples
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("{name}_bucket{{")))
            .map(|(_, v)| *v)
            .collect();
        assert!(buckets.len() > 5, "{name}");
        let inf = v(&format!("{name}_bucket"), &["le='+Inf'"]);
        assert_eq!(inf, v(&format!("{name}_count"), &[]), "{name}");
        assert!(buckets.iter().all(|b| *b <= inf), "{name}");
    }

    // promtool's linter too, where it is installed (Debian package `prometheus`).
    if let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(r.body.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // Counting continues between scrapes.
    collector.message_received(1, 64);
    let p2 = python_parse(&get(addr, "/metrics").body);
    assert_eq!(value(&p2, "ringcast_messages_received_total", &[]), 5.0);
    assert_eq!(
        value(&p2, "ringcast_messages_received_bytes_total", &[]),
        100.0
    );

    server.shutdown();
}

#[test]
fn dashboard_page_is_self_contained() {
    let server = MetricsServer::start(local(), scripted()).unwrap();
    let r = get(server.local_addr(), "/");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(r.body.starts_with("<!doctype html>"));
    assert!(r.body.contains("id=\"total-connections\""));
    assert!(r.body.contains("/stats"));
    for external in ["http://", "https://", "<link", "src=", "@import", "url("] {
        assert!(
            !r.body.contains(external),
            "dashboard references {external}"
        );
    }
    assert!(r.body.len() < 32 * 1024, "small page");
    server.shutdown();
}

#[test]
fn stats_websocket_pushes_json() {
    let collector = scripted();
    let options = MetricsServerOptions {
        stats_interval: Duration::from_millis(200),
        ..MetricsServerOptions::default()
    };
    let server = MetricsServer::start_with(local(), Arc::clone(&collector), options).unwrap();
    let addr = server.local_addr();
    let stream = TcpStream::connect_timeout(&addr, TIMEOUT).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let (mut ws, resp) = tungstenite::client::client(format!("ws://{addr}/stats"), stream).unwrap();
    assert_eq!(resp.status(), 101);

    let first = ws.read().unwrap().into_text().unwrap().to_string();
    assert!(first.starts_with('{') && first.ends_with('}'), "{first}");
    assert!(
        first.contains("\"shards\":[2,1],\"connections\":3,"),
        "{first}"
    );
    assert!(first.contains("\"backend\":\"uring\""), "{first}");
    assert!(first.contains("\"drops\":2,"), "{first}");
    assert!(first.contains("\"messages_in\":4,"), "{first}");
    assert!(first.contains("\"messages_out\":5,"), "{first}");

    // New traffic shows up as rates and latency on the following pushes.
    for _ in 0..20 {
        collector.message_received(0, 1);
    }
    collector.connection_opened(0);
    collector.publish_to_write(0, Duration::from_micros(100));
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let msg = ws.read().unwrap().into_text().unwrap().to_string();
        if msg.contains("\"connections\":4,") && msg.contains("\"latency\":{\"count\":1,") {
            assert!(msg.contains("\"messages_in\":24,"), "{msg}");
            assert!(!msg.contains("\"messages_in_per_sec\":0,"), "{msg}");
            assert!(msg.contains("\"mean_us\":100,"), "{msg}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no push with the new totals: {msg}"
        );
    }

    // Shutdown closes the socket with 1001 and returns promptly.
    let started = Instant::now();
    server.shutdown();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let mut code = None;
    while let Ok(msg) = ws.read() {
        if let tungstenite::Message::Close(frame) = msg {
            code = frame.map(|f| u16::from(f.code));
            break;
        }
    }
    assert_eq!(code, Some(1001));
}

#[test]
fn bad_requests_get_proper_statuses() {
    let server = MetricsServer::start(local(), scripted()).unwrap();
    let addr = server.local_addr();
    assert_eq!(get(addr, "/nope").status, 404);
    assert_eq!(get(addr, "/metrics?x=1").status, 200);
    let r = exchange(
        addr,
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET"));
    assert_eq!(get(addr, "/stats").status, 426);
    assert_eq!(exchange(addr, b"\x01\x02 garbage\r\n\r\n").status, 400);
    let huge = format!(
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(9000)
    );
    assert_eq!(exchange(addr, huge.as_bytes()).status, 431);
    server.shutdown();
}

#[test]
fn slow_and_excess_clients_are_bounded() {
    let options = MetricsServerOptions {
        max_clients: 2,
        request_timeout: Duration::from_millis(500),
        ..MetricsServerOptions::default()
    };
    let server = MetricsServer::start_with(local(), scripted(), options).unwrap();
    let addr = server.local_addr();
    // Two clients that never send a request occupy both slots...
    let idle: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect_timeout(&addr, TIMEOUT).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    // ...so the next one is refused with 503 right away.
    let mut third = TcpStream::connect_timeout(&addr, TIMEOUT).unwrap();
    third.set_read_timeout(Some(TIMEOUT)).unwrap();
    let r = read_response(&mut third);
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    // The idle ones time out with 408, freeing the slots.
    for mut s in idle {
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        assert_eq!(read_response(&mut s).status, 408);
    }
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let r = get(addr, "/metrics");
        if r.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "slots never freed: {}", r.status);
        std::thread::sleep(Duration::from_millis(20));
    }
    let started = Instant::now();
    server.shutdown();
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// A scripted session against the real engine: 4 clients in one room, 2 on each of the
/// 2 shards, a 404, 3 messages published to the room (sender included), clean closes;
/// exact counters after each step. The room and each publish are counted once.
#[test]
fn engine_session_counts_exactly() {
    for backend in common::BACKENDS {
        let collector = Arc::new(PrometheusCollector::new(2, "rc", vec![], "test"));
        let server = ringcast::Server::start_with_metrics(
            common::config(backend, 2),
            Arc::new(ringcast::app::Builtin::default()),
            Arc::clone(&collector) as Arc<dyn MetricsCollector>,
        )
        .expect("server starts");
        collector.set_backend(&server.backend().to_string());
        let metrics = MetricsServer::start(local(), Arc::clone(&collector)).unwrap();
        let addr = server.local_addr();

        let spread = common::spread::connect_spread(addr, "/ws/room", &[2, 2]);
        let extras = spread.extras as u64;
        let mut clients: Vec<common::Client> = spread.clients.into_iter().map(|(c, _)| c).collect();
        let shards = [2u64, 2];
        assert!(
            common::poll_until(TIMEOUT, || collector.snapshot().connections_closed
                == extras),
            "{backend:?}: {extras} extra connections closed"
        );
        let rejected = common::raw_exchange(addr, &common::upgrade_request("/nope"));
        assert!(
            rejected.starts_with(b"HTTP/1.1 404"),
            "{backend:?}: {}",
            String::from_utf8_lossy(&rejected)
        );

        for _ in 0..3 {
            clients[0]
                .send(tungstenite::Message::text("hello"))
                .unwrap();
        }
        for c in clients.iter_mut() {
            for _ in 0..3 {
                assert_eq!(c.read().unwrap().into_text().unwrap().as_str(), "hello");
            }
        }
        assert!(common::poll_until(TIMEOUT, || {
            let s = collector.snapshot();
            s.frames_sent >= 12 && s.connections_closed > extras && s.messages_published >= 3
        }));

        let p = python_parse(&get(metrics.local_addr(), "/metrics").body);
        let v = |name: &str, labels: &str| -> f64 {
            let key = format!("rc_{name}{{{labels}}}");
            *p.samples
                .get(&key)
                .unwrap_or_else(|| panic!("{backend:?}: no {key} in {:#?}", p.samples))
        };
        let ctx = format!("{backend:?} shards {shards:?}, {extras} extras");
        assert_eq!(
            v("connections_opened_total", ""),
            5.0 + extras as f64,
            "{ctx}"
        );
        assert_eq!(
            v("connections_active", "shard='0'"),
            shards[0] as f64,
            "{ctx}"
        );
        assert_eq!(
            v("connections_active", "shard='1'"),
            shards[1] as f64,
            "{ctx}"
        );
        assert_eq!(v("handshake_rejected_total", "status='404'"), 1.0, "{ctx}");
        // One room, however many shards hold its members (was 2: once per shard).
        assert_eq!(v("rooms_active", ""), 1.0, "{ctx}");
        assert_eq!(v("messages_received_total", ""), 3.0, "{ctx}");
        assert_eq!(v("messages_received_bytes_total", ""), 15.0, "{ctx}");
        // Each publish once, observed with its 4 recipients on both shards (was 6
        // publishes observed as 6 parts of 2).
        assert_eq!(v("messages_published_total", ""), 3.0, "{ctx}");
        assert_eq!(v("broadcast_fanout_count", ""), 3.0, "{ctx}");
        assert_eq!(v("broadcast_fanout_sum", ""), 12.0, "{ctx}");
        assert_eq!(v("broadcast_fanout_bucket", "le='2'"), 0.0, "{ctx}");
        assert_eq!(v("broadcast_fanout_bucket", "le='5'"), 3.0, "{ctx}");
        // Per shard: one sample per shard delivery, 3 publishes × 2 shards.
        assert_eq!(v("send_queue_bytes_count", ""), 6.0, "{ctx}");
        assert_eq!(v("frames_sent_total", ""), 12.0, "{ctx}");
        // 12 frames of 7 bytes, plus the engine's HTTP responses (101s, the 404), which
        // it reports through the same `frames_sent` hook with 0 frames.
        assert!(v("bytes_sent_total", "") >= 12.0 * 7.0, "{ctx}");
        assert_eq!(
            v("frames_dropped_total", "reason='drop_newest'"),
            0.0,
            "{ctx}"
        );
        assert_eq!(v("panics_total", ""), 0.0, "{ctx}");
        let p2w = v("publish_to_write_seconds_count", "");
        assert!(
            (1.0..=12.0).contains(&p2w),
            "{ctx}: {p2w} publish_to_write samples"
        );

        for mut c in clients {
            c.close(None).unwrap();
            while c.read().is_ok() {}
        }
        assert!(
            common::poll_until(TIMEOUT, || collector.snapshot().connections_closed
                == 5 + extras),
            "{ctx}: {:?}",
            collector.snapshot()
        );
        let s = collector.snapshot();
        assert_eq!(s.connections_active, vec![0, 0], "{ctx}");
        assert_eq!(s.rooms_active, 0, "{ctx}");
        let p = python_parse(&get(metrics.local_addr(), "/metrics").body);
        assert_eq!(
            p.samples["rc_connections_closed_total{reason='normal'}"],
            4.0 + extras as f64,
            "{ctx}"
        );
        assert_eq!(
            p.samples["rc_connection_duration_seconds_count{}"],
            5.0 + extras as f64,
            "{ctx}"
        );

        metrics.shutdown();
        server.shutdown().unwrap();
    }
}

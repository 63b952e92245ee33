//! The metrics HTTP endpoint: `GET /metrics` (Prometheus text), `GET /` (the live
//! dashboard page) and `GET /stats` (a WebSocket pushing a JSON snapshot every second).
//!
//! Plain `std::net` and threads, kept apart from the shards: one accept thread (a
//! non-blocking listener polled every 20 ms, so shutdown needs no wake-up trick) and one
//! thread per client, at most [`MetricsServerOptions::max_clients`] at once (the next
//! gets `503`). Request heads are bounded ([`MAX_HEAD_BYTES`]), reads time out, one
//! request per connection (`Connection: close`). [`MetricsServer::shutdown`] (or drop)
//! stops accepting, closes the stats sockets with 1001 and joins every thread.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tungstenite::{Message, WebSocket};

use super::prometheus::{PrometheusCollector, Snapshot};

/// The largest request head accepted (larger gets `431`).
pub const MAX_HEAD_BYTES: usize = 8 * 1024;

/// The `Content-Type` of `/metrics` (Prometheus text format 0.0.4).
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The dashboard page served at `/`.
pub const DASHBOARD_HTML: &str = include_str!("dashboard.html");

/// How often the accept thread looks for new connections and the stop flag.
const ACCEPT_POLL: Duration = Duration::from_millis(20);
/// Read-timeout slice: how often a client thread looks at the stop flag.
const READ_SLICE: Duration = Duration::from_millis(100);

/// Tunables of [`MetricsServer`].
#[derive(Debug, Clone)]
pub struct MetricsServerOptions {
    /// Clients served at once (stats WebSockets included); the next gets `503`.
    pub max_clients: usize,
    /// Time a client gets to send its whole request head.
    pub request_timeout: Duration,
    /// Time a write may block before the client is dropped.
    pub write_timeout: Duration,
    /// Period of the `/stats` JSON pushes.
    pub stats_interval: Duration,
}

impl Default for MetricsServerOptions {
    fn default() -> Self {
        Self {
            max_clients: 32,
            request_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(5),
            stats_interval: Duration::from_secs(1),
        }
    }
}

/// A running metrics endpoint.
#[derive(Debug)]
pub struct MetricsServer {
    local_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Bind `addr` (port 0 picks one: see [`Self::local_addr`]) and serve `collector`
    /// with the default options.
    pub fn start(addr: SocketAddr, collector: Arc<PrometheusCollector>) -> io::Result<Self> {
        Self::start_with(addr, collector, MetricsServerOptions::default())
    }

    /// [`Self::start`] with explicit options.
    pub fn start_with(
        addr: SocketAddr,
        collector: Arc<PrometheusCollector>,
        options: MetricsServerOptions,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            collector,
            stop: Arc::clone(&stop),
            options,
        });
        let thread = std::thread::Builder::new()
            .name("ringcast-metrics".into())
            .spawn(move || accept_loop(listener, shared))?;
        Ok(Self {
            local_addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stop accepting, end every client (stats sockets get close 1001) and join all
    /// threads. Takes at most about the write timeout (normally ~100 ms).
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

struct Shared {
    collector: Arc<PrometheusCollector>,
    stop: Arc<AtomicBool>,
    options: MetricsServerOptions,
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut clients: Vec<JoinHandle<()>> = Vec::new();
    while !shared.stopping() {
        match listener.accept() {
            Ok((stream, _peer)) => {
                reap(&mut clients);
                if clients.len() >= shared.options.max_clients {
                    reject_busy(stream);
                    continue;
                }
                let shared2 = Arc::clone(&shared);
                let spawned = std::thread::Builder::new()
                    .name("ringcast-metrics-client".into())
                    .spawn(move || serve_client(stream, &shared2));
                match spawned {
                    Ok(handle) => clients.push(handle),
                    Err(e) => tracing::warn!("metrics: cannot spawn a client thread: {e}"),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(ACCEPT_POLL),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                // EMFILE, ECONNABORTED, …: back off and keep serving.
                tracing::debug!("metrics: accept failed: {e}");
                std::thread::sleep(ACCEPT_POLL);
            }
        }
    }
    drop(listener);
    for c in clients {
        let _ = c.join();
    }
}

/// Join the client threads that have finished.
fn reap(clients: &mut Vec<JoinHandle<()>>) {
    let mut i = 0;
    while i < clients.len() {
        if clients[i].is_finished() {
            let _ = clients.swap_remove(i).join();
        } else {
            i += 1;
        }
    }
}

/// Answer `503` without a thread: whatever part of the request already arrived is read
/// first (so closing does not reset the connection under the response), nothing waits.
fn reject_busy(mut stream: TcpStream) {
    let _ = stream.set_nonblocking(true);
    let mut buf = [0u8; 1024];
    let mut drained = 0;
    while drained < MAX_HEAD_BYTES {
        match stream.read(&mut buf) {
            Ok(n) if n > 0 => drained += n,
            _ => break,
        }
    }
    let _ = stream.write_all(&response_bytes(
        503,
        "Service Unavailable",
        "text/plain; charset=utf-8",
        &[("Retry-After", "1")],
        b"too many metrics clients\n",
    ));
    let _ = stream.shutdown(Shutdown::Write);
}

fn response_bytes(
    status: u16,
    reason: &str,
    content_type: &str,
    extra: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in extra {
        head.push_str(k);
        head.push_str(": ");
        head.push_str(v);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

fn respond(
    stream: &mut TcpStream,
    status: u16,
    reason: &str,
    content_type: &str,
    extra: &[(&str, &str)],
    body: &[u8],
) {
    let _ = stream.write_all(&response_bytes(status, reason, content_type, extra, body));
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Write);
}

fn respond_text(stream: &mut TcpStream, status: u16, reason: &str, extra: &[(&str, &str)]) {
    let body = format!("{status} {reason}\n");
    respond(
        stream,
        status,
        reason,
        "text/plain; charset=utf-8",
        extra,
        body.as_bytes(),
    );
}

/// What reading a request head produced.
enum Head {
    /// A complete head of `len` bytes at the start of the buffer.
    Complete(usize),
    /// The client went away, timed out, or the server is stopping: just close.
    Gone,
    /// Answer with this status and close.
    Error(u16, &'static str),
}

fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>, shared: &Shared) -> Head {
    let deadline = Instant::now() + shared.options.request_timeout;
    let mut chunk = [0u8; 2048];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(buf) {
            Ok(httparse::Status::Complete(n)) => return Head::Complete(n),
            Ok(httparse::Status::Partial) => {}
            Err(httparse::Error::TooManyHeaders) => {
                return Head::Error(431, "Request Header Fields Too Large")
            }
            Err(_) => return Head::Error(400, "Bad Request"),
        }
        if buf.len() >= MAX_HEAD_BYTES {
            return Head::Error(431, "Request Header Fields Too Large");
        }
        if shared.stopping() {
            return Head::Gone;
        }
        if Instant::now() >= deadline {
            return Head::Error(408, "Request Timeout");
        }
        let room = (MAX_HEAD_BYTES - buf.len()).min(chunk.len());
        match stream.read(&mut chunk[..room]) {
            Ok(0) => return Head::Gone,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => return Head::Gone,
        }
    }
}

fn header<'h>(headers: &'h [httparse::Header<'_>], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .and_then(|h| std::str::from_utf8(h.value).ok())
        .map(str::trim)
}

fn has_token(value: Option<&str>, token: &str) -> bool {
    value.is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

fn serve_client(mut stream: TcpStream, shared: &Shared) {
    let setup = stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_read_timeout(Some(READ_SLICE)))
        .and_then(|()| stream.set_write_timeout(Some(shared.options.write_timeout)));
    if setup.is_err() {
        return;
    }
    let _ = stream.set_nodelay(true);

    let mut buf = Vec::with_capacity(1024);
    let head_len = match read_head(&mut stream, &mut buf, shared) {
        Head::Complete(n) => n,
        Head::Gone => return,
        Head::Error(status, reason) => return respond_text(&mut stream, status, reason, &[]),
    };
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    if !matches!(req.parse(&buf), Ok(httparse::Status::Complete(_))) {
        return respond_text(&mut stream, 400, "Bad Request", &[]);
    }
    let method = req.method.unwrap_or("");
    let path = req.path.unwrap_or("");
    let path = path.split(['?', '#']).next().unwrap_or("");

    if method != "GET" {
        return respond_text(&mut stream, 405, "Method Not Allowed", &[("Allow", "GET")]);
    }
    match path {
        "/metrics" => {
            let body = shared.collector.render();
            respond(
                &mut stream,
                200,
                "OK",
                METRICS_CONTENT_TYPE,
                &[],
                body.as_bytes(),
            );
        }
        "/" | "/index.html" => respond(
            &mut stream,
            200,
            "OK",
            "text/html; charset=utf-8",
            &[],
            DASHBOARD_HTML.as_bytes(),
        ),
        "/stats" => {
            let upgrade = has_token(header(req.headers, "upgrade"), "websocket")
                && has_token(header(req.headers, "connection"), "upgrade");
            let version_ok = header(req.headers, "sec-websocket-version") == Some("13");
            let key = header(req.headers, "sec-websocket-key").filter(|k| !k.is_empty());
            match (upgrade, version_ok, key) {
                (true, true, Some(key)) => {
                    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
                    let leftover = buf[head_len..].to_vec();
                    let response = format!(
                        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                         Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
                    );
                    if stream.write_all(response.as_bytes()).is_ok() {
                        serve_stats(stream, leftover, shared);
                    }
                }
                (true, _, _) => respond_text(
                    &mut stream,
                    400,
                    "Bad Request",
                    &[("Sec-WebSocket-Version", "13")],
                ),
                _ => respond_text(
                    &mut stream,
                    426,
                    "Upgrade Required",
                    &[("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13")],
                ),
            }
        }
        _ => respond_text(&mut stream, 404, "Not Found", &[]),
    }
}

fn is_timeout(e: &tungstenite::Error) -> bool {
    matches!(e, tungstenite::Error::Io(io) if matches!(
        io.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    ))
}

/// Push a JSON snapshot every `stats_interval` until the peer closes, an error, or stop.
fn serve_stats(stream: TcpStream, leftover: Vec<u8>, shared: &Shared) {
    let config = WebSocketConfig::default()
        .max_message_size(Some(64 * 1024))
        .max_frame_size(Some(64 * 1024));
    let mut ws = WebSocket::from_partially_read(stream, leftover, Role::Server, Some(config));
    let interval = shared.options.stats_interval.max(Duration::from_millis(10));
    let mut prev: Option<(Instant, Snapshot)> = None;
    let mut next_push = Instant::now();
    loop {
        if shared.stopping() {
            let _ = ws.close(Some(CloseFrame {
                code: CloseCode::Away,
                reason: "server shutting down".into(),
            }));
            let _ = ws.flush();
            return;
        }
        let now = Instant::now();
        if now >= next_push {
            let snap = shared.collector.snapshot();
            let json = stats_json(&snap, prev.as_ref().map(|(t, s)| (now - *t, s)));
            if ws.send(Message::text(json)).is_err() {
                return;
            }
            prev = Some((now, snap));
            next_push += interval;
            if next_push < now {
                next_push = now + interval;
            }
        }
        // Waits at most READ_SLICE (the socket's read timeout); answers pings and closes.
        match ws.read() {
            Ok(_) => {
                let _ = ws.flush();
            }
            Err(e) if is_timeout(&e) => {
                let _ = ws.flush();
            }
            Err(_) => return,
        }
    }
}

fn rate(now: u64, before: u64, secs: f64) -> f64 {
    if secs <= 0.0 {
        0.0
    } else {
        now.saturating_sub(before) as f64 / secs
    }
}

fn json_f64(v: f64) -> String {
    if v.is_finite() {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        "null".to_owned()
    }
}

fn json_opt(v: Option<f64>) -> String {
    v.map_or_else(|| "null".to_owned(), json_f64)
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The JSON pushed on `/stats`. `prev` is the previous push (time since, snapshot): rates
/// and latency are over that interval (0 / null on the first push).
///
/// ```text
/// {"time_ms":…,"version":"0.1.0","backend":"uring",
///  "shards":[25,25],"connections":50,"opened":…,"closed":…,"rooms":…,
///  "messages_in":…,"messages_in_per_sec":…,"bytes_in_per_sec":…,
///  "messages_out":…,"messages_out_per_sec":…,"bytes_out_per_sec":…,
///  "published":…,"published_per_sec":…,"drops":…,"drops_per_sec":…,
///  "handshake_rejected":…,"panics":…,"pong_timeouts":…,
///  "latency":{"count":…,"mean_us":…,"p50_us":…,"p99_us":…}}
/// ```
pub fn stats_json(snap: &Snapshot, prev: Option<(Duration, &Snapshot)>) -> String {
    let time_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let (secs, p) = match prev {
        Some((dt, p)) => (dt.as_secs_f64(), p),
        None => (0.0, snap),
    };
    let lat = snap.publish_to_write.since(&p.publish_to_write);
    let us = |ns: Option<f64>| ns.map(|v| v / 1_000.0);
    let shards: Vec<String> = snap.connections_active.iter().map(u64::to_string).collect();
    format!(
        concat!(
            "{{\"time_ms\":{},\"version\":{},\"backend\":{},",
            "\"shards\":[{}],\"connections\":{},\"opened\":{},\"closed\":{},\"rooms\":{},",
            "\"messages_in\":{},\"messages_in_per_sec\":{},\"bytes_in_per_sec\":{},",
            "\"messages_out\":{},\"messages_out_per_sec\":{},\"bytes_out_per_sec\":{},",
            "\"published\":{},\"published_per_sec\":{},\"drops\":{},\"drops_per_sec\":{},",
            "\"handshake_rejected\":{},\"panics\":{},\"pong_timeouts\":{},",
            "\"latency\":{{\"count\":{},\"mean_us\":{},\"p50_us\":{},\"p99_us\":{}}}}}"
        ),
        time_ms,
        json_string(env!("CARGO_PKG_VERSION")),
        json_string(&snap.backend),
        shards.join(","),
        snap.connections_total(),
        snap.connections_opened,
        snap.connections_closed,
        snap.rooms_active,
        snap.messages_received,
        json_f64(rate(snap.messages_received, p.messages_received, secs)),
        json_f64(rate(
            snap.messages_received_bytes,
            p.messages_received_bytes,
            secs
        )),
        snap.frames_sent,
        json_f64(rate(snap.frames_sent, p.frames_sent, secs)),
        json_f64(rate(snap.bytes_sent, p.bytes_sent, secs)),
        snap.messages_published,
        json_f64(rate(snap.messages_published, p.messages_published, secs)),
        snap.frames_dropped,
        json_f64(rate(snap.frames_dropped, p.frames_dropped, secs)),
        snap.handshake_rejected,
        snap.panics,
        snap.pong_timeouts,
        lat.count(),
        json_opt(us(lat.mean())),
        json_opt(us(lat.quantile(0.5))),
        json_opt(us(lat.quantile(0.99))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::MetricsCollector;

    #[test]
    fn responses_are_well_formed() {
        let r = response_bytes(404, "Not Found", "text/plain", &[("Allow", "GET")], b"x");
        let s = String::from_utf8(r).unwrap();
        assert!(s.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(s.contains("Content-Length: 1\r\n"));
        assert!(s.contains("Allow: GET\r\n"));
        assert!(s.ends_with("\r\n\r\nx"));
    }

    #[test]
    fn header_tokens() {
        assert!(has_token(Some("keep-alive, Upgrade"), "upgrade"));
        assert!(!has_token(Some("keep-alive"), "upgrade"));
        assert!(!has_token(None, "upgrade"));
    }

    #[test]
    fn stats_json_rates_and_latency() {
        let c = PrometheusCollector::new(2, "ringcast", vec![], "epoll");
        c.connection_opened(0);
        c.connection_opened(1);
        c.connection_opened(1);
        let first = c.snapshot();
        let j = stats_json(&first, None);
        assert!(j.contains("\"shards\":[1,2],\"connections\":3,"), "{j}");
        assert!(j.contains("\"messages_in_per_sec\":0,"), "{j}");
        assert!(j.contains("\"backend\":\"epoll\""), "{j}");
        assert!(
            j.contains("\"latency\":{\"count\":0,\"mean_us\":null"),
            "{j}"
        );
        for _ in 0..10 {
            c.message_received(0, 5);
        }
        c.frame_dropped(1, crate::metrics::DropReason::QueueFullOldest);
        c.publish_to_write(0, Duration::from_micros(30));
        c.publish_to_write(1, Duration::from_micros(50));
        let second = c.snapshot();
        let j = stats_json(&second, Some((Duration::from_secs(2), &first)));
        assert!(
            j.contains("\"messages_in\":10,\"messages_in_per_sec\":5,"),
            "{j}"
        );
        assert!(j.contains("\"bytes_in_per_sec\":25,"), "{j}");
        assert!(j.contains("\"drops\":1,\"drops_per_sec\":0.5,"), "{j}");
        assert!(
            j.contains("\"latency\":{\"count\":2,\"mean_us\":40,"),
            "{j}"
        );
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }
}

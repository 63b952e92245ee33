//! Shared helpers for the end-to-end tests: start a server on an ephemeral port with a
//! chosen backend, connect real clients (tungstenite, and raw TCP for malformed
//! input), spread over 127.0.0.x source addresses, and poll until a condition holds.

#![allow(dead_code)]

pub mod cluster;
pub mod deflate;
pub mod process;
pub mod recorder;
pub mod redis;
pub mod session;
pub mod spread;
pub mod sse;
#[cfg(feature = "tls")]
pub mod tls;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use ringcast::app::Builtin;
use ringcast::{BackendChoice, Config, Handler, RunningServer, Server};
use socket2::{Domain, Socket, Type};
use tungstenite::handshake::client::Response;
use tungstenite::protocol::WebSocket;

pub type Client = WebSocket<TcpStream>;

/// Every end-to-end test runs against both backends.
pub const BACKENDS: [BackendChoice; 2] = [BackendChoice::Uring, BackendChoice::Epoll];

pub const TIMEOUT: Duration = Duration::from_secs(10);

pub fn config(backend: BackendChoice, threads: usize) -> Config {
    Config {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        threads,
        backend,
        pin_threads: false,
        ..Config::default()
    }
}

pub fn start(backend: BackendChoice, threads: usize) -> RunningServer {
    start_with(config(backend, threads), Builtin::default())
}

pub fn start_with(cfg: Config, handler: impl Handler) -> RunningServer {
    ringcast::sys::raise_nofile_limit(None).expect("raise RLIMIT_NOFILE");
    Server::start(cfg, handler).expect("server starts")
}

/// Start the built-in apps with a recording metrics collector.
pub fn start_recorded(
    cfg: Config,
    handler: impl Handler,
) -> (RunningServer, std::sync::Arc<recorder::Recorder>) {
    ringcast::sys::raise_nofile_limit(None).expect("raise RLIMIT_NOFILE");
    let rec = std::sync::Arc::new(recorder::Recorder::default());
    let server = Server::start_with_metrics(cfg, std::sync::Arc::new(handler), rec.clone())
        .expect("server starts");
    (server, rec)
}

/// Source address number `i` in 127.0.0.1..=127.0.0.250.
pub fn source_ip(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (i % 250) as u8))
}

/// A TCP connection from `src` (port chosen by the kernel).
pub fn tcp_from(addr: SocketAddr, src: IpAddr) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::new(src, 0).into()).unwrap();
    socket.connect_timeout(&addr.into(), TIMEOUT).unwrap();
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// Open a WebSocket to `path` from source address `src`.
pub fn connect_from(addr: SocketAddr, path: &str, src: IpAddr) -> (Client, Response) {
    let stream = tcp_from(addr, src);
    let url = format!("ws://{addr}{path}");
    tungstenite::client::client(url, stream).expect("websocket handshake")
}

pub fn connect(addr: SocketAddr, path: &str) -> Client {
    connect_from(addr, path, source_ip(0)).0
}

/// The shard that accepted the connection (from the `x-ringcast-shard` response header).
pub fn shard_of(response: &Response) -> usize {
    response
        .headers()
        .get(ringcast::shard::SHARD_HEADER)
        .expect("shard header")
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Poll `cond` every millisecond until it holds or `timeout` passes.
pub fn poll_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    cond()
}

/// Write raw bytes and read until the peer closes (or the timeout): returns what came.
pub fn raw_exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut s = tcp_from(addr, source_ip(0));
    s.write_all(request).unwrap();
    read_to_close(&mut s)
}

pub fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return out,
            Err(e) => panic!("read failed after {} bytes: {e}", out.len()),
        }
    }
}

/// A valid upgrade request head for `path`.
pub fn upgrade_request(path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

/// Open a raw socket, complete the upgrade, return the stream positioned after the 101.
pub fn raw_upgraded(addr: SocketAddr, path: &str) -> TcpStream {
    raw_upgraded_from(addr, path, source_ip(0))
}

/// [`raw_upgraded`] from the source address `src` (churn tests spread over 127.0.0.x).
pub fn raw_upgraded_from(addr: SocketAddr, path: &str, src: IpAddr) -> TcpStream {
    let mut s = tcp_from(addr, src);
    s.write_all(&upgrade_request(path)).unwrap();
    let head = read_head(&mut s);
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s
}

/// Read a response head through its `\r\n\r\n` and nothing past it (frames may
/// follow in the same segment): peek what arrived, consume only up to the end of the
/// head.
pub fn read_head(s: &mut TcpStream) -> Vec<u8> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.ends_with(b"\r\n\r\n") {
        let n = s.peek(&mut buf).unwrap();
        assert!(n > 0, "closed during handshake");
        let start = head.len();
        head.extend_from_slice(&buf[..n]);
        // The end may straddle what was read before: search from 3 bytes back.
        let from = start.saturating_sub(3);
        let take = match head[from..].windows(4).position(|w| w == b"\r\n\r\n") {
            Some(i) => from + i + 4 - start,
            None => n,
        };
        head.truncate(start + take);
        s.read_exact(&mut buf[..take]).unwrap();
    }
    head
}

/// Parse the server frames in `bytes` as (opcode, payload) pairs (server frames are unmasked).
pub fn parse_frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while bytes.len() >= 2 {
        let opcode = bytes[0] & 0x0F;
        let (len, hdr) = match bytes[1] & 0x7F {
            126 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
            127 => (
                u64::from_be_bytes(bytes[2..10].try_into().unwrap()) as usize,
                10,
            ),
            n => (n as usize, 2),
        };
        frames.push((opcode, bytes[hdr..hdr + len].to_vec()));
        bytes = &bytes[hdr + len..];
    }
    frames
}

/// The close code of the first close frame in `bytes`.
pub fn close_code(bytes: &[u8]) -> Option<u16> {
    parse_frames(bytes)
        .into_iter()
        .find(|(op, _)| *op == 8)
        .and_then(|(_, p)| (p.len() >= 2).then(|| u16::from_be_bytes([p[0], p[1]])))
}

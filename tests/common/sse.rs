//! A small Server-Sent Events client for the tests, over any byte stream (TCP or TLS):
//! sends `GET /sse/…`, reads the response head (httparse), then the chunked body one
//! chunk at a time (each chunk is one event, a heartbeat, the `retry:` chunk or the last
//! chunk) and parses events per the HTML Living Standard §9.2.6 rules the server uses.

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;

use super::{source_ip, tcp_from};

/// One parsed event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: Option<u64>,
    /// The `event:` field (`None`: the default `message`).
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// What one chunk carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunk {
    Event(Event),
    Retry(u64),
    Heartbeat,
}

/// An SSE client on stream `S`.
pub struct SseClient<S: Read + Write> {
    pub stream: S,
    buf: Vec<u8>,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The last chunk (`0\r\n\r\n`) arrived.
    pub ended: bool,
}

/// The request head for `path` with extra header lines (each ending in `\r\n`).
pub fn sse_request(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n{extra}\r\n")
}

/// Open `path` over TCP from source address number `src`.
pub fn sse_connect(
    addr: SocketAddr,
    path: &str,
    extra: &str,
    src: usize,
) -> SseClient<std::net::TcpStream> {
    SseClient::open(tcp_from(addr, source_ip(src)), &sse_request(path, extra))
}

impl<S: Read + Write> SseClient<S> {
    /// Send `request` and read the response head.
    pub fn open(mut stream: S, request: &str) -> Self {
        stream.write_all(request.as_bytes()).unwrap();
        stream.flush().unwrap();
        let mut c = SseClient {
            stream,
            buf: Vec::new(),
            status: 0,
            headers: Vec::new(),
            ended: false,
        };
        c.read_head();
        c
    }

    fn fill(&mut self) -> bool {
        let mut tmp = [0u8; 16384];
        match self.stream.read(&mut tmp) {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                true
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => false,
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => false,
            Err(e) => panic!("sse read failed: {e}"),
        }
    }

    fn read_head(&mut self) {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut r = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(n) = r.parse(&self.buf).unwrap() {
                self.status = r.code.unwrap();
                self.headers = r
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_ascii_lowercase(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect();
                self.buf.drain(..n);
                return;
            }
            assert!(self.fill(), "eof before the response head");
        }
    }

    /// The first header named `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The next chunk's bytes; `None` after the last chunk or at EOF (then `ended`
    /// says which).
    pub fn next_raw(&mut self) -> Option<Vec<u8>> {
        if self.ended {
            return None;
        }
        loop {
            if let Some(crlf) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let size = std::str::from_utf8(&self.buf[..crlf]).unwrap();
                let len = usize::from_str_radix(size, 16).expect("chunk size");
                if self.buf.len() >= crlf + 2 + len + 2 {
                    let body = self.buf[crlf + 2..crlf + 2 + len].to_vec();
                    assert_eq!(&self.buf[crlf + 2 + len..crlf + 4 + len], b"\r\n");
                    self.buf.drain(..crlf + 4 + len);
                    if len == 0 {
                        self.ended = true;
                        return None;
                    }
                    return Some(body);
                }
            }
            if !self.fill() {
                return None;
            }
        }
    }

    /// The next chunk, parsed.
    pub fn next_chunk(&mut self) -> Option<Chunk> {
        self.next_raw().map(|raw| parse_chunk(&raw))
    }

    /// The next event, skipping `retry:` and heartbeats.
    pub fn next_event(&mut self) -> Option<Event> {
        loop {
            match self.next_chunk()? {
                Chunk::Event(e) => return Some(e),
                Chunk::Retry(_) | Chunk::Heartbeat => {}
            }
        }
    }

    /// Read until the server closes; true when the last chunk came first.
    pub fn read_to_end(&mut self) -> bool {
        while self.next_raw().is_some() {}
        let clean = self.ended;
        // After the last chunk the server closes: nothing else may come.
        if clean {
            while self.fill() {}
            assert!(self.buf.is_empty(), "bytes after the last chunk");
        }
        clean
    }
}

/// Parse one chunk's bytes (exactly one event, comment or retry, ending in a blank line).
pub fn parse_chunk(raw: &[u8]) -> Chunk {
    let text = std::str::from_utf8(raw).expect("utf-8 event");
    assert!(
        text.ends_with("\n\n"),
        "one whole event per chunk: {text:?}"
    );
    let body = &text[..text.len() - 1];
    if body == ":\n" {
        return Chunk::Heartbeat;
    }
    if let Some(ms) = body.strip_prefix("retry: ") {
        return Chunk::Retry(ms.trim_end().parse().unwrap());
    }
    let mut e = Event {
        id: None,
        event: None,
        data: String::new(),
    };
    let mut lines = Vec::new();
    for line in body.lines() {
        let (field, value) = line.split_once(": ").unwrap_or((line, ""));
        match field {
            "id" => e.id = Some(value.parse().unwrap()),
            "event" => e.event = Some(value.to_owned()),
            "data" => lines.push(value),
            other => panic!("unexpected field {other:?} in {text:?}"),
        }
    }
    e.data = lines.join("\n");
    Chunk::Event(e)
}

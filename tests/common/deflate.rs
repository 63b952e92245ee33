//! A raw-socket WebSocket client that can offer permessage-deflate (tungstenite cannot):
//! it sends the offer, keeps the server's `Sec-WebSocket-Extensions` answer, reads
//! frames with their RSV1 bit and inflates compressed ones, and sends masked frames,
//! compressed or not. The codec is the crate's own; the interop tests check it against
//! other implementations.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};

use ringcast::proto::deflate::{compress, Inflater};
use ringcast::proto::frame::{encode_masked_frame, Opcode};

use super::tcp_from;

/// One frame as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub opcode: u8,
    /// RSV1: the payload was compressed on the wire.
    pub rsv1: bool,
    /// Bytes of the frame on the wire (header included).
    pub wire_len: usize,
    /// The payload, inflated when `rsv1`.
    pub payload: Vec<u8>,
}

pub struct DeflateClient {
    pub stream: TcpStream,
    /// The server's `Sec-WebSocket-Extensions` answer, if any.
    pub extensions: Option<String>,
    /// The whole 101 head.
    pub head: String,
    inflater: Inflater,
}

impl DeflateClient {
    /// Upgrade on `path` from `src`, offering `offer` (a `Sec-WebSocket-Extensions`
    /// value) when given. Panics unless the answer is a 101.
    pub fn connect(addr: SocketAddr, path: &str, offer: Option<&str>, src: IpAddr) -> Self {
        let mut stream = tcp_from(addr, src);
        let extensions = offer
            .map(|o| format!("Sec-WebSocket-Extensions: {o}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extensions}\r\n"
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(
                stream.read(&mut byte).unwrap(),
                1,
                "closed during handshake"
            );
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        let extensions = head.lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("sec-websocket-extensions")
                .then(|| value.trim().to_owned())
        });
        DeflateClient {
            stream,
            extensions,
            head,
            inflater: Inflater::new(),
        }
    }

    /// The shard that accepted it (`x-ringcast-shard`).
    pub fn shard(&self) -> usize {
        self.head
            .lines()
            .find_map(|l| l.strip_prefix("x-ringcast-shard: "))
            .expect("shard header")
            .trim()
            .parse()
            .unwrap()
    }

    /// Read one whole frame (server frames are never fragmented here), inflating it
    /// when RSV1 is set (the server never takes context over: a fresh stream each time).
    pub fn read(&mut self) -> Received {
        let mut h = [0u8; 2];
        self.stream.read_exact(&mut h).unwrap();
        assert_eq!(h[0] & 0x30, 0, "RSV2/RSV3 never set");
        assert_eq!(h[1] & 0x80, 0, "server frames are unmasked");
        let (len, ext) = match h[1] & 0x7f {
            126 => {
                let mut b = [0u8; 2];
                self.stream.read_exact(&mut b).unwrap();
                (u16::from_be_bytes(b) as usize, 2)
            }
            127 => {
                let mut b = [0u8; 8];
                self.stream.read_exact(&mut b).unwrap();
                (u64::from_be_bytes(b) as usize, 8)
            }
            n => (n as usize, 0),
        };
        let mut payload = vec![0u8; len];
        self.stream.read_exact(&mut payload).unwrap();
        let rsv1 = h[0] & 0x40 != 0;
        if rsv1 {
            payload = self
                .inflater
                .inflate(&payload, 64 << 20, false)
                .expect("a valid compressed message");
        }
        Received {
            opcode: h[0] & 0x0f,
            rsv1,
            wire_len: 2 + ext + len,
            payload,
        }
    }

    /// Send one message, compressed (RSV1, each message on its own) or not.
    pub fn send(&mut self, opcode: Opcode, payload: &[u8], compressed: bool) {
        let frame = if compressed {
            let mut f = encode_masked_frame(true, opcode, &compress(&[payload]), [1, 2, 3, 4]);
            f[0] |= 0x40;
            f
        } else {
            encode_masked_frame(true, opcode, payload, [1, 2, 3, 4])
        };
        self.stream.write_all(&frame).unwrap();
    }

    /// Send raw bytes (already framed and masked).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }
}

/// A JSON-like text payload of `n` bytes (what fan-out traffic mostly carries).
pub fn json_payload(n: usize, seed: usize) -> String {
    let mut s = String::with_capacity(n + 80);
    let mut i = seed;
    while s.len() < n {
        s.push_str(&format!(
            r#"{{"id":{i},"type":"trade","symbol":"SYM{}","price":{}.{:02},"qty":{}}},"#,
            i % 13,
            100 + i % 50,
            i % 100,
            i % 1000
        ));
        i += 1;
    }
    s.truncate(n);
    s
}

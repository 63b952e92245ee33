//! Minimal client-side WebSocket codec (RFC 6455) used by every workload.
//!
//! The load generator must never be the bottleneck, so this codec is deliberately tiny:
//! it builds the HTTP upgrade request, checks the `101` answer (including
//! `Sec-WebSocket-Accept`), appends masked client frames to an output buffer, and parses
//! unmasked server frames *in place* from a caller-owned byte slice. Parsing never
//! allocates: [`parse_frame`] returns a [`Frame`] borrowing the payload from the slice,
//! and the caller advances by [`Frame::consumed`].

use base64::Engine as _;
use sha1::{Digest, Sha1};

/// The GUID that RFC 6455 appends to the client key before hashing.
const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Largest HTTP response head we accept before giving up on a handshake.
pub const MAX_HANDSHAKE_RESPONSE: usize = 8 * 1024;

/// Continuation frame opcode.
pub const OP_CONT: u8 = 0x0;
/// Text frame opcode.
pub const OP_TEXT: u8 = 0x1;
/// Binary frame opcode.
pub const OP_BINARY: u8 = 0x2;
/// Close frame opcode.
pub const OP_CLOSE: u8 = 0x8;
/// Ping frame opcode.
pub const OP_PING: u8 = 0x9;
/// Pong frame opcode.
pub const OP_PONG: u8 = 0xA;

/// Maximum encoded header size of a server (unmasked) frame.
pub const MAX_SERVER_HEADER: usize = 10;
/// Maximum encoded header size of a client (masked) frame.
pub const MAX_CLIENT_HEADER: usize = 14;

/// A 16-byte client key: the raw random bytes and their base64 form (24 ASCII bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandshakeKey {
    /// Base64 of 16 random bytes, as sent in `Sec-WebSocket-Key`.
    pub key: [u8; 24],
}

impl HandshakeKey {
    /// Builds a key from 16 random bytes.
    pub fn from_random(raw: [u8; 16]) -> Self {
        let mut key = [0u8; 24];
        let n = base64::engine::general_purpose::STANDARD
            .encode_slice(raw, &mut key)
            .expect("16 bytes always encode to 24");
        debug_assert_eq!(n, 24);
        HandshakeKey { key }
    }

    /// The key as a string.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.key).expect("base64 is ASCII")
    }

    /// The `Sec-WebSocket-Accept` value the server must answer with (28 ASCII bytes).
    pub fn expected_accept(&self) -> [u8; 28] {
        accept_for(self.as_str())
    }
}

/// Computes `base64(sha1(key + GUID))` for a `Sec-WebSocket-Key`.
pub fn accept_for(key: &str) -> [u8; 28] {
    let mut h = Sha1::new();
    h.update(key.as_bytes());
    h.update(WS_GUID.as_bytes());
    let digest = h.finalize();
    let mut out = [0u8; 28];
    base64::engine::general_purpose::STANDARD
        .encode_slice(digest, &mut out)
        .expect("20 bytes always encode to 28");
    out
}

/// Appends the HTTP/1.1 upgrade request for `host` and `path` to `out`.
pub fn write_upgrade_request(out: &mut Vec<u8>, host: &str, path: &str, key: &HandshakeKey) {
    use std::io::Write as _;
    let _ = write!(
        out,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n\r\n",
        key.as_str()
    );
}

/// Why an upgrade response was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// The response head exceeded [`MAX_HANDSHAKE_RESPONSE`].
    TooLarge,
    /// The status line was not `HTTP/1.x 101`; carries the status line.
    BadStatus(String),
    /// `Sec-WebSocket-Accept` was missing or wrong.
    BadAccept,
    /// The response was not parseable HTTP.
    Malformed,
    /// SSE (`fanout --transport sse`): a `200` that is not a chunked event stream; names
    /// the header at fault (`Content-Type` or `Transfer-Encoding`).
    NotEventStream(&'static str),
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandshakeError::TooLarge => write!(f, "upgrade response head too large"),
            HandshakeError::BadStatus(s) => write!(f, "upgrade refused: {s}"),
            HandshakeError::BadAccept => write!(f, "wrong or missing Sec-WebSocket-Accept"),
            HandshakeError::Malformed => write!(f, "malformed upgrade response"),
            HandshakeError::NotEventStream(h) => {
                write!(f, "not a chunked text/event-stream response (check {h})")
            }
        }
    }
}

/// Checks an upgrade response in `buf`.
///
/// Returns `Ok(None)` if the head is not complete yet, `Ok(Some(n))` with the length of
/// the head (bytes after it are the first WebSocket frames) when the upgrade succeeded.
pub fn parse_upgrade_response(
    buf: &[u8],
    expected_accept: &[u8; 28],
) -> Result<Option<usize>, HandshakeError> {
    let Some(end) = find_head_end(buf) else {
        if buf.len() > MAX_HANDSHAKE_RESPONSE {
            return Err(HandshakeError::TooLarge);
        }
        return Ok(None);
    };
    let head = &buf[..end - 4];
    let mut lines = head.split(|&b| b == b'\n').map(trim_cr);
    let status = lines.next().ok_or(HandshakeError::Malformed)?;
    let mut parts = status.split(|&b| b == b' ').filter(|p| !p.is_empty());
    let version = parts.next().ok_or(HandshakeError::Malformed)?;
    let code = parts.next().ok_or(HandshakeError::Malformed)?;
    if !version.starts_with(b"HTTP/1.") {
        return Err(HandshakeError::Malformed);
    }
    if code != b"101" {
        return Err(HandshakeError::BadStatus(
            String::from_utf8_lossy(status).into_owned(),
        ));
    }
    let mut accept_ok = false;
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], trim_ws(&line[colon + 1..]));
        if name.eq_ignore_ascii_case(b"sec-websocket-accept") {
            accept_ok = value == expected_accept;
        }
    }
    if !accept_ok {
        return Err(HandshakeError::BadAccept);
    }
    Ok(Some(end))
}

pub(crate) fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

pub(crate) fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

pub(crate) fn trim_ws(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Appends one masked client frame (FIN set) to `out`.
pub fn encode_client_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    let len = payload.len();
    out.push(0x80 | (opcode & 0x0F));
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= u16::MAX as usize {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], mask);
}

/// XORs `data` with the repeating 4-byte `mask` (masking and unmasking are the same).
pub fn apply_mask(data: &mut [u8], mask: [u8; 4]) {
    let word = u32::from_ne_bytes(mask);
    let mut chunks = data.chunks_exact_mut(4);
    for c in &mut chunks {
        let v = u32::from_ne_bytes([c[0], c[1], c[2], c[3]]) ^ word;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i];
    }
}

/// A server frame parsed in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// FIN bit.
    pub fin: bool,
    /// Opcode (low 4 bits of the first byte).
    pub opcode: u8,
    /// Payload, borrowed from the input buffer.
    pub payload: &'a [u8],
    /// Bytes of input this frame occupies (header + payload).
    pub consumed: usize,
    /// RSV1: a permessage-deflate compressed message (see [`parse_frame_ext`]).
    pub compressed: bool,
}

/// Why a server frame was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The server masked its frame (forbidden by RFC 6455 §5.1).
    Masked,
    /// Reserved bits set without a negotiated extension.
    ReservedBits,
    /// Unknown opcode.
    BadOpcode(u8),
    /// Control frame longer than 125 bytes or fragmented.
    BadControl,
    /// Payload longer than the configured maximum.
    TooLarge(u64),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Masked => write!(f, "server frame is masked"),
            FrameError::ReservedBits => write!(f, "reserved bits set"),
            FrameError::BadOpcode(o) => write!(f, "unknown opcode {o:#x}"),
            FrameError::BadControl => write!(f, "invalid control frame"),
            FrameError::TooLarge(n) => write!(f, "frame payload of {n} bytes exceeds the limit"),
        }
    }
}

/// Parses one server frame from the start of `buf`.
///
/// Returns `Ok(None)` when `buf` holds only part of a frame (the caller keeps the bytes and
/// reads more); `max_payload` bounds what a frame may announce, so a broken server cannot
/// make the caller buffer without limit.
pub fn parse_frame(buf: &[u8], max_payload: usize) -> Result<Option<Frame<'_>>, FrameError> {
    parse_frame_ext(buf, max_payload, false)
}

/// [`parse_frame`], with RSV1 allowed on text and binary frames when `deflate` (the
/// connection offered permessage-deflate, RFC 7692 §6): such a frame is `compressed`.
pub fn parse_frame_ext(
    buf: &[u8],
    max_payload: usize,
    deflate: bool,
) -> Result<Option<Frame<'_>>, FrameError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let b0 = buf[0];
    let b1 = buf[1];
    let compressed = deflate && b0 & 0x40 != 0 && matches!(b0 & 0x0F, OP_TEXT | OP_BINARY);
    if b0 & 0x70 != 0 && !compressed || b0 & 0x30 != 0 {
        return Err(FrameError::ReservedBits);
    }
    if b1 & 0x80 != 0 {
        return Err(FrameError::Masked);
    }
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0F;
    match opcode {
        OP_CONT | OP_TEXT | OP_BINARY => {}
        OP_CLOSE | OP_PING | OP_PONG => {
            if !fin || (b1 & 0x7F) > 125 {
                return Err(FrameError::BadControl);
            }
        }
        other => return Err(FrameError::BadOpcode(other)),
    }
    let (len, hdr) = match b1 & 0x7F {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            (u16::from_be_bytes([buf[2], buf[3]]) as u64, 4)
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(b), 10)
        }
        n => (n as u64, 2),
    };
    if len > max_payload as u64 {
        return Err(FrameError::TooLarge(len));
    }
    let total = hdr + len as usize;
    if buf.len() < total {
        return Ok(None);
    }
    Ok(Some(Frame {
        fin,
        opcode,
        payload: &buf[hdr..total],
        consumed: total,
        compressed,
    }))
}

/// Encodes an unmasked server frame (used by tests and by anyone simulating a server).
pub fn encode_server_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    let len = payload.len();
    out.push(0x80 | (opcode & 0x0F));
    if len < 126 {
        out.push(len as u8);
    } else if len <= u16::MAX as usize {
        out.push(126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(payload);
}

/// Builds a close frame payload: 2-byte status code, no reason.
pub fn close_payload(code: u16) -> [u8; 2] {
    code.to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_example_accept() {
        // RFC 6455 §1.3 example.
        let acc = accept_for("dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(&acc, b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn key_roundtrip() {
        let k = HandshakeKey::from_random(*b"the sample nonce");
        assert_eq!(k.as_str(), "dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(&k.expected_accept(), b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn upgrade_request_shape() {
        let k = HandshakeKey::from_random([7; 16]);
        let mut out = Vec::new();
        write_upgrade_request(&mut out, "127.0.0.1:9001", "/ws/bench", &k);
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("GET /ws/bench HTTP/1.1\r\n"));
        assert!(s.contains("Host: 127.0.0.1:9001\r\n"));
        assert!(s.contains(&format!("Sec-WebSocket-Key: {}\r\n", k.as_str())));
        assert!(s.ends_with("\r\n\r\n"));
    }

    fn response(accept: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             sec-websocket-accept:  {accept} \r\n\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn upgrade_response_ok_partial_and_trailing_frames() {
        let k = HandshakeKey::from_random(*b"the sample nonce");
        let exp = k.expected_accept();
        let mut r = response("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        let head = r.len();
        for cut in 0..head {
            assert_eq!(
                parse_upgrade_response(&r[..cut], &exp),
                Ok(None),
                "cut {cut}"
            );
        }
        encode_server_frame(&mut r, OP_BINARY, b"hi");
        assert_eq!(parse_upgrade_response(&r, &exp), Ok(Some(head)));
        let f = parse_frame(&r[head..], 1024).unwrap().unwrap();
        assert_eq!(f.payload, b"hi");
    }

    #[test]
    fn upgrade_response_rejections() {
        let k = HandshakeKey::from_random(*b"the sample nonce");
        let exp = k.expected_accept();
        assert_eq!(
            parse_upgrade_response(&response("AAAAAAAAAAAAAAAAAAAAAAAAAAA="), &exp),
            Err(HandshakeError::BadAccept)
        );
        let r = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        assert!(matches!(
            parse_upgrade_response(r, &exp),
            Err(HandshakeError::BadStatus(s)) if s.contains("404")
        ));
        let r = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
        assert_eq!(
            parse_upgrade_response(r, &exp),
            Err(HandshakeError::BadAccept)
        );
        let big = vec![b'x'; MAX_HANDSHAKE_RESPONSE + 1];
        assert_eq!(
            parse_upgrade_response(&big, &exp),
            Err(HandshakeError::TooLarge)
        );
        assert_eq!(
            parse_upgrade_response(b"garbage\r\n\r\n", &exp),
            Err(HandshakeError::Malformed)
        );
    }

    /// Decodes a masked client frame (what a server would do) for round-trip tests.
    fn decode_client(buf: &[u8]) -> (u8, Vec<u8>, usize) {
        assert_eq!(buf[0] & 0x80, 0x80, "FIN");
        assert_eq!(buf[1] & 0x80, 0x80, "client frames must be masked");
        let (len, mut p) = match buf[1] & 0x7F {
            126 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
            127 => (
                u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize,
                10,
            ),
            n => (n as usize, 2),
        };
        let mask: [u8; 4] = buf[p..p + 4].try_into().unwrap();
        p += 4;
        let mut data = buf[p..p + len].to_vec();
        apply_mask(&mut data, mask);
        (buf[0] & 0x0F, data, p + len)
    }

    #[test]
    fn client_frames_roundtrip_all_length_forms() {
        for len in [0usize, 1, 3, 4, 5, 125, 126, 127, 1000, 65535, 65536, 70000] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let mut out = Vec::new();
            encode_client_frame(&mut out, OP_BINARY, &payload, [0xde, 0xad, 0xbe, 0xef]);
            let (op, data, used) = decode_client(&out);
            assert_eq!(op, OP_BINARY);
            assert_eq!(used, out.len());
            assert_eq!(data, payload, "len {len}");
            assert!(out.len() <= payload.len() + MAX_CLIENT_HEADER);
        }
    }

    #[test]
    fn server_frames_parse_in_place_all_length_forms() {
        for len in [0usize, 1, 125, 126, 65535, 65536, 100_000] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut buf = Vec::new();
            encode_server_frame(&mut buf, OP_BINARY, &payload);
            encode_server_frame(&mut buf, OP_PING, b"p");
            // Every strict prefix of the first frame is incomplete.
            let first = buf.len() - 3;
            for cut in [0, 1, 2, 3, first / 2, first - 1]
                .into_iter()
                .filter(|&c| c < first)
            {
                assert_eq!(parse_frame(&buf[..cut], 1 << 20), Ok(None), "cut {cut}");
            }
            let f = parse_frame(&buf, 1 << 20).unwrap().unwrap();
            assert!(f.fin);
            assert_eq!(f.opcode, OP_BINARY);
            assert_eq!(f.payload, &payload[..]);
            assert_eq!(f.consumed, first);
            // The payload is borrowed from the buffer, not copied.
            assert_eq!(f.payload.as_ptr(), buf[first - len..].as_ptr());
            let g = parse_frame(&buf[f.consumed..], 1 << 20).unwrap().unwrap();
            assert_eq!((g.opcode, g.payload), (OP_PING, &b"p"[..]));
        }
    }

    #[test]
    fn server_frame_errors() {
        assert_eq!(
            parse_frame(&[0x82, 0x81, 0, 0, 0, 0, 0], 10),
            Err(FrameError::Masked)
        );
        assert_eq!(
            parse_frame(&[0xC2, 0x00], 10),
            Err(FrameError::ReservedBits)
        );
        assert_eq!(
            parse_frame(&[0x83, 0x00], 10),
            Err(FrameError::BadOpcode(3))
        );
        assert_eq!(parse_frame(&[0x09, 0x00], 10), Err(FrameError::BadControl));
        assert_eq!(
            parse_frame(&[0x89, 126, 0, 200], 1000),
            Err(FrameError::BadControl)
        );
        assert_eq!(
            parse_frame(&[0x82, 126, 0x10, 0x00], 100),
            Err(FrameError::TooLarge(4096))
        );
    }

    #[test]
    fn mask_is_involution_and_matches_bytewise() {
        let mask = [1, 2, 3, 4];
        let orig: Vec<u8> = (0..37).collect();
        let mut d = orig.clone();
        apply_mask(&mut d, mask);
        for (i, (a, b)) in d.iter().zip(&orig).enumerate() {
            assert_eq!(*a, b ^ mask[i % 4]);
        }
        apply_mask(&mut d, mask);
        assert_eq!(d, orig);
    }
}

//! The HTTP/1.1 upgrade handshake (RFC 6455 §4.2): parsing the client's
//! request head with `httparse` and building the 101 / error responses.
//!
//! Choices where the RFC leaves room:
//! - a method other than GET → 405, and `reject_response` adds `Allow: GET`;
//! - HTTP/1.0 → 400;
//! - a missing/wrong `Upgrade: websocket` or `Connection: upgrade` → 400
//!   (§4.2.2 only demands "an appropriate error code (such as 400)"; 426 is
//!   reserved for the version mismatch, where §4.4 asks for it explicitly);
//! - `Sec-WebSocket-Version` missing or not exactly `13` → 426, and
//!   `reject_response` adds `Sec-WebSocket-Version: 13`;
//! - `Sec-WebSocket-Key` / `-Version` sent more than once → 400 (§11.3.1 and
//!   §11.3.5 say they MUST NOT appear more than once);
//! - the key must be canonical base64 of exactly 16 bytes (24 characters
//!   ending in "==", unused low bits zero) → else 400;
//! - more than 64 headers, or a head longer than `max_head` → 431.
//!
//! Only the head is parsed: bytes after the blank line belong to the caller
//! (frames may follow in the same read).

use tungstenite::handshake::derive_accept_key;

/// Most headers a request may carry.
pub const MAX_HEADERS: usize = 64;

/// A validated upgrade request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeRequest {
    /// Path part of the request target, without the query.
    pub path: String,
    /// Everything after the first '?', raw.
    pub query: Option<String>,
    /// `Sec-WebSocket-Key` as sent (surrounding whitespace trimmed).
    pub key: String,
    pub origin: Option<String>,
    /// All headers, names lower-cased, values as sent (lossy UTF-8).
    pub headers: Vec<(String, String)>,
}

impl UpgradeRequest {
    /// The first header with this (lower-case) name.
    pub fn header(&self, lower_name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(name, _)| name == lower_name)
            .map(|(_, value)| value.as_str())
    }
}

/// Result of parsing a (possibly incomplete) request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadParse {
    /// No complete head yet; read more.
    Partial,
    /// The head is complete and valid; it is `head_len` bytes long.
    Complete {
        request: UpgradeRequest,
        head_len: usize,
    },
}

/// Why a handshake is refused: the HTTP status and a short reason for the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub reason: &'static str,
}

const fn reject(status: u16, reason: &'static str) -> Rejection {
    Rejection { status, reason }
}

/// Parse the request head at the start of `buf`.
///
/// `Partial` while there is no complete head yet and `buf.len() <= max_head`;
/// 431 once the head exceeds `max_head` (whether or not it is complete, so
/// the outcome does not depend on how the bytes were split into reads).
pub fn parse_upgrade(buf: &[u8], max_head: usize) -> Result<HeadParse, Rejection> {
    let window = buf.get(..max_head).unwrap_or(buf);
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(window) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > max_head => {
            return Err(reject(431, "request header fields too large"));
        }
        Ok(httparse::Status::Partial) => return Ok(HeadParse::Partial),
        Err(httparse::Error::TooManyHeaders) => return Err(reject(431, "too many headers")),
        Err(_) => return Err(reject(400, "malformed http request")),
    };

    if req.method != Some("GET") {
        return Err(reject(405, "method must be GET"));
    }
    if req.version != Some(1) {
        return Err(reject(400, "http/1.1 or later required"));
    }
    let headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).trim().to_owned(),
            )
        })
        .collect();
    let all = |name: &'static str| {
        headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };

    if all("host").next().is_none() {
        return Err(reject(400, "missing host"));
    }
    if !all("upgrade").any(|v| has_token(v, "websocket")) {
        return Err(reject(400, "missing upgrade: websocket"));
    }
    if !all("connection").any(|v| has_token(v, "upgrade")) {
        return Err(reject(400, "missing connection: upgrade"));
    }
    let mut versions = all("sec-websocket-version");
    match (versions.next(), versions.next()) {
        (Some("13"), None) => {}
        (Some(_), Some(_)) => return Err(reject(400, "duplicate sec-websocket-version")),
        _ => return Err(reject(426, "unsupported websocket version")),
    }
    let mut keys = all("sec-websocket-key");
    let key = match (keys.next(), keys.next()) {
        (Some(key), None) if is_valid_key(key) => key.to_owned(),
        (Some(_), Some(_)) => return Err(reject(400, "duplicate sec-websocket-key")),
        (Some(_), None) => return Err(reject(400, "invalid sec-websocket-key")),
        (None, _) => return Err(reject(400, "missing sec-websocket-key")),
    };
    let origin = all("origin").next().map(str::to_owned);

    let target = req.path.unwrap_or("/");
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path.to_owned(), Some(query.to_owned())),
        None => (target.to_owned(), None),
    };
    let request = UpgradeRequest {
        path,
        query,
        key,
        origin,
        headers,
    };
    Ok(HeadParse::Complete { request, head_len })
}

/// Whether a comma-separated header value contains `token` (ASCII
/// case-insensitive, surrounding whitespace ignored).
fn has_token(value: &str, token: &str) -> bool {
    value
        .split(',')
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Canonical base64 of exactly 16 bytes: 22 alphabet characters, the last of
/// which carries 2 data bits (so its low 4 bits are zero), then "==".
fn is_valid_key(key: &str) -> bool {
    let bytes = key.as_bytes();
    let [data @ .., b'=', b'='] = bytes else {
        return false;
    };
    let Some((&last, _)) = data.split_last() else {
        return false;
    };
    data.len() == 22
        && data.iter().all(|&c| base64_value(c).is_some())
        && base64_value(last).is_some_and(|v| v & 0x0F == 0)
}

fn base64_value(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

fn push_header(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push_str(": ");
    out.push_str(value);
    out.push_str("\r\n");
}

/// The 101 response accepting `key`, with `extra_headers` (trusted, written
/// as given) before the blank line.
pub fn accept_response(key: &str, extra_headers: &[(&str, &str)]) -> Vec<u8> {
    let mut out = String::with_capacity(160);
    out.push_str("HTTP/1.1 101 Switching Protocols\r\n");
    push_header(&mut out, "Upgrade", "websocket");
    push_header(&mut out, "Connection", "Upgrade");
    push_header(
        &mut out,
        "Sec-WebSocket-Accept",
        &derive_accept_key(key.as_bytes()),
    );
    for (name, value) in extra_headers {
        push_header(&mut out, name, value);
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// The standard reason phrase for `status` (a class-generic one for codes
/// not listed).
fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => match status / 100 {
            4 => "Client Error",
            5 => "Server Error",
            _ => "Unknown",
        },
    }
}

/// An error response that closes the connection; the body is `reason` plus a
/// newline. 426 always carries `Sec-WebSocket-Version: 13`, 405 `Allow: GET` and
/// 401 `WWW-Authenticate: Bearer realm="ringcast"` (RFC 9110 §15.5.2 requires a
/// challenge; the rooms app's tokens are bearer tokens, RFC 6750), unless
/// `extra_headers` already sets them.
pub fn reject_response(status: u16, reason: &str, extra_headers: &[(&str, &str)]) -> Vec<u8> {
    let has_extra = |name: &str| {
        extra_headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    let body_len = reason.len() + 1;
    let mut out = String::with_capacity(160 + body_len);
    out.push_str("HTTP/1.1 ");
    out.push_str(&status.to_string());
    out.push(' ');
    out.push_str(reason_phrase(status));
    out.push_str("\r\n");
    push_header(&mut out, "Content-Type", "text/plain");
    push_header(&mut out, "Content-Length", &body_len.to_string());
    push_header(&mut out, "Connection", "close");
    if status == 426 && !has_extra("sec-websocket-version") {
        push_header(&mut out, "Sec-WebSocket-Version", "13");
    }
    if status == 405 && !has_extra("allow") {
        push_header(&mut out, "Allow", "GET");
    }
    if status == 401 && !has_extra("www-authenticate") {
        push_header(&mut out, "WWW-Authenticate", "Bearer realm=\"ringcast\"");
    }
    for (name, value) in extra_headers {
        push_header(&mut out, name, value);
    }
    out.push_str("\r\n");
    out.push_str(reason);
    out.push('\n');
    out.into_bytes()
}

#[cfg(test)]
mod tests;

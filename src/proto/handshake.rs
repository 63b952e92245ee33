//! The HTTP/1.1 upgrade handshake (RFC 6455 §4.2, RFC 9110, RFC 9112): parsing the
//! client's request head with `httparse`, checking it as a whole against the rules
//! below, and building the 101 / error responses.
//!
//! The rules, in the order they are checked (the first that fails answers; the README's
//! "Limits" section carries the same table):
//! - the head is at most `max_head` bytes: else 414 while the request line is still
//!   unfinished (RFC 9112 §3), 431 after it (RFC 6585 §5); more than [`MAX_HEADERS`]
//!   field lines → 431;
//! - `httparse` syntax (request line `method SP target SP HTTP/1.x`, field names are
//!   tokens, no whitespace before the colon or obs-fold (RFC 9112 §5.1, §5.2), no
//!   control characters in values) → else 400; a version other than 1.x → 505 (this
//!   covers the HTTP/2 prior-knowledge preface `PRI * HTTP/2.0`); HTTP/1.2 and later
//!   minors are read as 1.1 (RFC 9112 §2.3);
//! - every line ends in CRLF: a bare LF → 400 (RFC 9112 §2.2 allows either choice);
//! - the method is `GET` (case-sensitive) → else 405, with `Allow: GET`;
//! - the version is HTTP/1.1 or later → else 400 (RFC 6455 §4.1; RFC 9110 §7.8 makes an
//!   HTTP/1.0 server ignore `Upgrade`);
//! - the request-target (RFC 9112 §3.2) is in origin-form (`/path?query`) or
//!   absolute-form with scheme `http`, `https`, `ws` or `wss` in any case
//!   (`http://host:port/path?query`, which RFC 9112 §3.2.2 says a server MUST accept;
//!   routed on its path, its authority wins over `Host`); asterisk-form, authority-form
//!   or any other scheme → 400; a fragment (`#`), a `%` not followed by two hex digits in
//!   the path, or userinfo in the authority (RFC 9110 §4.2.4) → 400;
//! - `Host`, `Sec-WebSocket-Key`, `Sec-WebSocket-Version`, `Origin` and `Authorization`
//!   are singletons: a second field line → 400 (RFC 9112 §3.2, RFC 6455 §11.3.1 and
//!   §11.3.5, RFC 6454 §7, RFC 9110 §5.3);
//! - `Host` present, and `uri-host [":" port]` (RFC 9110 §7.2, RFC 3986 §3.2.2) with a
//!   non-empty host → else 400 (RFC 9112 §3.2), even when an absolute-form target's
//!   authority replaces it;
//! - no body on the upgrade: `Transfer-Encoding`, or `Content-Length` other than `0` →
//!   400 (RFC 9110 §9.3.1: a body on a GET has no meaning; the bytes after the head are
//!   frames);
//! - `Upgrade` lists `websocket` and `Connection` lists `upgrade` (comma-separated
//!   token lists over all field lines, any case, optional whitespace, empty elements
//!   allowed, RFC 9110 §5.6.1) → else 400 (RFC 6455 §4.2.1);
//! - `Sec-WebSocket-Version` is exactly `13` → else (missing too) 426, with
//!   `Upgrade: websocket`, `Connection: upgrade, close` and `Sec-WebSocket-Version: 13`
//!   (RFC 6455 §4.4, RFC 9110 §15.5.22 and §7.8);
//! - `Sec-WebSocket-Key` is present and canonical base64 of exactly 16 bytes (24
//!   characters ending in "==", unused low bits zero) → else 400 (RFC 6455 §4.1).
//!
//! Every rejection is a complete HTTP/1.1 response with `Content-Type: text/plain`,
//! `Content-Length`, `Connection: close` and a one-line body ([`reject_response`]).
//!
//! The request's path is normalized (RFC 3986 §6.2.2): percent-encoded unreserved
//! characters decoded, the hex digits of the other percent-encodings upper-cased, raw
//! non-ASCII bytes percent-encoded (RFC 3987 §3.1) and dot-segments removed (RFC 3986
//! §5.2.4), so equivalent spellings route alike. The query is kept raw.
//!
//! Only the head is parsed: bytes after the blank line belong to the caller (frames may
//! follow in the same read). The answer depends only on the first `max_head` bytes, never
//! on how they were split into reads.

use tungstenite::handshake::derive_accept_key;

/// Most header field lines a request may carry (more → 431).
pub const MAX_HEADERS: usize = 64;

/// A validated upgrade request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeRequest {
    /// Path of the request target, without the query, normalized (RFC 3986 §6.2.2:
    /// `/%65cho` and `/a/../echo` are `/echo`); always starts with `/`. Room segments
    /// are decoded by [`crate::wire::room_name::from_path_segment`].
    pub path: String,
    /// Everything after the first '?', raw (not percent-decoded).
    pub query: Option<String>,
    /// The target's authority, `host[:port]` as sent: from an absolute-form target, else
    /// the `Host` field (RFC 9112 §3.2.2).
    pub authority: String,
    /// `Sec-WebSocket-Key` as sent (surrounding whitespace trimmed).
    pub key: String,
    /// `Origin`, when sent (at most one field line).
    pub origin: Option<String>,
    /// All headers, names lower-cased, values as sent without surrounding whitespace
    /// (lossy UTF-8).
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

/// Parse and check the request head at the start of `buf` (the rules in the module doc).
///
/// `Partial` while there is no complete head yet and `buf.len() <= max_head`; 414/431
/// once the head exceeds `max_head` (whether or not it is complete, so the outcome does
/// not depend on how the bytes were split into reads).
///
/// # Errors
/// The [`Rejection`] (status and reason) to answer with.
pub fn parse_upgrade(buf: &[u8], max_head: usize) -> Result<HeadParse, Rejection> {
    let window = buf.get(..max_head).unwrap_or(buf);
    parse_window(window, buf.len() > max_head)
}

/// [`parse_upgrade`] on the first `max_head` bytes; `overflow`: more bytes follow them.
fn parse_window(window: &[u8], overflow: bool) -> Result<HeadParse, Rejection> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(window) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if overflow => {
            return Err(if request_line_end(window).is_none() {
                reject(414, "request-target too long")
            } else {
                reject(431, "request header fields too large")
            });
        }
        Ok(httparse::Status::Partial) => return Ok(HeadParse::Partial),
        Err(httparse::Error::TooManyHeaders) => return Err(reject(431, "too many headers")),
        Err(httparse::Error::Version) => return unsupported_version(window, overflow),
        Err(_) => return Err(reject(400, "malformed http request")),
    };
    if has_bare_lf(&window[..head_len]) {
        return Err(reject(400, "bare lf: lines must end in crlf"));
    }
    if req.method != Some("GET") {
        return Err(reject(405, "method must be GET"));
    }
    if req.version != Some(1) {
        return Err(reject(400, "http/1.1 or later required"));
    }
    let target = parse_target(req.path.unwrap_or(""))?;

    let fields = Fields::gather(req.headers);
    for (field, reason) in [
        (&fields.host, "duplicate host"),
        (&fields.key, "duplicate sec-websocket-key"),
        (&fields.version, "duplicate sec-websocket-version"),
        (&fields.origin, "duplicate origin"),
        (&fields.authorization, "duplicate authorization"),
    ] {
        if field.repeated {
            return Err(reject(400, reason));
        }
    }
    let host = fields.host.first.ok_or(reject(400, "missing host"))?;
    let host = std::str::from_utf8(host)
        .ok()
        .filter(|h| is_valid_authority(h))
        .ok_or(reject(400, "invalid host"))?;
    if fields.body {
        return Err(reject(400, "a get upgrade carries no body"));
    }
    if !fields.upgrade_websocket {
        return Err(reject(400, "missing upgrade: websocket"));
    }
    if !fields.connection_upgrade {
        return Err(reject(400, "missing connection: upgrade"));
    }
    if fields.version.first != Some(b"13") {
        return Err(reject(426, "unsupported websocket version"));
    }
    let key = match fields.key.first.map(std::str::from_utf8) {
        Some(Ok(key)) if is_valid_key(key) => key.to_owned(),
        Some(_) => return Err(reject(400, "invalid sec-websocket-key")),
        None => return Err(reject(400, "missing sec-websocket-key")),
    };
    let origin = fields
        .origin
        .first
        .map(|o| String::from_utf8_lossy(o).into_owned());
    let authority = target.authority.unwrap_or(host).to_owned();
    let headers = req
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(trim_ows(h.value)).into_owned(),
            )
        })
        .collect();
    let request = UpgradeRequest {
        path: target.path,
        query: target.query.map(str::to_owned),
        authority,
        key,
        origin,
        headers,
    };
    Ok(HeadParse::Complete { request, head_len })
}

/// A field that may appear on one field line only: its first value, and whether a
/// second line came.
#[derive(Default)]
struct Singleton<'a> {
    first: Option<&'a [u8]>,
    repeated: bool,
}

impl<'a> Singleton<'a> {
    fn add(&mut self, value: &'a [u8]) {
        if self.first.is_some() {
            self.repeated = true;
        } else {
            self.first = Some(value);
        }
    }
}

/// What the checks need from the field lines, gathered in one pass over them (values
/// without surrounding whitespace).
#[derive(Default)]
struct Fields<'a> {
    host: Singleton<'a>,
    key: Singleton<'a>,
    version: Singleton<'a>,
    origin: Singleton<'a>,
    authorization: Singleton<'a>,
    /// `Transfer-Encoding`, or a `Content-Length` other than `0`.
    body: bool,
    /// Some `Upgrade` line lists `websocket`.
    upgrade_websocket: bool,
    /// Some `Connection` line lists `upgrade`.
    connection_upgrade: bool,
}

impl<'a> Fields<'a> {
    fn gather(headers: &[httparse::Header<'a>]) -> Fields<'a> {
        let mut f = Fields::default();
        for h in headers {
            let value = trim_ows(h.value);
            let is = |name: &str| h.name.eq_ignore_ascii_case(name);
            if is("host") {
                f.host.add(value);
            } else if is("upgrade") {
                f.upgrade_websocket |= has_token(value, b"websocket");
            } else if is("connection") {
                f.connection_upgrade |= has_token(value, b"upgrade");
            } else if is("sec-websocket-key") {
                f.key.add(value);
            } else if is("sec-websocket-version") {
                f.version.add(value);
            } else if is("origin") {
                f.origin.add(value);
            } else if is("authorization") {
                f.authorization.add(value);
            } else if is("transfer-encoding") {
                f.body = true;
            } else if is("content-length") {
                f.body |= value != b"0";
            }
        }
        f
    }
}

/// Whether a head `httparse` completed has an LF without a CR before it. There a CR
/// only ever comes right before an LF (httparse refuses it anywhere else), so a bare LF
/// shows as more LFs than CRs (counted in `u8` lanes per 255-byte chunk, which vectorizes).
fn has_bare_lf(head: &[u8]) -> bool {
    let count = |byte: u8| -> usize {
        head.chunks(255)
            .map(|chunk| usize::from(chunk.iter().map(|&b| u8::from(b == byte)).sum::<u8>()))
            .sum()
    };
    count(b'\n') != count(b'\r')
}

/// Where the request line ends (the index of its line feed; `None` while none has
/// arrived), after the empty lines RFC 9112 §2.2 lets a server skip.
fn request_line_end(window: &[u8]) -> Option<usize> {
    let start = window
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(window.len());
    window[start..]
        .iter()
        .position(|&b| b == b'\n')
        .map(|n| start + n)
}

/// The answer to a request line `httparse` refused for its version: 505 for a major
/// version other than 1 (`HTTP/2.0`, `HTTP/0.9`), a re-parse as HTTP/1.1 for `HTTP/1.x`
/// with x ≥ 2 (RFC 9112 §2.3), else 400. Decided from the version's own bytes only.
fn unsupported_version(window: &[u8], overflow: bool) -> Result<HeadParse, Rejection> {
    let malformed = Err(reject(400, "malformed http version"));
    let start = window
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(window.len());
    let line = &window[start..];
    let mut spaces = line.iter().enumerate().filter(|(_, &b)| b == b' ');
    let Some((at, _)) = spaces.nth(1) else {
        return malformed;
    };
    let version_at = start + at + 1;
    let version = &window[version_at..];
    let Some(rest) = version.strip_prefix(b"HTTP/") else {
        return malformed;
    };
    match rest {
        [major, ..] if major.is_ascii_digit() && *major != b'1' => {
            Err(reject(505, "http version not supported"))
        }
        [b'1', b'.', minor, ..] if minor.is_ascii_digit() && *minor >= b'2' => {
            let mut copy = window.to_vec();
            copy[version_at + 7] = b'1';
            parse_window(&copy, overflow)
        }
        _ => malformed,
    }
}

/// A request-target split for routing.
struct Target<'a> {
    path: String,
    query: Option<&'a str>,
    /// From an absolute-form target.
    authority: Option<&'a str>,
}

/// Check the request-target's form (RFC 9112 §3.2) and split it; the path comes back
/// normalized ([`normalize_path`]).
fn parse_target(target: &str) -> Result<Target<'_>, Rejection> {
    if target.contains('#') {
        return Err(reject(400, "fragment in request-target"));
    }
    let (authority, path_and_query) = if target.starts_with('/') {
        (None, target)
    } else if target == "*" {
        return Err(reject(400, "asterisk-form is for OPTIONS only"));
    } else if let Some((scheme, rest)) = target.split_once("://").filter(|(s, _)| is_scheme(s)) {
        if !["http", "https", "ws", "wss"]
            .iter()
            .any(|s| scheme.eq_ignore_ascii_case(s))
        {
            return Err(reject(400, "unsupported scheme in request-target"));
        }
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let authority = &rest[..end];
        if authority.contains('@') {
            return Err(reject(400, "userinfo in request-target"));
        }
        if !is_valid_authority(authority) {
            return Err(reject(400, "invalid authority in request-target"));
        }
        (Some(authority), &rest[end..])
    } else {
        return Err(reject(400, "invalid request-target form"));
    };
    let (path, query) = match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_and_query, None),
    };
    // Absolute-form with an empty path: "/" (RFC 9112 §3.2.1 for the origin-form).
    let path = if path.is_empty() { "/" } else { path };
    let path = normalize_path(path).ok_or(reject(400, "invalid percent-encoding in path"))?;
    Ok(Target {
        path,
        query,
        authority,
    })
}

/// `scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )` (RFC 3986 §3.1).
fn is_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
}

/// RFC 3986 §6.2.2 normalization of a path starting with `/`: `%XX` of an unreserved
/// character decoded, other `%XX` upper-cased, raw non-ASCII bytes percent-encoded
/// (RFC 3987 §3.1), then dot-segments removed (§5.2.4). `None` for a `%` not followed
/// by two hex digits.
fn normalize_path(path: &str) -> Option<String> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let bytes = path.as_bytes();
    if !bytes.iter().any(|&b| b == b'%' || b == b'.' || b >= 0x80) {
        return Some(path.to_owned()); // already normal
    }
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex_value)?;
            let lo = bytes.get(i + 2).copied().and_then(hex_value)?;
            let decoded = (hi << 4) | lo;
            if is_unreserved(decoded) {
                out.push(char::from(decoded));
            } else {
                out.push('%');
                out.push(char::from(HEX[usize::from(hi)]));
                out.push(char::from(HEX[usize::from(lo)]));
            }
            i += 3;
        } else if b >= 0x80 {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0F)]));
            i += 1;
        } else {
            out.push(char::from(b));
            i += 1;
        }
    }
    Some(remove_dot_segments(&out))
}

/// `unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~"` (RFC 3986 §2.3).
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~".contains(&b)
}

/// RFC 3986 §5.2.4 for an absolute path: `.` segments dropped, `..` drops the segment
/// before it (never above the root); a trailing `.` or `..` leaves a trailing `/`.
fn remove_dot_segments(path: &str) -> String {
    if !path.split('/').any(|s| s == "." || s == "..") {
        return path.to_owned();
    }
    let mut segments: Vec<&str> = Vec::new();
    let mut parts = path.split('/').skip(1).peekable();
    while let Some(segment) = parts.next() {
        let last = parts.peek().is_none();
        match segment {
            "." | ".." => {
                if segment == ".." {
                    segments.pop();
                }
                if last {
                    segments.push("");
                }
            }
            s => segments.push(s),
        }
    }
    format!("/{}", segments.join("/"))
}

/// `uri-host [ ":" port ]` with a non-empty host (RFC 9110 §4.2.1, §7.2; RFC 3986
/// §3.2.2, §3.2.3): an IP-literal (`[` IPv6 `]`), or a reg-name of unreserved,
/// sub-delims and `%XX` (which covers IPv4); the port is digits (possibly none).
fn is_valid_authority(authority: &str) -> bool {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let Some((literal, after)) = rest.split_once(']') else {
            return false;
        };
        if literal.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match after.strip_prefix(':') {
            Some(port) => ("[v6]", Some(port)),
            None if after.is_empty() => ("[v6]", None),
            None => return false,
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let reg_name_ok = host == "[v6]" || is_reg_name(host);
    let port_ok = port.is_none_or(|p| {
        p.bytes().all(|b| b.is_ascii_digit()) && (p.is_empty() || p.parse::<u16>().is_ok())
    });
    !host.is_empty() && reg_name_ok && port_ok
}

/// `reg-name = *( unreserved / pct-encoded / sub-delims )` (RFC 3986 §3.2.2).
fn is_reg_name(host: &str) -> bool {
    let bytes = host.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            if !(bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
            {
                return false;
            }
            i += 3;
            continue;
        }
        if !(is_unreserved(b) || b"!$&'()*+,;=".contains(&b)) {
            return false;
        }
        i += 1;
    }
    true
}

/// `value` without leading and trailing optional whitespace (SP, HTAB; RFC 9110 §5.6.3).
fn trim_ows(value: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !is_ows(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |e| e + 1);
    &value[start..end]
}

/// Whether a comma-separated list value contains `token` (ASCII case-insensitive,
/// optional whitespace around elements, empty elements ignored; RFC 9110 §5.6.1).
fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| trim_ows(t).eq_ignore_ascii_case(token))
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
        505 => "HTTP Version Not Supported",
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

/// An error response that closes the connection: status line, `Content-Type:
/// text/plain`, `Content-Length`, `Connection: close`, then `extra_headers` (trusted,
/// written as given); the body is `reason` plus a newline.
///
/// Added unless `extra_headers` already sets them: on 426, `Upgrade: websocket`,
/// `Sec-WebSocket-Version: 13` (RFC 6455 §4.4) and the `upgrade` connection option
/// next to `close` (`Connection: upgrade, close`; RFC 9110 §15.5.22 and §7.8); on 405,
/// `Allow: GET` (RFC 9110 §15.5.6); on 401, `WWW-Authenticate: Bearer
/// realm="ringcast"` (RFC 9110 §15.5.2 requires a challenge; the rooms app's tokens are
/// bearer tokens, RFC 6750).
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
    if status == 426 {
        push_header(&mut out, "Connection", "upgrade, close");
        if !has_extra("upgrade") {
            push_header(&mut out, "Upgrade", "websocket");
        }
        if !has_extra("sec-websocket-version") {
            push_header(&mut out, "Sec-WebSocket-Version", "13");
        }
    } else {
        push_header(&mut out, "Connection", "close");
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

/// The value of one hexadecimal digit, either case (RFC 3986 §2.1 percent-encoding).
pub(crate) fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests;

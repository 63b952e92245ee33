//! The HTTP/1.1 upgrade handshake (RFC 6455 §4.2, RFC 9110, RFC 9112): the rules a
//! request head classified as an upgrade ([`super::request::parse_request`]) is checked
//! against as a whole (the shared head rules are in [`super::head`]), and the 101 /
//! error responses.
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
//! - the method is `GET` (case-sensitive) and an `Upgrade` field lists `websocket`, or
//!   the head is a plain request ([`super::request`]) that the shard routes; a route
//!   serving only upgrades answers it [`super::request::PlainRequest::upgrade_refusal`]:
//!   405 with `Allow: GET` for another method, else the first failing rule below;
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

pub(crate) use super::head::hex_value;
use super::head::{find_header, owned_headers, parse_target, reject, Fields};
pub use super::head::{Rejection, MAX_HEADERS};

/// How a connection carries messages to its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Transport {
    /// A WebSocket (RFC 6455): both directions.
    #[default]
    WebSocket,
    /// Server-Sent Events (`GET /sse/{room}`, [`super::sse`]): server to client only.
    Sse,
}

impl Transport {
    /// The metrics label: `ws` or `sse`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::WebSocket => "ws",
            Transport::Sse => "sse",
        }
    }
}

/// A request that opens a connection, as the handler sees it: a validated WebSocket
/// upgrade, or (`transport` [`Transport::Sse`]) an event-stream `GET` routed to SSE,
/// whose `key` is empty.
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
    /// WebSocket, or SSE for a `GET /sse/…` event stream.
    pub transport: Transport,
}

impl UpgradeRequest {
    /// The first header with this (lower-case) name.
    pub fn header(&self, lower_name: &str) -> Option<&str> {
        find_header(&self.headers, lower_name)
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

/// The upgrade-specific rules (the module doc's list, from the version on) for a head
/// [`super::request`] classified as an upgrade (`GET` with `Upgrade: websocket`): `req` is
/// the parsed head, `fields` its gathered field lines.
///
/// # Errors
/// The [`Rejection`] (status and reason) to answer with.
pub(crate) fn check_upgrade(
    req: &httparse::Request<'_, '_>,
    fields: &Fields<'_>,
) -> Result<UpgradeRequest, Rejection> {
    if req.version != Some(1) {
        return Err(reject(400, "http/1.1 or later required"));
    }
    let target = parse_target(req.path.unwrap_or(""))?;
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
    let host = fields.checked_host()?;
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
    Ok(UpgradeRequest {
        path: target.path,
        query: target.query.map(str::to_owned),
        authority,
        key,
        origin,
        headers: owned_headers(req.headers),
        transport: Transport::WebSocket,
    })
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

#[cfg(test)]
mod tests;

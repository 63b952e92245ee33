//! The request classifier: reads an HTTP/1.1 request head (with `httparse`), checks the
//! rules every head obeys ([`super::head`]: size limits, syntax, CRLF line ends,
//! versions, target forms, singletons, `Host`), and says what the request is — a
//! WebSocket upgrade ([`Request::Upgrade`], checked further by
//! `handshake::check_upgrade`) or a plain HTTP request ([`Request::Plain`]:
//! method, target, headers and the framing of its body, RFC 9112 §6.3). Sans-IO.
//!
//! A request is an upgrade when its method is `GET` and an `Upgrade` field lists
//! `websocket` (RFC 6455 §4.2.1); every other request is plain, and what it gets is the
//! router's decision (the shard's): [`PlainRequest::upgrade_refusal`] is the answer the
//! upgrade path gives it (405 for a method other than `GET`, 400 for a `GET` without
//! `Upgrade: websocket`, …), for the routes that serve only WebSockets.
//!
//! The rules for a plain request, in order (the first that fails answers):
//! - the head rules shared with the upgrade (the list in [`super::handshake`]'s module
//!   doc: 414/431 over `max_head`, 400 for syntax and bare LF, 505 for a major version
//!   other than 1, 400 for a bad request-target);
//! - `Host`, `Origin` and `Authorization` are singletons (→ 400), and `Host` is present
//!   (on HTTP/1.1: a 1.0 request may omit it) and valid (→ 400; RFC 9112 §3.2);
//! - body framing (RFC 9112 §6.1–§6.3): `Transfer-Encoding` together with
//!   `Content-Length` → 400 (§6.1 lets a server reject it; it is how requests are
//!   smuggled); `Transfer-Encoding` on HTTP/1.0 → 400 (§6.1); a final coding other than
//!   `chunked` → 400 (§6.3 item 4); codings before `chunked` (which we do not
//!   implement) → 501 (§6.1); `Content-Length` values that are not all the same decimal
//!   number → 400 (§6.3 item 5). No `Transfer-Encoding` or `Content-Length`: no body
//!   (§6.3 item 7).

use super::handshake::{check_upgrade, HeadParse, Transport, UpgradeRequest};
use super::head::{
    find_header, has_bare_lf, owned_headers, parse_target, reject, request_line_end,
    unsupported_version, Fields, Rejection, MAX_HEADERS,
};

/// What a complete request head asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// A valid WebSocket upgrade (RFC 6455 §4.2.1).
    Upgrade(UpgradeRequest),
    /// Any other request that passed the head rules.
    Plain(PlainRequest),
}

/// How the body after a plain request's head is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body: neither `Transfer-Encoding` nor `Content-Length` (§6.3 item 7).
    None,
    /// Exactly this many bytes follow the head (`Content-Length`, §6.3 item 6; may be 0).
    Length(u64),
    /// The chunked transfer coding (RFC 9112 §7.1) delimits the body.
    Chunked,
}

/// A plain (non-upgrade) request that passed the head rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainRequest {
    /// The method as sent (case-sensitive, RFC 9110 §9.1).
    pub method: String,
    /// The minor HTTP/1 version: 0 or 1 (later minors read as 1, RFC 9112 §2.3).
    pub minor_version: u8,
    /// Path of the request target, without the query, normalized as for upgrades
    /// ([`UpgradeRequest::path`]); always starts with `/`.
    pub path: String,
    /// Everything after the first '?', raw (not percent-decoded).
    pub query: Option<String>,
    /// The target's authority (absolute-form) or else the `Host` field.
    pub authority: String,
    /// `Origin`, when sent (at most one field line).
    pub origin: Option<String>,
    /// All headers, names lower-cased, values as sent without surrounding whitespace
    /// (lossy UTF-8).
    pub headers: Vec<(String, String)>,
    /// How its body is delimited.
    pub body: BodyFraming,
    /// What the upgrade path answers this request (see the module doc).
    upgrade_refusal: Rejection,
}

impl PlainRequest {
    /// The first header with this (lower-case) name.
    pub fn header(&self, lower_name: &str) -> Option<&str> {
        find_header(&self.headers, lower_name)
    }

    /// True when a body follows the head (chunked, or a non-zero `Content-Length`).
    pub fn has_body(&self) -> bool {
        !matches!(self.body, BodyFraming::None | BodyFraming::Length(0))
    }

    /// The answer of a route that serves only WebSocket upgrades: what
    /// [`parse_upgrade`] returns for this head (405 with `Allow: GET` for another
    /// method; 400 for HTTP/1.0, a body, or a missing `Upgrade: websocket`).
    pub fn upgrade_refusal(&self) -> &Rejection {
        &self.upgrade_refusal
    }

    /// This request as the opening of an SSE connection, for the handler: the same
    /// target and headers, an empty `key`, transport [`Transport::Sse`].
    pub fn to_sse(&self) -> UpgradeRequest {
        UpgradeRequest {
            path: self.path.clone(),
            query: self.query.clone(),
            authority: self.authority.clone(),
            key: String::new(),
            origin: self.origin.clone(),
            headers: self.headers.clone(),
            transport: Transport::Sse,
        }
    }
}

/// Result of classifying a (possibly incomplete) request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestParse {
    /// No complete head yet; read more.
    Partial,
    /// The head is complete and valid; it is `head_len` bytes long.
    Complete { request: Request, head_len: usize },
}

/// Parse, check and classify the request head at the start of `buf` (the rules in the
/// module doc and [`super::handshake`]'s).
///
/// `Partial` while there is no complete head yet and `buf.len() <= max_head`; 414/431
/// once the head exceeds `max_head` (whether or not it is complete, so the outcome does
/// not depend on how the bytes were split into reads). Bytes after the head are the
/// caller's.
///
/// # Errors
/// The [`Rejection`] (status and reason) to answer with.
pub fn parse_request(buf: &[u8], max_head: usize) -> Result<RequestParse, Rejection> {
    let window = buf.get(..max_head).unwrap_or(buf);
    parse_window(window, buf.len() > max_head)
}

/// [`parse_request`] for a server that serves only WebSocket upgrades: a plain request
/// is refused with [`PlainRequest::upgrade_refusal`].
///
/// # Errors
/// The [`Rejection`] (status and reason) to answer with.
pub fn parse_upgrade(buf: &[u8], max_head: usize) -> Result<HeadParse, Rejection> {
    match parse_request(buf, max_head)? {
        RequestParse::Partial => Ok(HeadParse::Partial),
        RequestParse::Complete {
            request: Request::Upgrade(request),
            head_len,
        } => Ok(HeadParse::Complete { request, head_len }),
        RequestParse::Complete {
            request: Request::Plain(plain),
            ..
        } => Err(plain.upgrade_refusal),
    }
}

/// [`parse_request`] on the first `max_head` bytes; `overflow`: more bytes follow them.
fn parse_window(window: &[u8], overflow: bool) -> Result<RequestParse, Rejection> {
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
        Ok(httparse::Status::Partial) => return Ok(RequestParse::Partial),
        Err(httparse::Error::TooManyHeaders) => return Err(reject(431, "too many headers")),
        Err(httparse::Error::Version) => {
            return parse_window(&unsupported_version(window)?, overflow);
        }
        Err(_) => return Err(reject(400, "malformed http request")),
    };
    if has_bare_lf(&window[..head_len]) {
        return Err(reject(400, "bare lf: lines must end in crlf"));
    }
    let fields = Fields::gather(req.headers);
    let request = if req.method == Some("GET") && fields.upgrade_websocket {
        Request::Upgrade(check_upgrade(&req, &fields)?)
    } else {
        Request::Plain(plain(&req, &fields)?)
    };
    Ok(RequestParse::Complete { request, head_len })
}

/// The plain-request rules (the module doc's list, after the shared head rules).
fn plain(req: &httparse::Request<'_, '_>, fields: &Fields<'_>) -> Result<PlainRequest, Rejection> {
    let target = parse_target(req.path.unwrap_or(""))?;
    for (field, reason) in [
        (&fields.host, "duplicate host"),
        (&fields.origin, "duplicate origin"),
        (&fields.authorization, "duplicate authorization"),
    ] {
        if field.repeated {
            return Err(reject(400, reason));
        }
    }
    let minor_version = req.version.unwrap_or(1);
    // Host is required of HTTP/1.1 (RFC 9112 §3.2); an HTTP/1.0 request may omit it
    // (a publish; SSE and upgrades need 1.1 anyway).
    let host = match fields.host.first {
        None if minor_version == 0 => "",
        _ => fields.checked_host()?,
    };
    let body = body_framing(fields, minor_version)?;
    let method = req.method.unwrap_or("").to_owned();
    let upgrade_refusal = if method != "GET" {
        reject(405, "method must be GET")
    } else if minor_version != 1 {
        reject(400, "http/1.1 or later required")
    } else if fields.key.repeated {
        reject(400, "duplicate sec-websocket-key")
    } else if fields.version.repeated {
        reject(400, "duplicate sec-websocket-version")
    } else if fields.body {
        reject(400, "a get upgrade carries no body")
    } else {
        reject(400, "missing upgrade: websocket")
    };
    Ok(PlainRequest {
        method,
        minor_version,
        path: target.path,
        query: target.query.map(str::to_owned),
        authority: target.authority.unwrap_or(host).to_owned(),
        origin: fields
            .origin
            .first
            .map(|o| String::from_utf8_lossy(o).into_owned()),
        headers: owned_headers(req.headers),
        body,
        upgrade_refusal,
    })
}

/// The body framing of a plain request (RFC 9112 §6.1–§6.3; the module doc's rules).
fn body_framing(fields: &Fields<'_>, minor_version: u8) -> Result<BodyFraming, Rejection> {
    if !fields.transfer_encoding.is_empty() {
        if !fields.content_length.is_empty() {
            return Err(reject(400, "both transfer-encoding and content-length"));
        }
        if minor_version == 0 {
            return Err(reject(400, "transfer-encoding in an http/1.0 request"));
        }
        let codings: Vec<&[u8]> = fields
            .transfer_encoding
            .iter()
            .flat_map(|v| v.split(|&b| b == b','))
            .map(super::head::trim_ows)
            .filter(|c| !c.is_empty())
            .collect();
        return match codings.as_slice() {
            [last] | [.., last] if !last.eq_ignore_ascii_case(b"chunked") => {
                Err(reject(400, "chunked must be the final transfer coding"))
            }
            [_] => Ok(BodyFraming::Chunked),
            [] => Err(reject(400, "empty transfer-encoding")),
            _ => Err(reject(501, "transfer coding not implemented")),
        };
    }
    let mut length: Option<u64> = None;
    for value in fields
        .content_length
        .iter()
        .flat_map(|v| v.split(|&b| b == b','))
        .map(super::head::trim_ows)
    {
        let parsed = std::str::from_utf8(value)
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or(reject(400, "invalid content-length"))?;
        if length.is_some_and(|l| l != parsed) {
            return Err(reject(400, "conflicting content-length"));
        }
        length = Some(parsed);
    }
    Ok(length.map_or(BodyFraming::None, BodyFraming::Length))
}

#[cfg(test)]
mod tests;

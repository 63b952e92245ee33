//! The rules every HTTP/1.1 request head obeys, whatever it asks for (RFC 9110, RFC
//! 9112 §2–§5): the refusal type, line endings, the HTTP version, the request-target's
//! forms and path normalization, `Host` syntax, singleton fields and list tokens. Used by
//! the request classifier ([`super::request`]) and the upgrade checks
//! ([`super::handshake`]); sans-IO.

/// Most header field lines a request may carry (more → 431).
pub const MAX_HEADERS: usize = 64;

/// Why a request is refused: the HTTP status and a short reason for the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub reason: &'static str,
}

pub(crate) const fn reject(status: u16, reason: &'static str) -> Rejection {
    Rejection { status, reason }
}

/// A field that may appear on one field line only: its first value, and whether a
/// second line came.
#[derive(Default)]
pub(crate) struct Singleton<'a> {
    pub(crate) first: Option<&'a [u8]>,
    pub(crate) repeated: bool,
}

impl<'a> Singleton<'a> {
    pub(crate) fn add(&mut self, value: &'a [u8]) {
        if self.first.is_some() {
            self.repeated = true;
        } else {
            self.first = Some(value);
        }
    }
}

/// Whether a head `httparse` completed has an LF without a CR before it. There a CR
/// only ever comes right before an LF (httparse refuses it anywhere else), so a bare LF
/// shows as more LFs than CRs (counted in `u8` lanes per 255-byte chunk, which vectorizes).
pub(crate) fn has_bare_lf(head: &[u8]) -> bool {
    let count = |byte: u8| -> usize {
        head.chunks(255)
            .map(|chunk| usize::from(chunk.iter().map(|&b| u8::from(b == byte)).sum::<u8>()))
            .sum()
    };
    count(b'\n') != count(b'\r')
}

/// Where the request line ends (the index of its line feed; `None` while none has
/// arrived), after the empty lines RFC 9112 §2.2 lets a server skip.
pub(crate) fn request_line_end(window: &[u8]) -> Option<usize> {
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
/// version other than 1 (`HTTP/2.0`, `HTTP/0.9`), for `HTTP/1.x` with x ≥ 2 a copy of
/// `window` reading `HTTP/1.1` to parse instead (RFC 9112 §2.3), else 400. Decided from
/// the version's own bytes only.
pub(crate) fn unsupported_version(window: &[u8]) -> Result<Vec<u8>, Rejection> {
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
            Ok(copy)
        }
        _ => malformed,
    }
}

/// A request-target split for routing.
pub(crate) struct Target<'a> {
    pub(crate) path: String,
    pub(crate) query: Option<&'a str>,
    /// From an absolute-form target.
    pub(crate) authority: Option<&'a str>,
}

/// Check the request-target's form (RFC 9112 §3.2) and split it; the path comes back
/// normalized ([`normalize_path`]).
pub(crate) fn parse_target(target: &str) -> Result<Target<'_>, Rejection> {
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
pub(crate) fn is_valid_authority(authority: &str) -> bool {
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
pub(crate) fn trim_ows(value: &[u8]) -> &[u8] {
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
pub(crate) fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| trim_ows(t).eq_ignore_ascii_case(token))
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

/// What the checks need from the field lines, gathered in one pass over them (values
/// without surrounding whitespace).
#[derive(Default)]
pub(crate) struct Fields<'a> {
    pub(crate) host: Singleton<'a>,
    pub(crate) key: Singleton<'a>,
    pub(crate) version: Singleton<'a>,
    pub(crate) origin: Singleton<'a>,
    pub(crate) authorization: Singleton<'a>,
    /// `Transfer-Encoding`, or a `Content-Length` other than `0`.
    pub(crate) body: bool,
    /// Some `Upgrade` line lists `websocket`.
    pub(crate) upgrade_websocket: bool,
    /// Some `Connection` line lists `upgrade`.
    pub(crate) connection_upgrade: bool,
    /// Every `Transfer-Encoding` line's value, in order.
    pub(crate) transfer_encoding: Vec<&'a [u8]>,
    /// Every `Content-Length` line's value, in order.
    pub(crate) content_length: Vec<&'a [u8]>,
}

impl<'a> Fields<'a> {
    pub(crate) fn gather(headers: &[httparse::Header<'a>]) -> Fields<'a> {
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
                f.transfer_encoding.push(value);
            } else if is("content-length") {
                f.body |= value != b"0";
                f.content_length.push(value);
            }
        }
        f
    }

    /// The `Host` value, checked: present, `uri-host [":" port]` with a non-empty host
    /// (RFC 9110 §7.2, RFC 9112 §3.2) → else 400.
    pub(crate) fn checked_host(&self) -> Result<&'a str, Rejection> {
        let host = self.host.first.ok_or(reject(400, "missing host"))?;
        std::str::from_utf8(host)
            .ok()
            .filter(|h| is_valid_authority(h))
            .ok_or(reject(400, "invalid host"))
    }
}

/// All field lines, names lower-cased, values as sent without surrounding whitespace
/// (lossy UTF-8).
pub(crate) fn owned_headers(headers: &[httparse::Header<'_>]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(trim_ows(h.value)).into_owned(),
            )
        })
        .collect()
}

/// The first value of `lower_name` in headers gathered by [`owned_headers`].
pub(crate) fn find_header<'h>(
    headers: &'h [(String, String)],
    lower_name: &str,
) -> Option<&'h str> {
    headers
        .iter()
        .find(|(name, _)| name == lower_name)
        .map(|(_, value)| value.as_str())
}

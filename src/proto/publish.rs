//! The HTTP publish API's protocol rules (`POST /publish/{room}`), sans-IO: whether
//! the connection persists after the response (RFC 9112 §9.3), what `Expect` asks
//! (RFC 9110 §10.1.1), the `binary` query parameter, the `202 Accepted` response, and
//! the request as the handler's upgrade hook sees it ([`UpgradeRequest::publish_view`]).

use super::handshake::{Transport, UpgradeRequest};
use super::request::PlainRequest;

/// Path prefix of the HTTP publish API (`/publish/{room}`).
pub const PUBLISH_PREFIX: &str = "/publish/";

impl UpgradeRequest {
    /// A publish request as the handler's upgrade hook
    /// ([`crate::Handler::on_upgrade_from`]) sees it: its path, query, authority,
    /// origin and headers, an empty [`UpgradeRequest::key`] (no `Sec-WebSocket-Key`:
    /// it is no upgrade) and the default `transport`; [`UpgradeRequest::is_publish`]
    /// is what tells it apart.
    pub fn publish_view(request: &PlainRequest) -> Self {
        UpgradeRequest {
            path: request.path.clone(),
            query: request.query.clone(),
            authority: request.authority.clone(),
            key: String::new(),
            origin: request.origin.clone(),
            headers: request.headers.clone(),
            // No stream is opened: the field keeps its default; `is_publish` tells.
            transport: Transport::default(),
        }
    }

    /// True when this is an HTTP publish (`POST /publish/{room}`), not a WebSocket
    /// upgrade: a hook tells them apart with this. (An upgrade always carries a
    /// 24-character `Sec-WebSocket-Key`; a publish has none.)
    pub fn is_publish(&self) -> bool {
        self.key.is_empty()
            && self.transport == Transport::WebSocket
            && self.path.starts_with(PUBLISH_PREFIX)
    }
}

/// Whether the connection stays open for another request after this one's response
/// (RFC 9112 §9.3): HTTP/1.1 unless the client sent the `close` connection option;
/// HTTP/1.0 only with the `keep-alive` option (RFC 9112 Appendix C.2.2).
pub fn keep_alive(request: &PlainRequest) -> bool {
    let option = |name: &str| {
        request
            .headers
            .iter()
            .filter(|(n, _)| n == "connection")
            .flat_map(|(_, v)| v.split(','))
            .any(|o| o.trim().eq_ignore_ascii_case(name))
    };
    if request.minor_version == 0 {
        option("keep-alive")
    } else {
        !option("close")
    }
}

/// What the request's `Expect` field asks (RFC 9110 §10.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// No expectation (or an HTTP/1.0 request, whose `100-continue` a server must
    /// ignore).
    Nothing,
    /// `100-continue`: answer `100 Continue` before reading the body, or the final
    /// status at once.
    Continue,
    /// Anything else: 417 Expectation Failed.
    Unknown,
}

/// The request's expectation (see [`Expect`]); the value compares case-insensitively.
pub fn expect(request: &PlainRequest) -> Expect {
    let mut values = request
        .headers
        .iter()
        .filter(|(n, _)| n == "expect")
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .peekable();
    if request.minor_version == 0 || values.peek().is_none() {
        return Expect::Nothing;
    }
    if values.all(|v| v.eq_ignore_ascii_case("100-continue")) {
        Expect::Continue
    } else {
        Expect::Unknown
    }
}

/// The `binary` parameter of a raw query string: `1`/`true` → a binary publication,
/// `0`/`false` or absent → text. Other parameters are ignored (`token` is the
/// handler's).
///
/// # Errors
/// The reason, for a 400, when `binary` has another value.
pub fn binary_param(query: Option<&str>) -> Result<bool, &'static str> {
    let mut binary = false;
    for pair in query.unwrap_or("").split('&') {
        match pair.split_once('=').unwrap_or((pair, "")) {
            ("binary", "1" | "true") => binary = true,
            ("binary", "0" | "false") => binary = false,
            ("binary", _) => return Err("binary must be 1 or 0"),
            _ => {}
        }
    }
    Ok(binary)
}

/// The `202 Accepted` answer to a publish: `Content-Type: application/json`, body
/// `{"room":"…","seq":N}` (`seq` only when given), `Content-Length`, and the
/// connection option matching `keep_alive` (`Connection: keep-alive` for an HTTP/1.0
/// client that asked for it, `Connection: close` when the connection ends).
pub fn accepted_response(room: &str, seq: Option<u64>, keep_alive: bool, http10: bool) -> Vec<u8> {
    let mut body = String::with_capacity(room.len() + 32);
    body.push_str("{\"room\":\"");
    json_escape_into(&mut body, room);
    body.push('"');
    if let Some(seq) = seq {
        body.push_str(",\"seq\":");
        body.push_str(&seq.to_string());
    }
    body.push_str("}\n");
    let connection = match (keep_alive, http10) {
        (false, _) => "Connection: close\r\n",
        (true, true) => "Connection: keep-alive\r\n",
        (true, false) => "",
    };
    format!(
        "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{connection}\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// `s` as the inside of a JSON string (RFC 8259 §7): `"` and `\` escaped, control
/// characters as `\u00XX` (room names have none, but the encoder does not rely on it).
fn json_escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_202_carries_json_with_the_room_escaped() {
        let r = String::from_utf8(accepted_response("a\"b\\c", Some(7), true, false)).unwrap();
        assert!(r.starts_with("HTTP/1.1 202 Accepted\r\n"));
        let body = "{\"room\":\"a\\\"b\\\\c\",\"seq\":7}\n";
        assert!(r.ends_with(&format!("\r\n\r\n{body}")), "{r}");
        assert!(r.contains(&format!("Content-Length: {}\r\n", body.len())));
        assert!(!r.contains("Connection"));
        let r = String::from_utf8(accepted_response("x", None, false, false)).unwrap();
        assert!(r.contains("Connection: close\r\n") && r.ends_with("{\"room\":\"x\"}\n"));
        let r = String::from_utf8(accepted_response("x", None, true, true)).unwrap();
        assert!(r.contains("Connection: keep-alive\r\n"));
    }

    #[test]
    fn binary_parameter() {
        assert_eq!(binary_param(None), Ok(false));
        assert_eq!(binary_param(Some("token=x&binary=1")), Ok(true));
        assert_eq!(binary_param(Some("binary=true&binary=0")), Ok(false));
        assert!(binary_param(Some("binary=yes")).is_err());
        assert_eq!(binary_param(Some("binaryx=1")), Ok(false));
    }
}

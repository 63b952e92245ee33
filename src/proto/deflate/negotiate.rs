//! Negotiating permessage-deflate (RFC 7692 §5, §7.1) from the client's
//! `Sec-WebSocket-Extensions` field lines.
//!
//! The field is a comma-separated list of offers (RFC 6455 §9.1); an offer is an
//! extension name followed by `; param` or `; param=value` (a token or a quoted
//! string, RFC 7692 §7.1 says the unquoted value must then be a token too). Every
//! field line counts, in order. The first acceptable `permessage-deflate` offer wins
//! (§5.1); an offer is *not* acceptable when a parameter is unknown, repeated, or has a
//! value it must not have (§7.1): then the next offer is tried.
//!
//! The rules per parameter (§7.1.1, §7.1.2):
//! - `server_no_context_takeover`: no value. We answer with it whether or not it was
//!   offered (§7.1.1.1 lets a server add it), so one compressed message is valid for
//!   every subscriber ([`super::compress`] resets its stream after each message).
//! - `client_no_context_takeover`: no value. When offered, the client lets us ask for
//!   it, and we do: its messages then decompress without per-connection state.
//! - `server_max_window_bits`: a value 8..=15 is required. We accept and echo it; a
//!   value under 15 means our 32 KiB-window output is not valid for that client, so it
//!   gets uncompressed messages (RSV1 clear, which §6 always allows).
//! - `client_max_window_bits`: no value or 8..=15. We do not limit the client's
//!   window (the answer omits it: the client may use up to 15 bits, §7.1.2.2).

/// The extension token (RFC 7692 §7).
pub const EXTENSION: &str = "permessage-deflate";

/// What was agreed for one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreement {
    /// The client resets its compression context after each message (we asked for
    /// `client_no_context_takeover`): inbound messages need no per-connection state.
    pub client_no_context_takeover: bool,
    /// `server_max_window_bits` the client asked for (8..=15), if any.
    pub server_max_window_bits: Option<u8>,
}

impl Agreement {
    /// Whether our compressed messages (32 KiB window, no context takeover) are valid for
    /// this client: false when it limited our window below 15 bits.
    pub fn accepts_our_output(&self) -> bool {
        self.server_max_window_bits.is_none_or(|bits| bits == 15)
    }

    /// The `Sec-WebSocket-Extensions` value of the 101 answer (RFC 7692 §7.1), e.g.
    /// `permessage-deflate; server_no_context_takeover; client_no_context_takeover`.
    pub fn response_value(&self) -> String {
        let mut out = format!("{EXTENSION}; server_no_context_takeover");
        if self.client_no_context_takeover {
            out.push_str("; client_no_context_takeover");
        }
        if let Some(bits) = self.server_max_window_bits {
            out.push_str(&format!("; server_max_window_bits={bits}"));
        }
        out
    }
}

/// The agreement for the first acceptable permessage-deflate offer among the
/// `Sec-WebSocket-Extensions` field values (in the order they were received), or
/// `None` when there is none (the connection then runs without the extension).
pub fn negotiate<'a>(field_values: impl IntoIterator<Item = &'a str>) -> Option<Agreement> {
    field_values
        .into_iter()
        .flat_map(split_outside_quotes(','))
        .find_map(accept_offer)
}

/// The agreement for one offer (`name; param; param=value`), if it is an acceptable
/// permessage-deflate offer.
fn accept_offer(offer: &str) -> Option<Agreement> {
    let mut parts = split_outside_quotes(';')(offer);
    if !parts.next()?.trim().eq_ignore_ascii_case(EXTENSION) {
        return None;
    }
    let mut seen = [false; 4];
    let mut agreement = Agreement {
        client_no_context_takeover: false,
        server_max_window_bits: None,
    };
    for param in parts {
        let (name, value) = match param.split_once('=') {
            Some((n, v)) => (n.trim(), Some(unquote(v.trim())?)),
            None => (param.trim(), None),
        };
        let index = match name {
            "server_no_context_takeover" => 0,
            "client_no_context_takeover" => 1,
            "server_max_window_bits" => 2,
            "client_max_window_bits" => 3,
            _ => return None,
        };
        if std::mem::replace(&mut seen[index], true) {
            return None;
        }
        match (index, value) {
            (0, None) => {}
            (1, None) => agreement.client_no_context_takeover = true,
            (2, Some(v)) => agreement.server_max_window_bits = Some(window_bits(v)?),
            (3, None) => {}
            (3, Some(v)) => {
                window_bits(v)?;
            }
            _ => return None,
        }
    }
    Some(agreement)
}

/// A window-bits value: `8`..=`15`, decimal, no sign, no leading zero (RFC 7692
/// §7.1.2.1: `%x38-39 / %x31 %x30-35`).
fn window_bits(v: &str) -> Option<u8> {
    if v.starts_with('0') || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok().filter(|b| (8..=15).contains(b))
}

/// A parameter value: a token as is, or a quoted string unquoted (backslash escapes
/// removed). `None` for an unterminated quoted string.
fn unquote(v: &str) -> Option<&str> {
    match v.strip_prefix('"') {
        None => Some(v),
        Some(rest) => {
            let inner = rest.strip_suffix('"')?;
            // Window bits and flag names never need escapes; a backslash makes the
            // value invalid for every parameter we know.
            (!inner.contains('\\')).then_some(inner)
        }
    }
}

/// A splitter on `sep` that ignores separators inside quoted strings (RFC 9110 §5.6.4).
fn split_outside_quotes(sep: char) -> impl Fn(&str) -> std::vec::IntoIter<&str> {
    move |s: &str| {
        let mut parts = Vec::new();
        let (mut start, mut quoted, mut escaped) = (0, false, false);
        for (i, c) in s.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' if quoted => escaped = true,
                '"' => quoted = !quoted,
                c if c == sep && !quoted => {
                    parts.push(&s[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        parts.push(&s[start..]);
        parts.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(v: &str) -> Option<Agreement> {
        negotiate([v])
    }

    #[test]
    fn a_bare_offer_is_accepted_with_server_no_context_takeover() {
        let a = one("permessage-deflate").unwrap();
        assert!(!a.client_no_context_takeover);
        assert!(a.accepts_our_output());
        assert_eq!(
            a.response_value(),
            "permessage-deflate; server_no_context_takeover"
        );
    }

    #[test]
    fn browsers_offer_is_accepted() {
        let a = one("permessage-deflate; client_max_window_bits").unwrap();
        assert_eq!(a.server_max_window_bits, None);
        assert!(!a.client_no_context_takeover);
    }

    #[test]
    fn client_no_context_takeover_is_asked_when_offered() {
        let a =
            one("permessage-deflate; client_no_context_takeover; client_max_window_bits").unwrap();
        assert!(a.client_no_context_takeover);
        assert_eq!(
            a.response_value(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        );
    }

    #[test]
    fn server_window_bits_are_echoed_and_below_15_turn_our_output_off() {
        let a = one("permessage-deflate; server_max_window_bits=9").unwrap();
        assert_eq!(a.server_max_window_bits, Some(9));
        assert!(!a.accepts_our_output());
        assert!(a.response_value().ends_with("; server_max_window_bits=9"));
        let a = one("permessage-deflate; server_max_window_bits=\"15\"").unwrap();
        assert!(a.accepts_our_output());
    }

    #[test]
    fn invalid_offers_are_skipped_for_the_next() {
        for bad in [
            "permessage-deflate; foo",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; client_no_context_takeover=x",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=09",
            "permessage-deflate; client_max_window_bits=+9",
            "permessage-deflate; client_max_window_bits=\"9",
            "permessage-deflate; client_max_window_bits=8; client_max_window_bits=9",
            "x-webkit-deflate-frame",
        ] {
            assert_eq!(one(bad), None, "{bad}");
            let next = negotiate([bad, "permessage-deflate; client_no_context_takeover"]);
            assert_eq!(
                next.map(|a| a.client_no_context_takeover),
                Some(true),
                "{bad} then a good one"
            );
        }
    }

    #[test]
    fn offers_in_one_line_are_tried_in_order() {
        let a = one("permessage-deflate; server_max_window_bits=9; bogus, \
             permessage-deflate; server_no_context_takeover, permessage-deflate")
        .unwrap();
        assert_eq!(a.server_max_window_bits, None);
        assert_eq!(negotiate(Vec::<&str>::new()), None);
        assert_eq!(one(""), None);
    }

    #[test]
    fn quoted_commas_do_not_split_offers() {
        assert_eq!(one("foo; a=\"x,permessage-deflate\""), None);
        assert!(one("foo; a=\"x,y\", permessage-deflate").is_some());
        assert!(one("Permessage-Deflate ; client_max_window_bits = 10").is_some());
    }
}

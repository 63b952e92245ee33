//! The room-name rule, one definition shared by the `/ws/{room}` path router and the
//! library API ([`crate::Context::join`], [`crate::Context::publish`],
//! [`crate::Publisher::publish`]), so a room has one name however its URI spells it.
//!
//! A room name is what the path segment *means*, not how it is spelled: the segment is
//! percent-decoded to UTF-8 ([`from_path_segment`]), so `/ws/caf%C3%A9`, `/ws/caf%c3%a9`
//! and `/ws/café` (raw UTF-8, which the handshake re-encodes as RFC 3987 §3.1 maps an IRI)
//! all name the room `café`, and `/ws/%6Eews` names `news` (RFC 3986 §6.2.2: the same
//! URI). The library API takes names already decoded and checks them with the same
//! [`validate`].
//!
//! A valid name is 1..=[`MAX_ROOM_NAME_BYTES`] bytes of UTF-8 (counted after decoding),
//! contains no `/` (a `%2F` in the path would otherwise name a room no path can reach as
//! one segment) and no control character (Unicode `Cc`: U+0000..U+001F, U+007F..U+009F),
//! and is not `.` or `..` (dot-segments, RFC 3986 §3.3, which a path cannot carry as a
//! name). Names are compared byte for byte: no case folding and no Unicode normalization
//! (`é` as U+00E9 and as `e` + U+0301 are two rooms).

use std::fmt;

use crate::proto::handshake::hex_value;

/// Longest room name, in bytes of UTF-8 after percent-decoding.
pub const MAX_ROOM_NAME_BYTES: usize = 128;

/// Why a room name (or the path segment spelling it) is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomNameError {
    /// The name is empty.
    Empty,
    /// The name is longer than [`MAX_ROOM_NAME_BYTES`] after decoding (`len` bytes).
    TooLong { len: usize },
    /// The name contains `/` (in a path: `%2F`).
    Slash,
    /// The name contains a control character (e.g. `%00`, `%0A`, `%7F`).
    ControlCharacter,
    /// The name is `.` or `..`.
    DotSegment,
    /// A `%` in the segment is not followed by two hexadecimal digits (RFC 3986 §2.1).
    InvalidPercentEncoding,
    /// The decoded bytes are not UTF-8.
    InvalidUtf8,
}

impl RoomNameError {
    /// The HTTP status an upgrade naming such a room gets: 414 URI Too Long for
    /// [`RoomNameError::TooLong`], 400 Bad Request for the rest.
    pub fn status(self) -> u16 {
        match self {
            RoomNameError::TooLong { .. } => 414,
            _ => 400,
        }
    }

    /// A short fixed reason (the body of the HTTP rejection).
    pub fn reason(self) -> &'static str {
        match self {
            RoomNameError::Empty => "empty room name",
            RoomNameError::TooLong { .. } => "room name too long",
            RoomNameError::Slash => "room name contains '/'",
            RoomNameError::ControlCharacter => "room name contains a control character",
            RoomNameError::DotSegment => "room name is a dot-segment",
            RoomNameError::InvalidPercentEncoding => "invalid percent-encoding in room name",
            RoomNameError::InvalidUtf8 => "room name is not utf-8 after percent-decoding",
        }
    }
}

impl fmt::Display for RoomNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoomNameError::TooLong { len } => write!(
                f,
                "room name too long: {len} bytes (max {MAX_ROOM_NAME_BYTES})"
            ),
            other => f.write_str(other.reason()),
        }
    }
}

impl std::error::Error for RoomNameError {}

/// Check a (decoded) room name against the rule in the module doc.
///
/// # Errors
/// [`RoomNameError::Empty`], [`RoomNameError::TooLong`], [`RoomNameError::Slash`],
/// [`RoomNameError::ControlCharacter`] or [`RoomNameError::DotSegment`].
pub fn validate(name: &str) -> Result<(), RoomNameError> {
    if name.is_empty() {
        return Err(RoomNameError::Empty);
    }
    if name.len() > MAX_ROOM_NAME_BYTES {
        return Err(RoomNameError::TooLong { len: name.len() });
    }
    if name == "." || name == ".." {
        return Err(RoomNameError::DotSegment);
    }
    for c in name.chars() {
        if c == '/' {
            return Err(RoomNameError::Slash);
        }
        if c.is_control() {
            return Err(RoomNameError::ControlCharacter);
        }
    }
    Ok(())
}

/// The room a path segment names: every `%XX` decoded (RFC 3986 §2.1, hex digits in
/// either case), the bytes read as UTF-8, then [`validate`]d. Other characters are
/// taken as they are (`+` stays `+`: this is a path, not a form).
///
/// # Errors
/// [`RoomNameError::InvalidPercentEncoding`], [`RoomNameError::InvalidUtf8`], or what
/// [`validate`] refuses. Decoding stops early once the output exceeds the length limit.
pub fn from_path_segment(segment: &str) -> Result<String, RoomNameError> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len().min(MAX_ROOM_NAME_BYTES + 1));
    let mut i = 0;
    while i < bytes.len() {
        let byte = match bytes[i] {
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(hex_value);
                let lo = bytes.get(i + 2).copied().and_then(hex_value);
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(RoomNameError::InvalidPercentEncoding);
                };
                i += 3;
                (hi << 4) | lo
            }
            b => {
                i += 1;
                b
            }
        };
        out.push(byte);
        if out.len() > MAX_ROOM_NAME_BYTES {
            // Still an error of the right kind; the full length only matters for Display.
            let rest = count_decoded(&bytes[i..]);
            return Err(RoomNameError::TooLong {
                len: out.len() + rest,
            });
        }
    }
    let name = String::from_utf8(out).map_err(|_| RoomNameError::InvalidUtf8)?;
    validate(&name)?;
    Ok(name)
}

/// Bytes `rest` decodes to (a `%XX` counts as one), for the length in an error.
fn count_decoded(rest: &[u8]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < rest.len() {
        i += if rest[i] == b'%' { 3 } else { 1 };
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_name_decode_to_it() {
        for seg in ["caf%C3%A9", "caf%c3%a9", "café", "%63af%C3%a9"] {
            assert_eq!(from_path_segment(seg).as_deref(), Ok("café"), "{seg}");
        }
        assert_eq!(from_path_segment("%6Eews").as_deref(), Ok("news"));
        assert_eq!(from_path_segment("a%2Db").as_deref(), Ok("a-b"));
        assert_eq!(from_path_segment("a+b").as_deref(), Ok("a+b"));
        assert_eq!(from_path_segment("100%25").as_deref(), Ok("100%"));
        assert_eq!(from_path_segment("a%20b").as_deref(), Ok("a b"));
    }

    #[test]
    fn refused_segments_and_their_status() {
        let cases = [
            ("a%2Fb", RoomNameError::Slash),
            ("a%2fb", RoomNameError::Slash),
            ("a%00", RoomNameError::ControlCharacter),
            ("a%0A", RoomNameError::ControlCharacter),
            ("a%7F", RoomNameError::ControlCharacter),
            ("a%C2%85", RoomNameError::ControlCharacter), // U+0085, a C1 control
            ("%C3", RoomNameError::InvalidUtf8),
            ("%FF", RoomNameError::InvalidUtf8),
            ("%ED%A0%80", RoomNameError::InvalidUtf8), // a UTF-16 surrogate
            ("%", RoomNameError::InvalidPercentEncoding),
            ("a%4", RoomNameError::InvalidPercentEncoding),
            ("a%zz", RoomNameError::InvalidPercentEncoding),
            ("", RoomNameError::Empty),
            ("%2E", RoomNameError::DotSegment),
            ("..", RoomNameError::DotSegment),
        ];
        for (seg, want) in cases {
            assert_eq!(from_path_segment(seg), Err(want), "{seg}");
            assert_eq!(want.status(), 400);
        }
    }

    #[test]
    fn length_limit_applies_after_decoding() {
        let fits = "é".repeat(MAX_ROOM_NAME_BYTES / 2); // 128 bytes of UTF-8
        let encoded = "%C3%A9".repeat(MAX_ROOM_NAME_BYTES / 2); // 384 characters
        assert_eq!(from_path_segment(&encoded), Ok(fits.clone()));
        assert_eq!(validate(&fits), Ok(()));
        let over = format!("{encoded}x");
        let e = from_path_segment(&over).unwrap_err();
        assert_eq!(
            e,
            RoomNameError::TooLong {
                len: MAX_ROOM_NAME_BYTES + 1
            }
        );
        assert_eq!(e.status(), 414);
        assert_eq!(
            validate(&"a".repeat(MAX_ROOM_NAME_BYTES + 1)),
            Err(RoomNameError::TooLong {
                len: MAX_ROOM_NAME_BYTES + 1
            })
        );
        assert_eq!(
            e.to_string(),
            "room name too long: 129 bytes (max 128)".to_string()
        );
    }

    #[test]
    fn library_names_follow_the_same_rule() {
        assert_eq!(validate("café"), Ok(()));
        assert_eq!(validate("caf%C3%A9"), Ok(())); // a literal '%' is a valid name
        assert_eq!(validate("a/b"), Err(RoomNameError::Slash));
        assert_eq!(validate("a\0"), Err(RoomNameError::ControlCharacter));
        assert_eq!(validate("."), Err(RoomNameError::DotSegment));
        assert_eq!(validate(""), Err(RoomNameError::Empty));
        // What a path decodes to is always valid for the library API, and back.
        let name = from_path_segment("caf%C3%A9").unwrap();
        assert_eq!(validate(&name), Ok(()));
    }
}

//! Close codes and close-frame payloads (RFC 6455 §5.5.1, §7.4).
//!
//! Which codes a peer may legitimately send, how a received close payload is
//! validated (code + UTF-8 reason), and how an outgoing one is built (reason
//! truncated at a char boundary so the whole payload fits a control frame).
//!
//! 1012-1014: the original RFC left them unassigned, and the 2011 version of
//! Autobahn|Testsuite listed them among the *invalid* codes of case 7.9.*
//! (`tests = [0,999,1004,1005,1006,1012,1013,1014,1015,1016,1100,2000,2999]`).
//! The current crossbario/autobahn-testsuite `case7_9_X.py` (the 0.8.x line)
//! removed them: `tests = [0,999,1004,1005,1006,1016,1100,2000,2999]`, and
//! `case7_7_X.py` (valid codes) does not list them either, so 0.8.2 does not
//! test 1012-1014 at all. They are now IANA-registered (1012 Service Restart,
//! 1013 Try Again Later, 1014 Bad Gateway), so we accept them.

use super::error::ProtocolError;

pub use super::codes::{self, is_valid_close_code};

/// Largest close payload: a control frame carries at most 125 bytes.
const MAX_CLOSE_PAYLOAD: usize = 125;

/// Parse a received close payload.
///
/// Empty → `Ok(None)`; one byte → 1002; invalid code → 1002; reason not UTF-8
/// → 1007. The 125-byte control-frame limit is enforced by the frame decoder,
/// not here.
pub fn parse_close_payload(payload: &[u8]) -> Result<Option<(u16, &str)>, ProtocolError> {
    match payload {
        [] => Ok(None),
        [_] => Err(ProtocolError::protocol("close payload of 1 byte")),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !is_valid_close_code(code) {
                return Err(ProtocolError::protocol("invalid close code"));
            }
            let reason = std::str::from_utf8(reason)
                .map_err(|_| ProtocolError::invalid_payload("close reason is not utf-8"))?;
            Ok(Some((code, reason)))
        }
    }
}

/// `reason` cut at a char boundary so `2 + reason.len() <= 125`.
pub(super) fn truncate_reason(reason: &str) -> &str {
    let mut end = reason.len().min(MAX_CLOSE_PAYLOAD - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason.get(..end).unwrap_or_default()
}

/// Build a close payload: big-endian code then the (possibly truncated)
/// reason; always ≤ 125 bytes.
pub fn encode_close_payload(code: u16, reason: &str) -> Vec<u8> {
    let reason = truncate_reason(reason);
    let mut out = Vec::with_capacity(2 + reason.len());
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(reason.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_codes() {
        for code in [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011] {
            assert!(is_valid_close_code(code), "{code}");
        }
        // Autobahn 7.7.* valid set, plus the IANA codes 1012-1014.
        for code in [1012, 1013, 1014, 3000, 3999, 4000, 4999] {
            assert!(is_valid_close_code(code), "{code}");
        }
    }

    #[test]
    fn invalid_codes() {
        // Autobahn 0.8.2 case 7.9.* set, plus the other boundaries.
        for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999] {
            assert!(!is_valid_close_code(code), "{code}");
        }
        for code in [5000, 65535] {
            assert!(!is_valid_close_code(code), "{code}");
        }
    }

    #[test]
    fn empty_payload_is_no_status() {
        assert_eq!(parse_close_payload(&[]), Ok(None));
    }

    #[test]
    fn one_byte_payload_is_1002() {
        assert_eq!(parse_close_payload(&[0x03]).unwrap_err().code, 1002);
    }

    #[test]
    fn invalid_code_is_1002() {
        let e = parse_close_payload(&1005u16.to_be_bytes()).unwrap_err();
        assert_eq!(e.code, 1002);
        let e = parse_close_payload(&[0x03, 0xE7, b'x']).unwrap_err(); // 999
        assert_eq!(e.code, 1002);
    }

    #[test]
    fn bad_utf8_reason_is_1007() {
        let e = parse_close_payload(&[0x03, 0xE8, b'a', 0xFF]).unwrap_err();
        assert_eq!(e.code, 1007);
        let e = parse_close_payload(&[0x03, 0xE8, 0xCE]).unwrap_err();
        assert_eq!(e.code, 1007);
    }

    #[test]
    fn code_and_reason_parse() {
        let mut p = 1000u16.to_be_bytes().to_vec();
        p.extend_from_slice("bye κ".as_bytes());
        assert_eq!(parse_close_payload(&p), Ok(Some((1000, "bye κ"))));
        assert_eq!(parse_close_payload(&[0x0F, 0xA0]), Ok(Some((4000, ""))));
    }

    #[test]
    fn encode_round_trips() {
        let p = encode_close_payload(codes::GOING_AWAY, "restart");
        assert_eq!(&p[..2], &[0x03, 0xE9]);
        assert_eq!(parse_close_payload(&p), Ok(Some((1001, "restart"))));
    }

    #[test]
    fn encode_truncates_at_char_boundary() {
        let long = "é".repeat(100); // 200 bytes, 2 per char
        let p = encode_close_payload(1000, &long);
        assert!(p.len() <= 125);
        assert_eq!(p.len(), 2 + 122); // 123 is odd, so cut back to 122
        let (_, reason) = parse_close_payload(&p).unwrap().unwrap();
        assert_eq!(reason, "é".repeat(61));

        let ascii = "a".repeat(500);
        assert_eq!(encode_close_payload(1000, &ascii).len(), 125);
    }
}

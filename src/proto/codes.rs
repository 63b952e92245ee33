//! Close codes (RFC 6455 §7.4): the ones the engine sends, and which ones a peer may
//! send. A leaf of `proto`: the close-payload parser (`close.rs`) and `ProtocolError`
//! (`error.rs`) both use it, and it uses nothing.

/// 1000: normal closure.
pub const NORMAL: u16 = 1000;
/// 1001: the server is going away (shutdown).
pub const GOING_AWAY: u16 = 1001;
/// 1002: the peer broke the protocol.
pub const PROTOCOL_ERROR: u16 = 1002;
/// 1003: a data type the endpoint cannot accept.
pub const UNSUPPORTED: u16 = 1003;
/// 1007: the payload does not match its type (text that is not UTF-8).
pub const INVALID_PAYLOAD: u16 = 1007;
/// 1008: a policy was violated (slow consumer, history off, …).
pub const POLICY: u16 = 1008;
/// 1009: the message is larger than `--max-message-size`.
pub const TOO_BIG: u16 = 1009;
/// 1011: the server met an unexpected condition (a handler panicked).
pub const INTERNAL_ERROR: u16 = 1011;

/// Whether `code` may appear in a close frame received from a peer:
/// 1000-1003, 1007-1014 (1012-1014 are IANA-registered since; see `close.rs`),
/// 3000-4999. Invalid: < 1000, 1004 (reserved), 1005/1006/1015 (must never be
/// sent, RFC 6455 §7.4.1), 1016-2999 (unassigned / reserved for extensions), >= 5000.
pub fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

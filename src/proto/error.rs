//! `ProtocolError`: the close code and short reason a WebSocket connection is
//! failed with. It lives in its own file because both the close-payload parser
//! (`close.rs`) and the message decoder (`decoder.rs`) produce it; `decoder`
//! re-exports it, so `proto::decoder::ProtocolError` is the public path too.

use std::fmt;

use super::codes;

/// The close code and reason to answer a misbehaving peer with.
///
/// `reason` is always short ASCII (well under the 123 bytes a close frame can
/// carry), so `frame::encode_close_frame(e.code, e.reason)` never truncates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtocolError {
    pub code: u16,
    pub reason: &'static str,
}

impl ProtocolError {
    /// 1002: the peer broke a framing rule.
    pub const fn protocol(reason: &'static str) -> Self {
        ProtocolError {
            code: codes::PROTOCOL_ERROR,
            reason,
        }
    }

    /// 1007: the payload is not consistent with its type (bad UTF-8).
    pub const fn invalid_payload(reason: &'static str) -> Self {
        ProtocolError {
            code: codes::INVALID_PAYLOAD,
            reason,
        }
    }

    /// 1009: the message is larger than the configured limit.
    pub const fn too_big(reason: &'static str) -> Self {
        ProtocolError {
            code: codes::TOO_BIG,
            reason,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "websocket protocol error {}: {}", self.code, self.reason)
    }
}

impl std::error::Error for ProtocolError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_carry_their_close_codes() {
        assert_eq!(ProtocolError::protocol("x").code, 1002);
        assert_eq!(ProtocolError::invalid_payload("x").code, 1007);
        assert_eq!(ProtocolError::too_big("x").code, 1009);
    }

    #[test]
    fn display_names_code_and_reason() {
        let e = ProtocolError::protocol("reserved opcode");
        assert_eq!(
            e.to_string(),
            "websocket protocol error 1002: reserved opcode"
        );
    }
}

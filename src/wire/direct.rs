//! [`Direct`]: a message sent to one session ([`crate::Publisher::send_to_session`]),
//! kept transport-neutral until it is queued, so that it can go out as a WebSocket
//! frame or as a Server-Sent Events chunk — whichever transport the session's
//! connection uses when it is queued, which for a detached session is the transport of
//! the connection that resumes it (see `crate::shard::session`).

use bytes::Bytes;

use crate::proto::frame::Opcode;
use crate::proto::handshake::Transport;

use super::prepared::PreparedFrame;

/// A direct message: its kind and payload, not yet framed.
#[derive(Debug, Clone)]
pub struct Direct {
    /// Binary (else text, valid UTF-8).
    pub binary: bool,
    /// The message bytes.
    pub payload: Bytes,
}

impl Direct {
    /// A text message.
    pub fn text(text: &str) -> Self {
        Direct {
            binary: false,
            payload: Bytes::copy_from_slice(text.as_bytes()),
        }
    }

    /// A binary message.
    pub fn binary(data: &[u8]) -> Self {
        Direct {
            binary: true,
            payload: Bytes::copy_from_slice(data),
        }
    }

    /// Its wire form on `transport`: an uncompressed WebSocket data frame, or one SSE
    /// event chunk (text as `data:` lines, binary as the `binary` event with base64).
    pub fn frame_for(&self, transport: Transport) -> PreparedFrame {
        match transport {
            Transport::Sse => PreparedFrame::sse_message(self.binary, &self.payload),
            Transport::WebSocket => {
                let opcode = if self.binary {
                    Opcode::Binary
                } else {
                    Opcode::Text
                };
                PreparedFrame::encode(opcode, &self.payload)
            }
        }
    }

    /// Bytes it counts against `--session-buffer-bytes`: its WebSocket frame size
    /// (payload and the 2- to 10-byte header).
    pub fn cost(&self) -> usize {
        let n = self.payload.len();
        n + match n {
            0..=125 => 2,
            126..=0xffff => 4,
            _ => 10,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_message_two_wire_forms() {
        let d = Direct::text("a\nb");
        assert_eq!(
            d.frame_for(Transport::Sse).bytes(),
            b"11\r\ndata: a\ndata: b\n\n\r\n"
        );
        assert_eq!(d.frame_for(Transport::WebSocket).bytes(), b"\x81\x03a\nb");
        assert_eq!(d.cost(), 5);
        let b = Direct::binary(&[0, 255]);
        assert_eq!(
            b.frame_for(Transport::Sse).bytes(),
            b"1a\r\nevent: binary\ndata: AP8=\n\n\r\n"
        );
    }
}

//! The sequence framing of room messages when history is on, and the text control
//! messages that go with it.
//!
//! Sequence framing (what a client that connected with `?seq=1` or `?since=N` gets for
//! every room message): one **binary** frame whose payload is the 8-byte big-endian
//! sequence number, one byte with the original opcode (1 = text, 2 = binary), then the
//! original payload. Control messages to such a client (`{"type":"gap",…}`,
//! `{"type":"reset",…}`) are text frames, so a sequenced client can tell them apart by
//! opcode alone. The frame is built from a publication's payload and number by
//! [`super::Publication::frame`] with [`super::Encoding::WebSocketSequenced`]; with
//! permessage-deflate the whole binary payload (prefix included) is what is compressed
//! ([`super::Encoding::WebSocketSequencedDeflate`]).

use crate::proto::frame::{header_len, write_header, Opcode};

use super::Kind;

/// Bytes before the original payload in a sequence-framed message.
pub const SEQ_PREFIX_LEN: usize = 9;

/// The whole sequence-framed WebSocket frame for `payload` of `kind` numbered `seq`.
pub fn encode_sequenced(seq: u64, kind: Kind, payload: &[u8]) -> Vec<u8> {
    let body = SEQ_PREFIX_LEN + payload.len();
    let mut out = Vec::with_capacity(header_len(body) + body);
    write_header(&mut out, true, Opcode::Binary, body);
    out.extend_from_slice(&seq_prefix(seq, kind));
    out.extend_from_slice(payload);
    out
}

/// The bytes before the original payload: `seq` big-endian, then the kind's opcode.
pub fn seq_prefix(seq: u64, kind: Kind) -> [u8; SEQ_PREFIX_LEN] {
    let mut prefix = [0; SEQ_PREFIX_LEN];
    prefix[..8].copy_from_slice(&seq.to_be_bytes());
    prefix[8] = kind.opcode().as_u8();
    prefix
}

/// Wire size of the sequence-framed frame of a `payload_len`-byte payload.
pub fn sequenced_len(payload_len: usize) -> usize {
    let body = SEQ_PREFIX_LEN + payload_len;
    header_len(body) + body
}

/// Parse a sequence-framed payload: (seq, original opcode byte, original payload).
pub fn parse_seq_payload(payload: &[u8]) -> Option<(u64, u8, &[u8])> {
    if payload.len() < SEQ_PREFIX_LEN {
        return None;
    }
    let seq = u64::from_be_bytes(payload[..8].try_into().ok()?);
    Some((seq, payload[8], &payload[SEQ_PREFIX_LEN..]))
}

/// The text control message saying that seqs `from..=to` are no longer retained.
pub fn gap_message(from: u64, to: u64) -> String {
    format!(r#"{{"type":"gap","from":{from},"to":{to}}}"#)
}

/// The text control message saying that the room's numbering does not contain the
/// client's `since` (history dropped or server restarted); it continues at `next`.
pub fn reset_message(next: u64) -> String {
    format!(r#"{{"type":"reset","next":{next}}}"#)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::frame::parse_header;

    #[test]
    fn seq_framing_round_trips_text_and_binary() {
        for (kind, code) in [(Kind::Text, 1u8), (Kind::Binary, 2u8)] {
            for len in [0usize, 100, 300, 70_000] {
                let payload = vec![7u8; len];
                let wire = encode_sequenced(0x0102_0304_0506_0708, kind, &payload);
                assert_eq!(wire.len(), sequenced_len(len));
                let (header, at) = parse_header(&wire).unwrap().unwrap();
                assert_eq!((header.opcode, header.fin), (Opcode::Binary, true));
                assert_eq!(header.payload_len as usize, wire.len() - at);
                let (seq, c, p) = parse_seq_payload(&wire[at..]).unwrap();
                assert_eq!((seq, c, p), (0x0102_0304_0506_0708, code, &payload[..]));
            }
        }
        assert_eq!(parse_seq_payload(&[0; 8]), None, "shorter than the prefix");
    }
}

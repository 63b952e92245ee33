//! Sequenced publishes: a published frame together with its room sequence number and
//! the same message in the sequence framing, both encoded once per publish.
//!
//! Sequence framing (what a client that connected with `?seq=1` or `?since=N` gets for
//! every room message): one **binary** frame whose payload is the 8-byte big-endian
//! sequence number, one byte with the original opcode (1 = text, 2 = binary), then the
//! original payload. Control messages to such a client (`{"type":"gap",…}`) are text
//! frames, so a sequenced client can tell them apart by opcode alone.

use bytes::Bytes;

use super::prepared::PreparedFrame;
use super::tally::PublishTally;
use crate::proto::frame::{encode_frame, header_len, Opcode};

/// Bytes before the original payload in a sequence-framed message.
pub const SEQ_PREFIX_LEN: usize = 9;

/// One publish as delivered when history is on.
#[derive(Debug)]
pub struct Sequenced {
    pub seq: u64,
    /// The frame for clients that did not ask for sequence numbers.
    pub plain: PreparedFrame,
    /// The frame in the sequence framing (also what the history ring keeps).
    pub framed: PreparedFrame,
    /// Recipients over the shards it is sent to (one part per shard).
    pub tally: PublishTally,
}

impl Sequenced {
    /// The frame a connection gets, by whether it asked for sequence numbers.
    pub fn frame_for(&self, sequenced: bool) -> &PreparedFrame {
        if sequenced {
            &self.framed
        } else {
            &self.plain
        }
    }
}

/// A sequence-framed frame encoded before its number is known (outside any lock); the
/// number is written in with [`SeqFrameDraft::finish`].
pub struct SeqFrameDraft {
    wire: Vec<u8>,
    seq_at: usize,
    published: PreparedFrame,
}

impl SeqFrameDraft {
    /// Build the draft from a published data frame (`None` for a non-data frame).
    pub fn new(frame: &PreparedFrame) -> Option<Self> {
        let (opcode, payload) = frame.data_parts()?;
        let code = match opcode {
            Opcode::Text => 1u8,
            _ => 2u8,
        };
        let mut body = Vec::with_capacity(SEQ_PREFIX_LEN + payload.len());
        body.extend_from_slice(&[0; 8]);
        body.push(code);
        body.extend_from_slice(payload);
        let seq_at = header_len(body.len());
        Some(SeqFrameDraft {
            wire: encode_frame(true, Opcode::Binary, &body),
            seq_at,
            published: frame.clone(),
        })
    }

    /// Write the sequence number in and freeze the bytes; the publish will be delivered
    /// on `shards` shards (the parts of its [`Sequenced::tally`]; 0 when it is only kept).
    pub fn finish(mut self, seq: u64, shards: usize) -> Sequenced {
        self.wire[self.seq_at..self.seq_at + 8].copy_from_slice(&seq.to_be_bytes());
        let framed = self
            .published
            .with_wire(Bytes::from(std::mem::take(&mut self.wire)));
        Sequenced {
            seq,
            plain: self.published,
            framed,
            tally: PublishTally::new(shards),
        }
    }
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

    #[test]
    fn seq_framing_round_trips_text_and_binary() {
        for (op, code) in [(Opcode::Text, 1u8), (Opcode::Binary, 2u8)] {
            let payload = vec![7u8; 300];
            let frame = PreparedFrame::encode(op, &payload);
            let s = SeqFrameDraft::new(&frame)
                .unwrap()
                .finish(0x0102_0304_0506_0708, 1);
            assert!(s.plain.shares_buffer_with(&frame));
            let (framed_op, body) = s.framed.data_parts().unwrap();
            assert_eq!(framed_op, Opcode::Binary);
            let (seq, c, p) = parse_seq_payload(body).unwrap();
            assert_eq!((seq, c, p), (0x0102_0304_0506_0708, code, &payload[..]));
            assert_eq!(s.framed.published_at(), frame.published_at());
        }
    }
}

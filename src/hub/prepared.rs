//! Prepared frames: a WebSocket frame (header + payload) serialized once and shared.
//!
//! A publish encodes its frame exactly once; every subscriber on every shard queues a
//! reference-counted handle to the same bytes (`bytes::Bytes`, so a clone is one atomic
//! increment and no copy). The encoding counter exists so tests can prove "once per
//! publish" independently of subscriber and shard counts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;

use crate::proto::frame::{encode_frame, parse_header, Opcode};

static ENCODINGS: AtomicU64 = AtomicU64::new(0);

/// Number of data frames encoded by [`PreparedFrame::encode`] in this process.
pub fn encodings() -> u64 {
    ENCODINGS.load(Ordering::Relaxed)
}

/// One serialized server frame, cheap to clone and safe to share across shards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreparedFrame {
    bytes: Bytes,
    /// When the publish that encoded it happened (None for control frames).
    published_at: Option<Instant>,
}

impl PreparedFrame {
    /// Encode a complete (FIN) data frame once. Counted in [`encodings`].
    pub fn encode(opcode: Opcode, payload: &[u8]) -> Self {
        ENCODINGS.fetch_add(1, Ordering::Relaxed);
        PreparedFrame {
            bytes: Bytes::from(encode_frame(true, opcode, payload)),
            published_at: Some(Instant::now()),
        }
    }

    /// Wrap bytes that are already a wire frame (control frames, handshake responses).
    pub fn from_wire(bytes: Vec<u8>) -> Self {
        PreparedFrame {
            bytes: Bytes::from(bytes),
            published_at: None,
        }
    }

    /// The same publish (same publish time) with other wire bytes: the sequence-framed
    /// copy of a data frame (see [`super::sequenced`]).
    pub fn with_wire(&self, bytes: Bytes) -> Self {
        PreparedFrame {
            bytes,
            published_at: self.published_at,
        }
    }

    /// Opcode and payload of a complete, unmasked data frame (`None` otherwise).
    pub fn data_parts(&self) -> Option<(Opcode, &[u8])> {
        let (header, len) = parse_header(&self.bytes).ok()??;
        let payload = self.bytes.get(len..)?;
        let data = matches!(header.opcode, Opcode::Text | Opcode::Binary);
        (data && header.fin && payload.len() as u64 == header.payload_len)
            .then_some((header.opcode, payload))
    }

    /// The bytes to put on the wire.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// When it was published (encoded), for data frames.
    pub fn published_at(&self) -> Option<Instant> {
        self.published_at
    }

    /// True when both handles share one buffer (no copy was made).
    pub fn shares_buffer_with(&self, other: &PreparedFrame) -> bool {
        self.bytes.as_ptr() == other.bytes.as_ptr() && self.bytes.len() == other.bytes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_one_buffer_and_encode_counts_once() {
        let before = encodings();
        let f = PreparedFrame::encode(Opcode::Binary, b"hello");
        let clones: Vec<_> = (0..100).map(|_| f.clone()).collect();
        assert!(clones.iter().all(|c| c.shares_buffer_with(&f)));
        assert!(encodings() > before);
        assert_eq!(f.bytes(), &[0x82, 5, b'h', b'e', b'l', b'l', b'o']);
    }
}

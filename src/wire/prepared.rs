//! Prepared frames: one WebSocket frame (header + payload) serialized once and shared.
//!
//! A [`PreparedFrame`] is the shared form of a frame: a reference-counted handle to
//! wire bytes (`bytes::Bytes`, so a clone is one atomic increment and no copy; a
//! connection's queue holds it behind a shard-local `Rc`, `crate::conn::LocalFrame`,
//! so a fan-out takes one atomic reference per shard, not per member), plus the
//! publish time of the [`super::Publication`] it is a form of, for the publish→write
//! latency histogram. Forms of a publication are built by
//! [`super::Publication::frame`]; control frames and HTTP responses are wrapped with
//! [`PreparedFrame::from_wire`]; one-off data frames to a single connection
//! (`Context::send`, `gap` messages) with [`PreparedFrame::encode`] (or, compressed
//! for a client that negotiated permessage-deflate, [`PreparedFrame::encode_for`]); on
//! an SSE stream, one chunk each ([`PreparedFrame::sse_message`],
//! [`PreparedFrame::sse_event`]).

use std::time::Instant;

use bytes::Bytes;

use crate::proto::deflate::compressed_frame;

use super::compressions::count_compression;
use crate::proto::frame::{encode_frame, Opcode};
use crate::proto::sse::{chunk, event, message_chunk};

/// One serialized server frame, cheap to clone and safe to share across shards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreparedFrame {
    bytes: Bytes,
    /// When the publication it is a form of was published (None for control frames).
    published_at: Option<Instant>,
}

impl PreparedFrame {
    /// Encode a complete (FIN) data frame for one connection, published now.
    pub fn encode(opcode: Opcode, payload: &[u8]) -> Self {
        PreparedFrame {
            bytes: Bytes::from(encode_frame(true, opcode, payload)),
            published_at: Some(Instant::now()),
        }
    }

    /// [`PreparedFrame::encode`], compressed (permessage-deflate, RSV1 set) when
    /// `deflate_min` is `Some(min_size)`, `payload` is at least that long and the
    /// compressed frame is smaller. Compresses once per call: for one connection only.
    pub fn encode_for(opcode: Opcode, payload: &[u8], deflate_min: Option<usize>) -> Self {
        let min = deflate_min.filter(|min| payload.len() >= *min);
        if min.is_some() {
            count_compression();
        }
        match min.and_then(|min| compressed_frame(opcode, &[payload], min)) {
            Some(wire) => PreparedFrame {
                bytes: Bytes::from(wire),
                published_at: Some(Instant::now()),
            },
            None => Self::encode(opcode, payload),
        }
    }

    /// One Server-Sent Events message for one connection, as a chunk
    /// ([`crate::proto::sse::message_chunk`]: text as `data:` lines, binary as the
    /// `binary` event with base64 data; no id).
    pub fn sse_message(binary: bool, payload: &[u8]) -> Self {
        Self::from_wire(message_chunk(None, binary, payload))
    }

    /// One Server-Sent Events event of type `kind` (one line, ours: `gap`, `reset`, or
    /// checked by the caller) with `data` split into `data:` lines, as a chunk.
    pub fn sse_event(kind: &str, data: &str) -> Self {
        Self::from_wire(chunk(&event(None, Some(kind), data.as_bytes())))
    }

    /// A wire form of a publication published at `published_at` (`bytes` is a whole
    /// data frame).
    pub(crate) fn published(bytes: Bytes, published_at: Instant) -> Self {
        PreparedFrame {
            bytes,
            published_at: Some(published_at),
        }
    }

    /// Wrap bytes that are already a wire frame (control frames, handshake responses).
    pub fn from_wire(bytes: Vec<u8>) -> Self {
        PreparedFrame {
            bytes: Bytes::from(bytes),
            published_at: None,
        }
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

    /// When it was published, for data frames.
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
    fn clones_share_one_buffer() {
        let f = PreparedFrame::encode(Opcode::Binary, b"hello");
        let clones: Vec<_> = (0..100).map(|_| f.clone()).collect();
        assert!(clones.iter().all(|c| c.shares_buffer_with(&f)));
        assert_eq!(f.bytes(), &[0x82, 5, b'h', b'e', b'l', b'l', b'o']);
    }
}

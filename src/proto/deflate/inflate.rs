//! The inbound half of permessage-deflate (RFC 7692 §7.2.2): one message's payload
//! with `00 00 ff ff` appended is inflated with a cap on the output, so a
//! decompression bomb costs at most `max` bytes (then 1009) and is never inflated
//! whole.
//!
//! State: a client that agreed to `client_no_context_takeover` compresses each message
//! alone, so its messages are inflated with this thread's shared decompressor (reset
//! before each use) and the connection holds nothing. A client that keeps its context
//! needs its own decompressor (zlib-rs state and a 32 KiB window: about 21 KiB resident
//! per connection after a first small message, measured in the README); it is made on
//! its first compressed message, so an idle connection that never sent one holds
//! nothing either.

use std::cell::RefCell;

use flate2::{Decompress, FlushDecompress, Status};

use super::compress::SYNC_TAIL;
use crate::proto::error::ProtocolError;

/// Output grows by at most this much at a time (and never past the cap).
const CHUNK: usize = 64 * 1024;

thread_local! {
    /// Shared by the connections of this thread that keep no context.
    static SHARED: RefCell<Decompress> = RefCell::new(Decompress::new(false));
}

/// One connection's inbound decompression state: one pointer, null until a client
/// that keeps its context sends its first compressed message.
#[derive(Debug, Default)]
pub struct Inflater {
    /// The client keeps its context between messages: `Some` once the first compressed
    /// message arrived. Unused (stays `None`) under `client_no_context_takeover`.
    context: Option<Box<Decompress>>,
}

impl Inflater {
    /// An inflater holding nothing (no allocation).
    pub const fn new() -> Self {
        Inflater { context: None }
    }

    /// True when it holds per-connection decompression state (for memory accounting).
    pub fn holds_context(&self) -> bool {
        self.context.is_some()
    }

    /// Inflate one message's compressed payload. `takeover`: the client keeps its
    /// compression context between messages (it did not agree to
    /// `client_no_context_takeover`), so this connection's own state is used and kept.
    ///
    /// # Errors
    /// 1009 once the output passes `max` bytes (nothing beyond `max + 1` bytes is ever
    /// allocated); 1007 for data that is not valid DEFLATE (RFC 7692 §7.2.2 leaves the
    /// code open; 1007 "inconsistent data" is what the other servers answer).
    pub fn inflate(
        &mut self,
        compressed: &[u8],
        max: usize,
        takeover: bool,
    ) -> Result<Vec<u8>, ProtocolError> {
        if !takeover {
            return SHARED.with(|d| {
                let mut d = d.borrow_mut();
                d.reset(false);
                run(&mut d, compressed, max)
            });
        }
        let d = self
            .context
            .get_or_insert_with(|| Box::new(Decompress::new(false)));
        let result = run(d, compressed, max);
        if result.is_err() {
            // The stream is broken; the connection is failed anyway.
            self.context = None;
        }
        result
    }
}

/// Inflate `compressed` followed by the sync tail into a new buffer capped at `max`.
fn run(d: &mut Decompress, compressed: &[u8], max: usize) -> Result<Vec<u8>, ProtocolError> {
    let mut out = Vec::new();
    for part in [compressed, &SYNC_TAIL[..]] {
        let mut pos = 0;
        loop {
            if out.len() == out.capacity() {
                if out.len() > max {
                    return Err(ProtocolError::too_big("message too big"));
                }
                let room = (max + 1 - out.len()).min(CHUNK.max(out.len()));
                out.reserve_exact(room);
            }
            let (in_before, out_before) = (d.total_in(), out.len());
            let status = d
                .decompress_vec(&part[pos..], &mut out, FlushDecompress::Sync)
                .map_err(|_| ProtocolError::invalid_payload("invalid compressed data"))?;
            pos += (d.total_in() - in_before) as usize;
            if out.len() > max {
                return Err(ProtocolError::too_big("message too big"));
            }
            if status == Status::StreamEnd {
                // BFINAL: the message ends its deflate stream (§7.2.3.4 allows it); the
                // next message starts a new one.
                d.reset(false);
                return Ok(out);
            }
            let room_left = out.len() < out.capacity();
            if pos == part.len() && room_left {
                break;
            }
            if d.total_in() == in_before && out.len() == out_before && room_left {
                return Err(ProtocolError::invalid_payload("invalid compressed data"));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::deflate::compress::compress;

    #[test]
    fn a_bomb_stops_at_the_cap() {
        let zeros = vec![0u8; 8 << 20];
        let bomb = compress(&[&zeros]);
        assert!(bomb.len() < 128 << 10, "{} bytes", bomb.len());
        let e = Inflater::new().inflate(&bomb, 1 << 20, false).unwrap_err();
        assert_eq!(e.code, 1009);
        assert_eq!(
            Inflater::new()
                .inflate(&bomb, 8 << 20, false)
                .unwrap()
                .len(),
            8 << 20,
            "exactly the cap is fine"
        );
    }

    #[test]
    fn garbage_is_1007() {
        let e = Inflater::new()
            .inflate(&[0xff; 32], 1 << 20, true)
            .unwrap_err();
        assert_eq!(e.code, 1007);
    }

    #[test]
    fn context_takeover_state_is_made_on_first_use_and_kept() {
        // A client keeping its context: the second message refers back to the first.
        let mut c = flate2::Compress::new(flate2::Compression::new(6), false);
        let msg = b"the same forty-odd bytes of text, again and again";
        let mut wire = Vec::new();
        for _ in 0..2 {
            let mut out = Vec::with_capacity(256);
            c.compress_vec(msg, &mut out, flate2::FlushCompress::Sync)
                .unwrap();
            out.truncate(out.len() - 4);
            wire.push(out);
        }
        assert!(
            wire[1].len() < wire[0].len() / 2,
            "second refers to the first"
        );
        let mut keep = Inflater::new();
        assert!(!keep.holds_context());
        assert_eq!(keep.inflate(&wire[0], 1000, true).unwrap(), msg);
        assert!(keep.holds_context());
        assert_eq!(keep.inflate(&wire[1], 1000, true).unwrap(), msg);
        let mut fresh = Inflater::new();
        assert_eq!(fresh.inflate(&wire[0], 1000, false).unwrap(), msg);
        assert!(!fresh.holds_context());
        assert!(
            fresh.inflate(&wire[1], 1000, false).is_err(),
            "no context: cannot decode"
        );
    }

    #[test]
    fn a_final_block_ends_the_message_and_the_next_starts_fresh() {
        let mut c = flate2::Compress::new(flate2::Compression::new(6), false);
        let mut out = Vec::with_capacity(256);
        c.compress_vec(b"abc", &mut out, flate2::FlushCompress::Finish)
            .unwrap();
        let mut i = Inflater::new();
        assert_eq!(i.inflate(&out, 100, true).unwrap(), b"abc");
        assert_eq!(i.inflate(&compress(&[b"xyz"]), 100, true).unwrap(), b"xyz");
    }
}

//! The outbound half of permessage-deflate (RFC 7692 §7.2.1): one message compressed
//! as raw DEFLATE with a sync flush, the trailing `00 00 ff ff` removed, framed with
//! RSV1 set on its (only) frame.
//!
//! We always agree to `server_no_context_takeover`, so every message is compressed on
//! its own: the compressor is reset after each one, which makes one compressed form
//! valid for every subscriber. The compressor (flate2 on the zlib-rs backend, a few
//! hundred KiB of state) is kept per thread and reused, never per
//! connection.

use std::cell::RefCell;

use flate2::{Compress, Compression, FlushCompress, Status};

use crate::proto::frame::{header_len, write_header, Opcode};

/// The empty stored block a sync flush ends with, removed from every message (§7.2.1)
/// and appended again by the receiver (§7.2.2).
pub const SYNC_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// RSV1: set on the first frame of a compressed message (RFC 7692 §6).
pub const RSV1: u8 = 0x40;

/// zlib level used for every message. On JSON-like text with zlib-rs (README,
/// "Compression"): level 1 emits static Huffman codes only and leaves 25–60 % more bytes
/// than level 2; level 6 (zlib's default, Node `ws`'s) saves 0–7 % more than level 2
/// for about twice its CPU. A publish is compressed once but its bytes go to every
/// subscriber, so the ratio matters more than the CPU: level 2.
pub const LEVEL: u32 = 2;

thread_local! {
    /// This thread's compressor, reset after each message.
    static COMPRESSOR: RefCell<Compress> = RefCell::new(Compress::new(Compression::new(LEVEL), false));
}

/// The compressed payload of one message made of `parts` concatenated (raw DEFLATE,
/// sync-flushed, without the `00 00 ff ff` tail), in one exactly-sized-ish buffer.
pub fn compress(parts: &[&[u8]]) -> Vec<u8> {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    // Incompressible input grows by 5 bytes per 16 KiB stored block plus the flush.
    let mut out = Vec::with_capacity(total + total / 1024 + 64);
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        c.reset();
        let last = parts.len().saturating_sub(1);
        for (i, part) in parts.iter().enumerate() {
            let flush = if i == last {
                FlushCompress::Sync
            } else {
                FlushCompress::None
            };
            feed(&mut c, part, &mut out, flush);
        }
        if parts.is_empty() {
            feed(&mut c, &[], &mut out, FlushCompress::Sync);
        }
        c.reset();
    });
    if out.ends_with(&SYNC_TAIL) {
        out.truncate(out.len() - SYNC_TAIL.len());
    }
    out
}

/// Run `input` through the compressor, growing `out` as needed, until it is all
/// consumed and (for a sync flush) all output is out.
fn feed(c: &mut Compress, input: &[u8], out: &mut Vec<u8>, flush: FlushCompress) {
    let mut pos = 0;
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity().max(256));
        }
        let before = c.total_in();
        // Raw deflate into a Vec with spare room: the only errors are API misuse.
        let status = c
            .compress_vec(&input[pos..], out, flush)
            .unwrap_or(Status::StreamEnd);
        pos += (c.total_in() - before) as usize;
        let room_left = out.capacity() > out.len();
        if status == Status::StreamEnd || (pos == input.len() && room_left) {
            return;
        }
    }
}

/// A whole unmasked frame (FIN, RSV1) carrying an already compressed payload.
pub fn encode_compressed_frame(opcode: Opcode, compressed: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(header_len(compressed.len()) + compressed.len());
    write_header(&mut out, true, opcode, compressed.len());
    out[0] |= RSV1;
    out.extend_from_slice(compressed);
    out
}

/// The compressed frame for a message of `opcode` made of `parts`, when the message is
/// at least `min_size` bytes and compressing makes the frame smaller; `None` otherwise
/// (send it plain, RSV1 clear).
pub fn compressed_frame(opcode: Opcode, parts: &[&[u8]], min_size: usize) -> Option<Vec<u8>> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    if len < min_size {
        return None;
    }
    let compressed = compress(parts);
    (compressed.len() < len).then(|| encode_compressed_frame(opcode, &compressed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::deflate::Inflater;
    use crate::proto::frame::parse_first_byte_ext;

    fn json(n: usize) -> Vec<u8> {
        let mut s = String::new();
        for i in 0.. {
            if s.len() >= n {
                break;
            }
            s.push_str(&format!(
                r#"{{"id":{i},"user":"u{}","text":"hello world"}},"#,
                i % 7
            ));
        }
        s.truncate(n);
        s.into_bytes()
    }

    #[test]
    fn round_trips_through_the_inflater_and_drops_the_tail() {
        let data = json(1024);
        let c = compress(&[&data]);
        assert!(c.len() < data.len() / 3, "{} bytes", c.len());
        assert!(!c.ends_with(&SYNC_TAIL));
        let mut inflater = Inflater::new();
        assert_eq!(inflater.inflate(&c, 1 << 20, false).unwrap(), data);
    }

    #[test]
    fn parts_compress_as_their_concatenation() {
        let data = json(3000);
        let (a, b) = data.split_at(9);
        let c = compress(&[a, b]);
        let mut inflater = Inflater::new();
        assert_eq!(inflater.inflate(&c, 1 << 20, false).unwrap(), data);
        assert_eq!(
            Inflater::new().inflate(&compress(&[]), 10, false).unwrap(),
            b""
        );
    }

    #[test]
    fn each_message_stands_alone() {
        // No context takeover: a receiver without context decodes every message.
        let data = json(500);
        let first = compress(&[&data]);
        let second = compress(&[&data]);
        assert_eq!(
            first, second,
            "same input, same output: the stream was reset"
        );
    }

    #[test]
    fn large_incompressible_input_round_trips() {
        let mut x = 0x1234_5678u32;
        let data: Vec<u8> = (0..200_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let c = compress(&[&data]);
        assert_eq!(Inflater::new().inflate(&c, 1 << 20, true).unwrap(), data);
        assert_eq!(
            compressed_frame(Opcode::Binary, &[&data], 64),
            None,
            "not smaller"
        );
    }

    #[test]
    fn frames_carry_rsv1_and_honour_the_minimum() {
        let data = json(200);
        assert_eq!(compressed_frame(Opcode::Text, &[&data], 201), None);
        let f = compressed_frame(Opcode::Text, &[&data], 64).unwrap();
        assert_eq!(f[0], 0x80 | RSV1 | 0x1);
        assert_eq!(
            parse_first_byte_ext(f[0], true),
            Ok((true, Opcode::Text, true))
        );
        assert!(f.len() < data.len());
    }
}

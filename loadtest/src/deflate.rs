//! permessage-deflate (RFC 7692) for `fanout --deflate`: the offer added to the upgrade
//! request, inflating compressed server frames, and
//! the JSON-like filler that makes message bodies compress like real traffic (zeros would
//! compress a thousandfold and flatter the server).
//!
//! ringcast always agrees to `server_no_context_takeover`, so every compressed message
//! inflates on its own: one decompressor per thread, reset before each message, serves
//! every connection of the thread, and a connection holds no inflate state.

use std::cell::RefCell;

use flate2::{Decompress, FlushDecompress, Status};

/// The offer a browser makes (`client_max_window_bits` without a value).
pub const OFFER: &str = "permessage-deflate; client_max_window_bits";

/// The empty stored block a sender removes from each compressed message (§7.2.1).
const SYNC_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

thread_local! {
    static INFLATE: RefCell<(Decompress, Vec<u8>)> =
        RefCell::new((Decompress::new(false), Vec::with_capacity(64 * 1024)));
}

/// Adds `Sec-WebSocket-Extensions: OFFER` to an upgrade request already in `out`
/// (which ends with the blank line).
pub fn add_offer(out: &mut Vec<u8>) {
    if out.ends_with(b"\r\n\r\n") {
        out.truncate(out.len() - 2);
        out.extend_from_slice(format!("Sec-WebSocket-Extensions: {OFFER}\r\n\r\n").as_bytes());
    }
}

/// Inflates one compressed message (its payload, without the sync tail) and calls `f`
/// with the result; `Err` for data that is not DEFLATE or inflates past `max` bytes.
pub fn with_inflated<R>(
    compressed: &[u8],
    max: usize,
    f: impl FnOnce(&[u8]) -> R,
) -> Result<R, String> {
    INFLATE.with(|cell| {
        let (d, out) = &mut *cell.borrow_mut();
        d.reset(false);
        out.clear();
        for part in [compressed, &SYNC_TAIL[..]] {
            let mut pos = 0;
            loop {
                if out.len() == out.capacity() {
                    if out.len() > max {
                        return Err(format!("compressed message inflates past {max} bytes"));
                    }
                    out.reserve(out.capacity().max(4096));
                }
                let before = d.total_in();
                let status = d
                    .decompress_vec(&part[pos..], out, FlushDecompress::Sync)
                    .map_err(|e| format!("invalid compressed message: {e}"))?;
                pos += (d.total_in() - before) as usize;
                if status == Status::StreamEnd || (pos == part.len() && out.len() < out.capacity())
                {
                    break;
                }
            }
        }
        if out.len() > max {
            return Err(format!("compressed message inflates past {max} bytes"));
        }
        Ok(f(out))
    })
}

/// Fills `buf` with JSON-like text (records of a few numbers and names), the kind of
/// body fan-out traffic carries; `seed` varies the numbers.
pub fn fill_json(buf: &mut [u8], seed: u64) {
    let mut text = String::with_capacity(buf.len() + 96);
    let mut i = seed;
    while text.len() < buf.len() {
        text.push_str(&format!(
            r#"{{"id":{i},"type":"trade","symbol":"SYM{}","price":{}.{:02},"qty":{}}},"#,
            i % 13,
            100 + i % 50,
            i % 100,
            (i * 7919) % 1000
        ));
        i += 1;
    }
    buf.copy_from_slice(&text.as_bytes()[..buf.len()]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compress, Compression, FlushCompress};

    fn compress(data: &[u8]) -> Vec<u8> {
        let mut c = Compress::new(Compression::new(2), false);
        let mut out = Vec::with_capacity(data.len() + 64);
        c.compress_vec(data, &mut out, FlushCompress::Sync).unwrap();
        out.truncate(out.len() - 4);
        out
    }

    #[test]
    fn offer_goes_before_the_blank_line() {
        let mut req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
        add_offer(&mut req);
        assert_eq!(
            req,
            format!("GET / HTTP/1.1\r\nHost: x\r\nSec-WebSocket-Extensions: {OFFER}\r\n\r\n")
                .into_bytes()
        );
    }

    #[test]
    fn inflates_each_message_alone_and_caps_the_output() {
        let mut body = vec![0u8; 1024];
        fill_json(&mut body, 3);
        assert!(body.starts_with(br#"{"id":3,"#));
        let z = compress(&body);
        assert!(z.len() < body.len() / 3);
        for _ in 0..3 {
            assert_eq!(with_inflated(&z, 1 << 20, |p| p.to_vec()).unwrap(), body);
        }
        assert!(with_inflated(&z, 100, |p| p.len()).is_err());
        assert!(with_inflated(&[0xff; 16], 1 << 20, |p| p.len()).is_err());
    }

    #[test]
    fn rsv1_marks_a_compressed_data_frame_only_when_offered() {
        use crate::codec::{parse_frame, parse_frame_ext, FrameError};
        let f = parse_frame_ext(&[0xC2, 0x01, 0xAA], 10, true)
            .unwrap()
            .unwrap();
        assert!(f.compressed && f.fin && f.payload == [0xAA]);
        assert!(
            !parse_frame_ext(&[0x82, 0x00], 10, true)
                .unwrap()
                .unwrap()
                .compressed
        );
        for b0 in [0xC0u8, 0xC9, 0xA2, 0x92] {
            assert_eq!(
                parse_frame_ext(&[b0, 0x00], 10, true),
                Err(FrameError::ReservedBits)
            );
        }
        assert_eq!(
            parse_frame(&[0xC2, 0x00], 10),
            Err(FrameError::ReservedBits)
        );
    }
}

//! Client-to-server payload masking (RFC 6455 §5.3): XOR with a 4-byte key.
//!
//! `apply_mask` is the hot path (every received payload byte goes through it),
//! so it works a u64 at a time with the key rotated to the current offset;
//! `apply_mask_scalar` is the obvious byte loop, kept as the reference for
//! tests and benchmarks. Both take and return the key offset so a payload that
//! arrives split over several reads can be unmasked piece by piece.

/// XOR `buf` in place with `key`, starting at key position `offset % 4`.
///
/// Returns the key offset for the byte following `buf`, i.e.
/// `(offset + buf.len()) % 4`. Words are loaded with `from_ne_bytes`, so the
/// buffer needs no particular alignment; only the tail (< 8 bytes) is scalar.
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) -> usize {
    let start = offset % 4;
    let next = (start + buf.len() % 4) % 4;
    // Rotate the key so that `rotated[0]` applies to `buf[0]`. Every 8-byte
    // chunk then starts at the same key phase (8 is a multiple of 4).
    let rotated = [
        key[start],
        key[(start + 1) % 4],
        key[(start + 2) % 4],
        key[(start + 3) % 4],
    ];
    let word = u64::from_ne_bytes([
        rotated[0], rotated[1], rotated[2], rotated[3], rotated[0], rotated[1], rotated[2],
        rotated[3],
    ]);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        let masked = u64::from_ne_bytes(bytes) ^ word;
        chunk.copy_from_slice(&masked.to_ne_bytes());
    }
    apply_mask_scalar(chunks.into_remainder(), rotated, 0);
    next
}

/// Byte-at-a-time reference implementation of [`apply_mask`]; same contract.
pub fn apply_mask_scalar(buf: &mut [u8], key: [u8; 4], offset: usize) -> usize {
    let mut pos = offset % 4;
    for byte in buf.iter_mut() {
        *byte ^= key[pos];
        pos = (pos + 1) % 4;
    }
    pos
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    #[test]
    fn rfc_example_hello() {
        // RFC 6455 §5.7: masked "Hello" with key 37 fa 21 3d.
        let mut buf = [0x7f, 0x9f, 0x4d, 0x51, 0x58];
        let next = apply_mask(&mut buf, KEY, 0);
        assert_eq!(&buf, b"Hello");
        assert_eq!(next, 1);
    }

    #[test]
    fn empty_buffer_keeps_offset() {
        assert_eq!(apply_mask(&mut [], KEY, 3), 3);
        assert_eq!(apply_mask(&mut [], KEY, 7), 3);
        assert_eq!(apply_mask_scalar(&mut [], KEY, 2), 2);
    }

    #[test]
    fn masking_twice_is_identity() {
        let original: Vec<u8> = (0..=255u8).collect();
        let mut buf = original.clone();
        apply_mask(&mut buf, KEY, 1);
        assert_ne!(buf, original);
        apply_mask(&mut buf, KEY, 1);
        assert_eq!(buf, original);
    }

    proptest! {
        #[test]
        fn word_version_matches_scalar(
            data in proptest::collection::vec(any::<u8>(), 0..300),
            key in any::<[u8; 4]>(),
            offset in 0usize..16,
        ) {
            let mut fast = data.clone();
            let mut slow = data;
            let a = apply_mask(&mut fast, key, offset);
            let b = apply_mask_scalar(&mut slow, key, offset);
            prop_assert_eq!(fast, slow);
            prop_assert_eq!(a, b);
        }

        #[test]
        fn piecewise_equals_whole(
            data in proptest::collection::vec(any::<u8>(), 0..300),
            key in any::<[u8; 4]>(),
            cut in any::<proptest::sample::Index>(),
        ) {
            let mut whole = data.clone();
            apply_mask_scalar(&mut whole, key, 0);
            let mut pieces = data;
            let at = cut.index(pieces.len() + 1);
            let (left, right) = pieces.split_at_mut(at);
            let off = apply_mask(left, key, 0);
            apply_mask(right, key, off);
            prop_assert_eq!(pieces, whole);
        }
    }
}

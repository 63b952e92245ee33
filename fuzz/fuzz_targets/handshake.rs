//! `parse_upgrade` on arbitrary bytes, at every split: the server re-parses its buffered
//! head after each read, so every prefix of the input is a state it can be in.
//!
//! Checks: no panic; a `Complete` head lies inside the bytes given and inside `max_head`,
//! and ends with a line feed; and once a prefix is decided (`Complete` or a rejection),
//! every longer prefix gives the same answer, so the outcome does not depend on how the
//! bytes were split into reads (as `parse_upgrade`'s doc promises).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringcast::proto::handshake::{parse_upgrade, HeadParse};
use ringcast::proto::DEFAULT_MAX_HEAD_BYTES;

fn check_every_split(data: &[u8], max_head: usize) {
    let mut decided = None;
    for split in 0..=data.len() {
        let prefix = &data[..split];
        let result = parse_upgrade(prefix, max_head);
        if let Ok(HeadParse::Complete { head_len, .. }) = &result {
            assert!(
                *head_len <= split,
                "head_len {head_len} > {split} bytes given"
            );
            assert!(
                *head_len <= max_head,
                "head_len {head_len} > max_head {max_head}"
            );
            assert_eq!(
                prefix[*head_len - 1],
                b'\n',
                "head does not end with a line feed"
            );
        }
        if let Ok(HeadParse::Partial) = &result {
            assert!(
                split <= max_head,
                "Partial with {split} bytes > max_head {max_head}"
            );
        }
        match &decided {
            Some((at, first)) => assert_eq!(
                &result, first,
                "prefix of {split} bytes answers differently from the prefix of {at} bytes \
                 (max_head {max_head})"
            ),
            None if result != Ok(HeadParse::Partial) => decided = Some((split, result)),
            None => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check_every_split(data, DEFAULT_MAX_HEAD_BYTES);
    // A small limit, derived from the input, reaches the 431 paths with short inputs.
    let small = 16 + usize::from(data.last().copied().unwrap_or(0));
    check_every_split(data, small);
});

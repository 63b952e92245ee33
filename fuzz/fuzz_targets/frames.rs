//! The streaming `Decoder` on arbitrary bytes, split into reads at points derived from the
//! input, fed the way the server feeds it (`decode` in a loop until the read is used up).
//!
//! Input layout: byte 0 picks the message-size limit (bits 0-2) and permessage-deflate
//! (bit 3: negotiated, so RSV1 marks compressed messages that are inflated under the
//! limit; bit 4: with `client_no_context_takeover`), bytes 1..9 seed the split points,
//! byte 9 bounds the read size; the rest is the client byte stream.
//!
//! Checks: no panic; every call on non-empty input consumes at least one byte and never
//! more than it was given; `Ok(None)` consumes the whole read; an error poisons the
//! decoder (every later call returns the same error and consumes everything); and the
//! same stream fed in one piece gives the same events and the same error (the decoder
//! promises its outcome does not depend on how the stream is split into reads).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringcast::proto::decoder::{Decoder, Event, ProtocolError};

const LIMITS: [usize; 8] = [0, 1, 125, 126, 1000, 65_535, 65_536, 16 << 20];

#[derive(Debug, PartialEq)]
struct Outcome {
    events: Vec<Event>,
    error: Option<ProtocolError>,
    idle: bool,
}

/// Feed `reads` in order; stop at the first error. `deflate`: permessage-deflate
/// negotiated, `Some(client_no_context_takeover)`.
fn run<'a>(reads: impl IntoIterator<Item = &'a [u8]>, max: usize, deflate: Option<bool>) -> Outcome {
    let mut decoder = Decoder::new();
    if let Some(no_context) = deflate {
        decoder.enable_deflate(no_context);
    }
    let mut events = Vec::new();
    for read in reads {
        if read.is_empty() {
            let d = decoder.decode(read, max);
            assert_eq!(d.consumed, 0, "consumed bytes of an empty read");
            assert_eq!(d.result, Ok(None), "an empty read produced something");
            continue;
        }
        let mut input = read;
        while !input.is_empty() {
            let d = decoder.decode(input, max);
            assert!(
                d.consumed > 0,
                "no progress on {} bytes: {:?}",
                input.len(),
                d.result
            );
            assert!(
                d.consumed <= input.len(),
                "consumed {} of {}",
                d.consumed,
                input.len()
            );
            match d.result {
                Ok(Some(event)) => events.push(event),
                Ok(None) => assert_eq!(d.consumed, input.len(), "Ok(None) left bytes behind"),
                Err(error) => {
                    // Poisoned: the same error, all input consumed, whatever comes next.
                    let rest = &input[d.consumed..];
                    let again = decoder.decode(rest, max);
                    assert_eq!(
                        again.result,
                        Err(error),
                        "poisoned decoder changed its error"
                    );
                    assert_eq!(again.consumed, rest.len(), "poisoned decoder left bytes");
                    assert!(!decoder.is_idle(), "poisoned decoder claims to be idle");
                    return Outcome {
                        events,
                        error: Some(error),
                        idle: false,
                    };
                }
            }
            input = &input[d.consumed..];
        }
    }
    Outcome {
        events,
        error: None,
        idle: decoder.is_idle(),
    }
}

/// Split `stream` into reads whose lengths come from a xorshift generator seeded by the
/// input (lengths 0..=max_read; a zero-length read is fed as an empty call).
fn split(stream: &[u8], mut seed: u64, max_read: usize) -> Vec<&[u8]> {
    let mut reads = Vec::new();
    let mut rest = stream;
    seed |= 1;
    while !rest.is_empty() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let n = (seed % (max_read as u64 + 1)) as usize;
        let (read, tail) = rest.split_at(n.min(rest.len()));
        reads.push(read);
        rest = tail;
    }
    reads
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 10 {
        return;
    }
    let max = LIMITS[usize::from(data[0] & 7)];
    let deflate = (data[0] & 8 != 0).then_some(data[0] & 16 != 0);
    let seed = u64::from_le_bytes(data[1..9].try_into().unwrap());
    let max_read = 1 + usize::from(data[9]) % 64;
    let stream = &data[10..];

    let whole = run([stream], max, deflate);
    let chunked = run(split(stream, seed, max_read), max, deflate);
    assert_eq!(
        chunked, whole,
        "split into reads vs one piece (limit {max})"
    );
    // Byte at a time is the most extreme split.
    let bytewise = run(stream.chunks(1), max, deflate);
    assert_eq!(bytewise, whole, "byte at a time vs one piece (limit {max})");
});

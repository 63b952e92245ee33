//! Tests of the body reader: each framing, each refusal, and (proptest) that the
//! outcome does not depend on how the bytes are split into reads.

use proptest::prelude::*;

use super::*;
use crate::proto::request::BodyFraming;

/// Feed `input` in pieces cut at `cuts`; the outcome and the bytes consumed in all.
fn read(
    framing: BodyFraming,
    max: usize,
    input: &[u8],
    cuts: &[usize],
) -> Result<(usize, Vec<u8>), u16> {
    let mut reader = BodyReader::new(framing, max).map_err(|r| r.status)?;
    let mut at = 0;
    let mut bounds: Vec<usize> = cuts.iter().map(|&c| c.min(input.len())).collect();
    bounds.sort_unstable();
    bounds.push(input.len());
    for end in bounds {
        if end < at {
            continue;
        }
        let (used, progress) = reader.feed(&input[at..end]).map_err(|r| r.status)?;
        at += used;
        if let BodyProgress::Complete(body) = progress {
            return Ok((at, body));
        }
        assert_eq!(at, end, "a partial body consumes all it is given");
    }
    Err(0) // incomplete
}

fn whole(framing: BodyFraming, max: usize, input: &[u8]) -> Result<(usize, Vec<u8>), u16> {
    read(framing, max, input, &[])
}

#[test]
fn content_length_bodies_stop_at_their_length() {
    assert_eq!(
        whole(BodyFraming::Length(3), 10, b"abcGET"),
        Ok((3, b"abc".to_vec()))
    );
    assert_eq!(whole(BodyFraming::Length(3), 10, b"ab"), Err(0));
    assert_eq!(whole(BodyFraming::Length(0), 10, b"x"), Ok((0, Vec::new())));
    assert_eq!(whole(BodyFraming::None, 10, b"x"), Ok((0, Vec::new())));
    assert_eq!(
        whole(BodyFraming::Length(10), 10, &[7; 10]),
        Ok((10, vec![7; 10]))
    );
    assert!(BodyReader::new(BodyFraming::None, 1).unwrap().is_complete());
}

#[test]
fn a_declared_length_over_the_cap_is_refused_before_reading() {
    assert_eq!(whole(BodyFraming::Length(11), 10, b""), Err(413));
    assert_eq!(whole(BodyFraming::Length(u64::MAX), 10, b""), Err(413));
}

#[test]
fn chunked_bodies_join_their_chunks() {
    let input = b"3\r\nabc\r\n2 ;name=value\r\nde\r\n0\r\n\r\nNEXT";
    assert_eq!(
        whole(BodyFraming::Chunked, 10, input),
        Ok((input.len() - 4, b"abcde".to_vec()))
    );
    // Upper-case hex, extensions on the last chunk, trailers discarded.
    let input = b"A\r\n0123456789\r\n0;x\r\nX-Trailer: 1\r\nY: 2\r\n\r\n";
    assert_eq!(
        whole(BodyFraming::Chunked, 10, input),
        Ok((input.len(), b"0123456789".to_vec()))
    );
    assert_eq!(
        whole(BodyFraming::Chunked, 10, b"0\r\n\r\n"),
        Ok((5, Vec::new()))
    );
}

#[test]
fn chunked_bodies_over_the_cap_are_refused_at_the_size_line() {
    // The second chunk's size takes it over 10: refused before its data arrives.
    assert_eq!(
        whole(BodyFraming::Chunked, 10, b"8\r\n12345678\r\n3\r\n"),
        Err(413)
    );
    assert_eq!(
        whole(BodyFraming::Chunked, 10, b"ffffffffffffffff\r\n"),
        Err(413)
    );
    assert_eq!(
        whole(
            BodyFraming::Chunked,
            10,
            b"5\r\n12345\r\n5\r\n12345\r\n0\r\n\r\n"
        )
        .map(|r| r.1.len()),
        Ok(10)
    );
}

#[test]
fn malformed_chunk_syntax_is_400() {
    for input in [
        &b"x\r\n"[..],
        b"\r\n",
        b";ext\r\n",
        b" 3\r\nabc\r\n",
        b"3\nabc\r\n0\r\n\r\n",
        b"3\r\nabcd\r\n",
        b"3\r\nabc\n0\r\n\r\n",
        b"3\r\nabc\r\n0\r\n\n",
        b"10000000000000000\r\n",
        b"3 4\r\n",
        b"3\r\r\n",
        b"3 \r\nabc\r\n0\r\n\r\n",
        b"3\t\r\nabc\r\n0\r\n\r\n",
    ] {
        assert_eq!(
            whole(BodyFraming::Chunked, 1 << 20, input),
            Err(400),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn long_lines_and_trailer_sections_are_431() {
    let mut long = b"1;".to_vec();
    long.resize(MAX_LINE + 10, b'a');
    assert_eq!(whole(BodyFraming::Chunked, 1 << 20, &long), Err(431));
    let mut trailers = b"0\r\n".to_vec();
    for _ in 0..(MAX_TRAILER / 10 + 1) {
        trailers.extend_from_slice(b"X: 123456\r\n");
    }
    assert_eq!(whole(BodyFraming::Chunked, 1 << 20, &trailers), Err(431));
}

/// A chunked encoding of `body` cut into chunks of `sizes` (cycled), with an
/// extension on some size lines and a trailer.
fn chunked(body: &[u8], sizes: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].clamp(1, rest.len());
        if i % 2 == 0 {
            out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        } else {
            out.extend_from_slice(format!("{n:X};ext=\"v\"\r\n").as_bytes());
        }
        out.extend_from_slice(&rest[..n]);
        out.extend_from_slice(b"\r\n");
        rest = &rest[n..];
        i += 1;
    }
    out.extend_from_slice(b"0\r\nTrailer: x\r\n\r\n");
    out
}

proptest! {
    #[test]
    fn the_outcome_does_not_depend_on_the_reads(
        body in proptest::collection::vec(any::<u8>(), 0..300),
        sizes in proptest::collection::vec(1usize..64, 1..5),
        cuts in proptest::collection::vec(0usize..400, 0..12),
        max in 0usize..320,
        chunked_framing in any::<bool>(),
        corrupt in proptest::option::of((0usize..400, any::<u8>())),
        tail in proptest::collection::vec(any::<u8>(), 0..8),
    ) {
        let (framing, mut input) = if chunked_framing {
            (BodyFraming::Chunked, chunked(&body, &sizes))
        } else {
            (BodyFraming::Length(body.len() as u64), body.clone())
        };
        if let Some((at, byte)) = corrupt {
            let at = at % (input.len() + 1);
            if at < input.len() { input[at] = byte; }
        }
        let framed = input.len();
        input.extend_from_slice(&tail);
        let expected = whole(framing, max, &input);
        prop_assert_eq!(read(framing, max, &input, &cuts), expected.clone());
        if corrupt.is_none() {
            let expected_ok = if body.len() <= max { Ok((framed, body)) } else { Err(413) };
            prop_assert_eq!(expected, expected_ok);
        }
    }
}

//! Unit tests and proptest properties for the streaming decoder, one test per
//! rule and close-code path. Kept in their own file because they outweigh the
//! state machine they test.

use super::*;
use crate::proto::close::encode_close_payload;
use crate::proto::frame::{encode_frame, encode_masked_frame};
use proptest::prelude::*;

const KEY: [u8; 4] = [0x12, 0x34, 0x56, 0x78];
const MAX: usize = 1 << 20;

fn frame(fin: bool, op: Opcode, payload: &[u8]) -> Vec<u8> {
    encode_masked_frame(fin, op, payload, KEY)
}

/// Feed `chunks` in order; collect events until the first error.
fn run(chunks: &[&[u8]], max: usize) -> (Vec<Event>, Option<ProtocolError>) {
    let mut dec = Decoder::new();
    let mut events = Vec::new();
    for chunk in chunks {
        let mut input = *chunk;
        while !input.is_empty() {
            let d = dec.decode(input, max);
            assert!(d.consumed <= input.len());
            input = &input[d.consumed..];
            match d.result {
                Ok(Some(ev)) => events.push(ev),
                Ok(None) => assert!(input.is_empty(), "Ok(None) must consume everything"),
                Err(e) => return (events, Some(e)),
            }
        }
    }
    (events, None)
}

fn run_whole(bytes: &[u8], max: usize) -> (Vec<Event>, Option<ProtocolError>) {
    run(&[bytes], max)
}

fn run_bytewise(bytes: &[u8], max: usize) -> (Vec<Event>, Option<ProtocolError>) {
    let chunks: Vec<&[u8]> = bytes.chunks(1).collect();
    run(&chunks, max)
}

/// Both whole and byte-at-a-time must end with this error code.
fn assert_error(bytes: &[u8], max: usize, code: u16) -> ProtocolError {
    let (_, whole) = run_whole(bytes, max);
    let (_, bytewise) = run_bytewise(bytes, max);
    let whole = whole.expect("expected an error");
    assert_eq!(whole.code, code, "{whole:?}");
    assert_eq!(bytewise, Some(whole));
    whole
}

fn assert_events(bytes: &[u8], expected: &[Event]) {
    let (events, err) = run_whole(bytes, MAX);
    assert_eq!(err, None);
    assert_eq!(events, expected);
    let (events, err) = run_bytewise(bytes, MAX);
    assert_eq!(err, None);
    assert_eq!(events, expected);
}

fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

// ---- sizes and idleness -------------------------------------------------

#[test]
fn decoder_is_small_and_idle_decoder_holds_no_heap() {
    // 64 bytes of framing state plus one pointer of permessage-deflate state.
    assert!(
        std::mem::size_of::<Decoder>() <= 72,
        "{}",
        std::mem::size_of::<Decoder>()
    );
    let mut dec = Decoder::new();
    assert!(dec.is_idle());
    let bytes = frame(true, Opcode::Binary, b"abc");
    let d = dec.decode(&bytes, MAX);
    assert_eq!(d.result, Ok(Some(Event::Binary(b"abc".to_vec()))));
    assert!(dec.is_idle());
    assert_eq!(dec.message.capacity(), 0);
}

#[test]
fn is_idle_false_mid_header_mid_payload_and_mid_message() {
    let mut dec = Decoder::new();
    let bytes = frame(true, Opcode::Binary, b"abcd");
    assert_eq!(dec.decode(&bytes[..1], MAX).result, Ok(None));
    assert!(!dec.is_idle());
    assert_eq!(dec.decode(&bytes[1..7], MAX).result, Ok(None));
    assert!(!dec.is_idle());
    assert!(dec.decode(&bytes[7..], MAX).result.unwrap().is_some());
    assert!(dec.is_idle());

    let first = frame(false, Opcode::Text, b"ab");
    assert_eq!(dec.decode(&first, MAX).result, Ok(None));
    assert!(!dec.is_idle());
}

// ---- happy paths -------------------------------------------------------

#[test]
fn single_text_binary_ping_pong() {
    let bytes = cat(&[
        frame(true, Opcode::Text, "héllo".as_bytes()),
        frame(true, Opcode::Binary, &[0, 1, 2, 255]),
        frame(true, Opcode::Ping, b"p"),
        frame(true, Opcode::Pong, b""),
    ]);
    assert_events(
        &bytes,
        &[
            Event::Text("héllo".to_owned()),
            Event::Binary(vec![0, 1, 2, 255]),
            Event::Ping(b"p".to_vec()),
            Event::Pong(Vec::new()),
        ],
    );
}

#[test]
fn consumed_stops_after_each_event() {
    let a = frame(true, Opcode::Binary, b"one");
    let b = frame(true, Opcode::Binary, b"two");
    let bytes = cat(&[a.clone(), b.clone()]);
    let mut dec = Decoder::new();
    let d = dec.decode(&bytes, MAX);
    assert_eq!(d.consumed, a.len());
    assert_eq!(d.result, Ok(Some(Event::Binary(b"one".to_vec()))));
    let d = dec.decode(&bytes[a.len()..], MAX);
    assert_eq!(d.consumed, b.len());
    assert_eq!(d.result, Ok(Some(Event::Binary(b"two".to_vec()))));
}

#[test]
fn empty_input_consumes_nothing() {
    let mut dec = Decoder::new();
    assert_eq!(
        dec.decode(&[], MAX),
        Decoded {
            consumed: 0,
            result: Ok(None)
        }
    );
}

#[test]
fn zero_length_frames_and_messages_are_valid() {
    let bytes = cat(&[
        frame(true, Opcode::Text, b""),
        frame(true, Opcode::Binary, b""),
        frame(false, Opcode::Text, b""),
        frame(false, Opcode::Continuation, b""),
        frame(true, Opcode::Continuation, b""),
    ]);
    assert_events(
        &bytes,
        &[
            Event::Text(String::new()),
            Event::Binary(vec![]),
            Event::Text(String::new()),
        ],
    );
}

#[test]
fn fragmented_text_is_reassembled() {
    let bytes = cat(&[
        frame(false, Opcode::Text, b"frag"),
        frame(false, Opcode::Continuation, b"men"),
        frame(true, Opcode::Continuation, b"ted"),
    ]);
    assert_events(&bytes, &[Event::Text("fragmented".to_owned())]);
}

#[test]
fn fragmented_binary_is_reassembled() {
    let bytes = cat(&[
        frame(false, Opcode::Binary, &[1, 2]),
        frame(true, Opcode::Continuation, &[3]),
    ]);
    assert_events(&bytes, &[Event::Binary(vec![1, 2, 3])]);
}

#[test]
fn control_frames_between_fragments_are_delivered_immediately() {
    let bytes = cat(&[
        frame(false, Opcode::Text, b"ab"),
        frame(true, Opcode::Ping, b"ping!"),
        frame(false, Opcode::Continuation, b"cd"),
        frame(true, Opcode::Pong, b""),
        frame(true, Opcode::Continuation, b"ef"),
    ]);
    assert_events(
        &bytes,
        &[
            Event::Ping(b"ping!".to_vec()),
            Event::Pong(vec![]),
            Event::Text("abcdef".to_owned()),
        ],
    );
}

#[test]
fn control_frame_on_empty_fragmented_message_keeps_message() {
    let bytes = cat(&[
        frame(false, Opcode::Binary, b""),
        frame(true, Opcode::Ping, b"x"),
        frame(true, Opcode::Continuation, b"y"),
    ]);
    assert_events(
        &bytes,
        &[Event::Ping(b"x".to_vec()), Event::Binary(b"y".to_vec())],
    );
}

#[test]
fn close_frames_are_validated_and_delivered() {
    let bytes = cat(&[
        frame(true, Opcode::Close, b""),
        frame(true, Opcode::Close, &encode_close_payload(1000, "bye κ")),
        frame(true, Opcode::Close, &encode_close_payload(4999, "")),
    ]);
    assert_events(
        &bytes,
        &[
            Event::Close(None),
            Event::Close(Some((1000, "bye κ".to_string()))),
            Event::Close(Some((4999, String::new()))),
        ],
    );
}

#[test]
fn large_binary_frame_and_non_minimal_length() {
    let payload: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    assert_events(
        &frame(true, Opcode::Binary, &payload),
        &[Event::Binary(payload.clone())],
    );
    // 126 + 16-bit length 3: non-minimal, accepted.
    let mut f = vec![0x82, 0x80 | 126, 0, 3];
    f.extend_from_slice(&KEY);
    let mut body = b"abc".to_vec();
    apply_mask(&mut body, KEY, 0);
    f.extend_from_slice(&body);
    assert_events(&f, &[Event::Binary(b"abc".to_vec())]);
}

// ---- 1002 paths -------------------------------------------------------

#[test]
fn unmasked_client_frame_is_1002() {
    let e = assert_error(&encode_frame(true, Opcode::Text, b"hi"), MAX, 1002);
    assert_eq!(e.reason, "client frame is not masked");
    // Even with an empty payload, and for control frames.
    assert_error(&encode_frame(true, Opcode::Ping, b""), MAX, 1002);
}

#[test]
fn rsv_bits_are_1002() {
    for rsv in [0x40u8, 0x20, 0x10] {
        let mut f = frame(true, Opcode::Text, b"x");
        f[0] |= rsv;
        let e = assert_error(&f, MAX, 1002);
        assert_eq!(e.reason, "reserved bits set");
    }
}

#[test]
fn reserved_opcodes_are_1002() {
    for raw in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
        let mut f = frame(true, Opcode::Binary, b"x");
        f[0] = 0x80 | raw;
        let e = assert_error(&f, MAX, 1002);
        assert_eq!(e.reason, "reserved opcode");
    }
}

#[test]
fn reserved_opcode_fails_on_first_byte() {
    let mut dec = Decoder::new();
    let d = dec.decode(&[0x83], MAX);
    assert_eq!(d.consumed, 1);
    assert_eq!(d.result.unwrap_err().code, 1002);
}

#[test]
fn control_payload_over_125_is_1002() {
    for op in [Opcode::Ping, Opcode::Pong, Opcode::Close] {
        let e = assert_error(&frame(true, op, &[b'a'; 126]), MAX, 1002);
        assert_eq!(e.reason, "control frame payload over 125 bytes");
    }
    assert_events(
        &frame(true, Opcode::Ping, &[b'a'; 125]),
        &[Event::Ping(vec![b'a'; 125])],
    );
}

#[test]
fn fragmented_control_frame_is_1002() {
    for op in [Opcode::Ping, Opcode::Pong, Opcode::Close] {
        let e = assert_error(&frame(false, op, b""), MAX, 1002);
        assert_eq!(e.reason, "fragmented control frame");
    }
}

#[test]
fn continuation_without_message_is_1002() {
    let e = assert_error(&frame(true, Opcode::Continuation, b"x"), MAX, 1002);
    assert_eq!(e.reason, "continuation without a message in progress");
    // Also right after a completed message.
    let bytes = cat(&[
        frame(true, Opcode::Text, b"done"),
        frame(false, Opcode::Continuation, b"x"),
    ]);
    let (events, err) = run_whole(&bytes, MAX);
    assert_eq!(events, [Event::Text("done".to_owned())]);
    assert_eq!(err.unwrap().code, 1002);
}

#[test]
fn new_data_frame_during_fragmented_message_is_1002() {
    for (first, second) in [
        (Opcode::Text, Opcode::Text),
        (Opcode::Text, Opcode::Binary),
        (Opcode::Binary, Opcode::Text),
        (Opcode::Binary, Opcode::Binary),
    ] {
        let bytes = cat(&[frame(false, first, b"a"), frame(true, second, b"b")]);
        let e = assert_error(&bytes, MAX, 1002);
        assert_eq!(
            e.reason,
            "new message while a fragmented message is in progress"
        );
    }
}

#[test]
fn length_with_top_bit_set_is_1002() {
    let mut f = vec![0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1];
    f.extend_from_slice(&KEY);
    let e = assert_error(&f, usize::MAX, 1002);
    assert_eq!(e.reason, "64-bit length has its top bit set");
}

#[test]
fn close_with_one_byte_payload_is_1002() {
    assert_error(&frame(true, Opcode::Close, &[0x03]), MAX, 1002);
}

#[test]
fn close_with_invalid_code_is_1002() {
    for code in [
        0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
    ] {
        let e = assert_error(&frame(true, Opcode::Close, &code.to_be_bytes()), MAX, 1002);
        assert_eq!(e.reason, "invalid close code");
    }
}

// ---- 1007 paths -------------------------------------------------------

#[test]
fn invalid_utf8_text_frame_is_1007() {
    let e = assert_error(&frame(true, Opcode::Text, &[b'a', 0xFF, b'b']), MAX, 1007);
    assert_eq!(e.reason, "invalid utf-8 in text message");
}

#[test]
fn invalid_utf8_fails_fast_mid_frame() {
    // Only part of the payload has arrived; the invalid byte is in it.
    let payload = [b'a', 0xC0, b'b', b'c', b'd', b'e'];
    let f = frame(true, Opcode::Text, &payload);
    let mut dec = Decoder::new();
    let d = dec.decode(&f[..6 + 2], MAX);
    assert_eq!(d.result.unwrap_err().code, 1007);
}

#[test]
fn invalid_utf8_fails_fast_across_fragments() {
    // Autobahn 6.4.1 style: the first fragment ends with a valid prefix
    // (F4 8F is fine), the second starts with a byte that breaks it.
    let first = frame(false, Opcode::Text, &[b'k', 0xF4]);
    let second = frame(false, Opcode::Continuation, &[0x90, 0x80, 0x80, b'x']);
    let bytes = cat(&[first.clone(), second]);
    let mut dec = Decoder::new();
    assert_eq!(dec.decode(&first, MAX).result, Ok(None));
    // Header (6 bytes) plus the first payload byte is enough to fail.
    let d = dec.decode(&bytes[first.len()..first.len() + 7], MAX);
    assert_eq!(d.result.unwrap_err().code, 1007);
    assert_error(&bytes, MAX, 1007);
}

#[test]
fn code_point_split_across_fragments_is_fine() {
    let euro = "€".as_bytes();
    let bytes = cat(&[
        frame(false, Opcode::Text, &euro[..1]),
        frame(true, Opcode::Ping, b""),
        frame(false, Opcode::Continuation, &euro[1..2]),
        frame(true, Opcode::Continuation, &euro[2..]),
    ]);
    assert_events(&bytes, &[Event::Ping(vec![]), Event::Text("€".to_owned())]);
}

#[test]
fn incomplete_code_point_at_final_fragment_is_1007() {
    let e = assert_error(&frame(true, Opcode::Text, &[b'a', 0xE2, 0x82]), MAX, 1007);
    assert_eq!(e.reason, "text message ends mid code point");
    let bytes = cat(&[
        frame(false, Opcode::Text, &[0xE2]),
        frame(true, Opcode::Continuation, &[0x82]),
    ]);
    assert_error(&bytes, MAX, 1007);
}

#[test]
fn binary_is_not_utf8_checked() {
    assert_events(
        &frame(true, Opcode::Binary, &[0xFF, 0xC0]),
        &[Event::Binary(vec![0xFF, 0xC0])],
    );
}

#[test]
fn ping_payload_is_not_utf8_checked_even_inside_text_message() {
    let bytes = cat(&[
        frame(false, Opcode::Text, b"a"),
        frame(true, Opcode::Ping, &[0xFF]),
        frame(true, Opcode::Continuation, b"b"),
    ]);
    assert_events(
        &bytes,
        &[Event::Ping(vec![0xFF]), Event::Text("ab".to_owned())],
    );
}

#[test]
fn close_reason_not_utf8_is_1007() {
    let mut p = 1000u16.to_be_bytes().to_vec();
    p.extend_from_slice(&[0xCE, 0xBA, 0xED, 0xA0, 0x80]);
    let e = assert_error(&frame(true, Opcode::Close, &p), MAX, 1007);
    assert_eq!(e.reason, "close reason is not utf-8");
}

// ---- 1009 paths -------------------------------------------------------

#[test]
fn single_frame_over_limit_is_1009_from_header_alone() {
    let f = frame(true, Opcode::Binary, &[0u8; 200]);
    // 126 + 16-bit length: the error comes as soon as the length is known,
    // before the mask key or any payload.
    let mut dec = Decoder::new();
    let d = dec.decode(&f[..4], 100);
    assert_eq!(
        d.result.unwrap_err(),
        ProtocolError::too_big("message too big")
    );
    assert_error(&f, 100, 1009);
    // 7-bit length: decided on byte 1.
    let f = frame(true, Opcode::Text, b"hello");
    let mut dec = Decoder::new();
    assert_eq!(dec.decode(&f[..2], 4).result.unwrap_err().code, 1009);
}

#[test]
fn declared_16_mib_frame_is_rejected_without_buffering() {
    let mut f = vec![0x82, 0x80 | 127];
    f.extend_from_slice(&(16u64 << 20).to_be_bytes());
    let mut dec = Decoder::new();
    let d = dec.decode(&f, (16 << 20) - 1);
    assert_eq!(d.result.unwrap_err().code, 1009);
    assert_eq!(d.consumed, 10);
}

#[test]
fn fragmented_message_over_limit_is_1009() {
    let bytes = cat(&[
        frame(false, Opcode::Binary, &[0; 60]),
        frame(true, Opcode::Ping, &[0; 100]),
        frame(true, Opcode::Continuation, &[0; 41]),
    ]);
    let (events, err) = run_whole(&bytes, 100);
    assert_eq!(events, [Event::Ping(vec![0; 100])]);
    assert_eq!(err.unwrap().code, 1009);
    assert_eq!(run_bytewise(&bytes, 100).1.unwrap().code, 1009);
}

#[test]
fn message_of_exactly_max_size_is_accepted() {
    let bytes = cat(&[
        frame(false, Opcode::Text, &[b'a'; 60]),
        frame(true, Opcode::Continuation, &[b'b'; 40]),
    ]);
    let (events, err) = run_whole(&bytes, 100);
    assert_eq!(err, None);
    assert_eq!(events.len(), 1);
    // Control frames never count against the message limit.
    let (events, err) = run_whole(&frame(true, Opcode::Ping, &[1; 125]), 0);
    assert_eq!((events.len(), err), (1, None));
}

#[test]
fn reservation_is_capped_while_payload_is_pending() {
    let len = 8 << 20;
    let mut f = vec![0x82, 0x80 | 127];
    f.extend_from_slice(&(len as u64).to_be_bytes());
    f.extend_from_slice(&KEY);
    f.extend_from_slice(&[0; 10]);
    let mut dec = Decoder::new();
    assert_eq!(dec.decode(&f, 16 << 20).result, Ok(None));
    assert!(
        dec.message.capacity() <= MAX_UPFRONT_RESERVE,
        "{}",
        dec.message.capacity()
    );
}

// ---- poisoning --------------------------------------------------------

#[test]
fn decoder_stays_poisoned_and_consumes_everything() {
    let mut dec = Decoder::new();
    let bad = encode_frame(true, Opcode::Text, b"x");
    let first = dec.decode(&bad, MAX).result.unwrap_err();
    assert!(!dec.is_idle());
    let good = frame(true, Opcode::Text, b"ok");
    let d = dec.decode(&good, MAX);
    assert_eq!(d.consumed, good.len());
    assert_eq!(d.result, Err(first));
}

// ---- properties --------------------------------------------------------

/// The length classes the round trip must cover.
fn data_len() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0usize),
        Just(125),
        Just(126),
        Just(65535),
        65536usize..65600
    ]
}

fn control_len() -> impl Strategy<Value = usize> {
    prop_oneof![Just(0usize), Just(1), Just(125)]
}

/// A frame spec for the split property: possibly invalid on purpose.
#[derive(Debug, Clone)]
struct FrameSpec {
    b0_flip: u8,
    opcode: u8,
    fin: bool,
    masked: bool,
    payload: Vec<u8>,
    key: [u8; 4],
}

fn frame_spec() -> impl Strategy<Value = FrameSpec> {
    let opcode = prop_oneof![
        6 => prop::sample::select(vec![0u8, 1, 2, 8, 9, 10]),
        1 => 0u8..16,
    ];
    let payload = prop_oneof![
        4 => ".{0,20}".prop_map(String::into_bytes),
        2 => prop::collection::vec(any::<u8>(), 0..40),
        1 => prop::collection::vec(any::<u8>(), 120..300),
    ];
    let b0_flip = prop_oneof![9 => Just(0u8), 1 => prop::sample::select(vec![0x10u8, 0x20, 0x40])];
    (
        b0_flip,
        opcode,
        any::<bool>(),
        prop::bool::weighted(0.97),
        payload,
        any::<[u8; 4]>(),
    )
        .prop_map(|(b0_flip, opcode, fin, masked, payload, key)| FrameSpec {
            b0_flip,
            opcode,
            fin,
            masked,
            payload,
            key,
        })
}

fn encode_spec(spec: &FrameSpec) -> Vec<u8> {
    // Start from a valid Binary frame with the right length encoding and
    // patch byte 0, so reserved opcodes and RSV bits can be produced too.
    let mut f = if spec.masked {
        encode_masked_frame(spec.fin, Opcode::Binary, &spec.payload, spec.key)
    } else {
        encode_frame(spec.fin, Opcode::Binary, &spec.payload)
    };
    f[0] = (if spec.fin { 0x80 } else { 0 }) | spec.b0_flip | spec.opcode;
    f
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn round_trip_data_frames(
        op in prop::sample::select(vec![Opcode::Text, Opcode::Binary]),
        len in data_len(),
        key in any::<[u8; 4]>(),
        seed in any::<u8>(),
    ) {
        let payload: Vec<u8> = (0..len).map(|i| b'a' + ((i + usize::from(seed)) % 26) as u8).collect();
        let bytes = encode_masked_frame(true, op, &payload, key);
        let expected = if op == Opcode::Text { Event::Text(String::from_utf8(payload).unwrap()) } else { Event::Binary(payload) };
        let (events, err) = run_whole(&bytes, DEFAULT_MAX);
        prop_assert_eq!(err, None);
        prop_assert_eq!(events, vec![expected]);
    }

    /// The one UTF-8 check (incremental, while the bytes arrive) agrees with std on any
    /// bytes, however the message is fragmented, with pings in between, read whole or
    /// byte by byte: valid text comes out as the same `String`, anything else is 1007.
    #[test]
    fn text_messages_are_checked_once_and_exactly(
        parts in prop::collection::vec(
            prop_oneof![
                3 => ".{0,6}".prop_map(String::into_bytes),
                1 => prop::collection::vec(any::<u8>(), 0..6),
            ],
            1..5,
        ),
        ping_after in any::<prop::sample::Index>(),
    ) {
        let whole = parts.concat();
        let ping_after = ping_after.index(parts.len());
        let mut bytes = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            let op = if i == 0 { Opcode::Text } else { Opcode::Continuation };
            bytes.extend(frame(i + 1 == parts.len(), op, part));
            if i == ping_after && i + 1 < parts.len() {
                bytes.extend(frame(true, Opcode::Ping, &[0xFF]));
            }
        }
        for (events, err) in [run_whole(&bytes, MAX), run_bytewise(&bytes, MAX)] {
            let texts: Vec<&Event> = events.iter().filter(|e| matches!(e, Event::Text(_))).collect();
            match String::from_utf8(whole.clone()) {
                Ok(text) => {
                    let expected = Event::Text(text);
                    prop_assert_eq!(err, None);
                    prop_assert_eq!(texts, vec![&expected]);
                }
                Err(_) => {
                    prop_assert_eq!(err.map(|e| e.code), Some(1007));
                    prop_assert!(texts.is_empty());
                }
            }
        }
    }

    #[test]
    fn round_trip_continuation_frames(
        op in prop::sample::select(vec![Opcode::Text, Opcode::Binary]),
        first_len in data_len(),
        last_len in data_len(),
        key in any::<[u8; 4]>(),
    ) {
        let first = vec![b'x'; first_len];
        let last = vec![b'y'; last_len];
        let bytes = [
            encode_masked_frame(false, op, &first, key),
            encode_masked_frame(true, Opcode::Continuation, &last, key),
        ].concat();
        let whole = [first, last].concat();
        let expected = if op == Opcode::Text { Event::Text(String::from_utf8(whole).unwrap()) } else { Event::Binary(whole) };
        let (events, err) = run_whole(&bytes, DEFAULT_MAX);
        prop_assert_eq!(err, None);
        prop_assert_eq!(events, vec![expected]);
    }

    #[test]
    fn round_trip_control_frames(
        op in prop::sample::select(vec![Opcode::Ping, Opcode::Pong, Opcode::Close]),
        len in control_len(),
        key in any::<[u8; 4]>(),
        byte in any::<u8>(),
    ) {
        let (payload, expected) = match op {
            Opcode::Close => {
                // 1-byte close payloads are invalid; use 2 (code only) instead.
                let reason = "r".repeat(len.saturating_sub(2));
                let p = if len == 0 { Vec::new() } else { encode_close_payload(3000, &reason) };
                let ev = if len == 0 { Event::Close(None) } else { Event::Close(Some((3000, reason))) };
                (p, ev)
            }
            Opcode::Ping => (vec![byte; len], Event::Ping(vec![byte; len])),
            _ => (vec![byte; len], Event::Pong(vec![byte; len])),
        };
        let bytes = encode_masked_frame(true, op, &payload, key);
        let (events, err) = run_bytewise(&bytes, DEFAULT_MAX);
        prop_assert_eq!(err, None);
        prop_assert_eq!(events, vec![expected]);
    }

    #[test]
    fn split_points_do_not_change_events_or_error(
        specs in prop::collection::vec(frame_spec(), 1..8),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
        max in prop_oneof![Just(MAX), 0usize..400],
    ) {
        let bytes: Vec<u8> = specs.iter().flat_map(encode_spec).collect();
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        points.sort_unstable();
        points.push(bytes.len());
        let mut chunks = Vec::new();
        let mut prev = 0;
        for p in points {
            chunks.push(&bytes[prev..p]);
            prev = p;
        }
        let whole = run_whole(&bytes, max);
        prop_assert_eq!(run(&chunks, max), run_whole(&bytes, max));
        prop_assert_eq!(run_bytewise(&bytes, max), whole);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
        max in 0usize..1024,
    ) {
        let whole = run_whole(&bytes, max);
        prop_assert_eq!(run_bytewise(&bytes, max), whole);
    }
}

const DEFAULT_MAX: usize = crate::proto::DEFAULT_MAX_MESSAGE_SIZE;

// ---- permessage-deflate (RFC 7692) ---------------------------------------

/// A masked client frame with RSV1 set on it.
fn rsv1(mut f: Vec<u8>) -> Vec<u8> {
    f[0] |= 0x40;
    f
}

/// Decode all of `bytes` with deflate on (the client keeps its context), one call
/// per byte when `bytewise`; collect events until the first error.
fn run_deflate(bytes: &[u8], max: usize, bytewise: bool) -> (Vec<Event>, Option<ProtocolError>) {
    let mut dec = Decoder::new();
    dec.enable_deflate(false);
    let step = if bytewise { 1 } else { bytes.len().max(1) };
    let mut events = Vec::new();
    for chunk in bytes.chunks(step) {
        let mut input = chunk;
        while !input.is_empty() {
            let d = dec.decode(input, max);
            input = &input[d.consumed..];
            match d.result {
                Ok(Some(ev)) => events.push(ev),
                Ok(None) => {}
                Err(e) => return (events, Some(e)),
            }
        }
    }
    (events, None)
}

fn both_ways(bytes: &[u8], max: usize) -> (Vec<Event>, Option<ProtocolError>) {
    let whole = run_deflate(bytes, max, false);
    assert_eq!(run_deflate(bytes, max, true), whole, "split into bytes");
    whole
}

#[test]
fn compressed_messages_are_inflated_whole_or_fragmented() {
    let text = "permessage-deflate ".repeat(50);
    let c = crate::proto::deflate::compress(&[text.as_bytes()]);
    let (a, b) = c.split_at(c.len() / 2);
    let bytes = cat(&[
        rsv1(frame(true, Opcode::Text, &c)),
        rsv1(frame(false, Opcode::Binary, a)),
        frame(true, Opcode::Ping, b"p"),
        frame(true, Opcode::Continuation, b),
        frame(true, Opcode::Text, b"plain"),
    ]);
    let (events, err) = both_ways(&bytes, MAX);
    assert_eq!(err, None);
    assert_eq!(
        events,
        [
            Event::Text(text.clone()),
            Event::Ping(b"p".to_vec()),
            Event::Binary(text.into_bytes()),
            Event::Text("plain".into()),
        ]
    );
}

#[test]
fn rsv1_without_deflate_or_on_control_and_continuation_is_1002() {
    assert_error(&rsv1(frame(true, Opcode::Text, b"x")), MAX, 1002);
    for bytes in [
        rsv1(frame(true, Opcode::Ping, b"")),
        cat(&[
            frame(false, Opcode::Text, b"a"),
            rsv1(frame(true, Opcode::Continuation, b"b")),
        ]),
    ] {
        assert_eq!(both_ways(&bytes, MAX).1.map(|e| e.code), Some(1002));
    }
}

#[test]
fn a_decompression_bomb_is_1009_and_bad_utf8_after_inflating_is_1007() {
    let zeros = vec![0u8; 4 << 20];
    let bomb = crate::proto::deflate::compress(&[&zeros]);
    let (_, err) = both_ways(&rsv1(frame(true, Opcode::Binary, &bomb)), 1 << 20);
    assert_eq!(err.map(|e| e.code), Some(1009));
    let bad = crate::proto::deflate::compress(&[b"ok \xff\xfe not utf-8"]);
    let (_, err) = both_ways(&rsv1(frame(true, Opcode::Text, &bad)), MAX);
    assert_eq!(err.map(|e| e.code), Some(1007));
    let (_, err) = both_ways(&rsv1(frame(true, Opcode::Binary, &[0xff; 9])), MAX);
    assert_eq!(err.map(|e| e.code), Some(1007), "not deflate data");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any bytes, compressed and split into fragments at any points, with a ping in
    /// between, read whole or byte by byte: the inflated message is what was compressed
    /// when it is valid (text: valid UTF-8) and within the cap; else 1007 or 1009.
    #[test]
    fn compressed_messages_inflate_exactly_however_fragmented(
        data in prop_oneof![
            ".{0,300}".prop_map(String::into_bytes),
            prop::collection::vec(any::<u8>(), 0..300),
        ],
        text in any::<bool>(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
        max in prop::sample::select(vec![0usize, 10, 100, 1000]),
    ) {
        let z = crate::proto::deflate::compress(&[&data]);
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(z.len() + 1)).collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut bytes = Vec::new();
        let mut start = 0;
        for (i, end) in cuts.iter().copied().chain([z.len()]).enumerate() {
            let end = end.max(start);
            let op = match (i, text) {
                (0, true) => Opcode::Text,
                (0, false) => Opcode::Binary,
                _ => Opcode::Continuation,
            };
            let f = frame(end == z.len(), op, &z[start..end]);
            bytes.extend(if i == 0 { rsv1(f) } else { f });
            if i == 0 && end < z.len() {
                bytes.extend(frame(true, Opcode::Ping, b"p"));
            }
            start = end;
            if end == z.len() {
                break;
            }
        }
        let (events, err) = both_ways(&bytes, max);
        let events: Vec<_> = events.into_iter().filter(|e| !matches!(e, Event::Ping(_))).collect();
        if z.len() > max || data.len() > max {
            prop_assert_eq!(err.map(|e| e.code), Some(1009));
        } else if text && std::str::from_utf8(&data).is_err() {
            prop_assert_eq!(err.map(|e| e.code), Some(1007));
        } else {
            prop_assert_eq!(err, None);
            let expected = if text {
                Event::Text(String::from_utf8(data).unwrap())
            } else {
                Event::Binary(data)
            };
            prop_assert_eq!(events, vec![expected]);
        }
    }
}

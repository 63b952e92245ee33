//! [`SseStream`] over whole streams encoded as ringcast's SSE endpoint does: the same
//! events whatever the split of the input (proptest), binary payloads decoded.

use base64::Engine as _;
use proptest::prelude::*;

use super::*;

/// A payload as it crosses the stream: (binary?, bytes).
type Payload = (bool, Vec<u8>);

/// The body of a stream carrying `payloads` (each event one chunk, `retry:` first, a
/// heartbeat after every third event, the last chunk at the end), ids from 1.
fn encode(payloads: &[Payload]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chunk = |ev: &[u8]| {
        out.extend_from_slice(format!("{:x}\r\n", ev.len()).as_bytes());
        out.extend_from_slice(ev);
        out.extend_from_slice(b"\r\n");
    };
    chunk(b"retry: 3000\n\n");
    for (i, (binary, p)) in payloads.iter().enumerate() {
        let mut ev = format!("id: {}\n", i + 1).into_bytes();
        if *binary {
            ev.extend_from_slice(b"event: binary\ndata: ");
            let b64 = base64::engine::general_purpose::STANDARD.encode(p);
            ev.extend_from_slice(b64.as_bytes());
            ev.push(b'\n');
        } else {
            let text = std::str::from_utf8(p).unwrap();
            for line in text.split("\r\n").flat_map(|l| l.split(['\n', '\r'])) {
                ev.extend_from_slice(b"data: ");
                ev.extend_from_slice(line.as_bytes());
                ev.push(b'\n');
            }
        }
        ev.push(b'\n');
        chunk(&ev);
        if i % 3 == 2 {
            chunk(b":\n\n");
        }
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Decodes `body` fed in pieces cut at `cuts`: the payloads (text line ends normalised to
/// LF, as the SSE format does), the ids, the comment count and whether it ended.
fn decode(body: &[u8], cuts: &[usize]) -> (Vec<Payload>, Vec<String>, u64, bool) {
    let mut s = SseStream::new(max_event_len(4096));
    let mut buf = vec![0u8; 4096];
    let (mut got, mut ids, mut ended) = (Vec::new(), Vec::new(), false);
    let mut at = 0;
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.push(body.len());
    for c in cuts {
        ended = s
            .feed(&body[at..c], |ev| {
                ids.push(String::from_utf8(ev.id.unwrap().to_vec()).unwrap());
                let Meaning::Frame(f) = event_frame(&ev, &mut buf) else {
                    panic!("not a message: {ev:?}");
                };
                got.push((f.opcode == OP_BINARY, f.payload.to_vec()));
            })
            .unwrap();
        at = c;
    }
    assert_eq!(s.retry_ms(), Some(3000));
    (got, ids, s.comments, ended)
}

fn normalised(p: &[Payload]) -> Vec<Payload> {
    p.iter()
        .map(|(b, v)| {
            if *b {
                (true, v.clone())
            } else {
                let t = String::from_utf8(v.clone()).unwrap();
                (
                    false,
                    t.replace("\r\n", "\n").replace('\r', "\n").into_bytes(),
                )
            }
        })
        .collect()
}

#[test]
fn a_whole_stream_in_one_piece() {
    let payloads = vec![
        (true, vec![0u8, 1, 2, 255, 254]),
        (false, b"hello".to_vec()),
        (false, b"two\r\nlines\rthree".to_vec()),
        (true, vec![7u8; 64]),
    ];
    let body = encode(&payloads);
    let (got, ids, comments, ended) = decode(&body, &[]);
    assert_eq!(got, normalised(&payloads));
    assert_eq!(ids, ["1", "2", "3", "4"]);
    assert_eq!((comments, ended), (1, true));
}

#[test]
fn bytes_after_the_last_chunk_are_an_error() {
    let mut s = SseStream::new(256);
    let r = s.feed(b"0\r\n\r\nHTTP/1.1", |_| {});
    assert_eq!(r, Err(SseError::Chunked(ChunkError::AfterEnd)));
}

#[test]
fn bad_base64_is_no_frame() {
    let ev = Event {
        event: b"binary",
        data: b"!!!",
        id: None,
    };
    assert_eq!(event_frame(&ev, &mut [0u8; 16]), Meaning::BadBinary);
    let ev = Event {
        event: b"binary",
        data: b"AAAAAAAA",
        id: None,
    };
    assert_eq!(
        event_frame(&ev, &mut [0u8; 5]),
        Meaning::BadBinary,
        "6 bytes > 5"
    );
}

#[test]
fn gap_and_reset_are_announcements() {
    for name in [&b"gap"[..], b"reset"] {
        let ev = Event {
            event: name,
            data: br#"{"next":0}"#,
            id: None,
        };
        assert_eq!(event_frame(&ev, &mut [0u8; 16]), Meaning::Announcement);
    }
}

fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200).prop_map(|v| (true, v)),
        "[a-z \r\n]{1,80}".prop_map(|s| (false, s.into_bytes())),
    ]
}

proptest! {
    /// Split independence: every split of the stream yields the same events as one piece.
    #[test]
    fn any_split_gives_the_same_events(
        payloads in prop::collection::vec(payload(), 0..12),
        cuts in prop::collection::vec(any::<usize>(), 0..40),
    ) {
        let body = encode(&payloads);
        let whole = decode(&body, &[]);
        let split = decode(&body, &cuts);
        prop_assert_eq!(&split, &whole);
        prop_assert_eq!(split.0, normalised(&payloads));
        prop_assert!(split.3);
    }
}

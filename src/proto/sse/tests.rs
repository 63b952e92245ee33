//! Tests for the SSE encoding: line splitting (CR, LF, CRLF), empty data, ids, binary
//! as base64, chunk framing.

use super::*;

/// The event bytes inside one chunk (asserting the framing).
fn unchunk(c: &[u8]) -> &[u8] {
    let crlf = c.windows(2).position(|w| w == b"\r\n").unwrap();
    let len = usize::from_str_radix(std::str::from_utf8(&c[..crlf]).unwrap(), 16).unwrap();
    let body = &c[crlf + 2..];
    assert_eq!(body.len(), len + 2, "one chunk, nothing after it");
    assert!(body.ends_with(b"\r\n"));
    &body[..len]
}

#[test]
fn a_multi_line_text_is_one_data_line_per_line() {
    let c = message_chunk(None, false, b"one\ntwo\r\nthree\rfour");
    assert_eq!(
        unchunk(&c),
        b"data: one\ndata: two\ndata: three\ndata: four\n\n"
    );
}

#[test]
fn line_ends_at_the_edges_make_empty_lines() {
    assert_eq!(
        unchunk(&message_chunk(None, false, b"a\n")),
        b"data: a\ndata: \n\n"
    );
    assert_eq!(
        unchunk(&message_chunk(None, false, b"\r\n")),
        b"data: \ndata: \n\n"
    );
    assert_eq!(
        unchunk(&message_chunk(None, false, b"\r\r\n")),
        b"data: \ndata: \ndata: \n\n"
    );
}

#[test]
fn an_empty_payload_is_one_empty_data_line() {
    assert_eq!(unchunk(&message_chunk(None, false, b"")), b"data: \n\n");
}

#[test]
fn a_numbered_event_carries_its_id_first() {
    assert_eq!(
        unchunk(&message_chunk(Some(42), false, b"hi")),
        b"id: 42\ndata: hi\n\n"
    );
}

#[test]
fn binary_is_the_binary_event_with_padded_base64() {
    assert_eq!(
        unchunk(&message_chunk(Some(1), true, &[0xff, 0x00, b'\n', 1])),
        b"id: 1\nevent: binary\ndata: /wAKAQ==\n\n"
    );
    assert_eq!(
        unchunk(&message_chunk(None, true, b"")),
        b"event: binary\ndata: \n\n"
    );
}

#[test]
fn chunks_are_hex_length_framed() {
    let big = vec![b'x'; 300];
    let c = message_chunk(None, false, &big);
    assert!(c.starts_with(b"134\r\ndata: x"), "{:?}", &c[..8]); // 6 + 300 + 2 = 0x134
    assert_eq!(unchunk(&retry_chunk(1500)), b"retry: 1500\n\n");
    assert_eq!(unchunk(HEARTBEAT_CHUNK), b":\n\n");
    assert_eq!(LAST_CHUNK, b"0\r\n\r\n");
}

#[test]
fn the_response_head_announces_an_event_stream() {
    let head = String::from_utf8(response_head(&[("x-ringcast-shard", "2")])).unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(head.contains("\r\nContent-Type: text/event-stream\r\n"));
    assert!(head.contains("\r\nCache-Control: no-cache\r\n"));
    assert!(head.contains("\r\nTransfer-Encoding: chunked\r\n"));
    assert!(head.ends_with("\r\nx-ringcast-shard: 2\r\n\r\n"));
}

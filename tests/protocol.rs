//! RFC 6455 behaviour through real sockets, on both backends: handshake answers,
//! close codes for each class of bad input, ping/pong, fragmentation, close handshake.

mod common;

use std::io::Write;

use common::*;
use ringcast::proto::frame::{encode_masked_frame, Opcode};

const KEY: [u8; 4] = [0x12, 0x34, 0x56, 0x78];

fn status_of(response: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(response);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[test]
fn handshake_errors_get_their_http_status() {
    for backend in BACKENDS {
        let server = start(backend, 1);
        let addr = server.local_addr();
        let cases: Vec<(Vec<u8>, u16)> = vec![
            (b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400),
            (
                String::from_utf8(upgrade_request("/nowhere"))
                    .unwrap()
                    .into_bytes(),
                404,
            ),
            (
                String::from_utf8(upgrade_request("/echo"))
                    .unwrap()
                    .replace("Version: 13", "Version: 8")
                    .into_bytes(),
                426,
            ),
            (
                format!(
                    "GET /echo HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
                    "a".repeat(9000)
                )
                .into_bytes(),
                431,
            ),
            (
                b"\x16\x03\x01garbage that is not http\r\n\r\n".to_vec(),
                400,
            ),
        ];
        for (request, status) in cases {
            let response = raw_exchange(addr, &request);
            assert_eq!(
                status_of(&response),
                status,
                "{backend:?}: {}",
                String::from_utf8_lossy(&response)
            );
            if status == 426 {
                assert!(String::from_utf8_lossy(&response).contains("Sec-WebSocket-Version: 13"));
            }
        }
        server.shutdown().unwrap();
    }
}

/// Send `frames` after the upgrade, return the close code the server answers with.
fn close_code_after(addr: std::net::SocketAddr, frames: &[u8]) -> Option<u16> {
    let mut s = raw_upgraded(addr, "/echo");
    s.write_all(frames).unwrap();
    close_code(&read_to_close(&mut s))
}

#[test]
fn bad_frames_get_the_rfc_close_code() {
    for backend in BACKENDS {
        let mut cfg = config(backend, 1);
        cfg.shard.limits.max_message_size = 1000;
        let server = start_with(cfg, ringcast::app::Builtin::default());
        let addr = server.local_addr();
        let text = |p: &[u8]| encode_masked_frame(true, Opcode::Text, p, KEY);
        let cases: Vec<(&str, Vec<u8>, u16)> = vec![
            ("unmasked frame", vec![0x81, 0x02, b'h', b'i'], 1002),
            (
                "reserved opcode",
                {
                    let mut f = text(b"x");
                    f[0] = 0x83;
                    f
                },
                1002,
            ),
            (
                "rsv bit",
                {
                    let mut f = text(b"x");
                    f[0] |= 0x40;
                    f
                },
                1002,
            ),
            (
                "continuation without start",
                encode_masked_frame(true, Opcode::Continuation, b"x", KEY),
                1002,
            ),
            (
                "fragmented ping",
                encode_masked_frame(false, Opcode::Ping, b"x", KEY),
                1002,
            ),
            (
                "invalid utf-8",
                text(&[
                    0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5, 0xED, 0xA0,
                    0x80,
                ]),
                1007,
            ),
            (
                "utf-8 across fragments",
                {
                    let mut f = encode_masked_frame(false, Opcode::Text, &[0xF0, 0x90], KEY);
                    f.extend(encode_masked_frame(
                        true,
                        Opcode::Continuation,
                        &[0x28],
                        KEY,
                    ));
                    f
                },
                1007,
            ),
            (
                "message too big",
                encode_masked_frame(true, Opcode::Binary, &[0u8; 1001], KEY),
                1009,
            ),
            (
                "fragments too big",
                {
                    let mut f = encode_masked_frame(false, Opcode::Binary, &[0u8; 600], KEY);
                    f.extend(encode_masked_frame(
                        true,
                        Opcode::Continuation,
                        &[0u8; 600],
                        KEY,
                    ));
                    f
                },
                1009,
            ),
            (
                "close with 1-byte payload",
                encode_masked_frame(true, Opcode::Close, &[3], KEY),
                1002,
            ),
            (
                "close with invalid code",
                encode_masked_frame(true, Opcode::Close, &1005u16.to_be_bytes(), KEY),
                1002,
            ),
        ];
        for (name, frames, expected) in cases {
            assert_eq!(
                close_code_after(addr, &frames),
                Some(expected),
                "{backend:?}: {name}"
            );
        }
        server.shutdown().unwrap();
    }
}

#[test]
fn ping_pong_fragments_and_clean_close() {
    for backend in BACKENDS {
        let server = start(backend, 1);
        let addr = server.local_addr();
        let mut s = raw_upgraded(addr, "/echo");
        let mut out = Vec::new();
        // A fragmented text message with a ping in the middle, then a close 1000 "bye".
        out.extend(encode_masked_frame(false, Opcode::Text, b"hel", KEY));
        out.extend(encode_masked_frame(
            true,
            Opcode::Ping,
            b"are you there",
            KEY,
        ));
        out.extend(encode_masked_frame(
            false,
            Opcode::Continuation,
            b"lo ",
            KEY,
        ));
        out.extend(encode_masked_frame(
            true,
            Opcode::Continuation,
            "wörld".as_bytes(),
            KEY,
        ));
        let mut close = 1000u16.to_be_bytes().to_vec();
        close.extend_from_slice(b"bye");
        out.extend(encode_masked_frame(true, Opcode::Close, &close, KEY));
        // Byte at a time: the server must reassemble across reads.
        for b in &out {
            s.write_all(std::slice::from_ref(b)).unwrap();
        }
        let frames = parse_frames(&read_to_close(&mut s));
        assert_eq!(
            frames,
            vec![
                (0xA, b"are you there".to_vec()),
                (0x1, "hello wörld".as_bytes().to_vec()),
                (0x8, 1000u16.to_be_bytes().to_vec()),
            ],
            "{backend:?}"
        );
        server.shutdown().unwrap();
    }
}

#[test]
fn a_frame_in_the_same_packet_as_the_head_is_served() {
    for backend in BACKENDS {
        let server = start(backend, 1);
        let mut request = upgrade_request("/echo");
        request.extend(encode_masked_frame(true, Opcode::Binary, &[7; 300], KEY));
        request.extend(encode_masked_frame(
            true,
            Opcode::Close,
            &1000u16.to_be_bytes(),
            KEY,
        ));
        let response = raw_exchange(server.local_addr(), &request);
        let head_end = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert!(response.starts_with(b"HTTP/1.1 101"));
        let frames = parse_frames(&response[head_end..]);
        assert_eq!(frames[0], (0x2, vec![7; 300]), "{backend:?}");
        assert_eq!(frames[1].0, 0x8);
        server.shutdown().unwrap();
    }
}

#[test]
fn a_large_message_round_trips_through_echo() {
    for backend in BACKENDS {
        let server = start(backend, 2);
        let mut c = connect(server.local_addr(), "/echo");
        let payload: Vec<u8> = (0..(3 << 20)).map(|i| (i % 251) as u8).collect();
        c.send(tungstenite::Message::binary(payload.clone()))
            .unwrap();
        assert_eq!(
            c.read().unwrap().into_data().as_ref(),
            &payload[..],
            "{backend:?}"
        );
        server.shutdown().unwrap();
    }
}

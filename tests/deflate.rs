//! permessage-deflate (RFC 7692) through real sockets on both backends: the answer to
//! offers, room messages compressed for clients that negotiated it and plain for the
//! others in the same room, client messages inflated under the size cap and checked,
//! RSV1 rules, and the sequence framing and history replay compressed.

mod common;

use std::io::Write;

use common::deflate::{json_payload, DeflateClient, Received};
use common::*;
use ringcast::app::Builtin;
use ringcast::config::HistoryConfig;
use ringcast::proto::frame::{encode_masked_frame, Opcode};
use ringcast::wire::sequence::parse_seq_payload;
use ringcast::Config;
use tungstenite::Message;

/// What browsers, Node `ws` and Python `websockets` offer.
const OFFER: &str = "permessage-deflate; client_max_window_bits";
const AGREED: &str = "permessage-deflate; server_no_context_takeover";

fn close_code_of(r: &Received) -> u16 {
    assert_eq!(r.opcode, 8, "a close frame, got {r:?}");
    u16::from_be_bytes([r.payload[0], r.payload[1]])
}

#[test]
fn offers_get_the_rfc_7692_answer() {
    for backend in BACKENDS {
        let server = start(backend, 1);
        let addr = server.local_addr();
        let cases: [(Option<&str>, Option<&str>); 7] = [
            (None, None),
            (Some("x-webkit-deflate-frame"), None),
            (Some(OFFER), Some(AGREED)),
            (Some("permessage-deflate"), Some(AGREED)),
            (
                Some("permessage-deflate; client_no_context_takeover; client_max_window_bits=12"),
                Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
            ),
            (
                Some("permessage-deflate; foo, permessage-deflate; server_max_window_bits=10"),
                Some("permessage-deflate; server_no_context_takeover; server_max_window_bits=10"),
            ),
            (
                Some("permessage-deflate; server_no_context_takeover; server_no_context_takeover"),
                None,
            ),
        ];
        for (offer, answer) in cases {
            let c = DeflateClient::connect(addr, "/echo", offer, source_ip(0));
            assert_eq!(c.extensions.as_deref(), answer, "{backend:?}: {offer:?}");
        }
        server.shutdown().unwrap();

        let mut cfg = config(backend, 1);
        cfg.shard.deflate.enabled = false;
        let server = start_with(cfg, Builtin::default());
        let c = DeflateClient::connect(server.local_addr(), "/echo", Some(OFFER), source_ip(0));
        assert_eq!(c.extensions, None, "{backend:?}: --deflate off");
        server.shutdown().unwrap();
    }
}

#[test]
fn room_messages_are_compressed_for_negotiated_clients_and_plain_for_the_others() {
    for backend in BACKENDS {
        let server = start(backend, 2);
        let addr = server.local_addr();
        let mut compressed: Vec<_> = (0..4)
            .map(|i| DeflateClient::connect(addr, "/ws/r", Some(OFFER), source_ip(i)))
            .collect();
        let mut no_offer = DeflateClient::connect(addr, "/ws/r", None, source_ip(4));
        let mut small_window = DeflateClient::connect(
            addr,
            "/ws/r",
            Some("permessage-deflate; server_max_window_bits=9"),
            source_ip(5),
        );
        let (mut plain, _) = connect_from(addr, "/ws/r", source_ip(6));
        let (mut publisher, _) = connect_from(addr, "/ws/r", source_ip(7));
        let big = json_payload(1024, 1);
        publisher.send(Message::text(big.clone())).unwrap();
        publisher.send(Message::text("short")).unwrap();
        for c in &mut compressed {
            let m = c.read();
            assert!(m.rsv1, "{backend:?}: compressed");
            assert_eq!(
                (m.opcode, &m.payload[..]),
                (1, big.as_bytes()),
                "{backend:?}"
            );
            assert!(
                m.wire_len < big.len() / 2,
                "{backend:?}: {} bytes",
                m.wire_len
            );
            let m = c.read();
            assert!(!m.rsv1, "{backend:?}: under --deflate-min-size");
            assert_eq!(m.payload, b"short");
        }
        for c in [&mut no_offer, &mut small_window] {
            for expected in [big.as_bytes(), b"short"] {
                let m = c.read();
                assert!(!m.rsv1, "{backend:?}: plain frame");
                assert_eq!((m.opcode, &m.payload[..]), (1, expected));
            }
        }
        assert_eq!(plain.read().unwrap(), Message::text(big.clone()));
        assert_eq!(plain.read().unwrap(), Message::text("short"));
        server.shutdown().unwrap();
    }
}

#[test]
fn client_messages_are_inflated_echoed_compressed_and_capped() {
    for backend in BACKENDS {
        let mut cfg = config(backend, 1);
        cfg.shard.limits.max_message_size = 64 << 10;
        let server = start_with(cfg, Builtin::default());
        let addr = server.local_addr();

        let mut c = DeflateClient::connect(addr, "/echo", Some(OFFER), source_ip(0));
        let text = json_payload(3000, 7);
        c.send(Opcode::Text, text.as_bytes(), true);
        let m = c.read();
        assert!(m.rsv1, "{backend:?}: the echo is compressed per message");
        assert_eq!((m.opcode, &m.payload[..]), (1, text.as_bytes()));
        c.send(Opcode::Binary, &[7u8; 5000], true);
        assert_eq!(c.read().payload, vec![7u8; 5000]);
        c.send(Opcode::Text, b"plain frames still work", false);
        assert_eq!(c.read().payload, b"plain frames still work");
        // Exactly the cap, decompressed, passes.
        c.send(Opcode::Binary, &vec![0u8; 64 << 10], true);
        assert_eq!(c.read().payload.len(), 64 << 10, "{backend:?}");

        // A client keeping its compression context across messages.
        let mut context = flate2::Compress::new(flate2::Compression::new(6), false);
        for _ in 0..3 {
            let mut z = Vec::with_capacity(4096);
            context
                .compress_vec(text.as_bytes(), &mut z, flate2::FlushCompress::Sync)
                .unwrap();
            z.truncate(z.len() - 4);
            let mut f = encode_masked_frame(true, Opcode::Text, &z, [9, 8, 7, 6]);
            f[0] |= 0x40;
            c.send_raw(&f);
            assert_eq!(c.read().payload, text.as_bytes(), "{backend:?}: takeover");
        }

        // A bomb: 4 MiB of zeros in about 4 KiB is 1009 once 64 KiB come out.
        let mut bomb = DeflateClient::connect(addr, "/echo", Some(OFFER), source_ip(1));
        bomb.send(Opcode::Binary, &vec![0u8; 4 << 20], true);
        assert_eq!(close_code_of(&bomb.read()), 1009, "{backend:?}: bomb");

        let mut bad = DeflateClient::connect(addr, "/echo", Some(OFFER), source_ip(2));
        bad.send(Opcode::Text, b"not \xff utf-8", true);
        assert_eq!(
            close_code_of(&bad.read()),
            1007,
            "{backend:?}: utf-8 after inflate"
        );

        let mut garbage = DeflateClient::connect(addr, "/echo", Some(OFFER), source_ip(3));
        let mut f = encode_masked_frame(true, Opcode::Binary, &[0xff; 20], [1, 2, 3, 4]);
        f[0] |= 0x40;
        garbage.send_raw(&f);
        assert_eq!(
            close_code_of(&garbage.read()),
            1007,
            "{backend:?}: not deflate"
        );

        for (offer, frames) in [
            // RSV1 on a continuation.
            (
                Some(OFFER),
                [
                    encode_masked_frame(false, Opcode::Text, b"a", [1, 2, 3, 4]),
                    encode_masked_frame(true, Opcode::Continuation, b"b", [1, 2, 3, 4]),
                ],
            ),
            // RSV1 without the extension.
            (
                None,
                [
                    encode_masked_frame(true, Opcode::Ping, b"", [1, 2, 3, 4]),
                    encode_masked_frame(true, Opcode::Text, b"b", [1, 2, 3, 4]),
                ],
            ),
        ] {
            let mut c = DeflateClient::connect(addr, "/echo", offer, source_ip(4));
            let mut bytes = frames[0].clone();
            let mut second = frames[1].clone();
            second[0] |= 0x40;
            bytes.extend_from_slice(&second);
            c.stream.write_all(&bytes).unwrap();
            let mut m = c.read();
            while m.opcode == 0xA {
                m = c.read();
            }
            assert_eq!(close_code_of(&m), 1002, "{backend:?}: {offer:?}");
        }
        let mut ping = DeflateClient::connect(addr, "/echo", Some(OFFER), source_ip(5));
        let mut f = encode_masked_frame(true, Opcode::Ping, b"", [1, 2, 3, 4]);
        f[0] |= 0x40;
        ping.send_raw(&f);
        assert_eq!(
            close_code_of(&ping.read()),
            1002,
            "{backend:?}: RSV1 on a ping"
        );
        server.shutdown().unwrap();
    }
}

#[test]
fn sequence_framing_and_replay_are_compressed_too() {
    for backend in BACKENDS {
        let cfg = Config {
            history: Some(HistoryConfig::frames(16)),
            ..config(backend, 2)
        };
        let server = start_with(cfg, Builtin::default());
        let addr = server.local_addr();
        let mut live = DeflateClient::connect(addr, "/ws/h?seq=1", Some(OFFER), source_ip(0));
        let (mut publisher, _) = connect_from(addr, "/ws/h", source_ip(1));
        let messages: Vec<String> = (0..3).map(|i| json_payload(800, i * 100)).collect();
        for m in &messages {
            publisher.send(Message::text(m.clone())).unwrap();
        }
        let mut live_wire = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            let r = live.read();
            assert!(r.rsv1 && r.opcode == 2, "{backend:?}: compressed binary");
            let (seq, op, body) = parse_seq_payload(&r.payload).unwrap();
            assert_eq!((seq, op, body), (i as u64 + 1, 1, m.as_bytes()));
            live_wire.push(r.wire_len);
        }
        for i in 0..4 {
            let mut resumed =
                DeflateClient::connect(addr, "/ws/h?since=0", Some(OFFER), source_ip(2 + i));
            for (j, m) in messages.iter().enumerate() {
                let r = resumed.read();
                assert!(r.rsv1, "{backend:?}: replayed compressed");
                let (seq, _, body) = parse_seq_payload(&r.payload).unwrap();
                assert_eq!((seq, body), (j as u64 + 1, m.as_bytes()));
                assert_eq!(r.wire_len, live_wire[j], "{backend:?}: the same form");
            }
        }
        server.shutdown().unwrap();
    }
}

//! A publish encodes each wire form it needs exactly once, whatever the number of
//! subscribers and shards — compressed forms (permessage-deflate) included (its own test binary: the build counters are process-wide, and
//! the tests here take turns).

mod common;

use std::sync::Mutex;

use common::*;
use ringcast::app::Builtin;
use ringcast::config::HistoryConfig;
use ringcast::wire::{builds, Encoding};
use ringcast::Config;
use tungstenite::Message;

/// The counters are process-wide: one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn one_encoding_per_publish_regardless_of_subscribers_and_shards() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    for backend in BACKENDS {
        for (threads, subscribers) in [(1, 10), (3, 60), (3, 150)] {
            let server = start(backend, threads);
            let addr = server.local_addr();
            let mut clients: Vec<_> = (0..subscribers)
                .map(|i| connect_from(addr, "/ws/r", source_ip(i)).0)
                .collect();
            let before = builds(Encoding::WebSocket);
            let sequenced_before = builds(Encoding::WebSocketSequenced);
            let publishes = 7;
            for i in 0..publishes {
                clients[i % subscribers]
                    .send(Message::binary(vec![i as u8; 100]))
                    .unwrap();
            }
            for c in &mut clients {
                for _ in 0..publishes {
                    assert!(c.read().unwrap().is_binary());
                }
            }
            assert_eq!(
                builds(Encoding::WebSocket) - before,
                publishes as u64,
                "{backend:?}: {threads} shards, {subscribers} subscribers"
            );
            assert_eq!(
                builds(Encoding::WebSocketSequenced),
                sequenced_before,
                "{backend:?}: history off, no sequenced form"
            );
            server.shutdown().unwrap();
        }
    }
}

/// History on, plain and sequenced subscribers spread over shards: each publish builds
/// its plain form once and its sequenced form once, and a resume replays the very
/// sequenced forms the live subscribers got (no build).
#[test]
fn with_history_each_form_in_use_is_built_once_per_publish_and_replay_builds_none() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    for backend in BACKENDS {
        let cfg = Config {
            history: Some(HistoryConfig::frames(64)),
            ..config(backend, 3)
        };
        let server = start_with(cfg, Builtin::default());
        let addr = server.local_addr();
        let mut plain: Vec<_> = (0..30)
            .map(|i| connect_from(addr, "/ws/h", source_ip(i)).0)
            .collect();
        let mut sequenced: Vec<_> = (30..60)
            .map(|i| connect_from(addr, "/ws/h?seq=1", source_ip(i)).0)
            .collect();
        let (ws, seq) = (
            builds(Encoding::WebSocket),
            builds(Encoding::WebSocketSequenced),
        );
        let publishes = 5u64;
        for i in 0..publishes {
            plain[i as usize]
                .send(Message::text(format!("m{i}")))
                .unwrap();
        }
        for c in &mut plain {
            for _ in 0..publishes {
                assert!(c.read().unwrap().is_text(), "{backend:?}: plain form");
            }
        }
        for c in &mut sequenced {
            for _ in 0..publishes {
                assert!(c.read().unwrap().is_binary(), "{backend:?}: sequenced form");
            }
        }
        assert_eq!(builds(Encoding::WebSocket) - ws, publishes, "{backend:?}");
        assert_eq!(
            builds(Encoding::WebSocketSequenced) - seq,
            publishes,
            "{backend:?}: one sequenced form per publish over 3 shards and 30 subscribers"
        );
        let (mut resumed, _) = connect_from(addr, "/ws/h?since=0", source_ip(60));
        for _ in 0..publishes {
            assert!(resumed.read().unwrap().is_binary(), "{backend:?}: replayed");
        }
        assert_eq!(
            builds(Encoding::WebSocketSequenced) - seq,
            publishes,
            "{backend:?}: the replay reuses the retained forms"
        );
        server.shutdown().unwrap();
    }
}

/// Plain and permessage-deflate subscribers in one room over 3 shards: one compression
/// per publish (counted by the build counter and by the shards' metric), none for a
/// room without a compressing subscriber; with history, one sequenced compression per
/// publish, reused by a resume.
#[test]
fn one_compression_per_publish_for_every_deflate_subscriber_on_every_shard() {
    use common::deflate::{json_payload, DeflateClient};
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    const OFFER: &str = "permessage-deflate; client_max_window_bits";
    for backend in BACKENDS {
        let cfg = Config {
            history: Some(HistoryConfig::frames(64)),
            ..config(backend, 3)
        };
        let (server, recorder) = common::start_recorded(cfg, Builtin::default());
        let addr = server.local_addr();
        let mut deflate: Vec<_> = (0..30)
            .map(|i| DeflateClient::connect(addr, "/ws/z", Some(OFFER), source_ip(i)))
            .collect();
        let mut sequenced: Vec<_> = (30..45)
            .map(|i| DeflateClient::connect(addr, "/ws/z?seq=1", Some(OFFER), source_ip(i)))
            .collect();
        let shards: std::collections::HashSet<_> = deflate.iter().map(|c| c.shard()).collect();
        assert_eq!(shards.len(), 3, "{backend:?}: subscribers on every shard");
        let mut plain: Vec<_> = (45..60)
            .map(|i| connect_from(addr, "/ws/z", source_ip(i)).0)
            .collect();
        let (mut elsewhere, _) = connect_from(addr, "/ws/plain-only", source_ip(60));
        let before = (
            builds(Encoding::WebSocketDeflate),
            builds(Encoding::WebSocketSequencedDeflate),
            recorder.get("compressed"),
        );
        let publishes = 5u64;
        for i in 0..publishes {
            plain[i as usize]
                .send(Message::text(json_payload(1024, i as usize)))
                .unwrap();
            elsewhere
                .send(Message::text(json_payload(1024, 9)))
                .unwrap();
        }
        for c in &mut deflate {
            for _ in 0..publishes {
                assert!(c.read().rsv1, "{backend:?}");
            }
        }
        for c in &mut sequenced {
            for _ in 0..publishes {
                let r = c.read();
                assert!(r.rsv1 && r.opcode == 2, "{backend:?}");
            }
        }
        for c in &mut plain {
            for _ in 0..publishes {
                assert!(c.read().unwrap().is_text());
            }
        }
        for _ in 0..publishes {
            assert!(elsewhere.read().unwrap().is_text());
        }
        assert_eq!(
            builds(Encoding::WebSocketDeflate) - before.0,
            publishes,
            "{backend:?}: one compression per publish, none for the plain-only room"
        );
        assert_eq!(
            builds(Encoding::WebSocketSequencedDeflate) - before.1,
            publishes,
            "{backend:?}: one sequenced compression per publish"
        );
        assert!(
            poll_until(TIMEOUT, || recorder.get("compressed") - before.2
                == 2 * publishes),
            "{backend:?}: the metric counts {} compressions",
            recorder.get("compressed") - before.2
        );
        let mut resumed = DeflateClient::connect(addr, "/ws/z?since=0", Some(OFFER), source_ip(61));
        for _ in 0..publishes {
            assert!(resumed.read().rsv1, "{backend:?}: replayed compressed");
        }
        assert_eq!(
            builds(Encoding::WebSocketSequencedDeflate) - before.1,
            publishes,
            "{backend:?}: the replay reuses the compressed forms"
        );
        server.shutdown().unwrap();
    }
}

/// SSE subscribers over 3 shards (history on, so the form carries `id:`): one SSE
/// build per publish, whatever the number of SSE subscribers and shards; a resume
/// after `Last-Event-ID` replays the very same chunks (no build); with no SSE
/// subscriber in a room, none.
#[test]
fn one_sse_encoding_per_publish_over_every_shard_and_resume_builds_none() {
    use common::sse::sse_connect;
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    for backend in BACKENDS {
        let cfg = Config {
            history: Some(HistoryConfig::frames(64)),
            ..config(backend, 3)
        };
        let server = start_with(cfg, Builtin::default());
        let addr = server.local_addr();
        let mut sse: Vec<_> = (0..45)
            .map(|i| sse_connect(addr, "/sse/e", "", i))
            .collect();
        let shards: std::collections::HashSet<_> = sse
            .iter()
            .map(|c| c.header("x-ringcast-shard").unwrap().to_owned())
            .collect();
        assert_eq!(
            shards.len(),
            3,
            "{backend:?}: SSE subscribers on every shard"
        );
        let mut ws = connect_from(addr, "/ws/e", source_ip(100)).0;
        let (mut other, _) = connect_from(addr, "/ws/ws-only", source_ip(101));
        let before = builds(Encoding::Sse);
        let publishes = 7u64;
        for i in 0..publishes {
            ws.send(Message::text(format!("e{i}"))).unwrap();
            other.send(Message::text("no sse here")).unwrap();
        }
        for c in &mut sse {
            for i in 0..publishes {
                assert_eq!(c.next_event().unwrap().id, Some(i + 1), "{backend:?}");
            }
        }
        assert_eq!(
            builds(Encoding::Sse) - before,
            publishes,
            "{backend:?}: one SSE chunk per publish for 45 subscribers on 3 shards"
        );
        let mut resumed = sse_connect(addr, "/sse/e", "Last-Event-ID: 0\r\n", 46);
        for i in 0..publishes {
            assert_eq!(resumed.next_event().unwrap().id, Some(i + 1));
        }
        assert_eq!(
            builds(Encoding::Sse) - before,
            publishes,
            "{backend:?}: the replay reuses the retained chunks"
        );
        server.shutdown().unwrap();
    }
}

//! A publish encodes each wire form it needs exactly once, whatever the number of
//! subscribers and shards (its own test binary: the build counters are process-wide, and
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

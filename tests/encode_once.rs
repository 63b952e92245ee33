//! A publish encodes its frame exactly once, whatever the number of subscribers and
//! shards (its own test binary: the encoding counter is process-wide).

mod common;

use common::*;
use ringcast::wire::{builds, Encoding};
use tungstenite::Message;

#[test]
fn one_encoding_per_publish_regardless_of_subscribers_and_shards() {
    for backend in BACKENDS {
        for (threads, subscribers) in [(1, 10), (3, 60), (3, 150)] {
            let server = start(backend, threads);
            let addr = server.local_addr();
            let mut clients: Vec<_> = (0..subscribers)
                .map(|i| connect_from(addr, "/ws/r", source_ip(i)).0)
                .collect();
            let before = builds(Encoding::WebSocket);
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
            server.shutdown().unwrap();
        }
    }
}

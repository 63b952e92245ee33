//! Cluster-mode nodes for the broker tests: a server in this process with the rooms app
//! (2 shards, the sender included), joined to a broker URL and polled until its broker
//! link is up; and reading a room's text messages past heartbeats.

use std::collections::HashSet;
use std::time::Duration;

use ringcast::app::{Builtin, Rooms};
use ringcast::config::{BrokerConfig, HistoryConfig};
use ringcast::{BackendChoice, Config, RunningServer};
use tungstenite::Message;

use super::{config, poll_until, start_with, Client, TIMEOUT};

/// A node on the broker at `url` (`redis://…` or `redis+cluster://…`): 2 shards, the
/// rooms app, `--node-id id`, a 200 ms linger, `--history N` when `history` is given.
/// Returns once the node's broker link is up.
pub fn node(
    backend: BackendChoice,
    url: String,
    id: &str,
    history: Option<usize>,
) -> RunningServer {
    let cfg = Config {
        broker: Some(BrokerConfig {
            node_id: Some(id.into()),
            linger: Duration::from_millis(200),
            ..BrokerConfig::new(url)
        }),
        history: history.map(HistoryConfig::frames),
        ..config(backend, 2)
    };
    let server = start_with(
        cfg,
        Builtin {
            rooms: Rooms {
                exclude_sender: false,
            },
            ..Builtin::default()
        },
    );
    assert!(
        poll_until(TIMEOUT, || server.broker_stats().unwrap().1.up),
        "node {id} connected to its broker"
    );
    server
}

/// The next text message on `c` (pings and pongs skipped; anything else panics).
pub fn read_text(c: &mut Client) -> String {
    loop {
        match c.read().expect("read") {
            Message::Text(t) => return t.to_string(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// The first three of `clients` (one per node) each publish `each` texts `n{N}-{I}` at
/// once; then every client must read all `3 × each`, each once, every publisher's in
/// its order, and all clients in one identical order.
pub fn publish_from_three_and_check_one_order(clients: &mut [Client], each: usize) {
    std::thread::scope(|s| {
        for (n, c) in clients.iter_mut().take(3).enumerate() {
            s.spawn(move || {
                for i in 0..each {
                    c.send(Message::text(format!("n{n}-{i}"))).unwrap();
                }
                c.flush().unwrap();
            });
        }
    });
    let mut orders: Vec<Vec<String>> = Vec::with_capacity(clients.len());
    for c in clients.iter_mut() {
        orders.push((0..3 * each).map(|_| read_text(c)).collect());
    }
    let first = &orders[0];
    let distinct: HashSet<&String> = first.iter().collect();
    assert_eq!(distinct.len(), 3 * each, "each message once: {first:?}");
    for n in 0..3 {
        let mine: Vec<&String> = first
            .iter()
            .filter(|m| m.starts_with(&format!("n{n}-")))
            .collect();
        let sent: Vec<String> = (0..each).map(|i| format!("n{n}-{i}")).collect();
        assert!(
            mine.iter().zip(&sent).all(|(a, b)| *a == b),
            "a publisher's order kept"
        );
    }
    for (i, o) in orders.iter().enumerate() {
        assert_eq!(o, first, "client {i} saw another order");
    }
}

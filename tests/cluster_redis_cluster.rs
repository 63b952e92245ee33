//! Cluster mode over a real Redis Cluster (`--broker redis+cluster://…`, feature
//! `redis`), on both backends, through real sockets: three ringcast nodes on a
//! three-master Redis Cluster deliver every message of a room exactly once and in one
//! identical order to every client; the room is subscribed with sharded pub/sub on
//! the master of its slot only (`PUBSUB SHARDNUMSUB`), and published there only
//! (`SPUBLISH`, or the publish script with `--history`); when that master is killed
//! and comes back, every node reconnects and subscribes the room again.

#![cfg(feature = "redis")]

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use common::cluster::{node, publish_from_three_and_check_one_order, read_text};
use common::redis::RedisCluster;
use common::*;
use ringcast::{BackendChoice, RunningServer};
use tungstenite::Message;

/// The room's channel (hash tag `{ringcast:r}`).
const CHANNEL: &str = "{ringcast:r}";

#[test]
fn three_nodes_on_a_redis_cluster_every_client_gets_every_message_once_in_one_order() {
    for backend in BACKENDS {
        spread_room(backend, None);
    }
}

#[test]
fn with_history_the_script_publishes_on_the_slot_s_shard() {
    for backend in BACKENDS {
        spread_room(backend, Some(500));
    }
}

/// 3 ringcast nodes on a 3-master cluster, 60 clients of room `r` spread over them, one
/// publisher per node; `history`: `--history` (the publish script).
fn spread_room(backend: BackendChoice, history: Option<usize>) {
    let cluster = RedisCluster::start(3);
    let owner = cluster.owner(CHANNEL);
    let others: Vec<_> = cluster
        .nodes
        .iter()
        .filter(|n| n.port != owner.port)
        .collect();
    let nodes: Vec<RunningServer> = (0..3)
        .map(|i| node(backend, cluster.url(), &format!("n{i}"), history))
        .collect();
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.local_addr()).collect();
    let mut clients: Vec<Client> = (0..60)
        .map(|i| connect_from(addrs[i % 3], "/ws/r", source_ip(i)).0)
        .collect();
    // Sharded subscriptions live on the slot's master only: one per ringcast node.
    assert!(
        poll_until(TIMEOUT, || owner.shardnumsub(CHANNEL) == 3),
        "every node subscribed once on the slot's master"
    );
    for o in &others {
        assert_eq!(
            o.shardnumsub(CHANNEL),
            0,
            "no subscription on another master"
        );
        assert_eq!(o.numsub(CHANNEL), 0, "no classic subscription anywhere");
    }
    assert_eq!(owner.numsub(CHANNEL), 0, "no classic subscription anywhere");
    let command = if history.is_some() {
        "evalsha"
    } else {
        "spublish"
    };
    let before = owner.calls(command);
    const EACH: usize = 20;
    publish_from_three_and_check_one_order(&mut clients, EACH);
    // One command per publish, all on the slot's master.
    assert_eq!(owner.calls(command) - before, (3 * EACH) as u64);
    for o in &others {
        assert_eq!(
            o.calls("spublish"),
            0,
            "nothing published on another master"
        );
        assert_eq!(o.calls("publish"), 0);
    }
    let received: u64 = nodes
        .iter()
        .map(|n| n.broker_stats().unwrap().1.received)
        .sum();
    assert_eq!(
        received,
        (3 * 3 * EACH) as u64,
        "one decode per message per node"
    );
    for n in &nodes {
        assert_eq!(n.broker_stats().unwrap().1.reconnects, 0, "no reconnect");
    }
    drop(clients);
    for n in nodes {
        n.shutdown().unwrap();
    }
}

#[test]
fn the_slot_s_master_killed_and_back_every_node_subscribes_again() {
    for backend in BACKENDS {
        let mut cluster = RedisCluster::start(3);
        let owner = cluster
            .nodes
            .iter()
            .position(|n| n.port == cluster.owner(CHANNEL).port)
            .unwrap();
        let nodes: Vec<RunningServer> = (0..3)
            .map(|i| node(backend, cluster.url(), &format!("n{i}"), None))
            .collect();
        let mut clients: Vec<Client> = nodes
            .iter()
            .map(|n| connect(n.local_addr(), "/ws/r"))
            .collect();
        assert!(poll_until(TIMEOUT, || cluster.nodes[owner]
            .shardnumsub(CHANNEL)
            == 3));
        // Killed (its subscriptions gone with it) and back on its port, empty.
        cluster.restart(owner);
        assert!(
            poll_until(Duration::from_secs(20), || nodes.iter().all(|n| n
                .broker_stats()
                .unwrap()
                .1
                .reconnects
                >= 1
                && n.broker_stats().unwrap().1.up)),
            "every node noticed the loss and reconnected"
        );
        assert!(
            poll_until(Duration::from_secs(20), || cluster.nodes[owner]
                .shardnumsub(CHANNEL)
                == 3),
            "every node subscribed again"
        );
        for (n, c) in clients.iter_mut().enumerate() {
            c.send(Message::text(format!("after-{n}"))).unwrap();
            c.flush().unwrap();
        }
        let mut orders: Vec<Vec<String>> = Vec::new();
        for c in clients.iter_mut() {
            orders.push((0..3).map(|_| read_text(c)).collect());
        }
        let distinct: HashSet<&String> = orders[0].iter().collect();
        assert_eq!(distinct.len(), 3, "each once: {:?}", orders[0]);
        assert!(
            orders.iter().all(|o| *o == orders[0]),
            "one order: {orders:?}"
        );
        drop(clients);
        for n in nodes {
            n.shutdown().unwrap();
        }
    }
}

//! Connections placed on chosen shards: the kernel's SO_REUSEPORT hash picks the shard
//! from the source address and port, so a test that needs members on every shard
//! connects from successive 127.0.0.x addresses until each shard has its share, and
//! drops the extras (told apart by the 101's `x-ringcast-shard` header).

use std::net::SocketAddr;

use super::{connect_from, shard_of, source_ip, Client};

/// Most connection attempts before giving up (a shard that never gets one fails the test).
const MAX_ATTEMPTS: usize = 2_000;

/// Clients placed by [`connect_spread`].
pub struct Spread {
    /// The clients with their shard, in the order they connected.
    pub clients: Vec<(Client, usize)>,
    /// Connections that landed on a shard that already had its share: upgraded, then
    /// closed cleanly by the client. The server may still be finishing them when
    /// [`connect_spread`] returns: wait for `extras` closes before counting.
    pub extras: usize,
}

/// `per_shard[s]` WebSocket clients to `path` on shard `s`, for every shard.
pub fn connect_spread(addr: SocketAddr, path: &str, per_shard: &[usize]) -> Spread {
    let mut want = per_shard.to_vec();
    let mut kept = Vec::new();
    let mut extras = Vec::new();
    for i in 0..MAX_ATTEMPTS {
        if want.iter().all(|n| *n == 0) {
            break;
        }
        let (client, response) = connect_from(addr, path, source_ip(i));
        let shard = shard_of(&response);
        match want.get_mut(shard) {
            Some(n) if *n > 0 => {
                *n -= 1;
                kept.push((client, shard));
            }
            _ => extras.push(client),
        }
    }
    assert!(
        want.iter().all(|n| *n == 0),
        "{MAX_ATTEMPTS} connections left shards short by {want:?}"
    );
    let count = extras.len();
    for mut c in extras {
        c.close(None).unwrap();
        while c.read().is_ok() {}
    }
    Spread {
        clients: kept,
        extras: count,
    }
}

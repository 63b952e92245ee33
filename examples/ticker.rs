//! A ticker: clients connect to `ws://127.0.0.1:9002/ws/ticker` and receive a tick every
//! 100 ms, published from a plain thread through the thread-safe `Publisher`.
//!
//! ```sh
//! cargo run --release --example ticker            # runs until Ctrl-C
//! cargo run --release --example ticker -- 20      # stops by itself after 20 ticks
//! ```

use std::time::Duration;

use ringcast::app::Builtin;
use ringcast::{sys, Config, Message, Server};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ticks: Option<u64> = std::env::args().nth(1).map(|s| s.parse()).transpose()?;
    let signals = sys::install_shutdown_signals()?;
    let cfg = Config {
        addr: "127.0.0.1:9002".parse()?,
        ..Config::default()
    };
    let server = Server::start(cfg, Builtin::default())?;
    println!("ticker on ws://{}/ws/ticker", server.local_addr());
    let publisher = server.publisher();
    let mut n = 0u64;
    while !signals.requested() && ticks.is_none_or(|t| n < t) {
        n += 1;
        let shards = publisher.publish("ticker", Message::Text(&format!("tick {n}")))?;
        if n % 10 == 0 {
            println!("tick {n} reached {shards} shard(s)");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    server.shutdown()?;
    Ok(())
}

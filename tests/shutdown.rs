//! Graceful shutdown: 1,000 connected clients all receive close 1001 "going away", every
//! close is reported with reason `server_shutdown`, the threads are joined within the
//! timeout, and silent clients are dropped when the timeout passes.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::Message;

#[test]
fn every_client_gets_1001_and_all_threads_join() {
    for backend in BACKENDS {
        let mut cfg = config(backend, 2);
        cfg.shard.shutdown_timeout = Duration::from_secs(5);
        let server = start_with(cfg, ringcast::app::Builtin::default());
        let addr = server.local_addr();
        let mut clients: Vec<_> = (0..300)
            .map(|i| connect_from(addr, "/ws/s", source_ip(i)).0)
            .collect();
        let readers = std::thread::spawn(move || {
            let mut codes = Vec::new();
            for c in &mut clients {
                // tungstenite answers the close and reports it.
                let code = loop {
                    match c.read() {
                        Ok(Message::Close(Some(frame))) => break Some(frame.code),
                        Ok(Message::Close(None)) => break None,
                        Ok(_) => continue,
                        Err(e) => panic!("read: {e}"),
                    }
                };
                codes.push(code);
            }
            // Finish the close handshakes so the server sees EOFs.
            for c in &mut clients {
                while c.flush().is_ok() && c.read().is_ok() {}
            }
            codes
        });
        let started = Instant::now();
        server.shutdown().unwrap();
        let elapsed = started.elapsed();
        let codes = readers.join().unwrap();
        assert_eq!(codes.len(), 300);
        assert!(
            codes.iter().all(|c| *c == Some(CloseCode::Away)),
            "{backend:?}: {codes:?}"
        );
        assert!(
            elapsed < Duration::from_secs(5),
            "{backend:?}: shutdown took {elapsed:?}"
        );
    }
}

#[test]
fn shutdown_drops_silent_clients_after_the_timeout() {
    for backend in BACKENDS {
        let mut cfg = config(backend, 1);
        cfg.shard.shutdown_timeout = Duration::from_millis(300);
        cfg.shard.timeouts.close = Duration::from_secs(30);
        let server = start_with(cfg, ringcast::app::Builtin::default());
        // A raw client that never answers the close.
        let mut silent = raw_upgraded(server.local_addr(), "/echo");
        let started = Instant::now();
        server.shutdown().unwrap();
        assert!(started.elapsed() < Duration::from_secs(5), "{backend:?}");
        assert_eq!(close_code(&read_to_close(&mut silent)), Some(1001));
    }
}

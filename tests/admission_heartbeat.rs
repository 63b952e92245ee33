//! Admission cap, heartbeats and handshake timeouts through real sockets, both backends.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::*;
use ringcast::app::Builtin;
use tungstenite::Message;

#[test]
fn over_the_cap_gets_503_and_slots_come_back_on_close() {
    for backend in BACKENDS {
        let mut cfg = config(backend, 2);
        cfg.max_connections = 2;
        let (server, rec) = start_recorded(cfg, Builtin::default());
        let addr = server.local_addr();
        let mut a = connect_from(addr, "/echo", source_ip(1)).0;
        let _b = connect_from(addr, "/echo", source_ip(2)).0;
        assert_eq!(server.admitted(), 2);
        let url = format!("ws://{addr}/echo");
        match tungstenite::client::client(url.as_str(), tcp_from(addr, source_ip(3))) {
            Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(resp))) => {
                assert_eq!(resp.status(), 503, "{backend:?}");
                assert!(resp.headers().contains_key("retry-after"));
            }
            other => panic!("{backend:?}: expected 503, got {:?}", other.map(|_| ())),
        }
        assert_eq!(
            server.admitted(),
            2,
            "{backend:?}: the refused one holds no slot"
        );
        assert_eq!(rec.get("admission_rejected"), 1);
        assert_eq!(rec.get("rejected:503"), 1);
        a.close(None).unwrap();
        while a.read().is_ok() {}
        assert!(
            poll_until(TIMEOUT, || server.admitted() == 1),
            "{backend:?}: slot released on close"
        );
        let mut c = connect_from(addr, "/echo", source_ip(4)).0;
        c.send(Message::text("in")).unwrap();
        assert_eq!(c.read().unwrap(), Message::text("in"));
        server.shutdown().unwrap();
    }
}

#[test]
fn a_vanished_peer_is_dropped_by_the_pong_timeout_and_frees_its_slot() {
    for backend in BACKENDS {
        let mut cfg = config(backend, 1);
        cfg.max_connections = 5;
        cfg.shard.timeouts.ping_interval = Duration::from_millis(100);
        cfg.shard.timeouts.pong = Duration::from_millis(200);
        let (server, rec) = start_recorded(cfg, Builtin::default());
        let addr = server.local_addr();
        // Upgraded, then silent: never reads, never answers a ping.
        let _silent = raw_upgraded(addr, "/ws/hb");
        // A live tungstenite client answers pings while it reads.
        let mut live = connect_from(addr, "/ws/hb", source_ip(2)).0;
        live.get_mut()
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        assert_eq!(server.admitted(), 2);
        let started = Instant::now();
        let mut pings = 0;
        while started.elapsed() < Duration::from_millis(900) {
            match live.read() {
                Ok(Message::Ping(_)) => pings += 1,
                Ok(_) => {}
                Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{backend:?}: live client dropped: {e}"),
            }
            let _ = live.flush();
        }
        assert!(pings >= 3, "{backend:?}: heartbeats sent ({pings})");
        assert!(
            poll_until(TIMEOUT, || server.admitted() == 1),
            "{backend:?}: silent peer's slot released"
        );
        assert_eq!(rec.get("pong_timeout"), 1, "{backend:?}");
        assert_eq!(rec.get("closed:pong_timeout"), 1, "{backend:?}");
        server.shutdown().unwrap();
    }
}

#[test]
fn slowloris_and_one_byte_per_interval_clients_hit_the_handshake_timeout() {
    for backend in BACKENDS {
        let mut cfg = config(backend, 1);
        cfg.shard.timeouts.handshake = Duration::from_millis(300);
        let (server, rec) = start_recorded(cfg, Builtin::default());
        let addr = server.local_addr();
        // Half a request, then nothing.
        let mut half = tcp_from(addr, source_ip(1));
        half.write_all(b"GET /echo HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        // One byte every 50 ms: never finishes within 300 ms.
        let mut dribble = tcp_from(addr, source_ip(2));
        let request = upgrade_request("/echo");
        let started = Instant::now();
        let mut sent = 0;
        while started.elapsed() < Duration::from_millis(700) && sent < request.len() {
            if dribble.write_all(&request[sent..sent + 1]).is_err() {
                break;
            }
            sent += 1;
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            sent < request.len(),
            "the dribbling request never completed"
        );
        let answer = read_to_close(&mut half);
        assert!(
            answer.starts_with(b"HTTP/1.1 408 "),
            "{backend:?}: 408 (RFC 9110 §15.5.9), then closed: {:?}",
            String::from_utf8_lossy(&answer)
        );
        assert!(
            poll_until(TIMEOUT, || rec.get("closed:handshake_timeout") == 2),
            "{backend:?}: {:?}",
            rec.snapshot()
        );
        // The shard still serves.
        let mut c = connect(addr, "/echo");
        c.send(Message::text("alive")).unwrap();
        assert_eq!(c.read().unwrap(), Message::text("alive"));
        server.shutdown().unwrap();
    }
}

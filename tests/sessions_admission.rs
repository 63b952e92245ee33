//! Detached sessions and the admission cap (`--max-connections`), through real sockets
//! on both backends: a detached session keeps its admission slot until it is resumed
//! or expires, so a peer that connects and resets over and over cannot pile up
//! detached sessions (each with its rooms and a buffer of up to
//! `--session-buffer-bytes`) past the cap; the 503 counts. A resume at the cap takes
//! over the slot its session kept, and an expiry gives it back.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::session::*;
use common::*;
use ringcast::shard::session::RESUME_HEADER;
use ringcast::{Config, Handler};
use tungstenite::handshake::client::Response;

struct Plain;
impl Handler for Plain {}

fn capped(backend: ringcast::BackendChoice, grace: Duration) -> Config {
    let mut cfg = session_config(backend, 1, grace);
    cfg.max_connections = 2;
    cfg
}

/// Upgrade on `/s` (presenting `token` if given): the client and the 101, or the
/// refusal's status.
fn try_connect(addr: SocketAddr, token: Option<&str>) -> Result<(Client, Response), u16> {
    let stream = tcp_from(addr, source_ip(0));
    match tungstenite::client::client(resume_request(addr, "/s", token), stream) {
        Ok(pair) => Ok(pair),
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(r))) => {
            Err(r.status().as_u16())
        }
        Err(e) => panic!("handshake: {e}"),
    }
}

#[test]
fn detached_sessions_hold_admission_slots_and_a_resume_takes_its_own_back() {
    for backend in BACKENDS {
        let (server, rec) = start_recorded(capped(backend, Duration::from_secs(60)), Plain);
        let addr = server.local_addr();
        let (a, response) = try_connect(addr, None).unwrap();
        let token_a = token_of(&response);
        reset(a);
        let (b, _) = try_connect(addr, None).unwrap();
        reset(b);
        assert!(poll_until(TIMEOUT, || rec.level("detached") == 2));
        assert_eq!(
            server.admitted(),
            2,
            "{backend:?}: the detached keep theirs"
        );
        // Without the fix these were admitted: detached sessions were bounded by nothing.
        assert_eq!(try_connect(addr, None).err(), Some(503), "{backend:?}");
        assert_eq!(rec.get("admission_rejected"), 1);
        // At the cap, a resume takes over the slot its session kept.
        let (_a2, response) = try_connect(addr, Some(&token_a)).unwrap();
        let resumed = response.headers().get(RESUME_HEADER).unwrap();
        assert_eq!(resumed, "resumed", "{backend:?}");
        assert_eq!((server.admitted(), rec.level("detached")), (2, 1));
        assert_eq!(try_connect(addr, None).err(), Some(503), "{backend:?}");
        server.shutdown().unwrap();
    }
}

#[test]
fn an_expired_session_gives_its_admission_slot_back() {
    for backend in BACKENDS {
        let (server, rec) = start_recorded(capped(backend, Duration::from_millis(200)), Plain);
        let addr = server.local_addr();
        for _ in 0..2 {
            reset(try_connect(addr, None).unwrap().0);
        }
        assert!(poll_until(TIMEOUT, || rec
            .get("session_ended:grace_expired")
            == 2));
        assert!(
            poll_until(TIMEOUT, || server.admitted() == 0),
            "{backend:?}"
        );
        let (_c, _) = try_connect(addr, None).expect("admitted again");
        let (_d, _) = try_connect(addr, None).expect("admitted again");
        server.shutdown().unwrap();
    }
}

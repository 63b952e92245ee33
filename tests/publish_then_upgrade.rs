//! A keep-alive connection that publishes (`POST /publish/{room}`) and then upgrades
//! on the same connection (a WebSocket upgrade or an SSE `GET`, both legal next
//! requests) holds **one** admission slot (`--max-connections`), not two, and gives it
//! back when it closes; real sockets, both backends. Before the fix each such
//! connection leaked a slot for good, so a peer could fill the cap and every later
//! client got 503.

mod common;

use std::io::{Read, Write};
use std::net::Shutdown;

use common::*;
use ringcast::app::Builtin;

const PUBLISH: &[u8] = b"POST /publish/r HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nx";
const SSE: &[u8] = b"GET /sse/r HTTP/1.1\r\nHost: h\r\n\r\n";

/// Read until `n` response heads (`\r\n\r\n`) have come.
fn read_heads(s: &mut std::net::TcpStream, n: usize) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while out.windows(4).filter(|w| w == b"\r\n\r\n").count() < n {
        let got = s.read(&mut buf).unwrap();
        assert!(got > 0, "closed early: {}", String::from_utf8_lossy(&out));
        out.extend_from_slice(&buf[..got]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn a_publish_then_an_upgrade_on_one_connection_holds_one_admission_slot() {
    for backend in BACKENDS {
        let mut cfg = config(backend, 1);
        cfg.max_connections = 2;
        let (server, _rec) = start_recorded(cfg, Builtin::default());
        let addr = server.local_addr();
        for second in [upgrade_request("/ws/r"), SSE.to_vec()] {
            let mut s = tcp_from(addr, source_ip(0));
            s.write_all(&[PUBLISH, &second].concat()).unwrap();
            let heads = read_heads(&mut s, 2);
            assert!(heads.starts_with("HTTP/1.1 202"), "{backend:?}: {heads}");
            assert!(
                heads.contains("HTTP/1.1 101") || heads.contains("HTTP/1.1 200"),
                "{backend:?}: {heads}"
            );
            assert_eq!(server.admitted(), 1, "{backend:?}: one slot per connection");
            s.shutdown(Shutdown::Both).unwrap();
            drop(s);
            assert!(
                poll_until(TIMEOUT, || server.admitted() == 0),
                "{backend:?}: the slot went back, {} held",
                server.admitted()
            );
        }
        // The cap is whole again: two connections fit.
        let _a = raw_upgraded(addr, "/ws/r");
        let _b = raw_upgraded(addr, "/ws/r");
        server.shutdown().unwrap();
    }
}

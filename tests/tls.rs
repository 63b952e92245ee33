//! `wss://` end to end on both backends (cargo feature `tls`): fan-out to 100 TLS
//! clients in order with the frame still encoded once per publish, plain HTTP sent to
//! the TLS port, a client that refuses the certificate, and the close handshake with
//! `close_notify`. Certificates are generated here (rcgen); the client is rustls under
//! tungstenite. The Python `websockets` client over TLS is in `tests/interop.rs`.
#![cfg(feature = "tls")]

mod common;

use std::io::{Read, Write};
use std::sync::{Arc, Mutex, MutexGuard};

use common::tls::*;
use common::*;
use ringcast::wire::{builds, Encoding};
use ringcast::BackendChoice;
use tungstenite::Message;

/// The fan-out test counts encodings, a process-wide counter, and the other tests here
/// send data messages: the tests of this file run one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn tls_server(
    backend: BackendChoice,
    threads: usize,
) -> (ringcast::RunningServer, Arc<rustls::ClientConfig>) {
    let (server_tls, cert) = self_signed();
    let mut cfg = config(backend, threads);
    cfg.driver.tls = Some(server_tls);
    (
        start_with(cfg, ringcast::app::Builtin::default()),
        client_config(&cert),
    )
}

#[test]
fn fan_out_to_100_tls_clients_in_order_with_one_encoding_per_publish() {
    let _serial = one_at_a_time();
    const CLIENTS: usize = 100;
    const MESSAGES: usize = 40;
    for backend in BACKENDS {
        let (server, client_tls) = tls_server(backend, 2);
        let addr = server.local_addr();
        let mut clients: Vec<TlsClient> = (0..CLIENTS)
            .map(|i| wss_connect(addr, "/ws/tls-room", source_ip(i), &client_tls))
            .collect();
        let before = builds(Encoding::WebSocket);
        for seq in 0..MESSAGES {
            // Sizes around the batch copy limit and one over a TLS record (16 KiB).
            let size = [8, 1000, 3000, 20_000][seq % 4];
            let mut payload = vec![(seq % 251) as u8; size];
            payload[..4].copy_from_slice(&(seq as u32).to_be_bytes());
            clients[0].send(Message::binary(payload)).unwrap();
        }
        for (i, client) in clients.iter_mut().enumerate() {
            for seq in 0..MESSAGES {
                let msg = client
                    .read()
                    .unwrap_or_else(|e| panic!("{backend:?}: client {i} at {seq}: {e}"));
                let data = msg.into_data();
                let got = u32::from_be_bytes(data[..4].try_into().unwrap()) as usize;
                assert_eq!(got, seq, "{backend:?}: client {i} out of order");
                assert_eq!(data.len(), [8, 1000, 3000, 20_000][seq % 4]);
                assert!(data[4..].iter().all(|&b| b == (seq % 251) as u8));
            }
        }
        assert_eq!(
            builds(Encoding::WebSocket) - before,
            MESSAGES as u64,
            "{backend:?}: encryption is per connection, encoding is once per publish"
        );
        server.shutdown().unwrap();
    }
}

#[test]
fn plain_http_to_the_tls_port_gets_an_alert_and_is_counted() {
    let _serial = one_at_a_time();
    for backend in BACKENDS {
        let (server_tls, _) = self_signed();
        let mut cfg = config(backend, 1);
        cfg.driver.tls = Some(server_tls);
        let (server, rec) = start_recorded(cfg, ringcast::app::Builtin::default());
        let mut s = tcp_from(server.local_addr(), source_ip(0));
        s.write_all(&upgrade_request("/ws/x")).unwrap();
        let reply = read_to_close(&mut s);
        assert_eq!(
            reply.first(),
            Some(&0x15),
            "{backend:?}: expected a TLS alert record, got {reply:?}"
        );
        assert!(
            poll_until(TIMEOUT, || rec.get("closed:tls_error") == 1),
            "{backend:?}: closes {:?}",
            rec.snapshot()
        );
        server.shutdown().unwrap();
    }
}

#[test]
fn a_client_that_refuses_the_certificate_is_closed_without_leaking_its_slot() {
    let _serial = one_at_a_time();
    for backend in BACKENDS {
        let (server_tls, cert) = self_signed();
        let (_, other_cert) = self_signed();
        let mut cfg = config(backend, 1);
        cfg.driver.tls = Some(server_tls);
        cfg.max_connections = 1;
        let (server, rec) = start_recorded(cfg, ringcast::app::Builtin::default());
        let addr = server.local_addr();
        let url = format!("wss://{addr}/ws/x");
        let stream = tls_stream(addr, source_ip(0), &client_config(&other_cert));
        let err = tungstenite::client::client(url, stream).expect_err("untrusted certificate");
        assert!(
            format!("{err}").to_lowercase().contains("certificate"),
            "{backend:?}: {err}"
        );
        assert!(
            poll_until(TIMEOUT, || rec.get("closed:tls_error") == 1),
            "{backend:?}: closes {:?}",
            rec.snapshot()
        );
        // The admission cap is 1: a client that trusts the certificate gets in only if
        // the refused connection's slot came back.
        let mut ok = wss_connect(addr, "/ws/x", source_ip(1), &client_config(&cert));
        ok.send(Message::text("in")).unwrap();
        assert_eq!(ok.read().unwrap(), Message::text("in"));
        server.shutdown().unwrap();
    }
}

#[test]
fn close_handshake_over_tls_ends_with_close_notify_and_tcp_close() {
    let _serial = one_at_a_time();
    for backend in BACKENDS {
        let (server, client_tls) = tls_server(backend, 1);
        let addr = server.local_addr();
        let mut ws = wss_connect(addr, "/echo", source_ip(0), &client_tls);
        ws.send(Message::text("hello")).unwrap();
        assert_eq!(ws.read().unwrap(), Message::text("hello"));
        ws.close(None).unwrap();
        // Our close is answered by the server's; then the server closes TLS (close_notify)
        // and TCP: tungstenite reports ConnectionClosed rather than an I/O error.
        loop {
            match ws.read() {
                Ok(Message::Close(_)) | Ok(_) => continue,
                Err(tungstenite::Error::ConnectionClosed) => break,
                Err(e) => panic!("{backend:?}: expected a clean close, got {e}"),
            }
        }
        let stream = ws.get_mut();
        let mut rest = Vec::new();
        let n = stream
            .read_to_end(&mut rest)
            .expect("clean TLS end (close_notify seen)");
        assert_eq!(n, 0, "{backend:?}");
        server.shutdown().unwrap();
    }
}

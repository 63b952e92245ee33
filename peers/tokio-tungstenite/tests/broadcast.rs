//! The peer server as `make compare-peers` uses it: the spawned binary broadcasts every
//! data message (binary and text) to every client on any path, the sender included.
//! Stopped by PID when the test ends (Drop); every read has a timeout.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tungstenite::{Message, WebSocket};

/// The spawned server, killed and reaped on drop.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary on a free port; returns it and its address from its first line.
fn start() -> (Peer, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_peer-tokio-tungstenite"))
        .arg("0")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the peer");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("first line");
    let addr = line.trim().rsplit(' ').next().unwrap().to_string();
    (Peer(child), addr)
}

fn client(addr: &str, path: &str) -> WebSocket<TcpStream> {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (ws, _) = tungstenite::client(format!("ws://{addr}{path}"), tcp).expect("upgrade");
    ws
}

#[test]
fn every_message_reaches_every_client_sender_included() {
    let (_peer, addr) = start();
    // The server subscribes a connection in the same task step that completes its
    // upgrade (one thread, no await in between), before any other client's message is
    // read: once `client` returns, the connection receives every later message.
    let mut clients: Vec<_> = ["/", "/a", "/ws/bench"]
        .iter()
        .map(|p| client(&addr, p))
        .collect();
    let payload = vec![7u8; 64];
    clients[1].send(Message::binary(payload.clone())).unwrap();
    clients[1].send(Message::text("hello")).unwrap();
    for (n, c) in clients.iter_mut().enumerate() {
        let got = [c.read().unwrap(), c.read().unwrap()];
        assert_eq!(
            got,
            [Message::binary(payload.clone()), Message::text("hello")],
            "client {n}"
        );
    }
}

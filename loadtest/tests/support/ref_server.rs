//! A tiny reference WebSocket server for the end-to-end tests (and `examples/ref_server`):
//! tungstenite, one thread per connection, `/ws/{room}` broadcast-to-all-members
//! (including the sender, like ringcast without `--exclude-sender`) and `/echo`.
//! Deliberately independent from the generator's own codec, so the two check each other.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::thread;

use tungstenite::handshake::server::{Request, Response};
use tungstenite::protocol::Role;
use tungstenite::{Bytes, Message, WebSocket};

type Rooms = Arc<Mutex<HashMap<String, Vec<(u64, Sender<Bytes>)>>>>;

/// Behaviour switches.
#[derive(Clone, Copy, Default)]
pub struct Options {
    /// Drop every Nth delivery in rooms (to test loss detection).
    pub drop_every: Option<u64>,
    /// Accept TCP connections but never answer the upgrade.
    pub silent: bool,
}

/// Starts the server on 127.0.0.1 with an ephemeral port; it runs until the process ends.
pub fn start(opts: Options) -> SocketAddr {
    start_on("127.0.0.1:0", opts)
}

/// Starts the server on `bind` (a loopback address); it runs until the process ends.
pub fn start_on(bind: &str, opts: Options) -> SocketAddr {
    let listener = TcpListener::bind(bind).expect("bind");
    let addr = listener.local_addr().unwrap();
    let rooms: Rooms = Arc::default();
    let deliveries = Arc::new(AtomicU64::new(0));
    let ids = AtomicU64::new(0);
    thread::spawn(move || {
        let mut silent_keep = Vec::new();
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            if opts.silent {
                silent_keep.push(stream);
                continue;
            }
            let rooms = rooms.clone();
            let deliveries = deliveries.clone();
            let id = ids.fetch_add(1, Ordering::Relaxed);
            thread::Builder::new()
                .stack_size(128 * 1024)
                .spawn(move || serve(stream, rooms, deliveries, id, opts))
                .expect("spawn");
        }
    });
    addr
}

// tungstenite's handshake callback type fixes the (large) error type.
#[allow(clippy::result_large_err)]
fn serve(stream: TcpStream, rooms: Rooms, deliveries: Arc<AtomicU64>, id: u64, opts: Options) {
    let _ = stream.set_nodelay(true);
    let (tx, rx) = channel::<Bytes>();
    let mut room: Option<String> = None;
    let mut echo = false;
    let cb = |req: &Request, resp: Response| {
        let path = req.uri().path();
        if path == "/echo" {
            echo = true;
        } else if let Some(r) = path.strip_prefix("/ws/") {
            // Join before the 101 goes out, so the client may publish right after it.
            rooms
                .lock()
                .unwrap()
                .entry(r.to_string())
                .or_default()
                .push((id, tx.clone()));
            room = Some(r.to_string());
        }
        Ok(resp)
    };
    let Ok(mut ws) = tungstenite::accept_hdr(stream, cb) else {
        return;
    };
    if echo {
        while let Ok(msg) = ws.read() {
            if let Message::Close(_) = msg {
                let _ = ws.flush();
                break;
            }
            let is_data = matches!(msg, Message::Binary(_) | Message::Text(_));
            if is_data && ws.send(msg).is_err() {
                break;
            }
        }
        return;
    }
    let Some(room) = room else { return };
    drop(tx);
    let writer = ws.get_ref().try_clone().expect("clone stream");
    let wt = thread::Builder::new()
        .stack_size(128 * 1024)
        .spawn(move || {
            let mut out = WebSocket::from_raw_socket(writer, Role::Server, None);
            while let Ok(b) = rx.recv() {
                if out.send(Message::Binary(b)).is_err() {
                    break;
                }
            }
        })
        .expect("spawn writer");
    loop {
        match ws.read() {
            Ok(Message::Binary(b)) => {
                let members = rooms
                    .lock()
                    .unwrap()
                    .get(&room)
                    .cloned()
                    .unwrap_or_default();
                for (_, m) in members {
                    let n = deliveries.fetch_add(1, Ordering::Relaxed) + 1;
                    if opts.drop_every.is_some_and(|k| n % k == 0) {
                        continue;
                    }
                    let _ = m.send(b.clone());
                }
            }
            Ok(Message::Close(_)) => {
                let _ = ws.flush();
                break;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    if let Some(v) = rooms.lock().unwrap().get_mut(&room) {
        v.retain(|(i, _)| *i != id);
    }
    // Dropping the last sender ends the writer thread.
    let _ = ws.get_ref().shutdown(std::net::Shutdown::Both);
    let _ = wt.join();
}

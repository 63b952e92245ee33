//! A tiny reference WebSocket server for the end-to-end tests (and `examples/ref_server`):
//! tungstenite, one thread per connection, `/ws/{room}` broadcast-to-all-members
//! (including the sender, like ringcast without `--exclude-sender`) and `/echo`. With
//! `Options::peer` it also serves `/` the way the peer servers of `make compare-peers`
//! do: every client there is in one room and gets every data message, sender included.
//! Deliberately independent from the generator's own codec, so the two check each other.
//! With `Options::history` it also numbers room messages and honours `?seq=1` /
//! `?since=N` like ringcast's `--history` (sequence framing, replay; retention is
//! unbounded, so it never sends `gap`; an unknown `since` gets a `reset`).

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

/// One room: members (id, channel, wants sequence framing) and, with history, the next
/// sequence number and every framed message.
#[derive(Default)]
struct Room {
    members: Vec<(u64, Sender<Message>, bool)>,
    last_seq: u64,
    history: Vec<Bytes>,
}

type Rooms = Arc<Mutex<HashMap<String, Room>>>;

/// `seq=1` / `since=N` from a query string.
fn history_query(q: Option<&str>) -> (bool, Option<u64>) {
    let (mut seq, mut since) = (false, None);
    for pair in q.unwrap_or("").split('&') {
        match pair.split_once('=') {
            Some(("seq", "1")) => seq = true,
            Some(("since", n)) => since = n.parse().ok(),
            _ => {}
        }
    }
    (seq || since.is_some(), since)
}

/// Behaviour switches.
#[derive(Clone, Copy, Default)]
pub struct Options {
    /// Drop every Nth delivery in rooms (to test loss detection).
    pub drop_every: Option<u64>,
    /// Accept TCP connections but never answer the upgrade.
    pub silent: bool,
    /// Number room messages; honour `?seq=1` and `?since=N`.
    pub history: bool,
    /// Serve `/` as one room for all its clients (a "peer" broadcast server).
    pub peer: bool,
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
    let (tx, rx) = channel::<Message>();
    let mut room: Option<String> = None;
    let mut echo = false;
    let cb = |req: &Request, resp: Response| {
        let path = req.uri().path();
        if path == "/echo" {
            echo = true;
        } else if let Some(r) = path
            .strip_prefix("/ws/")
            .or((opts.peer && path == "/").then_some(""))
        {
            let (framed, since) = match opts.history {
                true => history_query(req.uri().query()),
                false => (false, None),
            };
            // Join before the 101 goes out, so the client may publish right after it;
            // the replay is queued under the same lock, so nothing is missed or repeated.
            let mut rooms = rooms.lock().unwrap();
            let room_state = rooms.entry(r.to_string()).or_default();
            if let Some(n) = since {
                if n > room_state.last_seq {
                    let next = room_state.last_seq + 1;
                    let reset = format!(r#"{{"type":"reset","next":{next}}}"#);
                    let _ = tx.send(Message::Text(reset.into()));
                } else {
                    for b in &room_state.history[n as usize..] {
                        let _ = tx.send(Message::Binary(b.clone()));
                    }
                }
            }
            room_state.members.push((id, tx.clone(), framed));
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
            while let Ok(m) = rx.recv() {
                if out.send(m).is_err() {
                    break;
                }
            }
        })
        .expect("spawn writer");
    loop {
        match ws.read() {
            Ok(Message::Binary(b)) => {
                // Numbered and delivered under the room lock: every member sees the
                // room's order.
                let mut rooms = rooms.lock().unwrap();
                let Some(r) = rooms.get_mut(&room) else {
                    continue;
                };
                let framed = opts.history.then(|| {
                    r.last_seq += 1;
                    let mut f = r.last_seq.to_be_bytes().to_vec();
                    f.push(2);
                    f.extend_from_slice(&b);
                    let f = Bytes::from(f);
                    r.history.push(f.clone());
                    f
                });
                for (_, m, wants_seq) in &r.members {
                    let n = deliveries.fetch_add(1, Ordering::Relaxed) + 1;
                    if opts.drop_every.is_some_and(|k| n % k == 0) {
                        continue;
                    }
                    let msg = match (&framed, wants_seq) {
                        (Some(f), true) => f.clone(),
                        _ => b.clone(),
                    };
                    let _ = m.send(Message::Binary(msg));
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
    if let Some(r) = rooms.lock().unwrap().get_mut(&room) {
        r.members.retain(|(i, _, _)| *i != id);
    }
    // Dropping the last sender ends the writer thread.
    let _ = ws.get_ref().shutdown(std::net::Shutdown::Both);
    let _ = wt.join();
}

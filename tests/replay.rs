//! Replay of missed messages (`--history N`), through real sockets on both backends and
//! two shards: resume after a disconnect gets exactly what was missed, in order, then
//! the live stream; no gap and no duplicate while publishes go on during the resume; a
//! `since` older than the ring gets a `gap` message first; memory stays bounded.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use ringcast::app::{Builtin, Rooms};
use ringcast::config::HistoryConfig;
use ringcast::wire::sequence::parse_seq_payload;
use ringcast::{BackendChoice, Config, Message as Msg, RunningServer};
use tungstenite::Message;

fn history_config(backend: BackendChoice, history: usize, bytes: usize) -> Config {
    Config {
        history: Some(HistoryConfig {
            max_bytes: bytes,
            ..HistoryConfig::frames(history)
        }),
        ..config(backend, 2)
    }
}

/// The rooms app, publishers not receiving their own messages.
fn app() -> Builtin {
    Builtin {
        rooms: Rooms {
            exclude_sender: true,
        },
        ..Builtin::default()
    }
}

/// A connection to `path` accepted by shard `want` (retrying from other source addresses).
fn connect_on_shard(addr: SocketAddr, path: &str, want: usize) -> Client {
    connect_on_shard_counted(addr, path, want).0
}

/// Same, with the number of connections it took (each one a resume for `?since=`).
fn connect_on_shard_counted(addr: SocketAddr, path: &str, want: usize) -> (Client, u64) {
    for i in 0..200 {
        let (c, resp) = connect_from(addr, path, source_ip(i));
        if shard_of(&resp) == want {
            return (c, i as u64 + 1);
        }
    }
    panic!("no connection landed on shard {want}");
}

/// Next sequence-framed message: (seq, original opcode, payload).
fn read_seq(c: &mut Client) -> (u64, u8, Vec<u8>) {
    loop {
        match c.read().expect("read") {
            Message::Binary(b) => {
                let (seq, op, p) = parse_seq_payload(&b).expect("sequence framing");
                return (seq, op, p.to_vec());
            }
            Message::Text(t) => panic!("unexpected control message {t}"),
            _ => {}
        }
    }
}

fn read_text(c: &mut Client) -> String {
    loop {
        match c.read().expect("read") {
            Message::Text(t) => return t.to_string(),
            Message::Binary(_) => panic!("expected a text control message"),
            _ => {}
        }
    }
}

fn read_plain(c: &mut Client) -> String {
    loop {
        if let Message::Text(t) = c.read().expect("read") {
            return t.to_string();
        }
    }
}

fn publish(p: &mut Client, text: String) {
    p.send(Message::text(text)).unwrap();
}

/// Publish `texts` from `p` and wait until the plain `witness` has them all (so they are
/// numbered and retained).
fn publish_seen(p: &mut Client, witness: &mut Client, texts: &[String]) {
    for t in texts {
        publish(p, t.clone());
    }
    for t in texts {
        assert_eq!(&read_plain(witness), t);
    }
}

fn shutdown(server: RunningServer) {
    server.shutdown().unwrap();
}

#[test]
fn resume_replays_exactly_what_was_missed_then_the_live_stream() {
    for backend in BACKENDS {
        for resume_shard in [0, 1] {
            let cfg = history_config(backend, 1000, 1 << 20);
            let (server, rec) = start_recorded(cfg, app());
            let addr = server.local_addr();
            let mut publisher = connect_on_shard(addr, "/ws/r", 0);
            let mut witness = connect_on_shard(addr, "/ws/r", 1);
            let mut sub = connect_on_shard(addr, "/ws/r?seq=1", 1 - resume_shard);
            let warm: Vec<String> = (0..5).map(|i| format!("warm{i}")).collect();
            publish_seen(&mut publisher, &mut witness, &warm);
            let mut last = 0;
            for t in &warm {
                let (seq, op, p) = read_seq(&mut sub);
                assert_eq!((op, p.as_slice()), (1, t.as_bytes()));
                assert!(seq > last);
                last = seq;
            }
            drop(sub);

            let missed: Vec<String> = (0..100).map(|i| format!("m{i}")).collect();
            publish_seen(&mut publisher, &mut witness, &missed);
            let (mut sub, tries) =
                connect_on_shard_counted(addr, &format!("/ws/r?since={last}"), resume_shard);
            for (i, t) in missed.iter().enumerate() {
                let (seq, op, p) = read_seq(&mut sub);
                assert_eq!(seq, last + 1 + i as u64, "{backend:?}: replay in order");
                assert_eq!((op, p.as_slice()), (1, t.as_bytes()));
            }
            let live: Vec<String> = (0..10).map(|i| format!("live{i}")).collect();
            publish_seen(&mut publisher, &mut witness, &live);
            for (i, t) in live.iter().enumerate() {
                let (seq, _, p) = read_seq(&mut sub);
                assert_eq!(seq, last + 101 + i as u64, "{backend:?}: live follows");
                assert_eq!(p, t.as_bytes());
            }
            // Binary messages keep their opcode in the framing.
            publisher.send(Message::binary(vec![0xAB; 3])).unwrap();
            assert_eq!(read_seq(&mut sub), (last + 111, 2, vec![0xAB; 3]));
            // Every connection it took to land on `resume_shard` was a full resume.
            assert_eq!(rec.get("resume_attempt"), tries);
            assert_eq!(rec.get("resume_served"), tries);
            assert_eq!(rec.get("resume_gap"), 0);
            assert_eq!(rec.get("frames_replayed"), 100 * tries);
            shutdown(server);
        }
    }
}

#[test]
fn resume_during_continuous_publishing_has_no_gap_and_no_duplicate() {
    const TOTAL: u64 = 3000;
    for backend in BACKENDS {
        let cfg = history_config(backend, 10_000, 4 << 20);
        let server = start_with(cfg, app());
        let addr = server.local_addr();
        let mut sub = connect_on_shard(addr, "/ws/r?seq=1", 0);
        let mut publisher = connect_on_shard(addr, "/ws/r", 1);
        // Members on both shards keep the room live everywhere, so a resume races with
        // messages already in its shard's inbox (the duplicates it must skip).
        let _members = [0, 1].map(|s| connect_on_shard(addr, "/ws/r", s));
        let done = Arc::new(AtomicBool::new(false));
        let pub_thread = {
            let done = done.clone();
            std::thread::spawn(move || {
                for chunk in (0..TOTAL).collect::<Vec<_>>().chunks(20) {
                    for i in chunk {
                        publish(&mut publisher, format!("{i}"));
                    }
                    std::thread::sleep(Duration::from_micros(500));
                }
                done.store(true, Ordering::Relaxed);
                publisher
            })
        };
        let mut next_index = 0u64;
        let mut last_seq = None::<u64>;
        let mut resumes = 0;
        let mut next_resume_at = 300;
        while next_index < TOTAL {
            let (seq, _, p) = read_seq(&mut sub);
            let index: u64 = String::from_utf8(p).unwrap().parse().unwrap();
            assert_eq!(index, next_index, "{backend:?}: gap or duplicate");
            if let Some(prev) = last_seq {
                assert_eq!(seq, prev + 1, "{backend:?}: seqs are contiguous");
            }
            last_seq = Some(seq);
            next_index += 1;
            // Drop and resume every ~300 messages, alternating shards.
            if next_index == next_resume_at && next_index < TOTAL {
                next_resume_at += 300;
                drop(sub);
                resumes += 1;
                let path = format!("/ws/r?since={seq}");
                sub = connect_on_shard(addr, &path, resumes % 2);
            }
        }
        assert!(resumes >= 9);
        let publisher = pub_thread.join().unwrap();
        assert!(done.load(Ordering::Relaxed));
        drop(publisher);
        shutdown(server);
    }
}

#[test]
fn since_older_than_the_ring_gets_a_gap_message_first() {
    for backend in BACKENDS {
        let cfg = history_config(backend, 10, 1 << 20);
        let (server, rec) = start_recorded(cfg, app());
        let addr = server.local_addr();
        let mut publisher = connect_on_shard(addr, "/ws/r", 0);
        let mut witness = connect_on_shard(addr, "/ws/r", 1);
        let mut sub = connect(addr, "/ws/r?seq=1");
        publish_seen(&mut publisher, &mut witness, &["first".to_string()]);
        let (s1, _, _) = read_seq(&mut sub);
        drop(sub);
        let texts: Vec<String> = (0..50).map(|i| format!("g{i}")).collect();
        publish_seen(&mut publisher, &mut witness, &texts);

        let (mut sub, tries) = connect_on_shard_counted(addr, &format!("/ws/r?since={s1}"), 1);
        let gap = read_text(&mut sub);
        let want = format!(r#"{{"type":"gap","from":{},"to":{}}}"#, s1 + 1, s1 + 40);
        assert_eq!(gap, want, "{backend:?}");
        for i in 0..10u64 {
            let (seq, _, p) = read_seq(&mut sub);
            assert_eq!(seq, s1 + 41 + i);
            assert_eq!(p, texts[40 + i as usize].as_bytes());
        }
        // A number never issued in this room: a reset message, then what is retained.
        let mut ahead = connect(addr, "/ws/r?since=999999");
        let want = format!(r#"{{"type":"reset","next":{}}}"#, s1 + 41);
        assert_eq!(read_text(&mut ahead), want);
        assert_eq!(read_seq(&mut ahead).0, s1 + 41);
        assert_eq!(rec.get("resume_attempt"), tries + 1);
        assert_eq!(rec.get("resume_gap"), tries + 1);
        assert_eq!(rec.get("resume_served"), 0);
        assert_eq!(rec.get("frames_replayed"), 10 * (tries + 1));
        shutdown(server);
    }
}

#[test]
fn history_memory_stays_within_history_bytes_with_1000_rooms() {
    const ROOMS: usize = 1000;
    const HISTORY_BYTES: usize = 4096;
    for backend in BACKENDS {
        let mut cfg = history_config(backend, 1000, HISTORY_BYTES);
        cfg.history.as_mut().unwrap().ttl = Duration::from_secs(1);
        let server = start_with(cfg, app());
        let addr = server.local_addr();
        // A live subscriber on one room: its room is never dropped while it is there.
        let mut sub = connect(addr, "/ws/room7?seq=1");
        let publisher = server.publisher();
        let payload = "x".repeat(500);
        for _ in 0..20 {
            for r in 0..ROOMS {
                publisher
                    .publish(&format!("room{r}"), Msg::Text(&payload))
                    .unwrap();
            }
        }
        let stats = server.history_stats().expect("history on");
        assert!(stats.rooms <= ROOMS && stats.rooms > ROOMS / 2, "{stats:?}");
        assert!(stats.bytes <= ROOMS * HISTORY_BYTES, "{stats:?}");
        assert!(stats.frames <= ROOMS * (HISTORY_BYTES / 500), "{stats:?}");
        for _ in 0..20 {
            assert_eq!(read_seq(&mut sub).2, payload.as_bytes());
        }
        // Idle rooms without members are dropped after the TTL; room7 has a member.
        assert!(
            poll_until(Duration::from_secs(5), || server
                .history_stats()
                .is_some_and(|s| s.rooms == 1)),
            "{backend:?}: {:?}",
            server.history_stats()
        );
        shutdown(server);
    }
}

#[test]
fn seq_and_since_are_refused_when_history_is_off() {
    for backend in BACKENDS {
        let server = start_with(config(backend, 2), app());
        let addr = server.local_addr();
        for path in ["/ws/r?seq=1", "/ws/r?since=3"] {
            let mut c = connect(addr, path);
            match c.read() {
                Ok(Message::Close(Some(f))) => assert_eq!(u16::from(f.code), 1008),
                other => panic!("{backend:?} {path}: expected close 1008, got {other:?}"),
            }
        }
        assert_eq!(server.history_stats(), None);
        let bad = raw_exchange(addr, &upgrade_request("/ws/r?since=x"));
        assert!(bad.starts_with(b"HTTP/1.1 400"));
        shutdown(server);
    }
}

//! Unit tests of the connection state machine: handshake, frames, close handshake, EOF,
//! slow-consumer policies, backpressure.

use super::*;
use crate::proto::frame::encode_masked_frame;
use crate::proto::handshake::accept_response;

const LIMITS: ConnLimits = ConnLimits {
    max_head_bytes: 8192,
    max_message_size: 1 << 20,
};
const REQ: &[u8] = b"GET /ws/a HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// Feed everything, collecting events (what the shard's loop does).
fn feed_all(c: &mut Connection, mut input: &[u8]) -> Vec<ConnEvent> {
    let mut events = Vec::new();
    while !input.is_empty() {
        let (n, ev) = c.feed(input, LIMITS);
        input = &input[n..];
        events.extend(ev);
    }
    events
}

fn open_conn() -> Connection {
    let mut c = Connection::new();
    let Some(ConnEvent::Upgrade(req)) = feed_all(&mut c, REQ).pop() else {
        panic!("no upgrade")
    };
    c.accept(accept_response(&req.key, &[]));
    let n = c.out.bytes();
    c.written(n);
    c
}

fn queued(c: &Connection) -> Vec<u8> {
    c.out.pending().flatten().copied().collect()
}

#[test]
fn frames_in_the_same_read_as_the_head_are_kept_for_after_accept() {
    let mut c = Connection::new();
    let mut input = REQ.to_vec();
    input.extend(encode_masked_frame(true, Opcode::Text, b"hi", [1, 2, 3, 4]));
    let Some(ConnEvent::Upgrade(req)) = feed_all(&mut c, &input).pop() else {
        panic!("no upgrade")
    };
    assert_eq!(req.path, "/ws/a");
    c.accept(accept_response(&req.key, &[]));
    let rest = c.take_leftover();
    assert_eq!(
        feed_all(&mut c, &rest),
        vec![ConnEvent::Text("hi".to_owned())]
    );
    assert!(c.is_open());
}

#[test]
fn a_message_is_handed_over_before_the_close_that_follows_it() {
    let mut c = open_conn();
    let mut input = encode_masked_frame(true, Opcode::Text, b"last", [1, 2, 3, 4]);
    input.extend(encode_masked_frame(
        true,
        Opcode::Close,
        &[0x03, 0xE8],
        [1, 2, 3, 4],
    ));
    let (n, ev) = c.feed(&input, LIMITS);
    assert!(matches!(ev, Some(ConnEvent::Text(_))));
    assert!(
        c.is_open(),
        "still open while the shard handles the message"
    );
    let (_, ev) = c.feed(&input[n..], LIMITS);
    assert_eq!(ev, Some(ConnEvent::PeerClose(Some((1000, String::new())))));
}

#[test]
fn ping_is_answered_with_pong_carrying_the_payload() {
    let mut c = open_conn();
    let ev = feed_all(
        &mut c,
        &encode_masked_frame(true, Opcode::Ping, b"p", [9, 9, 9, 9]),
    );
    assert!(ev.is_empty());
    assert_eq!(queued(&c), vec![0x8A, 1, b'p']);
}

#[test]
fn peer_close_is_echoed_then_the_socket_closes() {
    let mut c = open_conn();
    let payload = [0x03, 0xE8, b'b', b'y', b'e'];
    let ev = feed_all(
        &mut c,
        &encode_masked_frame(true, Opcode::Close, &payload, [1, 1, 1, 1]),
    );
    assert_eq!(ev, vec![ConnEvent::PeerClose(Some((1000, "bye".into())))]);
    assert_eq!(queued(&c), vec![0x88, 2, 0x03, 0xE8]);
    assert_eq!(c.phase(), Phase::Closing);
    assert_eq!(
        c.after_flush(),
        AfterFlush::Idle,
        "close frame not written yet"
    );
    let n = c.out.bytes();
    c.written(n);
    assert_eq!(
        c.after_flush(),
        AfterFlush::ShutdownWrite,
        "handshake done: our FIN first"
    );
    assert_eq!(c.after_flush(), AfterFlush::Idle, "only once");
    assert_eq!(c.on_eof(), Eof::Close, "the peer's FIN closes");
    assert_eq!(c.reason, Some(DisconnectReason::Normal));
}

#[test]
fn protocol_error_queues_close_with_its_code_and_stops_decoding() {
    let mut c = open_conn();
    // Unmasked client frame: 1002.
    let ev = feed_all(&mut c, &[0x81, 0x01, b'x']);
    assert!(matches!(ev[0], ConnEvent::ProtocolError(e) if e.code == 1002));
    let q = queued(&c);
    assert_eq!((q[0], &q[2..4]), (0x88, &[0x03, 0xEA][..]));
    let ev = feed_all(
        &mut c,
        &encode_masked_frame(true, Opcode::Text, b"late", [1, 2, 3, 4]),
    );
    assert!(ev.is_empty(), "nothing is decoded after a protocol error");
}

#[test]
fn bad_request_head_gets_http_error_and_no_upgrade() {
    let mut c = Connection::new();
    let ev = feed_all(&mut c, b"GET / HTTP/1.1\r\n\r\n");
    assert!(matches!(&ev[0], ConnEvent::HandshakeRejected(r) if r.status == 400));
    assert!(queued(&c).starts_with(b"HTTP/1.1 400"));
    assert_eq!(c.phase(), Phase::Closing);
}

#[test]
fn a_plain_request_goes_to_the_shard_to_route() {
    let mut c = Connection::new();
    let ev = feed_all(&mut c, b"GET /sse/a HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(matches!(&ev[0], ConnEvent::Request(r) if r.path == "/sse/a"));
    assert_eq!(c.phase(), Phase::Handshaking, "the route decides");
}

const QL: QueueLimits = QueueLimits {
    max_bytes: 10,
    policy: SlowPolicy::Close,
};

fn data(n: usize) -> PreparedFrame {
    PreparedFrame::from_wire(vec![0x82; n])
}

#[test]
fn data_is_not_queued_unless_open() {
    let mut c = Connection::new();
    assert_eq!(c.send_frame(data(2), QL), Enqueue::NotOpen);
    let mut c = open_conn();
    assert_eq!(
        c.send_frame(data(2), QL),
        Enqueue::Queued { dropped_oldest: 0 }
    );
    c.send_close(1000, "");
    assert_eq!(c.send_frame(data(2), QL), Enqueue::NotOpen);
}

#[test]
fn slow_policies_apply_over_the_cap() {
    let limits = |policy| QueueLimits {
        max_bytes: 10,
        policy,
    };
    let mut c = open_conn();
    for _ in 0..2 {
        c.send_frame(data(4), limits(SlowPolicy::DropNewest));
    }
    assert_eq!(
        c.send_frame(data(4), limits(SlowPolicy::DropNewest)),
        Enqueue::DroppedNewest
    );
    assert_eq!(c.out.bytes(), 8);
    assert_eq!(
        c.send_frame(data(4), limits(SlowPolicy::DropOldest)),
        Enqueue::Queued { dropped_oldest: 1 }
    );
    assert_eq!(c.out.bytes(), 8);
    assert_eq!(
        c.send_frame(data(4), limits(SlowPolicy::Close)),
        Enqueue::ClosedSlow { dropped: 3 }
    );
    assert_eq!(c.reason, Some(DisconnectReason::SlowConsumer));
    assert_eq!(c.phase(), Phase::Closing);
    // Only the close frame 1008 is left.
    let q = queued(&c);
    assert_eq!((q[0], &q[2..4]), (0x88, &1008u16.to_be_bytes()[..]));
}

/// (Replay marks are the shard's: see `shard::slot`.)
#[test]
fn replayed_frames_ignore_the_queue_cap() {
    let mut c = open_conn();
    assert!(c.push_replay(data(100)), "replay ignores the queue cap");
}

#[test]
fn an_empty_queue_takes_one_frame_larger_than_the_cap() {
    let mut c = open_conn();
    assert_eq!(
        c.send_frame(data(100), QL),
        Enqueue::Queued { dropped_oldest: 0 }
    );
}

#[test]
fn a_ping_flood_keeps_a_bounded_number_of_pongs() {
    use crate::conn::queue::MAX_UNSENT_PONGS;
    let mut c = open_conn();
    let mut input = Vec::new();
    for i in 0..1000u32 {
        input.extend(encode_masked_frame(
            true,
            Opcode::Ping,
            &i.to_be_bytes(),
            [1, 2, 3, 4],
        ));
    }
    assert!(feed_all(&mut c, &input).is_empty());
    assert_eq!(c.out.len(), MAX_UNSENT_PONGS);
    assert_eq!(c.take_coalesced(), 1000 - MAX_UNSENT_PONGS as u32);
    assert_eq!(c.take_coalesced(), 0, "taken once");
    // The first pings are answered one by one; the latest ping is answered last.
    let pongs: Vec<Vec<u8>> = c.out.pending().map(<[u8]>::to_vec).collect();
    assert_eq!(pongs[0], [&[0x8A, 4][..], &0u32.to_be_bytes()].concat());
    assert_eq!(
        pongs[MAX_UNSENT_PONGS - 1],
        [&[0x8A, 4][..], &999u32.to_be_bytes()].concat()
    );
}

#[test]
fn a_burst_of_ten_pings_gets_ten_pongs() {
    // Autobahn 2.10: ten pings in one read, ten pongs with their payloads, in order.
    let mut c = open_conn();
    let mut input = Vec::new();
    for i in 0..10u8 {
        input.extend(encode_masked_frame(true, Opcode::Ping, &[i], [1, 2, 3, 4]));
    }
    assert!(feed_all(&mut c, &input).is_empty());
    let pongs: Vec<Vec<u8>> = c.out.pending().map(<[u8]>::to_vec).collect();
    let expected: Vec<Vec<u8>> = (0..10u8).map(|i| vec![0x8A, 1, i]).collect();
    assert_eq!(pongs, expected);
    assert_eq!(c.take_coalesced(), 0);
}

#[test]
fn heartbeat_pings_do_not_pile_up_unsent() {
    let mut c = open_conn();
    c.send_ping();
    c.send_ping();
    assert_eq!(queued(&c), vec![0x89, 0]);
    c.written(2);
    c.send_ping();
    assert_eq!(queued(&c), vec![0x89, 0]);
}

#[test]
fn close_then_eof_still_writes_the_close_reply_then_closes() {
    let mut c = open_conn();
    let ev = feed_all(
        &mut c,
        &encode_masked_frame(true, Opcode::Close, &[0x03, 0xE8], [0x37, 0xfa, 0x21, 0x3d]),
    );
    assert_eq!(ev, vec![ConnEvent::PeerClose(Some((1000, String::new())))]);
    assert_eq!(c.on_eof(), Eof::Flush, "the reply is still queued");
    assert_eq!(queued(&c), vec![0x88, 2, 0x03, 0xE8]);
    assert_eq!(c.after_flush(), AfterFlush::Idle);
    c.written(4);
    assert_eq!(c.after_flush(), AfterFlush::Close);
    assert_eq!(c.reason, Some(DisconnectReason::Normal));
}

#[test]
fn bare_eof_flushes_what_is_queued_then_closes_as_reset() {
    let mut c = open_conn();
    c.send_frame(data(3), QL);
    assert_eq!(c.on_eof(), Eof::Flush);
    assert_eq!(c.phase(), Phase::Closing);
    assert_eq!(c.send_frame(data(3), QL), Enqueue::NotOpen, "nothing new");
    c.send_close(1001, "going away");
    assert_eq!(
        c.out.len(),
        1,
        "no close frame to a peer that cannot answer"
    );
    assert_eq!(c.may_read(QL.max_bytes, 0), (false, false));
    assert_eq!(c.on_eof(), Eof::Flush, "a repeated EOF changes nothing");
    c.written(3);
    assert_eq!(c.after_flush(), AfterFlush::Close);
    assert_eq!(c.reason, Some(DisconnectReason::Reset));
    assert_eq!(c.after_flush(), AfterFlush::Idle, "only once");
}

#[test]
fn eof_mid_head_closes_at_once_and_after_a_rejection_flushes_the_response() {
    let mut c = Connection::new();
    feed_all(&mut c, b"GET /ws/a HTTP/1.1\r\nHost");
    assert_eq!(c.on_eof(), Eof::Close);
    let mut c = Connection::new();
    feed_all(&mut c, b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(c.on_eof(), Eof::Flush);
    assert!(queued(&c).starts_with(b"HTTP/1.1 400"));
    let n = c.out.bytes();
    c.written(n);
    assert_eq!(c.after_flush(), AfterFlush::Close);
    assert_eq!(c.reason, Some(DisconnectReason::ProtocolError));
}

#[test]
fn eof_after_our_write_side_is_shut_closes_at_once() {
    let mut c = open_conn();
    c.send_close(1000, "");
    c.written(4);
    assert_eq!(c.after_flush(), AfterFlush::ShutdownWrite);
    assert_eq!(c.on_eof(), Eof::Close);
}

#[test]
fn reading_pauses_while_unsent_bytes_are_over_the_cap() {
    let mut c = open_conn();
    assert_eq!(c.may_read(10, 0), (true, false));
    c.send_frame(data(8), QL);
    assert_eq!(c.may_read(10, 2), (true, false), "at the cap is fine");
    assert_eq!(c.may_read(10, 3), (false, true), "over it: paused");
    assert_eq!(c.may_read(10, 3), (false, false), "counted once");
    c.written(5);
    assert_eq!(c.may_read(10, 3), (true, false), "resumed");
}

#[test]
fn an_sse_stream_heartbeats_ends_with_the_last_chunk_and_refuses_client_bytes() {
    use crate::proto::handshake::Transport;
    let mut c = Connection::new();
    let ev = feed_all(&mut c, b"GET /sse/a HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(matches!(&ev[0], ConnEvent::Request(_)));
    c.accept_sse(b"HTTP/1.1 200 OK\r\n\r\n".to_vec(), 1000);
    assert_eq!((c.phase(), c.transport()), (Phase::Open, Transport::Sse));
    assert!(queued(&c).ends_with(b"\r\n\r\nd\r\nretry: 1000\n\n\r\n"));
    let n = c.out.bytes();
    c.written(n);
    assert!(c.send_ping());
    assert_eq!(
        queued(&c),
        b"3\r\n:\n\n\r\n",
        "the heartbeat is a comment chunk"
    );
    let n = c.out.bytes();
    c.written(n);
    // A pipelined request: the stream ends with the last chunk, once, and nothing is read.
    let (used, ev) = c.feed(b"GET /sse/b HTTP/1.1\r\n", LIMITS);
    assert_eq!(used, 21);
    assert!(matches!(ev, Some(ConnEvent::ProtocolError(_))));
    assert_eq!(c.feed(b"more", LIMITS), (4, None));
    assert_eq!(queued(&c), b"0\r\n\r\n");
    assert_eq!(c.phase(), Phase::Closing);
    assert_eq!(c.reason, Some(DisconnectReason::ProtocolError));
}

//! Unit tests of the Prometheus collector as a whole: exact exposition for a hand-driven
//! collector over two shards, snapshot sums, constant labels and prefixes, shard
//! clamping, concurrent shards. The pieces' own tests sit in their files (bucket math in
//! `hist.rs`, formatting and escaping in `exposition.rs`, label parsing in `names.rs`).

use super::*;

/// Drive every hook by hand, spread over two shards.
fn driven() -> PrometheusCollector {
    let c = PrometheusCollector::new(
        2,
        "ringcast",
        vec![("env".into(), "a\"b\\c\nd".into())],
        "uring",
    );
    c.connection_opened(0);
    c.connection_opened(1);
    c.connection_opened(1);
    c.connection_closed(1, DisconnectReason::Normal, Duration::from_millis(1500));
    c.handshake_rejected(0, 404);
    c.handshake_rejected(1, 404);
    c.handshake_rejected(1, 431);
    c.handshake_rejected(1, 7);
    c.http_publish_answered(0, 202);
    c.http_publish_answered(1, 202);
    c.http_publish_answered(1, 413);
    // Rooms are opened and closed once per process, by whichever shard: one opened on
    // shard 0 and closed on shard 1 still leaves 3 - 2 = 1 open.
    c.room_opened(0);
    c.room_opened(0);
    c.room_opened(1);
    c.room_closed(1);
    c.room_closed(1);
    c.message_received(0, 10);
    c.message_received(1, 5);
    c.publish_fanned_out(0, 3);
    c.publish_fanned_out(1, 1);
    c.frames_sent(0, 4, 100);
    c.frames_sent(1, 2, 20);
    c.frames_sent_on(0, Transport::WebSocket, 4);
    c.frames_sent_on(1, Transport::Sse, 2);
    c.connection_accepted(0, Transport::WebSocket);
    c.connection_accepted(1, Transport::Sse);
    c.connection_accepted(1, Transport::Sse);
    c.connection_ended(1, Transport::Sse);
    c.frame_dropped(1, DropReason::QueueFullNewest);
    c.send_queue_bytes(0, 128);
    c.send_queue_bytes(1, 129);
    c.pong_timeout(1);
    c.panic(0);
    c.admission_rejected(1);
    c.bind_retry(0);
    c.publish_to_write(0, Duration::from_micros(10));
    c.publish_to_write(1, Duration::from_micros(300));
    c.resume_attempt(0);
    c.resume_attempt(1);
    c.resume_attempt(1);
    c.resume_served(0);
    c.resume_gap(1);
    c.resume_gap(1);
    c.frames_replayed(0, 100);
    c.frames_replayed(1, 7);
    c.input_throttled(1, InputThrottle::PongCoalesced);
    c.history_refused(0, 300_000);
    c.history_refused(1, 9);
    c.deflate_compressed(0, 2);
    c.deflate_compressed(1, 3);
    // Session levels are per shard (set, not moved); a session's grace_expired or
    // session_evicted is a disconnect reason but no connection: connections_active
    // stays 1 and 1.
    c.sessions(0, 3, 1, 100);
    c.sessions(0, 2, 1, 60);
    c.sessions(1, 1, 1, 9);
    c.session_resume(0, ResumeResult::Resumed);
    c.session_resume(0, ResumeResult::BufferOverflow);
    c.session_resume(1, ResumeResult::Unknown);
    c.session_ended(1, DisconnectReason::GraceExpired);
    c.session_ended(1, DisconnectReason::ServerShutdown);
    c.session_ended(0, DisconnectReason::SessionEvicted);
    c
}

const GOLDEN: &str = r##"# HELP ringcast_connections_active Connections accepted and not yet closed, per shard.
# TYPE ringcast_connections_active gauge
ringcast_connections_active{env="a\"b\\c\nd",shard="0"} 1
ringcast_connections_active{env="a\"b\\c\nd",shard="1"} 1
# HELP ringcast_connections_opened_total TCP connections accepted.
# TYPE ringcast_connections_opened_total counter
ringcast_connections_opened_total{env="a\"b\\c\nd"} 3
# HELP ringcast_connections_closed_total Connections ended, by reason (grace_expired: a detached session ended unresumed, session_evicted: one ended early over --session-max-detached; either's connection was counted under its own cause when its socket went).
# TYPE ringcast_connections_closed_total counter
ringcast_connections_closed_total{env="a\"b\\c\nd",reason="normal"} 1
ringcast_connections_closed_total{env="a\"b\\c\nd",reason="protocol_error"} 0
ringcast_connections_closed_total{env="a\"b\\c\nd",reason="slow_consumer"} 0
ringcast_connections_closed_total{env="a\"b\\c\nd",reason="pong_timeout"} 0
ringcast_connections_closed_total{env="a\"b\\c\nd",reason="handshake_timeout"} 0
ringcast_connections_closed_total{env="a\"b\\c\nd",reason="server_shutdown"} 0
ringcast_connections_closed_total{env="a\"b\\c\nd",reason="admission_rejected"} 0
ringcast_connections_closed_total{env="a\"b\\c\nd",reason="panic"} 0
ringcast_connections_closed_total{env="a\"b\\c\nd",reason="reset"} 0
ringcast_connections_closed_total{env="a\"b\\c\nd",reason="tls_error"} 0
ringcast_connections_closed_total{env="a\"b\\c\nd",reason="duplicate"} 0
ringcast_connections_closed_total{env="a\"b\\c\nd",reason="grace_expired"} 1
ringcast_connections_closed_total{env="a\"b\\c\nd",reason="handed_off"} 0
ringcast_connections_closed_total{env="a\"b\\c\nd",reason="session_evicted"} 1
# HELP ringcast_connection_duration_seconds Time from accept to close of each connection.
# TYPE ringcast_connection_duration_seconds histogram
ringcast_connection_duration_seconds_bucket{env="a\"b\\c\nd",le="0.1"} 0
ringcast_connection_duration_seconds_bucket{env="a\"b\\c\nd",le="0.5"} 0
ringcast_connection_duration_seconds_bucket{env="a\"b\\c\nd",le="1"} 0
ringcast_connection_duration_seconds_bucket{env="a\"b\\c\nd",le="5"} 1
ringcast_connection_duration_seconds_bucket{env="a\"b\\c\nd",le="10"} 1
ringcast_connection_duration_seconds_bucket{env="a\"b\\c\nd",le="30"} 1
ringcast_connection_duration_seconds_bucket{env="a\"b\\c\nd",le="60"} 1
ringcast_connection_duration_seconds_bucket{env="a\"b\\c\nd",le="300"} 1
ringcast_connection_duration_seconds_bucket{env="a\"b\\c\nd",le="900"} 1
ringcast_connection_duration_seconds_bucket{env="a\"b\\c\nd",le="1800"} 1
ringcast_connection_duration_seconds_bucket{env="a\"b\\c\nd",le="3600"} 1
ringcast_connection_duration_seconds_bucket{env="a\"b\\c\nd",le="7200"} 1
ringcast_connection_duration_seconds_bucket{env="a\"b\\c\nd",le="21600"} 1
ringcast_connection_duration_seconds_bucket{env="a\"b\\c\nd",le="86400"} 1
ringcast_connection_duration_seconds_bucket{env="a\"b\\c\nd",le="+Inf"} 1
ringcast_connection_duration_seconds_sum{env="a\"b\\c\nd"} 1.5
ringcast_connection_duration_seconds_count{env="a\"b\\c\nd"} 1
# HELP ringcast_connections_accepted_total Connections accepted, by transport: WebSocket upgrades (101, ws) and Server-Sent Events streams (200, sse).
# TYPE ringcast_connections_accepted_total counter
ringcast_connections_accepted_total{env="a\"b\\c\nd",transport="ws"} 1
ringcast_connections_accepted_total{env="a\"b\\c\nd",transport="sse"} 2
# HELP ringcast_connections_ended_total Accepted connections that ended, by transport (open now: accepted minus ended).
# TYPE ringcast_connections_ended_total counter
ringcast_connections_ended_total{env="a\"b\\c\nd",transport="ws"} 0
ringcast_connections_ended_total{env="a\"b\\c\nd",transport="sse"} 1
# HELP ringcast_handshake_rejected_total Upgrade requests refused, by HTTP status.
# TYPE ringcast_handshake_rejected_total counter
ringcast_handshake_rejected_total{env="a\"b\\c\nd",status="404"} 2
ringcast_handshake_rejected_total{env="a\"b\\c\nd",status="431"} 1
ringcast_handshake_rejected_total{env="a\"b\\c\nd",status="other"} 1
# HELP ringcast_http_publish_requests_total HTTP publish requests (POST /publish/{room}) answered, by HTTP status (202: published).
# TYPE ringcast_http_publish_requests_total counter
ringcast_http_publish_requests_total{env="a\"b\\c\nd",status="202"} 2
ringcast_http_publish_requests_total{env="a\"b\\c\nd",status="413"} 1
# HELP ringcast_rooms_active Rooms with at least one member on any shard (each room once).
# TYPE ringcast_rooms_active gauge
ringcast_rooms_active{env="a\"b\\c\nd"} 1
# HELP ringcast_messages_received_total Complete data messages received.
# TYPE ringcast_messages_received_total counter
ringcast_messages_received_total{env="a\"b\\c\nd"} 2
# HELP ringcast_messages_received_bytes_total Payload bytes of the data messages received.
# TYPE ringcast_messages_received_bytes_total counter
ringcast_messages_received_bytes_total{env="a\"b\\c\nd"} 15
# HELP ringcast_messages_published_total Messages published to a room (each once, however many shards delivered it).
# TYPE ringcast_messages_published_total counter
ringcast_messages_published_total{env="a\"b\\c\nd"} 2
# HELP ringcast_broadcast_fanout Connections a publish was queued to, over all shards (one observation per publish).
# TYPE ringcast_broadcast_fanout histogram
ringcast_broadcast_fanout_bucket{env="a\"b\\c\nd",le="0"} 0
ringcast_broadcast_fanout_bucket{env="a\"b\\c\nd",le="1"} 1
ringcast_broadcast_fanout_bucket{env="a\"b\\c\nd",le="2"} 1
ringcast_broadcast_fanout_bucket{env="a\"b\\c\nd",le="5"} 2
ringcast_broadcast_fanout_bucket{env="a\"b\\c\nd",le="10"} 2
ringcast_broadcast_fanout_bucket{env="a\"b\\c\nd",le="20"} 2
ringcast_broadcast_fanout_bucket{env="a\"b\\c\nd",le="50"} 2
ringcast_broadcast_fanout_bucket{env="a\"b\\c\nd",le="100"} 2
ringcast_broadcast_fanout_bucket{env="a\"b\\c\nd",le="200"} 2
ringcast_broadcast_fanout_bucket{env="a\"b\\c\nd",le="500"} 2
ringcast_broadcast_fanout_bucket{env="a\"b\\c\nd",le="1000"} 2
ringcast_broadcast_fanout_bucket{env="a\"b\\c\nd",le="2000"} 2
ringcast_broadcast_fanout_bucket{env="a\"b\\c\nd",le="5000"} 2
ringcast_broadcast_fanout_bucket{env="a\"b\\c\nd",le="10000"} 2
ringcast_broadcast_fanout_bucket{env="a\"b\\c\nd",le="20000"} 2
ringcast_broadcast_fanout_bucket{env="a\"b\\c\nd",le="50000"} 2
ringcast_broadcast_fanout_bucket{env="a\"b\\c\nd",le="100000"} 2
ringcast_broadcast_fanout_bucket{env="a\"b\\c\nd",le="+Inf"} 2
ringcast_broadcast_fanout_sum{env="a\"b\\c\nd"} 4
ringcast_broadcast_fanout_count{env="a\"b\\c\nd"} 2
# HELP ringcast_frames_sent_total Complete frames accepted by the kernel.
# TYPE ringcast_frames_sent_total counter
ringcast_frames_sent_total{env="a\"b\\c\nd"} 6
# HELP ringcast_frames_sent_by_transport_total Complete frames accepted by the kernel, by transport (an SSE frame is a chunk: an event, a heartbeat, the last chunk; or the response head).
# TYPE ringcast_frames_sent_by_transport_total counter
ringcast_frames_sent_by_transport_total{env="a\"b\\c\nd",transport="ws"} 4
ringcast_frames_sent_by_transport_total{env="a\"b\\c\nd",transport="sse"} 2
# HELP ringcast_bytes_sent_total Bytes accepted by the kernel.
# TYPE ringcast_bytes_sent_total counter
ringcast_bytes_sent_total{env="a\"b\\c\nd"} 120
# HELP ringcast_frames_dropped_total Queued frames dropped, by reason.
# TYPE ringcast_frames_dropped_total counter
ringcast_frames_dropped_total{env="a\"b\\c\nd",reason="drop_newest"} 1
ringcast_frames_dropped_total{env="a\"b\\c\nd",reason="drop_oldest"} 0
ringcast_frames_dropped_total{env="a\"b\\c\nd",reason="connection_closed"} 0
# HELP ringcast_send_queue_bytes Largest outbound queue among the connections a shard queued a publish (or a direct send) to, in bytes (one observation per shard delivery).
# TYPE ringcast_send_queue_bytes histogram
ringcast_send_queue_bytes_bucket{env="a\"b\\c\nd",le="128"} 1
ringcast_send_queue_bytes_bucket{env="a\"b\\c\nd",le="512"} 2
ringcast_send_queue_bytes_bucket{env="a\"b\\c\nd",le="1024"} 2
ringcast_send_queue_bytes_bucket{env="a\"b\\c\nd",le="4096"} 2
ringcast_send_queue_bytes_bucket{env="a\"b\\c\nd",le="16384"} 2
ringcast_send_queue_bytes_bucket{env="a\"b\\c\nd",le="65536"} 2
ringcast_send_queue_bytes_bucket{env="a\"b\\c\nd",le="262144"} 2
ringcast_send_queue_bytes_bucket{env="a\"b\\c\nd",le="1048576"} 2
ringcast_send_queue_bytes_bucket{env="a\"b\\c\nd",le="4194304"} 2
ringcast_send_queue_bytes_bucket{env="a\"b\\c\nd",le="16777216"} 2
ringcast_send_queue_bytes_bucket{env="a\"b\\c\nd",le="+Inf"} 2
ringcast_send_queue_bytes_sum{env="a\"b\\c\nd"} 257
ringcast_send_queue_bytes_count{env="a\"b\\c\nd"} 2
# HELP ringcast_pong_timeouts_total Connections that missed their pong deadline.
# TYPE ringcast_pong_timeouts_total counter
ringcast_pong_timeouts_total{env="a\"b\\c\nd"} 1
# HELP ringcast_panics_total Application callbacks that panicked.
# TYPE ringcast_panics_total counter
ringcast_panics_total{env="a\"b\\c\nd"} 1
# HELP ringcast_admission_rejected_total Connections refused by the admission cap.
# TYPE ringcast_admission_rejected_total counter
ringcast_admission_rejected_total{env="a\"b\\c\nd"} 1
# HELP ringcast_bind_retries_total Listener binds retried after EADDRINUSE.
# TYPE ringcast_bind_retries_total counter
ringcast_bind_retries_total{env="a\"b\\c\nd"} 1
# HELP ringcast_resume_attempts_total Clients that asked to resume a room from a sequence number.
# TYPE ringcast_resume_attempts_total counter
ringcast_resume_attempts_total{env="a\"b\\c\nd"} 3
# HELP ringcast_resumes_total Resumes served, by result: full (nothing missing) or gap (a gap or reset message first).
# TYPE ringcast_resumes_total counter
ringcast_resumes_total{env="a\"b\\c\nd",result="full"} 1
ringcast_resumes_total{env="a\"b\\c\nd",result="gap"} 2
# HELP ringcast_replayed_frames_total Retained messages replayed to resuming clients.
# TYPE ringcast_replayed_frames_total counter
ringcast_replayed_frames_total{env="a\"b\\c\nd"} 107
# HELP ringcast_history_refused_total Messages published but not kept in their room's history: larger than --history-bytes on their own.
# TYPE ringcast_history_refused_total counter
ringcast_history_refused_total{env="a\"b\\c\nd"} 2
# HELP ringcast_publish_to_write_seconds Time from a publish to the kernel accepting its frame (oldest frame of each send).
# TYPE ringcast_publish_to_write_seconds histogram
ringcast_publish_to_write_seconds_bucket{env="a\"b\\c\nd",le="0.00001"} 1
ringcast_publish_to_write_seconds_bucket{env="a\"b\\c\nd",le="0.000025"} 1
ringcast_publish_to_write_seconds_bucket{env="a\"b\\c\nd",le="0.00005"} 1
ringcast_publish_to_write_seconds_bucket{env="a\"b\\c\nd",le="0.0001"} 1
ringcast_publish_to_write_seconds_bucket{env="a\"b\\c\nd",le="0.00025"} 1
ringcast_publish_to_write_seconds_bucket{env="a\"b\\c\nd",le="0.0005"} 2
ringcast_publish_to_write_seconds_bucket{env="a\"b\\c\nd",le="0.001"} 2
ringcast_publish_to_write_seconds_bucket{env="a\"b\\c\nd",le="0.0025"} 2
ringcast_publish_to_write_seconds_bucket{env="a\"b\\c\nd",le="0.005"} 2
ringcast_publish_to_write_seconds_bucket{env="a\"b\\c\nd",le="0.01"} 2
ringcast_publish_to_write_seconds_bucket{env="a\"b\\c\nd",le="0.025"} 2
ringcast_publish_to_write_seconds_bucket{env="a\"b\\c\nd",le="0.05"} 2
ringcast_publish_to_write_seconds_bucket{env="a\"b\\c\nd",le="0.1"} 2
ringcast_publish_to_write_seconds_bucket{env="a\"b\\c\nd",le="0.25"} 2
ringcast_publish_to_write_seconds_bucket{env="a\"b\\c\nd",le="0.5"} 2
ringcast_publish_to_write_seconds_bucket{env="a\"b\\c\nd",le="1"} 2
ringcast_publish_to_write_seconds_bucket{env="a\"b\\c\nd",le="2.5"} 2
ringcast_publish_to_write_seconds_bucket{env="a\"b\\c\nd",le="+Inf"} 2
ringcast_publish_to_write_seconds_sum{env="a\"b\\c\nd"} 0.00031
ringcast_publish_to_write_seconds_count{env="a\"b\\c\nd"} 2
# HELP ringcast_input_throttled_total Peer input limited to bound memory, by action: pong_coalesced (a pending pong replaced by a newer ping's), read_paused (reading paused while unsent bytes were over the queue cap).
# TYPE ringcast_input_throttled_total counter
ringcast_input_throttled_total{env="a\"b\\c\nd",action="pong_coalesced"} 1
ringcast_input_throttled_total{env="a\"b\\c\nd",action="read_paused"} 0
# HELP ringcast_deflate_compressions_total Messages compressed for permessage-deflate: at most once per publication form however many subscribers get it, once per direct send to such a client.
# TYPE ringcast_deflate_compressions_total counter
ringcast_deflate_compressions_total{env="a\"b\\c\nd"} 5
# HELP ringcast_sessions_active Sessions held (attached or detached; --session-grace).
# TYPE ringcast_sessions_active gauge
ringcast_sessions_active{env="a\"b\\c\nd"} 3
# HELP ringcast_sessions_detached Sessions whose connection is gone, waiting for a resume.
# TYPE ringcast_sessions_detached gauge
ringcast_sessions_detached{env="a\"b\\c\nd"} 2
# HELP ringcast_session_buffer_bytes Bytes held in detached sessions' buffers.
# TYPE ringcast_session_buffer_bytes gauge
ringcast_session_buffer_bytes{env="a\"b\\c\nd"} 69
# HELP ringcast_session_resumes_total Resume tokens presented, by result: resumed, expired, unknown; buffer_overflow (also counted as resumed): the resumed session had dropped messages.
# TYPE ringcast_session_resumes_total counter
ringcast_session_resumes_total{env="a\"b\\c\nd",result="resumed"} 1
ringcast_session_resumes_total{env="a\"b\\c\nd",result="expired"} 0
ringcast_session_resumes_total{env="a\"b\\c\nd",result="unknown"} 1
ringcast_session_resumes_total{env="a\"b\\c\nd",result="buffer_overflow"} 1
# HELP ringcast_build_info Always 1: the version and backend.
# TYPE ringcast_build_info gauge
ringcast_build_info{env="a\"b\\c\nd",version="0.1.0",backend="uring"} 1
"##;

#[test]
fn renders_exact_exposition() {
    let text = driven().render();
    if text != GOLDEN {
        for (i, (got, want)) in text.lines().zip(GOLDEN.lines()).enumerate() {
            assert_eq!(got, want, "line {}", i + 1);
        }
        assert_eq!(text.lines().count(), GOLDEN.lines().count());
    }
    assert_eq!(text, GOLDEN);
}

#[test]
fn snapshot_sums_shards() {
    let s = driven().snapshot();
    assert_eq!(s.backend, "uring");
    assert_eq!(s.connections_active, vec![1, 1]);
    assert_eq!(s.connections_total(), 2);
    assert_eq!(s.connections_opened, 3);
    assert_eq!(
        s.connections_closed, 3,
        "normal, one session's grace_expired and one's session_evicted"
    );
    assert_eq!(s.handshake_rejected, 4);
    assert_eq!((s.sessions_active, s.sessions_detached), (3, 2));
    assert_eq!((s.session_buffer_bytes, s.session_resumes), (69, 3));
    assert_eq!(s.rooms_active, 1);
    assert_eq!(s.messages_received, 2);
    assert_eq!(s.messages_received_bytes, 15);
    assert_eq!(s.messages_published, 2);
    assert_eq!(s.frames_sent, 6);
    assert_eq!(s.bytes_sent, 120);
    assert_eq!(s.frames_dropped, 1);
    assert_eq!(s.pong_timeouts, 1);
    assert_eq!(s.panics, 1);
    assert_eq!(s.admission_rejected, 1);
    assert_eq!(s.bind_retries, 1);
    assert_eq!(s.history_refused, 2);
    assert_eq!(s.publish_to_write.count(), 2);
    assert_eq!(s.publish_to_write.sum, 310_000);
}

#[test]
fn no_prefix_and_no_labels() {
    let c = PrometheusCollector::new(1, "", vec![], "epoll");
    c.connection_opened(0);
    let text = c.render();
    assert!(text.contains("\nconnections_opened_total 1\n"), "{text}");
    assert!(
        text.contains("\nconnections_active{shard=\"0\"} 1\n"),
        "{text}"
    );
    assert!(text.contains("\nrooms_active 0\n"), "{text}");
    assert!(text.contains("\nbuild_info{version=\"0.1.0\",backend=\"epoll\"} 1\n"));
    assert!(text.ends_with('\n'));
}

#[test]
fn set_backend_changes_build_info() {
    let c = PrometheusCollector::new(1, "rc", vec![], "auto");
    c.set_backend("epoll");
    assert_eq!(c.backend(), "epoll");
    assert!(c
        .render()
        .contains("rc_build_info{version=\"0.1.0\",backend=\"epoll\"} 1\n"));
}

#[test]
fn bounds_are_strictly_increasing() {
    for bounds in [
        &CONNECTION_DURATION_BOUNDS_NS[..],
        &FANOUT_BOUNDS[..],
        &SEND_QUEUE_BOUNDS[..],
        &PUBLISH_TO_WRITE_BOUNDS_NS[..],
    ] {
        assert!(bounds.windows(2).all(|w| w[0] < w[1]), "{bounds:?}");
    }
}

#[test]
fn label_sets_and_prefixes_are_checked() {
    let dup = vec![
        ("a".to_owned(), "1".to_owned()),
        ("a".to_owned(), "2".to_owned()),
    ];
    assert!(validate_labels(&dup).is_err());
    assert!(validate_labels(&dup[..1]).is_ok());
    assert!(validate_prefix("ringcast").is_ok());
    assert!(validate_prefix("my:app_2").is_ok());
    assert!(validate_prefix("").is_ok());
    assert!(validate_prefix("2x").is_err());
    assert!(validate_prefix("a-b").is_err());
    // The infallible constructor drops what would break the exposition.
    let c = PrometheusCollector::new(
        1,
        "bad-prefix",
        vec![
            ("ok".into(), "1".into()),
            ("ok".into(), "2".into()),
            ("bad-name".into(), "3".into()),
            ("le".into(), "4".into()),
        ],
        "uring",
    );
    assert_eq!(c.prefix(), "ringcast");
    assert_eq!(c.const_labels(), &[("ok".to_owned(), "1".to_owned())]);
}

#[test]
fn out_of_range_shards_clamp_and_never_panic() {
    let c = PrometheusCollector::new(0, "ringcast", vec![], "uring");
    assert_eq!(c.shards(), 1);
    c.connection_opened(7);
    c.connection_closed(usize::MAX, DisconnectReason::Reset, Duration::MAX);
    c.handshake_rejected(3, u16::MAX);
    c.publish_to_write(9, Duration::MAX);
    let s = c.snapshot();
    assert_eq!(s.connections_active, vec![0]);
    assert_eq!(s.connections_opened, 1);
    assert_eq!(s.handshake_rejected, 1);
    assert_eq!(s.publish_to_write.counts.last(), Some(&1));
    let text = c.render();
    assert!(text.contains("ringcast_handshake_rejected_total{status=\"other\"} 1\n"));
    assert!(text.contains("ringcast_connection_duration_seconds_bucket{le=\"+Inf\"} 1\n"));
}

#[test]
fn concurrent_shards_sum_exactly() {
    let c = std::sync::Arc::new(PrometheusCollector::new(4, "ringcast", vec![], "uring"));
    let threads: Vec<_> = (0..4)
        .map(|shard| {
            let c = std::sync::Arc::clone(&c);
            std::thread::spawn(move || {
                for i in 0..10_000 {
                    c.connection_opened(shard);
                    c.message_received(shard, 3);
                    c.frames_sent(shard, 2, 10);
                    c.publish_fanned_out(shard, i % 7);
                    // Rooms opened on one shard and closed on the next.
                    c.room_opened(shard);
                    c.room_closed((shard + 1) % 4);
                    if i % 2 == 0 {
                        c.connection_closed(shard, DisconnectReason::Normal, Duration::ZERO);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = c.snapshot();
    assert_eq!(s.connections_active, vec![5_000; 4]);
    assert_eq!(s.connections_opened, 40_000);
    assert_eq!(s.messages_received, 40_000);
    assert_eq!(s.messages_received_bytes, 120_000);
    assert_eq!(s.frames_sent, 80_000);
    assert_eq!(s.bytes_sent, 400_000);
    assert_eq!(s.messages_published, 40_000);
    assert_eq!(s.rooms_active, 0);
}

#[test]
fn shard_blocks_do_not_share_cache_lines() {
    assert_eq!(std::mem::align_of::<ShardBlock>(), 128);
    assert_eq!(std::mem::size_of::<ShardBlock>() % 128, 0);
}

/// The label names of one sample line (`name{k="v",…} value`), escapes in values skipped.
fn label_names(line: &str) -> Vec<String> {
    let Some((_, rest)) = line.split_once('{') else {
        return Vec::new();
    };
    let mut names = Vec::new();
    let mut chars = rest.chars();
    loop {
        let name: String = chars.by_ref().take_while(|&c| c != '=').collect();
        assert_eq!(chars.next(), Some('"'), "{line}");
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => break,
                _ => {}
            }
        }
        names.push(name);
        match chars.next() {
            Some(',') => continue,
            Some('}') => return names,
            other => panic!("{other:?} after a label value in {line}"),
        }
    }
}

/// Every label a sample carries besides the constant ones is refused as a constant
/// label name, so `--metrics-label` can never put one name twice on a sample (which
/// makes Prometheus reject the whole scrape).
#[test]
fn own_label_names_cannot_be_constant_labels() {
    let text = driven().render();
    let mut own = std::collections::BTreeSet::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let names = label_names(line);
        assert_eq!(names.first().map(String::as_str), Some("env"), "{line}");
        own.extend(names.into_iter().skip(1));
    }
    let expected = [
        "action",
        "backend",
        "le",
        "reason",
        "result",
        "shard",
        "status",
        "transport",
        "version",
    ];
    assert_eq!(own.iter().map(String::as_str).collect::<Vec<_>>(), expected);
    for name in &own {
        assert!(RESERVED_LABELS.contains(&name.as_str()), "{name}");
        assert!(parse_label(&format!("{name}=x")).is_err(), "{name}");
    }
}

//! Tests for the request classifier: upgrade vs plain, a plain request's parts, its body
//! framing (RFC 9112 §6.3) and the upgrade path's answer to it.

use super::*;
use crate::proto::DEFAULT_MAX_HEAD_BYTES;

fn classify(head: &str) -> Result<RequestParse, Rejection> {
    parse_request(head.as_bytes(), DEFAULT_MAX_HEAD_BYTES)
}

fn plain_of(head: &str) -> PlainRequest {
    match classify(head) {
        Ok(RequestParse::Complete {
            request: Request::Plain(p),
            head_len,
        }) => {
            assert_eq!(head_len, head.len());
            p
        }
        other => panic!("{other:?}"),
    }
}

fn status_of(head: &str) -> u16 {
    classify(head).expect_err("refused").status
}

#[test]
fn an_upgrade_is_classified_as_one() {
    let head = "GET /ws/a HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    assert!(matches!(
        classify(head),
        Ok(RequestParse::Complete {
            request: Request::Upgrade(_),
            ..
        })
    ));
}

#[test]
fn a_plain_get_keeps_its_parts() {
    let p = plain_of(
        "GET /sse/%72oom?lastEventId=4 HTTP/1.1\r\nHost: h:1\r\nOrigin: http://o\r\n\
         Last-Event-ID: 7\r\n\r\n",
    );
    assert_eq!(p.method, "GET");
    assert_eq!(p.minor_version, 1);
    assert_eq!(p.path, "/sse/room");
    assert_eq!(p.query.as_deref(), Some("lastEventId=4"));
    assert_eq!(p.authority, "h:1");
    assert_eq!(p.origin.as_deref(), Some("http://o"));
    assert_eq!(p.header("last-event-id"), Some("7"));
    assert_eq!(p.body, BodyFraming::None);
    assert!(!p.has_body());
    assert_eq!(p.upgrade_refusal().status, 400);
}

#[test]
fn body_framing_follows_rfc_9112_section_6_3() {
    let with = |lines: &str| format!("POST /publish/r HTTP/1.1\r\nHost: h\r\n{lines}\r\n");
    assert_eq!(plain_of(&with("")).body, BodyFraming::None);
    assert_eq!(
        plain_of(&with("Content-Length: 12\r\n")).body,
        BodyFraming::Length(12)
    );
    assert_eq!(
        plain_of(&with("Content-Length: 5, 5\r\nContent-Length: 5\r\n")).body,
        BodyFraming::Length(5)
    );
    assert_eq!(
        plain_of(&with("Transfer-Encoding: Chunked\r\n")).body,
        BodyFraming::Chunked
    );
    assert_eq!(status_of(&with("Content-Length: 5, 6\r\n")), 400);
    assert_eq!(status_of(&with("Content-Length: +5\r\n")), 400);
    assert_eq!(status_of(&with("Content-Length: \r\n")), 400);
    assert_eq!(
        status_of(&with("Transfer-Encoding: chunked\r\nContent-Length: 3\r\n")),
        400
    );
    assert_eq!(status_of(&with("Transfer-Encoding: gzip\r\n")), 400);
    assert_eq!(
        status_of(&with("Transfer-Encoding: gzip, chunked\r\n")),
        501
    );
    assert_eq!(
        status_of("POST /p HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"),
        400
    );
}

#[test]
fn a_plain_request_obeys_the_head_rules() {
    assert_eq!(status_of("POST /p HTTP/1.1\r\n\r\n"), 400); // no Host
    assert_eq!(
        status_of("POST /p HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
        400
    );
    assert_eq!(status_of("GET /p HTTP/1.1\r\nHost: a\nX: y\r\n\r\n"), 400);
    assert_eq!(status_of("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    assert_eq!(status_of("GET /p HTTP/2.0\r\nHost: a\r\n\r\n"), 505);
    let p = plain_of("GET /p HTTP/1.7\r\nHost: a\r\n\r\n");
    assert_eq!(p.minor_version, 1);
}

#[test]
fn the_upgrade_path_answers_plain_requests_as_before() {
    let refusal = |head: &str| match parse_upgrade(head.as_bytes(), DEFAULT_MAX_HEAD_BYTES) {
        Err(r) => r.status,
        other => panic!("{other:?}"),
    };
    assert_eq!(refusal("POST /p HTTP/1.1\r\nHost: a\r\n\r\n"), 405);
    assert_eq!(refusal("GET /p HTTP/1.0\r\nHost: a\r\n\r\n"), 400);
    assert_eq!(refusal("GET /p HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
}

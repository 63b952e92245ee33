//! The SSE subscribe request (`GET /sse/{room}`) and the check of its response head:
//! `200`, `Content-Type: text/event-stream`, `Transfer-Encoding: chunked` (the wire
//! format ringcast's SSE endpoint follows; see the README of ringcast-load).

use crate::codec::{find_head_end, trim_cr, trim_ws, HandshakeError, MAX_HANDSHAKE_RESPONSE};

/// Appends the HTTP/1.1 request that subscribes to `path` as an event stream.
pub fn write_request(out: &mut Vec<u8>, host: &str, path: &str) {
    use std::io::Write as _;
    let _ = write!(
        out,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\
         Cache-Control: no-cache\r\n\r\n"
    );
}

/// Checks the response head in `buf`: `Ok(None)` while incomplete, `Ok(Some(n))` with
/// the head's length (the chunked body starts at `n`) when it is a `200` event stream in
/// chunked coding; otherwise why not ([`HandshakeError::BadStatus`] with the status
/// line, [`HandshakeError::NotEventStream`] with the header at fault).
pub fn parse_response(buf: &[u8]) -> Result<Option<usize>, HandshakeError> {
    let Some(end) = find_head_end(buf) else {
        if buf.len() > MAX_HANDSHAKE_RESPONSE {
            return Err(HandshakeError::TooLarge);
        }
        return Ok(None);
    };
    let mut lines = buf[..end - 4].split(|&b| b == b'\n').map(trim_cr);
    let status = lines.next().ok_or(HandshakeError::Malformed)?;
    let mut parts = status.split(|&b| b == b' ').filter(|p| !p.is_empty());
    let version = parts.next().ok_or(HandshakeError::Malformed)?;
    if !version.starts_with(b"HTTP/1.") {
        return Err(HandshakeError::Malformed);
    }
    if parts.next() != Some(b"200") {
        return Err(HandshakeError::BadStatus(
            String::from_utf8_lossy(status).into_owned(),
        ));
    }
    let (mut event_stream, mut chunked) = (false, false);
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], trim_ws(&line[colon + 1..]));
        if name.eq_ignore_ascii_case(b"content-type") {
            let media = value.split(|&b| b == b';').next().unwrap_or(b"");
            event_stream = trim_ws(media).eq_ignore_ascii_case(b"text/event-stream");
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            chunked = value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|c| trim_ws(c).eq_ignore_ascii_case(b"chunked"));
        }
    }
    if !event_stream {
        return Err(HandshakeError::NotEventStream("Content-Type"));
    }
    if !chunked {
        return Err(HandshakeError::NotEventStream("Transfer-Encoding"));
    }
    Ok(Some(end))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
        Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\nx-ringcast-shard: 0\r\n\r\n";

    #[test]
    fn accepts_the_fixed_head_and_waits_for_more() {
        let mut buf = OK.to_vec();
        buf.extend_from_slice(b"e\r\nretry: 3000\n\n\r\n");
        assert_eq!(parse_response(&buf), Ok(Some(OK.len())));
        assert_eq!(parse_response(&OK[..OK.len() - 1]), Ok(None));
    }

    #[test]
    fn refuses_other_answers() {
        let r = parse_response(b"HTTP/1.1 503 Service Unavailable\r\n\r\n");
        assert!(matches!(r, Err(HandshakeError::BadStatus(s)) if s.contains("503")));
        let r = parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(r, Err(HandshakeError::NotEventStream("Content-Type")));
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 5\r\n\r\n",
        );
        assert_eq!(r, Err(HandshakeError::NotEventStream("Transfer-Encoding")));
    }

    #[test]
    fn request_names_path_and_host() {
        let mut out = Vec::new();
        write_request(&mut out, "127.0.0.1:9001", "/sse/bench?lastEventId=3");
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("GET /sse/bench?lastEventId=3 HTTP/1.1\r\nHost: 127.0.0.1:9001\r\n"));
        assert!(s.ends_with("\r\n\r\n"));
    }
}

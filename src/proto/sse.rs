//! Server-Sent Events on the wire, sans-IO: the `text/event-stream` format (HTML Living
//! Standard, "Server-sent events" §9.2.5–§9.2.6) inside the chunked transfer coding of
//! an HTTP/1.1 response (RFC 9112 §7.1), **one event per chunk**, so the chunk framing
//! is part of a publication's shared, encode-once form.
//!
//! - An event: `id: <seq>\n` when it has a number, `event: <type>\n` when it is not the
//!   default `message` type, one `data: <line>\n` per line of the data, then `\n`.
//!   Lines are split on `\r\n`, `\n` and `\r` (§9.2.6 reads all three as line ends, so
//!   an SSE client sees every line end of a text payload as `\n`); an empty payload is
//!   one empty `data:` line (an event with empty data, which §9.2.6 dispatches).
//! - A binary payload is the event type `binary` with its data standard base64 (RFC
//!   4648 §4, with padding) on one line.
//! - A chunk: `<hex length>\r\n<bytes>\r\n`; the stream ends with the last chunk
//!   `0\r\n\r\n` ([`LAST_CHUNK`]).
//! - Also: the reconnection time `retry: <ms>\n\n` ([`retry_chunk`]) and the heartbeat
//!   comment `:\n\n` ([`HEARTBEAT_CHUNK`]).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// The heartbeat: one comment line (`:`), then the blank line, as one chunk.
pub const HEARTBEAT_CHUNK: &[u8] = b"3\r\n:\n\n\r\n";

/// The last chunk of the chunked body (RFC 9112 §7.1, no trailers): the stream ends.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// The event type of a binary payload (its data is base64).
pub const BINARY_EVENT: &str = "binary";

/// `body` as one chunk: `<hex length>\r\n<body>\r\n` (RFC 9112 §7.1). An empty `body`
/// would be the last chunk, so callers never pass one (every event has its blank line).
pub fn chunk(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 12);
    out.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n");
    out
}

/// The event bytes (not yet a chunk) for `data` with the optional `id` and `event`
/// type: see the module doc. `event` must be one line (it is ours, never a peer's).
pub fn event(id: Option<u64>, event: Option<&str>, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 32);
    if let Some(id) = id {
        out.extend_from_slice(format!("id: {id}\n").as_bytes());
    }
    if let Some(event) = event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(event.as_bytes());
        out.push(b'\n');
    }
    for line in lines(data) {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out.push(b'\n');
    out
}

/// The chunk carrying one message: text (`binary == false`, its bytes as they are) or
/// binary (event type [`BINARY_EVENT`], data base64), with `id` when numbered.
pub fn message_chunk(id: Option<u64>, binary: bool, payload: &[u8]) -> Vec<u8> {
    if binary {
        let data = STANDARD.encode(payload);
        chunk(&event(id, Some(BINARY_EVENT), data.as_bytes()))
    } else {
        chunk(&event(id, None, payload))
    }
}

/// The chunk setting the client's reconnection time to `ms` milliseconds (§9.2.6
/// `retry` field).
pub fn retry_chunk(ms: u64) -> Vec<u8> {
    chunk(format!("retry: {ms}\n\n").as_bytes())
}

/// The lines of `data`, split on `\r\n`, `\n` or `\r`; a trailing line end ends the last
/// line (and starts an empty one, so `"a\n"` is `a` then the empty line); empty data is
/// one empty line.
fn lines(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < data.len() {
        match data[i] {
            b'\r' => {
                out.push(&data[start..i]);
                i += if data.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                start = i;
            }
            b'\n' => {
                out.push(&data[start..i]);
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    out.push(&data[start..]);
    out
}

/// The `200` response head of an event stream: `Content-Type: text/event-stream`,
/// `Cache-Control: no-cache`, `Transfer-Encoding: chunked`, then `extra_headers`
/// (trusted, written as given).
pub fn response_head(extra_headers: &[(&str, &str)]) -> Vec<u8> {
    let mut out = String::with_capacity(160);
    out.push_str("HTTP/1.1 200 OK\r\n");
    out.push_str("Content-Type: text/event-stream\r\n");
    out.push_str("Cache-Control: no-cache\r\n");
    out.push_str("Transfer-Encoding: chunked\r\n");
    for (name, value) in extra_headers {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.into_bytes()
}

#[cfg(test)]
mod tests;

//! Server-Sent Events subscribers (`fanout --transport sse`): the request and response
//! head ([`head`]), the chunked body ([`chunked`]) and the event stream inside it
//! ([`events`]), all sans I/O. [`SseStream`] chains the last two for one connection;
//! the event loop feeds it what the socket delivers after the head and turns each event
//! into a [`crate::codec::Frame`] for the workload ([`event_frame`]): a `binary` event's
//! base64 data is decoded into a binary frame (the benchmark payload, header included),
//! `gap` / `reset` announcements are not messages, any other event's data is a text
//! frame, so SSE subscribers share the WebSocket subscribers' accounting.
//!
//! The wire format (ringcast's `/sse/{room}`): `200`, `Content-Type:
//! text/event-stream`, `Transfer-Encoding: chunked`, each event one chunk, first chunk
//! `retry: <ms>`, heartbeats `:` comments, `event: binary` + standard base64 for binary
//! payloads, the last chunk `0` then the server closes.

pub mod chunked;
pub mod events;
pub mod head;

use base64::Engine as _;

use crate::codec::{Frame, OP_BINARY, OP_TEXT};
pub use chunked::{ChunkError, Chunked};
pub use events::{Event, EventError, EventParser, Item};

/// One connection's body decoder: chunked coding, then the event stream.
#[derive(Debug, Clone)]
pub struct SseStream {
    chunked: Chunked,
    events: EventParser,
    /// Comments (heartbeats) seen.
    pub comments: u64,
}

/// Why a stream was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SseError {
    /// The chunked framing is broken.
    Chunked(ChunkError),
    /// The event stream is (over-)long.
    Events(EventError),
}

impl std::fmt::Display for SseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SseError::Chunked(e) => e.fmt(f),
            SseError::Events(e) => e.fmt(f),
        }
    }
}

impl SseStream {
    /// A decoder whose lines and event data are at most `max_event` bytes.
    pub fn new(max_event: usize) -> Self {
        SseStream {
            chunked: Chunked::default(),
            events: EventParser::new(max_event),
            comments: 0,
        }
    }

    /// Decodes `body` (the next bytes after the response head, split anywhere), calling
    /// `on` with each event. Returns `Ok(true)` when the stream ended (the last chunk).
    pub fn feed(&mut self, body: &[u8], mut on: impl FnMut(Event<'_>)) -> Result<bool, SseError> {
        let SseStream {
            chunked,
            events,
            comments,
        } = self;
        let mut bad = Ok(());
        let done = chunked
            .feed(body, |data| {
                if bad.is_ok() {
                    bad = events.feed(data, |it| match it {
                        Item::Event(e) => on(e),
                        Item::Comment(_) => *comments += 1,
                    });
                }
            })
            .map_err(SseError::Chunked)?;
        bad.map_err(SseError::Events)?;
        Ok(done)
    }

    /// The last `retry:` the server announced (ms).
    pub fn retry_ms(&self) -> Option<u64> {
        self.events.retry_ms
    }
}

/// Bytes of event stream a payload of `size` bytes can take at most: base64 of it plus
/// the field names and line ends (and room for an `id:` line).
pub fn max_event_len(size: usize) -> usize {
    size.div_ceil(3) * 4 + 128
}

/// What an event stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meaning<'a> {
    /// A message, as the frame it would be over WebSocket.
    Frame(Frame<'a>),
    /// `event: gap` or `event: reset` (the server's resume announcements): not a message.
    Announcement,
    /// `event: binary` whose data is not base64 of at most the buffer's length.
    BadBinary,
}

/// The meaning of an event: `event: binary` → a binary frame of the decoded base64
/// (into `buf`, which must hold the decoded length); `gap` / `reset` → an announcement;
/// anything else → a text frame of the data.
pub fn event_frame<'a>(ev: &Event<'a>, buf: &'a mut [u8]) -> Meaning<'a> {
    let (opcode, payload) = match ev.event {
        b"binary" => match base64::engine::general_purpose::STANDARD.decode_slice(ev.data, buf) {
            Ok(n) => (OP_BINARY, &buf[..n]),
            Err(_) => return Meaning::BadBinary,
        },
        b"gap" | b"reset" => return Meaning::Announcement,
        _ => (OP_TEXT, ev.data),
    };
    Meaning::Frame(Frame {
        fin: true,
        opcode,
        payload,
        consumed: 0,
        compressed: false,
    })
}

#[cfg(test)]
mod tests;

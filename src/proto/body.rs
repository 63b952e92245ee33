//! Sans-IO reading of an HTTP/1.1 request body (RFC 9112 §6, §7.1): a
//! `Content-Length` body, a chunked body, or none, collected under a size cap.
//!
//! - [`BodyFraming::Length`]: exactly that many bytes (RFC 9112 §6.2). A declared length
//!   over the cap is refused before any of the body is read (413).
//! - [`BodyFraming::Chunked`] (RFC 9112 §7.1): `chunk-size [chunk-ext] CRLF data CRLF`
//!   repeated, then the last chunk `0 [chunk-ext] CRLF`, the trailer section and CRLF.
//!   The size line is read by [`httparse::parse_chunk_size`]; chunk extensions are
//!   ignored (§7.1.1) and trailer fields discarded (§7.1.2, a server may). A size line
//!   must start with a hex digit and end in CRLF (whitespace after the size only before
//!   a `;` extension), the data must be followed by CRLF,
//!   a trailer line must end in CRLF: else 400. A size line or trailer line longer than
//!   [`MAX_LINE`], or a trailer section over [`MAX_TRAILER`], → 431 (RFC 6585 §5). The
//!   body is refused with 413 as soon as a chunk's declared size would take the
//!   accumulated body past the cap, before its data is read.
//! - [`BodyFraming::None`]: neither field: the body is empty (RFC 9112 §6.3, item 7).
//!
//! Nothing past the cap is ever buffered: the reader holds the body (at most `max`
//! bytes) and one line (at most [`MAX_LINE`] bytes). The outcome does not depend on
//! how the bytes are split into reads. Bytes after the body (a pipelined request) are
//! left to the caller: [`BodyReader::feed`] reports how many it consumed.

use super::head::Rejection;
use super::request::BodyFraming;

/// Longest chunk-size line or trailer line, CRLF included (more → 431).
pub const MAX_LINE: usize = 4096;
/// Most bytes of a chunked body's trailer section (more → 431).
pub const MAX_TRAILER: usize = 16 * 1024;

const fn refuse(status: u16, reason: &'static str) -> Rejection {
    Rejection { status, reason }
}

/// Where a chunked body's reader is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunked {
    /// Reading a chunk-size line (into `line`).
    Size,
    /// Reading this many more data bytes of the current chunk.
    Data(u64),
    /// Expecting the CRLF after a chunk's data (into `line`).
    DataEnd,
    /// Reading trailer lines (into `line`); `bytes` of the section read so far.
    Trailer { bytes: usize },
}

/// Where the reader is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// This many more bytes of a `Content-Length` body.
    Length(u64),
    Chunked(Chunked),
    /// The body is complete (taken by [`BodyReader::feed`]'s caller).
    Done,
}

/// Collects one request body of at most `max` bytes (see the module doc).
#[derive(Debug)]
pub struct BodyReader {
    state: State,
    max: usize,
    body: Vec<u8>,
    /// The chunk-size, data-end or trailer line being read.
    line: Vec<u8>,
}

/// What [`BodyReader::feed`] got to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyProgress {
    /// The body is not complete yet: feed more.
    Partial,
    /// The complete body.
    Complete(Vec<u8>),
}

impl BodyReader {
    /// A reader for a body framed as `framing`, of at most `max` bytes.
    ///
    /// # Errors
    /// 413 when `framing` declares a length over `max` (nothing needs reading to know).
    pub fn new(framing: BodyFraming, max: usize) -> Result<Self, Rejection> {
        let state = match framing {
            BodyFraming::None | BodyFraming::Length(0) => State::Done,
            BodyFraming::Length(n) if n > max as u64 => {
                return Err(refuse(413, "request body over --max-message-size"))
            }
            BodyFraming::Length(n) => State::Length(n),
            BodyFraming::Chunked => State::Chunked(Chunked::Size),
        };
        Ok(BodyReader {
            state,
            max,
            body: Vec::new(),
            line: Vec::new(),
        })
    }

    /// True when the body is already complete without reading (empty).
    pub fn is_complete(&self) -> bool {
        self.state == State::Done
    }

    /// Read body bytes from the start of `input`. Returns how many bytes were consumed
    /// (the rest belong to what follows the body) and whether the body is complete.
    /// Once complete, the reader consumes nothing more.
    ///
    /// # Errors
    /// The status to answer with (413, 400, 431: see the module doc); the reader must
    /// not be fed again.
    pub fn feed(&mut self, input: &[u8]) -> Result<(usize, BodyProgress), Rejection> {
        let mut used = 0;
        loop {
            match self.state {
                State::Done => return Ok((used, BodyProgress::Complete(self.take()))),
                State::Length(left) => {
                    let n = take_len(left, input.len() - used);
                    self.body.extend_from_slice(&input[used..used + n]);
                    used += n;
                    self.state = match left - n as u64 {
                        0 => State::Done,
                        left => State::Length(left),
                    };
                }
                State::Chunked(chunked) => {
                    used += self.feed_chunked(chunked, &input[used..])?;
                }
            }
            if used == input.len() && self.state != State::Done {
                return Ok((used, BodyProgress::Partial));
            }
        }
    }

    /// The body, leaving the reader done.
    fn take(&mut self) -> Vec<u8> {
        self.line = Vec::new();
        std::mem::take(&mut self.body)
    }

    /// One step of a chunked body from `input`; returns the bytes consumed.
    fn feed_chunked(&mut self, state: Chunked, input: &[u8]) -> Result<usize, Rejection> {
        if let Chunked::Data(left) = state {
            let n = take_len(left, input.len());
            self.body.extend_from_slice(&input[..n]);
            self.state = State::Chunked(match left - n as u64 {
                0 => Chunked::DataEnd,
                left => Chunked::Data(left),
            });
            return Ok(n);
        }
        let Some(used) = self.read_line(input)? else {
            return Ok(input.len());
        };
        let line = std::mem::take(&mut self.line);
        if !line.ends_with(b"\r\n") || line[..line.len() - 2].contains(&b'\r') {
            return Err(refuse(400, "chunked body lines must end in crlf"));
        }
        self.state = match state {
            Chunked::Size => self.chunk_size(&line)?,
            Chunked::DataEnd if line.len() == 2 => State::Chunked(Chunked::Size),
            Chunked::DataEnd => return Err(refuse(400, "chunk data longer than its size")),
            Chunked::Trailer { .. } if line.len() == 2 => State::Done,
            Chunked::Trailer { bytes } if bytes + line.len() > MAX_TRAILER => {
                return Err(refuse(431, "trailer section too large"))
            }
            Chunked::Trailer { bytes } => State::Chunked(Chunked::Trailer {
                bytes: bytes + line.len(),
            }),
            Chunked::Data(_) => unreachable!("handled above"),
        };
        Ok(used)
    }

    /// The state after the chunk-size line `line` (CRLF included).
    fn chunk_size(&self, line: &[u8]) -> Result<State, Rejection> {
        if !line.first().is_some_and(u8::is_ascii_hexdigit) {
            return Err(refuse(400, "malformed chunk size"));
        }
        // `chunk-size [chunk-ext] CRLF`: after the digits only a chunk extension, which
        // starts (after optional whitespace, BWS) with `;`. httparse also takes
        // whitespace with nothing after it (`3 \r\n`), which §7.1 does not allow.
        let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        let rest = &line[digits..line.len() - 2];
        let ext = rest.iter().position(|b| !matches!(b, b' ' | b'\t'));
        if !ext.map_or(rest.is_empty(), |i| rest[i] == b';') {
            return Err(refuse(400, "malformed chunk size"));
        }
        let size = match httparse::parse_chunk_size(line) {
            Ok(httparse::Status::Complete((n, size))) if n == line.len() => size,
            _ => return Err(refuse(400, "malformed chunk size")),
        };
        if size > (self.max - self.body.len()) as u64 {
            return Err(refuse(413, "request body over --max-message-size"));
        }
        Ok(State::Chunked(match size {
            0 => Chunked::Trailer { bytes: 0 },
            size => Chunked::Data(size),
        }))
    }

    /// Add bytes of `input` to the line being read, up to and including its LF.
    /// Returns the bytes consumed once the line is complete, `None` when all of
    /// `input` went into an unfinished line.
    fn read_line(&mut self, input: &[u8]) -> Result<Option<usize>, Rejection> {
        let (n, complete) = match input.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (input.len(), false),
        };
        if self.line.len() + n > MAX_LINE {
            return Err(refuse(431, "chunked body line too long"));
        }
        self.line.extend_from_slice(&input[..n]);
        Ok(complete.then_some(n))
    }
}

/// How many of `available` bytes to take when `left` are wanted.
fn take_len(left: u64, available: usize) -> usize {
    usize::try_from(left).map_or(available, |left| left.min(available))
}

#[cfg(test)]
mod tests;

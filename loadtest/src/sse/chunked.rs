//! Incremental decoder of the HTTP/1.1 chunked transfer coding (RFC 9112 §7.1), sans
//! I/O: [`Chunked::feed`] takes the bytes of a response body as they arrive, split
//! anywhere, and hands out the chunk data in order; it tells when the last chunk and the
//! trailer section have been read. Chunk extensions and trailer fields are skipped.
//! Line ends inside the framing must be CRLF.

/// Largest chunk accepted (bytes); a larger size line is an error, not an allocation.
pub const MAX_CHUNK: u64 = 16 << 20;

/// Why a body is not valid chunked coding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    /// A chunk-size line that is not hex digits (optionally `;extensions`) then CRLF.
    BadSize,
    /// A chunk size over [`MAX_CHUNK`].
    TooLarge,
    /// Chunk data not followed by CRLF, or a bare CR in the framing.
    BadDelimiter,
    /// Bytes after the end of the body (the last chunk and its trailer).
    AfterEnd,
}

impl std::fmt::Display for ChunkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ChunkError::BadSize => "chunked body: malformed chunk-size line",
            ChunkError::TooLarge => "chunked body: chunk larger than 16 MiB",
            ChunkError::BadDelimiter => "chunked body: chunk data not followed by CRLF",
            ChunkError::AfterEnd => "chunked body: bytes after the last chunk",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    /// Chunk-size hex digits (`digits` read so far).
    Size,
    /// After the size: `;extension` or whitespace until CR.
    Ext,
    /// CR of the size line seen, LF expected.
    SizeLf,
    /// Chunk data, `remaining` bytes left.
    Data,
    /// After the data: CR expected.
    DataCr,
    /// After the data's CR: LF expected.
    DataLf,
    /// After the last chunk's size line: the start of a trailer line, or the final CRLF.
    TrailerStart,
    /// Inside a trailer field line, until LF.
    TrailerLine,
    /// The final CR seen, LF expected.
    FinalLf,
    /// The body is complete.
    Done,
}

/// Decoder state of one chunked body.
#[derive(Debug, Clone)]
pub struct Chunked {
    st: St,
    size: u64,
    digits: u32,
    remaining: u64,
}

impl Default for Chunked {
    fn default() -> Self {
        Chunked {
            st: St::Size,
            size: 0,
            digits: 0,
            remaining: 0,
        }
    }
}

impl Chunked {
    /// Decodes `input`, passing each run of chunk data to `out` (a chunk may come in
    /// several runs when the input is split inside it). Returns `Ok(true)` once the body
    /// is complete (last chunk and trailer read); bytes after that are an error.
    pub fn feed(&mut self, input: &[u8], mut out: impl FnMut(&[u8])) -> Result<bool, ChunkError> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.st {
                St::Size => match (b as char).to_digit(16) {
                    Some(d) => {
                        self.size = self.size * 16 + d as u64;
                        self.digits += 1;
                        if self.size > MAX_CHUNK {
                            return Err(ChunkError::TooLarge);
                        }
                        i += 1;
                    }
                    None if self.digits == 0 => return Err(ChunkError::BadSize),
                    None => self.st = St::Ext,
                },
                St::Ext => {
                    match b {
                        b'\r' => self.st = St::SizeLf,
                        b'\n' => return Err(ChunkError::BadDelimiter),
                        _ => {}
                    }
                    i += 1;
                }
                St::SizeLf => {
                    if b != b'\n' {
                        return Err(ChunkError::BadDelimiter);
                    }
                    i += 1;
                    self.remaining = self.size;
                    (self.size, self.digits) = (0, 0);
                    self.st = if self.remaining == 0 {
                        St::TrailerStart
                    } else {
                        St::Data
                    };
                }
                St::Data => {
                    let n = (self.remaining.min((input.len() - i) as u64)) as usize;
                    out(&input[i..i + n]);
                    i += n;
                    self.remaining -= n as u64;
                    if self.remaining == 0 {
                        self.st = St::DataCr;
                    }
                }
                St::DataCr | St::FinalLf | St::DataLf => {
                    let want = if self.st == St::DataCr { b'\r' } else { b'\n' };
                    if b != want {
                        return Err(ChunkError::BadDelimiter);
                    }
                    i += 1;
                    self.st = match self.st {
                        St::DataCr => St::DataLf,
                        St::DataLf => St::Size,
                        _ => St::Done,
                    };
                }
                St::TrailerStart => {
                    i += 1;
                    self.st = match b {
                        b'\r' => St::FinalLf,
                        b'\n' => return Err(ChunkError::BadDelimiter),
                        _ => St::TrailerLine,
                    };
                }
                St::TrailerLine => {
                    i += 1;
                    if b == b'\n' {
                        self.st = St::TrailerStart;
                    }
                }
                St::Done => return Err(ChunkError::AfterEnd),
            }
        }
        Ok(self.st == St::Done)
    }

    /// Whether the body is complete.
    pub fn is_done(&self) -> bool {
        self.st == St::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(parts: &[&[u8]]) -> (Vec<u8>, Result<bool, ChunkError>) {
        let mut c = Chunked::default();
        let mut out = Vec::new();
        let mut r = Ok(false);
        for p in parts {
            r = c.feed(p, |d| out.extend_from_slice(d));
            if r.is_err() {
                break;
            }
        }
        (out, r)
    }

    #[test]
    fn decodes_chunks_and_the_end() {
        let (out, r) = decode(&[b"5\r\nhello\r\n1;ext=1\r\n!\r\n0\r\n\r\n"]);
        assert_eq!(out, b"hello!");
        assert_eq!(r, Ok(true));
    }

    #[test]
    fn uppercase_hex_and_trailers() {
        let (out, r) = decode(&[b"A\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n"]);
        assert_eq!(out, b"0123456789");
        assert_eq!(r, Ok(true));
    }

    #[test]
    fn incomplete_is_not_done() {
        let (out, r) = decode(&[b"5\r\nhel"]);
        assert_eq!((out.as_slice(), r), (&b"hel"[..], Ok(false)));
        let (_, r) = decode(&[b"0\r\n\r"]);
        assert_eq!(r, Ok(false));
    }

    #[test]
    fn rejects_bad_framing() {
        assert_eq!(decode(&[b"x\r\n"]).1, Err(ChunkError::BadSize));
        assert_eq!(decode(&[b"5\nhello"]).1, Err(ChunkError::BadDelimiter));
        assert_eq!(decode(&[b"2\r\nhiX\r\n"]).1, Err(ChunkError::BadDelimiter));
        assert_eq!(decode(&[b"2000000\r\n"]).1, Err(ChunkError::TooLarge));
        assert_eq!(decode(&[b"0\r\n\r\nz"]).1, Err(ChunkError::AfterEnd));
    }
}

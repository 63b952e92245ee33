//! Incremental parser of an `text/event-stream` body (HTML Living Standard,
//! "Server-sent events", §9.2.6 "Interpreting an event stream"), sans I/O: lines end in
//! CRLF, LF or CR (a CRLF split between two inputs is one line end); `data:` lines
//! accumulate (joined with LF), `event:` sets the type, `id:` the last event ID (kept
//! across events, ignored when it holds NUL), `retry:` the reconnection time when all
//! digits; a line starting with `:` is a comment; a blank line dispatches the event,
//! unless no `data:` came (then only the type is reset). A leading BOM is not stripped.
//!
//! A line complete inside one input is handled in place; only a line split between
//! inputs is copied (into a buffer kept for the next line).

/// One parsed item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item<'a> {
    /// A dispatched event.
    Event(Event<'a>),
    /// A comment line's text after the `:` (a heartbeat is an empty comment).
    Comment(&'a [u8]),
}

/// A dispatched event; the slices live until the next item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<'a> {
    /// The `event:` type; empty means the default, `message`.
    pub event: &'a [u8],
    /// The `data:` lines joined with LF (no trailing LF).
    pub data: &'a [u8],
    /// The last event ID at dispatch (`id:` of this or an earlier event), if any.
    pub id: Option<&'a [u8]>,
}

/// Why a stream was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventError {
    /// A line (or an event's data) grew past the parser's limit.
    TooLong,
}

impl std::fmt::Display for EventError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("event stream: line or event data over the size limit")
    }
}

/// Parser state of one event stream.
#[derive(Debug, Clone)]
pub struct EventParser {
    /// Start of a line split between inputs.
    line: Vec<u8>,
    /// The previous input ended in CR: an LF first in the next one belongs to it.
    skip_lf: bool,
    data: Vec<u8>,
    event: Vec<u8>,
    id: Option<Vec<u8>>,
    /// The last valid `retry:` value (ms).
    pub retry_ms: Option<u64>,
    max: usize,
}

impl EventParser {
    /// A parser that refuses lines and event data longer than `max` bytes.
    pub fn new(max: usize) -> Self {
        EventParser {
            line: Vec::new(),
            skip_lf: false,
            data: Vec::new(),
            event: Vec::new(),
            id: None,
            retry_ms: None,
            max,
        }
    }

    /// Parses `input` (any split of the stream), calling `on` for each event and comment.
    pub fn feed(&mut self, input: &[u8], mut on: impl FnMut(Item<'_>)) -> Result<(), EventError> {
        let mut rest = input;
        if self.skip_lf && !rest.is_empty() {
            self.skip_lf = false;
            if rest[0] == b'\n' {
                rest = &rest[1..];
            }
        }
        while !rest.is_empty() {
            let Some(i) = rest.iter().position(|&b| b == b'\n' || b == b'\r') else {
                if self.line.len() + rest.len() > self.max {
                    return Err(EventError::TooLong);
                }
                self.line.extend_from_slice(rest);
                break;
            };
            if self.line.is_empty() {
                self.line_done(&rest[..i], &mut on)?;
            } else {
                self.line.extend_from_slice(&rest[..i]);
                let line = std::mem::take(&mut self.line);
                let r = self.line_done(&line, &mut on);
                self.line = line;
                self.line.clear();
                r?;
            }
            let cr = rest[i] == b'\r';
            rest = &rest[i + 1..];
            if cr {
                match rest.first() {
                    None => self.skip_lf = true,
                    Some(b'\n') => rest = &rest[1..],
                    Some(_) => {}
                }
            }
        }
        Ok(())
    }

    fn line_done(&mut self, line: &[u8], on: &mut impl FnMut(Item<'_>)) -> Result<(), EventError> {
        if line.is_empty() {
            if !self.data.is_empty() {
                self.data.pop(); // the LF after the last data line
                on(Item::Event(Event {
                    event: &self.event,
                    data: &self.data,
                    id: self.id.as_deref(),
                }));
            }
            self.data.clear();
            self.event.clear();
            return Ok(());
        }
        if line[0] == b':' {
            on(Item::Comment(&line[1..]));
            return Ok(());
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(c) => {
                let v = &line[c + 1..];
                (&line[..c], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                if self.data.len() + value.len() >= self.max {
                    return Err(EventError::TooLong);
                }
                self.data.extend_from_slice(value);
                self.data.push(b'\n');
            }
            b"event" => {
                self.event.clear();
                self.event.extend_from_slice(value);
            }
            b"id" if !value.contains(&0) => {
                let id = self.id.get_or_insert_with(Vec::new);
                id.clear();
                id.extend_from_slice(value);
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                self.retry_ms = std::str::from_utf8(value).ok().and_then(|s| s.parse().ok());
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (event, data, id) of each event, and the comments, fed in `parts`.
    type Got = (Vec<(String, String, Option<String>)>, Vec<String>);

    fn parse(parts: &[&[u8]]) -> Got {
        let mut p = EventParser::new(1 << 16);
        let (mut evs, mut comments) = (Vec::new(), Vec::new());
        let s = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
        for part in parts {
            p.feed(part, |it| match it {
                Item::Event(e) => evs.push((s(e.event), s(e.data), e.id.map(s))),
                Item::Comment(c) => comments.push(s(c)),
            })
            .unwrap();
        }
        (evs, comments)
    }

    #[test]
    fn events_fields_and_comments() {
        let (evs, comments) =
            parse(&[b"retry: 3000\n\n:\n\nid: 7\nevent: binary\ndata: QUJD\n\ndata:x\n\n"]);
        assert_eq!(
            evs,
            vec![
                ("binary".into(), "QUJD".into(), Some("7".into())),
                ("".into(), "x".into(), Some("7".into())),
            ]
        );
        assert_eq!(comments, vec![""]);
    }

    #[test]
    fn data_lines_join_with_lf_and_all_line_ends_count() {
        let (evs, _) = parse(&[b"data: a\r\ndata: b\rdata: c\ndata\n\r\n"]);
        assert_eq!(evs, vec![("".into(), "a\nb\nc\n".into(), None)]);
    }

    #[test]
    fn crlf_split_between_inputs_is_one_line_end() {
        let (evs, _) = parse(&[b"data: a\r", b"\n", b"\r", b"\n"]);
        assert_eq!(evs, vec![("".into(), "a".into(), None)]);
    }

    #[test]
    fn retry_and_id_rules() {
        let mut p = EventParser::new(1024);
        p.feed(b"retry: 12x\nretry: 250\nid: a\0b\n\n", |_| {})
            .unwrap();
        assert_eq!(p.retry_ms, Some(250));
        let (evs, _) = parse(&[b"event: gap\n\ndata: y\n\n"]);
        assert_eq!(
            evs,
            vec![("".into(), "y".into(), None)],
            "no data: type reset"
        );
    }

    #[test]
    fn refuses_overlong_lines() {
        let mut p = EventParser::new(8);
        assert_eq!(
            p.feed(b"data: 0123456789", |_| {}),
            Err(EventError::TooLong)
        );
    }
}

//! The benchmark message format (design §8) and the per-sender order/loss check.
//!
//! A message is at least 16 bytes: a big-endian u64 sequence number, then a big-endian
//! u64 send timestamp (ns, CLOCK_MONOTONIC, same host), zero-padded to the requested
//! size. To let subscribers check order *per publisher* without a wider header, the
//! sequence field carries the publisher id in its top 16 bits and the publisher's own
//! counter in the low 48 bits.

/// Smallest valid message.
pub const HEADER_LEN: usize = 16;
/// Bits of the sequence field that hold the per-publisher counter.
pub const SEQ_BITS: u32 = 48;
/// Most publishers that can be told apart.
pub const MAX_SENDERS: u64 = 1 << (64 - SEQ_BITS);
const SEQ_MASK: u64 = (1 << SEQ_BITS) - 1;

/// Writes the header into the first 16 bytes of `buf` (the rest is left as is).
pub fn write_header(buf: &mut [u8], sender: u64, seq: u64, ts_ns: u64) {
    debug_assert!(sender < MAX_SENDERS && seq <= SEQ_MASK);
    let field = (sender << SEQ_BITS) | (seq & SEQ_MASK);
    buf[..8].copy_from_slice(&field.to_be_bytes());
    buf[8..16].copy_from_slice(&ts_ns.to_be_bytes());
}

/// A decoded header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Publisher (fanout) or connection-local stream (echo) id.
    pub sender: u64,
    /// Per-sender sequence number.
    pub seq: u64,
    /// Send timestamp, ns on CLOCK_MONOTONIC.
    pub ts_ns: u64,
}

/// Reads the header of a received payload; `None` if it is too short.
pub fn read_header(payload: &[u8]) -> Option<Header> {
    if payload.len() < HEADER_LEN {
        return None;
    }
    let mut a = [0u8; 8];
    a.copy_from_slice(&payload[..8]);
    let field = u64::from_be_bytes(a);
    a.copy_from_slice(&payload[8..16]);
    Some(Header {
        sender: field >> SEQ_BITS,
        seq: field & SEQ_MASK,
        ts_ns: u64::from_be_bytes(a),
    })
}

/// Result of checking one sequence number against the next expected one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqCheck {
    /// Exactly the expected number.
    InOrder,
    /// Ahead of the expected number: this many messages were skipped (lost).
    Gap(u64),
    /// Not above the last seen number: a duplicate or reordering.
    Backwards,
}

impl SeqCheck {
    /// Whether this message is new (counts toward completion).
    pub fn is_new(self) -> bool {
        !matches!(self, SeqCheck::Backwards)
    }
}

/// Checks `seq` against `*next` (the next expected number) and advances `*next` past
/// any new message. Sequences start at 0.
pub fn check_seq(next: &mut u64, seq: u64) -> SeqCheck {
    let expected = *next;
    if seq == expected {
        *next = seq + 1;
        SeqCheck::InOrder
    } else if seq > expected {
        *next = seq + 1;
        SeqCheck::Gap(seq - expected)
    } else {
        SeqCheck::Backwards
    }
}

/// Running totals of order and loss checks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OrderStats {
    /// Valid messages received.
    pub received: u64,
    /// Messages skipped over (seen as jumps in a sequence).
    pub gaps: u64,
    /// Duplicates / sequence going backwards.
    pub order_violations: u64,
}

impl OrderStats {
    /// Adds one check outcome.
    pub fn record(&mut self, c: SeqCheck) {
        self.received += 1;
        match c {
            SeqCheck::InOrder => {}
            SeqCheck::Gap(n) => self.gaps += n,
            SeqCheck::Backwards => self.order_violations += 1,
        }
    }

    /// Adds another set of totals (another thread's) to these.
    pub fn add(&mut self, o: &OrderStats) {
        self.received += o.received;
        self.gaps += o.gaps;
        self.order_violations += o.order_violations;
    }
}

/// Length of the sequence-framing prefix (`?seq=1` / `?since=N`): 8-byte big-endian room
/// sequence number + 1 byte original opcode.
pub const SEQ_PREFIX_LEN: usize = 9;

/// A room message in the server's sequence framing, parsed in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeqFrame<'a> {
    /// Per-room sequence number (from 1).
    pub room_seq: u64,
    /// Opcode of the message as published (1 text, 2 binary).
    pub opcode: u8,
    /// The original payload (borrowed, after the 9-byte prefix).
    pub payload: &'a [u8],
}

/// Splits a sequence-framed binary frame payload; `None` if it is shorter than the prefix
/// or the opcode byte is neither 1 (text) nor 2 (binary).
pub fn parse_seq_frame(payload: &[u8]) -> Option<SeqFrame<'_>> {
    if payload.len() < SEQ_PREFIX_LEN {
        return None;
    }
    let mut a = [0u8; 8];
    a.copy_from_slice(&payload[..8]);
    let opcode = payload[8];
    if opcode != 1 && opcode != 2 {
        return None;
    }
    Some(SeqFrame {
        room_seq: u64::from_be_bytes(a),
        opcode,
        payload: &payload[SEQ_PREFIX_LEN..],
    })
}

/// A control message of the sequence framing (a text frame holding one JSON object).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// `{"type":"gap","from":A,"to":B}`: messages `A..=B` are no longer retained.
    Gap {
        /// First missing number.
        from: u64,
        /// Last missing number (inclusive).
        to: u64,
    },
    /// `{"type":"reset","next":N}`: the `since` number is unknown; retained messages
    /// follow from `N`.
    Reset {
        /// First number that follows.
        next: u64,
    },
}

#[derive(serde::Deserialize)]
struct RawControl {
    #[serde(rename = "type")]
    kind: String,
    from: Option<u64>,
    to: Option<u64>,
    next: Option<u64>,
}

/// Parses a control message; `None` if it is not a well-formed `gap` or `reset`.
pub fn parse_control(text: &[u8]) -> Option<Control> {
    let r: RawControl = serde_json::from_slice(text).ok()?;
    match (r.kind.as_str(), r.from, r.to, r.next) {
        ("gap", Some(from), Some(to), _) if from <= to => Some(Control::Gap { from, to }),
        ("reset", _, _, Some(next)) => Some(Control::Reset { next }),
        _ => None,
    }
}

/// Result of checking one room sequence number against the last one seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoomCheck {
    /// The first number this subscriber ever saw (no baseline yet): accepted as is.
    First,
    /// Exactly last + 1.
    InOrder,
    /// Ahead: this many numbers were skipped without a `gap` announcement (loss).
    Skipped(u64),
    /// Not above the last number: a duplicate or reordering (the frame is ignored).
    Duplicate,
}

/// One subscriber's room-sequence tracking, kept across reconnects: every number must be
/// the previous one + 1, a `gap` moves the expectation past its range, a `reset` to its
/// `next`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoomSeq {
    /// Last number seen (or skipped over by a gap/reset); `None` before the first frame.
    pub last: Option<u64>,
}

/// Room-sequence totals (what churn reports).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoomStats {
    /// Numbers skipped without announcement.
    pub skipped: u64,
    /// Repeated or lower numbers.
    pub duplicates: u64,
    /// `gap` messages seen.
    pub gap_messages: u64,
    /// Numbers announced lost by `gap` messages.
    pub gap_frames: u64,
    /// `reset` messages seen.
    pub resets: u64,
    /// Numbers jumped over by a `reset` (known loss; a reset is a failure regardless).
    pub reset_frames: u64,
}

impl RoomStats {
    /// All room-sequence loss: silent skips + announced gaps + numbers lost to resets.
    pub fn lost(&self) -> u64 {
        self.skipped + self.gap_frames + self.reset_frames
    }

    /// Adds another thread's totals.
    pub fn add(&mut self, o: &RoomStats) {
        self.skipped += o.skipped;
        self.duplicates += o.duplicates;
        self.gap_messages += o.gap_messages;
        self.gap_frames += o.gap_frames;
        self.resets += o.resets;
        self.reset_frames += o.reset_frames;
    }
}

impl RoomSeq {
    /// Checks a data frame's number, advances the tracker past any new number and adds
    /// the outcome to `st`. The frame's payload should be processed unless the result
    /// is [`RoomCheck::Duplicate`].
    pub fn check(&mut self, seq: u64, st: &mut RoomStats) -> RoomCheck {
        let Some(last) = self.last else {
            self.last = Some(seq);
            return RoomCheck::First;
        };
        if seq <= last {
            st.duplicates += 1;
            return RoomCheck::Duplicate;
        }
        self.last = Some(seq);
        if seq == last + 1 {
            RoomCheck::InOrder
        } else {
            st.skipped += seq - last - 1;
            RoomCheck::Skipped(seq - last - 1)
        }
    }

    /// Applies a control message: a `gap` counts its range (the part above the last
    /// number seen) as lost and moves past it; a `reset` counts and moves to `next`.
    pub fn control(&mut self, c: Control, st: &mut RoomStats) {
        match c {
            Control::Gap { from, to } => {
                st.gap_messages += 1;
                let lo = match self.last {
                    Some(l) => from.max(l + 1),
                    None => from,
                };
                if to >= lo {
                    st.gap_frames += to - lo + 1;
                }
                self.last = Some(self.last.map_or(to, |l| l.max(to)));
            }
            Control::Reset { next } => {
                st.resets += 1;
                if let Some(l) = self.last {
                    st.reset_frames += next.saturating_sub(l + 1);
                }
                self.last = Some(next.saturating_sub(1));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_roundtrip() {
        let mut buf = vec![0xAAu8; 64];
        write_header(&mut buf, 3, 42, 123_456_789);
        let h = read_header(&buf).unwrap();
        assert_eq!(
            h,
            Header {
                sender: 3,
                seq: 42,
                ts_ns: 123_456_789
            }
        );
        assert_eq!(buf[16], 0xAA, "padding untouched");
        // Big-endian on the wire: publisher 0, seq 1.
        write_header(&mut buf, 0, 1, 2);
        assert_eq!(
            &buf[..16],
            &[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2]
        );
        assert!(read_header(&buf[..15]).is_none());
        write_header(&mut buf, MAX_SENDERS - 1, SEQ_MASK, 0);
        let h = read_header(&buf).unwrap();
        assert_eq!((h.sender, h.seq), (MAX_SENDERS - 1, SEQ_MASK));
    }

    #[test]
    fn in_order_stream() {
        let mut next = 0;
        let mut s = OrderStats::default();
        for i in 0..100 {
            s.record(check_seq(&mut next, i));
        }
        assert_eq!(
            s,
            OrderStats {
                received: 100,
                gaps: 0,
                order_violations: 0
            }
        );
        assert_eq!(next, 100);
    }

    #[test]
    fn loss_counts_gaps() {
        let mut next = 0;
        let mut s = OrderStats::default();
        for i in [0, 1, 2, 5, 6, 10] {
            s.record(check_seq(&mut next, i));
        }
        assert_eq!(s.received, 6);
        assert_eq!(s.gaps, 2 + 3);
        assert_eq!(s.order_violations, 0);
        assert_eq!(next, 11);
    }

    #[test]
    fn backwards_and_duplicates_are_violations() {
        let mut next = 0;
        let mut s = OrderStats::default();
        for i in [0, 1, 3, 2, 3, 4] {
            let c = check_seq(&mut next, i);
            if i == 2 {
                assert_eq!(c, SeqCheck::Backwards);
                assert!(!c.is_new());
            }
            s.record(c);
        }
        assert_eq!(s.received, 6);
        assert_eq!(s.gaps, 1, "2 was skipped when 3 arrived");
        assert_eq!(s.order_violations, 2, "late 2 and duplicate 3");
        assert_eq!(next, 5);
    }

    #[test]
    fn seq_prefix_parsing() {
        let mut buf = 0x0102_0304_0506_0708u64.to_be_bytes().to_vec();
        buf.push(2);
        buf.extend_from_slice(b"payload");
        let f = parse_seq_frame(&buf).unwrap();
        assert_eq!(f.room_seq, 0x0102_0304_0506_0708);
        assert_eq!(f.opcode, 2);
        assert_eq!(f.payload, b"payload");
        assert_eq!(
            f.payload.as_ptr(),
            buf[9..].as_ptr(),
            "borrowed, not copied"
        );
        // Exactly the prefix: empty payload; text opcode accepted.
        buf.truncate(9);
        buf[8] = 1;
        let f = parse_seq_frame(&buf).unwrap();
        assert_eq!((f.opcode, f.payload.len()), (1, 0));
        assert!(parse_seq_frame(&buf[..8]).is_none(), "too short");
        buf[8] = 0;
        assert!(parse_seq_frame(&buf).is_none(), "bad opcode byte");
        buf[8] = 9;
        assert!(parse_seq_frame(&buf).is_none(), "bad opcode byte");
    }

    #[test]
    fn control_parsing() {
        assert_eq!(
            parse_control(br#"{"type":"gap","from":3,"to":7}"#),
            Some(Control::Gap { from: 3, to: 7 })
        );
        assert_eq!(
            parse_control(br#"{"type":"reset","next":18446744073709551615}"#),
            Some(Control::Reset { next: u64::MAX })
        );
        assert_eq!(parse_control(br#"{"type":"gap","from":7,"to":3}"#), None);
        assert_eq!(parse_control(br#"{"type":"gap","from":7}"#), None);
        assert_eq!(parse_control(br#"{"type":"hello"}"#), None);
        assert_eq!(parse_control(b"not json"), None);
    }

    #[test]
    fn room_seq_contiguity() {
        let mut r = RoomSeq::default();
        let mut st = RoomStats::default();
        // The first number is the baseline, whatever it is.
        assert_eq!(r.check(41, &mut st), RoomCheck::First);
        assert_eq!(r.check(42, &mut st), RoomCheck::InOrder);
        assert_eq!(r.check(43, &mut st), RoomCheck::InOrder);
        // A resume continues the same tracker: 44 must come next.
        assert_eq!(r.check(46, &mut st), RoomCheck::Skipped(2));
        assert_eq!(r.check(46, &mut st), RoomCheck::Duplicate);
        assert_eq!(r.check(45, &mut st), RoomCheck::Duplicate);
        assert_eq!(r.check(47, &mut st), RoomCheck::InOrder);
        assert_eq!(r.last, Some(47));
        assert_eq!(
            st,
            RoomStats {
                skipped: 2,
                duplicates: 2,
                ..Default::default()
            }
        );
        assert_eq!(st.lost(), 2);
    }

    #[test]
    fn room_seq_gap_and_reset() {
        let mut r = RoomSeq { last: Some(10) };
        let mut st = RoomStats::default();
        // Resumed after 10: 11..=20 are gone, the replay continues with 21.
        r.control(Control::Gap { from: 11, to: 20 }, &mut st);
        assert_eq!(r.check(21, &mut st), RoomCheck::InOrder);
        assert_eq!((st.gap_messages, st.gap_frames, st.skipped), (1, 10, 0));
        // A gap overlapping what was already seen counts only the unseen part.
        r.control(Control::Gap { from: 15, to: 23 }, &mut st);
        assert_eq!(st.gap_frames, 10 + 2);
        assert_eq!(r.check(24, &mut st), RoomCheck::InOrder);
        // A reset moves to `next` and counts the numbers in between.
        r.control(Control::Reset { next: 30 }, &mut st);
        assert_eq!(r.check(30, &mut st), RoomCheck::InOrder);
        assert_eq!((st.resets, st.reset_frames), (1, 5));
        assert_eq!(st.lost(), 12 + 5);
        assert_eq!(st.duplicates, 0);
        let mut total = RoomStats::default();
        total.add(&st);
        total.add(&st);
        assert_eq!(total.lost(), 2 * st.lost());
    }
}

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
}

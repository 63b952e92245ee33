//! Incremental, fail-fast UTF-8 validation for text messages that arrive in
//! pieces (several frames, each over several reads).
//!
//! "Fail fast" means a stream is rejected at the first byte that cannot be
//! part of any valid continuation, even when the code point is still
//! incomplete and even when it straddles a chunk boundary (Autobahn 6.4.*).
//! The bulk of each chunk goes through `std::str::from_utf8` (which has an
//! ASCII fast path); only the bytes of a code point split across chunks go
//! through the small table in [`Utf8Validator::step`], which encodes the
//! Unicode "well-formed byte sequences" table (Unicode §3.9, table 3-7), so
//! overlongs (C0, C1, E0 80..9F, F0 80..8F), surrogates (ED A0..BF),
//! code points above U+10FFFF (F4 90.., F5..FF) and stray continuation bytes
//! fail on the offending byte.

/// The stream seen so far cannot be valid UTF-8, whatever follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utf8Invalid;

/// Validation state carried between chunks: how many continuation bytes the
/// current code point still needs and the allowed range of the next one.
#[derive(Default, Clone, Copy, Debug)]
pub struct Utf8Validator {
    /// Continuation bytes still expected (0..=3).
    need: u8,
    /// Inclusive range allowed for the next continuation byte.
    lo: u8,
    hi: u8,
}

impl Utf8Validator {
    /// A validator at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Validate the next chunk of the stream. Returns `Err` as soon as the
    /// stream is known to be invalid; the state is then unspecified (call
    /// [`reset`](Self::reset) before reuse).
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), Utf8Invalid> {
        let mut bytes = chunk.iter();
        // Finish a code point left open by the previous chunk.
        while self.need > 0 {
            match bytes.next() {
                Some(&b) => self.step(b)?,
                None => return Ok(()),
            }
        }
        let rest = bytes.as_slice();
        match std::str::from_utf8(rest) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => Err(Utf8Invalid),
            Err(e) => {
                // Truncated code point at the end: std says the bytes present
                // are a valid prefix, but re-check them here (at most 3) so the
                // carried state is exact and independent of std internals.
                let tail = rest.get(e.valid_up_to()..).unwrap_or_default();
                for &b in tail {
                    self.step(b)?;
                }
                Ok(())
            }
        }
    }

    /// True when the stream so far ends on a code point boundary.
    pub fn is_complete(&self) -> bool {
        self.need == 0
    }

    /// Forget everything; ready for a new stream.
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// Advance by one byte, with full checking.
    fn step(&mut self, b: u8) -> Result<(), Utf8Invalid> {
        if self.need > 0 {
            if b < self.lo || b > self.hi {
                return Err(Utf8Invalid);
            }
            self.need -= 1;
            self.lo = 0x80;
            self.hi = 0xBF;
            return Ok(());
        }
        let (need, lo, hi) = match b {
            0x00..=0x7F => (0, 0x80, 0xBF),
            0xC2..=0xDF => (1, 0x80, 0xBF),
            0xE0 => (2, 0xA0, 0xBF),
            0xE1..=0xEC | 0xEE..=0xEF => (2, 0x80, 0xBF),
            0xED => (2, 0x80, 0x9F),
            0xF0 => (3, 0x90, 0xBF),
            0xF1..=0xF3 => (3, 0x80, 0xBF),
            0xF4 => (3, 0x80, 0x8F),
            // 80..BF stray continuation, C0/C1 overlong, F5..FF out of range.
            _ => return Err(Utf8Invalid),
        };
        self.need = need;
        self.lo = lo;
        self.hi = hi;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn feed_all(chunks: &[&[u8]]) -> Result<bool, Utf8Invalid> {
        let mut v = Utf8Validator::new();
        for c in chunks {
            v.feed(c)?;
        }
        Ok(v.is_complete())
    }

    /// Feed byte by byte; return the index of the byte that failed.
    fn fail_index(bytes: &[u8]) -> Option<usize> {
        let mut v = Utf8Validator::new();
        bytes.iter().position(|b| v.feed(&[*b]).is_err())
    }

    #[test]
    fn state_is_small() {
        assert!(std::mem::size_of::<Utf8Validator>() <= 8);
    }

    #[test]
    fn accepts_valid_text_whole_and_split() {
        let s = "Hello-µ@ßöäüàá-UTF-8!! κόσμε 𝄞 \u{10FFFF} \u{FFFD}".as_bytes();
        assert_eq!(feed_all(&[s]), Ok(true));
        for cut in 0..=s.len() {
            let (a, b) = s.split_at(cut);
            assert_eq!(feed_all(&[a, b]), Ok(true), "cut at {cut}");
        }
    }

    #[test]
    fn empty_stream_is_complete() {
        assert_eq!(feed_all(&[]), Ok(true));
        assert_eq!(feed_all(&[b"", b""]), Ok(true));
    }

    #[test]
    fn incomplete_code_point_is_not_complete() {
        assert_eq!(feed_all(&[&[0xCE]]), Ok(false));
        assert_eq!(feed_all(&[&[0xF0, 0x9D]]), Ok(false));
        assert_eq!(feed_all(&[&[0xF0], &[0x9D, 0x84]]), Ok(false));
        assert_eq!(feed_all(&[&[0xF0], &[0x9D, 0x84], &[0x9E]]), Ok(true));
    }

    #[test]
    fn rejects_out_of_range_lead_bytes_immediately() {
        for b in [0xF5u8, 0xF8, 0xFC, 0xFE, 0xFF] {
            assert_eq!(fail_index(&[b'a', b, 0x80, 0x80]), Some(1), "{b:#x}");
        }
    }

    #[test]
    fn rejects_overlong_leads_immediately() {
        assert_eq!(fail_index(&[0xC0, 0x80]), Some(0));
        assert_eq!(fail_index(&[0xC1, 0xBF]), Some(0));
        assert_eq!(fail_index(&[0xE0, 0x80, 0x80]), Some(1));
        assert_eq!(fail_index(&[0xE0, 0x9F, 0xBF]), Some(1));
        assert_eq!(fail_index(&[0xF0, 0x8F, 0xBF, 0xBF]), Some(1));
    }

    #[test]
    fn rejects_surrogates_at_second_byte() {
        assert_eq!(fail_index(&[0xED, 0xA0, 0x80]), Some(1));
        assert_eq!(fail_index(&[0xED, 0xBF, 0xBF]), Some(1));
        assert_eq!(fail_index(&[0xED, 0x9F, 0xBF]), None);
    }

    #[test]
    fn rejects_above_u10ffff_at_second_byte() {
        assert_eq!(fail_index(&[0xF4, 0x90, 0x80, 0x80]), Some(1));
        assert_eq!(fail_index(&[0xF4, 0x8F, 0xBF, 0xBF]), None);
    }

    #[test]
    fn rejects_stray_and_missing_continuations() {
        assert_eq!(fail_index(&[0x80]), Some(0));
        assert_eq!(fail_index(&[b'a', 0xBF]), Some(1));
        assert_eq!(fail_index(&[0xCE, b'a']), Some(1));
        assert_eq!(fail_index(&[0xE2, 0x82, b'a']), Some(2));
    }

    #[test]
    fn autobahn_6_4_1_fails_on_fourth_byte_of_middle_chunk() {
        // 6.4.1: "κόσμε" then F4 90 80 80 then "edited", sent in 3 fragments.
        let mut v = Utf8Validator::new();
        assert!(v.feed("κόσμε".as_bytes()).is_ok());
        assert!(v.feed(&[0xF4, 0x90, 0x80, 0x80]).is_err());
    }

    #[test]
    fn fails_within_chunk_on_invalid_tail_prefix() {
        // Invalid prefix at the very end of a chunk must fail now, not later.
        let mut v = Utf8Validator::new();
        assert!(v.feed(&[b'o', b'k', 0xF4, 0x90]).is_err());
        let mut v = Utf8Validator::new();
        assert!(v.feed(&[b'o', b'k', 0xED, 0xA0]).is_err());
    }

    #[test]
    fn reset_clears_pending_code_point() {
        let mut v = Utf8Validator::new();
        v.feed(&[0xE2, 0x82]).unwrap();
        assert!(!v.is_complete());
        v.reset();
        assert!(v.is_complete());
        assert!(v.feed(b"plain").is_ok());
    }

    proptest! {
        #[test]
        fn agrees_with_std_under_any_split(
            bytes in proptest::collection::vec(
                prop_oneof![any::<u8>(), 0x80u8..0xC0, 0xC0u8..0xF8], 0..40),
            cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..4),
        ) {
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
            points.sort_unstable();
            let mut v = Utf8Validator::new();
            let mut prev = 0;
            let mut ok = true;
            for p in points.into_iter().chain([bytes.len()]) {
                if v.feed(&bytes[prev..p]).is_err() {
                    ok = false;
                    break;
                }
                prev = p;
            }
            let std_ok = std::str::from_utf8(&bytes).is_ok();
            prop_assert_eq!(ok && v.is_complete(), std_ok);
        }

        #[test]
        fn fails_exactly_where_std_says_the_error_is(
            bytes in proptest::collection::vec(
                prop_oneof![any::<u8>(), 0x80u8..0xC0, 0xE0u8..0xF5], 0..24),
        ) {
            // std's error_len = Some(n) counts the bytes of the maximal valid
            // prefix starting at valid_up_to (at least 1). A fail-fast validator
            // fails on the byte right after that prefix, or on the lead byte
            // itself when it can never start a code point.
            let expected = match std::str::from_utf8(&bytes) {
                Ok(_) => None,
                Err(e) => e.error_len().map(|n| {
                    let at = e.valid_up_to();
                    if (0xC2..=0xF4).contains(&bytes[at]) { at + n } else { at }
                }),
            };
            prop_assert_eq!(fail_index(&bytes), expected);
        }
    }
}

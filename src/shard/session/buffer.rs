//! [`SessionBuffer`]: what a detached session missed, in order, bounded in bytes.
//!
//! Room messages are kept as the shared [`Publication`] (one reference per detached
//! session, no copy; the wire form is picked at resume for the new connection's
//! framing, compression or transport); direct sends as [`Direct`] messages, framed at
//! resume for the new connection's transport too. Over the cap
//! the oldest entries go and are counted ([`SessionBuffer::lost`]); the resume tells
//! the client how many.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::wire::{Direct, Publication};

/// One message a detached session missed.
#[derive(Debug, Clone)]
pub enum Missed {
    /// A room message (the publication every member shares).
    Room(Arc<Publication>),
    /// A direct send ([`crate::Publisher::send_to_session`]), not yet framed.
    Direct(Direct),
}

impl Missed {
    /// Bytes it counts against `--session-buffer-bytes`: its largest wire form.
    pub fn cost(&self) -> usize {
        match self {
            Missed::Room(p) => p.sequenced_len(),
            Missed::Direct(d) => d.cost(),
        }
    }
}

/// A detached session's missed messages, oldest first, at most `cap` bytes.
#[derive(Debug, Default)]
pub struct SessionBuffer {
    entries: VecDeque<Missed>,
    bytes: usize,
    /// Messages dropped (oldest first) to stay under the cap since the last resume.
    lost: u64,
}

impl SessionBuffer {
    /// Append `missed`, dropping the oldest entries while over `cap` bytes (a message
    /// larger than `cap` alone is dropped itself). Returns how many were dropped and
    /// the change in bytes held (may be negative).
    pub fn push(&mut self, missed: Missed, cap: usize) -> (u64, isize) {
        let before = self.bytes as isize;
        self.bytes += missed.cost();
        self.entries.push_back(missed);
        let mut dropped = 0;
        while self.bytes > cap {
            let Some(old) = self.entries.pop_front() else {
                break;
            };
            self.bytes -= old.cost();
            dropped += 1;
        }
        self.lost += dropped;
        (dropped, self.bytes as isize - before)
    }

    /// Count `n` messages lost outside the buffer (frames still queued to the socket
    /// when it went away): reported with the buffer's own losses on resume.
    pub fn count_lost(&mut self, n: u64) {
        self.lost += n;
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Messages dropped since the last [`SessionBuffer::take`].
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Everything held, oldest first, and the count lost; the buffer is empty after.
    pub fn take(&mut self) -> (VecDeque<Missed>, u64) {
        self.bytes = 0;
        (
            std::mem::take(&mut self.entries),
            std::mem::take(&mut self.lost),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn direct(n: usize) -> Missed {
        Missed::Direct(Direct::binary(&vec![b'x'; n]))
    }

    #[test]
    fn over_the_cap_the_oldest_go_and_are_counted() {
        let mut b = SessionBuffer::default();
        let cost = direct(98).cost(); // 100 bytes on the wire
        assert_eq!(b.push(direct(98), 250), (0, cost as isize));
        b.push(direct(98), 250);
        let (dropped, _) = b.push(direct(98), 250);
        assert_eq!(dropped, 1);
        assert_eq!((b.bytes(), b.lost()), (2 * cost, 1));
        let (held, lost) = b.take();
        assert_eq!((held.len(), lost, b.bytes(), b.lost()), (2, 1, 0, 0));
        assert_eq!(b.push(direct(300), 250).0, 1, "larger than the cap alone");
    }
}

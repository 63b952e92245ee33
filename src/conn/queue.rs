//! A connection's outbound queue: prepared frames waiting to be written.
//!
//! Frames are shared handles ([`PreparedFrame`]), so queueing a broadcast to 10k
//! connections copies no payload. The front frame may be partly written
//! (`head_written`); it is popped only once the kernel has taken all of it, which also
//! keeps its bytes alive for an io_uring send still in flight.

use std::collections::VecDeque;

use crate::hub::PreparedFrame;

#[derive(Debug, Default)]
pub struct OutQueue {
    frames: VecDeque<PreparedFrame>,
    head_written: usize,
    bytes: usize,
}

impl OutQueue {
    pub fn push(&mut self, frame: PreparedFrame) {
        self.bytes += frame.len();
        self.frames.push_back(frame);
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Frames waiting (the front one may be partly written).
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Bytes not yet accepted by the kernel.
    pub fn bytes(&self) -> usize {
        self.bytes - self.head_written
    }

    /// The unwritten bytes of each queued frame, front first.
    pub fn pending(&self) -> impl Iterator<Item = &[u8]> {
        self.pending_frames().map(|(f, off)| &f.bytes()[off..])
    }

    /// Each queued frame with the offset of its first unwritten byte, front first.
    pub fn pending_frames(&self) -> impl Iterator<Item = (&PreparedFrame, usize)> {
        let skip = self.head_written;
        self.frames
            .iter()
            .enumerate()
            .map(move |(i, f)| (f, if i == 0 { skip } else { 0 }))
    }

    /// The kernel accepted `n` more bytes: pop the frames fully written.
    /// Returns how many frames completed.
    pub fn advance(&mut self, mut n: usize) -> usize {
        let mut done = 0;
        while n > 0 {
            let Some(front) = self.frames.front() else {
                break;
            };
            let left = front.len() - self.head_written;
            if n < left {
                self.head_written += n;
                break;
            }
            n -= left;
            self.bytes -= front.len();
            self.head_written = 0;
            self.frames.pop_front();
            done += 1;
        }
        if self.frames.is_empty() && self.frames.capacity() > 64 {
            // A burst grew the ring; give the memory back once it drained.
            self.frames = VecDeque::new();
        }
        done
    }

    /// Drop everything queued (the connection is going away).
    pub fn clear(&mut self) {
        self.frames = VecDeque::new();
        self.head_written = 0;
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(b: &[u8]) -> PreparedFrame {
        PreparedFrame::from_wire(b.to_vec())
    }

    #[test]
    fn partial_writes_keep_the_front_frame_until_done() {
        let mut q = OutQueue::default();
        q.push(frame(b"abcd"));
        q.push(frame(b"ef"));
        assert_eq!(q.bytes(), 6);
        assert_eq!(q.advance(3), 0);
        assert_eq!(q.pending().collect::<Vec<_>>(), vec![&b"d"[..], &b"ef"[..]]);
        assert_eq!(q.bytes(), 3);
        assert_eq!(q.advance(2), 1);
        assert_eq!(q.pending().collect::<Vec<_>>(), vec![&b"f"[..]]);
        assert_eq!(q.advance(1), 1);
        assert!(q.is_empty());
        assert_eq!(q.bytes(), 0);
    }
}

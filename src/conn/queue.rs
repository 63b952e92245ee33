//! A connection's outbound queue: prepared frames waiting to be written, with the
//! slow-consumer policy applied at enqueue time.
//!
//! Frames are shared handles ([`PreparedFrame`]), so queueing a broadcast to 10k
//! connections copies no payload. The front frame may be partly written
//! (`head_written`); it is popped only once the kernel has taken all of it, which also
//! keeps its bytes alive for an io_uring send in flight, and it is never dropped by
//! `drop-oldest`. Control frames (pong, close) are never dropped. An idle connection
//! holds no queue memory (see [`OutQueue::advance`] and [`OutQueue::shrink_idle`]).

use std::collections::VecDeque;
use std::time::Instant;

use crate::hub::PreparedFrame;

#[derive(Debug)]
struct Queued {
    frame: PreparedFrame,
    control: bool,
}

/// What the kernel's acceptance of some bytes completed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Advanced {
    /// Data frames fully written.
    pub frames: usize,
    /// When the oldest of them was published (for publish→write latency).
    pub oldest_publish: Option<Instant>,
}

#[derive(Debug, Default)]
pub struct OutQueue {
    frames: VecDeque<Queued>,
    head_written: usize,
    bytes: usize,
    /// Front frames handed to a send still in flight: never dropped.
    in_flight: usize,
}

impl OutQueue {
    /// Queue a data frame (subject to slow-consumer drops).
    pub fn push_data(&mut self, frame: PreparedFrame) {
        self.push(frame, false);
    }

    /// Queue a control frame or handshake response (never dropped).
    pub fn push_control(&mut self, frame: PreparedFrame) {
        self.push(frame, true);
    }

    fn push(&mut self, frame: PreparedFrame, control: bool) {
        self.bytes += frame.len();
        self.frames.push_back(Queued { frame, control });
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

    /// Each queued frame with the offset of its first unwritten byte, front first.
    pub fn pending_frames(&self) -> impl Iterator<Item = (&PreparedFrame, usize)> {
        let skip = self.head_written;
        self.frames
            .iter()
            .enumerate()
            .map(move |(i, q)| (&q.frame, if i == 0 { skip } else { 0 }))
    }

    /// The unwritten bytes of each queued frame, front first.
    pub fn pending(&self) -> impl Iterator<Item = &[u8]> {
        self.pending_frames().map(|(f, off)| &f.bytes()[off..])
    }

    /// The first `frames` queued frames are being written by a send in flight (io_uring):
    /// they must stay queued, unchanged, until it completes.
    pub fn set_in_flight(&mut self, frames: usize) {
        self.in_flight = frames.min(self.frames.len());
    }

    /// Front frames no policy may drop: those in flight, and a partly written one.
    fn protected(&self) -> usize {
        self.in_flight.max(usize::from(self.head_written > 0))
    }

    /// The kernel accepted `n` more bytes: pop the frames fully written.
    pub fn advance(&mut self, mut n: usize) -> Advanced {
        let mut done = Advanced::default();
        while n > 0 {
            let Some(front) = self.frames.front() else {
                break;
            };
            let left = front.frame.len() - self.head_written;
            if n < left {
                self.head_written += n;
                break;
            }
            n -= left;
            self.bytes -= front.frame.len();
            self.head_written = 0;
            let q = self.frames.pop_front().expect("front exists");
            if !q.control {
                done.frames += 1;
                if done.oldest_publish.is_none() {
                    done.oldest_publish = q.frame.published_at();
                }
            }
        }
        // A queue that only carried control frames (the 101, pongs) gives its memory back
        // at once, so idle connections hold none; one that carries data keeps a modest
        // ring for the next publish (no malloc/free per send) until `shrink_idle`.
        if self.frames.is_empty() && (done.frames == 0 || self.frames.capacity() > 64) {
            self.frames = VecDeque::new();
        }
        done
    }

    /// Free the ring of an empty queue (called for connections that went quiet).
    pub fn shrink_idle(&mut self) {
        if self.frames.is_empty() {
            self.frames = VecDeque::new();
        }
    }

    /// `drop-oldest`: drop data frames from the front (never a partly written one,
    /// never a control frame) until `incoming` more bytes fit under `max_bytes`.
    /// Returns how many were dropped.
    pub fn drop_oldest(&mut self, incoming: usize, max_bytes: usize) -> usize {
        let mut dropped = 0;
        let mut i = self.protected();
        while self.bytes() + incoming > max_bytes && i < self.frames.len() {
            if self.frames[i].control {
                i += 1;
                continue;
            }
            let q = self.frames.remove(i).expect("index checked");
            self.bytes -= q.frame.len();
            dropped += 1;
        }
        dropped
    }

    /// Drop every data frame not yet started (the connection is being closed as a slow
    /// consumer); returns how many.
    pub fn drop_unstarted_data(&mut self) -> usize {
        let before = self.frames.len();
        let protected = self.protected();
        let mut index = 0;
        let mut freed = 0;
        self.frames.retain(|q| {
            let keep = q.control || index < protected;
            index += 1;
            if !keep {
                freed += q.frame.len();
            }
            keep
        });
        self.bytes -= freed;
        before - self.frames.len()
    }

    /// Drop everything queued (the connection is gone); returns the data frames dropped.
    pub fn clear(&mut self) -> usize {
        let data = self.frames.iter().filter(|q| !q.control).count();
        self.frames = VecDeque::new();
        self.head_written = 0;
        self.bytes = 0;
        self.in_flight = 0;
        data
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
        q.push_data(frame(b"abcd"));
        q.push_data(frame(b"ef"));
        assert_eq!(q.bytes(), 6);
        assert_eq!(q.advance(3).frames, 0);
        assert_eq!(q.pending().collect::<Vec<_>>(), vec![&b"d"[..], &b"ef"[..]]);
        assert_eq!(q.bytes(), 3);
        assert_eq!(q.advance(2).frames, 1);
        assert_eq!(q.pending().collect::<Vec<_>>(), vec![&b"f"[..]]);
        assert_eq!(q.advance(1).frames, 1);
        assert!(q.is_empty());
        assert_eq!(q.bytes(), 0);
    }

    #[test]
    fn drop_oldest_spares_the_partly_written_front_and_control_frames() {
        let mut q = OutQueue::default();
        q.push_data(frame(b"1111"));
        q.push_control(frame(b"pp"));
        q.push_data(frame(b"2222"));
        q.push_data(frame(b"3333"));
        q.advance(1); // front partly written
        assert_eq!(q.bytes(), 13);
        // Room for 4 more under 13: drop "2222" (the control frame stays).
        assert_eq!(q.drop_oldest(4, 13), 1);
        let left: Vec<_> = q.pending().collect();
        assert_eq!(left, vec![&b"111"[..], &b"pp"[..], &b"3333"[..]]);
        // Nothing droppable is left but "3333".
        assert_eq!(q.drop_oldest(100, 10), 1);
        assert_eq!(
            q.pending().collect::<Vec<_>>(),
            vec![&b"111"[..], &b"pp"[..]]
        );
    }

    #[test]
    fn frames_in_flight_are_never_dropped() {
        let mut q = OutQueue::default();
        for b in [b"aaaa", b"bbbb", b"cccc"] {
            q.push_data(frame(b));
        }
        q.set_in_flight(2);
        assert_eq!(q.drop_oldest(4, 4), 1, "only the frame not in flight goes");
        assert_eq!(q.drop_unstarted_data(), 0);
        assert_eq!(q.advance(8).frames, 2);
        q.set_in_flight(0);
        assert!(q.is_empty());
    }

    #[test]
    fn drop_unstarted_keeps_control_and_the_started_front() {
        let mut q = OutQueue::default();
        q.push_data(frame(b"aaaa"));
        q.push_data(frame(b"bbbb"));
        q.push_control(frame(b"cc"));
        q.advance(2);
        assert_eq!(q.drop_unstarted_data(), 1);
        assert_eq!(
            q.pending().collect::<Vec<_>>(),
            vec![&b"aa"[..], &b"cc"[..]]
        );
        assert_eq!(q.bytes(), 4);
    }
}

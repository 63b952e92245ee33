//! A connection's outbound queue: prepared frames waiting to be written, with the
//! slow-consumer policy applied at enqueue time.
//!
//! Frames are shard-local handles ([`LocalFrame`]: an `Rc` of a [`PreparedFrame`]), so
//! queueing a broadcast to 10k connections copies no payload and takes no atomic
//! reference per member: the shard wraps each form of a publication once (one atomic
//! increment of the shared bytes per shard) and every member's queue holds a non-atomic
//! `Rc` clone of that (measured in issue 15: the atomic `Bytes` clone and drop per
//! member were 6–7 % of server CPU at 10k × 64 B × 16 in flight). A frame queued for
//! one connection only (control frames, `Context::send`, replays) costs one `Rc`
//! allocation. `Rc` keeps a queue, and so a connection, on the shard that built it:
//! connections never move between shards (a session hand-over moves the socket, not
//! the connection).
//!
//! The front frame may be partly written (`head_written`); it is popped only once the
//! kernel has taken all of it, which also keeps its bytes alive for an io_uring send in
//! flight, and it is never dropped by `drop-oldest`. Control frames (pong, close) are never dropped. An idle connection
//! holds no queue memory (see [`OutQueue::advance`] and [`OutQueue::shrink_idle`]).
//!
//! Control frames a peer can make us queue are bounded here, whatever the peer does:
//! at most [`MAX_UNSENT_PONGS`] unsent pongs (past that, [`OutQueue::push_pong`]
//! replaces the payload of the newest pong not yet started, as RFC 6455 §5.5.3 allows:
//! only the latest ping needs an answer) plus at most one already started or in
//! flight, and at most one unsent heartbeat ping
//! ([`OutQueue::ping_pending`]). [`OutQueue::bytes`] counts control frames too, so they
//! count toward the cap the connection's read-side backpressure uses.

use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Instant;

use crate::wire::PreparedFrame;

/// A queued frame: a shard-local, non-atomic handle to shared wire bytes. Any
/// [`PreparedFrame`] converts into one (`Rc::new`, one allocation); a fan-out wraps a
/// publication's form once per shard and clones the `Rc` per member.
pub type LocalFrame = Rc<PreparedFrame>;

/// Unsent pongs queued before a new ping's pong replaces the newest one instead of
/// queueing: every ping of a burst is answered (Autobahn 2.10 sends 10 at once and
/// expects 10 pongs), while a flood of pings costs a bounded queue.
pub const MAX_UNSENT_PONGS: usize = 16;

/// What a queued frame is, for the policies that treat kinds differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A data frame: subject to the slow-consumer policy.
    Data,
    /// A pong (RFC 6455 §5.5.3): never dropped, but a pending one may be replaced.
    Pong,
    /// Our heartbeat ping: never dropped; one unsent at a time.
    Ping,
    /// Any other control frame or an HTTP response (close, 101, 4xx): never dropped.
    Control,
}

#[derive(Debug)]
struct Queued {
    frame: LocalFrame,
    kind: Kind,
}

impl Queued {
    fn control(&self) -> bool {
        self.kind != Kind::Data
    }
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
    /// Index of the last pong queued, while it is queued (it may have been started).
    pong_at: Option<usize>,
    /// Pongs queued and not yet fully written.
    pongs: usize,
    /// Heartbeat pings queued and not yet fully written.
    pings: usize,
}

impl OutQueue {
    /// Queue a data frame (subject to slow-consumer drops).
    pub fn push_data(&mut self, frame: impl Into<LocalFrame>) {
        self.push(frame.into(), Kind::Data);
    }

    /// Queue a control frame or handshake response (never dropped).
    pub fn push_control(&mut self, frame: PreparedFrame) {
        self.push(Rc::new(frame), Kind::Control);
    }

    /// Queue our heartbeat ping (never dropped); see [`OutQueue::ping_pending`].
    pub fn push_ping(&mut self, frame: PreparedFrame) {
        self.pings += 1;
        self.push(Rc::new(frame), Kind::Ping);
    }

    /// True while a ping we queued has not been fully written.
    pub fn ping_pending(&self) -> bool {
        self.pings > 0
    }

    /// Queue a pong (never dropped). With [`MAX_UNSENT_PONGS`] already unsent, the
    /// newest of them, if not yet started (neither partly written nor in an io_uring
    /// send in flight), gets this one's payload in place instead, so however fast a
    /// peer's pings come, its pongs stay bounded (RFC 6455 §5.5.3: answering only the
    /// latest ping is allowed). Returns true when it replaced one.
    pub fn push_pong(&mut self, frame: PreparedFrame) -> bool {
        if self.pongs >= MAX_UNSENT_PONGS {
            if let Some(i) = self.pong_at.filter(|&i| i >= self.protected()) {
                let old = std::mem::replace(&mut self.frames[i].frame, Rc::new(frame));
                self.bytes = self.bytes - old.len() + self.frames[i].frame.len();
                return true;
            }
        }
        self.pong_at = Some(self.frames.len());
        self.pongs += 1;
        self.push(Rc::new(frame), Kind::Pong);
        false
    }

    fn push(&mut self, frame: LocalFrame, kind: Kind) {
        self.bytes += frame.len();
        self.frames.push_back(Queued { frame, kind });
    }

    /// Forget the frame at `index` (it was popped or removed): shift the pong's index.
    fn removed(&mut self, index: usize, kind: Kind) {
        match kind {
            Kind::Pong => {
                self.pongs -= 1;
                if self.pong_at == Some(index) {
                    self.pong_at = None;
                }
            }
            Kind::Ping => self.pings -= 1,
            _ => {}
        }
        if let Some(at) = self.pong_at.as_mut().filter(|at| **at > index) {
            *at -= 1;
        }
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
    pub fn pending_frames(&self) -> impl Iterator<Item = (&LocalFrame, usize)> {
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
            self.removed(0, q.kind);
            self.in_flight = self.in_flight.saturating_sub(1);
            if !q.control() {
                done.frames += 1;
                if done.oldest_publish.is_none() {
                    done.oldest_publish = q.frame.published_at();
                }
            }
        }
        // A queue that went out whole gives its memory back at once: a connection
        // holds no queue memory between sends (one small allocation per send that
        // empties it; measured no slower at 10k × 16 in flight, see scripts/ab.sh).
        if self.frames.is_empty() {
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
            if self.frames[i].control() {
                i += 1;
                continue;
            }
            let q = self.frames.remove(i).expect("index checked");
            self.removed(i, q.kind);
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
            let keep = q.control() || index < protected;
            index += 1;
            if !keep {
                freed += q.frame.len();
            }
            keep
        });
        self.bytes -= freed;
        // Only data frames went (the pong's index is found again; pings were all kept).
        self.pong_at = self.frames.iter().rposition(|q| q.kind == Kind::Pong);
        before - self.frames.len()
    }

    /// Drop everything queued (the connection is gone); returns the data frames dropped.
    pub fn clear(&mut self) -> usize {
        let data = self.frames.iter().filter(|q| !q.control()).count();
        self.frames = VecDeque::new();
        self.head_written = 0;
        self.bytes = 0;
        self.in_flight = 0;
        self.pong_at = None;
        self.pongs = 0;
        self.pings = 0;
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
    fn a_queue_entry_is_two_words() {
        // One `Rc` pointer and the kind: 16 bytes per queued frame per member (a
        // `PreparedFrame` by value made it 56).
        assert_eq!(std::mem::size_of::<Queued>(), 16);
        assert_eq!(std::mem::size_of::<PreparedFrame>() + 8, 56);
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

    fn pong(p: u8) -> PreparedFrame {
        frame(&[0x8A, 1, p])
    }

    /// Queue `MAX_UNSENT_PONGS` pongs numbered from `first` (none replaced).
    fn fill_pongs(q: &mut OutQueue, first: u8) {
        for p in first..first + MAX_UNSENT_PONGS as u8 {
            assert!(!q.push_pong(pong(p)), "pong {p} is queued");
        }
    }

    #[test]
    fn a_burst_of_pings_is_answered_in_full_then_the_newest_pong_is_replaced() {
        let mut q = OutQueue::default();
        q.push_data(frame(b"dddd"));
        fill_pongs(&mut q, 0);
        q.push_data(frame(b"ee"));
        for p in 100..200 {
            assert!(
                q.push_pong(pong(p)),
                "pong {p} replaces the newest pending one"
            );
        }
        assert_eq!(q.len(), 2 + MAX_UNSENT_PONGS);
        assert_eq!(q.bytes(), 4 + 3 * MAX_UNSENT_PONGS + 2);
        let left: Vec<_> = q.pending().collect();
        assert_eq!(
            left[MAX_UNSENT_PONGS - 1],
            &[0x8A, 1, (MAX_UNSENT_PONGS - 2) as u8][..]
        );
        assert_eq!(
            left[MAX_UNSENT_PONGS],
            &[0x8A, 1, 199][..],
            "the latest ping is answered"
        );
        // Popping the front shifts the pong's index; it is still found and replaced.
        q.advance(4);
        assert!(q.push_pong(pong(200)));
        // Once one is written, the next pong is queued anew.
        q.advance(3);
        assert!(!q.push_pong(pong(201)));
        assert_eq!(q.len(), MAX_UNSENT_PONGS + 1, "the pongs and \"ee\"");
    }

    #[test]
    fn a_started_or_in_flight_pong_is_never_replaced() {
        let mut q = OutQueue::default();
        fill_pongs(&mut q, 0);
        q.set_in_flight(MAX_UNSENT_PONGS); // every pong is in an io_uring send
        assert!(!q.push_pong(pong(100)), "one more queues behind them");
        assert!(q.push_pong(pong(101)), "which is pending and replaceable");
        assert_eq!(
            q.len(),
            MAX_UNSENT_PONGS + 1,
            "the in-flight ones plus one pending"
        );
        q.set_in_flight(0);
        let mut q = OutQueue::default();
        fill_pongs(&mut q, 0);
        q.advance(3 * (MAX_UNSENT_PONGS - 1) + 1); // all written but the last, which is started
        assert!(!q.push_pong(pong(102)), "a started pong is not replaced");
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn drops_keep_track_of_the_pending_pong_and_pings() {
        let mut q = OutQueue::default();
        q.push_data(frame(b"aaaa"));
        q.push_data(frame(b"bbbb"));
        q.push_ping(frame(&[0x89, 0]));
        fill_pongs(&mut q, 0);
        assert!(q.ping_pending());
        assert_eq!(q.drop_oldest(0, 5), 2, "both data frames go");
        assert!(
            q.push_pong(pong(100)),
            "the pong's index followed the removal"
        );
        q.push_data(frame(b"cc"));
        assert_eq!(q.drop_unstarted_data(), 1);
        assert!(q.push_pong(pong(101)));
        assert_eq!(q.advance(2 + 3 * MAX_UNSENT_PONGS).frames, 0);
        assert!(!q.ping_pending());
        assert!(q.is_empty());
        q.push_ping(frame(&[0x89, 0]));
        q.clear();
        assert!(!q.ping_pending() && !q.push_pong(pong(4)));
    }
}

//! Send batches: everything queued for one connection, gathered for one `sendmsg`.
//!
//! Measured on this machine (the project's design notes, §5, kept outside this
//! repository; with few sockets — `ringcast-load floor` measures the same with N): 16
//! small frames copied into one buffer and sent once cost 0.21 µs per frame, a 16-piece
//! `writev` 0.26 µs, 16 separate sends 3.4 µs each. So frames up to [`COPY_MAX`] bytes
//! are copied into the batch's own buffer (adjacent copies merge into one iovec) and
//! larger ones are referenced in place (the batch holds the queue's handle so the bytes
//! outlive an io_uring send in flight).
//! A lone frame is always referenced: copying it would buy nothing.

use crate::conn::{LocalFrame, OutQueue};

/// Frames up to this many bytes are copied into the batch buffer.
pub const COPY_MAX: usize = 1024;
/// Most iovecs in one send (well below IOV_MAX = 1024).
pub const MAX_IOV: usize = 64;
/// Most bytes gathered into one send; the rest goes in the next one.
pub const MAX_BATCH_BYTES: usize = 256 * 1024;
/// A pooled batch whose copy buffer grew beyond this is shrunk on return.
const KEEP_COPY_CAPACITY: usize = 64 * 1024;

enum Segment {
    Copied {
        start: usize,
        len: usize,
    },
    /// The queue's own (shard-local) handle: no atomic reference per send.
    Held {
        frame: LocalFrame,
        offset: usize,
    },
}

/// One gathered send: iovecs plus the memory they point into.
pub struct SendBatch {
    copy: Vec<u8>,
    segments: Vec<Segment>,
    iov: Vec<libc::iovec>,
    header: libc::msghdr,
    len: usize,
    frames: usize,
}

impl Default for SendBatch {
    fn default() -> Self {
        SendBatch {
            copy: Vec::new(),
            segments: Vec::new(),
            iov: Vec::new(),
            // SAFETY: msghdr is a plain C struct for which all-zero is a valid empty value.
            header: unsafe { std::mem::zeroed() },
            len: 0,
            frames: 0,
        }
    }
}

impl SendBatch {
    /// Gather from the front of `queue`. Returns the number of bytes gathered.
    pub fn fill(&mut self, queue: &OutQueue) -> usize {
        self.clear();
        let lone = queue.len() == 1;
        for (frame, offset) in queue.pending_frames() {
            let bytes = &frame.bytes()[offset..];
            if self.segments.len() >= MAX_IOV
                || (self.len > 0 && self.len + bytes.len() > MAX_BATCH_BYTES)
            {
                break;
            }
            if !lone && bytes.len() <= COPY_MAX {
                let start = self.copy.len();
                self.copy.extend_from_slice(bytes);
                match self.segments.last_mut() {
                    Some(Segment::Copied { len, .. }) => *len += bytes.len(),
                    _ => self.segments.push(Segment::Copied {
                        start,
                        len: bytes.len(),
                    }),
                }
            } else {
                self.segments.push(Segment::Held {
                    frame: frame.clone(),
                    offset,
                });
            }
            self.len += bytes.len();
            self.frames += 1;
        }
        self.build_iov();
        self.len
    }

    fn build_iov(&mut self) {
        self.iov.clear();
        for seg in &self.segments {
            let (ptr, len) = match seg {
                Segment::Copied { start, len } => (self.copy[*start..].as_ptr(), *len),
                Segment::Held { frame, offset } => {
                    (frame.bytes()[*offset..].as_ptr(), frame.len() - offset)
                }
            };
            self.iov.push(libc::iovec {
                iov_base: ptr as *mut libc::c_void,
                iov_len: len,
            });
        }
        self.header.msg_iov = self.iov.as_mut_ptr();
        self.header.msg_iovlen = self.iov.len() as _;
    }

    /// Bytes gathered.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queued frames (from the front) this batch covers.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Number of iovecs.
    pub fn iov_count(&self) -> usize {
        self.iov.len()
    }

    /// The only piece, when the batch is one contiguous buffer (at most 4 GiB).
    pub fn single(&self) -> Option<(*const u8, usize)> {
        match self.iov.as_slice() {
            [one] if one.iov_len <= u32::MAX as usize => {
                Some((one.iov_base as *const u8, one.iov_len))
            }
            _ => None,
        }
    }

    /// The message header for `sendmsg`; valid while `self` is neither moved nor refilled.
    pub fn msghdr(&self) -> *const libc::msghdr {
        &self.header
    }

    /// Drop frame handles and reset; keeps (bounded) buffer capacity for reuse.
    pub fn clear(&mut self) {
        self.segments.clear();
        self.iov.clear();
        self.copy.clear();
        if self.copy.capacity() > KEEP_COPY_CAPACITY {
            self.copy = Vec::new();
        }
        self.header.msg_iov = std::ptr::null_mut();
        self.header.msg_iovlen = 0;
        self.len = 0;
        self.frames = 0;
    }

    /// The gathered bytes, concatenated (for tests).
    #[cfg(test)]
    fn contents(&self) -> Vec<u8> {
        self.iov
            .iter()
            .flat_map(|v| {
                // SAFETY: every iovec points into `self.copy` or a held frame, both alive.
                unsafe { std::slice::from_raw_parts(v.iov_base as *const u8, v.iov_len) }
            })
            .copied()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::PreparedFrame;

    fn queue(sizes: &[usize]) -> OutQueue {
        let mut q = OutQueue::default();
        for (i, n) in sizes.iter().enumerate() {
            q.push_data(PreparedFrame::from_wire(vec![i as u8; *n]));
        }
        q
    }

    #[test]
    fn small_frames_are_copied_into_one_iovec() {
        let q = queue(&[66; 16]);
        let mut b = SendBatch::default();
        assert_eq!(b.fill(&q), 16 * 66);
        assert_eq!(b.iov_count(), 1);
        let expected: Vec<u8> = q.pending().flatten().copied().collect();
        assert_eq!(b.contents(), expected);
    }

    #[test]
    fn large_frames_are_referenced_not_copied() {
        let q = queue(&[10, 5000, 10, 10]);
        let mut b = SendBatch::default();
        b.fill(&q);
        assert_eq!(b.iov_count(), 3, "copy | held | copy");
        let (frame, _) = q.pending_frames().nth(1).unwrap();
        assert_eq!(b.iov[1].iov_base as *const u8, frame.bytes().as_ptr());
        assert_eq!(b.copy.len(), 30);
    }

    #[test]
    fn a_lone_frame_is_referenced_and_a_partial_front_is_respected() {
        let mut q = queue(&[100]);
        q.advance(40);
        let mut b = SendBatch::default();
        assert_eq!(b.fill(&q), 60);
        assert_eq!(b.copy.len(), 0);
        assert_eq!(b.contents(), vec![0u8; 60]);
    }

    #[test]
    fn batch_size_is_bounded() {
        let q = queue(&[100_000; 5]);
        let mut b = SendBatch::default();
        assert_eq!(b.fill(&q), 200_000);
        let q = queue(&[1; 200]);
        b.fill(&q);
        assert_eq!(b.len(), 200, "copied frames share iovecs, so 200 fit");
    }
}

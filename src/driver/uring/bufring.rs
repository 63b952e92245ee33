//! A provided buffer ring: the shard's receive buffers, shared by all its connections.
//!
//! Multishot recv picks a buffer from this ring only when data arrives, so an idle
//! connection holds no read buffer at all. The driver hands a buffer's bytes to the
//! shard and puts the buffer back ([`BufRing::recycle`]) in the same loop iteration;
//! [`BufRing::commit`] publishes all returned buffers with one tail store.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::IoUring;

const PAGE: usize = 4096;

pub struct BufRing {
    ring: *mut BufRingEntry,
    layout: Layout,
    entries: u16,
    buf_size: usize,
    bufs: Vec<u8>,
    tail: u16,
    bgid: u16,
}

impl BufRing {
    /// Allocate `entries` buffers of `buf_size` bytes and register them as group `bgid`.
    pub fn register(ring: &IoUring, entries: u16, buf_size: usize, bgid: u16) -> io::Result<Self> {
        assert!(entries.is_power_of_two());
        let layout = Layout::from_size_align(
            usize::from(entries) * std::mem::size_of::<BufRingEntry>(),
            PAGE,
        )
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // SAFETY: layout has a non-zero size (entries >= 1).
        let ptr = unsafe { alloc_zeroed(layout) } as *mut BufRingEntry;
        if ptr.is_null() {
            return Err(io::Error::from(io::ErrorKind::OutOfMemory));
        }
        let mut this = BufRing {
            ring: ptr,
            layout,
            entries,
            buf_size,
            // Filled with a non-zero byte so every page is committed now: the ring's
            // memory is a fixed cost of the shard, visible in RSS from the start, and
            // the receive path never takes a page fault.
            bufs: vec![0xA5; usize::from(entries) * buf_size],
            tail: 0,
            bgid,
        };
        // SAFETY: the ring memory is page-aligned, sized for `entries`, and lives until
        // `Drop`, which runs after the buffer group is unregistered (see the driver).
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(ptr as u64, entries, bgid, 0)?;
        }
        for bid in 0..entries {
            this.recycle(bid);
        }
        this.commit();
        Ok(this)
    }

    pub fn group(&self) -> u16 {
        self.bgid
    }

    /// The first `len` bytes of buffer `bid`.
    pub fn slice(&self, bid: u16, len: usize) -> &[u8] {
        let start = usize::from(bid) * self.buf_size;
        &self.bufs[start..start + len.min(self.buf_size)]
    }

    /// Put buffer `bid` back (visible to the kernel after [`BufRing::commit`]).
    pub fn recycle(&mut self, bid: u16) {
        let index = usize::from(self.tail & (self.entries - 1));
        let addr = self.bufs[usize::from(bid) * self.buf_size..].as_ptr() as u64;
        // SAFETY: index < entries, so the entry is inside the ring allocation; the kernel
        // only reads entries between its head and our published tail, and this slot is
        // past the published tail.
        let entry = unsafe { &mut *self.ring.add(index) };
        entry.set_addr(addr);
        entry.set_len(self.buf_size as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Publish recycled buffers to the kernel.
    pub fn commit(&self) {
        // SAFETY: `ring` is the ring's first entry; its `resv` field is the shared tail,
        // which the kernel reads; a Release store orders the entry writes before it.
        unsafe {
            let tail = BufRingEntry::tail(self.ring) as *const AtomicU16;
            (*tail).store(self.tail, Ordering::Release);
        }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `register` with this layout; the kernel no longer uses it
        // (the group is unregistered or the ring is gone).
        unsafe { dealloc(self.ring as *mut u8, self.layout) };
    }
}

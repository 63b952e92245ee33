//! The write side of a shard, as the driver asks for it: which connections have
//! output ([`Shard::take_dirty`]), what the kernel took ([`Shard::on_written`], with
//! the `frames_sent` and publish-to-write metrics), io_uring's frames in flight, and
//! what follows once a queue is empty ([`Shard::after_flush`]: shut down the write
//! side, or close).

use std::time::Instant;

use crate::conn::{AfterFlush, Timer};
use crate::wire::ConnKey;

use super::Shard;

impl Shard {
    /// Connections with output to write (each listed once). Called once per loop
    /// iteration, it also reports the compressions this shard's thread ran since.
    pub fn take_dirty(&mut self, out: &mut Vec<ConnKey>) {
        let compressed = crate::wire::take_thread_compressions();
        if compressed > 0 {
            self.state
                .metrics()
                .deflate_compressed(self.state.id, compressed);
        }
        out.clear();
        std::mem::swap(out, &mut self.state.dirty);
        for &key in out.iter() {
            if let Some(slot) = self.state.slots.get_mut(key) {
                slot.dirty = false;
            }
        }
    }

    /// The kernel accepted `n` bytes of `key`'s queue.
    ///
    /// Runs once per completed write, from the driver's generic loop: `#[inline]` keeps
    /// it inlined there, as it was before the shard was split into files (callgrind,
    /// 1000 subscribers × 2000 publishes on io_uring: out of line, 22 more
    /// instructions per delivered frame, about 2 %).
    #[inline]
    pub fn on_written(&mut self, key: ConnKey, n: usize) {
        let Some(slot) = self.state.slots.get_mut(key) else {
            return;
        };
        let done = slot.conn.written(n);
        let metrics = &*self.state.shared.metrics;
        metrics.frames_sent(self.state.id, done.frames, n);
        metrics.frames_sent_on(self.state.id, slot.conn.transport(), done.frames);
        if let Some(published) = done.oldest_publish {
            metrics.publish_to_write(self.state.id, published.elapsed());
        }
    }

    /// io_uring: the first `frames` queued frames of `key` are in a send in flight.
    pub fn set_in_flight(&mut self, key: ConnKey, frames: usize) {
        if let Some(slot) = self.state.slots.get_mut(key) {
            slot.conn.set_in_flight(frames);
        }
    }

    /// The driver found `key`'s queue empty after writing: what next? With
    /// [`AfterFlush::Close`] the driver ends the connection with
    /// [`Shard::finish_flushed`] once its last bytes are out: at once, or for `wss://`
    /// after the `close_notify` it queues then.
    pub fn after_flush(&mut self, key: ConnKey, now: Instant) -> AfterFlush {
        let Some(slot) = self.state.slots.get_mut(key) else {
            return AfterFlush::Idle;
        };
        let next = slot.conn.after_flush();
        match next {
            AfterFlush::ShutdownWrite => {
                let timeout = self.config().timeouts.close;
                self.state.arm(key, timeout, Timer::Close, now);
            }
            AfterFlush::Close | AfterFlush::Idle => {}
        }
        next
    }
}

//! [`PublishTally`]: one publish's recipients, summed over the shards that deliver it,
//! so the publish is reported once (`MetricsCollector::publish_fanned_out`) with its
//! total, not once per shard with a part.
//!
//! Every [`super::Publication`] carries one. A publish that reaches only its own shard
//! does not use it (the shard reports at once). One that goes to other shards has its
//! number of parts (shard deliveries) set by the hub before the publication leaves the
//! publishing thread ([`PublishTally::set_parts`]); each part adds its recipients and
//! the part that brings the count of outstanding parts to zero gets the total. Cost:
//! two atomic operations per shard delivery, none per subscriber, no allocation of its
//! own (it lives in the publication's).

use std::sync::atomic::{AtomicUsize, Ordering};

/// Recipients of one publish, summed over its shard deliveries (its *parts*).
#[derive(Debug)]
pub struct PublishTally {
    /// Parts not yet added.
    outstanding: AtomicUsize,
    /// Recipients of the parts added so far.
    recipients: AtomicUsize,
}

impl PublishTally {
    /// A tally expecting `parts` deliveries (0: none will be added).
    pub fn new(parts: usize) -> Self {
        PublishTally {
            outstanding: AtomicUsize::new(parts),
            recipients: AtomicUsize::new(0),
        }
    }

    /// Expect `parts` deliveries. Call before the publication is shared with another
    /// thread (the channel send that shares it orders this store before every `add`).
    pub fn set_parts(&self, parts: usize) {
        self.outstanding.store(parts, Ordering::Relaxed);
    }

    /// Add one part's `recipients` (connections the frame was queued to on one shard).
    /// Returns the publish's total recipients when this was its last outstanding part,
    /// `None` otherwise. Each part must be added exactly once.
    pub fn add(&self, recipients: usize) -> Option<usize> {
        self.recipients.fetch_add(recipients, Ordering::AcqRel);
        // AcqRel: the last part's decrement sees every earlier part's addition.
        (self.outstanding.fetch_sub(1, Ordering::AcqRel) == 1)
            .then(|| self.recipients.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn the_last_part_gets_the_total_once() {
        let t = PublishTally::new(3);
        assert_eq!(t.add(4), None);
        assert_eq!(t.add(0), None);
        assert_eq!(t.add(6), Some(10));
    }

    #[test]
    fn parts_added_from_many_threads_complete_exactly_once() {
        const PARTS: usize = 8;
        for _ in 0..200 {
            let t = Arc::new(PublishTally::new(PARTS));
            let done: Vec<Option<usize>> = std::thread::scope(|s| {
                let handles: Vec<_> = (1..=PARTS)
                    .map(|i| {
                        let t = t.clone();
                        s.spawn(move || t.add(i))
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let totals: Vec<usize> = done.into_iter().flatten().collect();
            assert_eq!(totals, vec![PARTS * (PARTS + 1) / 2]);
        }
    }
}

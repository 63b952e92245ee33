//! The admission cap: connections held across all shards, reserved atomically.
//!
//! A slot is taken before the 101 is sent and given back when the connection ends,
//! however it ends (close, reset, timeout, shutdown) — unless its session detaches:
//! a detached session keeps the slot until it expires, or hands it to the connection
//! that resumes it (`shard/session`), so the cap bounds detached sessions too. Over the cap the upgrade is
//! answered with HTTP 503 and `Retry-After`.

use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug)]
pub struct Admission {
    max: usize,
    held: AtomicUsize,
}

impl Admission {
    /// `max == 0` means unlimited.
    pub fn new(max: usize) -> Self {
        Admission {
            max,
            held: AtomicUsize::new(0),
        }
    }

    pub fn is_limited(&self) -> bool {
        self.max > 0
    }

    /// Take a slot; false (and nothing taken) when the cap is reached.
    pub fn try_acquire(&self) -> bool {
        if self.max == 0 {
            return true;
        }
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held < self.max).then_some(held + 1)
            })
            .is_ok()
    }

    pub fn release(&self) {
        if self.max > 0 {
            self.held.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Slots held right now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_is_enforced_and_released() {
        let a = Admission::new(2);
        assert!(a.try_acquire() && a.try_acquire());
        assert!(!a.try_acquire());
        assert_eq!(a.held(), 2);
        a.release();
        assert!(a.try_acquire());
        let unlimited = Admission::new(0);
        assert!((0..1000).all(|_| unlimited.try_acquire()));
    }

    #[test]
    fn concurrent_acquires_never_exceed_the_cap() {
        let a = std::sync::Arc::new(Admission::new(100));
        let won: usize = (0..4)
            .map(|_| {
                let a = a.clone();
                std::thread::spawn(move || (0..1000).filter(|_| a.try_acquire()).count())
            })
            .map(|t| t.join().unwrap())
            .sum();
        assert_eq!(won, 100);
    }
}

//! How many messages this thread compressed for permessage-deflate (publication forms
//! and direct sends), for the metrics: a thread-local count the shard owning the thread
//! takes and reports ([`take_thread_compressions`]), so a shard is charged exactly for
//! the compressions it ran, with no shared counter on the hot path.

use std::cell::Cell;

thread_local! {
    static COMPRESSIONS: Cell<u64> = const { Cell::new(0) };
}

/// One compression ran on this thread.
pub(crate) fn count_compression() {
    COMPRESSIONS.with(|c| c.set(c.get() + 1));
}

/// Compressions run on this thread since the last call (resets the count).
pub fn take_thread_compressions() -> u64 {
    COMPRESSIONS.with(|c| c.replace(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_thread_and_resets() {
        take_thread_compressions();
        count_compression();
        count_compression();
        std::thread::spawn(count_compression).join().unwrap();
        assert_eq!(take_thread_compressions(), 2);
        assert_eq!(take_thread_compressions(), 0);
    }
}

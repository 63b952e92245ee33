//! Churn arithmetic (`--churn P`): the query a subscriber connects or resumes with, and
//! each thread's share of the subscribers closed per round.

/// Appends `kv` to `path`'s query (keeping any query already there).
pub fn with_query(path: &str, kv: &str) -> String {
    match path.find('?') {
        None => format!("{path}?{kv}"),
        Some(_) if path.ends_with('?') || path.ends_with('&') => format!("{path}{kv}"),
        Some(_) => format!("{path}&{kv}"),
    }
}

/// The path a churned subscriber resumes with: `--url`'s path + `since=<last>` (which
/// implies the sequence framing).
pub fn resume_path(base: &str, last: u64) -> String {
    with_query(base, &format!("since={last}"))
}

/// How many of the `k` subscribers churned per round thread `t` of `threads` takes in
/// round `tick`: `k` split as evenly as possible, the remainder rotating over the threads
/// so each of them churns its share over time.
pub fn churn_share(k: u64, threads: usize, t: usize, tick: u64) -> u64 {
    let n = threads.max(1) as u64;
    let r = (t as u64 % n + n - tick % n) % n;
    if r < k {
        (k - 1 - r) / n + 1
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_building_keeps_existing_query() {
        assert_eq!(with_query("/ws/bench", "seq=1"), "/ws/bench?seq=1");
        assert_eq!(with_query("/ws/bench?a=b", "seq=1"), "/ws/bench?a=b&seq=1");
        assert_eq!(with_query("/ws/bench?", "seq=1"), "/ws/bench?seq=1");
        assert_eq!(resume_path("/ws/bench", 42), "/ws/bench?since=42");
        assert_eq!(resume_path("/ws/b?x=1", 7), "/ws/b?x=1&since=7");
    }

    #[test]
    fn churn_shares_add_up_and_rotate() {
        for threads in 1..=5usize {
            for k in 0..=13u64 {
                for tick in 0..7u64 {
                    let sum: u64 = (0..threads).map(|t| churn_share(k, threads, t, tick)).sum();
                    assert_eq!(sum, k, "k {k} threads {threads} tick {tick}");
                    for t in 0..threads {
                        let v = churn_share(k, threads, t, tick);
                        assert!(v == k / threads as u64 || v == k / threads as u64 + 1);
                    }
                }
            }
        }
        // k = 1 over 3 threads: each thread gets its turn.
        let turns: Vec<u64> = (0..3).map(|tick| churn_share(1, 3, 1, tick)).collect();
        assert_eq!(turns.iter().sum::<u64>(), 1);
        let per_thread: Vec<u64> = (0..3)
            .map(|t| (0..3).map(|tick| churn_share(1, 3, t, tick)).sum())
            .collect();
        assert_eq!(per_thread, vec![1, 1, 1]);
    }
}

//! The broker's counters and its round-trip latency histogram: written by the shards
//! (publishes refused) and the broker thread, read by [`BrokerStats::snapshot`] (tests,
//! `RunningServer::broker_stats`) and the Prometheus exposition
//! ([`BrokerSnapshot::exposition`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Upper bounds (inclusive, microseconds) of the round-trip histogram: publish on this
/// node → back from Redis on this node.
pub const ROUND_TRIP_BOUNDS_US: [u64; 12] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 100_000, 500_000, 2_000_000,
];

/// Live counters (all monotonic but `up`).
#[derive(Debug, Default)]
pub struct BrokerStats {
    up: AtomicBool,
    published: AtomicU64,
    publish_failed: AtomicU64,
    received: AtomicU64,
    foreign_dropped: AtomicU64,
    duplicates_dropped: AtomicU64,
    reconnects: AtomicU64,
    subscribes: AtomicU64,
    unsubscribes: AtomicU64,
    recovered: AtomicU64,
    gap_announced: AtomicU64,
    epoch_resets: AtomicU64,
    rtt_buckets: [AtomicU64; ROUND_TRIP_BOUNDS_US.len() + 1],
    rtt_sum_ns: AtomicU64,
    last_failure_log: Mutex<Option<Instant>>,
    failures_unlogged: AtomicU64,
}

/// A copy of [`BrokerStats`] at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokerSnapshot {
    /// Connected to Redis (publish and subscribe connections up).
    pub up: bool,
    /// Publishes sent to Redis and acknowledged (one command each).
    pub published: u64,
    /// Publishes that failed: Redis down or erroring, or the queue to the broker
    /// thread full.
    pub publish_failed: u64,
    /// Publications received from Redis and delivered to this node's shards.
    pub received: u64,
    /// Messages on a room channel that ringcast did not write (bad magic, truncated,
    /// malformed): dropped.
    pub foreign_dropped: u64,
    /// Numbered messages already delivered (seen again after a stream fetch): dropped.
    pub duplicates_dropped: u64,
    /// Connections to Redis re-established after a loss.
    pub reconnects: u64,
    /// Room channels subscribed / unsubscribed (SUBSCRIBE / UNSUBSCRIBE arguments).
    pub subscribes: u64,
    pub unsubscribes: u64,
    /// Numbered messages fetched from room streams after a reconnect.
    pub recovered: u64,
    /// Numbers missed while disconnected that the streams no longer held.
    pub gap_announced: u64,
    /// Rooms whose stream epoch changed (Redis lost their data): local history reset.
    pub epoch_resets: u64,
    /// Round trips per bucket of [`ROUND_TRIP_BOUNDS_US`] (last: above them).
    pub rtt_buckets: Vec<u64>,
    /// Sum of the round trips, nanoseconds.
    pub rtt_sum_ns: u64,
}

macro_rules! bump {
    ($($name:ident),*) => {$(
        #[doc = concat!("Add `n` to `", stringify!($name), "`.")]
        pub fn $name(&self, n: u64) {
            self.$name.fetch_add(n, Ordering::Relaxed);
        }
    )*};
}

impl BrokerStats {
    bump!(
        published,
        received,
        foreign_dropped,
        duplicates_dropped,
        reconnects,
        subscribes,
        unsubscribes,
        recovered,
        gap_announced,
        epoch_resets
    );

    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Relaxed);
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Count `n` failed publishes and log it, at most once a second (with how many
    /// failed since the last line).
    pub fn publish_failed(&self, n: u64, why: &str) {
        self.publish_failed.fetch_add(n, Ordering::Relaxed);
        let unlogged = self.failures_unlogged.fetch_add(n, Ordering::Relaxed) + n;
        let now = Instant::now();
        let mut last = self
            .last_failure_log
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1)) {
            *last = Some(now);
            self.failures_unlogged.store(0, Ordering::Relaxed);
            tracing::warn!(failed = unlogged, reason = why, "broker publishes failed");
        }
    }

    /// Record one round trip.
    pub fn round_trip(&self, d: Duration) {
        let us = d.as_micros() as u64;
        let i = ROUND_TRIP_BOUNDS_US.partition_point(|&b| b < us);
        self.rtt_buckets[i].fetch_add(1, Ordering::Relaxed);
        self.rtt_sum_ns
            .fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> BrokerSnapshot {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        BrokerSnapshot {
            up: self.is_up(),
            published: get(&self.published),
            publish_failed: get(&self.publish_failed),
            received: get(&self.received),
            foreign_dropped: get(&self.foreign_dropped),
            duplicates_dropped: get(&self.duplicates_dropped),
            reconnects: get(&self.reconnects),
            subscribes: get(&self.subscribes),
            unsubscribes: get(&self.unsubscribes),
            recovered: get(&self.recovered),
            gap_announced: get(&self.gap_announced),
            epoch_resets: get(&self.epoch_resets),
            rtt_buckets: self.rtt_buckets.iter().map(get).collect(),
            rtt_sum_ns: get(&self.rtt_sum_ns),
        }
    }
}

impl BrokerSnapshot {
    /// Round trips recorded.
    pub fn round_trips(&self) -> u64 {
        self.rtt_buckets.iter().sum()
    }

    /// The Prometheus text exposition of these numbers (metric names start with
    /// `prefix`, every sample carries `labels`, e.g. `node="a:9001"`).
    pub fn exposition(&self, prefix: &str, labels: &str) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let l = |extra: &str| match (labels.is_empty(), extra.is_empty()) {
            (true, true) => String::new(),
            (true, false) => format!("{{{extra}}}"),
            (false, true) => format!("{{{labels}}}"),
            (false, false) => format!("{{{labels},{extra}}}"),
        };
        let mut family = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {prefix}_{name} {help}");
            let _ = writeln!(out, "# TYPE {prefix}_{name} {kind}");
            let _ = writeln!(out, "{prefix}_{name}{} {value}", l(""));
        };
        family(
            "broker_up",
            "gauge",
            "1 while connected to the broker (Redis).",
            u64::from(self.up),
        );
        family(
            "broker_publishes_total",
            "counter",
            "Publishes sent to the broker.",
            self.published,
        );
        family(
            "broker_publish_failures_total",
            "counter",
            "Publishes that failed (broker down, erroring, or its queue full).",
            self.publish_failed,
        );
        family(
            "broker_received_total",
            "counter",
            "Publications received from the broker and delivered here.",
            self.received,
        );
        family(
            "broker_foreign_dropped_total",
            "counter",
            "Messages on a room channel not written by ringcast: dropped.",
            self.foreign_dropped,
        );
        family(
            "broker_reconnects_total",
            "counter",
            "Broker connections re-established after a loss.",
            self.reconnects,
        );
        family(
            "broker_recovered_total",
            "counter",
            "Numbered messages fetched from room streams after a reconnect.",
            self.recovered,
        );
        family(
            "broker_gap_announced_total",
            "counter",
            "Numbers missed while disconnected that the streams no longer held.",
            self.gap_announced,
        );
        let name = format!("{prefix}_broker_round_trip_seconds");
        let _ = writeln!(
            out,
            "# HELP {name} Publish on this node to its return from the broker."
        );
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, n) in self.rtt_buckets.iter().enumerate() {
            cumulative += n;
            let le = ROUND_TRIP_BOUNDS_US
                .get(i)
                .map_or("+Inf".to_owned(), |us| format!("{}", *us as f64 / 1e6));
            let _ = writeln!(
                out,
                "{name}_bucket{} {cumulative}",
                l(&format!("le=\"{le}\""))
            );
        }
        let _ = writeln!(out, "{name}_sum{} {}", l(""), self.rtt_sum_ns as f64 / 1e9);
        let _ = writeln!(out, "{name}_count{} {cumulative}", l(""));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_land_in_their_bucket_and_expose() {
        let s = BrokerStats::default();
        s.round_trip(Duration::from_micros(40));
        s.round_trip(Duration::from_micros(300));
        s.round_trip(Duration::from_secs(10));
        s.published(3);
        let snap = s.snapshot();
        assert_eq!(snap.rtt_buckets[0], 1);
        assert_eq!(snap.rtt_buckets[3], 1);
        assert_eq!(*snap.rtt_buckets.last().unwrap(), 1);
        let text = snap.exposition("ringcast", "node=\"a\"");
        assert!(text.contains("ringcast_broker_publishes_total{node=\"a\"} 3"));
        assert!(
            text.contains("ringcast_broker_round_trip_seconds_bucket{node=\"a\",le=\"+Inf\"} 3")
        );
    }
}

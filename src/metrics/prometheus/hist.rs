//! Fixed-bucket histograms: per shard, one cell per bucket (non-cumulative, the last
//! being `+Inf`) and the sum of observed values in a base unit; summed over shards into a
//! [`HistogramSnapshot`], written as cumulative `_bucket` samples, `_sum` and `_count`.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::exposition::{Exposition, Unit};
use super::kinds::{with, Metric};

/// The buckets of one histogram of the table.
pub(super) trait Buckets: 'static {
    /// Upper bounds (inclusive, strictly increasing) in the base unit.
    const BOUNDS: &'static [u64];
    /// How the base unit is exposed (`le` labels and `_sum`).
    const UNIT: Unit;
}

/// Index of the first bucket whose upper bound is `>= value` (`bounds.len()` = `+Inf`).
#[inline]
pub(super) fn bucket_index(bounds: &[u64], value: u64) -> usize {
    bounds.partition_point(|&b| b < value)
}

/// One shard's histogram over `B`'s buckets; `N == B::BOUNDS.len() + 1`.
pub(super) struct Histogram<B, const N: usize> {
    counts: [AtomicU64; N],
    sum: AtomicU64,
    buckets: PhantomData<B>,
}

impl<B: Buckets, const N: usize> Default for Histogram<B, N> {
    fn default() -> Self {
        const { assert!(N == B::BOUNDS.len() + 1) };
        Self {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum: AtomicU64::new(0),
            buckets: PhantomData,
        }
    }
}

impl<B: Buckets, const N: usize> Histogram<B, N> {
    /// Count `value` (in the base unit) in its bucket and add it to the sum.
    #[inline]
    pub(super) fn observe(&self, value: u64) {
        let i = bucket_index(B::BOUNDS, value).min(N - 1);
        self.counts[i].fetch_add(1, Relaxed);
        self.sum.fetch_add(value, Relaxed);
    }
}

impl<B: Buckets, const N: usize> Metric for Histogram<B, N> {
    type Total = HistogramSnapshot;
    type Summary = HistogramSnapshot;

    fn total<'a>(cells: impl Iterator<Item = &'a Self> + Clone) -> HistogramSnapshot {
        let mut counts = vec![0u64; N];
        let mut sum = 0u64;
        for h in cells {
            for (acc, c) in counts.iter_mut().zip(h.counts.iter()) {
                *acc = acc.wrapping_add(c.load(Relaxed));
            }
            sum = sum.wrapping_add(h.sum.load(Relaxed));
        }
        HistogramSnapshot {
            bounds: B::BOUNDS,
            counts,
            sum,
        }
    }

    fn expose(h: &HistogramSnapshot, e: &mut Exposition<'_>, name: &str, labels: &[(&str, &str)]) {
        let bucket = format!("{name}_bucket");
        for (i, c) in h.cumulative().into_iter().enumerate() {
            let le = match h.bounds.get(i) {
                Some(&b) => B::UNIT.fmt(b),
                None => "+Inf".to_owned(),
            };
            e.sample(&bucket, &with(labels, "le", &le), c);
        }
        e.sample(&format!("{name}_sum"), labels, B::UNIT.fmt(h.sum));
        e.sample(&format!("{name}_count"), labels, h.count());
    }

    fn summary(total: HistogramSnapshot) -> HistogramSnapshot {
        total
    }
}

/// A histogram summed over shards: `counts[i]` is the (non-cumulative) number of
/// observations in bucket `i` (`counts.len() == bounds.len() + 1`, the last being
/// `+Inf`), `sum` is in the histogram's base unit (nanoseconds, recipients or bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistogramSnapshot {
    pub bounds: &'static [u64],
    pub counts: Vec<u64>,
    pub sum: u64,
}

impl HistogramSnapshot {
    /// Total number of observations.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Cumulative counts, one per bucket (the last is `+Inf` and equals [`Self::count`]).
    pub fn cumulative(&self) -> Vec<u64> {
        self.counts
            .iter()
            .scan(0u64, |acc, &c| {
                *acc += c;
                Some(*acc)
            })
            .collect()
    }

    /// Observations since `earlier` (a snapshot of the same histogram taken before).
    pub fn since(&self, earlier: &HistogramSnapshot) -> HistogramSnapshot {
        HistogramSnapshot {
            bounds: self.bounds,
            counts: self
                .counts
                .iter()
                .zip(earlier.counts.iter().chain(std::iter::repeat(&0)))
                .map(|(a, b)| a.saturating_sub(*b))
                .collect(),
            sum: self.sum.saturating_sub(earlier.sum),
        }
    }

    /// Mean observation in base units, `None` when empty.
    pub fn mean(&self) -> Option<f64> {
        let n = self.count();
        (n > 0).then(|| self.sum as f64 / n as f64)
    }

    /// Estimated `q`-quantile (0..=1) in base units, interpolating linearly inside the
    /// bucket (as PromQL's `histogram_quantile` does); observations in `+Inf` report the
    /// largest finite bound. `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * n as f64;
        let mut below = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            if c > 0 && (below + c) as f64 >= rank {
                let Some(&upper) = self.bounds.get(i) else {
                    return self.bounds.last().map(|&b| b as f64);
                };
                let lower = if i == 0 { 0 } else { self.bounds[i - 1] };
                let frac = ((rank - below as f64) / c as f64).clamp(0.0, 1.0);
                return Some(lower as f64 + (upper - lower) as f64 * frac);
            }
            below += c;
        }
        self.bounds.last().map(|&b| b as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_bounds_are_inclusive() {
        let b = [0, 1, 5, 10];
        assert_eq!(bucket_index(&b, 0), 0);
        assert_eq!(bucket_index(&b, 1), 1);
        assert_eq!(bucket_index(&b, 2), 2);
        assert_eq!(bucket_index(&b, 5), 2);
        assert_eq!(bucket_index(&b, 6), 3);
        assert_eq!(bucket_index(&b, 10), 3);
        assert_eq!(bucket_index(&b, 11), 4); // +Inf
        assert_eq!(bucket_index(&b, u64::MAX), 4);
    }

    #[test]
    fn histogram_cumulative_count_sum() {
        struct Bounds;
        impl Buckets for Bounds {
            const BOUNDS: &'static [u64] = &[10, 20, 30, 40];
            const UNIT: Unit = Unit::Plain;
        }
        let h: Histogram<Bounds, 5> = Histogram::default();
        for v in [0, 10, 11, 40, 41, 1000] {
            h.observe(v);
        }
        let s = Histogram::total(std::iter::once(&h));
        assert_eq!(s.counts, vec![2, 1, 0, 1, 2]);
        assert_eq!(s.cumulative(), vec![2, 3, 3, 4, 6]);
        assert_eq!(s.count(), 6);
        assert_eq!(s.sum, 1102);
    }

    #[test]
    fn histogram_quantiles_and_deltas() {
        static B: [u64; 4] = [100, 200, 400, 800];
        let empty = HistogramSnapshot {
            bounds: &B,
            counts: vec![0; 5],
            sum: 0,
        };
        assert_eq!(empty.quantile(0.5), None);
        assert_eq!(empty.mean(), None);
        let h = HistogramSnapshot {
            bounds: &B,
            counts: vec![0, 4, 0, 0, 0],
            sum: 600,
        };
        // All four in (100, 200]: the median interpolates to the middle.
        assert_eq!(h.quantile(0.5), Some(150.0));
        assert_eq!(h.quantile(1.0), Some(200.0));
        assert_eq!(h.mean(), Some(150.0));
        let over = HistogramSnapshot {
            bounds: &B,
            counts: vec![1, 0, 0, 0, 3],
            sum: 10_000,
        };
        assert_eq!(over.quantile(0.99), Some(800.0)); // +Inf reports the top bound
        assert_eq!(over.quantile(0.1), Some(40.0));
        let d = over.since(&HistogramSnapshot {
            bounds: &B,
            counts: vec![1, 0, 0, 0, 1],
            sum: 2_000,
        });
        assert_eq!(d.counts, vec![0, 0, 0, 0, 2]);
        assert_eq!(d.sum, 8_000);
    }
}

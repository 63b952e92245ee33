//! The storage kinds of the metric table: how one metric is kept on one shard (plain
//! `AtomicU64`s, written with `Relaxed` `fetch_add`s on the calling shard's block),
//! summed over shards at scrape time, written as samples, and summarised in a
//! [`Snapshot`] field. Histograms are in `hist.rs`.
//!
//! [`Snapshot`]: super::Snapshot

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::exposition::Exposition;
use super::labels::Label;

/// One kind of stored metric.
pub(super) trait Metric: Default {
    /// The sum over shards, every label kept.
    type Total;
    /// What [`Snapshot`](super::Snapshot) holds of it.
    type Summary;
    /// Sum the cells of every shard (`Relaxed` loads; a cell may be read a few events
    /// apart from another under load).
    fn total<'a>(cells: impl Iterator<Item = &'a Self> + Clone) -> Self::Total
    where
        Self: 'a;
    /// The sample lines of `total`, each with `labels` before the kind's own label.
    fn expose(total: &Self::Total, e: &mut Exposition<'_>, name: &str, labels: &[(&str, &str)]);
    /// The snapshot's view of `total`.
    fn summary(total: Self::Total) -> Self::Summary;
}

fn sum<'a>(cells: impl Iterator<Item = &'a AtomicU64>) -> u64 {
    cells.fold(0u64, |acc, c| acc.wrapping_add(c.load(Relaxed)))
}

/// Sum `N` cells per shard, cell by cell.
fn sum_cells<'a, const N: usize>(shards: impl Iterator<Item = &'a [AtomicU64; N]>) -> [u64; N] {
    let mut out = [0u64; N];
    for cells in shards {
        for (acc, c) in out.iter_mut().zip(cells) {
            *acc = acc.wrapping_add(c.load(Relaxed));
        }
    }
    out
}

/// `labels` followed by `(name, value)`.
pub(super) fn with<'l>(
    labels: &[(&'l str, &'l str)],
    name: &'l str,
    value: &'l str,
) -> Vec<(&'l str, &'l str)> {
    let mut all = labels.to_vec();
    all.push((name, value));
    all
}

/// A counter: one sample, the sum over shards.
#[derive(Default)]
pub(super) struct Counter(AtomicU64);

impl Counter {
    /// Count one.
    #[inline]
    pub(super) fn inc(&self) {
        self.add(1);
    }

    /// Count `n`.
    #[inline]
    pub(super) fn add(&self, n: u64) {
        self.0.fetch_add(n, Relaxed);
    }

    /// This shard's count.
    #[inline]
    pub(super) fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

impl Metric for Counter {
    type Total = u64;
    type Summary = u64;

    fn total<'a>(cells: impl Iterator<Item = &'a Self> + Clone) -> u64 {
        sum(cells.map(|c| &c.0))
    }

    fn expose(total: &u64, e: &mut Exposition<'_>, name: &str, labels: &[(&str, &str)]) {
        e.sample(name, labels, total);
    }

    fn summary(total: u64) -> u64 {
        total
    }
}

/// A counter labelled by `L`: one cell per value (`N == L::ALL.len()`), one sample per
/// value (zeros included); the snapshot holds the sum over values.
pub(super) struct CounterBy<L, const N: usize> {
    cells: [AtomicU64; N],
    label: PhantomData<L>,
}

impl<L: Label, const N: usize> Default for CounterBy<L, N> {
    fn default() -> Self {
        const { assert!(N > 0 && N == L::ALL.len()) };
        Self {
            cells: std::array::from_fn(|_| AtomicU64::new(0)),
            label: PhantomData,
        }
    }
}

impl<L: Label, const N: usize> CounterBy<L, N> {
    /// Count one for `value`.
    #[inline]
    pub(super) fn inc(&self, value: L) {
        self.cells[value.index().min(N - 1)].fetch_add(1, Relaxed);
    }

    /// Count `n` for `value`.
    #[inline]
    pub(super) fn add(&self, value: L, n: u64) {
        self.cells[value.index().min(N - 1)].fetch_add(n, Relaxed);
    }

    /// This shard's count for `value`.
    #[inline]
    pub(super) fn get(&self, value: L) -> u64 {
        self.cells[value.index().min(N - 1)].load(Relaxed)
    }

    /// This shard's count over every value.
    #[inline]
    pub(super) fn get_all(&self) -> u64 {
        sum(self.cells.iter())
    }
}

impl<L: Label, const N: usize> Metric for CounterBy<L, N> {
    type Total = [u64; N];
    type Summary = u64;

    fn total<'a>(cells: impl Iterator<Item = &'a Self> + Clone) -> [u64; N] {
        sum_cells(cells.map(|c| &c.cells))
    }

    fn expose(total: &[u64; N], e: &mut Exposition<'_>, name: &str, labels: &[(&str, &str)]) {
        for (value, n) in L::ALL.iter().zip(total) {
            e.sample(name, &with(labels, L::NAME, value.as_str()), n);
        }
    }

    fn summary(total: [u64; N]) -> u64 {
        total.iter().fold(0u64, |acc, n| acc.wrapping_add(*n))
    }
}

/// Cells of [`CounterByStatus`]: index = HTTP status for 100..=599, 0 = anything else.
const N_STATUS: usize = 600;

/// A counter labelled by HTTP status (RFC 9110 §15: 100..=599, `other` for anything
/// else): only statuses seen are written, in numeric order, `other` last.
pub(super) struct CounterByStatus([AtomicU64; N_STATUS]);

impl Default for CounterByStatus {
    fn default() -> Self {
        Self(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl CounterByStatus {
    /// Count one for `status`.
    #[inline]
    pub(super) fn inc(&self, status: u16) {
        let i = usize::from(status);
        let i = if (100..N_STATUS).contains(&i) { i } else { 0 };
        self.0[i].fetch_add(1, Relaxed);
    }
}

impl Metric for CounterByStatus {
    type Total = [u64; N_STATUS];
    type Summary = u64;

    fn total<'a>(cells: impl Iterator<Item = &'a Self> + Clone) -> [u64; N_STATUS] {
        sum_cells(cells.map(|c| &c.0))
    }

    fn expose(
        total: &[u64; N_STATUS],
        e: &mut Exposition<'_>,
        name: &str,
        labels: &[(&str, &str)],
    ) {
        for (status, &n) in total.iter().enumerate().skip(100) {
            if n > 0 {
                e.sample(name, &with(labels, "status", &status.to_string()), n);
            }
        }
        if total[0] > 0 {
            e.sample(name, &with(labels, "status", "other"), total[0]);
        }
    }

    fn summary(total: [u64; N_STATUS]) -> u64 {
        total.iter().fold(0u64, |acc, n| acc.wrapping_add(*n))
    }
}

/// A gauge any shard may move up or down: kept as two counts per shard (ups, downs), so
/// a room opened on one shard and closed on another writes no shared cell. Its value is
/// ups − downs over every shard, clamped at 0; downs are read first, so a concurrent
/// up/down pair cannot make it look negative.
#[derive(Default)]
pub(super) struct Gauge {
    ups: AtomicU64,
    downs: AtomicU64,
}

impl Gauge {
    /// Move up by one.
    #[inline]
    pub(super) fn inc(&self) {
        self.ups.fetch_add(1, Relaxed);
    }

    /// Move down by one.
    #[inline]
    pub(super) fn dec(&self) {
        self.downs.fetch_add(1, Relaxed);
    }

    /// Set this cell's contribution to `level` (ups − downs = `level`). Only for a
    /// gauge whose cell one thread alone writes (a shard's own level).
    #[inline]
    pub(super) fn set_level(&self, level: u64) {
        let downs = self.downs.load(Relaxed);
        self.ups.store(downs.wrapping_add(level), Relaxed);
    }
}

impl Metric for Gauge {
    type Total = u64;
    type Summary = u64;

    fn total<'a>(cells: impl Iterator<Item = &'a Self> + Clone) -> u64 {
        let downs = sum(cells.clone().map(|c| &c.downs));
        sum(cells.map(|c| &c.ups)).saturating_sub(downs)
    }

    fn expose(total: &u64, e: &mut Exposition<'_>, name: &str, labels: &[(&str, &str)]) {
        e.sample(name, labels, total);
    }

    fn summary(total: u64) -> u64 {
        total
    }
}

/// Nothing stored: the family is computed at scrape time (a per-shard gauge from the
/// shard's other cells, or the build information).
#[derive(Default)]
pub(super) struct Derived;

/// The samples of a per-shard gauge: one per shard, labelled `shard="i"`.
pub(super) fn expose_per_shard(
    values: &[u64],
    e: &mut Exposition<'_>,
    name: &str,
    labels: &[(&str, &str)],
) {
    for (i, v) in values.iter().enumerate() {
        e.sample(name, &with(labels, "shard", &i.to_string()), v);
    }
}

/// The one sample of `build_info`: 1, labelled with the crate version and `backend`.
pub(super) fn expose_info(
    backend: &str,
    e: &mut Exposition<'_>,
    name: &str,
    labels: &[(&str, &str)],
) {
    let mut all = labels.to_vec();
    all.push(("version", env!("CARGO_PKG_VERSION")));
    all.push(("backend", backend));
    e.sample(name, &all, 1);
}

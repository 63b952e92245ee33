//! The built-in Prometheus collector.
//!
//! [`PrometheusCollector`] keeps one cache-padded block of `AtomicU64` counters and
//! fixed-bucket histograms per shard. A hook does `Relaxed` `fetch_add`s on the calling
//! shard's block only, so no cache line is written by two shards on the hot path. A scrape
//! ([`PrometheusCollector::render`]) sums the blocks and writes the Prometheus text
//! exposition format (version 0.0.4); [`PrometheusCollector::snapshot`] returns the same
//! totals as a plain struct for the dashboard and for tests.
//!
//! Metric names are `{prefix}_{name}`; constant labels (`--metrics-label k=v`) appear on
//! every sample, before the metric's own labels. Every metric is a process total: facts
//! about a room or a publish are counted once by one shard (see the hooks' docs in
//! [`MetricsCollector`]), so summing the blocks never counts them once per shard. Durations are kept in nanoseconds and
//! exposed in seconds with exact decimal formatting.

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

use super::collector::{DisconnectReason, DropReason, InputThrottle, MetricsCollector};

/// Upper bounds (inclusive, nanoseconds) of `connection_duration_seconds`.
pub const CONNECTION_DURATION_BOUNDS_NS: [u64; 14] = [
    100_000_000,
    500_000_000,
    1_000_000_000,
    5_000_000_000,
    10_000_000_000,
    30_000_000_000,
    60_000_000_000,
    300_000_000_000,
    900_000_000_000,
    1_800_000_000_000,
    3_600_000_000_000,
    7_200_000_000_000,
    21_600_000_000_000,
    86_400_000_000_000,
];

/// Upper bounds (inclusive, recipients of one publish over all shards) of `broadcast_fanout`.
pub const FANOUT_BOUNDS: [u64; 17] = [
    0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000,
];

/// Upper bounds (inclusive, bytes) of `send_queue_bytes`.
pub const SEND_QUEUE_BOUNDS: [u64; 10] = [
    128, 512, 1_024, 4_096, 16_384, 65_536, 262_144, 1_048_576, 4_194_304, 16_777_216,
];

/// Upper bounds (inclusive, nanoseconds) of `publish_to_write_seconds`.
pub const PUBLISH_TO_WRITE_BOUNDS_NS: [u64; 17] = [
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
];

const N_DISCONNECT: usize = DisconnectReason::ALL.len();
const N_DROP: usize = DropReason::ALL.len();
/// `handshake_rejected_total` slots: index = HTTP status for 100..=599, 0 = anything else.
const N_STATUS: usize = 600;

/// Label names the collector uses itself (plus every name starting with `__`): a
/// constant label may not take them.
pub const RESERVED_LABELS: [&str; 8] = [
    "shard", "reason", "status", "le", "quantile", "version", "backend", "result",
];

fn zeros<const N: usize>() -> [AtomicU64; N] {
    std::array::from_fn(|_| AtomicU64::new(0))
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A fixed-bucket histogram on one shard: per-bucket (non-cumulative) counts, the last
/// slot being the `+Inf` overflow, and the sum of observed values in base units.
struct Hist<const N: usize> {
    counts: [AtomicU64; N],
    sum: AtomicU64,
}

impl<const N: usize> Hist<N> {
    fn new() -> Self {
        Self {
            counts: zeros(),
            sum: AtomicU64::new(0),
        }
    }

    #[inline]
    fn observe(&self, bounds: &[u64], value: u64) {
        debug_assert_eq!(bounds.len() + 1, N);
        let i = bucket_index(bounds, value).min(N - 1);
        self.counts[i].fetch_add(1, Relaxed);
        self.sum.fetch_add(value, Relaxed);
    }
}

/// Index of the first bucket whose upper bound is `>= value` (`bounds.len()` = `+Inf`).
#[inline]
fn bucket_index(bounds: &[u64], value: u64) -> usize {
    bounds.partition_point(|&b| b < value)
}

/// Everything one shard counts. Cache-padded (128 bytes, covering adjacent-line
/// prefetch) so two shards never write the same line.
#[repr(align(128))]
struct ShardBlock {
    connections_opened: AtomicU64,
    connections_closed: [AtomicU64; N_DISCONNECT],
    handshake_rejected: [AtomicU64; N_STATUS],
    rooms_opened: AtomicU64,
    rooms_closed: AtomicU64,
    messages_received: AtomicU64,
    messages_received_bytes: AtomicU64,
    messages_published: AtomicU64,
    frames_sent: AtomicU64,
    bytes_sent: AtomicU64,
    frames_dropped: [AtomicU64; N_DROP],
    pong_timeouts: AtomicU64,
    panics: AtomicU64,
    admission_rejected: AtomicU64,
    bind_retries: AtomicU64,
    resume_attempts: AtomicU64,
    resumes_full: AtomicU64,
    resumes_gap: AtomicU64,
    replayed_frames: AtomicU64,
    input_throttled: [AtomicU64; InputThrottle::ALL.len()],
    history_refused: AtomicU64,
    connection_duration: Hist<{ CONNECTION_DURATION_BOUNDS_NS.len() + 1 }>,
    broadcast_fanout: Hist<{ FANOUT_BOUNDS.len() + 1 }>,
    send_queue_bytes: Hist<{ SEND_QUEUE_BOUNDS.len() + 1 }>,
    publish_to_write: Hist<{ PUBLISH_TO_WRITE_BOUNDS_NS.len() + 1 }>,
}

impl ShardBlock {
    fn new() -> Self {
        Self {
            connections_opened: AtomicU64::new(0),
            connections_closed: zeros(),
            handshake_rejected: zeros(),
            rooms_opened: AtomicU64::new(0),
            rooms_closed: AtomicU64::new(0),
            messages_received: AtomicU64::new(0),
            messages_received_bytes: AtomicU64::new(0),
            messages_published: AtomicU64::new(0),
            frames_sent: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            frames_dropped: zeros(),
            pong_timeouts: AtomicU64::new(0),
            panics: AtomicU64::new(0),
            admission_rejected: AtomicU64::new(0),
            bind_retries: AtomicU64::new(0),
            resume_attempts: AtomicU64::new(0),
            resumes_full: AtomicU64::new(0),
            resumes_gap: AtomicU64::new(0),
            replayed_frames: AtomicU64::new(0),
            input_throttled: zeros(),
            history_refused: AtomicU64::new(0),
            connection_duration: Hist::new(),
            broadcast_fanout: Hist::new(),
            send_queue_bytes: Hist::new(),
            publish_to_write: Hist::new(),
        }
    }

    /// `connections_opened - connections_closed` on this shard. Reads `closed` first so
    /// a concurrent open/close pair cannot make it look negative (clamped at 0 anyway).
    fn active(&self) -> u64 {
        let closed: u64 = self
            .connections_closed
            .iter()
            .map(|c| c.load(Relaxed))
            .sum();
        self.connections_opened.load(Relaxed).saturating_sub(closed)
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
    fn collect<'a, const N: usize>(
        bounds: &'static [u64],
        hists: impl Iterator<Item = &'a Hist<N>>,
    ) -> Self {
        let mut counts = vec![0u64; N];
        let mut sum = 0u64;
        for h in hists {
            for (acc, c) in counts.iter_mut().zip(h.counts.iter()) {
                *acc = acc.wrapping_add(c.load(Relaxed));
            }
            sum = sum.wrapping_add(h.sum.load(Relaxed));
        }
        Self {
            bounds,
            counts,
            sum,
        }
    }

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

/// Totals summed over shards at one moment (each field read with `Relaxed`, so fields
/// may be a few events apart from each other under load).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Backend label (as given to [`PrometheusCollector::new`] or `set_backend`).
    pub backend: String,
    /// Open connections (accepted, not yet closed) per shard.
    pub connections_active: Vec<u64>,
    pub connections_opened: u64,
    pub connections_closed: u64,
    pub handshake_rejected: u64,
    /// Rooms with members on any shard (each room once).
    pub rooms_active: u64,
    pub messages_received: u64,
    pub messages_received_bytes: u64,
    /// Publishes, each once however many shards delivered it.
    pub messages_published: u64,
    pub frames_sent: u64,
    pub bytes_sent: u64,
    /// Dropped frames, every reason.
    pub frames_dropped: u64,
    pub pong_timeouts: u64,
    pub panics: u64,
    pub admission_rejected: u64,
    pub bind_retries: u64,
    pub resume_attempts: u64,
    /// Resumes served with every missed message.
    pub resumes_full: u64,
    /// Resumes that began with a `gap` or `reset` message.
    pub resumes_gap: u64,
    pub replayed_frames: u64,
    /// Messages not kept in their room's history (larger than `--history-bytes`).
    pub history_refused: u64,
    /// `publish_to_write` latencies (nanoseconds).
    pub publish_to_write: HistogramSnapshot,
}

impl Snapshot {
    /// Open connections on every shard together.
    pub fn connections_total(&self) -> u64 {
        self.connections_active.iter().sum()
    }
}

/// Check a metric name prefix: `[a-zA-Z_:][a-zA-Z0-9_:]*`, or empty (no prefix).
pub fn validate_prefix(prefix: &str) -> Result<(), String> {
    let ok = prefix.chars().enumerate().all(|(i, c)| {
        c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid metrics prefix {prefix:?}: must match [a-zA-Z_:][a-zA-Z0-9_:]*"
        ))
    }
}

/// Check a constant label name: `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__`, not
/// one of [`RESERVED_LABELS`].
pub fn validate_label_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "invalid label name {name:?}: must match [a-zA-Z_][a-zA-Z0-9_]*"
        ));
    }
    if name.starts_with("__") {
        return Err(format!(
            "invalid label name {name:?}: names starting with __ are reserved"
        ));
    }
    if RESERVED_LABELS.contains(&name) {
        return Err(format!(
            "invalid label name {name:?}: reserved for ringcast's own labels ({})",
            RESERVED_LABELS.join(", ")
        ));
    }
    Ok(())
}

/// Parse one `--metrics-label` argument, `name=value` (the value may contain `=` and any
/// UTF-8; it may not be empty, since Prometheus treats an empty value as no label).
pub fn parse_label(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("invalid label {s:?}: expected name=value"))?;
    let name = name.trim();
    validate_label_name(name)?;
    if value.is_empty() {
        return Err(format!("invalid label {s:?}: the value is empty"));
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// Check a whole set of constant labels: each name valid, no name twice.
pub fn validate_labels(labels: &[(String, String)]) -> Result<(), String> {
    for (i, (name, _)) in labels.iter().enumerate() {
        validate_label_name(name)?;
        if labels[..i].iter().any(|(n, _)| n == name) {
            return Err(format!("label {name:?} given more than once"));
        }
    }
    Ok(())
}

/// Escape a label value for the text format: `\` → `\\`, `"` → `\"`, newline → `\n`.
pub fn escape_label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// `value / 10^decimals` as an exact decimal without trailing zeros (`1500, 3` → `1.5`).
fn fmt_scaled(value: u64, decimals: u32) -> String {
    let div = 10u64.pow(decimals);
    let (int, frac) = (value / div, value % div);
    if frac == 0 {
        return int.to_string();
    }
    let frac = format!("{frac:0width$}", width = decimals as usize);
    format!("{int}.{}", frac.trim_end_matches('0'))
}

/// How a histogram's base unit is exposed.
#[derive(Clone, Copy)]
enum Unit {
    /// Base unit is nanoseconds, exposed in seconds.
    Seconds,
    /// Exposed as is.
    Plain,
}

impl Unit {
    fn fmt(self, v: u64) -> String {
        match self {
            Unit::Seconds => fmt_scaled(v, 9),
            Unit::Plain => v.to_string(),
        }
    }
}

/// Writes families with the prefix and constant labels applied.
struct Exposition<'a> {
    out: String,
    prefix: &'a str,
    /// `k="v",` for every constant label, already escaped.
    const_labels: &'a str,
}

impl Exposition<'_> {
    fn name(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}_{name}", self.prefix)
        }
    }

    fn family(&mut self, name: &str, typ: &str, help: &str) {
        let full = self.name(name);
        let _ = writeln!(self.out, "# HELP {full} {help}");
        let _ = writeln!(self.out, "# TYPE {full} {typ}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl fmt::Display) {
        let full = self.name(name);
        self.out.push_str(&full);
        if !self.const_labels.is_empty() || !labels.is_empty() {
            self.out.push('{');
            self.out.push_str(self.const_labels);
            for (k, v) in labels {
                let _ = write!(self.out, "{k}=\"{}\",", escape_label_value(v));
            }
            self.out.pop(); // the trailing comma
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, "counter", help);
        self.sample(name, &[], value);
    }

    fn histogram(&mut self, name: &str, help: &str, h: &HistogramSnapshot, unit: Unit) {
        self.family(name, "histogram", help);
        let bucket = format!("{name}_bucket");
        let cumulative = h.cumulative();
        for (i, &c) in cumulative.iter().enumerate() {
            let le = match h.bounds.get(i) {
                Some(&b) => unit.fmt(b),
                None => "+Inf".to_owned(),
            };
            self.sample(&bucket, &[("le", &le)], c);
        }
        self.sample(&format!("{name}_sum"), &[], unit.fmt(h.sum));
        self.sample(&format!("{name}_count"), &[], h.count());
    }
}

/// The built-in Prometheus collector: per-shard counters, summed on scrape.
pub struct PrometheusCollector {
    shards: Box<[ShardBlock]>,
    prefix: String,
    const_labels: Vec<(String, String)>,
    /// `k="v",` for every constant label, escaped once at construction.
    const_labels_rendered: String,
    backend: Mutex<String>,
}

impl fmt::Debug for PrometheusCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrometheusCollector")
            .field("shards", &self.shards.len())
            .field("prefix", &self.prefix)
            .field("const_labels", &self.const_labels)
            .finish_non_exhaustive()
    }
}

impl PrometheusCollector {
    /// A collector for `shards` shard threads (at least 1; hooks from a shard index past
    /// the end count on the last shard). `prefix` must pass [`validate_prefix`] and the
    /// labels [`validate_labels`]; this constructor never fails, so an invalid prefix is
    /// replaced by `ringcast` and invalid or repeated labels are left out (validate
    /// user input first, e.g. with [`parse_label`]). `backend` is the `build_info` label.
    pub fn new(
        shards: usize,
        prefix: &str,
        const_labels: Vec<(String, String)>,
        backend: &str,
    ) -> Self {
        let prefix = if validate_prefix(prefix).is_ok() {
            prefix
        } else {
            "ringcast"
        };
        let mut kept: Vec<(String, String)> = Vec::with_capacity(const_labels.len());
        for (k, v) in const_labels {
            if validate_label_name(&k).is_ok() && !kept.iter().any(|(n, _)| *n == k) {
                kept.push((k, v));
            }
        }
        let const_labels_rendered = kept
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\",", escape_label_value(v)))
            .collect();
        Self {
            shards: (0..shards.max(1)).map(|_| ShardBlock::new()).collect(),
            prefix: prefix.to_owned(),
            const_labels: kept,
            const_labels_rendered,
            backend: Mutex::new(backend.to_owned()),
        }
    }

    /// Number of per-shard blocks.
    pub fn shards(&self) -> usize {
        self.shards.len()
    }

    /// The metric name prefix in use.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The constant labels in use (after validation).
    pub fn const_labels(&self) -> &[(String, String)] {
        &self.const_labels
    }

    /// Set the `backend` label of `build_info` (for `--backend auto`, once the server
    /// knows which backend it started).
    pub fn set_backend(&self, backend: &str) {
        let mut b = self.backend.lock().unwrap_or_else(|e| e.into_inner());
        backend.clone_into(&mut b);
    }

    /// The `backend` label of `build_info`.
    pub fn backend(&self) -> String {
        self.backend
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    #[inline]
    fn shard(&self, shard: usize) -> &ShardBlock {
        // `shards` is never empty (see `new`).
        &self.shards[shard.min(self.shards.len() - 1)]
    }

    fn sum(&self, f: impl Fn(&ShardBlock) -> &AtomicU64) -> u64 {
        self.shards
            .iter()
            .fold(0u64, |acc, s| acc.wrapping_add(f(s).load(Relaxed)))
    }

    /// Rooms opened minus rooms closed, over every shard: a room may open on one shard
    /// and close on another. Closes are read first, so a concurrent open/close pair
    /// cannot make it look negative (clamped at 0 anyway).
    fn rooms_active(&self) -> u64 {
        let closed = self.sum(|s| &s.rooms_closed);
        self.sum(|s| &s.rooms_opened).saturating_sub(closed)
    }

    fn sum_index<const N: usize>(&self, f: impl Fn(&ShardBlock) -> &[AtomicU64; N]) -> [u64; N] {
        let mut out = [0u64; N];
        for s in self.shards.iter() {
            for (acc, c) in out.iter_mut().zip(f(s).iter()) {
                *acc = acc.wrapping_add(c.load(Relaxed));
            }
        }
        out
    }

    /// Totals over every shard.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            backend: self.backend(),
            connections_active: self.shards.iter().map(ShardBlock::active).collect(),
            connections_opened: self.sum(|s| &s.connections_opened),
            connections_closed: self.sum_index(|s| &s.connections_closed).iter().sum(),
            handshake_rejected: self.sum_index(|s| &s.handshake_rejected).iter().sum(),
            rooms_active: self.rooms_active(),
            messages_received: self.sum(|s| &s.messages_received),
            messages_received_bytes: self.sum(|s| &s.messages_received_bytes),
            messages_published: self.sum(|s| &s.messages_published),
            frames_sent: self.sum(|s| &s.frames_sent),
            bytes_sent: self.sum(|s| &s.bytes_sent),
            frames_dropped: self.sum_index(|s| &s.frames_dropped).iter().sum(),
            pong_timeouts: self.sum(|s| &s.pong_timeouts),
            panics: self.sum(|s| &s.panics),
            admission_rejected: self.sum(|s| &s.admission_rejected),
            bind_retries: self.sum(|s| &s.bind_retries),
            resume_attempts: self.sum(|s| &s.resume_attempts),
            resumes_full: self.sum(|s| &s.resumes_full),
            resumes_gap: self.sum(|s| &s.resumes_gap),
            replayed_frames: self.sum(|s| &s.replayed_frames),
            history_refused: self.sum(|s| &s.history_refused),
            publish_to_write: HistogramSnapshot::collect(
                &PUBLISH_TO_WRITE_BOUNDS_NS,
                self.shards.iter().map(|s| &s.publish_to_write),
            ),
        }
    }

    /// The Prometheus text exposition (format 0.0.4) of every metric, summed over shards.
    pub fn render(&self) -> String {
        let mut e = Exposition {
            out: String::with_capacity(8 * 1024),
            prefix: &self.prefix,
            const_labels: &self.const_labels_rendered,
        };

        e.family(
            "connections_active",
            "gauge",
            "Connections accepted and not yet closed, per shard.",
        );
        for (i, s) in self.shards.iter().enumerate() {
            e.sample(
                "connections_active",
                &[("shard", &i.to_string())],
                s.active(),
            );
        }

        e.counter(
            "connections_opened_total",
            "TCP connections accepted.",
            self.sum(|s| &s.connections_opened),
        );

        e.family(
            "connections_closed_total",
            "counter",
            "Connections ended, by reason.",
        );
        let closed = self.sum_index(|s| &s.connections_closed);
        for (reason, n) in DisconnectReason::ALL.iter().zip(closed) {
            e.sample(
                "connections_closed_total",
                &[("reason", reason.as_str())],
                n,
            );
        }

        e.histogram(
            "connection_duration_seconds",
            "Time from accept to close of each connection.",
            &HistogramSnapshot::collect(
                &CONNECTION_DURATION_BOUNDS_NS,
                self.shards.iter().map(|s| &s.connection_duration),
            ),
            Unit::Seconds,
        );

        e.family(
            "handshake_rejected_total",
            "counter",
            "Upgrade requests refused, by HTTP status.",
        );
        let rejected = self.sum_index(|s| &s.handshake_rejected);
        for (status, &n) in rejected.iter().enumerate().skip(100) {
            if n > 0 {
                e.sample(
                    "handshake_rejected_total",
                    &[("status", &status.to_string())],
                    n,
                );
            }
        }
        if rejected[0] > 0 {
            e.sample(
                "handshake_rejected_total",
                &[("status", "other")],
                rejected[0],
            );
        }

        e.family(
            "rooms_active",
            "gauge",
            "Rooms with at least one member on any shard (each room once).",
        );
        e.sample("rooms_active", &[], self.rooms_active());

        e.counter(
            "messages_received_total",
            "Complete data messages received.",
            self.sum(|s| &s.messages_received),
        );
        e.counter(
            "messages_received_bytes_total",
            "Payload bytes of the data messages received.",
            self.sum(|s| &s.messages_received_bytes),
        );
        e.counter(
            "messages_published_total",
            "Messages published to a room (each once, however many shards delivered it).",
            self.sum(|s| &s.messages_published),
        );

        e.histogram(
            "broadcast_fanout",
            "Connections a publish was queued to, over all shards (one observation per publish).",
            &HistogramSnapshot::collect(
                &FANOUT_BOUNDS,
                self.shards.iter().map(|s| &s.broadcast_fanout),
            ),
            Unit::Plain,
        );

        e.counter(
            "frames_sent_total",
            "Complete frames accepted by the kernel.",
            self.sum(|s| &s.frames_sent),
        );
        e.counter(
            "bytes_sent_total",
            "Bytes accepted by the kernel.",
            self.sum(|s| &s.bytes_sent),
        );

        e.family(
            "frames_dropped_total",
            "counter",
            "Queued frames dropped, by reason.",
        );
        let dropped = self.sum_index(|s| &s.frames_dropped);
        for (reason, n) in DropReason::ALL.iter().zip(dropped) {
            e.sample("frames_dropped_total", &[("reason", reason.as_str())], n);
        }

        e.histogram(
            "send_queue_bytes",
            "Largest outbound queue among the connections a shard queued a publish (or a direct send) to, in bytes (one observation per shard delivery).",
            &HistogramSnapshot::collect(
                &SEND_QUEUE_BOUNDS,
                self.shards.iter().map(|s| &s.send_queue_bytes),
            ),
            Unit::Plain,
        );

        e.counter(
            "pong_timeouts_total",
            "Connections that missed their pong deadline.",
            self.sum(|s| &s.pong_timeouts),
        );
        e.counter(
            "panics_total",
            "Application callbacks that panicked.",
            self.sum(|s| &s.panics),
        );
        e.counter(
            "admission_rejected_total",
            "Connections refused by the admission cap.",
            self.sum(|s| &s.admission_rejected),
        );
        e.counter(
            "bind_retries_total",
            "Listener binds retried after EADDRINUSE.",
            self.sum(|s| &s.bind_retries),
        );

        e.counter(
            "resume_attempts_total",
            "Clients that asked to resume a room from a sequence number.",
            self.sum(|s| &s.resume_attempts),
        );
        e.family(
            "resumes_total",
            "counter",
            "Resumes served, by result: full (nothing missing) or gap (a gap or reset message first).",
        );
        e.sample(
            "resumes_total",
            &[("result", "full")],
            self.sum(|s| &s.resumes_full),
        );
        e.sample(
            "resumes_total",
            &[("result", "gap")],
            self.sum(|s| &s.resumes_gap),
        );
        e.counter(
            "replayed_frames_total",
            "Retained messages replayed to resuming clients.",
            self.sum(|s| &s.replayed_frames),
        );
        e.counter(
            "history_refused_total",
            "Messages published but not kept in their room's history: larger than --history-bytes on their own.",
            self.sum(|s| &s.history_refused),
        );

        e.histogram(
            "publish_to_write_seconds",
            "Time from a publish to the kernel accepting its frame (oldest frame of each send).",
            &HistogramSnapshot::collect(
                &PUBLISH_TO_WRITE_BOUNDS_NS,
                self.shards.iter().map(|s| &s.publish_to_write),
            ),
            Unit::Seconds,
        );

        e.family(
            "input_throttled_total",
            "counter",
            "Peer input limited to bound memory, by action: pong_coalesced (a pending pong replaced by a newer ping's), read_paused (reading paused while unsent bytes were over the queue cap).",
        );
        let throttled = self.sum_index(|s| &s.input_throttled);
        for (action, n) in InputThrottle::ALL.iter().zip(throttled) {
            e.sample("input_throttled_total", &[("action", action.as_str())], n);
        }

        e.family("build_info", "gauge", "Always 1: the version and backend.");
        let backend = self.backend();
        e.sample(
            "build_info",
            &[
                ("version", env!("CARGO_PKG_VERSION")),
                ("backend", &backend),
            ],
            1,
        );

        e.out
    }
}

impl MetricsCollector for PrometheusCollector {
    #[inline]
    fn input_throttled(&self, shard: usize, action: InputThrottle) {
        let i = action as usize;
        self.shard(shard).input_throttled[i].fetch_add(1, Relaxed);
    }

    #[inline]
    fn connection_opened(&self, shard: usize) {
        self.shard(shard).connections_opened.fetch_add(1, Relaxed);
    }

    #[inline]
    fn connection_closed(&self, shard: usize, reason: DisconnectReason, duration: Duration) {
        let s = self.shard(shard);
        let i = DisconnectReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(N_DISCONNECT - 1);
        s.connections_closed[i].fetch_add(1, Relaxed);
        s.connection_duration
            .observe(&CONNECTION_DURATION_BOUNDS_NS, nanos(duration));
    }

    #[inline]
    fn handshake_rejected(&self, shard: usize, status: u16) {
        let i = usize::from(status);
        let i = if (100..N_STATUS).contains(&i) { i } else { 0 };
        self.shard(shard).handshake_rejected[i].fetch_add(1, Relaxed);
    }

    #[inline]
    fn room_opened(&self, shard: usize) {
        self.shard(shard).rooms_opened.fetch_add(1, Relaxed);
    }

    #[inline]
    fn room_closed(&self, shard: usize) {
        self.shard(shard).rooms_closed.fetch_add(1, Relaxed);
    }

    #[inline]
    fn message_received(&self, shard: usize, bytes: usize) {
        let s = self.shard(shard);
        s.messages_received.fetch_add(1, Relaxed);
        s.messages_received_bytes.fetch_add(bytes as u64, Relaxed);
    }

    #[inline]
    fn publish_fanned_out(&self, shard: usize, recipients: usize) {
        let s = self.shard(shard);
        s.messages_published.fetch_add(1, Relaxed);
        s.broadcast_fanout
            .observe(&FANOUT_BOUNDS, recipients as u64);
    }

    #[inline]
    fn frames_sent(&self, shard: usize, frames: usize, bytes: usize) {
        let s = self.shard(shard);
        s.frames_sent.fetch_add(frames as u64, Relaxed);
        s.bytes_sent.fetch_add(bytes as u64, Relaxed);
    }

    #[inline]
    fn frame_dropped(&self, shard: usize, reason: DropReason) {
        let i = DropReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(N_DROP - 1);
        self.shard(shard).frames_dropped[i].fetch_add(1, Relaxed);
    }

    #[inline]
    fn send_queue_bytes(&self, shard: usize, bytes: usize) {
        self.shard(shard)
            .send_queue_bytes
            .observe(&SEND_QUEUE_BOUNDS, bytes as u64);
    }

    #[inline]
    fn pong_timeout(&self, shard: usize) {
        self.shard(shard).pong_timeouts.fetch_add(1, Relaxed);
    }

    #[inline]
    fn panic(&self, shard: usize) {
        self.shard(shard).panics.fetch_add(1, Relaxed);
    }

    #[inline]
    fn bind_retry(&self, shard: usize) {
        self.shard(shard).bind_retries.fetch_add(1, Relaxed);
    }

    #[inline]
    fn admission_rejected(&self, shard: usize) {
        self.shard(shard).admission_rejected.fetch_add(1, Relaxed);
    }

    #[inline]
    fn publish_to_write(&self, shard: usize, latency: Duration) {
        self.shard(shard)
            .publish_to_write
            .observe(&PUBLISH_TO_WRITE_BOUNDS_NS, nanos(latency));
    }

    #[inline]
    fn resume_attempt(&self, shard: usize) {
        self.shard(shard).resume_attempts.fetch_add(1, Relaxed);
    }

    #[inline]
    fn resume_served(&self, shard: usize) {
        self.shard(shard).resumes_full.fetch_add(1, Relaxed);
    }

    #[inline]
    fn resume_gap(&self, shard: usize) {
        self.shard(shard).resumes_gap.fetch_add(1, Relaxed);
    }

    #[inline]
    fn frames_replayed(&self, shard: usize, frames: usize) {
        self.shard(shard)
            .replayed_frames
            .fetch_add(frames as u64, Relaxed);
    }

    #[inline]
    fn history_refused(&self, shard: usize, _bytes: usize) {
        self.shard(shard).history_refused.fetch_add(1, Relaxed);
    }
}

#[cfg(test)]
mod tests;

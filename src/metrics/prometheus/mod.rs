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
//! [`MetricsCollector`]), so summing the blocks never counts them once per shard.
//! Durations are kept in nanoseconds and exposed in seconds with exact decimal
//! formatting.
//!
//! Each metric is one row of the table in `table.rs`; `declare.rs` generates the block,
//! the totals, [`Snapshot`] and the exposition from it. The hooks below are written by
//! hand and touch their metric through its block field. Storage kinds are in `kinds.rs`
//! and `hist.rs`, label enums in `labels.rs`, the text format in `exposition.rs`, name
//! and label checks in `names.rs`.

mod declare;
mod exposition;
mod hist;
mod kinds;
mod labels;
mod names;
mod table;

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use super::collector::{
    DisconnectReason, DropReason, InputThrottle, MetricsCollector, ResumeResult, Transport,
};
use exposition::Exposition;
use table::{ShardBlock, Totals};

pub use exposition::escape_label_value;
pub use hist::HistogramSnapshot;
pub use names::{
    parse_label, validate_label_name, validate_labels, validate_prefix, RESERVED_LABELS,
};
pub use table::{
    Snapshot, CONNECTION_DURATION_BOUNDS_NS, FANOUT_BOUNDS, PUBLISH_TO_WRITE_BOUNDS_NS,
    SEND_QUEUE_BOUNDS,
};

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The built-in Prometheus collector: per-shard counters, summed on scrape.
pub struct PrometheusCollector {
    shards: Box<[ShardBlock]>,
    prefix: String,
    const_labels: Vec<(String, String)>,
    /// `k="v",` for every constant label, escaped once at construction.
    const_labels_rendered: String,
    backend: Mutex<String>,
    /// Families kept outside the shard blocks (see [`PrometheusCollector::add_section`]).
    sections: Mutex<Vec<Section>>,
}

/// A part of the exposition written by a component with counters of its own: called
/// on every scrape with the prefix and the constant labels (`k="v",k2="v2"`, escaped),
/// returns whole families in the text format.
pub type Section = Box<dyn Fn(&str, &str) -> String + Send + Sync>;

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
            shards: (0..shards.max(1)).map(|_| ShardBlock::default()).collect(),
            prefix: prefix.to_owned(),
            const_labels: kept,
            const_labels_rendered,
            backend: Mutex::new(backend.to_owned()),
            sections: Mutex::new(Vec::new()),
        }
    }

    /// Append `section` to every scrape (e.g. the cluster broker's counters, which
    /// live on its own thread). Its names must start with the prefix and not clash
    /// with the table's.
    pub fn add_section(&self, section: Section) {
        self.sections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(section);
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

    fn totals(&self) -> Totals {
        Totals::collect(&self.shards, self.backend())
    }

    /// Totals over every shard.
    pub fn snapshot(&self) -> Snapshot {
        self.totals().snapshot()
    }

    /// The Prometheus text exposition (format 0.0.4) of every metric, summed over shards.
    pub fn render(&self) -> String {
        let mut e = Exposition::new(&self.prefix, &self.const_labels_rendered);
        self.totals().expose(&mut e);
        let mut out = e.out;
        let labels = self.const_labels_rendered.trim_end_matches(',');
        for section in self
            .sections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            out.push_str(&section(&self.prefix, labels));
        }
        out
    }
}

impl MetricsCollector for PrometheusCollector {
    #[inline]
    fn input_throttled(&self, shard: usize, action: InputThrottle) {
        self.shard(shard).input_throttled.inc(action);
    }

    #[inline]
    fn connection_opened(&self, shard: usize) {
        self.shard(shard).connections_opened.inc();
    }

    #[inline]
    fn connection_closed(&self, shard: usize, reason: DisconnectReason, duration: Duration) {
        let s = self.shard(shard);
        s.connections_closed.inc(reason);
        s.connection_duration.observe(nanos(duration));
    }

    fn sessions(&self, shard: usize, held: usize, detached: usize, buffered_bytes: usize) {
        let s = self.shard(shard);
        s.sessions_active.set_level(held as u64);
        s.sessions_detached.set_level(detached as u64);
        s.session_buffer_bytes.set_level(buffered_bytes as u64);
    }

    fn session_resume(&self, shard: usize, result: ResumeResult) {
        self.shard(shard).session_resumes.inc(result);
    }

    fn session_ended(&self, shard: usize, reason: DisconnectReason) {
        if reason.ends_session_only() {
            self.shard(shard).connections_closed.inc(reason);
        }
    }

    #[inline]
    fn handshake_rejected(&self, shard: usize, status: u16) {
        self.shard(shard).handshake_rejected.inc(status);
    }

    #[inline]
    fn http_publish_answered(&self, shard: usize, status: u16) {
        self.shard(shard).http_publish_requests.inc(status);
    }

    #[inline]
    fn room_opened(&self, shard: usize) {
        self.shard(shard).rooms_active.inc();
    }

    #[inline]
    fn room_closed(&self, shard: usize) {
        self.shard(shard).rooms_active.dec();
    }

    #[inline]
    fn message_received(&self, shard: usize, bytes: usize) {
        let s = self.shard(shard);
        s.messages_received.inc();
        s.messages_received_bytes.add(bytes as u64);
    }

    #[inline]
    fn publish_fanned_out(&self, shard: usize, recipients: usize) {
        let s = self.shard(shard);
        s.messages_published.inc();
        s.broadcast_fanout.observe(recipients as u64);
    }

    #[inline]
    fn frames_sent(&self, shard: usize, frames: usize, bytes: usize) {
        let s = self.shard(shard);
        s.frames_sent.add(frames as u64);
        s.bytes_sent.add(bytes as u64);
    }

    #[inline]
    fn frames_sent_on(&self, shard: usize, transport: Transport, frames: usize) {
        self.shard(shard)
            .frames_sent_by_transport
            .add(transport, frames as u64);
    }

    #[inline]
    fn connection_accepted(&self, shard: usize, transport: Transport) {
        self.shard(shard).connections_accepted.inc(transport);
    }

    #[inline]
    fn connection_ended(&self, shard: usize, transport: Transport) {
        self.shard(shard).connections_ended.inc(transport);
    }

    #[inline]
    fn frame_dropped(&self, shard: usize, reason: DropReason) {
        self.shard(shard).frames_dropped.inc(reason);
    }

    #[inline]
    fn send_queue_bytes(&self, shard: usize, bytes: usize) {
        self.shard(shard).send_queue_bytes.observe(bytes as u64);
    }

    #[inline]
    fn pong_timeout(&self, shard: usize) {
        self.shard(shard).pong_timeouts.inc();
    }

    #[inline]
    fn panic(&self, shard: usize) {
        self.shard(shard).panics.inc();
    }

    #[inline]
    fn bind_retry(&self, shard: usize) {
        self.shard(shard).bind_retries.inc();
    }

    #[inline]
    fn admission_rejected(&self, shard: usize) {
        self.shard(shard).admission_rejected.inc();
    }

    #[inline]
    fn publish_to_write(&self, shard: usize, latency: Duration) {
        self.shard(shard).publish_to_write.observe(nanos(latency));
    }

    #[inline]
    fn resume_attempt(&self, shard: usize) {
        self.shard(shard).resume_attempts.inc();
    }

    #[inline]
    fn resume_served(&self, shard: usize) {
        self.shard(shard).resumes_full.inc();
    }

    #[inline]
    fn resume_gap(&self, shard: usize) {
        self.shard(shard).resumes_gap.inc();
    }

    #[inline]
    fn frames_replayed(&self, shard: usize, frames: usize) {
        self.shard(shard).replayed_frames.add(frames as u64);
    }

    #[inline]
    fn deflate_compressed(&self, shard: usize, messages: u64) {
        self.shard(shard).deflate_compressions.add(messages);
    }

    #[inline]
    fn history_refused(&self, shard: usize, _bytes: usize) {
        self.shard(shard).history_refused.inc();
    }
}

#[cfg(test)]
mod tests;

//! Metrics: the typed hooks ([`MetricsCollector`]) with a no-op default.
//!
//! Built in: [`PrometheusCollector`] (per-shard counters and histograms, summed on
//! scrape into the Prometheus text format) and [`MetricsServer`] (serves `/metrics`, the
//! live dashboard at `/` and its `/stats` WebSocket).

pub mod collector;
pub mod http;
pub mod prometheus;

pub use collector::{
    DisconnectReason, DropReason, InputThrottle, MetricsCollector, NoopCollector, ResumeResult,
};
pub use http::{MetricsServer, MetricsServerOptions};
pub use prometheus::{parse_label, HistogramSnapshot, PrometheusCollector, Snapshot};

//! Metrics: the typed hooks ([`MetricsCollector`]) with a no-op default.

pub mod collector;

pub use collector::{DisconnectReason, DropReason, MetricsCollector, NoopCollector};

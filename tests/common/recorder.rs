//! A recording `MetricsCollector` for tests: counts every hook call by a readable key
//! (`"closed:pong_timeout"`, `"rejected:503"`, `"dropped:drop_newest"`, …).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use ringcast::metrics::{
    DisconnectReason, DropReason, InputThrottle, MetricsCollector, ResumeResult,
};

#[derive(Default)]
pub struct Recorder {
    counts: Mutex<HashMap<String, u64>>,
    /// Per-shard levels (`sessions` hook): (name, shard) → the last value set.
    levels: Mutex<HashMap<(&'static str, usize), u64>>,
    /// Per-shard levels: (name, shard) → the highest value ever set.
    peaks: Mutex<HashMap<(&'static str, usize), u64>>,
}

impl Recorder {
    fn add(&self, key: impl Into<String>, n: u64) {
        *self.counts.lock().unwrap().entry(key.into()).or_default() += n;
    }

    /// Count recorded under `key` (0 if never).
    pub fn get(&self, key: &str) -> u64 {
        self.counts.lock().unwrap().get(key).copied().unwrap_or(0)
    }

    /// A level (`"sessions"`, `"detached"`, `"buffered"`) summed over shards.
    pub fn level(&self, name: &str) -> u64 {
        let levels = self.levels.lock().unwrap();
        levels
            .iter()
            .filter(|((n, _), _)| *n == name)
            .map(|(_, v)| v)
            .sum()
    }

    /// The highest value a level (`"sessions"`, `"detached"`, `"buffered"`) was ever
    /// set to, the shards' highs summed.
    pub fn peak(&self, name: &str) -> u64 {
        let peaks = self.peaks.lock().unwrap();
        peaks
            .iter()
            .filter(|((n, _), _)| *n == name)
            .map(|(_, v)| v)
            .sum()
    }

    pub fn snapshot(&self) -> HashMap<String, u64> {
        self.counts.lock().unwrap().clone()
    }
}

impl MetricsCollector for Recorder {
    fn connection_opened(&self, _shard: usize) {
        self.add("opened", 1);
    }
    fn connection_closed(&self, _shard: usize, reason: DisconnectReason, _duration: Duration) {
        self.add("closed", 1);
        self.add(format!("closed:{}", reason.as_str()), 1);
    }
    fn handshake_rejected(&self, _shard: usize, status: u16) {
        self.add(format!("rejected:{status}"), 1);
    }
    fn http_publish_answered(&self, _shard: usize, status: u16) {
        self.add(format!("http_publish:{status}"), 1);
    }
    fn room_opened(&self, _shard: usize) {
        self.add("room_opened", 1);
    }
    fn room_closed(&self, _shard: usize) {
        self.add("room_closed", 1);
    }
    fn message_received(&self, _shard: usize, bytes: usize) {
        self.add("received", 1);
        self.add("received_bytes", bytes as u64);
    }
    fn publish_fanned_out(&self, _shard: usize, recipients: usize) {
        self.add("published", 1);
        self.add("recipients", recipients as u64);
    }
    fn frames_sent(&self, _shard: usize, frames: usize, bytes: usize) {
        self.add("frames_sent", frames as u64);
        self.add("bytes_sent", bytes as u64);
    }
    fn frames_sent_on(&self, _shard: usize, transport: ringcast::Transport, frames: usize) {
        self.add(format!("frames_sent:{}", transport.as_str()), frames as u64);
    }
    fn connection_accepted(&self, _shard: usize, transport: ringcast::Transport) {
        self.add(format!("accepted:{}", transport.as_str()), 1);
    }
    fn connection_ended(&self, _shard: usize, transport: ringcast::Transport) {
        self.add(format!("ended:{}", transport.as_str()), 1);
    }
    fn frame_dropped(&self, _shard: usize, reason: DropReason) {
        self.add(format!("dropped:{}", reason.as_str()), 1);
    }
    fn send_queue_bytes(&self, _shard: usize, _bytes: usize) {
        self.add("queue_samples", 1);
    }
    fn pong_timeout(&self, _shard: usize) {
        self.add("pong_timeout", 1);
    }
    fn panic(&self, _shard: usize) {
        self.add("panic", 1);
    }
    fn bind_retry(&self, _shard: usize) {
        self.add("bind_retry", 1);
    }
    fn admission_rejected(&self, _shard: usize) {
        self.add("admission_rejected", 1);
    }
    fn deflate_compressed(&self, _shard: usize, messages: u64) {
        self.add("compressed", messages);
    }
    fn publish_to_write(&self, _shard: usize, _latency: Duration) {
        self.add("publish_to_write", 1);
    }
    fn resume_attempt(&self, _shard: usize) {
        self.add("resume_attempt", 1);
    }
    fn resume_served(&self, _shard: usize) {
        self.add("resume_served", 1);
    }
    fn resume_gap(&self, _shard: usize) {
        self.add("resume_gap", 1);
    }
    fn frames_replayed(&self, _shard: usize, frames: usize) {
        self.add("frames_replayed", frames as u64);
    }
    fn input_throttled(&self, _shard: usize, action: InputThrottle) {
        self.add(format!("throttled:{}", action.as_str()), 1);
    }
    fn history_refused(&self, _shard: usize, bytes: usize) {
        self.add("history_refused", 1);
        self.add("history_refused_bytes", bytes as u64);
    }
    fn sessions(&self, shard: usize, held: usize, detached: usize, buffered_bytes: usize) {
        let mut levels = self.levels.lock().unwrap();
        let mut peaks = self.peaks.lock().unwrap();
        for (name, value) in [
            ("sessions", held),
            ("detached", detached),
            ("buffered", buffered_bytes),
        ] {
            levels.insert((name, shard), value as u64);
            let peak = peaks.entry((name, shard)).or_default();
            *peak = (*peak).max(value as u64);
        }
    }
    fn session_resume(&self, _shard: usize, result: ResumeResult) {
        self.add(format!("resume:{}", result.as_str()), 1);
    }
    fn session_ended(&self, _shard: usize, reason: DisconnectReason) {
        self.add(format!("session_ended:{}", reason.as_str()), 1);
    }
}

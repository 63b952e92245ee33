//! The run report: what every workload measured, serialised with `--json` and printed as
//! a summary table. Also decides the exit status (a run is "ok" only with zero loss,
//! zero order violations and, where connections matter, zero failures). With fanout
//! `--slow-fraction` the loss check covers the fast subscribers; the slow ones have
//! their own section and checks (see [`crate::slow`]).

use std::collections::BTreeMap;
use std::io::{self, Write};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::procfs::{RssReport, ServerSample};
use crate::prom::ServerCounters;
use crate::slow::{self, SlowReport};
use crate::sys::CpuTime;

/// Everything a run reports.
#[derive(Serialize, Debug, Default)]
pub struct Report {
    /// `fanout`, `connect` or `echo`.
    pub workload: String,
    /// The command line.
    pub command: Vec<String>,
    /// Whether the run was clean (exit code 0).
    pub ok: bool,
    /// Why it was not clean.
    pub problems: Vec<String>,
    /// The run hit `--timeout`.
    pub timed_out: bool,
    /// Total run time.
    pub wall_secs: f64,
    /// Connection set-up.
    pub connections: ConnReport,
    /// Message traffic (fanout, echo).
    pub traffic: Option<TrafficReport>,
    /// Publish → receive (fanout) or round-trip (echo) latency.
    pub latency: Option<LatencyReport>,
    /// Per node, in `--url` order (fanout with several URLs; empty and left out of the
    /// JSON otherwise).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeReport>,
    /// Server resource use (with `--server-pid`).
    pub server: Option<ServerReport>,
    /// The generator's own cost.
    pub generator: GeneratorReport,
    /// Per-cycle results (connect).
    pub cycles: Vec<CycleReport>,
    /// Subscriber churn and resume (fanout `--churn`).
    pub churn: Option<ChurnReport>,
    /// Slow subscribers (fanout `--slow-fraction`); `traffic` then covers the fast ones.
    pub slow: Option<SlowReport>,
    /// What the server's Prometheus counters say happened during the run (fanout
    /// `--metrics-url`).
    pub server_counters: Option<ServerCounters>,
}

/// Subscriber churn with resume (`fanout --churn P`): what the disconnect/resume cycles
/// did and what the per-subscriber room-sequence check found.
#[derive(Serialize, Debug, Default, Clone)]
pub struct ChurnReport {
    /// `--churn`: % of subscribers disconnected and resumed per second.
    pub percent_per_sec: f64,
    /// How they were closed (`--churn-close`).
    pub close_mode: String,
    /// Churns started (disconnect + resume), i.e. reconnects done or attempted.
    pub churned: u64,
    /// Resumed connections that completed their upgrade.
    pub reconnects_ok: u64,
    /// Churned subscribers that never resumed (given up, or the run ended first).
    pub not_resumed: u64,
    /// Reconnect attempts that failed (each is retried with the same `since`).
    pub reconnect_failures: u64,
    /// Reconnect failures by reason.
    pub reconnect_failure_reasons: BTreeMap<String, u64>,
    /// Distinct subscribers churned at least once.
    pub subscribers_churned: u64,
    /// Frames received on resumed connections that were published before that
    /// connection's upgrade completed (≈ the replay).
    pub resumed_frames: u64,
    /// Resume (reconnect + upgrade) latency.
    pub reconnect_latency: Option<LatencyReport>,
    /// All room-sequence loss: skipped numbers + `gap` ranges + numbers lost to `reset`.
    pub room_seq_lost: u64,
    /// Room sequence numbers skipped without announcement.
    pub room_seq_skipped: u64,
    /// Room sequence numbers that repeated or went backwards (frames ignored).
    pub duplicates: u64,
    /// `gap` messages received.
    pub gap_messages: u64,
    /// Room sequence numbers those `gap` messages announced as lost.
    pub gap_frames: u64,
    /// `reset` messages received (each is a failure).
    pub reset_messages: u64,
    /// Text frames that were not a valid `gap`/`reset` message.
    pub bad_control: u64,
}

/// Connection set-up results.
#[derive(Serialize, Debug, Default, Clone)]
pub struct ConnReport {
    /// Connections attempted.
    pub requested: u64,
    /// Upgrades completed.
    pub ok: u64,
    /// Connections that never opened.
    pub failed: u64,
    /// Failure counts by reason.
    pub failures: BTreeMap<String, u64>,
    /// Open connections the server dropped before we closed them.
    pub unexpected_disconnects: u64,
    /// Time from the first connect to the last completed upgrade.
    pub connect_secs: f64,
    /// Upgrades per second over that time.
    pub connect_rate_per_sec: f64,
    /// TCP connect + upgrade time per connection.
    pub handshake_latency: Option<LatencyReport>,
}

/// Frame accounting.
#[derive(Serialize, Debug, Default, Clone)]
pub struct TrafficReport {
    /// Messages published (fanout) or sent (echo).
    pub messages_sent: u64,
    /// Connections that count as receivers (subscribers; echo clients).
    pub receivers: u64,
    /// Frames that should have arrived.
    pub expected_frames: u64,
    /// Valid frames that did arrive (at receivers only).
    pub received_frames: u64,
    /// expected − received (never negative).
    pub lost_frames: u64,
    /// Frames skipped in a per-publisher sequence (seen as jumps).
    pub gaps: u64,
    /// Frames whose sequence number went backwards or repeated.
    pub order_violations: u64,
    /// Frames that were not well-formed benchmark messages.
    pub malformed: u64,
    /// Time from the first publish to the last delivery.
    pub traffic_secs: f64,
    /// received_frames / traffic_secs.
    pub delivered_frames_per_sec: f64,
    /// messages_sent / traffic_secs.
    pub messages_per_sec: f64,
    /// Frames publishers received and discarded (the server's echo to them).
    pub publisher_frames_drained: u64,
}

/// One node (one `--url`) of a fanout run over several: its fast subscribers'
/// deliveries and latency. `traffic` and `latency` are the sums over all nodes.
#[derive(Serialize, Debug, Default, Clone)]
pub struct NodeReport {
    /// The node's `--url` as given.
    pub url: String,
    /// Publishers planned on it.
    pub publishers: u64,
    /// Fast subscribers open on it (the receivers counted here).
    pub subscribers: u64,
    /// Messages its publishers sent.
    pub messages_sent: u64,
    /// Frames its subscribers should have received: every message sent anywhere, or
    /// only the node's own with `--independent-nodes`, times `subscribers`.
    pub expected_frames: u64,
    /// Valid frames its subscribers received.
    pub received_frames: u64,
    /// expected − received (never negative).
    pub lost_frames: u64,
    /// Publish → receive latency at its subscribers.
    pub latency: Option<LatencyReport>,
}

/// Latency distribution in microseconds.
#[derive(Serialize, Debug, Default, Clone)]
pub struct LatencyReport {
    /// Samples.
    pub count: u64,
    /// Minimum.
    pub min_us: f64,
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Maximum.
    pub max_us: f64,
    /// (percentile, µs) points for plotting.
    pub percentiles: Vec<(f64, f64)>,
}

/// Percentiles sampled for the plot.
pub const PLOT_PERCENTILES: &[f64] = &[
    0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 75.0, 80.0, 85.0, 90.0, 92.5, 95.0, 96.0, 97.0,
    98.0, 99.0, 99.5, 99.7, 99.9, 99.95, 99.99, 99.995, 99.999, 100.0,
];

impl LatencyReport {
    /// Summarises a histogram recorded in nanoseconds; `None` if it is empty.
    pub fn from_hist(h: &Histogram<u64>) -> Option<Self> {
        if h.is_empty() {
            return None;
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        Some(LatencyReport {
            count: h.len(),
            min_us: us(h.min()),
            mean_us: h.mean() / 1000.0,
            p50_us: us(h.value_at_quantile(0.50)),
            p90_us: us(h.value_at_quantile(0.90)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
            percentiles: PLOT_PERCENTILES
                .iter()
                .map(|&p| (p, us(h.value_at_quantile(p / 100.0))))
                .collect(),
        })
    }
}

/// `n / secs`, 0 when no time elapsed.
pub fn rate(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

/// New latency histogram: 1 ns .. 1 h, 3 significant digits.
pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds")
}

/// Server resource use.
#[derive(Serialize, Debug, Default, Clone)]
pub struct ServerReport {
    /// The server's pid.
    pub pid: u32,
    /// Before any connection.
    pub before: Option<ServerSample>,
    /// With every connection open.
    pub after_connect: Option<ServerSample>,
    /// At the end of the traffic (connections still open).
    pub after_run: Option<ServerSample>,
    /// After the generator closed everything (connect workload).
    pub after_close: Option<ServerSample>,
    /// At the end of `--hold` after the traffic (fanout; connections still open, idle).
    pub after_hold: Option<ServerSample>,
    /// (after_connect − before) RSS / open connections, KiB.
    pub rss_per_connection_kib: Option<f64>,
    /// (after_hold − after_connect) RSS / open connections, KiB: what the traffic left
    /// behind per connection once it was over (fanout with `--hold`).
    pub rss_kept_after_traffic_per_connection_kib: Option<f64>,
    /// RSS over the publish phase (fanout).
    pub rss_over_time: Option<RssReport>,
}

impl ServerReport {
    /// Fills `rss_per_connection_kib` (and, with an `after_hold` sample,
    /// `rss_kept_after_traffic_per_connection_kib`) from the samples.
    pub fn compute_per_conn(&mut self, conns: u64) {
        if conns == 0 {
            return;
        }
        let per_conn = |from: ServerSample, to: ServerSample| {
            (to.rss_kib as f64 - from.rss_kib as f64) / conns as f64
        };
        if let (Some(b), Some(a)) = (self.before, self.after_connect) {
            self.rss_per_connection_kib = Some(per_conn(b, a));
        }
        if let (Some(a), Some(h)) = (self.after_connect, self.after_hold) {
            self.rss_kept_after_traffic_per_connection_kib = Some(per_conn(a, h));
        }
    }
}

/// The generator's own CPU use.
#[derive(Serialize, Debug, Default, Clone)]
pub struct GeneratorReport {
    /// Worker threads.
    pub threads: usize,
    /// Wall time of the measured section.
    pub wall_secs: f64,
    /// Process user CPU seconds.
    pub user_secs: f64,
    /// Process system CPU seconds.
    pub sys_secs: f64,
    /// (user + sys) / wall, in % of one core.
    pub cpu_pct_of_one_core: f64,
    /// Per worker thread.
    pub per_thread: Vec<ThreadCpu>,
    /// read(2) calls by all workers.
    pub reads: u64,
    /// send(2) calls by all workers.
    pub writes: u64,
    /// epoll_pwait2 calls by all workers.
    pub epoll_waits: u64,
}

/// One worker's CPU use.
#[derive(Serialize, Debug, Default, Clone)]
pub struct ThreadCpu {
    /// Worker index.
    pub thread: usize,
    /// CPU it was pinned to.
    pub pinned_to: Option<usize>,
    /// User + system CPU seconds.
    pub cpu_secs: f64,
    /// CPU / the thread's wall time, %.
    pub busy_pct: f64,
}

impl GeneratorReport {
    /// Builds the CPU part from the process totals (`process` over `wall_ns`), the
    /// workers' own CPU use (`per_thread`, see [`crate::runner::thread_cpus`]) and their
    /// system calls, `io` = (reads, writes, epoll waits).
    pub fn new(
        per_thread: Vec<ThreadCpu>,
        process: CpuTime,
        wall_ns: u64,
        io: (u64, u64, u64),
    ) -> Self {
        let wall = wall_ns.max(1) as f64 / 1e9;
        GeneratorReport {
            threads: per_thread.len(),
            wall_secs: wall,
            user_secs: process.user_ns as f64 / 1e9,
            sys_secs: process.sys_ns as f64 / 1e9,
            cpu_pct_of_one_core: process.total_ns() as f64 / 1e9 / wall * 100.0,
            per_thread,
            reads: io.0,
            writes: io.1,
            epoll_waits: io.2,
        }
    }
}

/// One open/close cycle of the connect workload.
#[derive(Serialize, Debug, Default, Clone)]
pub struct CycleReport {
    /// Cycle number (from 1).
    pub cycle: u32,
    /// Upgrades completed.
    pub opened: u64,
    /// Connections that failed to open.
    pub failed: u64,
    /// Time to open them all.
    pub open_secs: f64,
    /// opened / open_secs.
    pub upgrades_per_sec: f64,
    /// Time to close them all.
    pub close_secs: f64,
    /// Closes that ended as requested (handshake answered, or local reset/drop).
    pub closed_ok: u64,
    /// Clean closes that timed out or ended otherwise.
    pub close_problems: u64,
    /// Server sample with the connections open.
    pub server_open: Option<ServerSample>,
    /// Server sample after closing and settling.
    pub server_closed: Option<ServerSample>,
}

impl Report {
    /// Records a problem (makes the run not ok).
    pub fn problem(&mut self, p: impl Into<String>) {
        self.problems.push(p.into());
    }

    /// Sets `ok` from the problems found; call last.
    pub fn finalize(&mut self) {
        if let Some(t) = &self.traffic {
            if t.received_frames != t.expected_frames {
                let lost = t.expected_frames as i128 - t.received_frames as i128;
                self.problems.push(if lost > 0 {
                    format!(
                        "loss: {} of {} expected frames not received",
                        lost, t.expected_frames
                    )
                } else {
                    format!(
                        "{} more frames received than expected ({})",
                        -lost, t.expected_frames
                    )
                });
            }
            if t.order_violations > 0 {
                self.problems
                    .push(format!("{} order violations", t.order_violations));
            }
            if t.gaps > 0 {
                self.problems
                    .push(format!("{} frames skipped in sequence", t.gaps));
            }
            if t.malformed > 0 {
                self.problems
                    .push(format!("{} malformed frames", t.malformed));
            }
        }
        for n in &self.nodes {
            if n.received_frames != n.expected_frames {
                self.problems.push(format!(
                    "node {}: {} frames expected, {} received",
                    n.url, n.expected_frames, n.received_frames
                ));
            }
        }
        if let Some(c) = &self.churn {
            if c.room_seq_lost > 0 {
                self.problems.push(format!(
                    "churn: {} room sequence numbers lost ({} skipped, {} in {} gap messages)",
                    c.room_seq_lost, c.room_seq_skipped, c.gap_frames, c.gap_messages
                ));
            }
            if c.duplicates > 0 {
                self.problems.push(format!(
                    "churn: {} duplicate room sequence numbers",
                    c.duplicates
                ));
            }
            if c.reset_messages > 0 {
                self.problems
                    .push(format!("churn: {} reset messages", c.reset_messages));
            }
            if c.reconnect_failures > 0 {
                self.problems
                    .push(format!("churn: {} reconnects failed", c.reconnect_failures));
            }
            if c.not_resumed > 0 {
                self.problems.push(format!(
                    "churn: {} subscribers never resumed",
                    c.not_resumed
                ));
            }
            if c.bad_control > 0 {
                self.problems
                    .push(format!("churn: {} bad control messages", c.bad_control));
            }
        }
        if let Some(s) = &self.slow {
            let p = slow::problems(s, self.server_counters.as_ref());
            self.problems.extend(p);
        }
        if self.timed_out {
            self.problems.push("timed out (--timeout)".into());
        }
        self.ok = self.problems.is_empty();
    }

    /// Writes the JSON report.
    pub fn write_json(&self, path: &std::path::Path) -> io::Result<()> {
        let f = std::fs::File::create(path)?;
        let mut w = io::BufWriter::new(f);
        serde_json::to_writer_pretty(&mut w, self)?;
        w.write_all(b"\n")?;
        w.flush()
    }

    /// Prints the human summary table.
    pub fn print_summary(&self, out: &mut impl Write) -> io::Result<()> {
        let row = |out: &mut dyn Write, k: &str, v: String| writeln!(out, "  {k:<28} {v}");
        writeln!(out, "== ringcast-load {} ==", self.workload)?;
        let c = &self.connections;
        row(
            out,
            "connections ok / failed",
            format!("{} / {} (of {})", c.ok, c.failed, c.requested),
        )?;
        for (why, n) in &c.failures {
            row(out, "  failure", format!("{n} × {why}"))?;
        }
        if c.unexpected_disconnects > 0 {
            row(
                out,
                "unexpected disconnects",
                c.unexpected_disconnects.to_string(),
            )?;
        }
        row(
            out,
            "connect rate",
            format!(
                "{:.0} upgrades/s ({:.3} s)",
                c.connect_rate_per_sec, c.connect_secs
            ),
        )?;
        if let Some(h) = &c.handshake_latency {
            row(
                out,
                "handshake p50 / p99 / max",
                format!("{:.0} / {:.0} / {:.0} µs", h.p50_us, h.p99_us, h.max_us),
            )?;
        }
        if let Some(t) = &self.traffic {
            row(
                out,
                "messages sent",
                format!("{} ({:.0}/s)", t.messages_sent, t.messages_per_sec),
            )?;
            row(
                out,
                "frames expected / received",
                format!(
                    "{} / {} (lost {}, receivers {})",
                    t.expected_frames, t.received_frames, t.lost_frames, t.receivers
                ),
            )?;
            row(
                out,
                "gaps / order viol. / bad",
                format!("{} / {} / {}", t.gaps, t.order_violations, t.malformed),
            )?;
            row(
                out,
                "delivered frames/s",
                format!(
                    "{:.0} (over {:.3} s)",
                    t.delivered_frames_per_sec, t.traffic_secs
                ),
            )?;
            if t.publisher_frames_drained > 0 {
                row(
                    out,
                    "drained at publishers",
                    t.publisher_frames_drained.to_string(),
                )?;
            }
        }
        if let Some(c) = &self.churn {
            row(
                out,
                "churn",
                format!(
                    "{}%/s ({}): {} churned, {} resumed, {} not resumed, {} failed attempts, \
                     {} distinct subscribers",
                    c.percent_per_sec,
                    c.close_mode,
                    c.churned,
                    c.reconnects_ok,
                    c.not_resumed,
                    c.reconnect_failures,
                    c.subscribers_churned
                ),
            )?;
            for (why, n) in &c.reconnect_failure_reasons {
                row(out, "  reconnect failure", format!("{n} × {why}"))?;
            }
            if let Some(h) = &c.reconnect_latency {
                row(
                    out,
                    "resume p50 / p99 / max",
                    format!("{:.0} / {:.0} / {:.0} µs", h.p50_us, h.p99_us, h.max_us),
                )?;
            }
            row(
                out,
                "resumed (replayed) frames",
                c.resumed_frames.to_string(),
            )?;
            row(
                out,
                "room seq lost / dup.",
                format!(
                    "{} / {} (skipped {}, gap msgs {} = {} frames, resets {})",
                    c.room_seq_lost,
                    c.duplicates,
                    c.room_seq_skipped,
                    c.gap_messages,
                    c.gap_frames,
                    c.reset_messages
                ),
            )?;
        }
        if let Some(s) = &self.slow {
            slow::print(out, s, &row)?;
        }
        if let Some(c) = &self.server_counters {
            slow::print_server(out, c, &row)?;
        }
        if let Some(l) = &self.latency {
            row(
                out,
                "latency p50 / p90 / p99",
                format!("{:.1} / {:.1} / {:.1} µs", l.p50_us, l.p90_us, l.p99_us),
            )?;
            row(
                out,
                "latency p99.9 / max",
                format!(
                    "{:.1} / {:.1} µs ({} samples)",
                    l.p999_us, l.max_us, l.count
                ),
            )?;
        }
        for (i, n) in self.nodes.iter().enumerate() {
            row(out, &format!("node {i}"), n.url.clone())?;
            row(
                out,
                "  pubs / subs / sent",
                format!("{} / {} / {}", n.publishers, n.subscribers, n.messages_sent),
            )?;
            row(
                out,
                "  frames expected / received",
                format!(
                    "{} / {} (lost {})",
                    n.expected_frames, n.received_frames, n.lost_frames
                ),
            )?;
            if let Some(l) = &n.latency {
                row(
                    out,
                    "  latency p50 / p99",
                    format!("{:.1} / {:.1} µs", l.p50_us, l.p99_us),
                )?;
            }
        }
        if let Some(s) = &self.server {
            let fmt = |x: &Option<ServerSample>| match x {
                Some(v) => format!("{} KiB, {} fds", v.rss_kib, v.fds),
                None => "n/a".into(),
            };
            row(out, "server before", fmt(&s.before))?;
            row(out, "server after connect", fmt(&s.after_connect))?;
            if s.after_run.is_some() {
                row(out, "server after run", fmt(&s.after_run))?;
            }
            if s.after_hold.is_some() {
                row(out, "server after hold", fmt(&s.after_hold))?;
            }
            if s.after_close.is_some() {
                row(out, "server after close", fmt(&s.after_close))?;
            }
            if let Some(p) = s.rss_per_connection_kib {
                row(out, "server RSS per connection", format!("{p:.2} KiB"))?;
            }
            if let Some(p) = s.rss_kept_after_traffic_per_connection_kib {
                row(
                    out,
                    "server RSS kept after traffic",
                    format!("{p:+.2} KiB per connection (after hold − after connect)"),
                )?;
            }
            if let Some(r) = &s.rss_over_time {
                let kib = |v: Option<u64>| v.map_or("n/a".into(), |v| format!("{v} KiB"));
                row(
                    out,
                    "server RSS over time",
                    format!(
                        "at {:.0} s {}, end {}, max after {:.0} s {} ({} samples{})",
                        r.warmup_secs,
                        kib(r.at_warmup_end_kib),
                        kib(r.end_kib),
                        r.warmup_secs,
                        kib(r.max_after_warmup_kib),
                        r.samples.len(),
                        r.growth_after_warmup_pct
                            .map_or(String::new(), |g| format!(", growth {g:+.1} %")),
                    ) + &r
                        .late_growth_pct
                        .map_or(String::new(), |g| format!("; late growth {g:+.1} %")),
                )?;
            }
        }
        for cy in &self.cycles {
            let fds = |x: &Option<ServerSample>| {
                x.map(|v| format!("{} fds {} KiB", v.fds, v.rss_kib))
                    .unwrap_or_default()
            };
            row(
                out,
                &format!("cycle {}", cy.cycle),
                format!(
                    "open {}/{} at {:.0}/s, closed ok {} (problems {}) in {:.3} s {} {}",
                    cy.opened,
                    cy.opened + cy.failed,
                    cy.upgrades_per_sec,
                    cy.closed_ok,
                    cy.close_problems,
                    cy.close_secs,
                    if cy.server_open.is_some() {
                        "| open:"
                    } else {
                        ""
                    },
                    fds(&cy.server_open),
                ) + &if cy.server_closed.is_some() {
                    format!(" | closed: {}", fds(&cy.server_closed))
                } else {
                    String::new()
                },
            )?;
        }
        let g = &self.generator;
        row(
            out,
            "generator CPU",
            format!(
                "{:.0}% of one core (user {:.2} s, sys {:.2} s, {} threads, {:.2} s wall)",
                g.cpu_pct_of_one_core, g.user_secs, g.sys_secs, g.threads, g.wall_secs
            ),
        )?;
        let per: Vec<String> = g
            .per_thread
            .iter()
            .map(|t| match t.pinned_to {
                Some(c) => format!("#{}@cpu{} {:.0}%", t.thread, c, t.busy_pct),
                None => format!("#{} {:.0}%", t.thread, t.busy_pct),
            })
            .collect();
        row(out, "generator per thread", per.join(", "))?;
        row(
            out,
            "generator syscalls",
            format!(
                "{} reads, {} sends, {} epoll waits",
                g.reads, g.writes, g.epoll_waits
            ),
        )?;
        if self.ok {
            writeln!(out, "result: OK")?;
        } else {
            writeln!(out, "result: FAILED — {}", self.problems.join("; "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_from_hist() {
        let mut h = new_hist();
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap();
        }
        let l = LatencyReport::from_hist(&h).unwrap();
        assert_eq!(l.count, 1000);
        assert!((l.p50_us - 500.0).abs() < 2.0, "{}", l.p50_us);
        assert!((l.max_us - 1000.0).abs() < 2.0);
        assert_eq!(l.percentiles.len(), PLOT_PERCENTILES.len());
        assert!(LatencyReport::from_hist(&new_hist()).is_none());
    }

    #[test]
    fn finalize_flags_loss_and_order() {
        let mut r = Report {
            traffic: Some(TrafficReport {
                expected_frames: 10,
                received_frames: 10,
                ..Default::default()
            }),
            ..Default::default()
        };
        r.finalize();
        assert!(r.ok, "{:?}", r.problems);
        let mut r = Report {
            traffic: Some(TrafficReport {
                expected_frames: 10,
                received_frames: 9,
                order_violations: 1,
                ..Default::default()
            }),
            ..Default::default()
        };
        r.finalize();
        assert!(!r.ok);
        assert_eq!(r.problems.len(), 2, "{:?}", r.problems);
        let mut out = Vec::new();
        r.print_summary(&mut out).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains("FAILED"), "{s}");
    }

    #[test]
    fn finalize_flags_churn_loss_and_duplicates() {
        let mut r = Report {
            churn: Some(ChurnReport {
                churned: 5,
                reconnects_ok: 5,
                ..Default::default()
            }),
            ..Default::default()
        };
        r.finalize();
        assert!(r.ok, "{:?}", r.problems);
        let mut r = Report {
            churn: Some(ChurnReport {
                room_seq_lost: 3,
                gap_frames: 3,
                gap_messages: 1,
                duplicates: 1,
                reset_messages: 1,
                reconnect_failures: 2,
                ..Default::default()
            }),
            ..Default::default()
        };
        r.finalize();
        assert!(!r.ok);
        assert_eq!(r.problems.len(), 4, "{:?}", r.problems);
        let mut out = Vec::new();
        r.print_summary(&mut out).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains("room seq lost / dup."), "{s}");
    }
}

//! What each fanout thread measured ([`ThreadResult`]), the threads' results added up,
//! and the report sections made from the sum: connections, traffic, latency, churn,
//! slow consumers, the generator's own CPU, and the problem lines.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use super::phases::{self, Connected};
use super::setup::Cfg;
use crate::cli::FanoutArgs;
use crate::message::{OrderStats, RoomStats};
use crate::report::{
    self, rate, ChurnReport, ConnReport, LatencyReport, NodeReport, Report, TrafficReport,
};
use crate::runner::{self, WorkerOut};
use crate::slow::{SlowReport, SlowStats};
use crate::sys::CpuTime;

/// What one thread measured (fast subscribers and publishers; slow ones in `slow`).
pub(super) struct ThreadResult {
    /// Publish → receive latency (ns).
    pub(super) hist: Histogram<u64>,
    /// Connect → upgrade completed (ns).
    pub(super) handshake: Histogram<u64>,
    pub(super) order: OrderStats,
    pub(super) malformed: u64,
    /// Frames the server sent to publishers (read and dropped).
    pub(super) pub_frames: u64,
    /// Failed connections by [`crate::conn::Failure::category`].
    pub(super) failures: BTreeMap<String, u64>,
    /// Connections the server dropped.
    pub(super) disconnects: u64,
    /// When the last frame arrived (ns).
    pub(super) last_rx_ns: u64,
    pub(super) reads: u64,
    pub(super) writes: u64,
    pub(super) waits: u64,
    /// Why the thread could not run (event loop or epoll error).
    pub(super) error: Option<String>,
    pub(super) churn: ChurnResult,
    pub(super) slow: SlowStats,
    /// Per node (`--url`), fast subscribers only; empty with one URL.
    pub(super) nodes: Vec<NodeResult>,
}

/// What one thread's fast subscribers on one node received.
pub(super) struct NodeResult {
    /// Valid frames received.
    pub(super) received: u64,
    /// Publish → receive latency (ns).
    pub(super) hist: Histogram<u64>,
}

/// What one thread's churn did.
pub(super) struct ChurnResult {
    pub(super) room: RoomStats,
    pub(super) churned: u64,
    pub(super) reconnects_ok: u64,
    pub(super) reconnect_failures: u64,
    /// Failed resumes by reason.
    pub(super) reasons: BTreeMap<String, u64>,
    pub(super) subscribers_churned: u64,
    pub(super) resumed_frames: u64,
    pub(super) bad_control: u64,
    /// Churn close → resumed upgrade completed (ns).
    pub(super) reconnect_hist: Histogram<u64>,
}

impl ThreadResult {
    /// Nothing measured yet, for a run over `nodes` URLs.
    pub(super) fn new(nodes: usize) -> Self {
        ThreadResult {
            hist: report::new_hist(),
            handshake: report::new_hist(),
            order: OrderStats::default(),
            malformed: 0,
            pub_frames: 0,
            failures: BTreeMap::new(),
            disconnects: 0,
            last_rx_ns: 0,
            reads: 0,
            writes: 0,
            waits: 0,
            error: None,
            churn: ChurnResult {
                room: RoomStats::default(),
                churned: 0,
                reconnects_ok: 0,
                reconnect_failures: 0,
                reasons: BTreeMap::new(),
                subscribers_churned: 0,
                resumed_frames: 0,
                bad_control: 0,
                reconnect_hist: report::new_hist(),
            },
            slow: SlowStats::default(),
            nodes: if nodes > 1 {
                (0..nodes)
                    .map(|_| NodeResult {
                        received: 0,
                        hist: report::new_hist(),
                    })
                    .collect()
            } else {
                Vec::new()
            },
        }
    }

    /// Adds `o`'s counts and histograms to these; `last_rx_ns` becomes the later of the
    /// two and `error` keeps the first one.
    fn add(&mut self, o: &ThreadResult) {
        self.hist.add(&o.hist).expect("same histogram bounds");
        self.handshake
            .add(&o.handshake)
            .expect("same histogram bounds");
        self.order.add(&o.order);
        self.malformed += o.malformed;
        self.pub_frames += o.pub_frames;
        add_counts(&mut self.failures, &o.failures);
        self.disconnects += o.disconnects;
        self.last_rx_ns = self.last_rx_ns.max(o.last_rx_ns);
        self.reads += o.reads;
        self.writes += o.writes;
        self.waits += o.waits;
        self.churn.add(&o.churn);
        self.slow.add(&o.slow);
        for (n, o) in self.nodes.iter_mut().zip(&o.nodes) {
            n.received += o.received;
            n.hist.add(&o.hist).expect("same histogram bounds");
        }
    }
}

impl ChurnResult {
    fn add(&mut self, o: &ChurnResult) {
        self.room.add(&o.room);
        self.churned += o.churned;
        self.reconnects_ok += o.reconnects_ok;
        self.reconnect_failures += o.reconnect_failures;
        add_counts(&mut self.reasons, &o.reasons);
        self.subscribers_churned += o.subscribers_churned;
        self.resumed_frames += o.resumed_frames;
        self.bad_control += o.bad_control;
        self.reconnect_hist
            .add(&o.reconnect_hist)
            .expect("same histogram bounds");
    }

    /// The report section for these totals under `args`' churn settings.
    fn report(&self, args: &FanoutArgs) -> ChurnReport {
        let room = &self.room;
        ChurnReport {
            percent_per_sec: args.churn,
            close_mode: format!("{:?}", args.churn_close).to_lowercase(),
            churned: self.churned,
            reconnects_ok: self.reconnects_ok,
            reconnect_failures: self.reconnect_failures,
            reconnect_failure_reasons: self.reasons.clone(),
            subscribers_churned: self.subscribers_churned,
            resumed_frames: self.resumed_frames,
            bad_control: self.bad_control,
            reconnect_latency: LatencyReport::from_hist(&self.reconnect_hist),
            not_resumed: self.churned.saturating_sub(self.reconnects_ok),
            room_seq_lost: room.lost(),
            room_seq_skipped: room.skipped,
            duplicates: room.duplicates,
            gap_messages: room.gap_messages,
            gap_frames: room.gap_frames,
            reset_messages: room.resets,
        }
    }
}

fn add_counts(into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (k, v) in from {
        *into.entry(k.clone()).or_insert(0) += v;
    }
}

/// The run as the coordinator saw it, next to what the threads measured.
pub(super) struct Run {
    pub(super) connected: Connected,
    /// When publishing started (or would have), ns.
    pub(super) publish_start: u64,
    pub(super) timed_out: bool,
    /// Messages published.
    pub(super) sent: u64,
    /// Of `sent`, per node.
    pub(super) sent_by_node: Vec<u64>,
    /// The process's CPU use over the run.
    pub(super) cpu: CpuTime,
    /// The run's wall time, ns.
    pub(super) wall_ns: u64,
}

/// Fills `rep`'s sections from the threads' results and records the problems they show.
pub(super) fn fill_report(
    rep: &mut Report,
    cfg: &Cfg,
    run: &Run,
    workers: &[WorkerOut<ThreadResult>],
) {
    let args = &cfg.args;
    let mut m = ThreadResult::new(cfg.nodes);
    for w in workers {
        m.add(&w.result);
        if let Some(e) = &w.result.error {
            rep.problem(e.clone());
        }
    }
    let c = &run.connected;
    let (sent, fast_open) = (run.sent, c.fast_open());
    let failed: u64 = m.failures.values().sum();
    let traffic_secs = if m.last_rx_ns > run.publish_start {
        (m.last_rx_ns - run.publish_start) as f64 / 1e9
    } else {
        0.0
    };
    let targets = c.targets(args.independent_nodes);
    let expected = phases::expected(&targets, &run.sent_by_node);
    let ok = c.subs_open + c.pubs_open;
    rep.connections = ConnReport {
        requested: (args.subscribers + args.publishers) as u64,
        ok,
        failed,
        failures: m.failures.clone(),
        unexpected_disconnects: m.disconnects,
        connect_secs: c.connect_secs,
        connect_rate_per_sec: rate(ok, c.connect_secs),
        handshake_latency: LatencyReport::from_hist(&m.handshake),
    };
    rep.traffic = Some(TrafficReport {
        messages_sent: sent,
        receivers: fast_open,
        expected_frames: expected,
        received_frames: m.order.received,
        lost_frames: expected.saturating_sub(m.order.received),
        gaps: m.order.gaps,
        order_violations: m.order.order_violations,
        malformed: m.malformed,
        traffic_secs,
        delivered_frames_per_sec: rate(m.order.received, traffic_secs),
        messages_per_sec: rate(sent, traffic_secs),
        publisher_frames_drained: m.pub_frames,
    });
    rep.latency = LatencyReport::from_hist(&m.hist);
    rep.nodes = node_reports(cfg, run, &m.nodes);
    if args.churn > 0.0 {
        rep.churn = Some(m.churn.report(args));
    }
    if cfg.n_slow > 0 {
        rep.slow = Some(SlowReport::new(args, sent, fast_open, c.slow_open, &m.slow));
    }
    rep.generator = report::GeneratorReport::new(
        runner::thread_cpus(workers),
        run.cpu,
        run.wall_ns,
        (m.reads, m.writes, m.waits),
    );
    rep.timed_out = run.timed_out;
    rep.wall_secs = run.wall_ns as f64 / 1e9;
    if failed > 0 {
        rep.problem(format!("{failed} connections failed"));
    }
    if m.disconnects > 0 {
        rep.problem(disconnect_problem(m.disconnects, args));
    }
    if sent == 0 && rep.problems.is_empty() {
        rep.problem("nothing was published");
    }
}

/// The per-node report sections (none with one URL): what node `i`'s fast subscribers
/// received (`nodes[i]`) against what they should have: every message published
/// anywhere, or with `--independent-nodes` those published on node `i`.
fn node_reports(cfg: &Cfg, run: &Run, nodes: &[NodeResult]) -> Vec<NodeReport> {
    let args = &cfg.args;
    let c = &run.connected;
    let total_sent = run.sent;
    nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let url = &args.common.urls[i];
            let subscribers = c.fast_by_node[i];
            let from = if args.independent_nodes {
                run.sent_by_node[i]
            } else {
                total_sent
            };
            let expected = from.saturating_mul(subscribers);
            NodeReport {
                url: format!(
                    "{}://{}{}",
                    if url.tls { "wss" } else { "ws" },
                    url.host,
                    cfg.base_paths[i]
                ),
                publishers: (0..args.publishers as u64)
                    .filter(|&p| runner::node_of(p, cfg.nodes) == i)
                    .count() as u64,
                subscribers,
                messages_sent: run.sent_by_node[i],
                expected_frames: expected,
                received_frames: n.received,
                lost_frames: expected.saturating_sub(n.received),
                latency: LatencyReport::from_hist(&n.hist),
            }
        })
        .collect()
}

/// The problem line for `n` connections the server dropped (slow subscribers excepted).
fn disconnect_problem(n: u64, args: &FanoutArgs) -> String {
    if args.churn > 0.0 {
        format!(
            "{n} connections dropped by the server (--churn needs a server with --history N: \
             `?seq=1` is refused with 1008 otherwise)"
        )
    } else if args.slow_fraction > 0.0 {
        format!("{n} fast subscribers or publishers dropped by the server")
    } else {
        format!("{n} connections dropped by the server")
    }
}

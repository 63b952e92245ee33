//! The coordinator's side of a fanout run while the workers run: wait until every
//! planned connection is open or failed ([`connect`]), then start publishing, follow the
//! progress and decide when the drain is over ([`publish`]).

use std::sync::atomic::Ordering::*;
use std::time::Duration;

use super::setup::{Cfg, Shared, PH_DRAIN, PH_PUBLISH};
use crate::progress::Progress;
use crate::sys;
use crate::watch::Watch;

/// The connections open at the end of the connect phase.
pub(super) struct Connected {
    /// Subscribers open, slow ones included.
    pub(super) subs_open: u64,
    /// Of `subs_open`, the slow ones (`--slow-fraction`).
    pub(super) slow_open: u64,
    pub(super) pubs_open: u64,
    /// Per node (`--url`): fast subscribers open there.
    pub(super) fast_by_node: Vec<u64>,
    /// From the first connect to the last upgrade completed, seconds.
    pub(super) connect_secs: f64,
}

impl Connected {
    /// The receivers every publish must reach: the fast subscribers.
    pub(super) fn fast_open(&self) -> u64 {
        self.subs_open - self.slow_open
    }

    /// Per node: the fast subscribers a message published there must reach — all of
    /// them, or with `independent` (`--independent-nodes`) the node's own.
    pub(super) fn targets(&self, independent: bool) -> Vec<u64> {
        let all = self.fast_open();
        self.fast_by_node
            .iter()
            .map(|&n| if independent { n } else { all })
            .collect()
    }

    /// Why publishing cannot start (empty when it can). With `independent` nodes each
    /// node needs a fast subscriber of its own.
    pub(super) fn missing(&self, cfg: &Cfg) -> Vec<String> {
        let mut why = Vec::new();
        if self.subs_open == 0 {
            why.push("no subscriber connected".to_string());
        } else if self.fast_open() == 0 {
            why.push("no fast subscriber connected".to_string());
        } else if cfg.args.independent_nodes {
            for (url, &n) in cfg.args.common.urls.iter().zip(&self.fast_by_node) {
                if n == 0 {
                    why.push(format!("no fast subscriber connected to {}", url.host));
                }
            }
        }
        if self.pubs_open == 0 {
            why.push("no publisher connected".to_string());
        }
        why
    }
}

/// Frames the fast subscribers should receive when `sent_by_node[n]` messages were
/// published on node `n` and each must reach `targets[n]` of them.
pub(super) fn expected(targets: &[u64], sent_by_node: &[u64]) -> u64 {
    targets
        .iter()
        .zip(sent_by_node)
        .map(|(&t, &s)| t.saturating_mul(s))
        .fold(0u64, u64::saturating_add)
}

/// The per-node publish counts so far.
pub(super) fn sent_by_node(sh: &Shared) -> Vec<u64> {
    sh.sent_by_node.iter().map(|s| s.load(Acquire)).collect()
}

/// Waits until every worker has opened (or failed) its planned connections, or the
/// deadline passes (then the second value is true). `connect_start` is when the workers
/// were spawned (ns).
pub(super) fn connect(
    cfg: &Cfg,
    sh: &Shared,
    progress: &mut Progress,
    connect_start: u64,
) -> (Connected, bool) {
    let args = &cfg.args;
    progress.phase("connect", (args.subscribers + args.publishers) as u64);
    let mut timed_out = false;
    while sh.threads_connected.load(Acquire) < cfg.threads {
        if sys::now_ns() >= cfg.deadline_ns {
            timed_out = true;
            break;
        }
        let open = sh.subs_open.load(Relaxed) + sh.pubs_open.load(Relaxed);
        let failed = sh.failed.load(Relaxed);
        progress.update(open + failed, &format!("open {open} failed {failed}"));
        std::thread::sleep(Duration::from_millis(10));
    }
    let last_open = sh.last_open_ns.load(Acquire).max(connect_start);
    let c = Connected {
        subs_open: sh.subs_open.load(Acquire),
        slow_open: sh.slow_open.load(Acquire),
        pubs_open: sh.pubs_open.load(Acquire),
        fast_by_node: sh.fast_open.iter().map(|n| n.load(Acquire)).collect(),
        connect_secs: (last_open - connect_start) as f64 / 1e9,
    };
    (c, timed_out)
}

/// Publishes to the fast subscribers after `--settle`: starts the publish phase,
/// switches to the drain when enough was sent (or `--duration` passed), and returns once
/// every thread acknowledged the drain, every sent message reached the fast subscribers
/// it must reach ([`Connected::targets`]) and no churned subscriber is waiting to resume.
/// Returns when publishing started (ns) and whether the deadline passed first.
pub(super) fn publish(
    cfg: &Cfg,
    sh: &Shared,
    c: &Connected,
    watch: &mut Watch,
    progress: &mut Progress,
) -> (u64, bool) {
    let args = &cfg.args;
    let targets = c.targets(args.independent_nodes);
    std::thread::sleep(args.settle);
    for (n, &t) in sh.n_subs.iter().zip(&targets) {
        n.store(t, Release);
    }
    let publish_start = sys::now_ns();
    watch.publishing(args, publish_start);
    sh.phase.store(PH_PUBLISH, Release);
    sh.wakers.wake_all();
    // Publishers are spread evenly over the nodes.
    let per_message = targets.iter().sum::<u64>() / cfg.nodes as u64;
    let total_expected = cfg.messages.saturating_mul(per_message);
    let phase_len = match args.duration {
        Some(d) => d.as_millis() as u64,
        None => total_expected,
    };
    progress.phase("publish", phase_len);
    let pub_end = args.duration.map(|d| publish_start + d.as_nanos() as u64);
    let mut draining = false;
    loop {
        let now = sys::now_ns();
        if now >= cfg.deadline_ns {
            return (publish_start, true);
        }
        watch.tick(now);
        let sent = sh.sent.load(Acquire);
        let received = sh.received.load(Acquire);
        if !draining
            && (sent >= cfg.messages
                || pub_end.is_some_and(|e| now >= e)
                || (sh.issued.load(Acquire) >= cfg.messages && args.rate > 0))
        {
            draining = true;
            sh.phase.store(PH_DRAIN, Release);
            sh.wakers.wake_all();
        }
        if draining
            && sh.drain_acks.load(Acquire) >= cfg.threads
            && sh.received.load(Acquire) >= expected(&targets, &sent_by_node(sh))
            && sh.resumes_pending.load(Acquire) == 0
        {
            return (publish_start, false);
        }
        let secs = (now - publish_start) as f64 / 1e9;
        let msg = format!(
            "sent {sent} delivered {received} ({:.0}/s)",
            received as f64 / secs.max(1e-9)
        );
        let pos = if args.duration.is_some() {
            (now - publish_start) / 1_000_000
        } else {
            received
        };
        progress.update(pos, &msg);
        std::thread::sleep(Duration::from_millis(2));
    }
}

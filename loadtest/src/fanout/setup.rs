//! Before the fanout run starts: the arguments checked, and the state every thread shares
//! built from them — the immutable [`Cfg`] and the atomics of [`Shared`], including the
//! run phase ([`PH_CONNECT`] → [`PH_PUBLISH`] → [`PH_DRAIN`] → [`PH_STOP`]).

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize};
use std::time::Duration;

use super::churn::with_query;
use crate::cli::{self, FanoutArgs, Transport};
use crate::message;
use crate::report::Report;
use crate::runner::{self, Wakers};
use crate::slow;
use crate::sys;
use crate::tls::TlsClient;

/// Run phase: connections are being opened.
pub(super) const PH_CONNECT: u8 = 0;
/// Run phase: publishers publish.
pub(super) const PH_PUBLISH: u8 = 1;
/// Run phase: publishing stopped, in-flight messages drain.
pub(super) const PH_DRAIN: u8 = 2;
/// Run phase: every worker stops.
pub(super) const PH_STOP: u8 = 3;

/// Immutable run parameters shared by all threads.
pub(super) struct Cfg {
    pub(super) args: FanoutArgs,
    pub(super) threads: usize,
    /// Messages to publish in total (u64::MAX with --duration).
    pub(super) messages: u64,
    /// When the whole run is given up (`--timeout`), ns on the [`sys::now_ns`] clock.
    pub(super) deadline_ns: u64,
    /// Closed-loop ring size per publisher (power of two ≥ in_flight), 0 when open loop.
    pub(super) ring: u64,
    /// Each `--url`'s path and query as given (resumes append `since=N` to it).
    pub(super) base_paths: Vec<String>,
    /// `--transport sse`: each node's `/sse/{room}` path for subscribers.
    pub(super) sse_paths: Option<Vec<String>>,
    /// Number of `--url`s (nodes); connection i goes to node i mod `nodes`.
    pub(super) nodes: usize,
    /// Subscribers churned per second over all threads (0 = churn off).
    pub(super) churn_per_tick: u64,
    /// wss://: the shared TLS client configuration.
    pub(super) tls: Option<TlsClient>,
    /// Slow subscribers in all (`--slow-fraction`).
    pub(super) n_slow: u64,
}

/// Cross-thread state.
pub(super) struct Shared {
    pub(super) phase: AtomicU8,
    pub(super) subs_open: AtomicU64,
    /// Of `subs_open`, the slow ones.
    pub(super) slow_open: AtomicU64,
    pub(super) pubs_open: AtomicU64,
    pub(super) failed: AtomicU64,
    pub(super) threads_connected: AtomicUsize,
    pub(super) last_open_ns: AtomicU64,
    /// Per node: the fast subscribers a message published there must reach (set when
    /// publishing starts; all of them, or that node's with `--independent-nodes`).
    pub(super) n_subs: Vec<AtomicU64>,
    /// Per node: fast subscribers open there (first connections).
    pub(super) fast_open: Vec<AtomicU64>,
    pub(super) issued: AtomicU64,
    pub(super) sent: AtomicU64,
    /// Per node: messages published there.
    pub(super) sent_by_node: Vec<AtomicU64>,
    pub(super) completed: AtomicU64,
    pub(super) received: AtomicU64,
    pub(super) drain_acks: AtomicUsize,
    /// Churned subscribers not resumed yet (the drain waits for them).
    pub(super) resumes_pending: AtomicU64,
    /// Closed loop: deliveries counted per (publisher, seq % ring).
    pub(super) slot_counts: Vec<AtomicU32>,
    pub(super) wakers: Wakers,
    /// Which threads own at least one publisher.
    pub(super) pub_threads: Vec<bool>,
}

/// Checks the arguments and builds the shared state for a run that started at `t0`
/// (ns). `None` when the run cannot start; the reason is then recorded in `rep`. With
/// `--churn`, `args`' URL paths get the sequence framing (`seq=1`); with several URLs,
/// `--publishers` is raised to one per URL if lower.
pub(super) fn prepare(args: &mut FanoutArgs, rep: &mut Report, t0: u64) -> Option<(Cfg, Shared)> {
    let threads = runner::thread_count(&args.common);
    if let Err(e) = validate(args) {
        rep.problem(e);
        return None;
    }
    let nodes = args.common.urls.len();
    args.publishers = args.publishers.max(nodes);
    let total_conns = (args.subscribers + args.publishers) as u64;
    if let Err(e) = sys::ensure_fd_budget(total_conns, threads) {
        rep.problem(e);
        return None;
    }
    let tls = runner::tls_for(rep, &args.common);
    let wakers = runner::wakers_for(rep, threads)?;
    let timeout = args.common.timeout.unwrap_or_else(|| {
        args.hold
            + match args.duration {
                Some(d) => d + Duration::from_secs(30),
                None => Duration::from_secs(60),
            }
    });
    let ring = if args.rate == 0 {
        args.in_flight.max(1).next_power_of_two()
    } else {
        0
    };
    let messages = match (args.messages, args.duration) {
        (Some(m), _) => m,
        (None, Some(_)) => u64::MAX,
        (None, None) => 1000,
    };
    let base_paths: Vec<String> = args.common.urls.iter().map(|u| u.path.clone()).collect();
    let churn_per_tick = if args.churn > 0.0 {
        // Every connection (publishers too, harmlessly) gets the sequence framing.
        for u in &mut args.common.urls {
            u.path = with_query(&u.path, "seq=1");
        }
        (args.churn / 100.0 * args.subscribers as f64)
            .ceil()
            .max(1.0) as u64
    } else {
        0
    };
    let sh = Shared {
        phase: AtomicU8::new(PH_CONNECT),
        subs_open: AtomicU64::new(0),
        slow_open: AtomicU64::new(0),
        pubs_open: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        threads_connected: AtomicUsize::new(0),
        last_open_ns: AtomicU64::new(0),
        n_subs: (0..nodes).map(|_| AtomicU64::new(0)).collect(),
        fast_open: (0..nodes).map(|_| AtomicU64::new(0)).collect(),
        issued: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        sent_by_node: (0..nodes).map(|_| AtomicU64::new(0)).collect(),
        completed: AtomicU64::new(0),
        received: AtomicU64::new(0),
        drain_acks: AtomicUsize::new(0),
        resumes_pending: AtomicU64::new(0),
        slot_counts: (0..args.publishers as u64 * ring)
            .map(|_| AtomicU32::new(0))
            .collect(),
        wakers,
        pub_threads: (0..threads)
            .map(|t| (t as u64) < (args.publishers as u64).min(threads as u64))
            .collect(),
    };
    let cfg = Cfg {
        args: args.clone(),
        threads,
        messages,
        deadline_ns: t0 + timeout.as_nanos() as u64,
        ring,
        base_paths,
        sse_paths: match args.transport {
            Transport::Ws => None,
            Transport::Sse => args
                .common
                .urls
                .iter()
                .map(|u| cli::sse_path(&u.path))
                .collect::<Result<_, _>>()
                .ok(),
        },
        nodes,
        churn_per_tick,
        tls,
        n_slow: slow::slow_count(args.subscribers, args.slow_fraction),
    };
    Some((cfg, sh))
}

/// The argument combinations a fanout run refuses, as the message to show.
fn validate(a: &FanoutArgs) -> Result<(), String> {
    if a.size < message::HEADER_LEN {
        return Err(format!(
            "--size must be at least {} bytes",
            message::HEADER_LEN
        ));
    }
    if a.subscribers == 0 {
        return Err("--subscribers must be at least 1".into());
    }
    // Raised to one per URL (see `prepare`).
    let publishers = a.publishers.max(a.common.urls.len()) as u64;
    if a.publishers == 0 || publishers > message::MAX_SENDERS {
        return Err(format!(
            "--publishers must be between 1 and {}",
            message::MAX_SENDERS
        ));
    }
    if a.subscribers > u32::MAX as usize / 2 {
        return Err("too many subscribers".into());
    }
    if a.rate == 0 && a.in_flight > 1 << 20 {
        return Err("--in-flight too large".into());
    }
    if a.churn > 0.0 && a.common.urls.iter().any(|u| u.path.contains('#')) {
        return Err("--churn: the --url path must not have a fragment".into());
    }
    let n_slow = slow::slow_count(a.subscribers, a.slow_fraction);
    if n_slow > 0 && a.churn > 0.0 {
        return Err("--slow-fraction and --churn cannot be combined".into());
    }
    if n_slow >= a.subscribers as u64 && a.slow_fraction > 0.0 {
        return Err("--slow-fraction must leave at least one fast subscriber".into());
    }
    if a.transport == Transport::Sse {
        if a.deflate {
            return Err(
                "--transport sse: --deflate is WebSocket compression; an event \
                        stream has none (drop --deflate)"
                    .into(),
            );
        }
        if a.churn > 0.0 {
            return Err(
                "--transport sse: --churn resumes WebSocket subscribers with \
                        ?since=; SSE resume (Last-Event-ID) is not driven by the generator"
                    .into(),
            );
        }
        for u in &a.common.urls {
            cli::sse_path(&u.path)?;
        }
    }
    if a.slow_read_bytes == 0 {
        return Err("--slow-read-bytes must be at least 1".into());
    }
    Ok(())
}

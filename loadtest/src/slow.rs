//! Slow subscribers (`fanout --slow-fraction F`): which subscribers are slow, how they
//! read, what they received, and the fast/slow split of the report.
//!
//! * **Choice.** With n = round(F × S) of S subscribers, subscriber j (from 0) is slow
//!   when ⌊(j+1)·n/S⌋ > ⌊j·n/S⌋: exactly n of them, evenly spread (every 10th at 10 %),
//!   and so spread over the source addresses like every other connection.
//! * **Reading.** A slow subscriber's connection is *throttled* once its upgrade
//!   completed: the event loop no longer reads it on readiness. `stall` never reads it
//!   again; `trickle` makes one `read(2)` of `--slow-read-bytes` every
//!   `--slow-read-interval` ([`Trickle`]). Either way the socket buffers fill, then the
//!   server's queue, and the server applies its `--slow-policy`.
//! * **Accounting.** Fast subscribers are the run's `traffic` (every publish expected,
//!   any loss fails the run). Slow ones are reported apart ([`SlowReport`]): expected =
//!   every publish; of those, `received`, `missing_in_sequence` (skipped before a later
//!   frame arrived: what `drop-newest`/`drop-oldest` discarded, as far as the subscriber
//!   has read) and `not_received` (the rest: after a `close` policy's close, still in a
//!   buffer, or dropped at the tail). How slow connections ended, as far as the client
//!   saw, is counted by reason; a stalled reader never reads the server's close frame, so
//!   the server's own counters (`--metrics-url`) are what says how many it closed.
//! * **Checks** ([`problems`]): slow frames must still be in order and well formed; the
//!   server must not have closed more connections as slow consumers than there were slow
//!   subscribers (that would be a fast one); frames missing in slow sequences cannot
//!   exceed what the server reports as dropped by policy.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::time::Duration;

use serde::Serialize;

use crate::cli::{FanoutArgs, SlowMode};
use crate::conn::Closed;
use crate::message::OrderStats;
use crate::prom::ServerCounters;

/// How many of `subscribers` are slow at `fraction` (rounded to the nearest).
pub fn slow_count(subscribers: usize, fraction: f64) -> u64 {
    (fraction * subscribers as f64).round() as u64
}

/// Whether subscriber `j` (0-based) of `subscribers` is one of the `n_slow` slow ones.
pub fn is_slow(j: u64, subscribers: u64, n_slow: u64) -> bool {
    if subscribers == 0 {
        return false;
    }
    let (j, s, n) = (j as u128, subscribers as u128, n_slow as u128);
    (j + 1) * n / s > j * n / s
}

/// What one thread's slow subscribers received and how their connections ended.
#[derive(Debug, Default, Clone)]
pub struct SlowStats {
    /// Valid benchmark frames, with per-publisher sequence checks.
    pub order: OrderStats,
    /// Frames that were not well-formed benchmark messages.
    pub malformed: u64,
    /// Connections that ended during the run, by [`ended_reason`].
    pub ended: BTreeMap<String, u64>,
    /// Trickle reads made and bytes they returned.
    pub reads: u64,
    /// Bytes those reads returned.
    pub bytes_read: u64,
}

impl SlowStats {
    /// Adds another thread's counts.
    pub fn add(&mut self, o: &SlowStats) {
        self.order.received += o.order.received;
        self.order.gaps += o.order.gaps;
        self.order.order_violations += o.order.order_violations;
        self.malformed += o.malformed;
        for (k, v) in &o.ended {
            *self.ended.entry(k.clone()).or_insert(0) += v;
        }
        self.reads += o.reads;
        self.bytes_read += o.bytes_read;
    }

    /// Counts a slow connection that ended.
    pub fn ended(&mut self, why: &Closed) {
        *self.ended.entry(ended_reason(why)).or_insert(0) += 1;
    }
}

/// A short, stable name for how a connection ended (a report key).
pub fn ended_reason(why: &Closed) -> String {
    match why {
        Closed::Failed(f) => f.category(),
        Closed::Clean => "clean close".into(),
        Closed::ServerClose(code) => format!("close {code} from server"),
        Closed::Eof => "eof (no close frame)".into(),
        Closed::Reset(e) => format!("reset: {}", io::Error::from_raw_os_error(*e)),
        Closed::Protocol(p) => format!("protocol: {p}"),
        Closed::CloseTimeout => "close timeout".into(),
        Closed::StreamEnd => "event stream ended by server".into(),
    }
}

/// One thread's trickle schedule: when its slow subscribers read next.
#[derive(Debug, Clone)]
pub struct Trickle {
    /// Bytes per read.
    pub bytes: usize,
    interval_ns: u64,
    next_ns: u64,
}

impl Trickle {
    /// First reads one interval after `now`.
    pub fn new(bytes: usize, interval: Duration, now: u64) -> Self {
        let interval_ns = (interval.as_nanos() as u64).max(1);
        Trickle {
            bytes: bytes.max(1),
            interval_ns,
            next_ns: now + interval_ns,
        }
    }

    /// Whether a round of reads is due at `now` (then the next is scheduled; rounds
    /// missed by a late loop are not made up for).
    pub fn due(&mut self, now: u64) -> bool {
        if now < self.next_ns {
            return false;
        }
        self.next_ns += self.interval_ns;
        if self.next_ns <= now {
            self.next_ns = now + self.interval_ns;
        }
        true
    }

    /// Nanoseconds until the next round.
    pub fn wait_ns(&self, now: u64) -> u64 {
        self.next_ns.saturating_sub(now)
    }
}

/// Fast/slow split of a fanout run with `--slow-fraction` (fast subscribers are in
/// `traffic`; everything here is about the slow ones unless named `fast_`).
#[derive(Serialize, Debug, Default, Clone)]
pub struct SlowReport {
    /// `--slow-fraction` (0..1).
    pub fraction: f64,
    /// `stall` or `trickle`.
    pub mode: String,
    /// `trickle`: bytes per read.
    pub read_bytes: Option<usize>,
    /// `trickle`: ms between reads.
    pub read_interval_ms: Option<f64>,
    /// Fast subscribers connected (the receivers of `traffic`).
    pub fast_subscribers: u64,
    /// Slow subscribers connected.
    pub subscribers: u64,
    /// Every publish × slow subscribers.
    pub expected_frames: u64,
    /// Valid frames they read.
    pub received_frames: u64,
    /// Frames skipped in their per-publisher sequences before a later one arrived
    /// (dropped by the server's drop-newest/drop-oldest, as far as they have read).
    pub missing_in_sequence: u64,
    /// expected − received − missing: frames after a server close, still buffered
    /// (kernel or server queue) or dropped at the tail.
    pub not_received: u64,
    /// Slow frames whose sequence number went backwards or repeated.
    pub order_violations: u64,
    /// Slow frames that were not well-formed benchmark messages.
    pub malformed: u64,
    /// Slow connections that ended during the run, by how the client saw it end.
    pub ended: BTreeMap<String, u64>,
    /// Slow connections still open (client view) at the end.
    pub open_at_end: u64,
    /// `trickle`: reads made and bytes they returned.
    pub trickle_reads: u64,
    /// Bytes those reads returned.
    pub trickle_bytes: u64,
}

impl SlowReport {
    /// Builds the slow part from the merged per-thread stats.
    pub fn new(a: &FanoutArgs, sent: u64, fast: u64, slow: u64, st: &SlowStats) -> Self {
        let expected = sent.saturating_mul(slow);
        let trickle = a.slow_mode == SlowMode::Trickle;
        SlowReport {
            fraction: a.slow_fraction,
            mode: format!("{:?}", a.slow_mode).to_lowercase(),
            read_bytes: trickle.then_some(a.slow_read_bytes),
            read_interval_ms: trickle.then_some(a.slow_read_interval.as_secs_f64() * 1e3),
            fast_subscribers: fast,
            subscribers: slow,
            expected_frames: expected,
            received_frames: st.order.received,
            missing_in_sequence: st.order.gaps,
            not_received: expected.saturating_sub(st.order.received + st.order.gaps),
            order_violations: st.order.order_violations,
            malformed: st.malformed,
            ended: st.ended.clone(),
            open_at_end: slow.saturating_sub(st.ended.values().sum()),
            trickle_reads: st.reads,
            trickle_bytes: st.bytes_read,
        }
    }
}

/// What is wrong with a run's slow part (see the module doc), given the server's
/// counters when they were scraped.
pub fn problems(s: &SlowReport, server: Option<&ServerCounters>) -> Vec<String> {
    let mut p = Vec::new();
    if s.order_violations > 0 {
        p.push(format!(
            "slow subscribers: {} order violations",
            s.order_violations
        ));
    }
    if s.malformed > 0 {
        p.push(format!(
            "slow subscribers: {} malformed frames",
            s.malformed
        ));
    }
    if let Some(c) = server {
        let closed_slow = c.closed("slow_consumer");
        if closed_slow > s.subscribers {
            p.push(format!(
                "the server closed {closed_slow} connections as slow consumers but only {} \
                 subscribers were slow",
                s.subscribers
            ));
        }
        let by_policy = c.dropped("drop_newest") + c.dropped("drop_oldest");
        if s.missing_in_sequence > by_policy {
            p.push(format!(
                "slow subscribers miss {} frames in sequence, the server reports only {} \
                 dropped by drop-newest/drop-oldest",
                s.missing_in_sequence, by_policy
            ));
        }
    }
    p
}

/// Prints the slow part of the summary (`row` formats one line).
pub fn print(
    out: &mut dyn Write,
    s: &SlowReport,
    row: &dyn Fn(&mut dyn Write, &str, String) -> io::Result<()>,
) -> io::Result<()> {
    let how = match (s.read_bytes, s.read_interval_ms) {
        (Some(b), Some(ms)) => format!("trickle {b} B every {ms} ms"),
        _ => s.mode.clone(),
    };
    row(
        out,
        "slow subscribers",
        format!(
            "{} of {} ({:.1} %, {how}); fast ones are the traffic above",
            s.subscribers,
            s.subscribers + s.fast_subscribers,
            s.fraction * 100.0
        ),
    )?;
    row(
        out,
        "slow expected / received",
        format!(
            "{} / {} (missing in sequence {}, not received {})",
            s.expected_frames, s.received_frames, s.missing_in_sequence, s.not_received
        ),
    )?;
    let ended: Vec<String> = s.ended.iter().map(|(k, v)| format!("{v} × {k}")).collect();
    row(
        out,
        "slow ended (client view)",
        format!(
            "{}; open at end {}",
            if ended.is_empty() {
                "none".into()
            } else {
                ended.join(", ")
            },
            s.open_at_end
        ),
    )?;
    Ok(())
}

/// Prints the server's counters (`--metrics-url`).
pub fn print_server(
    out: &mut dyn Write,
    c: &ServerCounters,
    row: &dyn Fn(&mut dyn Write, &str, String) -> io::Result<()>,
) -> io::Result<()> {
    let list = |m: &BTreeMap<String, u64>| {
        if m.is_empty() {
            "none".to_string()
        } else {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    row(
        out,
        "server closed (by reason)",
        list(&c.connections_closed),
    )?;
    row(out, "server dropped (by reason)", list(&c.frames_dropped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_choice_is_exact_and_even() {
        for (subs, frac) in [(100usize, 0.1), (5000, 0.1), (7, 0.5), (10, 1.0), (10, 0.0)] {
            let n = slow_count(subs, frac);
            let chosen: Vec<u64> = (0..subs as u64)
                .filter(|&j| is_slow(j, subs as u64, n))
                .collect();
            assert_eq!(chosen.len() as u64, n, "{subs} × {frac}");
        }
        let tenth: Vec<u64> = (0..30).filter(|&j| is_slow(j, 30, 3)).collect();
        assert_eq!(tenth, vec![9, 19, 29], "every 10th at 10 %");
        assert!(!is_slow(0, 0, 0));
        assert_eq!(slow_count(5000, 0.1), 500);
    }

    #[test]
    fn trickle_rounds_follow_the_interval() {
        let mut t = Trickle::new(512, Duration::from_millis(100), 0);
        assert!(!t.due(50_000_000));
        assert_eq!(t.wait_ns(50_000_000), 50_000_000);
        assert!(t.due(100_000_000));
        assert!(!t.due(150_000_000));
        assert!(t.due(450_000_000), "late: one round, not three");
        assert!(!t.due(500_000_000));
        assert!(t.due(550_000_000));
    }

    fn args(extra: &[&str]) -> FanoutArgs {
        use clap::Parser;
        let mut argv = vec!["ringcast-load", "fanout", "--url", "ws://127.0.0.1:1/ws/x"];
        argv.extend_from_slice(extra);
        match crate::cli::Cli::try_parse_from(argv).unwrap().cmd {
            crate::cli::Command::Fanout(f) => *f,
            _ => unreachable!(),
        }
    }

    #[test]
    fn report_accounts_every_expected_frame() {
        let a = args(&["--slow-fraction", "0.1", "--slow-mode", "trickle"]);
        let mut st = SlowStats::default();
        st.order.received = 700;
        st.order.gaps = 200;
        st.ended(&Closed::ServerClose(1008));
        st.ended(&Closed::Eof);
        st.ended(&Closed::ServerClose(1008));
        let r = SlowReport::new(&a, 100, 90, 10, &st);
        assert_eq!(r.expected_frames, 1000);
        assert_eq!(
            r.received_frames + r.missing_in_sequence + r.not_received,
            1000
        );
        assert_eq!(r.ended["close 1008 from server"], 2);
        assert_eq!(r.open_at_end, 7);
        assert_eq!(
            (r.read_bytes, r.read_interval_ms),
            (Some(512), Some(1000.0))
        );
        assert_eq!(r.mode, "trickle");
        assert!(problems(&r, None).is_empty());
        let mut out = Vec::new();
        let row = |out: &mut dyn Write, k: &str, v: String| writeln!(out, "{k}: {v}");
        print(&mut out, &r, &row).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("10 of 100"), "{text}");
        assert!(text.contains("2 × close 1008 from server"), "{text}");
    }

    #[test]
    fn problems_compare_with_the_server() {
        let a = args(&["--slow-fraction", "0.1"]);
        let mut st = SlowStats::default();
        st.order.gaps = 50;
        st.order.order_violations = 1;
        let r = SlowReport::new(&a, 100, 90, 10, &st);
        let mut c = ServerCounters::default();
        c.connections_closed.insert("slow_consumer".into(), 11);
        c.frames_dropped.insert("drop_oldest".into(), 49);
        let p = problems(&r, Some(&c));
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].contains("order violations"));
        assert!(p[1].contains("closed 11 connections as slow consumers"));
        assert!(p[2].contains("miss 50 frames"));
        c.connections_closed.insert("slow_consumer".into(), 10);
        c.frames_dropped.insert("drop_oldest".into(), 50);
        assert_eq!(problems(&r, Some(&c)).len(), 1, "only the order violation");
    }
}

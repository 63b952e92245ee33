//! Reads a server process's resource use from `/proc/PID`: open file descriptors
//! (`/proc/PID/fd`) and resident memory (`VmRSS` in `/proc/PID/status`).
//!
//! Used with `--server-pid` to report RSS per connection, to hunt fd leaks across
//! connect/close cycles and (fanout) to follow the server's RSS over a long run
//! ([`RssTrack`]: is it flat after the warm-up?).

use std::time::Duration;

use serde::Serialize;

/// One sample of a server's resource use.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct ServerSample {
    /// Resident set size in KiB (`VmRSS`).
    pub rss_kib: u64,
    /// Number of entries in `/proc/PID/fd`.
    pub fds: u64,
}

/// Samples `pid`; `None` if the process is gone or unreadable.
pub fn sample(pid: u32) -> Option<ServerSample> {
    Some(ServerSample {
        rss_kib: rss_kib(pid)?,
        fds: fd_count(pid)?,
    })
}

/// `VmRSS` of `pid` in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vmrss(&status)
}

/// Extracts `VmRSS` (KiB) from the text of `/proc/PID/status`.
pub fn parse_vmrss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Open descriptor count of `pid`.
pub fn fd_count(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// One RSS sample of a run.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct RssSample {
    /// Seconds since the first publish.
    pub secs: f64,
    /// `VmRSS`, KiB.
    pub rss_kib: u64,
}

/// The server's RSS over the publish phase (fanout `--server-pid`).
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct RssReport {
    /// Sampling interval (`--rss-interval`), seconds.
    pub interval_secs: f64,
    /// Warm-up (`--rss-warmup`), seconds from the first publish.
    pub warmup_secs: f64,
    /// Every sample: at the first publish, every interval, and at the end of the run.
    pub samples: Vec<RssSample>,
    /// The first sample at or after the warm-up (none if the run was shorter).
    pub at_warmup_end_kib: Option<u64>,
    /// The last sample.
    pub end_kib: Option<u64>,
    /// The largest sample at or after the warm-up.
    pub max_after_warmup_kib: Option<u64>,
    /// (max_after_warmup − at_warmup_end) / at_warmup_end, %.
    pub growth_after_warmup_pct: Option<f64>,
    /// The samples after the warm-up in two halves (by time): (maximum of the second −
    /// maximum of the first) / maximum of the first, %. A leak keeps making new highs
    /// and shows here; a one-time step (an allocator arena, a buffer that grew once)
    /// early after the warm-up does not. None with fewer than 4 such samples.
    pub late_growth_pct: Option<f64>,
}

/// Samples a process's RSS every `interval` from `start_ns` on (monotonic ns).
#[derive(Debug)]
pub struct RssTrack {
    pid: u32,
    start_ns: u64,
    next_ns: u64,
    interval_ns: u64,
    warmup_ns: u64,
    samples: Vec<RssSample>,
}

impl RssTrack {
    /// Starts tracking `pid` at `start_ns` (takes the first sample then).
    pub fn new(pid: u32, interval: Duration, warmup: Duration, start_ns: u64) -> Self {
        let mut t = RssTrack {
            pid,
            start_ns,
            next_ns: start_ns,
            interval_ns: (interval.as_nanos() as u64).max(1_000_000),
            warmup_ns: warmup.as_nanos() as u64,
            samples: Vec::new(),
        };
        t.tick(start_ns);
        t
    }

    /// Takes a sample if one is due at `now`.
    pub fn tick(&mut self, now: u64) {
        if now < self.next_ns {
            return;
        }
        while self.next_ns <= now {
            self.next_ns += self.interval_ns;
        }
        self.take(now);
    }

    fn take(&mut self, now: u64) {
        if let Some(rss_kib) = rss_kib(self.pid) {
            let secs = now.saturating_sub(self.start_ns) as f64 / 1e9;
            self.samples.push(RssSample { secs, rss_kib });
        }
    }

    /// Takes the last sample at `now` and summarises.
    pub fn finish(mut self, now: u64) -> RssReport {
        self.take(now);
        summarise(
            self.samples,
            self.interval_ns as f64 / 1e9,
            self.warmup_ns as f64 / 1e9,
        )
    }
}

/// Builds the report of `samples` (in time order).
pub fn summarise(samples: Vec<RssSample>, interval_secs: f64, warmup_secs: f64) -> RssReport {
    let after: Vec<u64> = samples
        .iter()
        .filter(|s| s.secs >= warmup_secs)
        .map(|s| s.rss_kib)
        .collect();
    let at_warmup_end_kib = after.first().copied();
    let max_after_warmup_kib = after.iter().copied().max();
    let growth_after_warmup_pct = match (at_warmup_end_kib, max_after_warmup_kib) {
        (Some(a), Some(m)) if a > 0 => Some((m as f64 - a as f64) / a as f64 * 100.0),
        _ => None,
    };
    let late_growth_pct = late_growth(&samples, warmup_secs);
    RssReport {
        interval_secs,
        warmup_secs,
        late_growth_pct,
        end_kib: samples.last().map(|s| s.rss_kib),
        samples,
        at_warmup_end_kib,
        max_after_warmup_kib,
        growth_after_warmup_pct,
    }
}

/// See [`RssReport::late_growth_pct`].
fn late_growth(samples: &[RssSample], warmup_secs: f64) -> Option<f64> {
    let after: Vec<&RssSample> = samples.iter().filter(|s| s.secs >= warmup_secs).collect();
    if after.len() < 4 {
        return None;
    }
    let mid = (after[0].secs + after[after.len() - 1].secs) / 2.0;
    let max = |f: &dyn Fn(f64) -> bool| after.iter().filter(|s| f(s.secs)).map(|s| s.rss_kib).max();
    let first = max(&|t| t <= mid)?;
    let second = max(&|t| t > mid)?;
    (first > 0).then(|| (second as f64 - first as f64) / first as f64 * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_summary_after_warmup() {
        let s = |secs: f64, rss_kib: u64| RssSample { secs, rss_kib };
        let r = summarise(
            vec![
                s(0.0, 100),
                s(10.0, 900),
                s(20.0, 1000),
                s(30.0, 1100),
                s(35.0, 1050),
            ],
            10.0,
            20.0,
        );
        assert_eq!(r.at_warmup_end_kib, Some(1000));
        assert_eq!(r.max_after_warmup_kib, Some(1100));
        assert_eq!(r.end_kib, Some(1050));
        assert!((r.growth_after_warmup_pct.unwrap() - 10.0).abs() < 1e-9);
        assert!(r.late_growth_pct.is_none(), "3 samples after the warm-up");
        // A step early after the warm-up is not late growth; a steady climb is.
        let step = [100, 100, 120, 120, 119, 120, 118, 120];
        let step: Vec<RssSample> = (0..8).map(|i| s(60.0 + i as f64 * 10.0, step[i])).collect();
        let r = summarise(step, 10.0, 60.0);
        assert_eq!(r.growth_after_warmup_pct, Some(20.0));
        assert_eq!(r.late_growth_pct, Some(0.0));
        let climb: Vec<RssSample> = (0..8)
            .map(|i| s(60.0 + i as f64 * 10.0, 100 + 5 * i as u64))
            .collect();
        let r = summarise(climb, 10.0, 60.0);
        assert!((r.late_growth_pct.unwrap() - 20.0 / 115.0 * 100.0).abs() < 1e-9);
        let short = summarise(vec![s(0.0, 100), s(5.0, 120)], 10.0, 60.0);
        assert_eq!(short.at_warmup_end_kib, None);
        assert_eq!(short.growth_after_warmup_pct, None);
        assert_eq!(short.end_kib, Some(120));
    }

    #[test]
    fn rss_track_samples_when_due() {
        let mut t = RssTrack::new(
            std::process::id(),
            Duration::from_secs(1),
            Duration::ZERO,
            0,
        );
        t.tick(500_000_000); // not due
        t.tick(1_000_000_000);
        t.tick(3_500_000_000); // one sample however late
        let r = t.finish(4_000_000_000);
        let secs: Vec<f64> = r.samples.iter().map(|s| s.secs).collect();
        assert_eq!(secs, vec![0.0, 1.0, 3.5, 4.0]);
        assert!(r.samples.iter().all(|s| s.rss_kib > 0));
        assert_eq!(r.at_warmup_end_kib, Some(r.samples[0].rss_kib));
    }

    #[test]
    fn parses_vmrss() {
        let s = "Name:\tx\nVmPeak:\t  9000 kB\nVmRSS:\t    1234 kB\nThreads:\t1\n";
        assert_eq!(parse_vmrss(s), Some(1234));
        assert_eq!(parse_vmrss("Name: x\n"), None);
    }

    #[test]
    fn samples_self() {
        let s = sample(std::process::id()).unwrap();
        assert!(s.rss_kib > 0);
        assert!(s.fds >= 3);
        assert!(sample(u32::MAX - 1).is_none());
    }
}

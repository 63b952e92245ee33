//! What a fanout run watches on the server side while it runs: `/proc` samples of the
//! server process (`--server-pid`: before, after connecting, after the run, and its RSS
//! every `--rss-interval` while publishing) and its Prometheus counters
//! (`--metrics-url`: scraped before the connections open and after the run).

use crate::cli::FanoutArgs;
use crate::procfs::{self, RssTrack};
use crate::prom::{self, Counters, ServerCounters};
use crate::report::{Report, ServerReport};
use crate::sys;

/// The observations in progress.
pub struct Watch {
    server: Option<ServerReport>,
    rss: Option<RssTrack>,
    before: Option<Result<Counters, String>>,
}

impl Watch {
    /// Takes the "before" observations (call before connecting).
    pub fn start(args: &FanoutArgs) -> Self {
        Watch {
            server: args.common.server_pid.map(|pid| ServerReport {
                pid,
                before: procfs::sample(pid),
                ..Default::default()
            }),
            rss: None,
            before: args.metrics_url.as_ref().map(prom::scrape),
        }
    }

    /// Every connection is open.
    pub fn connected(&mut self) {
        if let Some(s) = self.server.as_mut() {
            s.after_connect = procfs::sample(s.pid);
        }
    }

    /// Publishing starts at `now`: RSS sampling starts.
    pub fn publishing(&mut self, args: &FanoutArgs, now: u64) {
        if let Some(s) = &self.server {
            self.rss = Some(RssTrack::new(
                s.pid,
                args.rss_interval,
                args.rss_warmup,
                now,
            ));
        }
    }

    /// Takes an RSS sample if one is due.
    pub fn tick(&mut self, now: u64) {
        if let Some(r) = self.rss.as_mut() {
            r.tick(now);
        }
    }

    /// The traffic is over (connections still open): takes the "after" observations,
    /// holds the connections open for `--hold` (sampling the server again at its end)
    /// and puts everything into `rep`; `conns` is the number of connections that opened.
    /// The workers close every connection at `deadline_ns` (monotonic ns), so a hold that
    /// would outlast it is not started: that is a problem in `rep` (the run fails) and
    /// there is no `after_hold` sample.
    pub fn finish(
        self,
        args: &FanoutArgs,
        rep: &mut Report,
        conns: u64,
        now: u64,
        deadline_ns: u64,
    ) {
        let after_run = self.server.as_ref().and_then(|s| procfs::sample(s.pid));
        let mut held = false;
        if !args.hold.is_zero() {
            let left = deadline_ns.saturating_sub(sys::now_ns());
            if (args.hold.as_nanos() as u64) < left {
                std::thread::sleep(args.hold);
                held = true;
            } else if left > 0 {
                rep.problem(format!(
                    "--hold {:?} does not fit in the {:.1} s that --timeout leaves after the \
                     traffic (every connection closes at the deadline): raise --timeout or \
                     leave it unset (the default adds --hold)",
                    args.hold,
                    left as f64 / 1e9
                ));
            }
        }
        if let Some(mut s) = self.server {
            s.after_run = after_run;
            if held {
                s.after_hold = procfs::sample(s.pid);
            }
            s.rss_over_time = self.rss.map(|r| r.finish(now));
            s.compute_per_conn(conns);
            rep.server = Some(s);
        }
        let (Some(url), Some(before)) = (&args.metrics_url, self.before) else {
            return;
        };
        match before.and_then(|b| prom::scrape(url).map(|a| (b, a))) {
            Ok((b, a)) => rep.server_counters = Some(ServerCounters::delta(url, &b, &a)),
            Err(e) => rep.problem(e),
        }
    }
}

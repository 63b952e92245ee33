//! The `connect` workload: connection storm and churn for leak hunting.
//!
//! Each cycle opens N connections (TCP connect + completed upgrade) spread over the
//! worker threads and source addresses, then closes them all — with a clean close
//! handshake, a TCP reset (SO_LINGER 0), a silent drop (FIN, no close frame), or a
//! rotation of the three. With `--server-pid` the server's open fd count and RSS are
//! sampled with the connections open and again after closing, every cycle, so a leak
//! shows up as a number that keeps growing. `--hold D` keeps the last cycle's
//! connections open for D before closing (RSS per idle connection).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex};

use hdrhistogram::Histogram;

use crate::cli::ConnectArgs;
use crate::codec::Frame;
use crate::conn::{Closed, Conns};
use crate::event_loop::{EventLoop, Handler};
use crate::procfs;
use crate::progress::Progress;
use crate::report::{self, rate, ConnReport, CycleReport, LatencyReport, Report, ServerReport};
use crate::runner::{self, close_how, Dialer, Wakers};
use crate::sys;
use crate::tls::TlsClient;

const CMD_OPEN: u64 = 1;
const CMD_CLOSE: u64 = 2;
const CMD_STOP: u64 = 3;

/// Commands are `cycle << 2 | kind`, so every phase of every cycle is a new value.
fn cmd(cycle: u64, kind: u64) -> u64 {
    cycle << 2 | kind
}

struct Shared {
    command: AtomicU64,
    /// Threads done with the current command.
    done: AtomicUsize,
    opened: AtomicU64,
    failed: AtomicU64,
    closed_ok: AtomicU64,
    close_problems: AtomicU64,
    disconnects: AtomicU64,
    last_open_ns: AtomicU64,
    failures: Mutex<BTreeMap<String, u64>>,
    wakers: Wakers,
}

struct Worker {
    sh: Arc<Shared>,
    closing: bool,
    handshake: Histogram<u64>,
}

impl Handler for Worker {
    fn on_open(&mut self, conns: &mut Conns, slot: usize, _tag: u32, now: u64) {
        if let Some(c) = conns.get(slot) {
            let _ = self
                .handshake
                .record(now.saturating_sub(c.started_ns).max(1));
        }
        self.sh.opened.fetch_add(1, Relaxed);
        self.sh.last_open_ns.fetch_max(now, Relaxed);
    }

    fn on_frame(&mut self, _: &mut Conns, _: usize, _: u32, _: Frame<'_>, _: u64) {}

    fn on_closed(&mut self, _slot: usize, _tag: u32, why: Closed, _now: u64) {
        match why {
            Closed::Failed(f) => {
                self.sh.failed.fetch_add(1, Relaxed);
                *self
                    .sh
                    .failures
                    .lock()
                    .unwrap()
                    .entry(f.category())
                    .or_default() += 1;
            }
            Closed::Clean if self.closing => {
                self.sh.closed_ok.fetch_add(1, Relaxed);
            }
            _ if self.closing => {
                self.sh.close_problems.fetch_add(1, Relaxed);
            }
            _ => {
                self.sh.disconnects.fetch_add(1, Relaxed);
            }
        }
    }
}

fn worker(
    args: Arc<ConnectArgs>,
    sh: Arc<Shared>,
    threads: usize,
    t: usize,
    deadline: u64,
    tls: Option<TlsClient>,
) -> (Histogram<u64>, (u64, u64, u64), Option<String>) {
    let mut w = Worker {
        sh: sh.clone(),
        closing: false,
        handshake: report::new_hist(),
    };
    let mut el = match EventLoop::new(125, t as u64 + 2000, sh.wakers.fd(t), tls) {
        Ok(el) => el,
        Err(e) => {
            sh.done.fetch_add(1, AcqRel);
            return (w.handshake, (0, 0, 0), Some(format!("thread {t}: {e}")));
        }
    };
    let close_timeout = args.common.connect_timeout.as_nanos() as u64;
    let mut dialer = Dialer::new(&args.common, threads, sys::now_ns());
    let mut handled = 0u64;
    let mut plan = runner::Plan::new();
    let mut busy = false;
    let mut last_expire = 0;
    loop {
        let now = sys::now_ns();
        if now >= deadline {
            break;
        }
        let c = sh.command.load(Acquire);
        if c & 3 == CMD_STOP {
            break;
        }
        if c != handled {
            handled = c;
            busy = true;
            if c & 3 == CMD_OPEN {
                w.closing = false;
                plan = runner::plan_for_thread(t, threads, args.connections as u64, |i| i as u32);
                dialer = Dialer::new(&args.common, threads, now);
            } else if c & 3 == CMD_CLOSE {
                w.closing = true;
                for slot in el.conns.live_slots() {
                    let i = el.conns.get(slot).map(|c| c.tag).unwrap_or(0) as u64;
                    let how = close_how(args.close_mode, i);
                    if el.conns.close(slot, how, now, close_timeout) {
                        sh.closed_ok.fetch_add(1, Relaxed);
                    }
                }
            }
        }
        if !plan.is_empty() {
            dialer.pump(&mut el, &mut plan, now, |_, f| {
                sh.failed.fetch_add(1, Relaxed);
                *sh.failures.lock().unwrap().entry(f.category()).or_default() += 1;
            });
        }
        el.reap_dead(&mut w, now);
        if busy {
            let finished = if w.closing {
                el.conns.is_empty()
            } else {
                plan.is_empty() && el.conns.pending == 0
            };
            if finished {
                busy = false;
                sh.done.fetch_add(1, AcqRel);
            }
        }
        let mut timeout = 5_000_000;
        if let Some(d) = dialer.wait_ns(&plan, &el, now) {
            timeout = d.clamp(1, timeout);
        }
        if let Err(e) = el.poll(&mut w, timeout) {
            if busy {
                sh.done.fetch_add(1, AcqRel);
            }
            return (
                w.handshake,
                (0, 0, 0),
                Some(format!("thread {t}: epoll: {e}")),
            );
        }
        let now = sys::now_ns();
        if now - last_expire > 20_000_000 {
            last_expire = now;
            el.expire(&mut w, now);
        }
    }
    let io = (el.stats.reads, el.conns.write_calls, el.poller.waits);
    (w.handshake, io, None)
}

/// Runs the connect workload and returns its report.
pub fn run(args: ConnectArgs, command: Vec<String>) -> Report {
    let t0 = sys::now_ns();
    let cpu0 = sys::process_cpu();
    let mut rep = Report {
        workload: "connect".into(),
        command,
        ..Default::default()
    };
    let threads = runner::thread_count(&args.common);
    if args.connections == 0 || args.cycles == 0 {
        rep.problem("--connections and --cycles must be at least 1");
    }
    if let Err(e) = sys::ensure_fd_budget(args.connections as u64, threads) {
        rep.problem(e);
    }
    let tls = runner::tls_for(&mut rep, &args.common);
    let Some(wakers) = runner::wakers_for(&mut rep, threads) else {
        rep.finalize();
        return rep;
    };
    let hold = args.hold.unwrap_or_default();
    let timeout = args
        .common
        .timeout
        .unwrap_or(std::time::Duration::from_secs(60) + hold);
    let deadline = t0 + timeout.as_nanos() as u64;
    let sh = Arc::new(Shared {
        command: AtomicU64::new(0),
        done: AtomicUsize::new(0),
        opened: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        closed_ok: AtomicU64::new(0),
        close_problems: AtomicU64::new(0),
        disconnects: AtomicU64::new(0),
        last_open_ns: AtomicU64::new(0),
        failures: Mutex::new(BTreeMap::new()),
        wakers,
    });
    let pid = args.common.server_pid;
    let mut server = pid.map(|pid| ServerReport {
        pid,
        before: procfs::sample(pid),
        ..Default::default()
    });
    let args = Arc::new(args);
    let handles = {
        let (a, s) = (args.clone(), sh.clone());
        runner::spawn_workers(threads, args.common.pin_cpu.as_ref(), move |t| {
            worker(a.clone(), s.clone(), threads, t, deadline, tls.clone())
        })
    };
    let mut progress = Progress::new(args.common.no_progress);
    let mut timed_out = false;
    let (mut total_opened, mut total_failed, mut total_open_ns) = (0u64, 0u64, 0u64);
    // Issues a command and waits until every worker finished it (or the deadline).
    let run_phase = |c: u64, label: &str, total: u64, progress: &mut Progress| -> bool {
        sh.done.store(0, Release);
        sh.command.store(c, Release);
        sh.wakers.wake_all();
        progress.phase(label, total);
        while sh.done.load(Acquire) < threads {
            if sys::now_ns() >= deadline {
                return false;
            }
            let (o, f) = (sh.opened.load(Relaxed), sh.failed.load(Relaxed));
            let cl = sh.closed_ok.load(Relaxed) + sh.close_problems.load(Relaxed);
            let pos = if c & 3 == CMD_OPEN { o + f } else { cl };
            progress.update(pos, &format!("open {o} failed {f} closed {cl}"));
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        true
    };
    for cycle in 1..=args.cycles as u64 {
        for a in [&sh.opened, &sh.failed, &sh.closed_ok, &sh.close_problems] {
            a.store(0, Release);
        }
        let open_start = sys::now_ns();
        sh.last_open_ns.store(open_start, Release);
        let label = format!("open {cycle}/{}", args.cycles);
        if !run_phase(
            cmd(cycle, CMD_OPEN),
            &label,
            args.connections as u64,
            &mut progress,
        ) {
            timed_out = true;
        }
        let open_ns = sh.last_open_ns.load(Acquire) - open_start;
        let server_open = pid.and_then(procfs::sample);
        let mut cy = CycleReport {
            cycle: cycle as u32,
            opened: sh.opened.load(Acquire),
            failed: sh.failed.load(Acquire),
            open_secs: open_ns as f64 / 1e9,
            server_open,
            ..Default::default()
        };
        cy.upgrades_per_sec = rate(cy.opened, cy.open_secs);
        total_opened += cy.opened;
        total_failed += cy.failed;
        total_open_ns += open_ns;
        if let Some(s) = server.as_mut() {
            if cycle == 1 {
                s.after_connect = server_open;
            }
        }
        if timed_out {
            rep.cycles.push(cy);
            break;
        }
        if cycle == args.cycles as u64 && !hold.is_zero() {
            progress.phase("hold", hold.as_millis() as u64);
            let end = sys::now_ns() + hold.as_nanos() as u64;
            while sys::now_ns() < end.min(deadline) {
                progress.update(
                    (hold.as_nanos() as u64 - (end - sys::now_ns().min(end))) / 1_000_000,
                    "",
                );
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            if let Some(s) = server.as_mut() {
                s.after_run = procfs::sample(s.pid);
            }
        }
        let close_start = sys::now_ns();
        let label = format!("close {cycle}/{}", args.cycles);
        if !run_phase(cmd(cycle, CMD_CLOSE), &label, cy.opened, &mut progress) {
            timed_out = true;
        }
        cy.close_secs = (sys::now_ns() - close_start) as f64 / 1e9;
        cy.closed_ok = sh.closed_ok.load(Acquire);
        cy.close_problems = sh.close_problems.load(Acquire);
        if pid.is_some() {
            std::thread::sleep(args.settle);
            cy.server_closed = pid.and_then(procfs::sample);
        }
        rep.cycles.push(cy);
        if timed_out {
            break;
        }
    }
    sh.command.store(CMD_STOP, Release);
    sh.wakers.wake_all();
    let workers = runner::join_all(handles);
    progress.finish();
    let wall = sys::now_ns() - t0;
    let cpu = sys::process_cpu().since(&cpu0);
    let mut handshake = report::new_hist();
    let mut io = (0, 0, 0);
    for w in &workers {
        let (h, i, e) = &w.result;
        handshake.add(h).expect("same bounds");
        io = (io.0 + i.0, io.1 + i.1, io.2 + i.2);
        if let Some(e) = e {
            rep.problem(e.clone());
        }
    }
    let failures = sh.failures.lock().unwrap().clone();
    let disconnects = sh.disconnects.load(Acquire);
    let connect_secs = total_open_ns as f64 / 1e9;
    rep.connections = ConnReport {
        requested: args.connections as u64 * args.cycles as u64,
        ok: total_opened,
        failed: total_failed,
        failures,
        unexpected_disconnects: disconnects,
        connect_secs,
        connect_rate_per_sec: rate(total_opened, connect_secs),
        handshake_latency: LatencyReport::from_hist(&handshake),
    };
    if let Some(mut s) = server {
        s.after_close = rep.cycles.last().and_then(|c| c.server_closed);
        // Idle RSS per connection: prefer the sample after --hold.
        if let (Some(b), Some(a)) = (s.before, s.after_run.or(s.after_connect)) {
            let n = rep.cycles.last().map(|c| c.opened).unwrap_or(0);
            if n > 0 {
                s.rss_per_connection_kib = Some((a.rss_kib as f64 - b.rss_kib as f64) / n as f64);
            }
        }
        rep.server = Some(s);
    }
    rep.generator = report::GeneratorReport::new(runner::thread_cpus(&workers), cpu, wall, io);
    rep.timed_out = timed_out;
    rep.wall_secs = wall as f64 / 1e9;
    if total_failed > 0 {
        rep.problem(format!("{total_failed} connections failed"));
    }
    if disconnects > 0 {
        rep.problem(format!("{disconnects} connections dropped by the server"));
    }
    let close_problems: u64 = rep.cycles.iter().map(|c| c.close_problems).sum();
    if close_problems > 0 {
        rep.problem(format!("{close_problems} close handshakes failed"));
    }
    rep.finalize();
    rep
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_unique_per_cycle() {
        assert_ne!(cmd(1, CMD_OPEN), cmd(2, CMD_OPEN));
        assert_ne!(cmd(1, CMD_OPEN), cmd(1, CMD_CLOSE));
        assert_eq!(cmd(7, CMD_CLOSE) & 3, CMD_CLOSE);
    }
}

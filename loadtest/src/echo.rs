//! The `echo` workload: N connections to an echo endpoint, each sending M timestamped
//! messages with K outstanding at a time, measuring round-trip latency and checking
//! that every message comes back, in order.
//!
//! All connections are opened first; the coordinator then starts the traffic on every
//! thread at once, so the latency numbers never mix with connection set-up.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering::*};
use std::sync::Arc;

use hdrhistogram::Histogram;

use crate::cli::EchoArgs;
use crate::codec::{Frame, OP_BINARY};
use crate::conn::{Closed, Conns};
use crate::event_loop::{EventLoop, Handler};
use crate::message::{self, OrderStats};
use crate::procfs;
use crate::progress::Progress;
use crate::report::{self, rate, ConnReport, LatencyReport, Report, ServerReport, TrafficReport};
use crate::runner::{self, Dialer, Wakers};
use crate::sys;
use crate::tls::TlsClient;

const PH_CONNECT: u8 = 0;
const PH_RUN: u8 = 1;
const PH_STOP: u8 = 2;

struct Shared {
    phase: AtomicU8,
    open: AtomicU64,
    failed: AtomicU64,
    threads_connected: AtomicUsize,
    last_open_ns: AtomicU64,
    sent: AtomicU64,
    received: AtomicU64,
    wakers: Wakers,
}

struct ConnState {
    slot: Option<usize>,
    sent: u64,
    next: u64,
}

struct ThreadResult {
    hist: Histogram<u64>,
    handshake: Histogram<u64>,
    order: OrderStats,
    malformed: u64,
    failures: BTreeMap<String, u64>,
    disconnects: u64,
    last_rx_ns: u64,
    io: (u64, u64, u64),
    error: Option<String>,
}

struct Worker {
    args: Arc<EchoArgs>,
    sh: Arc<Shared>,
    conns: Vec<ConnState>,
    payload: Vec<u8>,
    sent: u64,
    flushed: (u64, u64),
    res: ThreadResult,
}

impl Worker {
    fn send_next(&mut self, conns: &mut Conns, i: usize) {
        let c = &mut self.conns[i];
        let Some(slot) = c.slot else { return };
        if c.sent >= self.args.messages {
            return;
        }
        message::write_header(&mut self.payload, 0, c.sent, sys::now_ns());
        c.sent += 1;
        self.sent += 1;
        conns.send(slot, OP_BINARY, &self.payload);
    }

    fn start(&mut self, conns: &mut Conns) {
        for i in 0..self.conns.len() {
            for _ in 0..self.args.in_flight.max(1) {
                self.send_next(conns, i);
            }
        }
    }

    fn flush(&mut self) {
        let (s, r) = self.flushed;
        if self.sent > s {
            self.sh.sent.fetch_add(self.sent - s, Release);
        }
        if self.res.order.received > r {
            self.sh
                .received
                .fetch_add(self.res.order.received - r, Release);
        }
        self.flushed = (self.sent, self.res.order.received);
    }
}

impl Handler for Worker {
    fn on_open(&mut self, conns: &mut Conns, slot: usize, tag: u32, now: u64) {
        if let Some(c) = conns.get(slot) {
            let _ = self
                .res
                .handshake
                .record(now.saturating_sub(c.started_ns).max(1));
        }
        self.conns[tag as usize].slot = Some(slot);
        self.sh.open.fetch_add(1, Relaxed);
        self.sh.last_open_ns.fetch_max(now, Relaxed);
    }

    fn on_frame(&mut self, conns: &mut Conns, _slot: usize, tag: u32, f: Frame<'_>, now: u64) {
        let i = tag as usize;
        let h = match message::read_header(f.payload) {
            Some(h) if f.opcode == OP_BINARY && f.fin && f.payload.len() == self.args.size => h,
            _ => {
                self.res.malformed += 1;
                return;
            }
        };
        let check = message::check_seq(&mut self.conns[i].next, h.seq);
        self.res.order.record(check);
        let _ = self.res.hist.record(now.saturating_sub(h.ts_ns).max(1));
        self.res.last_rx_ns = now;
        self.send_next(conns, i);
    }

    fn on_closed(&mut self, _slot: usize, tag: u32, why: Closed, _now: u64) {
        match why {
            Closed::Failed(f) => {
                *self.res.failures.entry(f.category()).or_default() += 1;
                self.sh.failed.fetch_add(1, Relaxed);
            }
            _ => {
                self.res.disconnects += 1;
                self.conns[tag as usize].slot = None;
            }
        }
    }
}

fn worker(
    args: Arc<EchoArgs>,
    sh: Arc<Shared>,
    threads: usize,
    t: usize,
    deadline: u64,
    tls: Option<TlsClient>,
) -> ThreadResult {
    let mut n = 0u32;
    let mut plan = runner::plan_for_thread(t, threads, args.connections as u64, |_| {
        n += 1;
        n - 1
    });
    let mut w = Worker {
        conns: (0..n)
            .map(|_| ConnState {
                slot: None,
                sent: 0,
                next: 0,
            })
            .collect(),
        payload: vec![0u8; args.size],
        sent: 0,
        flushed: (0, 0),
        res: ThreadResult {
            hist: report::new_hist(),
            handshake: report::new_hist(),
            order: OrderStats::default(),
            malformed: 0,
            failures: BTreeMap::new(),
            disconnects: 0,
            last_rx_ns: 0,
            io: (0, 0, 0),
            error: None,
        },
        args: args.clone(),
        sh: sh.clone(),
    };
    let mut el = match EventLoop::new(args.size, t as u64 + 1000, sh.wakers.fd(t), tls) {
        Ok(el) => el,
        Err(e) => {
            w.res.error = Some(format!("thread {t}: event loop: {e}"));
            sh.threads_connected.fetch_add(1, AcqRel);
            return w.res;
        }
    };
    let mut dialer = Dialer::new(&args.common, threads, sys::now_ns());
    let (mut reported, mut started) = (false, false);
    let mut last_expire = 0;
    loop {
        let now = sys::now_ns();
        let phase = sh.phase.load(Acquire);
        if phase == PH_STOP || now >= deadline {
            break;
        }
        if !plan.is_empty() {
            dialer.pump(&mut el, &mut plan, now, |_, f| {
                *w.res.failures.entry(f.category()).or_default() += 1;
                sh.failed.fetch_add(1, Relaxed);
            });
        }
        if !reported && plan.is_empty() && el.conns.pending == 0 {
            reported = true;
            sh.threads_connected.fetch_add(1, AcqRel);
        }
        if phase == PH_RUN && !started {
            started = true;
            w.start(&mut el.conns);
        }
        el.reap_dead(&mut w, now);
        w.flush();
        let mut timeout = 5_000_000;
        if let Some(d) = dialer.wait_ns(&plan, &el, now) {
            timeout = d.clamp(1, timeout);
        }
        if let Err(e) = el.poll(&mut w, timeout) {
            w.res.error = Some(format!("thread {t}: epoll: {e}"));
            break;
        }
        let now = sys::now_ns();
        if now - last_expire > 20_000_000 {
            last_expire = now;
            el.expire(&mut w, now);
        }
    }
    w.flush();
    if !reported {
        sh.threads_connected.fetch_add(1, AcqRel);
    }
    w.res.io = (el.stats.reads, el.conns.write_calls, el.poller.waits);
    w.res
}

/// Runs the echo workload and returns its report.
pub fn run(args: EchoArgs, command: Vec<String>) -> Report {
    let t0 = sys::now_ns();
    let cpu0 = sys::process_cpu();
    let mut rep = Report {
        workload: "echo".into(),
        command,
        ..Default::default()
    };
    let threads = runner::thread_count(&args.common);
    if args.size < message::HEADER_LEN {
        rep.problem(format!("--size must be at least {}", message::HEADER_LEN));
    }
    if args.connections == 0 || args.messages == 0 {
        rep.problem("--connections and --messages must be at least 1");
    }
    if let Err(e) = sys::ensure_fd_budget(args.connections as u64, threads) {
        rep.problem(e);
    }
    let tls = runner::tls_for(&mut rep, &args.common);
    let Some(wakers) = runner::wakers_for(&mut rep, threads) else {
        rep.finalize();
        return rep;
    };
    let timeout = args
        .common
        .timeout
        .unwrap_or(std::time::Duration::from_secs(60));
    let deadline = t0 + timeout.as_nanos() as u64;
    let sh = Arc::new(Shared {
        phase: AtomicU8::new(PH_CONNECT),
        open: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        threads_connected: AtomicUsize::new(0),
        last_open_ns: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        received: AtomicU64::new(0),
        wakers,
    });
    let mut server = args.common.server_pid.map(|pid| ServerReport {
        pid,
        before: procfs::sample(pid),
        ..Default::default()
    });
    let args = Arc::new(args);
    let mut progress = Progress::new(args.common.no_progress);
    let connect_start = sys::now_ns();
    let handles = {
        let (a, s) = (args.clone(), sh.clone());
        runner::spawn_workers(threads, args.common.pin_cpu.as_ref(), move |t| {
            worker(a.clone(), s.clone(), threads, t, deadline, tls.clone())
        })
    };
    progress.phase("connect", args.connections as u64);
    let mut timed_out = false;
    while sh.threads_connected.load(Acquire) < threads {
        if sys::now_ns() >= deadline {
            timed_out = true;
            break;
        }
        let (o, f) = (sh.open.load(Relaxed), sh.failed.load(Relaxed));
        progress.update(o + f, &format!("open {o} failed {f}"));
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let open = sh.open.load(Acquire);
    let connect_secs =
        (sh.last_open_ns.load(Acquire).max(connect_start) - connect_start) as f64 / 1e9;
    if let Some(s) = server.as_mut() {
        s.after_connect = procfs::sample(s.pid);
    }
    let expected = open * args.messages;
    let run_start = sys::now_ns();
    if !timed_out && open > 0 {
        sh.phase.store(PH_RUN, Release);
        sh.wakers.wake_all();
        progress.phase("echo", expected);
        loop {
            let now = sys::now_ns();
            if now >= deadline {
                timed_out = true;
                break;
            }
            let r = sh.received.load(Acquire);
            if r >= expected {
                break;
            }
            let secs = (now - run_start) as f64 / 1e9;
            progress.update(
                r,
                &format!("{:.0} round trips/s", r as f64 / secs.max(1e-9)),
            );
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    } else if !timed_out {
        rep.problem("no connection opened");
    }
    if let Some(s) = server.as_mut() {
        s.after_run = procfs::sample(s.pid);
    }
    sh.phase.store(PH_STOP, Release);
    sh.wakers.wake_all();
    let workers = runner::join_all(handles);
    progress.finish();
    let wall = sys::now_ns() - t0;
    let cpu = sys::process_cpu().since(&cpu0);

    let mut hist = report::new_hist();
    let mut handshake = report::new_hist();
    let mut order = OrderStats::default();
    let (mut malformed, mut disconnects, mut last_rx) = (0, 0, 0);
    let mut failures = BTreeMap::new();
    let mut io = (0, 0, 0);
    for w in &workers {
        let r = &w.result;
        hist.add(&r.hist).expect("same bounds");
        handshake.add(&r.handshake).expect("same bounds");
        order.received += r.order.received;
        order.gaps += r.order.gaps;
        order.order_violations += r.order.order_violations;
        malformed += r.malformed;
        disconnects += r.disconnects;
        last_rx = last_rx.max(r.last_rx_ns);
        for (k, v) in &r.failures {
            *failures.entry(k.clone()).or_insert(0) += v;
        }
        io = (io.0 + r.io.0, io.1 + r.io.1, io.2 + r.io.2);
        if let Some(e) = &r.error {
            rep.problem(e.clone());
        }
    }
    let failed: u64 = failures.values().sum();
    let secs = if last_rx > run_start {
        (last_rx - run_start) as f64 / 1e9
    } else {
        0.0
    };
    rep.connections = ConnReport {
        requested: args.connections as u64,
        ok: open,
        failed,
        failures,
        unexpected_disconnects: disconnects,
        connect_secs,
        connect_rate_per_sec: rate(open, connect_secs),
        handshake_latency: LatencyReport::from_hist(&handshake),
    };
    let sent = sh.sent.load(Acquire);
    rep.traffic = Some(TrafficReport {
        messages_sent: sent,
        receivers: open,
        expected_frames: expected,
        received_frames: order.received,
        lost_frames: expected.saturating_sub(order.received),
        gaps: order.gaps,
        order_violations: order.order_violations,
        malformed,
        traffic_secs: secs,
        delivered_frames_per_sec: rate(order.received, secs),
        messages_per_sec: rate(sent, secs),
        publisher_frames_drained: 0,
    });
    rep.latency = LatencyReport::from_hist(&hist);
    if let Some(mut s) = server {
        s.compute_per_conn(open);
        rep.server = Some(s);
    }
    rep.generator = report::GeneratorReport::new(runner::thread_cpus(&workers), cpu, wall, io);
    rep.timed_out = timed_out;
    rep.wall_secs = wall as f64 / 1e9;
    if failed > 0 {
        rep.problem(format!("{failed} connections failed"));
    }
    if disconnects > 0 {
        rep.problem(format!("{disconnects} connections dropped by the server"));
    }
    rep.finalize();
    rep
}

//! The `fanout` workload: many subscribers in one room, a few publishers broadcasting
//! timestamped, sequenced messages; subscribers check per-publisher order and loss and
//! record publish → receive latency.
//!
//! Threads share only a handful of atomics (phase, counters) and, in closed-loop mode,
//! one delivery counter per outstanding message. Subscriber threads batch their counts
//! locally and publish them once per loop iteration, so there is no cross-thread traffic
//! per delivered frame. When a message has reached every subscriber, the thread that saw
//! the last delivery wakes the threads that own publishers through their eventfds.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering::*};
use std::sync::Arc;

use hdrhistogram::Histogram;

use crate::cli::FanoutArgs;
use crate::codec::{Frame, OP_BINARY};
use crate::conn::{Closed, Conns};
use crate::event_loop::{EventLoop, Handler};
use crate::message::{self, OrderStats};
use crate::procfs;
use crate::progress::Progress;
use crate::report::{self, ConnReport, LatencyReport, Report, ServerReport, TrafficReport};
use crate::runner::{self, Dialer, Plan, Wakers};
use crate::sys;

const PH_CONNECT: u8 = 0;
const PH_PUBLISH: u8 = 1;
const PH_DRAIN: u8 = 2;
const PH_STOP: u8 = 3;

/// Tag bit marking a publisher connection.
const PUB_BIT: u32 = 1 << 31;

/// Immutable run parameters shared by all threads.
struct Cfg {
    args: FanoutArgs,
    threads: usize,
    /// Messages to publish in total (u64::MAX with --duration).
    messages: u64,
    deadline_ns: u64,
    /// Closed-loop ring size per publisher (power of two ≥ in_flight), 0 when open loop.
    ring: u64,
}

/// Cross-thread state.
struct Shared {
    phase: AtomicU8,
    subs_open: AtomicU64,
    pubs_open: AtomicU64,
    failed: AtomicU64,
    threads_connected: AtomicUsize,
    last_open_ns: AtomicU64,
    n_subs: AtomicU64,
    issued: AtomicU64,
    sent: AtomicU64,
    completed: AtomicU64,
    received: AtomicU64,
    drain_acks: AtomicUsize,
    /// Closed loop: deliveries counted per (publisher, seq % ring).
    slot_counts: Vec<AtomicU32>,
    wakers: Wakers,
    /// Which threads own at least one publisher.
    pub_threads: Vec<bool>,
}

/// What one thread measured.
struct ThreadResult {
    hist: Histogram<u64>,
    handshake: Histogram<u64>,
    order: OrderStats,
    malformed: u64,
    pub_frames: u64,
    failures: BTreeMap<String, u64>,
    disconnects: u64,
    last_rx_ns: u64,
    reads: u64,
    writes: u64,
    waits: u64,
    error: Option<String>,
}

struct PubState {
    id: u64,
    slot: Option<usize>,
    seq: u64,
}

struct Worker {
    cfg: Arc<Cfg>,
    sh: Arc<Shared>,
    thread: usize,
    publishers: u64,
    pubs: Vec<PubState>,
    next_pub: usize,
    /// Per local subscriber × publisher: next expected sequence number.
    next_seq: Vec<u64>,
    sub_open: Vec<bool>,
    payload: Vec<u8>,
    local_counts: Vec<u32>,
    touched: Vec<u32>,
    flushed_received: u64,
    res: ThreadResult,
}

impl Handler for Worker {
    fn on_open(&mut self, conns: &mut Conns, slot: usize, tag: u32, now: u64) {
        if let Some(c) = conns.get(slot) {
            let _ = self
                .res
                .handshake
                .record(now.saturating_sub(c.started_ns).max(1));
        }
        if tag & PUB_BIT != 0 {
            self.pubs[(tag & !PUB_BIT) as usize].slot = Some(slot);
            self.sh.pubs_open.fetch_add(1, Relaxed);
        } else {
            self.sub_open[tag as usize] = true;
            self.sh.subs_open.fetch_add(1, Relaxed);
        }
        self.sh.last_open_ns.fetch_max(now, Relaxed);
    }

    fn on_frame(&mut self, _c: &mut Conns, _slot: usize, tag: u32, f: Frame<'_>, now: u64) {
        if tag & PUB_BIT != 0 {
            self.res.pub_frames += 1;
            return;
        }
        let h = match message::read_header(f.payload) {
            Some(h) if f.opcode == OP_BINARY && f.fin && h.sender < self.publishers => h,
            _ => {
                self.res.malformed += 1;
                return;
            }
        };
        let idx = tag as usize * self.publishers as usize + h.sender as usize;
        let check = message::check_seq(&mut self.next_seq[idx], h.seq);
        self.res.order.record(check);
        let _ = self.res.hist.record(now.saturating_sub(h.ts_ns).max(1));
        self.res.last_rx_ns = now;
        if self.cfg.ring > 0 && check.is_new() {
            let s = (h.sender * self.cfg.ring + (h.seq & (self.cfg.ring - 1))) as usize;
            if self.local_counts[s] == 0 {
                self.touched.push(s as u32);
            }
            self.local_counts[s] += 1;
        }
    }

    fn on_closed(&mut self, _slot: usize, tag: u32, why: Closed, _now: u64) {
        match why {
            Closed::Failed(f) => {
                *self.res.failures.entry(f.category()).or_default() += 1;
                self.sh.failed.fetch_add(1, Relaxed);
            }
            _ => {
                self.res.disconnects += 1;
                if tag & PUB_BIT != 0 {
                    self.pubs[(tag & !PUB_BIT) as usize].slot = None;
                } else {
                    self.sub_open[tag as usize] = false;
                }
            }
        }
    }
}

impl Worker {
    /// Publishes local counts to the shared counters; wakes publisher threads when a
    /// message completed.
    fn flush(&mut self) {
        let d = self.res.order.received - self.flushed_received;
        if d > 0 {
            self.sh.received.fetch_add(d, Release);
            self.flushed_received = self.res.order.received;
        }
        if self.touched.is_empty() {
            return;
        }
        let n_subs = self.sh.n_subs.load(Acquire) as u32;
        let mut completed = 0;
        for s in self.touched.drain(..) {
            let s = s as usize;
            let c = std::mem::take(&mut self.local_counts[s]);
            let prev = self.sh.slot_counts[s].fetch_add(c, AcqRel);
            if prev + c == n_subs {
                self.sh.slot_counts[s].store(0, Release);
                completed += 1;
            }
        }
        if completed > 0 {
            self.sh.completed.fetch_add(completed, Release);
            for (t, &has) in self.sh.pub_threads.iter().enumerate() {
                if has && t != self.thread {
                    self.sh.wakers.wake(t);
                }
            }
        }
    }

    /// Sends one message on the next live local publisher; false if none is live.
    fn publish_one(&mut self, conns: &mut Conns) -> bool {
        let n = self.pubs.len();
        for _ in 0..n {
            let i = self.next_pub % n;
            self.next_pub = self.next_pub.wrapping_add(1);
            let p = &mut self.pubs[i];
            if let Some(slot) = p.slot {
                message::write_header(&mut self.payload, p.id, p.seq, sys::now_ns());
                p.seq += 1;
                conns.send(slot, OP_BINARY, &self.payload);
                self.sh.sent.fetch_add(1, Release);
                return true;
            }
        }
        false
    }

    fn has_live_pub(&self) -> bool {
        self.pubs.iter().any(|p| p.slot.is_some())
    }

    /// Closed loop: publish while fewer than `in_flight` messages are outstanding.
    fn publish_closed(&mut self, conns: &mut Conns) {
        let k = self.cfg.args.in_flight.max(1);
        while self.has_live_pub() {
            let cur = self.sh.issued.load(Acquire);
            let done = self.sh.completed.load(Acquire);
            if cur >= self.cfg.messages || cur - done.min(cur) >= k {
                return;
            }
            if self
                .sh
                .issued
                .compare_exchange(cur, cur + 1, AcqRel, Acquire)
                .is_ok()
            {
                self.publish_one(conns);
            }
        }
    }
}

fn worker(cfg: Arc<Cfg>, sh: Arc<Shared>, thread: usize) -> ThreadResult {
    let a = &cfg.args;
    let p = a.publishers as u64;
    let total = p + a.subscribers as u64;
    let mut n_pubs = 0u32;
    let mut n_subs = 0u32;
    let mut pubs = Vec::new();
    // Publishers are global indices 0..P, subscribers P..P+S.
    let mut plan: Plan = runner::plan_for_thread(thread, cfg.threads, total, |i| {
        if i < p {
            pubs.push(PubState {
                id: i,
                slot: None,
                seq: 0,
            });
            n_pubs += 1;
            PUB_BIT | (n_pubs - 1)
        } else {
            n_subs += 1;
            n_subs - 1
        }
    });
    let mut w = Worker {
        sh: sh.clone(),
        thread,
        publishers: p,
        pubs,
        next_pub: 0,
        next_seq: vec![0; n_subs as usize * p as usize],
        sub_open: vec![false; n_subs as usize],
        payload: vec![0u8; a.size],
        local_counts: vec![0; (p * cfg.ring) as usize],
        touched: Vec::new(),
        flushed_received: 0,
        res: ThreadResult {
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
        },
        cfg: cfg.clone(),
    };
    let mut el = match EventLoop::new(a.size, thread as u64, sh.wakers.fd(thread)) {
        Ok(el) => el,
        Err(e) => {
            w.res.error = Some(format!("thread {thread}: event loop: {e}"));
            sh.threads_connected.fetch_add(1, AcqRel);
            return w.res;
        }
    };
    let start = sys::now_ns();
    let mut dialer = Dialer::new(&a.common, cfg.threads, start);
    let mut connected_reported = false;
    let mut drain_acked = false;
    let local_pubs = w.pubs.len() as f64;
    let mut pub_pacer = None;
    let mut last_expire = start;
    loop {
        let now = sys::now_ns();
        let phase = sh.phase.load(Acquire);
        if phase == PH_STOP || now >= cfg.deadline_ns {
            break;
        }
        if !plan.is_empty() {
            dialer.pump(&mut el, &mut plan, now, |_tag, f| {
                *w.res.failures.entry(f.category()).or_default() += 1;
                sh.failed.fetch_add(1, Relaxed);
            });
        }
        if !connected_reported && plan.is_empty() && el.conns.pending == 0 {
            connected_reported = true;
            sh.threads_connected.fetch_add(1, AcqRel);
        }
        let mut timeout = 5_000_000u64;
        match phase {
            PH_PUBLISH if a.rate == 0 => w.publish_closed(&mut el.conns),
            PH_PUBLISH if local_pubs > 0.0 => {
                let pacer = pub_pacer.get_or_insert_with(|| {
                    runner::Pacer::new(a.rate as f64 * local_pubs / p as f64, now)
                });
                while pacer.take(now) {
                    if sh.issued.fetch_add(1, AcqRel) >= cfg.messages
                        || !w.publish_one(&mut el.conns)
                    {
                        break;
                    }
                }
                timeout = timeout.min(pacer.wait_ns(sys::now_ns()).max(1));
            }
            PH_DRAIN if !drain_acked => {
                drain_acked = true;
                sh.drain_acks.fetch_add(1, AcqRel);
            }
            _ => {}
        }
        el.reap_dead(&mut w, now);
        w.flush();
        if let Some(d) = dialer.wait_ns(&plan, &el, now) {
            timeout = timeout.min(d.max(1));
        }
        if let Err(e) = el.poll(&mut w, timeout) {
            w.res.error = Some(format!("thread {thread}: epoll: {e}"));
            break;
        }
        let now = sys::now_ns();
        if now - last_expire > 20_000_000 {
            last_expire = now;
            el.expire(&mut w, now);
        }
    }
    w.flush();
    if !connected_reported {
        sh.threads_connected.fetch_add(1, AcqRel);
    }
    if !drain_acked {
        sh.drain_acks.fetch_add(1, AcqRel);
    }
    w.res.reads = el.stats.reads;
    w.res.writes = el.conns.write_calls;
    w.res.waits = el.poller.waits;
    w.res
}

/// Runs the fanout workload and returns its report.
pub fn run(args: FanoutArgs, command: Vec<String>) -> Report {
    let t0 = sys::now_ns();
    let cpu0 = sys::process_cpu();
    let mut rep = Report {
        workload: "fanout".into(),
        command,
        ..Default::default()
    };
    let threads = runner::thread_count(&args.common);
    let total_conns = (args.subscribers + args.publishers) as u64;
    if let Err(e) = validate(&args) {
        rep.problem(e);
        rep.finalize();
        return rep;
    }
    if let Err(e) = sys::ensure_fd_budget(total_conns, threads) {
        rep.problem(e);
        rep.finalize();
        return rep;
    }
    let timeout = args.common.timeout.unwrap_or_else(|| match args.duration {
        Some(d) => d + std::time::Duration::from_secs(30),
        None => std::time::Duration::from_secs(60),
    });
    let deadline_ns = t0 + timeout.as_nanos() as u64;
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
    let wakers = match Wakers::new(threads) {
        Ok(w) => w,
        Err(e) => {
            rep.problem(format!("eventfd: {e}"));
            rep.finalize();
            return rep;
        }
    };
    let sh = Arc::new(Shared {
        phase: AtomicU8::new(PH_CONNECT),
        subs_open: AtomicU64::new(0),
        pubs_open: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        threads_connected: AtomicUsize::new(0),
        last_open_ns: AtomicU64::new(0),
        n_subs: AtomicU64::new(0),
        issued: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        completed: AtomicU64::new(0),
        received: AtomicU64::new(0),
        drain_acks: AtomicUsize::new(0),
        slot_counts: (0..args.publishers as u64 * ring)
            .map(|_| AtomicU32::new(0))
            .collect(),
        wakers,
        pub_threads: (0..threads)
            .map(|t| (t as u64) < (args.publishers as u64).min(threads as u64))
            .collect(),
    });
    let cfg = Arc::new(Cfg {
        args: args.clone(),
        threads,
        messages,
        deadline_ns,
        ring,
    });
    let mut server = args.common.server_pid.map(|pid| ServerReport {
        pid,
        before: procfs::sample(pid),
        ..Default::default()
    });
    let mut progress = Progress::new(args.common.no_progress);

    let connect_start = sys::now_ns();
    let handles = {
        let (cfg, sh) = (cfg.clone(), sh.clone());
        runner::spawn_workers(threads, args.common.pin_cpu.as_ref(), move |t| {
            worker(cfg.clone(), sh.clone(), t)
        })
    };

    // Phase 1: connect everything.
    progress.phase("connect", total_conns);
    let mut timed_out = false;
    while sh.threads_connected.load(Acquire) < threads {
        if sys::now_ns() >= deadline_ns {
            timed_out = true;
            break;
        }
        let open = sh.subs_open.load(Relaxed) + sh.pubs_open.load(Relaxed);
        let failed = sh.failed.load(Relaxed);
        progress.update(open + failed, &format!("open {open} failed {failed}"));
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let subs_open = sh.subs_open.load(Acquire);
    let pubs_open = sh.pubs_open.load(Acquire);
    let last_open = sh.last_open_ns.load(Acquire).max(connect_start);
    let connect_secs = (last_open - connect_start) as f64 / 1e9;
    if let Some(s) = server.as_mut() {
        s.after_connect = procfs::sample(s.pid);
    }

    // Phase 2: publish.
    let mut publish_start = sys::now_ns();
    if !timed_out && subs_open > 0 && pubs_open > 0 {
        std::thread::sleep(args.settle);
        sh.n_subs.store(subs_open, Release);
        publish_start = sys::now_ns();
        sh.phase.store(PH_PUBLISH, Release);
        sh.wakers.wake_all();
        let total_expected = messages.saturating_mul(subs_open);
        let phase_len = match args.duration {
            Some(d) => d.as_millis() as u64,
            None => total_expected,
        };
        progress.phase("publish", phase_len);
        let pub_end = args.duration.map(|d| publish_start + d.as_nanos() as u64);
        let mut draining = false;
        loop {
            let now = sys::now_ns();
            if now >= deadline_ns {
                timed_out = true;
                break;
            }
            let sent = sh.sent.load(Acquire);
            let received = sh.received.load(Acquire);
            if !draining
                && (sent >= messages
                    || pub_end.is_some_and(|e| now >= e)
                    || (sh.issued.load(Acquire) >= messages && args.rate > 0))
            {
                draining = true;
                sh.phase.store(PH_DRAIN, Release);
                sh.wakers.wake_all();
            }
            if draining && sh.drain_acks.load(Acquire) >= threads {
                let sent = sh.sent.load(Acquire);
                if sh.received.load(Acquire) >= sent.saturating_mul(subs_open) {
                    break;
                }
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
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    } else if !timed_out {
        if subs_open == 0 {
            rep.problem("no subscriber connected");
        }
        if pubs_open == 0 {
            rep.problem("no publisher connected");
        }
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

    // Merge.
    let mut hist = report::new_hist();
    let mut handshake = report::new_hist();
    let mut order = OrderStats::default();
    let (mut malformed, mut pub_frames, mut disconnects, mut last_rx) = (0, 0, 0, 0);
    let mut failures = BTreeMap::new();
    let (mut reads, mut writes, mut waits) = (0, 0, 0);
    for w in &workers {
        let r = &w.result;
        hist.add(&r.hist).expect("same histogram bounds");
        handshake.add(&r.handshake).expect("same histogram bounds");
        order.received += r.order.received;
        order.gaps += r.order.gaps;
        order.order_violations += r.order.order_violations;
        malformed += r.malformed;
        pub_frames += r.pub_frames;
        disconnects += r.disconnects;
        last_rx = last_rx.max(r.last_rx_ns);
        for (k, v) in &r.failures {
            *failures.entry(k.clone()).or_insert(0) += v;
        }
        reads += r.reads;
        writes += r.writes;
        waits += r.waits;
        if let Some(e) = &r.error {
            rep.problem(e.clone());
        }
    }
    let failed: u64 = failures.values().sum();
    let sent = sh.sent.load(Acquire);
    let traffic_secs = if last_rx > publish_start {
        (last_rx - publish_start) as f64 / 1e9
    } else {
        0.0
    };
    let expected = sent.saturating_mul(subs_open);
    rep.connections = ConnReport {
        requested: total_conns,
        ok: subs_open + pubs_open,
        failed,
        failures,
        unexpected_disconnects: disconnects,
        connect_secs,
        connect_rate_per_sec: rate(subs_open + pubs_open, connect_secs),
        handshake_latency: LatencyReport::from_hist(&handshake),
    };
    rep.traffic = Some(TrafficReport {
        messages_sent: sent,
        receivers: subs_open,
        expected_frames: expected,
        received_frames: order.received,
        lost_frames: expected.saturating_sub(order.received),
        gaps: order.gaps,
        order_violations: order.order_violations,
        malformed,
        traffic_secs,
        delivered_frames_per_sec: rate(order.received, traffic_secs),
        messages_per_sec: rate(sent, traffic_secs),
        publisher_frames_drained: pub_frames,
    });
    rep.latency = LatencyReport::from_hist(&hist);
    if let Some(mut s) = server {
        s.compute_per_conn(subs_open + pubs_open);
        rep.server = Some(s);
    }
    rep.generator =
        report::GeneratorReport::from_workers(&workers, cpu, wall, (reads, writes, waits));
    rep.timed_out = timed_out;
    rep.wall_secs = wall as f64 / 1e9;
    if failed > 0 {
        rep.problem(format!("{failed} connections failed"));
    }
    if disconnects > 0 {
        rep.problem(format!("{disconnects} connections dropped by the server"));
    }
    if sent == 0 && rep.problems.is_empty() {
        rep.problem("nothing was published");
    }
    rep.finalize();
    rep
}

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
    if a.publishers == 0 || a.publishers as u64 > message::MAX_SENDERS {
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
    Ok(())
}

/// `n / secs`, 0 when no time elapsed.
pub fn rate(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

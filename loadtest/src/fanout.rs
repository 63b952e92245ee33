//! The `fanout` workload: many subscribers in one room, a few publishers broadcasting
//! timestamped, sequenced messages; subscribers check per-publisher order and loss and
//! record publish → receive latency.
//!
//! Threads share only a handful of atomics (phase, counters) and, in closed-loop mode,
//! one delivery counter per outstanding message. Subscriber threads batch their counts
//! locally and publish them once per loop iteration, so there is no cross-thread traffic
//! per delivered frame. When a message has reached every subscriber, the thread that saw
//! the last delivery wakes the threads that own publishers through their eventfds.
//!
//! With `--churn P` subscribers connect with `?seq=1` (the server's sequence framing) and
//! track the last room sequence number they saw; every second of the publish phase each
//! thread closes its share of ceil(P% × subscribers) open subscribers (round-robin) and
//! reconnects each with `?since=<last>`. A resumed subscriber must continue with
//! last + 1, last + 2, …: anything else is loss or a duplicate.
//!
//! With `--slow-fraction F` some subscribers are slow consumers (see [`crate::slow`]):
//! they stall or trickle, are counted apart, and take no part in the loss check, the
//! latency, the closed loop or the drain; `traffic` is then about the fast ones.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering::*};
use std::sync::Arc;

use hdrhistogram::Histogram;

use crate::cli::{CloseMode, FanoutArgs, SlowMode};
use crate::codec::{Frame, OP_BINARY, OP_TEXT};
use crate::conn::{Closed, Conns};
use crate::connect::close_how;
use crate::event_loop::{EventLoop, Handler};
use crate::message::{self, OrderStats, RoomCheck, RoomSeq, RoomStats};
use crate::progress::Progress;
use crate::report::{self, ChurnReport, ConnReport, LatencyReport, Report, TrafficReport};
use crate::runner::{self, Dialer, Plan, Wakers, WorkerOut};
use crate::slow::{self, SlowReport, SlowStats, Trickle};
use crate::sys;
use crate::tls::TlsClient;
use crate::watch::Watch;

const PH_CONNECT: u8 = 0;
const PH_PUBLISH: u8 = 1;
const PH_DRAIN: u8 = 2;
const PH_STOP: u8 = 3;

/// Tag bit marking a publisher connection.
const PUB_BIT: u32 = 1 << 31;

const SEC_NS: u64 = 1_000_000_000;
/// Delay before retrying a failed resume.
const RETRY_NS: u64 = 200_000_000;
/// Resume attempts per churn before a subscriber is given up (its messages then count
/// as lost).
const MAX_ATTEMPTS: u32 = 5;

/// Immutable run parameters shared by all threads.
struct Cfg {
    args: FanoutArgs,
    threads: usize,
    /// Messages to publish in total (u64::MAX with --duration).
    messages: u64,
    deadline_ns: u64,
    /// Closed-loop ring size per publisher (power of two ≥ in_flight), 0 when open loop.
    ring: u64,
    /// `--url`'s path and query as given (resumes append `since=N` to it).
    base_path: String,
    /// Subscribers churned per second over all threads (0 = churn off).
    churn_per_tick: u64,
    /// wss://: the shared TLS client configuration.
    tls: Option<TlsClient>,
    /// Slow subscribers in all (`--slow-fraction`).
    n_slow: u64,
}

/// Cross-thread state.
struct Shared {
    phase: AtomicU8,
    subs_open: AtomicU64,
    /// Of `subs_open`, the slow ones.
    slow_open: AtomicU64,
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
    /// Churned subscribers not resumed yet (the drain waits for them).
    resumes_pending: AtomicU64,
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
    churn: ChurnResult,
    slow: SlowStats,
}

/// What one thread's churn did.
struct ChurnResult {
    room: RoomStats,
    churned: u64,
    reconnects_ok: u64,
    reconnect_failures: u64,
    reasons: BTreeMap<String, u64>,
    subscribers_churned: u64,
    resumed_frames: u64,
    bad_control: u64,
    reconnect_hist: Histogram<u64>,
}

/// Where a subscriber is in its connect / churn life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SubPhase {
    /// First connection in progress.
    Connecting,
    /// Open (first connection or a resumed one).
    Open,
    /// Churn: our close is in progress.
    Closing,
    /// Churn: closed, waiting in the reconnect queue.
    Queued,
    /// Churn: the resume connection is being set up.
    Reconnecting,
    /// Gone (dropped by the server, or given up after failed resumes).
    Gone,
}

/// One local subscriber.
struct Sub {
    /// Global connection index (source address choice).
    global: u64,
    slot: usize,
    phase: SubPhase,
    /// Room sequence tracking (churn only), kept across reconnects.
    room: RoomSeq,
    /// Resumed connection: when its upgrade completed (0 otherwise).
    resumed_at: u64,
    reconnect_started: u64,
    attempts: u32,
    churns: u32,
    /// A slow consumer (`--slow-fraction`).
    slow: bool,
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
    subs: Vec<Sub>,
    /// `--churn` > 0: subscribers use the sequence framing.
    churn_on: bool,
    churn_close: CloseMode,
    churn_cursor: usize,
    churn_count: u64,
    /// Subscribers to reconnect, with the earliest time to do it.
    reconnect_q: Vec<(u32, u64)>,
    /// Local indices of the slow subscribers.
    slow_subs: Vec<u32>,
    /// `--slow-mode trickle`: when they read next.
    trickle: Option<Trickle>,
    payload: Vec<u8>,
    local_counts: Vec<u32>,
    touched: Vec<u32>,
    flushed_received: u64,
    res: ThreadResult,
}

impl Handler for Worker {
    fn on_open(&mut self, conns: &mut Conns, slot: usize, tag: u32, now: u64) {
        if tag & PUB_BIT == 0 {
            let s = &mut self.subs[tag as usize];
            s.slot = slot;
            if s.phase == SubPhase::Reconnecting {
                s.phase = SubPhase::Open;
                s.resumed_at = now;
                s.attempts = 0;
                self.res.churn.reconnects_ok += 1;
                self.sh.resumes_pending.fetch_sub(1, AcqRel);
                let _ = self
                    .res
                    .churn
                    .reconnect_hist
                    .record(now.saturating_sub(s.reconnect_started).max(1));
                return;
            }
            s.phase = SubPhase::Open;
            if s.slow {
                // From now on only `trickle` (or nothing, `stall`) reads it.
                if let Some(c) = conns.get_mut(slot) {
                    c.throttled = true;
                }
                self.sh.slow_open.fetch_add(1, Relaxed);
            }
        }
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
            self.sh.subs_open.fetch_add(1, Relaxed);
        }
        self.sh.last_open_ns.fetch_max(now, Relaxed);
    }

    fn on_frame(&mut self, _c: &mut Conns, _slot: usize, tag: u32, f: Frame<'_>, now: u64) {
        if tag & PUB_BIT != 0 {
            self.res.pub_frames += 1;
            return;
        }
        let (opcode, payload) = if self.churn_on {
            match self.unframe(tag as usize, f) {
                Some(x) => x,
                None => return,
            }
        } else {
            (f.opcode, f.payload)
        };
        let h = match message::read_header(payload) {
            Some(h) if opcode == OP_BINARY && f.fin && h.sender < self.publishers => h,
            _ if self.subs[tag as usize].slow => {
                self.res.slow.malformed += 1;
                return;
            }
            _ => {
                self.res.malformed += 1;
                return;
            }
        };
        if self.churn_on {
            let s = &self.subs[tag as usize];
            if s.resumed_at != 0 && h.ts_ns < s.resumed_at {
                self.res.churn.resumed_frames += 1;
            }
        }
        let idx = tag as usize * self.publishers as usize + h.sender as usize;
        let check = message::check_seq(&mut self.next_seq[idx], h.seq);
        if self.subs[tag as usize].slow {
            self.res.slow.order.record(check);
            return;
        }
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

    fn on_closed(&mut self, _slot: usize, tag: u32, why: Closed, now: u64) {
        if tag & PUB_BIT == 0 {
            let i = tag as usize;
            match (self.subs[i].phase, &why) {
                (SubPhase::Reconnecting, Closed::Failed(f)) => {
                    let reason = f.category();
                    self.reconnect_failed(i, reason, now);
                    return;
                }
                (SubPhase::Closing, _) => {
                    // Our churn close finished (however it ended): resume now.
                    self.subs[i].phase = SubPhase::Queued;
                    self.reconnect_q.push((tag, now));
                    return;
                }
                (SubPhase::Open, _) if self.subs[i].slow => {
                    // Expected under the server's slow policy: counted apart.
                    self.res.slow.ended(&why);
                    self.subs[i].phase = SubPhase::Gone;
                    return;
                }
                _ => {}
            }
        }
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
                    self.subs[tag as usize].phase = SubPhase::Gone;
                }
            }
        }
    }
}

impl Worker {
    /// Churn mode: checks a frame's sequence framing and returns the original opcode and
    /// payload, or `None` if the frame was consumed here (control message, duplicate,
    /// malformed).
    fn unframe<'a>(&mut self, sub: usize, f: Frame<'a>) -> Option<(u8, &'a [u8])> {
        let st = &mut self.res.churn.room;
        match f.opcode {
            OP_TEXT if f.fin => {
                match message::parse_control(f.payload) {
                    Some(c) => self.subs[sub].room.control(c, st),
                    None => self.res.churn.bad_control += 1,
                }
                None
            }
            OP_BINARY if f.fin => match message::parse_seq_frame(f.payload) {
                Some(sf) => match self.subs[sub].room.check(sf.room_seq, st) {
                    RoomCheck::Duplicate => None,
                    _ => Some((sf.opcode, sf.payload)),
                },
                None => {
                    self.res.malformed += 1;
                    None
                }
            },
            _ => {
                self.res.malformed += 1;
                None
            }
        }
    }

    /// Closes up to `k` open subscribers (round-robin) that have a room sequence number
    /// to resume from; the ones closed at once are queued for reconnecting.
    fn churn_some(&mut self, conns: &mut Conns, k: u64, now: u64, close_timeout: u64) {
        let n = self.subs.len();
        let (mut done, mut scanned) = (0u64, 0usize);
        while done < k && scanned < n {
            let i = self.churn_cursor % n;
            self.churn_cursor = (i + 1) % n;
            scanned += 1;
            let s = &mut self.subs[i];
            if s.phase != SubPhase::Open || s.room.last.is_none() {
                continue;
            }
            done += 1;
            if s.churns == 0 {
                self.res.churn.subscribers_churned += 1;
            }
            s.churns += 1;
            s.resumed_at = 0;
            s.phase = SubPhase::Closing;
            self.res.churn.churned += 1;
            self.sh.resumes_pending.fetch_add(1, AcqRel);
            let how = close_how(self.churn_close, self.churn_count);
            self.churn_count += 1;
            if conns.close(s.slot, how, now, close_timeout) {
                s.phase = SubPhase::Queued;
                self.reconnect_q.push((i as u32, now));
            }
        }
    }

    /// Starts the due reconnects; returns how long until the next one is due.
    fn reconnect_due(&mut self, el: &mut EventLoop, dialer: &Dialer, now: u64) -> Option<u64> {
        let mut wait: Option<u64> = None;
        let mut q = 0;
        while q < self.reconnect_q.len() {
            let (sub, at) = self.reconnect_q[q];
            if at > now {
                wait = Some(wait.map_or(at - now, |w| w.min(at - now)));
                q += 1;
                continue;
            }
            self.reconnect_q.swap_remove(q);
            let i = sub as usize;
            let s = &mut self.subs[i];
            s.phase = SubPhase::Reconnecting;
            s.reconnect_started = now;
            s.attempts += 1;
            let path = resume_path(&self.cfg.base_path, s.room.last.unwrap_or(0));
            let url = &dialer.common.url;
            let timeout = dialer.common.connect_timeout.as_nanos() as u64;
            let src = dialer.src_for(s.global);
            let epfd = el.poller.raw();
            if let Err(f) = el
                .conns
                .open(epfd, url.addr, src, &url.host, &path, sub, now, timeout)
            {
                self.reconnect_failed(i, f.category(), now);
            }
        }
        wait
    }

    /// Counts a failed resume and queues a retry (up to [`MAX_ATTEMPTS`]).
    fn reconnect_failed(&mut self, i: usize, reason: String, now: u64) {
        let c = &mut self.res.churn;
        c.reconnect_failures += 1;
        *c.reasons.entry(reason).or_default() += 1;
        let s = &mut self.subs[i];
        if s.attempts >= MAX_ATTEMPTS {
            s.phase = SubPhase::Gone;
            self.sh.resumes_pending.fetch_sub(1, AcqRel);
        } else {
            s.phase = SubPhase::Queued;
            self.reconnect_q.push((i as u32, now + RETRY_NS));
        }
    }

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

    /// `--slow-mode trickle`: one read of `--slow-read-bytes` per open slow subscriber
    /// when a round is due; returns how long until the next round.
    fn trickle(&mut self, el: &mut EventLoop, now: u64) -> Option<u64> {
        let t = self.trickle.as_mut()?;
        if t.due(now) {
            let bytes = t.bytes;
            for k in 0..self.slow_subs.len() {
                let s = &self.subs[self.slow_subs[k] as usize];
                if s.phase != SubPhase::Open {
                    continue;
                }
                let slot = s.slot;
                let n = el.read_some(self, slot, bytes, now);
                self.res.slow.reads += 1;
                self.res.slow.bytes_read += n as u64;
            }
        }
        self.trickle
            .as_ref()
            .map(|t| t.wait_ns(sys::now_ns()).max(1))
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
    let mut subs = Vec::new();
    let mut slow_subs = Vec::new();
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
            let slow = slow::is_slow(i - p, a.subscribers as u64, cfg.n_slow);
            if slow {
                slow_subs.push(n_subs);
            }
            subs.push(Sub {
                global: i,
                slot: 0,
                phase: SubPhase::Connecting,
                room: RoomSeq::default(),
                resumed_at: 0,
                reconnect_started: 0,
                attempts: 0,
                churns: 0,
                slow,
            });
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
        subs,
        churn_on: cfg.churn_per_tick > 0,
        churn_close: a.churn_close,
        churn_cursor: 0,
        churn_count: 0,
        reconnect_q: Vec::new(),
        trickle: (a.slow_mode == SlowMode::Trickle && !slow_subs.is_empty())
            .then(|| Trickle::new(a.slow_read_bytes, a.slow_read_interval, sys::now_ns())),
        slow_subs,
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
        },
        cfg: cfg.clone(),
    };
    // Sequence-framed room messages carry a 9-byte prefix.
    let max_payload = if w.churn_on {
        a.size + message::SEQ_PREFIX_LEN
    } else {
        a.size
    };
    let mut el = match EventLoop::new(
        max_payload,
        thread as u64,
        sh.wakers.fd(thread),
        cfg.tls.clone(),
    ) {
        Ok(el) => el,
        Err(e) => {
            w.res.error = Some(format!("thread {thread}: event loop: {e}"));
            sh.threads_connected.fetch_add(1, AcqRel);
            return w.res;
        }
    };
    if a.deflate {
        el.conns.deflate = true;
        crate::deflate::fill_json(&mut w.payload[message::HEADER_LEN..], thread as u64);
    }
    let start = sys::now_ns();
    let mut dialer = Dialer::new(&a.common, cfg.threads, start);
    let mut connected_reported = false;
    let mut drain_acked = false;
    let local_pubs = w.pubs.len() as f64;
    let mut pub_pacer = None;
    let mut last_expire = start;
    let mut next_churn: Option<u64> = None;
    let mut churn_tick = 0u64;
    let close_timeout = a.common.connect_timeout.as_nanos() as u64;
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
        if w.churn_on {
            if phase == PH_PUBLISH {
                // One churn round per second, from 1 s after publishing starts; a late
                // round is not made up for (bounded work per round).
                let next = next_churn.get_or_insert(now + SEC_NS);
                if now >= *next {
                    *next += SEC_NS;
                    if *next <= now {
                        *next = now + SEC_NS;
                    }
                    let k = churn_share(cfg.churn_per_tick, cfg.threads, thread, churn_tick);
                    churn_tick += 1;
                    w.churn_some(&mut el.conns, k, now, close_timeout);
                }
                timeout = timeout.min(next.saturating_sub(now).max(1));
            }
            if !w.reconnect_q.is_empty() {
                if let Some(d) = w.reconnect_due(&mut el, &dialer, now) {
                    timeout = timeout.min(d.max(1));
                }
            }
        }
        if let Some(d) = w.trickle(&mut el, now) {
            timeout = timeout.min(d);
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
pub fn run(mut args: FanoutArgs, command: Vec<String>) -> Report {
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
    let tls = runner::tls_for(&mut rep, &args.common);
    if !rep.problems.is_empty() {
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
    let base_path = args.common.url.path.clone();
    let churn_per_tick = if args.churn > 0.0 {
        // Every connection (publishers too, harmlessly) gets the sequence framing.
        args.common.url.path = with_query(&base_path, "seq=1");
        (args.churn / 100.0 * args.subscribers as f64)
            .ceil()
            .max(1.0) as u64
    } else {
        0
    };
    let sh = Arc::new(Shared {
        phase: AtomicU8::new(PH_CONNECT),
        subs_open: AtomicU64::new(0),
        slow_open: AtomicU64::new(0),
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
        resumes_pending: AtomicU64::new(0),
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
        base_path,
        churn_per_tick,
        tls,
        n_slow: slow::slow_count(args.subscribers, args.slow_fraction),
    });
    let mut watch = Watch::start(&args);
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
    let slow_open = sh.slow_open.load(Acquire);
    // The receivers every publish must reach: the fast subscribers.
    let fast_open = subs_open - slow_open;
    let pubs_open = sh.pubs_open.load(Acquire);
    let last_open = sh.last_open_ns.load(Acquire).max(connect_start);
    let connect_secs = (last_open - connect_start) as f64 / 1e9;
    watch.connected();

    // Phase 2: publish.
    let mut publish_start = sys::now_ns();
    if !timed_out && fast_open > 0 && pubs_open > 0 {
        std::thread::sleep(args.settle);
        sh.n_subs.store(fast_open, Release);
        publish_start = sys::now_ns();
        watch.publishing(&args, publish_start);
        sh.phase.store(PH_PUBLISH, Release);
        sh.wakers.wake_all();
        let total_expected = messages.saturating_mul(fast_open);
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
            watch.tick(now);
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
                if sh.received.load(Acquire) >= sent.saturating_mul(fast_open)
                    && sh.resumes_pending.load(Acquire) == 0
                {
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
        } else if fast_open == 0 {
            rep.problem("no fast subscriber connected");
        }
        if pubs_open == 0 {
            rep.problem("no publisher connected");
        }
    }
    watch.finish(&args, &mut rep, subs_open + pubs_open, sys::now_ns());
    sh.phase.store(PH_STOP, Release);
    sh.wakers.wake_all();
    let workers = runner::join_all(handles);
    progress.finish();
    let wall = sys::now_ns() - t0;
    let cpu = sys::process_cpu().since(&cpu0);

    let m = merge(&workers, &args);
    for e in &m.errors {
        rep.problem(e.clone());
    }
    let failed: u64 = m.failures.values().sum();
    let sent = sh.sent.load(Acquire);
    let traffic_secs = if m.last_rx > publish_start {
        (m.last_rx - publish_start) as f64 / 1e9
    } else {
        0.0
    };
    let expected = sent.saturating_mul(fast_open);
    rep.connections = ConnReport {
        requested: total_conns,
        ok: subs_open + pubs_open,
        failed,
        failures: m.failures,
        unexpected_disconnects: m.disconnects,
        connect_secs,
        connect_rate_per_sec: rate(subs_open + pubs_open, connect_secs),
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
    if args.churn > 0.0 {
        rep.churn = Some(m.churn);
    }
    if cfg.n_slow > 0 {
        rep.slow = Some(SlowReport::new(&args, sent, fast_open, slow_open, &m.slow));
    }
    rep.generator =
        report::GeneratorReport::from_workers(&workers, cpu, wall, (m.reads, m.writes, m.waits));
    rep.timed_out = timed_out;
    rep.wall_secs = wall as f64 / 1e9;
    if failed > 0 {
        rep.problem(format!("{failed} connections failed"));
    }
    if m.disconnects > 0 {
        rep.problem(disconnect_problem(m.disconnects, &args));
    }
    if sent == 0 && rep.problems.is_empty() {
        rep.problem("nothing was published");
    }
    rep.finalize();
    rep
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

/// Every thread's results added up.
struct Merged {
    hist: hdrhistogram::Histogram<u64>,
    handshake: hdrhistogram::Histogram<u64>,
    order: OrderStats,
    malformed: u64,
    pub_frames: u64,
    disconnects: u64,
    last_rx: u64,
    failures: BTreeMap<String, u64>,
    reads: u64,
    writes: u64,
    waits: u64,
    errors: Vec<String>,
    churn: ChurnReport,
    slow: SlowStats,
}

fn merge(workers: &[WorkerOut<ThreadResult>], args: &FanoutArgs) -> Merged {
    let mut m = Merged {
        hist: report::new_hist(),
        handshake: report::new_hist(),
        order: OrderStats::default(),
        malformed: 0,
        pub_frames: 0,
        disconnects: 0,
        last_rx: 0,
        failures: BTreeMap::new(),
        reads: 0,
        writes: 0,
        waits: 0,
        errors: Vec::new(),
        churn: ChurnReport {
            percent_per_sec: args.churn,
            close_mode: format!("{:?}", args.churn_close).to_lowercase(),
            ..Default::default()
        },
        slow: SlowStats::default(),
    };
    let mut room = RoomStats::default();
    let mut reconnect_hist = report::new_hist();
    for w in workers {
        let r = &w.result;
        let c = &r.churn;
        room.add(&c.room);
        m.churn.churned += c.churned;
        m.churn.reconnects_ok += c.reconnects_ok;
        m.churn.reconnect_failures += c.reconnect_failures;
        for (k, v) in &c.reasons {
            *m.churn
                .reconnect_failure_reasons
                .entry(k.clone())
                .or_insert(0) += v;
        }
        m.churn.subscribers_churned += c.subscribers_churned;
        m.churn.resumed_frames += c.resumed_frames;
        m.churn.bad_control += c.bad_control;
        reconnect_hist
            .add(&c.reconnect_hist)
            .expect("same histogram bounds");
        m.hist.add(&r.hist).expect("same histogram bounds");
        m.handshake
            .add(&r.handshake)
            .expect("same histogram bounds");
        m.order.received += r.order.received;
        m.order.gaps += r.order.gaps;
        m.order.order_violations += r.order.order_violations;
        m.malformed += r.malformed;
        m.pub_frames += r.pub_frames;
        m.disconnects += r.disconnects;
        m.last_rx = m.last_rx.max(r.last_rx_ns);
        for (k, v) in &r.failures {
            *m.failures.entry(k.clone()).or_insert(0) += v;
        }
        m.reads += r.reads;
        m.writes += r.writes;
        m.waits += r.waits;
        m.errors.extend(r.error.clone());
        m.slow.add(&r.slow);
    }
    let ch = &mut m.churn;
    ch.reconnect_latency = LatencyReport::from_hist(&reconnect_hist);
    ch.not_resumed = ch.churned.saturating_sub(ch.reconnects_ok);
    ch.room_seq_lost = room.lost();
    ch.room_seq_skipped = room.skipped;
    ch.duplicates = room.duplicates;
    ch.gap_messages = room.gap_messages;
    ch.gap_frames = room.gap_frames;
    ch.reset_messages = room.resets;
    m
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
    if a.churn > 0.0 && a.common.url.path.contains('#') {
        return Err("--churn: the --url path must not have a fragment".into());
    }
    let n_slow = slow::slow_count(a.subscribers, a.slow_fraction);
    if n_slow > 0 && a.churn > 0.0 {
        return Err("--slow-fraction and --churn cannot be combined".into());
    }
    if n_slow >= a.subscribers as u64 && a.slow_fraction > 0.0 {
        return Err("--slow-fraction must leave at least one fast subscriber".into());
    }
    if a.slow_read_bytes == 0 {
        return Err("--slow-read-bytes must be at least 1".into());
    }
    Ok(())
}

/// Appends `kv` to `path`'s query (keeping any query already there).
pub fn with_query(path: &str, kv: &str) -> String {
    match path.find('?') {
        None => format!("{path}?{kv}"),
        Some(_) if path.ends_with('?') || path.ends_with('&') => format!("{path}{kv}"),
        Some(_) => format!("{path}&{kv}"),
    }
}

/// The path a churned subscriber resumes with: `--url`'s path + `since=<last>` (which
/// implies the sequence framing).
pub fn resume_path(base: &str, last: u64) -> String {
    with_query(base, &format!("since={last}"))
}

/// How many of the `k` subscribers churned per round thread `t` of `threads` takes in
/// round `tick`: `k` split as evenly as possible, the remainder rotating over the threads
/// so each of them churns its share over time.
pub fn churn_share(k: u64, threads: usize, t: usize, tick: u64) -> u64 {
    let n = threads.max(1) as u64;
    let r = (t as u64 % n + n - tick % n) % n;
    if r < k {
        (k - 1 - r) / n + 1
    } else {
        0
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_building_keeps_existing_query() {
        assert_eq!(with_query("/ws/bench", "seq=1"), "/ws/bench?seq=1");
        assert_eq!(with_query("/ws/bench?a=b", "seq=1"), "/ws/bench?a=b&seq=1");
        assert_eq!(with_query("/ws/bench?", "seq=1"), "/ws/bench?seq=1");
        assert_eq!(resume_path("/ws/bench", 42), "/ws/bench?since=42");
        assert_eq!(resume_path("/ws/b?x=1", 7), "/ws/b?x=1&since=7");
    }

    #[test]
    fn churn_shares_add_up_and_rotate() {
        for threads in 1..=5usize {
            for k in 0..=13u64 {
                for tick in 0..7u64 {
                    let sum: u64 = (0..threads).map(|t| churn_share(k, threads, t, tick)).sum();
                    assert_eq!(sum, k, "k {k} threads {threads} tick {tick}");
                    for t in 0..threads {
                        let v = churn_share(k, threads, t, tick);
                        assert!(v == k / threads as u64 || v == k / threads as u64 + 1);
                    }
                }
            }
        }
        // k = 1 over 3 threads: each thread gets its turn.
        let turns: Vec<u64> = (0..3).map(|tick| churn_share(1, 3, 1, tick)).collect();
        assert_eq!(turns.iter().sum::<u64>(), 1);
        let per_thread: Vec<u64> = (0..3)
            .map(|t| (0..3).map(|tick| churn_share(1, 3, t, tick)).sum())
            .collect();
        assert_eq!(per_thread, vec![1, 1, 1]);
    }
}

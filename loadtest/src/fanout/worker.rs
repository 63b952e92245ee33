//! One fanout thread's connections and what happens to them: the [`Worker`] is the
//! [`Handler`] of the thread's event loop (opens, frames, closes) and also publishes,
//! churns (close + resume with `?since=`), trickle-reads slow subscribers and hands its
//! counts to the other threads ([`Worker::flush`]).

use std::sync::atomic::Ordering::*;
use std::sync::Arc;

use super::churn::resume_path;
use super::merge::ThreadResult;
use super::setup::{Cfg, Shared};
use crate::cli::{CloseMode, SlowMode};
use crate::codec::{Frame, OP_BINARY, OP_TEXT};
use crate::conn::{Closed, Conns};
use crate::event_loop::{EventLoop, Handler};
use crate::message::{self, RoomCheck, RoomSeq};
use crate::runner::{self, close_how, Dialer, Plan};
use crate::slow::{self, Trickle};
use crate::sys;

/// Tag bit marking a publisher connection.
const PUB_BIT: u32 = 1 << 31;

/// Whether the connection with workload tag `tag` is a subscriber (not a publisher).
pub(super) fn is_subscriber(tag: u32) -> bool {
    tag & PUB_BIT == 0
}

/// Delay before retrying a failed resume.
const RETRY_NS: u64 = 200_000_000;
/// Resume attempts per churn before a subscriber is given up (its messages then count
/// as lost).
const MAX_ATTEMPTS: u32 = 5;

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
    /// Global connection index (source address and node choice).
    global: u64,
    /// Its node: index into `--url` ([`runner::node_of`] of `global`).
    node: usize,
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

/// One local publisher.
struct PubState {
    /// Sender id in the message header (the publisher's global index).
    id: u64,
    slot: Option<usize>,
    seq: u64,
}

/// One thread's publishers and subscribers, and what it measured of them.
pub(super) struct Worker {
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
    pub(super) churn_on: bool,
    churn_close: CloseMode,
    churn_cursor: usize,
    churn_count: u64,
    /// Subscribers to reconnect, with the earliest time to do it.
    reconnect_q: Vec<(u32, u64)>,
    /// Local indices of the slow subscribers.
    slow_subs: Vec<u32>,
    /// `--slow-mode trickle`: when they read next.
    trickle: Option<Trickle>,
    pub(super) payload: Vec<u8>,
    local_counts: Vec<u32>,
    touched: Vec<u32>,
    flushed_received: u64,
    /// What this thread measured so far.
    pub(super) res: ThreadResult,
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
            } else {
                self.sh.fast_open[s.node].fetch_add(1, Relaxed);
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
        let latency = now.saturating_sub(h.ts_ns).max(1);
        let _ = self.res.hist.record(latency);
        if let Some(n) = self.res.nodes.get_mut(self.subs[tag as usize].node) {
            n.received += 1;
            let _ = n.hist.record(latency);
        }
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
    /// Thread `thread`'s worker and the connections it has to open (publishers are
    /// global indices 0..P, subscribers P..P+S; each thread takes every n-th).
    pub(super) fn new(cfg: Arc<Cfg>, sh: Arc<Shared>, thread: usize) -> (Worker, Plan) {
        let a = &cfg.args;
        let p = a.publishers as u64;
        let total = p + a.subscribers as u64;
        let mut pubs = Vec::new();
        let mut subs = Vec::new();
        let mut slow_subs = Vec::new();
        let plan = runner::plan_for_thread(thread, cfg.threads, total, |i| {
            if i < p {
                pubs.push(PubState {
                    id: i,
                    slot: None,
                    seq: 0,
                });
                PUB_BIT | (pubs.len() as u32 - 1)
            } else {
                let slow = slow::is_slow(i - p, a.subscribers as u64, cfg.n_slow);
                if slow {
                    slow_subs.push(subs.len() as u32);
                }
                subs.push(Sub {
                    global: i,
                    node: runner::node_of(i, cfg.nodes),
                    slot: 0,
                    phase: SubPhase::Connecting,
                    room: RoomSeq::default(),
                    resumed_at: 0,
                    reconnect_started: 0,
                    attempts: 0,
                    churns: 0,
                    slow,
                });
                subs.len() as u32 - 1
            }
        });
        let w = Worker {
            sh,
            thread,
            publishers: p,
            pubs,
            next_pub: 0,
            next_seq: vec![0; subs.len() * p as usize],
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
            res: ThreadResult::new(cfg.nodes),
            cfg: cfg.clone(),
        };
        (w, plan)
    }

    /// Publishers on this thread (open or not).
    pub(super) fn local_pubs(&self) -> usize {
        self.pubs.len()
    }

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
    pub(super) fn churn_some(&mut self, conns: &mut Conns, k: u64, now: u64, close_timeout: u64) {
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
    pub(super) fn reconnect_due(
        &mut self,
        el: &mut EventLoop,
        dialer: &Dialer,
        now: u64,
    ) -> Option<u64> {
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
            let path = resume_path(&self.cfg.base_paths[s.node], s.room.last.unwrap_or(0));
            let url = &dialer.common.urls[s.node];
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
    pub(super) fn flush(&mut self) {
        let d = self.res.order.received - self.flushed_received;
        if d > 0 {
            self.sh.received.fetch_add(d, Release);
            self.flushed_received = self.res.order.received;
        }
        if self.touched.is_empty() {
            return;
        }
        let mut completed = 0;
        for s in self.touched.drain(..) {
            let s = s as usize;
            // The receivers this message must reach: those of its publisher's node.
            let node = runner::node_of(s as u64 / self.cfg.ring, self.cfg.nodes);
            let n_subs = self.sh.n_subs[node].load(Acquire) as u32;
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
    pub(super) fn trickle(&mut self, el: &mut EventLoop, now: u64) -> Option<u64> {
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
    pub(super) fn publish_one(&mut self, conns: &mut Conns) -> bool {
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
                self.sh.sent_by_node[runner::node_of(p.id, self.cfg.nodes)].fetch_add(1, Release);
                return true;
            }
        }
        false
    }

    fn has_live_pub(&self) -> bool {
        self.pubs.iter().any(|p| p.slot.is_some())
    }

    /// Closed loop: publish while fewer than `in_flight` messages are outstanding.
    pub(super) fn publish_closed(&mut self, conns: &mut Conns) {
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

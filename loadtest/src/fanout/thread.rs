//! One fanout worker thread: its event loop from the first connect to the stop phase —
//! opening the planned connections, publishing (closed loop or paced), the churn rounds
//! and resumes, the slow subscribers' trickle reads, and handing counts to the other
//! threads once per iteration.

use std::sync::atomic::Ordering::*;
use std::sync::Arc;

use super::churn::churn_share;
use super::merge::ThreadResult;
use super::setup::{Cfg, Shared, PH_DRAIN, PH_PUBLISH, PH_STOP};
use super::worker::{self, Worker};
use crate::event_loop::EventLoop;
use crate::message;
use crate::runner::{self, Dialer, SseRoute};
use crate::sse;
use crate::sys;

const SEC_NS: u64 = 1_000_000_000;

/// Runs worker thread `thread` until the run stops (phase [`PH_STOP`] or the deadline)
/// and returns what it measured.
pub(super) fn run(cfg: Arc<Cfg>, sh: Arc<Shared>, thread: usize) -> ThreadResult {
    let a = &cfg.args;
    let (mut w, mut plan) = Worker::new(cfg.clone(), sh.clone(), thread);
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
    dialer.sse = cfg.sse_paths.clone().map(|paths| SseRoute {
        paths,
        max_event: sse::max_event_len(max_payload),
        is_sse: worker::is_subscriber,
    });
    let mut connected_reported = false;
    let mut drain_acked = false;
    let local_pubs = w.local_pubs() as f64;
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
                    runner::Pacer::new(a.rate as f64 * local_pubs / a.publishers as f64, now)
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
            if let Some(d) = w.reconnect_due(&mut el, &dialer, now) {
                timeout = timeout.min(d.max(1));
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

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
//!
//! With several `--url`s connection i goes to URL i mod N (publishers first, then
//! subscribers) and the report has a per-node section. A subscriber expects every
//! message (a cluster relays them) or, with `--independent-nodes`, only those published
//! on its own node; the closed loop then completes a message when it reached its
//! publisher's node's subscribers.
//!
//! The run, in files: [`setup`] checks the arguments and builds the shared state,
//! [`thread`] is one worker thread's event loop around a [`worker::Worker`] (its
//! connections; [`churn`] has the churn arithmetic), [`phases`] is the coordinator
//! (connect, publish, drain) and [`merge`] adds the threads' results up into the report.

mod churn;
mod merge;
mod phases;
mod setup;
mod thread;
mod worker;

use std::sync::atomic::Ordering::{Acquire, Release};
use std::sync::Arc;

use crate::cli::FanoutArgs;
use crate::progress::Progress;
use crate::report::Report;
use crate::runner;
use crate::sys;
use crate::watch::Watch;

/// Runs the fanout workload and returns its report (with the problems that make the run
/// fail, see [`Report::finalize`]).
pub fn run(mut args: FanoutArgs, command: Vec<String>) -> Report {
    let t0 = sys::now_ns();
    let cpu0 = sys::process_cpu();
    let mut rep = Report {
        workload: "fanout".into(),
        command,
        ..Default::default()
    };
    let Some((cfg, sh)) = setup::prepare(&mut args, &mut rep, t0) else {
        rep.finalize();
        return rep;
    };
    let (cfg, sh) = (Arc::new(cfg), Arc::new(sh));
    let mut watch = Watch::start(&args);
    let mut progress = Progress::new(args.common.no_progress);

    let connect_start = sys::now_ns();
    let handles = {
        let (cfg, sh) = (cfg.clone(), sh.clone());
        runner::spawn_workers(cfg.threads, args.common.pin_cpu.as_ref(), move |t| {
            thread::run(cfg.clone(), sh.clone(), t)
        })
    };
    let (connected, mut timed_out) = phases::connect(&cfg, &sh, &mut progress, connect_start);
    watch.connected();
    let mut publish_start = sys::now_ns();
    if !timed_out {
        let missing = connected.missing(&cfg);
        if missing.is_empty() {
            (publish_start, timed_out) =
                phases::publish(&cfg, &sh, &connected, &mut watch, &mut progress);
        }
        for m in missing {
            rep.problem(m);
        }
    }
    let conns_open = connected.subs_open + connected.pubs_open;
    watch.finish(&args, &mut rep, conns_open, sys::now_ns(), cfg.deadline_ns);
    sh.phase.store(setup::PH_STOP, Release);
    sh.wakers.wake_all();
    let workers = runner::join_all(handles);
    progress.finish();
    let run = merge::Run {
        connected,
        publish_start,
        timed_out,
        sent: sh.sent.load(Acquire),
        sent_by_node: phases::sent_by_node(&sh),
        cpu: sys::process_cpu().since(&cpu0),
        wall_ns: sys::now_ns() - t0,
    };
    merge::fill_report(&mut rep, &cfg, &run, &workers);
    rep.finalize();
    rep
}

//! Shared plumbing for the workloads: spawning the thread-per-core workers (optionally
//! pinned), measuring each worker's CPU time, pacing new connections, and the helper that
//! opens a thread's planned connections without exceeding its rate and pending limits.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::thread::JoinHandle;

use crate::cli::{CloseMode, CommonArgs, CpuList};
use crate::conn::{CloseHow, Failure};
use crate::event_loop::EventLoop;
use crate::report::{Report, ThreadCpu};
use crate::sys::{self, CpuTime, EventFd};
use crate::tls::TlsClient;

/// Number of generator threads for these arguments.
pub fn thread_count(common: &CommonArgs) -> usize {
    common
        .threads
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
        .max(1)
}

/// What a worker thread returns: its workload result and its own CPU use.
pub struct WorkerOut<R> {
    /// Workload-specific result.
    pub result: R,
    /// CPU time the thread used.
    pub cpu: CpuTime,
    /// Wall time the thread ran (ns).
    pub wall_ns: u64,
    /// CPU the thread was pinned to, if any.
    pub pinned_to: Option<usize>,
}

/// Spawns `n` workers running `f(thread_index)`, pinning thread i to `pin[i % len]`.
pub fn spawn_workers<R, F>(n: usize, pin: Option<&CpuList>, f: F) -> Vec<JoinHandle<WorkerOut<R>>>
where
    R: Send + 'static,
    F: Fn(usize) -> R + Send + Sync + 'static,
{
    let f = std::sync::Arc::new(f);
    (0..n)
        .map(|i| {
            let f = f.clone();
            let cpu = pin.map(|l| l.0[i % l.0.len()]);
            std::thread::Builder::new()
                .name(format!("load-{i}"))
                .spawn(move || {
                    let pinned_to = match cpu {
                        Some(c) => match sys::pin_current_thread(c) {
                            Ok(()) => Some(c),
                            Err(e) => {
                                eprintln!("warning: cannot pin thread {i} to CPU {c}: {e}");
                                None
                            }
                        },
                        None => None,
                    };
                    let t0 = sys::now_ns();
                    let c0 = sys::thread_cpu();
                    let result = f(i);
                    WorkerOut {
                        result,
                        cpu: sys::thread_cpu().since(&c0),
                        wall_ns: sys::now_ns() - t0,
                        pinned_to,
                    }
                })
                .expect("spawn worker thread")
        })
        .collect()
}

/// Each worker's own CPU use, in thread order, for [`crate::report::GeneratorReport`].
pub fn thread_cpus<R>(workers: &[WorkerOut<R>]) -> Vec<ThreadCpu> {
    workers
        .iter()
        .enumerate()
        .map(|(i, w)| ThreadCpu {
            thread: i,
            pinned_to: w.pinned_to,
            cpu_secs: w.cpu.total_ns() as f64 / 1e9,
            busy_pct: w.cpu.total_ns() as f64 / w.wall_ns.max(1) as f64 * 100.0,
        })
        .collect()
}

/// Node (index into `nodes` URLs) of the connection with global index `i`: round-robin.
pub fn node_of(i: u64, nodes: usize) -> usize {
    (i % nodes.max(1) as u64) as usize
}

/// Close method for the connection with global index `i` under `--close-mode` /
/// `--churn-close` `mode` (`mixed` rotates handshake, reset, vanish).
pub fn close_how(mode: CloseMode, i: u64) -> CloseHow {
    match mode {
        CloseMode::Clean => CloseHow::Handshake,
        CloseMode::Reset => CloseHow::Reset,
        CloseMode::Vanish => CloseHow::Vanish,
        CloseMode::Mixed => {
            [CloseHow::Handshake, CloseHow::Reset, CloseHow::Vanish][(i % 3) as usize]
        }
    }
}

/// Joins every worker; a panicked worker aborts the run with its message.
pub fn join_all<R>(hs: Vec<JoinHandle<WorkerOut<R>>>) -> Vec<WorkerOut<R>> {
    hs.into_iter()
        .map(|h| match h.join() {
            Ok(v) => v,
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panic!("worker thread panicked: {msg}");
            }
        })
        .collect()
}

/// The run's TLS set-up (`None` for ws://); a wss:// run without a usable `--tls-ca`
/// (or `--tls-ca` with ws://) is recorded as a problem in `rep`.
pub fn tls_for(rep: &mut Report, common: &CommonArgs) -> Option<TlsClient> {
    TlsClient::from_args(common).unwrap_or_else(|e| {
        rep.problem(e);
        None
    })
}

/// The workers' wake-up eventfds, or `None` when the run cannot start: a problem was
/// already recorded in `rep`, or the eventfds could not be made (recorded now).
pub fn wakers_for(rep: &mut Report, threads: usize) -> Option<Wakers> {
    match Wakers::new(threads) {
        Ok(w) if rep.problems.is_empty() => Some(w),
        Ok(_) => None,
        Err(e) => {
            rep.problem(format!("eventfd: {e}"));
            None
        }
    }
}

/// Wake-up eventfds of all workers. They are created up front and live as long as the
/// run (the coordinator owns them), so a wake-up can never hit a closed descriptor.
pub struct Wakers(Vec<EventFd>);

impl Wakers {
    /// One eventfd per worker.
    pub fn new(n: usize) -> std::io::Result<Self> {
        Ok(Wakers(
            (0..n).map(|_| EventFd::new()).collect::<Result<_, _>>()?,
        ))
    }

    /// Raw eventfd of worker `i` (to register in its epoll set).
    pub fn fd(&self, i: usize) -> i32 {
        self.0[i].raw()
    }

    /// Wakes worker `i`.
    pub fn wake(&self, i: usize) {
        self.0[i].notify();
    }

    /// Wakes every worker.
    pub fn wake_all(&self) {
        self.0.iter().for_each(EventFd::notify);
    }
}

/// Spaces out events to at most `rate` per second (0 = no limit), with a burst of at
/// most 10 ms worth when the caller falls behind.
pub struct Pacer {
    interval_ns: u64,
    next_ns: u64,
}

impl Pacer {
    /// Pacer for `rate` events/s starting at `now`.
    pub fn new(rate: f64, now: u64) -> Self {
        let interval_ns = if rate > 0.0 {
            (1e9 / rate).max(1.0) as u64
        } else {
            0
        };
        Pacer {
            interval_ns,
            next_ns: now,
        }
    }

    /// Takes one slot if one is due.
    pub fn take(&mut self, now: u64) -> bool {
        if self.interval_ns == 0 {
            return true;
        }
        if now < self.next_ns {
            return false;
        }
        let burst = 10_000_000u64.max(self.interval_ns);
        if self.next_ns + burst < now {
            self.next_ns = now - burst;
        }
        self.next_ns += self.interval_ns;
        true
    }

    /// Nanoseconds until the next slot (0 if one is due or there is no limit).
    pub fn wait_ns(&self, now: u64) -> u64 {
        self.next_ns.saturating_sub(now)
    }

    /// Whether this pacer limits anything.
    pub fn limited(&self) -> bool {
        self.interval_ns != 0
    }
}

/// Connections a thread still has to open: (global index, tag).
pub type Plan = VecDeque<(u64, u32)>;

/// Builds thread `t`'s share of `total` connections (global indices i with i % n == t);
/// `tag_of(i)` gives each connection's workload tag.
pub fn plan_for_thread(t: usize, n: usize, total: u64, mut tag_of: impl FnMut(u64) -> u32) -> Plan {
    (t as u64..total)
        .step_by(n)
        .map(|i| (i, tag_of(i)))
        .collect()
}

/// Target and limits for opening connections.
pub struct Dialer<'a> {
    /// Parsed common options.
    pub common: &'a CommonArgs,
    /// Per-thread connection pacer.
    pub pacer: Pacer,
    /// `fanout --transport sse`: which connections are SSE subscribers, and where.
    pub sse: Option<SseRoute>,
}

/// Connections opened as SSE subscribers ([`Conns::open_sse`](crate::conn::Conns::open_sse))
/// instead of WebSocket upgrades.
pub struct SseRoute {
    /// Per node (index into `--url`): the `/sse/{room}` path.
    pub paths: Vec<String>,
    /// Longest event accepted (bytes of event stream, see [`crate::sse::max_event_len`]).
    pub max_event: usize,
    /// Whether the connection with this workload tag is an SSE subscriber.
    pub is_sse: fn(u32) -> bool,
}

impl<'a> Dialer<'a> {
    /// Dialer for one of `threads` workers.
    pub fn new(common: &'a CommonArgs, threads: usize, now: u64) -> Self {
        Dialer {
            common,
            pacer: Pacer::new(common.connect_rate as f64 / threads as f64, now),
            sse: None,
        }
    }

    /// Node (index into `--url`) of the connection with global index `i`: `i` mod the
    /// number of URLs.
    pub fn node_of(&self, i: u64) -> usize {
        node_of(i, self.common.urls.len())
    }

    /// Source address for the connection with global index `i`.
    pub fn src_for(&self, i: u64) -> Option<Ipv4Addr> {
        let ips = &self.common.src_ips.0;
        Some(ips[(i % ips.len() as u64) as usize])
    }

    /// Opens planned connections while the rate and pending limits allow. Synchronous
    /// failures are passed to `on_fail(tag, failure)`.
    pub fn pump(
        &mut self,
        el: &mut EventLoop,
        plan: &mut Plan,
        now: u64,
        mut on_fail: impl FnMut(u32, Failure),
    ) {
        let timeout = self.common.connect_timeout.as_nanos() as u64;
        while let Some(&(i, tag)) = plan.front() {
            if el.conns.pending >= self.common.max_pending.max(1) || !self.pacer.take(now) {
                break;
            }
            plan.pop_front();
            let epfd = el.poller.raw();
            let node = self.node_of(i);
            let url = &self.common.urls[node];
            let opened = match &self.sse {
                Some(r) if (r.is_sse)(tag) => el.conns.open_sse(
                    epfd,
                    url.addr,
                    self.src_for(i),
                    &url.host,
                    &r.paths[node],
                    tag,
                    now,
                    timeout,
                    r.max_event,
                ),
                _ => el.conns.open(
                    epfd,
                    url.addr,
                    self.src_for(i),
                    &url.host,
                    &url.path,
                    tag,
                    now,
                    timeout,
                ),
            };
            if let Err(f) = opened {
                on_fail(tag, f);
            }
        }
    }

    /// How long the loop may sleep before it should try to open more (ns).
    pub fn wait_ns(&self, plan: &Plan, el: &EventLoop, now: u64) -> Option<u64> {
        if plan.is_empty() || el.conns.pending >= self.common.max_pending.max(1) {
            None
        } else {
            Some(self.pacer.wait_ns(now))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_rotates() {
        let v: Vec<CloseHow> = (0..6).map(|i| close_how(CloseMode::Mixed, i)).collect();
        assert_eq!(
            v,
            vec![
                CloseHow::Handshake,
                CloseHow::Reset,
                CloseHow::Vanish,
                CloseHow::Handshake,
                CloseHow::Reset,
                CloseHow::Vanish
            ]
        );
        assert_eq!(close_how(CloseMode::Reset, 0), CloseHow::Reset);
    }

    #[test]
    fn pacer_spaces_events() {
        let mut p = Pacer::new(1000.0, 0); // 1 ms apart
        assert!(p.take(0));
        assert!(!p.take(500_000));
        assert_eq!(p.wait_ns(500_000), 500_000);
        assert!(p.take(1_000_000));
        // Falling far behind allows at most a 10 ms burst.
        let mut n = 0;
        while p.take(1_000_000_000) {
            n += 1;
            assert!(n < 100);
        }
        assert!((10..=12).contains(&n), "burst {n}");
        let mut u = Pacer::new(0.0, 0);
        assert!(!u.limited());
        assert!(u.take(0) && u.take(0));
    }

    #[test]
    fn plans_partition_indices() {
        let a = plan_for_thread(0, 3, 10, |i| i as u32);
        let b = plan_for_thread(1, 3, 10, |i| i as u32);
        let c = plan_for_thread(2, 3, 10, |i| i as u32);
        let mut all: Vec<u64> = a.iter().chain(&b).chain(&c).map(|x| x.0).collect();
        all.sort();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert_eq!(a.len(), 4);
    }
}

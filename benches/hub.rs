//! Hub hot paths, through the engine's public types: (a) fan-out of one publication's
//! WebSocket form to the outbound queues of 10k open local connections, (b) the
//! cross-shard hand-off (a shard's publish through the hub's one entry, `Hub::publish`,
//! then `Hub::hand_off` + draining the receiving shard's crossbeam inbox), and (c) the
//! cost of the metrics hooks on the fan-out path: no calls at all vs `NoopCollector`
//! called through an `Arc<dyn MetricsCollector>` exactly as the engine calls it
//! (per publish: `publish_fanned_out` and `send_queue_bytes` of the largest queue; per
//! member only drop reports, which an uncongested fan-out never makes), with
//! `PrometheusCollector` as a reference point. `make bench` runs them.
//!
//! The fan-out loop is a copy of `ShardState::deliver` (private to the shard):
//! members come from the real `Rooms` of a real `Hub`, frames go through
//! `Connection::send_frame` under the default queue limits, the dirty list is kept the
//! same way and the outcome is reported with the same `match` as `report_enqueue`. Only
//! the fan-out is timed; flushing the queues afterwards (`Connection::written`, what a
//! driver does after a send) happens outside the measured time.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use crossbeam_channel::Receiver;
use ringcast::conn::{Connection, DropReason, Enqueue, LocalFrame, QueueLimits, SlowPolicy};
use ringcast::hub::{Hub, HubShared, ShardMsg};
use ringcast::metrics::{MetricsCollector, NoopCollector, PrometheusCollector};
use ringcast::sys::Waker;
use ringcast::wire::{ConnKey, Encoding, Kind, Payload, PreparedFrame, Publication, RoomId};
use slab::Slab;

/// Subscribers of the fan-out benches.
const MEMBERS: usize = 10_000;
/// The server's default `--max-queue-bytes` and `--slow-policy`.
const LIMITS: QueueLimits = QueueLimits {
    max_bytes: 1 << 20,
    policy: SlowPolicy::Close,
};
const SHARD: usize = 0;

/// What the fan-out loop does with each enqueue outcome.
trait Hooks {
    fn enqueued(&self, outcome: Enqueue) -> bool;
    fn published(&self, fanout: usize, largest_queue: usize);
}

/// A build without the metrics calls: only the engine's own bookkeeping.
struct NoHooks;

impl Hooks for NoHooks {
    #[inline(always)]
    fn enqueued(&self, outcome: Enqueue) -> bool {
        matches!(outcome, Enqueue::Queued { .. })
    }
    #[inline(always)]
    fn published(&self, _fanout: usize, _largest_queue: usize) {}
}

/// The engine's calls, through the collector trait object (`Shared::metrics`).
impl Hooks for &dyn MetricsCollector {
    #[inline(always)]
    fn enqueued(&self, outcome: Enqueue) -> bool {
        // Same as `report_enqueue` in src/shard/state.rs.
        match outcome {
            Enqueue::Queued { dropped_oldest } => {
                for _ in 0..dropped_oldest {
                    self.frame_dropped(SHARD, DropReason::QueueFullOldest);
                }
                true
            }
            Enqueue::DroppedNewest => {
                self.frame_dropped(SHARD, DropReason::QueueFullNewest);
                false
            }
            Enqueue::ClosedSlow { dropped } => {
                for _ in 0..dropped {
                    self.frame_dropped(SHARD, DropReason::ConnectionClosed);
                }
                false
            }
            Enqueue::NotOpen => false,
        }
    }
    #[inline(always)]
    fn published(&self, fanout: usize, largest_queue: usize) {
        self.publish_fanned_out(SHARD, fanout);
        if fanout > 0 {
            self.send_queue_bytes(SHARD, largest_queue);
        }
    }
}

/// What the fan-out touches of a shard's slot (`shard::Slot`): the connection and
/// its dirty-list flag.
struct Member {
    conn: Connection,
    dirty: bool,
}

/// One shard's worth of open connections, all members of one room.
struct Fanout {
    hub: Hub,
    room: RoomId,
    conns: Slab<Member>,
    dirty: Vec<ConnKey>,
}

impl Fanout {
    fn new(members: usize) -> Self {
        let wakers = [Arc::new(Waker::new().expect("eventfd"))];
        let (shared, _inboxes) = HubShared::new(&wakers);
        let mut hub = Hub::new(SHARD, shared);
        let mut conns = Slab::with_capacity(members);
        let mut room = None;
        for _ in 0..members {
            let mut conn = Connection::new();
            let response = b"HTTP/1.1 101 Switching Protocols\r\n\r\n".to_vec();
            let len = response.len();
            conn.accept(response);
            conn.written(len); // the 101 is out: open, empty queue
            let key = conns.insert(Member { conn, dirty: false });
            room = Some(hub.join("bench", key).room);
        }
        Fanout {
            hub,
            room: room.expect("at least one member"),
            conns,
            dirty: Vec::with_capacity(members),
        }
    }

    /// `ShardState::deliver`: queue `frame` to every member, mark it dirty,
    /// report each enqueue and the publish. Returns the members queued.
    #[inline(always)]
    fn deliver<H: Hooks>(&mut self, frame: &PreparedFrame, hooks: &H) -> usize {
        let frame = LocalFrame::new(frame.clone());
        let mut queued = 0;
        let mut largest_queue = 0;
        let Fanout {
            hub, conns, dirty, ..
        } = self;
        for &member in hub.rooms().members(self.room) {
            let Some(slot) = conns.get_mut(member) else {
                continue;
            };
            let outcome = slot.conn.send_frame(frame.clone(), LIMITS);
            // (`frame` is the shard's one `LocalFrame` for the publication: an `Rc`
            // clone per member, as `ShardState::deliver` does through `LocalForms`.)
            if outcome == Enqueue::NotOpen {
                continue;
            }
            if !slot.dirty {
                slot.dirty = true;
                dirty.push(member);
            }
            if hooks.enqueued(outcome) {
                queued += 1;
                largest_queue = largest_queue.max(slot.conn.out().bytes());
            }
        }
        hooks.published(queued, largest_queue);
        queued
    }

    /// What a driver does after the sends: every dirty queue gives `frame_len` bytes to
    /// the kernel (leaving `keep` frames queued) and leaves the dirty list.
    fn flush(&mut self, frame_len: usize, keep: usize) {
        for key in self.dirty.drain(..) {
            let slot = &mut self.conns[key];
            while slot.conn.out().len() > keep {
                slot.conn.written(frame_len);
            }
            slot.dirty = false;
        }
    }

    /// Time `iters` fan-outs of `frame`; each starts with `keep` frames already queued
    /// per connection (0: empty queues, as after a full flush).
    fn run<H: Hooks>(
        &mut self,
        iters: u64,
        frame: &PreparedFrame,
        keep: usize,
        hooks: &H,
    ) -> Duration {
        for _ in 0..keep {
            self.deliver(frame, &NoHooks);
        }
        self.flush(frame.len(), keep);
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let start = Instant::now();
            let queued = self.deliver(black_box(frame), hooks);
            total += start.elapsed();
            assert_eq!(queued, MEMBERS);
            self.flush(frame.len(), keep);
        }
        self.flush(frame.len(), 0);
        total
    }
}

/// (a) One publish to 10k local queues; per member.
fn fanout(c: &mut Criterion) {
    let mut g = c.benchmark_group("fanout_10k");
    g.throughput(Throughput::Elements(MEMBERS as u64));
    let mut fx = Fanout::new(MEMBERS);
    let metrics: Arc<dyn MetricsCollector> = black_box(Arc::new(NoopCollector));
    let hooks: &dyn MetricsCollector = &*metrics;
    for size in [64usize, 1024] {
        let publication = publication(&vec![0x5a; size]);
        let frame = publication.frame(Encoding::WebSocket);
        // Empty queues (the common case after a flush): the queue's ring is allocated
        // again, because an emptied `OutQueue` frees it.
        g.bench_function(BenchmarkId::new("into_empty_queues", size), |b| {
            b.iter_custom(|iters| fx.run(iters, frame, 0, &hooks))
        });
        // One frame still queued per connection (a send in flight): no allocation.
        g.bench_function(BenchmarkId::new("behind_one_queued", size), |b| {
            b.iter_custom(|iters| fx.run(iters, frame, 1, &hooks))
        });
    }
    g.finish();
}

/// (c) The metrics hooks on the fan-out path: none vs the no-op collector (through a
/// trait object the optimiser cannot see through, like the engine's `Shared::metrics`)
/// vs the Prometheus collector. Queues keep one frame, so allocation noise is out.
fn metrics_hooks(c: &mut Criterion) {
    let mut g = c.benchmark_group("fanout_10k_metrics");
    g.throughput(Throughput::Elements(MEMBERS as u64));
    let mut fx = Fanout::new(MEMBERS);
    let publication = publication(&[0x5a; 64]);
    let frame = publication.frame(Encoding::WebSocket);
    let noop: Arc<dyn MetricsCollector> = black_box(Arc::new(NoopCollector));
    let prom: Arc<dyn MetricsCollector> = black_box(Arc::new(PrometheusCollector::new(
        1,
        "ringcast",
        Vec::new(),
        "bench",
    )));
    let (noop, prom): (&dyn MetricsCollector, &dyn MetricsCollector) = (&*noop, &*prom);
    // Alternate the variants so drift hits each of them alike.
    for round in 0..2 {
        g.bench_function(BenchmarkId::new("no_calls", round), |b| {
            b.iter_custom(|iters| fx.run(iters, frame, 1, &NoHooks))
        });
        g.bench_function(BenchmarkId::new("noop_collector", round), |b| {
            b.iter_custom(|iters| fx.run(iters, frame, 1, &noop))
        });
    }
    g.bench_function("prometheus_collector", |b| {
        b.iter_custom(|iters| fx.run(iters, frame, 1, &prom))
    });
    g.finish();
}

/// A publication of `payload` (binary) to the bench room, as a publish makes it.
fn publication(payload: &[u8]) -> Publication {
    Publication::new(
        Arc::from("bench"),
        Payload::encode(Kind::Binary, payload),
        None,
    )
}

/// Two shards sharing a `HubShared`; shard 1 has a member of the room, shard 0 publishes
/// the way the engine does: `Hub::publish` (the one entry) queues, `hand_off` sends
/// (once per loop iteration in the engine). The payload is encoded once, outside the
/// timed loop, as before this bench measured a prepared frame's hand-off; each publish
/// makes its `Arc<Publication>` (one allocation), as the engine does.
struct CrossShard {
    publisher: Hub,
    waker: Arc<Waker>,
    inbox: Receiver<ShardMsg>,
    room: Arc<str>,
    payload: Payload,
    _member_shard: Hub,
}

impl CrossShard {
    fn new() -> Self {
        let wakers: Vec<_> = (0..2)
            .map(|_| Arc::new(Waker::new().expect("eventfd")))
            .collect();
        let (shared, mut inboxes) = HubShared::new(&wakers);
        let mut member_shard = Hub::new(1, shared.clone());
        member_shard.join("bench", 1);
        CrossShard {
            publisher: Hub::new(0, shared),
            waker: wakers[1].clone(),
            inbox: inboxes.remove(1),
            room: Arc::from("bench"),
            payload: Payload::encode(Kind::Binary, &[0x5a; 64]),
            _member_shard: member_shard,
        }
    }

    /// Queue one publish for the other shard (not sent until `hand_off`), and add the
    /// publishing shard's part (no local member) to its tally, as the engine does.
    fn queue(&mut self) {
        let published = self.publisher.publish(
            black_box(self.room.clone()),
            true,
            self.payload.clone(),
            None,
        );
        assert_eq!(published.shards, 1, "shard 1 has a member");
        black_box(published.local_part(0));
    }

    /// One publish handed off on its own.
    fn publish(&mut self) {
        self.queue();
        self.publisher.hand_off();
    }

    fn receive(&self) {
        match self.inbox.try_recv() {
            Ok(ShardMsg::Publish(publication)) => {
                black_box(publication.frame(Encoding::WebSocket));
                // The receiving shard adds its part; the last part reports the publish.
                black_box(publication.tally().add(1));
            }
            other => panic!("expected a publish, got {other:?}"),
        }
    }
}

/// (b) Cross-shard hand-off, per message, on one thread (the cost of the operations, not
/// of cache-line transfer between cores).
fn cross_shard(c: &mut Criterion) {
    let mut g = c.benchmark_group("cross_shard");
    let mut x = CrossShard::new();
    g.throughput(Throughput::Elements(1));
    // The receiving shard is running: `wake` is a fence and a load, no syscall.
    g.bench_function("publish_recv/target_awake", |b| {
        x.waker.awake();
        b.iter(|| {
            x.publish();
            x.receive();
        })
    });
    // The receiving shard is asleep each time: eventfd write by the publisher, then the
    // receiver's wake-up bookkeeping and eventfd read (two syscalls per message).
    g.bench_function("publish_recv/target_asleep", |b| {
        b.iter(|| {
            x.waker.arm_sleep();
            x.publish();
            x.waker.awake();
            x.waker.drain().expect("eventfd read");
            x.receive();
        })
    });
    // A burst of 64 publishes in one loop iteration while the target sleeps: one
    // hand-off (one eventfd write), then one wake-up and a drain of the 64 messages.
    const BURST: usize = 64;
    g.throughput(Throughput::Elements(BURST as u64));
    g.bench_function("publish_recv/burst_64_one_wakeup", |b| {
        b.iter(|| {
            x.waker.arm_sleep();
            for _ in 0..BURST {
                x.queue();
            }
            x.publisher.hand_off();
            x.waker.awake();
            x.waker.drain().expect("eventfd read");
            for _ in 0..BURST {
                x.receive();
            }
        })
    });
    g.finish();
}

criterion_group!(benches, fanout, metrics_hooks, cross_shard);
criterion_main!(benches);

//! The Redis link (feature `redis`): the [`Broker`] the shards call, and the broker
//! thread that owns every Redis connection.
//!
//! The thread runs a single-threaded tokio runtime with two tasks:
//! - **publisher**: takes publishes from the bounded queue in batches (up to
//!   [`BATCH`]), sends each batch as one pipeline on the multiplexed connection (one
//!   `PUBLISH`, or one `EVALSHA` of the publish script with `--history`, per publish)
//!   and waits for it before the next, so a node's publishes reach Redis in the order
//!   the shards queued them. With no connection the batch fails at once (counted); a
//!   batch that fails on a lost connection (I/O error, dropped, timeout) also ends
//!   the session, which reconnects as below.
//! - **session**: connects (publish connection + pub/sub connection), loads the
//!   script, then until either connection is lost: subscribes and unsubscribes as the
//!   [`Interest`] table says, decodes every message once and hands it to the hub
//!   ([`HubShared::deliver_inbound`]). On loss it retries with exponential backoff
//!   ([`BACKOFF_MIN`]..[`BACKOFF_MAX`]); on reconnect every wanted room is subscribed
//!   again and, with `--history`, each room's missed numbers are fetched from its
//!   stream (`XRANGE`) after subscribing, duplicates dropped by number; numbers the
//!   stream no longer holds are counted as a gap. When the node stops hearing a room
//!   (it unsubscribes, or the session ends) the room's local history is marked stale,
//!   so the next resume of it fetches from the stream instead of trusting a ring that
//!   stops where the node stopped listening.
//!
//! With `redis+cluster://…` ([`BrokerConfig::cluster_nodes`]) the same two tasks
//! run over one Redis Cluster connection of the `redis` crate (RESP3, pushes on a
//! channel): rooms are subscribed with `SSUBSCRIBE` (one command per room: each
//! channel is its own slot), published with `SPUBLISH` (or the script's `SPUBLISH`),
//! each room's publishes of a batch as one pipeline to the room's slot, the rooms'
//! pipelines concurrently; MOVED/ASK are followed by the crate. A lost node connection
//! (the crate's `Disconnection` push) ends the session like a lost pub/sub
//! connection: reconnect, subscribe again, catch up from the streams.
//!
//! Shards never wait on this thread: a publish is one `try_send`, an interest change
//! one map update and a notification.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::future::try_join_all;
use futures_util::stream::LocalBoxStream;
use futures_util::StreamExt as _;
use redis::aio::{ConnectionLike, MultiplexedConnection, PubSubSink};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{
    AsyncConnectionConfig, Client, Cmd, Msg, Pipeline, ProtocolVersion, PushInfo, PushKind,
    RedisFuture, Value,
};
use tokio::sync::{mpsc, watch, Notify};

use crate::hub::{Broker, FetchRequest, HubShared, Route, ShardMsg};
use crate::proto::frame::Opcode;
use crate::wire::sequence::{gap_message, reset_message};
use crate::wire::{Kind, Payload, PreparedFrame, Publication};

use super::envelope::{self, Envelope};
use super::interest::Interest;
use super::script::{self, PUBLISH_SCRIPT, SPUBLISH_SCRIPT};
use super::stats::BrokerStats;
use super::BrokerConfig;

/// Most publishes sent as one pipeline.
pub const BATCH: usize = 256;
/// First reconnect delay; doubled per failure up to [`BACKOFF_MAX`].
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Resumes waiting for a stream fetch, at most; over it a resume is answered from the
/// local history.
pub const FETCH_QUEUE: usize = 4096;
/// Connect and command timeout.
const TIMEOUT: Duration = Duration::from_secs(2);

/// One publish waiting for the broker thread.
struct Outbound {
    room: Arc<str>,
    kind: Kind,
    /// The whole envelope (history off) or its tail (history on: the script writes
    /// the head).
    body: Vec<u8>,
}

/// What the two tasks share.
struct Ctx {
    /// `--node-id`, for logs.
    node: Arc<str>,
    /// This process's origin in envelopes ([`envelope::origin`]: the node id and a
    /// random instance id), compared to tell our own messages from others'.
    origin: Arc<str>,
    prefix: String,
    /// `Some(cap)`: numbered by the script, streams capped at `cap`.
    history: Option<usize>,
    base: Instant,
    interest: Interest,
    interest_changed: Notify,
    /// The session got a subscription acknowledged ([`Interest::heard`]).
    heard_changed: Notify,
    stats: Arc<BrokerStats>,
    hub: OnceLock<Weak<HubShared>>,
    hub_ready: Notify,
    /// The current publish connection, script hash and session number (`None` while
    /// down): set by the session, read by the publisher.
    conn: watch::Sender<Conn>,
    /// The publisher lost session [`Ctx::lost_session`]'s connection (an I/O error, a
    /// dropped connection, a timeout): that session ends and reconnects.
    lost: Notify,
    lost_session: AtomicU64,
}

/// The [`Broker`] behind the hub in cluster mode.
pub struct RedisBroker {
    ctx: Arc<Ctx>,
    tx: mpsc::Sender<Outbound>,
    fetch_tx: mpsc::Sender<FetchRequest>,
    stop: watch::Sender<bool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl RedisBroker {
    /// Start the broker thread (see the module doc).
    pub fn start(
        cfg: &BrokerConfig,
        node: String,
        history: Option<usize>,
        stats: Arc<BrokerStats>,
    ) -> std::io::Result<Arc<Self>> {
        let invalid = |e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
        let target = match cfg.cluster_nodes() {
            Some(nodes) => {
                // Checked here, so a bad seed fails the start, not every reconnect.
                ClusterClientBuilder::new(nodes.clone())
                    .build()
                    .map_err(invalid)?;
                Target::Cluster(nodes)
            }
            None => Target::Single(Client::open(cfg.url.as_str()).map_err(invalid)?),
        };
        let (tx, rx) = mpsc::channel(cfg.queue);
        let (fetch_tx, fetch_rx) = mpsc::channel(FETCH_QUEUE);
        let (stop, stop_rx) = watch::channel(false);
        let ctx = Arc::new(Ctx {
            node: Arc::from(node.as_str()),
            origin: Arc::from(envelope::origin(&node, instance_id())),
            prefix: cfg.prefix.clone(),
            history,
            base: Instant::now(),
            interest: Interest::new(cfg.linger),
            interest_changed: Notify::new(),
            heard_changed: Notify::new(),
            stats,
            hub: OnceLock::new(),
            hub_ready: Notify::new(),
            conn: watch::Sender::new(None),
            lost: Notify::new(),
            lost_session: AtomicU64::new(0),
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread_ctx = ctx.clone();
        let thread = std::thread::Builder::new()
            .name("ringcast-broker".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let publisher =
                        tokio::spawn(publish_loop(thread_ctx.clone(), rx, stop_rx.clone()));
                    sessions(thread_ctx, target, fetch_rx, stop_rx).await;
                    publisher.abort();
                });
            })?;
        tracing::info!(node = %node, url = %redacted(&cfg.url), prefix = %cfg.prefix, "cluster mode: broker thread started");
        Ok(Arc::new(RedisBroker {
            ctx,
            tx,
            fetch_tx,
            stop,
            thread: Mutex::new(Some(thread)),
        }))
    }

    /// Give the thread its hub (see [`super::BrokerHandle::attach`]).
    pub fn attach(&self, hub: &Arc<HubShared>) {
        let _ = self.ctx.hub.set(Arc::downgrade(hub));
        self.ctx.hub_ready.notify_one();
    }

    /// Stop the thread and join it (idempotent).
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = thread {
            if t.join().is_err() {
                tracing::error!("broker thread panicked");
            }
        }
    }
}

/// A URL without its password, for logs.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***{}", &url[..s], &url[at..]),
        _ => url.to_owned(),
    }
}

impl Broker for RedisBroker {
    fn publish(&self, publication: &Arc<Publication>) -> Route {
        let ctx = &self.ctx;
        if !ctx.stats.is_up() {
            ctx.stats.publish_failed(1, "broker down");
            return Route::Taken;
        }
        let t_ns = publication
            .published_at()
            .saturating_duration_since(ctx.base)
            .as_nanos() as u64;
        let body = match ctx.history {
            None => envelope::encode(
                publication.kind(),
                &ctx.origin,
                publication.exclude(),
                t_ns,
                publication.payload(),
            ),
            Some(_) => envelope::tail(
                &ctx.origin,
                publication.exclude(),
                t_ns,
                publication.payload(),
            ),
        };
        let out = Outbound {
            room: publication.room().clone(),
            kind: publication.kind(),
            body,
        };
        if self.tx.try_send(out).is_err() {
            ctx.stats.publish_failed(1, "broker queue full");
        }
        Route::Taken
    }

    fn interest(&self, room: &Arc<str>, on: bool) {
        self.ctx.interest.set(room, on, Instant::now());
        self.ctx.interest_changed.notify_one();
    }

    fn fetch(&self, request: FetchRequest) -> bool {
        self.ctx.history.is_some()
            && self.ctx.stats.is_up()
            && self.fetch_tx.try_send(request).is_ok()
    }
}

/// Where the broker connects.
enum Target {
    /// One Redis (`redis://`).
    Single(Client),
    /// A Redis Cluster: its seed nodes, `redis://HOST:PORT` each.
    Cluster(Vec<String>),
}

/// A command connection: one Redis, or a Redis Cluster (commands routed by key slot).
#[derive(Clone)]
enum Link {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Link {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Link::Single(c) => c.req_packed_command(cmd),
            Link::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Link::Single(c) => c.req_packed_commands(cmd, offset, count),
            Link::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Link::Single(c) => c.get_db(),
            Link::Cluster(c) => c.get_db(),
        }
    }
}

impl Link {
    /// The publish command: `SPUBLISH` on a cluster (sharded pub/sub).
    fn publish_command(&self) -> &'static str {
        match self {
            Link::Single(_) => "PUBLISH",
            Link::Cluster(_) => "SPUBLISH",
        }
    }
}

/// The subscribing side: a pub/sub connection, or the cluster connection (sharded).
enum Subscriber {
    Single(PubSubSink),
    Cluster(ClusterConnection),
}

impl Subscriber {
    async fn subscribe(&mut self, channels: Vec<String>) -> redis::RedisResult<()> {
        match self {
            Subscriber::Single(sink) => sink.subscribe(channels).await,
            // SSUBSCRIBE takes channels of one slot: one command per room.
            Subscriber::Cluster(conn) => try_join_all(channels.into_iter().map(|c| {
                let mut conn = conn.clone();
                async move { conn.ssubscribe(c).await }
            }))
            .await
            .map(drop),
        }
    }

    async fn unsubscribe(&mut self, channels: Vec<String>) -> redis::RedisResult<()> {
        match self {
            Subscriber::Single(sink) => sink.unsubscribe(channels).await,
            Subscriber::Cluster(conn) => try_join_all(channels.into_iter().map(|c| {
                let mut conn = conn.clone();
                async move { conn.sunsubscribe(c).await }
            }))
            .await
            .map(drop),
        }
    }
}

/// Messages from Redis; `Err`: the connection was lost.
type Inbound = LocalBoxStream<'static, Result<Msg, String>>;

/// The publish connection, the script's SHA1 and the session's number.
type Conn = Option<(Link, String, u64)>;

/// The publisher task (see the module doc).
async fn publish_loop(
    ctx: Arc<Ctx>,
    mut rx: mpsc::Receiver<Outbound>,
    mut stop: watch::Receiver<bool>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let epoch_seed = AtomicU64::new(epoch_seed());
    loop {
        batch.clear();
        tokio::select! {
            n = rx.recv_many(&mut batch, BATCH) => if n == 0 { return },
            _ = stop.wait_for(|s| *s) => return,
        }
        let n = batch.len() as u64;
        wait_until_heard(&ctx, &batch).await;
        let conn: Conn = ctx.conn.borrow().clone();
        let Some((conn, sha, session)) = conn else {
            ctx.stats.publish_failed(n, "broker down");
            continue;
        };
        let publish = conn.publish_command();
        // One pipeline per slot owner: all of it for one Redis, one per room (in the
        // batch's order) for a cluster.
        let mut pipes: Vec<Pipeline> = Vec::new();
        let mut pipe_of: HashMap<&str, usize> = HashMap::new();
        for out in &batch {
            let i = match &conn {
                Link::Single(_) => 0,
                Link::Cluster(_) => *pipe_of.entry(&*out.room).or_insert(pipes.len()),
            };
            if i == pipes.len() {
                pipes.push(redis::pipe());
            }
            let pipe = &mut pipes[i];
            let channel = script::channel(&ctx.prefix, &out.room);
            match ctx.history {
                None => {
                    pipe.cmd(publish).arg(&channel).arg(&out.body).ignore();
                }
                Some(cap) => {
                    let [seq, log, epoch] = script::keys(&ctx.prefix, &out.room);
                    let new_epoch = epoch_seed.fetch_add(1, Ordering::Relaxed);
                    pipe.cmd("EVALSHA")
                        .arg(&sha)
                        .arg(3)
                        .arg(seq)
                        .arg(log)
                        .arg(epoch)
                        .arg(envelope::kind_field(out.kind))
                        .arg(&out.body)
                        .arg(cap)
                        .arg(new_epoch)
                        .arg(&channel)
                        .ignore();
                }
            }
        }
        let sent = try_join_all(pipes.iter().map(|pipe| {
            let mut conn = conn.clone();
            async move { pipe.query_async::<()>(&mut conn).await }
        }));
        let lost = match tokio::time::timeout(TIMEOUT, sent).await {
            Ok(Ok(_)) => {
                ctx.stats.published(n);
                false
            }
            Ok(Err(e)) => {
                ctx.stats.publish_failed(n, &e.to_string());
                e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_timeout()
                    || e.is_unrecoverable_error()
            }
            Err(_) => {
                ctx.stats.publish_failed(n, "broker timeout");
                true
            }
        };
        if lost {
            // The session reconnects (broker_up 0 meanwhile), like a lost pub/sub
            // connection; publishes fail at once until it is back.
            ctx.lost_session.store(session, Ordering::Relaxed);
            ctx.lost.notify_one();
        }
    }
}

/// Hold `batch` back (whole: the node's order is kept) while one of its rooms is
/// wanted here but not subscribed yet, while the broker is up and at most [`TIMEOUT`]:
/// a publish that reached
/// Redis before the node's `SUBSCRIBE` would never come back to the room's members
/// here (the first member's own first message, sent right after the upgrade).
async fn wait_until_heard(ctx: &Ctx, batch: &[Outbound]) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while ctx.stats.is_up() && batch.iter().any(|out| ctx.interest.waiting(&out.room)) {
        if tokio::time::timeout_at(deadline, ctx.heard_changed.notified())
            .await
            .is_err()
        {
            return; // Redis slow or down: send (or fail) as is
        }
    }
}

/// A random 64-bit id for this process (std's randomly keyed hasher over the pid and
/// the clock): the instance part of [`Ctx::origin`].
fn instance_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u64(epoch_seed());
    h.finish()
}

/// An epoch no earlier run is likely to have used: wall-clock nanoseconds.
fn epoch_seed() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        .max(1)
}

/// Connect, serve, reconnect with backoff, until stopped.
async fn sessions(
    ctx: Arc<Ctx>,
    target: Target,
    mut fetches: mpsc::Receiver<FetchRequest>,
    mut stop: watch::Receiver<bool>,
) {
    // Inbound needs the hub: wait for it (given right after the hub is made).
    while ctx.hub.get().is_none() {
        tokio::select! {
            _ = ctx.hub_ready.notified() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
    let mut backoff = BACKOFF_MIN;
    let mut connected_before = false;
    let mut seen: HashMap<Arc<str>, (u64, u64)> = HashMap::new();
    let mut last_error_log: Option<Instant> = None;
    let mut number = 0;
    loop {
        if *stop.borrow() {
            return;
        }
        match connect(&target).await {
            Ok((conn, sha, sink, stream)) => {
                if connected_before {
                    ctx.stats.reconnects(1);
                }
                connected_before = true;
                backoff = BACKOFF_MIN;
                number += 1;
                ctx.conn.send_replace(Some((conn.clone(), sha, number)));
                ctx.stats.set_up(true);
                tracing::info!(node = %ctx.node, "broker connected");
                let mut session = Session {
                    ctx: &ctx,
                    conn,
                    sink,
                    subscribed: HashSet::new(),
                    seen: &mut seen,
                    number,
                };
                let why = session.run(stream, &mut fetches, &mut stop).await;
                ctx.interest.heard_nothing();
                let heard = std::mem::take(&mut session.subscribed);
                session.mark_stale(heard.iter());
                ctx.stats.set_up(false);
                ctx.conn.send_replace(None);
                // Resumes still waiting are answered from the local history.
                while let Ok(request) = fetches.try_recv() {
                    answer(&ctx, request);
                }
                if *stop.borrow() {
                    return;
                }
                tracing::warn!(node = %ctx.node, reason = %why, "broker connection lost; reconnecting");
            }
            Err(e) => {
                let now = Instant::now();
                if last_error_log.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(5)) {
                    last_error_log = Some(now);
                    tracing::warn!(node = %ctx.node, error = %e, "broker unreachable; retrying");
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

async fn connect(target: &Target) -> Result<(Link, String, Subscriber, Inbound), String> {
    match target {
        Target::Single(client) => connect_single(client).await,
        Target::Cluster(nodes) => connect_cluster(nodes).await,
    }
}

async fn connect_single(client: &Client) -> Result<(Link, String, Subscriber, Inbound), String> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(TIMEOUT)
        .set_response_timeout(TIMEOUT);
    let conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| e.to_string())?;
    let mut conn = Link::Single(conn);
    let sha = load_script(&mut conn, PUBLISH_SCRIPT).await?;
    let pubsub = tokio::time::timeout(TIMEOUT, client.get_async_pubsub())
        .await
        .map_err(|_| "timeout connecting pub/sub".to_owned())?
        .map_err(|e| e.to_string())?;
    let (sink, stream) = pubsub.split();
    Ok((
        conn,
        sha,
        Subscriber::Single(sink),
        stream.map(Ok).boxed_local(),
    ))
}

/// One cluster connection for commands and sharded pub/sub (RESP3: messages come as
/// pushes). The push channel is unbounded like the single-node pub/sub stream's: Redis
/// is trusted, and the session drains it as fast as it decodes.
async fn connect_cluster(nodes: &[String]) -> Result<(Link, String, Subscriber, Inbound), String> {
    let (tx, rx) = mpsc::unbounded_channel::<PushInfo>();
    let client = ClusterClientBuilder::new(nodes.to_vec())
        .use_protocol(ProtocolVersion::RESP3)
        .push_sender(tx)
        .connection_timeout(TIMEOUT)
        .response_timeout(TIMEOUT)
        .build()
        .map_err(|e| e.to_string())?;
    let conn = tokio::time::timeout(TIMEOUT, client.get_async_connection())
        .await
        .map_err(|_| "timeout connecting to the cluster".to_owned())?
        .map_err(|e| e.to_string())?;
    let subscriber = Subscriber::Cluster(conn.clone());
    let mut conn = Link::Cluster(conn);
    // Routed to every node by the crate (`SCRIPT LOAD` is an all-nodes command).
    let sha = load_script(&mut conn, SPUBLISH_SCRIPT).await?;
    let inbound = futures_util::stream::unfold(rx, |mut rx| async move {
        loop {
            let push = rx.recv().await?;
            if push.kind == PushKind::Disconnection {
                return Some((Err("a cluster node connection was lost".to_owned()), rx));
            }
            if let Some(msg) = Msg::from_push_info(push) {
                return Some((Ok(msg), rx));
            }
            // (S)SUBSCRIBE confirmations and the like.
        }
    });
    Ok((conn, sha, subscriber, inbound.boxed_local()))
}

/// `SCRIPT LOAD` the publish script; its SHA1.
async fn load_script(conn: &mut Link, script: &str) -> Result<String, String> {
    tokio::time::timeout(
        TIMEOUT,
        redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(script)
            .query_async(conn),
    )
    .await
    .map_err(|_| "timeout loading the publish script".to_owned())?
    .map_err(|e| e.to_string())
}

/// One connected period.
struct Session<'a> {
    ctx: &'a Ctx,
    conn: Link,
    sink: Subscriber,
    subscribed: HashSet<Arc<str>>,
    /// Room → (epoch, last number delivered here), history on; kept across sessions.
    seen: &'a mut HashMap<Arc<str>, (u64, u64)>,
    /// This session's number (1, 2, ...: see [`Ctx::lost_session`]).
    number: u64,
}

impl Session<'_> {
    /// Serve until the connection is lost or the broker stops; returns why it ended.
    async fn run(
        &mut self,
        mut stream: Inbound,
        fetches: &mut mpsc::Receiver<FetchRequest>,
        stop: &mut watch::Receiver<bool>,
    ) -> String {
        // The interest table is compared (a walk over its rooms) only when it changed
        // or a linger may have run out, not per message.
        let mut due = true;
        let mut wake_at = Instant::now();
        loop {
            if due {
                if let Err(e) = self.reconcile().await {
                    return e;
                }
                let now = Instant::now();
                wake_at = self
                    .ctx
                    .interest
                    .next_expiry()
                    .map_or(now + Duration::from_secs(1), |t| t.max(now));
                due = false;
            }
            tokio::select! {
                msg = stream.next() => match msg {
                    Some(Ok(msg)) => self.on_message(&msg),
                    Some(Err(e)) => return e,
                    None => return "pub/sub connection closed".into(),
                },
                request = fetches.recv() => if let Some(request) = request {
                    let done = self.fetch(&request).await;
                    answer(self.ctx, request);
                    if let Err(e) = done {
                        return e;
                    }
                },
                _ = self.ctx.interest_changed.notified() => due = true,
                _ = self.ctx.lost.notified() => {
                    if self.ctx.lost_session.load(Ordering::Relaxed) == self.number {
                        return "publish connection lost".into();
                    }
                }
                _ = tokio::time::sleep_until(wake_at.into()) => due = true,
                _ = stop.wait_for(|s| *s) => return "stopped".into(),
            }
        }
    }

    /// Make Redis's subscriptions agree with the interest table; fetch what rooms
    /// subscribed again missed.
    async fn reconcile(&mut self) -> Result<(), String> {
        let changes = self.ctx.interest.due(&self.subscribed, Instant::now());
        if !changes.subscribe.is_empty() {
            let channels: Vec<String> = changes
                .subscribe
                .iter()
                .map(|r| script::channel(&self.ctx.prefix, r))
                .collect();
            timed(self.sink.subscribe(channels)).await?;
            self.ctx.stats.subscribes(changes.subscribe.len() as u64);
            for room in &changes.subscribe {
                self.subscribed.insert(room.clone());
            }
            self.ctx.interest.heard(&changes.subscribe, true);
            self.ctx.heard_changed.notify_one();
            if self.ctx.history.is_some() {
                for room in &changes.subscribe {
                    self.catch_up(room).await?;
                }
            }
        }
        if !changes.unsubscribe.is_empty() {
            let channels: Vec<String> = changes
                .unsubscribe
                .iter()
                .map(|r| script::channel(&self.ctx.prefix, r))
                .collect();
            timed(self.sink.unsubscribe(channels)).await?;
            self.ctx
                .stats
                .unsubscribes(changes.unsubscribe.len() as u64);
            for room in &changes.unsubscribe {
                self.subscribed.remove(room);
                self.seen.remove(room);
            }
            self.ctx.interest.heard(&changes.unsubscribe, false);
            self.mark_stale(changes.unsubscribe.iter());
        }
        Ok(())
    }

    /// The node no longer hears `rooms` (unsubscribed, or the session ended): their
    /// local rings may miss what is published from now on, so the next resume of each
    /// fetches from its stream (see [`crate::hub::RoomHistory::mark_stale`]).
    fn mark_stale<'r>(&self, rooms: impl Iterator<Item = &'r Arc<str>>) {
        let Some(hub) = self.ctx.hub.get().and_then(Weak::upgrade) else {
            return;
        };
        if let Some(history) = hub.history() {
            for room in rooms {
                history.with_room(room, |h| h.mark_stale());
            }
        }
    }

    /// After (re)subscribing `room`: deliver from its stream what came after the last
    /// number delivered here (nothing for a room new to this node). When the room's
    /// epoch changed (Redis lost its data while we were away) the numbering restarted:
    /// sequenced members get a `reset` and the new numbers from the first retained.
    /// A stream that no longer holds the next number makes [`Session::deliver`]
    /// announce a `gap`.
    async fn catch_up(&mut self, room: &Arc<str>) -> Result<(), String> {
        let Some(&(seen_epoch, last)) = self.seen.get(room) else {
            return Ok(());
        };
        let [_, log, epoch_key] = script::keys(&self.ctx.prefix, room);
        let epoch: Option<u64> = timed(
            redis::cmd("GET")
                .arg(&epoch_key)
                .query_async(&mut self.conn),
        )
        .await?;
        let Some(epoch) = epoch else {
            return Ok(()); // nothing published since Redis lost it: the next one resets
        };
        let from = if epoch == seen_epoch { last + 1 } else { 1 };
        let reply: Value = timed(
            redis::cmd("XRANGE")
                .arg(log)
                .arg(format!("{from}-1"))
                .arg("+")
                .query_async(&mut self.conn),
        )
        .await?;
        let Value::Array(entries) = reply else {
            return Ok(());
        };
        let mut entries: Vec<Envelope> = entries
            .into_iter()
            .filter_map(|e| {
                let env = stream_entry(e).and_then(|b| envelope::decode(b).ok());
                if env.is_none() {
                    self.ctx.stats.foreign_dropped(1);
                }
                env
            })
            .filter(|env| env.epoch == epoch)
            .collect();
        if epoch != seen_epoch {
            let next = entries.first().map_or(1, |e| e.seq);
            self.restart(room, next);
            self.seen.insert(room.clone(), (epoch, next - 1));
        }
        for env in entries.drain(..) {
            if self.deliver(room, env) {
                self.ctx.stats.recovered(1);
            }
        }
        Ok(())
    }

    /// The room's numbering restarted at `next` (a new epoch): forget its local history
    /// and tell its sequenced members.
    fn restart(&mut self, room: &Arc<str>, next: u64) {
        let Some(hub) = self.ctx.hub.get().and_then(Weak::upgrade) else {
            return;
        };
        self.ctx.stats.epoch_resets(1);
        tracing::warn!(room = %room, next, "room stream epoch changed: history reset");
        if let Some(h) = hub.history() {
            h.with_room(room, |h| h.restart());
        }
        hub.announce(room, control(&reset_message(next)));
    }

    /// A resume the local history could not serve: subscribe the room (its
    /// first member here just joined), then read the room's counter, epoch and stream
    /// after `since` (one pipeline); numbers above what was delivered here go out live
    /// (later pub/sub copies are dropped as duplicates), older ones are put in front of
    /// the local ring, and the counter tells the history the last number issued.
    async fn fetch(&mut self, request: &FetchRequest) -> Result<(), String> {
        self.reconcile().await?;
        let ctx = self.ctx;
        let Some(hub) = ctx.hub.get().and_then(Weak::upgrade) else {
            return Ok(());
        };
        let Some(history) = hub.history() else {
            return Ok(());
        };
        let room = self
            .subscribed
            .get(&request.room)
            .cloned()
            .unwrap_or_else(|| request.room.clone());
        let [seq_key, log, epoch_key] = script::keys(&ctx.prefix, &room);
        let (counter, epoch, entries): (Option<u64>, Option<u64>, Value) = timed(
            redis::pipe()
                .get(seq_key)
                .get(epoch_key)
                .cmd("XRANGE")
                .arg(log)
                .arg(format!("{}-1", request.since + 1))
                .arg("+")
                .query_async(&mut self.conn),
        )
        .await?;
        let (Some(counter), Some(epoch)) = (counter, epoch) else {
            return Ok(()); // nothing was ever published in the room
        };
        let now = Instant::now();
        match self.seen.get(&room) {
            Some(&(e, _)) if e == epoch => {}
            Some(_) => {
                self.restart(&room, counter + 1);
                self.seen.insert(room.clone(), (epoch, counter));
            }
            None => {
                self.seen.insert(room.clone(), (epoch, counter));
            }
        }
        let Value::Array(entries) = entries else {
            return Ok(());
        };
        let mut older = Vec::new();
        for entry in entries {
            let Some(env) = stream_entry(entry).and_then(|b| envelope::decode(b).ok()) else {
                ctx.stats.foreign_dropped(1);
                continue;
            };
            let last = self.seen.get(&room).map_or(0, |&(_, l)| l);
            if env.epoch != epoch {
                continue;
            }
            if env.seq > last {
                if self.deliver(&room, env) {
                    ctx.stats.recovered(1);
                }
            } else {
                let seq = env.seq;
                let payload = Payload::from_bytes(env.kind, env.payload, now);
                let p = Arc::new(Publication::new(room.clone(), payload, None)).numbered(seq);
                older.push((seq, p));
            }
        }
        history.with_room(&room, |h| {
            h.refresh();
            h.observe(counter, now);
        });
        let kept = history.backfill(&room, &older);
        ctx.stats.recovered(kept as u64);
        Ok(())
    }

    /// One message from the pub/sub connection.
    fn on_message(&mut self, msg: &redis::Msg) {
        let room = script::room_of(&self.ctx.prefix, msg.get_channel_name())
            .and_then(|r| self.subscribed.get(r).cloned());
        let Some(room) = room else {
            return; // a late message for a channel just unsubscribed
        };
        match envelope::decode(Bytes::copy_from_slice(msg.get_payload_bytes())) {
            Ok(env) => {
                self.deliver(&room, env);
            }
            Err(e) => {
                self.ctx.stats.foreign_dropped(1);
                tracing::debug!(room = %room, error = ?e, "dropped a message ringcast did not write");
            }
        }
    }

    /// Hand `env` to the hub, unless it is a number already delivered here. Returns
    /// true when delivered.
    fn deliver(&mut self, room: &Arc<str>, env: Envelope) -> bool {
        let ctx = self.ctx;
        let Some(hub) = ctx.hub.get().and_then(Weak::upgrade) else {
            return false;
        };
        if env.seq > 0 {
            match self.seen.get(room) {
                Some(&(epoch, last)) if epoch == env.epoch && env.seq <= last => {
                    ctx.stats.duplicates_dropped(1);
                    return false;
                }
                Some(&(epoch, last)) if epoch == env.epoch && env.seq > last + 1 => {
                    // Numbers this node never got and Redis no longer holds.
                    ctx.stats.gap_announced(env.seq - last - 1);
                    tracing::warn!(room = %room, from = last + 1, to = env.seq - 1, "numbers lost: gap announced");
                    hub.announce(room, control(&gap_message(last + 1, env.seq - 1)));
                }
                Some(&(epoch, _)) if epoch == env.epoch => {}
                Some(_) => self.restart(room, env.seq), // Redis lost the room's data
                None => {}
            }
            self.seen.insert(room.clone(), (env.epoch, env.seq));
        }
        let now = Instant::now();
        let own = *env.node == *ctx.origin;
        let published_at = if own {
            let at = ctx.base + Duration::from_nanos(env.t_ns);
            ctx.stats.round_trip(now.saturating_duration_since(at));
            at.min(now)
        } else {
            now
        };
        let exclude = if own { env.exclude } else { None };
        let payload = Payload::from_bytes(env.kind, env.payload, published_at);
        let mut publication = Arc::new(Publication::new(room.clone(), payload, exclude));
        if env.seq > 0 {
            publication = publication.numbered(env.seq);
        }
        hub.deliver_inbound(publication);
        ctx.stats.received(1);
        true
    }
}

/// A control message as the text frame sequenced clients get.
fn control(text: &str) -> PreparedFrame {
    PreparedFrame::encode(Opcode::Text, text.as_bytes())
}

/// Let the shard resume `request` from the local history (filled or not).
fn answer(ctx: &Ctx, request: FetchRequest) {
    if let Some(hub) = ctx.hub.get().and_then(Weak::upgrade) {
        if request.shard < hub.shard_count() {
            let shard = request.shard;
            hub.inbox(shard).send(ShardMsg::Resume(request));
        }
    }
}

/// The envelope in one `XRANGE` entry (`[id, [field, value, ...]]`, field `m`).
fn stream_entry(entry: Value) -> Option<Bytes> {
    let Value::Array(mut parts) = entry else {
        return None;
    };
    let Value::Array(fields) = parts.pop()? else {
        return None;
    };
    let mut it = fields.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        if let (Value::BulkString(k), Value::BulkString(v)) = (k, v) {
            if k == b"m" {
                return Some(Bytes::from(v));
            }
        }
    }
    None
}

async fn timed<T>(
    f: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, String> {
    match tokio::time::timeout(TIMEOUT, f).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err("broker timeout".into()),
    }
}

//! Starting, running and stopping a server (the thread-safe [`Publisher`] it hands out
//! lives in [`crate::shard::publisher`]; re-exported here).
//!
//! [`Server::start`] validates the configuration, picks the backend, binds one
//! SO_REUSEPORT listener per shard (so a bind error is returned to the caller, with
//! diagnostics, before any thread starts), then spawns one thread per shard, pinned to
//! a CPU when there are enough CPUs. [`RunningServer::shutdown`] asks every shard to
//! close its connections with 1001 and joins the threads.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::broker::{default_node_id, BrokerHandle, BrokerSnapshot};
use crate::config::Config;
use crate::driver::{self, Backend};
use crate::handler::Handler;
use crate::hub::{HistoryStats, Hub, HubShared, ShardMsg};
use crate::listener::{bind_reuseport, BindConfig};
use crate::metrics::{MetricsCollector, NoopCollector};
use crate::shard::{Admission, Shard, Shared};
use crate::sys::{self, Waker};

pub use crate::shard::Publisher;

/// Why a server could not start.
#[derive(Debug)]
pub enum StartError {
    Config(crate::config::ConfigError),
    Backend(io::Error),
    Bind(crate::listener::BindError),
    Io(io::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Config(e) => write!(f, "{e}"),
            StartError::Backend(e) => write!(f, "backend: {e}"),
            StartError::Bind(e) => write!(f, "{e}"),
            StartError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// Entry point of the library API.
pub struct Server;

impl Server {
    /// Start serving `handler` with `cfg`. Returns once every listener is bound.
    pub fn start(cfg: Config, handler: impl Handler) -> Result<RunningServer, StartError> {
        Self::start_shared(cfg, Arc::new(handler))
    }

    pub fn start_shared(
        cfg: Config,
        handler: Arc<dyn Handler>,
    ) -> Result<RunningServer, StartError> {
        Self::start_with_metrics(cfg, handler, Arc::new(NoopCollector))
    }

    /// Start with a metrics collector receiving every hook (see [`MetricsCollector`]).
    pub fn start_with_metrics(
        cfg: Config,
        handler: Arc<dyn Handler>,
        metrics: Arc<dyn MetricsCollector>,
    ) -> Result<RunningServer, StartError> {
        cfg.validate().map_err(StartError::Config)?;
        let backend = driver::resolve(cfg.backend).map_err(StartError::Backend)?;
        // SAFETY: setting SIGPIPE to ignored is process-wide and has no memory effects;
        // sends use MSG_NOSIGNAL anyway, this covers any other write.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };

        let mut listeners = Vec::with_capacity(cfg.threads);
        let mut addr = cfg.addr;
        for shard in 0..cfg.threads {
            let socket = bind_reuseport(
                &BindConfig {
                    addr,
                    backlog: cfg.backlog,
                },
                |n| {
                    metrics.bind_retry(shard);
                    tracing::debug!(shard, retry = n, "bind retry after EADDRINUSE")
                },
            )
            .map_err(StartError::Bind)?;
            driver::tune_listener(&socket, &cfg.driver).map_err(StartError::Io)?;
            // With port 0 the first bind picks the port; the others join it.
            let bound = socket
                .local_addr()
                .ok()
                .and_then(|a| a.as_socket())
                .ok_or_else(|| StartError::Io(io::Error::other("listener has no address")))?;
            addr = bound;
            listeners.push(socket);
        }
        let local_addr = addr;

        let wakers: Vec<Arc<Waker>> = (0..cfg.threads)
            .map(|_| Waker::new().map(Arc::new))
            .collect::<io::Result<_>>()
            .map_err(StartError::Io)?;
        let broker = match &cfg.broker {
            None => None,
            Some(b) => {
                let node = b
                    .node_id
                    .clone()
                    .unwrap_or_else(|| default_node_id(local_addr.port()));
                let history = cfg.history.map(|h| h.max_frames);
                Some(BrokerHandle::start(b, node, history).map_err(StartError::Io)?)
            }
        };
        let (shared, inboxes) =
            HubShared::with_broker(&wakers, cfg.history, broker.as_ref().map(|b| b.broker()));
        if let Some(b) = &broker {
            b.attach(&shared);
        }
        let cpus = sys::allowed_cpus().unwrap_or_default();
        let pin = cfg.pin_threads && cpus.len() >= cfg.threads;
        let threads_wanted = cfg.threads;
        let shared_state = Arc::new(Shared {
            admission: Admission::new(cfg.max_connections),
            cfg: cfg.shard,
            metrics,
        });
        let driver_cfg = Arc::new(cfg.driver);

        let mut threads = Vec::with_capacity(threads_wanted);
        for (id, ((listener, inbox), waker)) in
            listeners.into_iter().zip(inboxes).zip(wakers).enumerate()
        {
            let state = shared_state.clone();
            let shared = shared.clone();
            let handler = handler.clone();
            let driver_cfg = driver_cfg.clone();
            let cpu = pin.then(|| cpus[id]);
            let thread = std::thread::Builder::new()
                .name(format!("ringcast-shard-{id}"))
                .spawn(move || {
                    if let Some(cpu) = cpu {
                        if let Err(e) = sys::pin_current_thread(cpu) {
                            tracing::warn!(shard = id, cpu, error = %e, "could not pin shard");
                        }
                    }
                    let mut shard = Shard::new(id, state, Hub::new(id, shared), handler, inbox);
                    let result = driver::run(backend, &driver_cfg, &mut shard, listener, waker);
                    if let Err(e) = &result {
                        tracing::error!(shard = id, error = %e, "shard stopped with an error");
                    }
                    result
                })
                .map_err(StartError::Io)?;
            threads.push(thread);
        }
        tracing::info!(addr = %local_addr, backend = %backend, shards = threads_wanted, pinned = pin, "listening");
        Ok(RunningServer {
            broker,
            shared,
            state: shared_state,
            threads,
            local_addr,
            backend,
        })
    }
}

/// A started server.
pub struct RunningServer {
    /// Cluster mode's broker thread (`--broker`), stopped after the shards.
    broker: Option<BrokerHandle>,
    shared: Arc<HubShared>,
    state: Arc<Shared>,
    threads: Vec<JoinHandle<io::Result<()>>>,
    local_addr: SocketAddr,
    backend: Backend,
}

impl RunningServer {
    /// The address the listeners are bound to (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn shards(&self) -> usize {
        self.threads.len()
    }

    /// Admission slots held right now (connections counted against `max_connections`).
    pub fn admitted(&self) -> usize {
        self.state.admission.held()
    }

    /// Rooms, frames and bytes held by the per-room history, and messages it refused
    /// (`None` when it is off).
    pub fn history_stats(&self) -> Option<HistoryStats> {
        self.shared.history().map(|h| h.stats())
    }

    /// Cluster mode: this node's id and its broker's counters (`None` without
    /// `--broker`).
    pub fn broker_stats(&self) -> Option<(String, BrokerSnapshot)> {
        self.broker
            .as_ref()
            .map(|b| (b.node_id().to_owned(), b.stats()))
    }

    /// Cluster mode: the broker's live counters, for an exposition (`None` without
    /// `--broker`).
    pub fn broker_stats_handle(&self) -> Option<(String, Arc<crate::broker::BrokerStats>)> {
        self.broker
            .as_ref()
            .map(|b| (b.node_id().to_owned(), b.stats_handle()))
    }

    /// A handle that publishes into the server's rooms from any thread.
    pub fn publisher(&self) -> Publisher {
        Publisher::new(self.shared.clone(), self.state.metrics.clone())
    }

    /// Graceful shutdown: stop accepting, close every connection with 1001, give them
    /// `shutdown_timeout` to flush, then join every shard thread.
    pub fn shutdown(self) -> io::Result<()> {
        for shard in 0..self.shared.shard_count() {
            self.shared.inbox(shard).send(ShardMsg::Shutdown);
        }
        self.join()
    }

    /// Wait for the shard threads to end (after a shutdown).
    pub fn join(self) -> io::Result<()> {
        let mut first_error = None;
        for t in self.threads {
            let r = t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("shard thread panicked")));
            if let Err(e) = r {
                first_error.get_or_insert(e);
            }
        }
        if let Some(b) = &self.broker {
            b.shutdown();
        }
        first_error.map_or(Ok(()), Err)
    }
}

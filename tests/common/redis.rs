//! A real `redis-server` for the cluster tests: started on a free loopback port with
//! persistence off, driven with the real `redis-cli`, stopped by PID (kill in Drop);
//! [`RedisServer::stop`] and [`RedisServer::restart`] take it away and bring it back on
//! the same port. [`RedisCluster`]: a Redis Cluster of such servers.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::poll_until;

pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
}

/// A loopback port that was free a moment ago (bound, then released: redis-server
/// refuses `--port 0`).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl RedisServer {
    /// Start one on a free port and wait until it answers `PING`.
    pub fn start() -> Self {
        let (child, port) =
            spawn_on_a_free_port(false, |port| RedisServer { child: None, port }.spawn());
        RedisServer {
            child: Some(child),
            port,
        }
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// (Re)start it on its port, empty (no persistence), and wait for `PING`.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        self.child = Some(self.spawn());
        wait_for_ping(self);
    }

    fn spawn(&self) -> Child {
        Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server installed (Debian package redis-server)")
    }

    /// Kill it (SIGKILL, by PID) and reap it: everything it held is lost.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Run `redis-cli -p PORT ARGS…` and return its output (raw, one value per line).
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "--raw"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli installed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Subscribers of `channel` (`PUBSUB NUMSUB`).
    pub fn numsub(&self, channel: &str) -> u64 {
        let out = self.cli(&["PUBSUB", "NUMSUB", channel]);
        out.lines()
            .nth(1)
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Calls of `command` since start (`INFO commandstats`, e.g. `publish`).
    pub fn calls(&self, command: &str) -> u64 {
        let info = self.cli(&["INFO", "commandstats"]);
        let key = format!("cmdstat_{command}:calls=");
        info.lines()
            .find_map(|l| l.strip_prefix(&key))
            .and_then(|rest| rest.split(',').next()?.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Three (or `n`) `redis-server --cluster-enabled yes` on free loopback ports,
/// persistence off, their `nodes.conf` in a temp dir; joined with
/// `redis-cli --cluster create … --cluster-replicas 0` and polled until `CLUSTER INFO`
/// says `cluster_state:ok`. Every server is killed by PID in Drop (then the dir removed).
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
    dir: std::path::PathBuf,
}

impl RedisCluster {
    pub fn start(n: usize) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "ringcast-redis-cluster-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut cluster = RedisCluster {
            nodes: Vec::new(),
            dir,
        };
        for _ in 0..n {
            let (child, port) = spawn_on_a_free_port(true, |port| cluster.spawn(port));
            cluster.nodes.push(RedisServer {
                child: Some(child),
                port,
            });
        }
        let hosts: Vec<String> = cluster
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&hosts)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli installed");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        cluster.wait_ok();
        cluster
    }

    /// A cluster-enabled `redis-server` on `port`, its `nodes.conf` in the temp dir (so a
    /// restart on the same port rejoins with its slots); failure detection after 2 s.
    fn spawn(&self, port: u16) -> Child {
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])
            .arg("--cluster-config-file")
            .arg(self.dir.join(format!("nodes-{port}.conf")))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server installed (Debian package redis-server)")
    }

    /// Kill node `i` (SIGKILL, by PID: its data is lost), start it again on its port
    /// with its cluster config, and wait until every node says `cluster_state:ok`.
    pub fn restart(&mut self, i: usize) {
        self.nodes[i].stop();
        let child = self.spawn(self.nodes[i].port);
        self.nodes[i].child = Some(child);
        wait_for_ping(&self.nodes[i]);
        self.wait_ok();
    }

    /// Poll (bounded) until every node's `CLUSTER INFO` says `cluster_state:ok`.
    fn wait_ok(&self) {
        assert!(
            poll_until(Duration::from_secs(20), || self
                .nodes
                .iter()
                .all(|n| n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"))),
            "cluster_state:ok on every node"
        );
    }

    /// `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,…`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// The node serving `key`'s slot (`CLUSTER KEYSLOT`, then the `myself` line of
    /// each node's `CLUSTER NODES`).
    pub fn owner(&self, key: &str) -> &RedisServer {
        let slot: u16 = self.nodes[0]
            .cli(&["CLUSTER", "KEYSLOT", key])
            .trim()
            .parse()
            .expect("CLUSTER KEYSLOT");
        self.nodes
            .iter()
            .find(|n| {
                let nodes = n.cli(&["CLUSTER", "NODES"]);
                let me = nodes.lines().find(|l| l.contains("myself")).unwrap_or("");
                me.split_whitespace().skip(8).any(|range| {
                    let (a, b) = range.split_once('-').unwrap_or((range, range));
                    matches!((a.parse::<u16>(), b.parse::<u16>()), (Ok(a), Ok(b)) if a <= slot && slot <= b)
                })
            })
            .expect("a node serves the slot")
    }
}

impl RedisServer {
    /// Subscribers of sharded `channel` on this node (`PUBSUB SHARDNUMSUB`).
    pub fn shardnumsub(&self, channel: &str) -> u64 {
        let out = self.cli(&["PUBSUB", "SHARDNUMSUB", channel]);
        out.lines()
            .nth(1)
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }
}

/// Start a redis-server with `spawn` on a port that was free a moment ago and wait until
/// it answers `PING`; when it exits at once instead (the port was taken in between, by
/// another test's server or by a client's ephemeral port), try another port (bounded).
/// `cluster`: the port + 10000 (the cluster bus) must be free and valid too.
fn spawn_on_a_free_port(cluster: bool, spawn: impl Fn(u16) -> Child) -> (Child, u16) {
    for _ in 0..8 {
        let port = free_port();
        if cluster && (port > 55535 || TcpListener::bind(("127.0.0.1", port + 10000)).is_err()) {
            continue;
        }
        let mut child = spawn(port);
        let probe = RedisServer { child: None, port };
        let mut exited = false;
        let up = poll_until(Duration::from_secs(10), || {
            exited = matches!(child.try_wait(), Ok(Some(_)));
            exited
                || (TcpStream::connect(("127.0.0.1", port)).is_ok()
                    && probe.cli(&["PING"]).trim() == "PONG")
        });
        if up && !exited {
            return (child, port);
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(exited, "redis-server did not come up on port {port}");
    }
    panic!("redis-server exited at once on 8 free ports in a row");
}

/// Poll (bounded) until `node` answers `PING`.
fn wait_for_ping(node: &RedisServer) {
    let addr = SocketAddr::from(([127, 0, 0, 1], node.port));
    assert!(
        poll_until(Duration::from_secs(10), || TcpStream::connect(addr).is_ok()
            && node.cli(&["PING"]).trim() == "PONG"),
        "redis-server did not come up on port {}",
        node.port
    );
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.stop();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

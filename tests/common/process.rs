//! The `ringcast` binary as a test subject: spawn `serve` on ephemeral ports, read the
//! address lines it prints (on a reader thread, so a silent binary cannot hang a test),
//! count its fds, scrape its counters, signal it and wait for its exit.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub struct ServerProcess {
    pub child: Child,
    /// The WebSocket address (from "ringcast listening on ws://ADDR …" or wss://).
    pub addr: SocketAddr,
    /// The metrics address (from "metrics on http://ADDR/metrics …"), unless disabled.
    pub metrics: Option<SocketAddr>,
    /// The lines it printed at start-up.
    pub banner: Vec<String>,
}

fn addr_after(line: &str, scheme: &str) -> Option<SocketAddr> {
    line.split(scheme)
        .nth(1)?
        .split(['/', ' '])
        .next()?
        .parse()
        .ok()
}

impl ServerProcess {
    /// `ringcast serve --addr 127.0.0.1:0 ARGS…`; the metrics line is awaited unless ARGS
    /// contain `--metrics-addr off`.
    pub fn spawn(args: &[&str]) -> Self {
        Self::spawn_with(args, None)
    }

    /// Like [`ServerProcess::spawn`], with RLIMIT_NOFILE (soft and hard) set to `nofile`
    /// in the child before it starts, so the server runs out of fds early.
    pub fn spawn_with(args: &[&str], nofile: Option<u64>) -> Self {
        use std::os::unix::process::CommandExt as _;
        let metrics_off = args.windows(2).any(|w| w == ["--metrics-addr", "off"]);
        let mut command = Command::new(env!("CARGO_BIN_EXE_ringcast"));
        command
            .args(["serve", "--addr", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(limit) = nofile {
            let rlim = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            // SAFETY: setrlimit is async-signal-safe and only touches the child's limits;
            // the closure captures a plain value.
            unsafe {
                command.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &rlim) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let mut child = command.spawn().expect("start ringcast");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let (mut addr, mut metrics, mut seen) = (None, None, Vec::new());
        while addr.is_none() || (!metrics_off && metrics.is_none()) {
            let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            else {
                let _ = child.kill();
                panic!("no address lines from the binary; got {seen:?}");
            };
            if line.starts_with("ringcast listening on ") {
                addr = addr_after(&line, "://"); // ws:// or wss://
            } else if line.starts_with("metrics on ") {
                metrics = addr_after(&line, "http://");
            }
            seen.push(line);
        }
        ServerProcess {
            child,
            addr: addr.unwrap(),
            metrics,
            banner: seen,
        }
    }

    /// CPU time (user + system) the process has used so far.
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        // Fields after the parenthesised command name: utime and stime are 12th and 13th.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = rest.split(' ').collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        Duration::from_millis(ticks * 1000 / hz)
    }

    pub fn fds(&self) -> usize {
        ringcast::sys::open_fd_count(Some(self.child.id())).unwrap()
    }

    /// The fd count once it holds still for 100 ms (threads may still be opening their
    /// rings or epoll sets just after start-up; a closing socket may linger a moment).
    pub fn settled_fds(&self) -> usize {
        let mut last = self.fds();
        for _ in 0..50 {
            std::thread::sleep(Duration::from_millis(100));
            let now = self.fds();
            if now == last {
                return now;
            }
            last = now;
        }
        panic!("fd count never settled");
    }

    /// A metric's value, summed over its label sets, from `/metrics`.
    pub fn counter(&self, name: &str) -> f64 {
        let mut s = TcpStream::connect(self.metrics.expect("metrics enabled")).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        body.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: sending a signal to our own child process.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, signal) }, 0);
    }

    /// Wait for the process to exit by itself within `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

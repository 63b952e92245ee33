//! `ringcast-load floor`: what one frame costs the sender on this machine's loopback TCP
//! path with no server in between — the yardstick for a fan-out server's "server CPU per
//! delivered frame" (`make compare`, `scripts/ab.sh`).
//!
//! The run opens `--connections` loopback pairs in this process (a listener on
//! 127.0.0.1, clients bound to `--src-ips` addresses; two descriptors per pair, so
//! RLIMIT_NOFILE bounds the count). Two threads:
//! * the **sender** (pinned to `--sender-cpu`) works in rounds; a round is one `send(2)`
//!   per connection of one prebuilt buffer holding `--frames-per-send` server-to-client
//!   WebSocket binary frames of `--size` payload bytes each (RFC 6455 §5.2, unmasked) —
//!   exactly the bytes and the send size a fan-out server produces when that many
//!   messages are pending for each subscriber. Accepted sockets get `TCP_NODELAY`, as a
//!   server's do. At most `--rounds-in-flight` rounds (default 2) are unread at once:
//!   round r starts once the receiver has read every frame of round r − that many (a
//!   closed loop; the sender blocks on a condition variable meanwhile, as a server
//!   sleeps in its poller). Two rounds mimic a server at K messages in flight, which
//!   sends a connection its next batch while the client still reads the last one.
//! * the **receiver** (pinned to `--receiver-cpu`) is one edge-triggered epoll loop over
//!   every client socket reading 64 KiB at a time until a read comes back short — the
//!   generator's loop without the frame parser. `--receiver sleep` (default) blocks in
//!   `epoll_pwait2` when nothing is readable, so the sender pays for waking it as a server
//!   pays for waking its clients; `--receiver busy` polls with a zero timeout and never
//!   sleeps (the receiver of the 0.21 µs micro-benchmark in the project's design notes).
//!
//! Measured: the sender thread's CPU (`CLOCK_THREAD_CPUTIME_ID`, user + system, exact
//! over a round however short; on loopback it includes the receive-side softirq work
//! run on its core) over the send loops only, waits excluded, divided by the frames
//! sent. Nothing here is a WebSocket server: no parsing, no rooms, no queues — a
//! server's per-frame CPU over this figure is what the server adds.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use clap::ValueEnum;

use crate::cli::{FloorArgs, ReceiverMode};
use crate::codec;
use crate::conn;
use crate::event_loop::Poller;
use crate::sys;

/// What a floor run measured.
#[derive(Debug, Clone, Copy)]
pub struct FloorReport {
    /// Connections (loopback pairs).
    pub connections: usize,
    /// Frames sent and read.
    pub frames: u64,
    /// `send(2)` calls.
    pub sends: u64,
    /// Wall time of the measured rounds, seconds.
    pub wall_secs: f64,
    /// Sender CPU inside the send loops, nanoseconds.
    pub sender_cpu_ns: u64,
    /// Receiver thread CPU from its first wait to the end (warm-up included), ns.
    pub receiver_cpu_ns: u64,
    /// The receiver's wall time over the same span, seconds.
    pub receiver_wall_secs: f64,
    /// Receiver `epoll_pwait2` calls.
    pub receiver_waits: u64,
}

impl FloorReport {
    /// Sender CPU per frame, µs.
    pub fn sender_us_per_frame(&self) -> f64 {
        self.sender_cpu_ns as f64 / 1e3 / self.frames.max(1) as f64
    }
}

/// Shared between the two threads.
struct Progress {
    /// Bytes the receiver has read (all connections together).
    read_bytes: AtomicU64,
    /// The sender is (about to be) blocked waiting for `read_bytes`.
    sender_waiting: AtomicBool,
    stop: AtomicBool,
    lock: Mutex<()>,
    cv: Condvar,
}

/// The buffer every send carries: `frames` unmasked binary frames (RFC 6455 §5.2) of
/// `size` payload bytes each.
fn send_buffer(frames: usize, size: usize) -> Vec<u8> {
    let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let mut one = Vec::with_capacity(size + 10);
    codec::encode_server_frame(&mut one, codec::OP_BINARY, &payload);
    one.repeat(frames)
}

/// Opens `n` loopback pairs: (accepted sockets, client sockets).
fn pairs(n: usize, src: &[Ipv4Addr]) -> io::Result<(Vec<TcpStream>, Vec<TcpStream>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let (mut servers, mut clients) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        let c = connect_from(src[i % src.len()], addr)?;
        let (s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        servers.push(s);
        clients.push(c);
    }
    Ok((servers, clients))
}

/// A non-blocking client socket bound to `src`, connected to `to` (on loopback the
/// handshake completes inside `connect(2)`; the caller's accept returns it).
fn connect_from(src: Ipv4Addr, to: SocketAddr) -> io::Result<TcpStream> {
    let fd = conn::new_socket(to, Some(src))?;
    conn::start_connect(&fd, to)?;
    Ok(TcpStream::from(fd))
}

/// Runs the measurement; an error names what could not be set up.
pub fn run(args: &FloorArgs) -> Result<FloorReport, String> {
    if args.connections == 0 || args.frames_per_send == 0 || args.rounds_in_flight == 0 {
        return Err(
            "--connections, --frames-per-send and --rounds-in-flight must be at least 1".into(),
        );
    }
    if args.duration.is_zero() {
        return Err("--duration must be more than 0: nothing would be measured".into());
    }
    sys::ensure_fd_budget(2 * args.connections as u64, 2).map_err(|e| {
        format!(
            "--connections {} opens both ends of each loopback pair in this process: {e}",
            args.connections
        )
    })?;
    let (servers, clients) = pairs(args.connections, &args.src_ips.0)
        .map_err(|e| format!("cannot open {} loopback pairs: {e}", args.connections))?;
    let buf = send_buffer(args.frames_per_send, args.size);
    let round_bytes = (buf.len() * servers.len()) as u64;
    let p = Arc::new(Progress {
        read_bytes: AtomicU64::new(0),
        sender_waiting: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        lock: Mutex::new(()),
        cv: Condvar::new(),
    });
    let receiver = {
        let (p, mode, cpu) = (p.clone(), args.receiver, args.receiver_cpu);
        std::thread::Builder::new()
            .name("floor-receiver".into())
            .spawn(move || receive(clients, &p, mode, cpu))
            .map_err(|e| format!("cannot spawn the receiver: {e}"))?
    };
    let sent = send(&servers, &buf, round_bytes, args, &p);
    p.stop.store(true, Release);
    let (receiver_cpu_ns, receiver_wall_secs, receiver_waits) = receiver
        .join()
        .map_err(|_| "the receiver thread panicked".to_string())??;
    let (rounds, sender_cpu_ns, wall) = sent?;
    let sends = rounds * servers.len() as u64;
    Ok(FloorReport {
        connections: servers.len(),
        frames: sends * args.frames_per_send as u64,
        sends,
        wall_secs: wall.as_secs_f64(),
        sender_cpu_ns,
        receiver_cpu_ns,
        receiver_wall_secs,
        receiver_waits,
    })
}

/// The sender: warm-up rounds for `--warmup`, then measured rounds for `--duration`.
/// Returns (measured rounds, CPU ns in their send loops, their wall time).
fn send(
    servers: &[TcpStream],
    buf: &[u8],
    round_bytes: u64,
    args: &FloorArgs,
    p: &Progress,
) -> Result<(u64, u64, Duration), String> {
    if let Some(cpu) = args.sender_cpu {
        sys::pin_current_thread(cpu).map_err(|e| format!("cannot pin the sender: {e}"))?;
    }
    let start = Instant::now();
    let (mut round, mut measured, mut cpu_ns) = (0u64, 0u64, 0u64);
    let mut measure_start = None;
    loop {
        let now = Instant::now();
        if now - start >= args.warmup && measure_start.is_none() {
            measure_start = Some(now);
        }
        if measure_start.is_some_and(|m| now - m >= args.duration) {
            break;
        }
        // Closed loop: at most `rounds_in_flight` rounds unread, this one included.
        let need = (round + 1).saturating_sub(args.rounds_in_flight) * round_bytes;
        wait_for(
            p,
            need,
            start + args.warmup + args.duration + Duration::from_secs(10),
        )?;
        let c0 = sys::thread_cpu_ns();
        for mut s in servers {
            s.write_all(buf)
                .map_err(|e| format!("send on a loopback pair failed: {e}"))?;
        }
        if measure_start.is_some() {
            cpu_ns += sys::thread_cpu_ns() - c0;
            measured += 1;
        }
        round += 1;
    }
    wait_for(
        p,
        round * round_bytes,
        Instant::now() + Duration::from_secs(10),
    )?;
    Ok((
        measured,
        cpu_ns,
        measure_start.map_or(Duration::ZERO, |m| m.elapsed()),
    ))
}

/// Blocks until the receiver has read `bytes`, or fails at `deadline` (a stuck receiver).
fn wait_for(p: &Progress, bytes: u64, deadline: Instant) -> Result<(), String> {
    if p.read_bytes.load(Acquire) >= bytes {
        return Ok(());
    }
    let mut g = p.lock.lock().unwrap_or_else(|e| e.into_inner());
    p.sender_waiting.store(true, SeqCst);
    while p.read_bytes.load(SeqCst) < bytes {
        if Instant::now() >= deadline {
            return Err(format!(
                "the receiver read {} of {bytes} bytes before the deadline",
                p.read_bytes.load(SeqCst)
            ));
        }
        g =
            p.cv.wait_timeout(g, Duration::from_millis(5))
                .unwrap_or_else(|e| e.into_inner())
                .0;
    }
    p.sender_waiting.store(false, SeqCst);
    Ok(())
}

/// The receiver: reads everything until told to stop; returns (CPU ns, wall seconds,
/// epoll waits).
fn receive(
    clients: Vec<TcpStream>,
    p: &Progress,
    mode: ReceiverMode,
    cpu: Option<usize>,
) -> Result<(u64, f64, u64), String> {
    if let Some(cpu) = cpu {
        sys::pin_current_thread(cpu).map_err(|e| format!("cannot pin the receiver: {e}"))?;
    }
    let mut poller = Poller::new(1024).map_err(|e| format!("epoll: {e}"))?;
    for (i, c) in clients.iter().enumerate() {
        poller
            .add_readable(c.as_raw_fd(), i as u64)
            .map_err(|e| format!("epoll_ctl: {e}"))?;
    }
    let timeout_ns = match mode {
        ReceiverMode::Sleep => 10_000_000,
        ReceiverMode::Busy => 0,
    };
    let mut scratch = vec![0u8; 64 * 1024];
    let (c0, t0) = (sys::thread_cpu(), Instant::now());
    while !p.stop.load(Acquire) {
        let n = poller.wait(timeout_ns).map_err(|e| format!("epoll: {e}"))?;
        let mut got = 0u64;
        for i in 0..n {
            let mut c = &clients[poller.event(i).0 as usize];
            loop {
                match c.read(&mut scratch) {
                    Ok(0) => return Err("a loopback pair closed early".into()),
                    Ok(k) => {
                        got += k as u64;
                        if k < scratch.len() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(format!("read: {e}")),
                }
            }
        }
        if got > 0 {
            p.read_bytes.fetch_add(got, SeqCst);
            if p.sender_waiting.load(SeqCst) {
                let _g = p.lock.lock().unwrap_or_else(|e| e.into_inner());
                p.cv.notify_one();
            }
        }
    }
    Ok((
        sys::thread_cpu().since(&c0).total_ns(),
        t0.elapsed().as_secs_f64(),
        poller.waits,
    ))
}

/// The summary printed by the `floor` command.
pub fn print(r: &FloorReport, args: &FloorArgs) {
    let fps = r.frames as f64 / r.wall_secs.max(1e-9);
    println!(
        "floor: {} connections, {} frames of {} B per send, {} round(s) in flight, receiver {}",
        r.connections,
        args.frames_per_send,
        args.size,
        args.rounds_in_flight,
        args.receiver
            .to_possible_value()
            .map_or_else(String::new, |v| v.get_name().to_owned())
    );
    println!(
        "  frames {} in {:.2} s ({:.0} frames/s, {} sends)",
        r.frames, r.wall_secs, fps, r.sends
    );
    println!(
        "  sender CPU {:.3} µs per frame ({:.3} µs per send)",
        r.sender_us_per_frame(),
        r.sender_cpu_ns as f64 / 1e3 / r.sends.max(1) as f64
    );
    println!(
        "  receiver CPU {:.0} % of a core, {} epoll waits ({:.3} per send)",
        r.receiver_cpu_ns as f64 / 1e7 / r.receiver_wall_secs.max(1e-9),
        r.receiver_waits,
        r.receiver_waits as f64 / r.sends.max(1) as f64
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_buffers_hold_whole_binary_frames_in_each_rfc6455_length_form() {
        for size in [64, 1024, 70_000] {
            let buf = send_buffer(3, size);
            let mut rest = &buf[..];
            for _ in 0..3 {
                let f = codec::parse_frame(rest, size).unwrap().unwrap();
                assert!(f.fin);
                assert_eq!((f.opcode, f.payload.len()), (codec::OP_BINARY, size));
                rest = &rest[f.consumed..];
            }
            assert!(rest.is_empty(), "size {size}");
        }
        assert_eq!(send_buffer(16, 64).len(), 16 * 66);
    }

    fn args(receiver: ReceiverMode) -> FloorArgs {
        FloorArgs {
            connections: 40,
            frames_per_send: 4,
            size: 64,
            rounds_in_flight: 1,
            receiver,
            warmup: Duration::from_millis(50),
            duration: Duration::from_millis(200),
            sender_cpu: None,
            receiver_cpu: None,
            src_ips: crate::cli::parse_src_ips("127.0.0.1-127.0.0.3").unwrap(),
        }
    }

    /// Both receiver modes over real loopback pairs: every round measured is whole
    /// (sends = rounds × connections) and the sender's CPU was sampled.
    #[test]
    fn measures_whole_rounds_over_real_sockets() {
        for mode in [ReceiverMode::Sleep, ReceiverMode::Busy] {
            let r = run(&args(mode)).unwrap();
            assert!(r.sends > 0, "{r:?}");
            assert_eq!(r.sends % 40, 0, "{r:?}");
            assert_eq!(r.frames, r.sends * 4);
            assert!(
                r.sender_cpu_ns > 0 && r.sender_us_per_frame() > 0.0,
                "{r:?}"
            );
        }
    }

    #[test]
    fn zero_counts_are_refused_by_name() {
        let mut a = args(ReceiverMode::Sleep);
        a.frames_per_send = 0;
        assert!(run(&a).unwrap_err().contains("--frames-per-send"));
    }
}

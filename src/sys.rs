//! Thin, safe wrappers around the few raw Linux syscalls the engine needs
//! outside the io_uring I/O drivers: CPU affinity (thread-per-core pinning),
//! `RLIMIT_NOFILE`, `/proc` introspection (open fds, RSS), the eventfd used to
//! wake a shard, the [`Waker`] that coalesces bursts of wake-ups into one
//! eventfd write, and SIGINT/SIGTERM shutdown handling.
//!
//! Everything here returns `io::Result` instead of panicking when a syscall
//! fails, and all `unsafe` is confined to this file so the rest of the engine
//! can stay safe code.

use std::fs;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{fence, AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// Largest CPU index representable in a `cpu_set_t`.
const CPU_SETSIZE: usize = libc::CPU_SETSIZE as usize;

fn proc_dir(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("/proc/{pid}"),
        None => "/proc/self".to_owned(),
    }
}

fn current_affinity() -> io::Result<libc::cpu_set_t> {
    // SAFETY: cpu_set_t is a plain bitmask struct; all-zero is a valid (empty) value.
    let mut set: libc::cpu_set_t = unsafe { mem::zeroed() };
    // SAFETY: `set` is a valid, writable cpu_set_t and we pass its exact size;
    // pid 0 means the calling thread.
    let rc = unsafe { libc::sched_getaffinity(0, mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(set)
}

/// Pin the calling thread to one CPU (`sched_setaffinity`).
///
/// Fails with `EINVAL` if `cpu` is out of range or not in the process's
/// allowed set (e.g. a container cpuset); see [`allowed_cpus`].
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    if cpu >= CPU_SETSIZE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cpu index {cpu} exceeds CPU_SETSIZE ({CPU_SETSIZE})"),
        ));
    }
    // SAFETY: all-zero is a valid empty cpu_set_t.
    let mut set: libc::cpu_set_t = unsafe { mem::zeroed() };
    // SAFETY: CPU_SET only writes a bit inside `set`; `cpu < CPU_SETSIZE` was
    // checked above so the bit is in range.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t and we pass its exact size; pid 0 is
    // the calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The CPU indices the calling thread may run on (`sched_getaffinity`), in
/// ascending order. Shard `i` should pin to `allowed_cpus()[i]`, not to `i`,
/// because a cpuset may not start at CPU 0.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    let set = current_affinity()?;
    Ok((0..CPU_SETSIZE)
        // SAFETY: CPU_ISSET only reads a bit of `set`; `cpu < CPU_SETSIZE`.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

/// Number of CPUs this process may run on (`sched_getaffinity` count),
/// falling back to `available_parallelism`, and finally to 1.
pub fn usable_cpus() -> usize {
    if let Ok(set) = current_affinity() {
        // SAFETY: CPU_COUNT only reads the bitmask of a valid cpu_set_t.
        let n = unsafe { libc::CPU_COUNT(&set) };
        if n > 0 {
            return n as usize;
        }
    }
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Current `RLIMIT_NOFILE` as `(soft, hard)`. `RLIM_INFINITY` is reported as
/// `u64::MAX`.
pub fn nofile_limit() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit struct.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((rlim_to_u64(lim.rlim_cur), rlim_to_u64(lim.rlim_max)))
}

/// `rlim_t` is 64-bit on the 64-bit targets ringcast runs on, but 32-bit on
/// some 32-bit libcs; keep `RLIM_INFINITY` mapped to `u64::MAX` either way.
#[allow(clippy::unnecessary_cast)]
fn rlim_to_u64(v: libc::rlim_t) -> u64 {
    if v == libc::RLIM_INFINITY {
        u64::MAX
    } else {
        v as u64
    }
}

/// Raise the `RLIMIT_NOFILE` soft limit to the hard limit, or to `want` if
/// that is lower; return the new soft limit.
///
/// Never lowers the soft limit: if the target is at or below the current soft
/// limit, nothing is changed and the current soft limit is returned.
pub fn raise_nofile_limit(want: Option<u64>) -> io::Result<u64> {
    let (soft, hard) = nofile_limit()?;
    let target = want.map_or(hard, |w| w.min(hard));
    if target <= soft {
        return Ok(soft);
    }
    let lim = libc::rlimit {
        rlim_cur: target as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    };
    // SAFETY: `lim` is a valid rlimit struct that outlives the call.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(nofile_limit()?.0)
}

/// Count of open fds of a process (entries of `/proc/<pid>/fd`); `None` means
/// this process.
///
/// For this process, the directory fd used to do the listing is not counted.
pub fn open_fd_count(pid: Option<u32>) -> io::Result<usize> {
    let is_self = pid.is_none_or(|p| p == std::process::id());
    let mut n = 0usize;
    for entry in fs::read_dir(format!("{}/fd", proc_dir(pid)))? {
        entry?;
        n += 1;
    }
    // The open ReadDir handle itself shows up in our own fd listing.
    Ok(if is_self { n.saturating_sub(1) } else { n })
}

/// VmRSS of a process in bytes, from `/proc/<pid>/status`; `None` means this
/// process.
pub fn rss_bytes(pid: Option<u32>) -> io::Result<u64> {
    let status = fs::read_to_string(format!("{}/status", proc_dir(pid)))?;
    parse_vmrss(&status).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "no parsable VmRSS line in /proc/<pid>/status (kernel thread or zombie?)",
        )
    })
}

/// Parse the `VmRSS:  1234 kB` line of a `/proc/<pid>/status` text into bytes.
fn parse_vmrss(status: &str) -> Option<u64> {
    let rest = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim();
    let mut parts = rest.split_whitespace();
    let value: u64 = parts.next()?.parse().ok()?;
    let mult = match parts.next() {
        Some("kB") => 1024,
        Some("mB") | Some("MB") => 1024 * 1024,
        Some("B") | None => 1,
        Some(_) => return None,
    };
    value.checked_mul(mult)
}

fn cvt(rc: libc::ssize_t) -> io::Result<usize> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as usize)
    }
}

/// Non-blocking, close-on-exec eventfd used to wake a shard.
#[derive(Debug)]
pub struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    /// Create a new eventfd with `EFD_NONBLOCK | EFD_CLOEXEC` and counter 0.
    pub fn new() -> io::Result<Self> {
        // SAFETY: eventfd takes no pointers; the return value is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a freshly created, valid fd that nothing else owns.
        Ok(Self {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Add 1 to the counter. `EAGAIN` (counter saturated) counts as success:
    /// the reader will be woken anyway.
    pub fn notify(&self) -> io::Result<()> {
        let one: u64 = 1;
        loop {
            // SAFETY: we pass a pointer to a live u64 and exactly its size;
            // the fd is owned by `self` and therefore open.
            let rc = unsafe {
                libc::write(
                    self.fd.as_raw_fd(),
                    (&one as *const u64).cast(),
                    mem::size_of::<u64>(),
                )
            };
            match cvt(rc) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    /// Read and reset the counter; `EAGAIN` (nothing pending) returns `Ok(0)`.
    pub fn drain(&self) -> io::Result<u64> {
        let mut value: u64 = 0;
        loop {
            // SAFETY: we pass a pointer to a live, writable u64 and exactly its
            // size; the fd is owned by `self` and therefore open.
            let rc = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    (&mut value as *mut u64).cast(),
                    mem::size_of::<u64>(),
                )
            };
            match cvt(rc) {
                Ok(_) => return Ok(value),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
                Err(e) => return Err(e),
            }
        }
    }

    /// The raw fd, e.g. to register a read with io_uring. Stays owned by `self`.
    pub fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsRawFd for EventFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Wake-up flag + eventfd that coalesces a burst of wake-ups into a single
/// eventfd write.
///
/// The flag means "the shard is awake, or a wake-up is already on its way, so
/// no eventfd write is needed". It starts cleared, so the very first `wake()`
/// writes.
///
/// # Protocol
///
/// Producer (any thread), after publishing work for the shard (pushing to its
/// queue):
/// 1. call [`wake`](Self::wake): a SeqCst fence, then if the flag is clear,
///    set it (`swap`) and, only if this caller was the one that flipped it,
///    write the eventfd. N wakes in a burst cost one write.
///
/// Owning shard, before blocking on the eventfd (io_uring wait):
/// 1. [`arm_sleep`](Self::arm_sleep): clear the flag, then a SeqCst fence;
/// 2. re-check its queues one last time; if work is found, call
///    [`awake`](Self::awake) and do not block;
/// 3. otherwise block until the eventfd is readable;
/// 4. after waking: [`awake`](Self::awake) (set the flag, so producers stop
///    writing while the shard is running) and [`drain`](Self::drain).
///
/// # The race it prevents
///
/// Without step 1 + fence, a producer could push its item *after* the shard's
/// final queue check but observe a stale "set" flag and skip the write: the
/// shard would then sleep with work queued (a lost wake-up). The two SeqCst
/// fences (one in `arm_sleep` after clearing, one in `wake` before reading)
/// form a Dekker pair: either the shard's re-check sees the pushed item, or the
/// producer sees the cleared flag and writes the eventfd. Spurious wake-ups
/// (an eventfd write the shard did not need) are possible and harmless.
#[derive(Debug)]
pub struct Waker {
    flag: AtomicBool,
    efd: EventFd,
    writes: AtomicU64,
}

impl Waker {
    /// New waker with the flag cleared and a fresh eventfd.
    pub fn new() -> io::Result<Self> {
        Ok(Self {
            flag: AtomicBool::new(false),
            efd: EventFd::new()?,
            writes: AtomicU64::new(0),
        })
    }

    /// Wake the shard; writes the eventfd only if no wake-up is already
    /// pending and the shard is not known to be awake.
    pub fn wake(&self) -> io::Result<()> {
        // Pairs with the fence in `arm_sleep`: orders the caller's prior
        // publication of work before our read of the flag.
        fence(Ordering::SeqCst);
        // Cheap early-out for bursts: no RMW while the flag is already set.
        if self.flag.load(Ordering::Relaxed) {
            return Ok(());
        }
        if !self.flag.swap(true, Ordering::AcqRel) {
            self.writes.fetch_add(1, Ordering::Relaxed);
            self.efd.notify()?;
        }
        Ok(())
    }

    /// Called by the owning shard just before it blocks: clear the flag, then
    /// a SeqCst fence. The shard must re-check its queues after this.
    pub fn arm_sleep(&self) {
        self.flag.store(false, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    /// Called by the owning shard after it wakes (or decides not to sleep):
    /// set the flag so producers skip the eventfd write while it runs.
    pub fn awake(&self) {
        self.flag.store(true, Ordering::Release);
    }

    /// The eventfd to wait on (e.g. an io_uring read or poll).
    pub fn fd(&self) -> RawFd {
        self.efd.as_raw_fd()
    }

    /// Reset the eventfd counter; returns the drained value (0 if none).
    pub fn drain(&self) -> io::Result<u64> {
        self.efd.drain()
    }

    /// How many eventfd writes `wake()` has issued (Relaxed counter; for tests
    /// and metrics).
    pub fn wakes_written(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }
}

/// Set by the signal handler; read by [`ShutdownSignal::requested`].
static SHUTDOWN_REQUESTED: AtomicBool = AtomicBool::new(false);
/// Write end of the self-pipe, or -1 before installation. Read by the handler.
static SHUTDOWN_PIPE_WR: AtomicI32 = AtomicI32::new(-1);
static SHUTDOWN: OnceLock<ShutdownSignal> = OnceLock::new();
static SHUTDOWN_INSTALL: Mutex<()> = Mutex::new(());
static SHUTDOWN_HANDLERS_INSTALLED: AtomicBool = AtomicBool::new(false);

/// Process-wide SIGINT/SIGTERM state, obtained from
/// [`install_shutdown_signals`].
///
/// The handler sets a global flag and writes one byte to a self-pipe. The pipe
/// is never drained, so once a signal has arrived its read end stays readable
/// forever: every waiter (blocking [`wait`](Self::wait) or an io_uring poll on
/// [`as_raw_fd`](Self::as_raw_fd)) sees it.
#[derive(Debug)]
pub struct ShutdownSignal {
    read: OwnedFd,
    _write: OwnedFd,
}

impl ShutdownSignal {
    /// True once SIGINT or SIGTERM has been received.
    pub fn requested(&self) -> bool {
        SHUTDOWN_REQUESTED.load(Ordering::SeqCst)
    }

    /// Block the calling thread until SIGINT/SIGTERM arrives (returns at once
    /// if one already has).
    pub fn wait(&self) -> io::Result<()> {
        loop {
            if self.requested() {
                return Ok(());
            }
            let mut pfd = libc::pollfd {
                fd: self.read.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: `pfd` is one valid, writable pollfd and we pass count 1;
            // the fd is owned by `self` (a 'static) and stays open.
            let rc = unsafe { libc::poll(&mut pfd, 1, -1) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            // Readable (or EINTR): loop and re-check the flag. The handler
            // sets the flag before writing the pipe, so readable implies set.
        }
    }

    /// Read end of the self-pipe: becomes (and stays) readable once shutdown
    /// is requested. Event loops can poll it (e.g. io_uring `PollAdd`). Do not
    /// read from it, or other waiters may miss the wake-up.
    pub fn as_raw_fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }
}

extern "C" fn on_shutdown_signal(_sig: libc::c_int) {
    // Only async-signal-safe operations: atomics, errno save/restore, write(2).
    // SAFETY: __errno_location returns this thread's errno slot, always valid.
    let saved_errno = unsafe { *libc::__errno_location() };
    SHUTDOWN_REQUESTED.store(true, Ordering::SeqCst);
    let fd = SHUTDOWN_PIPE_WR.load(Ordering::SeqCst);
    if fd >= 0 {
        let byte: u8 = 1;
        // SAFETY: write(2) is async-signal-safe; `byte` is live for the call;
        // `fd` is the non-blocking pipe write end owned by the 'static
        // ShutdownSignal, which is never closed. A full pipe (EAGAIN) is fine:
        // it is already readable.
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
    // SAFETY: as above; restores errno so the interrupted code is unaffected.
    unsafe { *libc::__errno_location() = saved_errno };
}

/// Install SIGINT/SIGTERM handlers (once per process; later calls return the
/// same instance) and return the process-wide [`ShutdownSignal`].
///
/// Handlers are installed with `SA_RESTART`, so other blocking syscalls are
/// restarted rather than failing with `EINTR`.
pub fn install_shutdown_signals() -> io::Result<&'static ShutdownSignal> {
    let _guard = SHUTDOWN_INSTALL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(s) = SHUTDOWN.get() {
        // A previous call may have created the pipe but failed in sigaction:
        // reuse the pipe and retry installing the handlers.
        if !SHUTDOWN_HANDLERS_INSTALLED.load(Ordering::SeqCst) {
            install_handlers()?;
            SHUTDOWN_HANDLERS_INSTALLED.store(true, Ordering::SeqCst);
        }
        return Ok(s);
    }

    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a writable array of two c_ints, as pipe2 requires.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both fds are valid and owned by nobody else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    SHUTDOWN_PIPE_WR.store(write.as_raw_fd(), Ordering::SeqCst);
    // Publish before installing handlers so the pipe fd outlives any handler
    // invocation (the OnceLock is never dropped).
    let signal = SHUTDOWN.get_or_init(|| ShutdownSignal {
        read,
        _write: write,
    });

    install_handlers()?;
    SHUTDOWN_HANDLERS_INSTALLED.store(true, Ordering::SeqCst);
    Ok(signal)
}

fn install_handlers() -> io::Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: all-zero is a valid sigaction (empty mask, no flags).
        let mut sa: libc::sigaction = unsafe { mem::zeroed() };
        sa.sa_sigaction = on_shutdown_signal as *const () as libc::sighandler_t;
        sa.sa_flags = libc::SA_RESTART;
        // SAFETY: `sa.sa_mask` is a valid sigset_t inside `sa`.
        unsafe { libc::sigemptyset(&mut sa.sa_mask) };
        // SAFETY: `sa` is fully initialised and its handler is an
        // `extern "C" fn(c_int)` that only does async-signal-safe work; a
        // null old-action pointer is allowed.
        let rc = unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The peer address of a connected socket (getpeername), for opt-in logging.
pub fn peer_addr(fd: RawFd) -> io::Result<std::net::SocketAddr> {
    // SAFETY: fd is borrowed only for the duration of this call and not closed by it:
    // ManuallyDrop keeps socket2 from closing a descriptor it does not own.
    let socket = mem::ManuallyDrop::new(unsafe { socket2::Socket::from_raw_fd(fd) });
    socket
        .peer_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not an IP socket"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eventfd_notify_drain_round_trip() {
        let efd = EventFd::new().unwrap();
        assert_eq!(efd.drain().unwrap(), 0, "fresh eventfd is empty");
        efd.notify().unwrap();
        efd.notify().unwrap();
        efd.notify().unwrap();
        assert_eq!(efd.drain().unwrap(), 3);
        assert_eq!(efd.drain().unwrap(), 0, "drain resets the counter");
    }

    #[test]
    fn waker_coalesces_bursts() {
        let w = Waker::new().unwrap();
        for _ in 0..1000 {
            w.wake().unwrap();
        }
        assert_eq!(w.wakes_written(), 1);
        assert_eq!(w.drain().unwrap(), 1);

        w.arm_sleep();
        w.wake().unwrap();
        w.wake().unwrap();
        assert_eq!(w.wakes_written(), 2, "a wake after arm_sleep writes again");
        assert_eq!(w.drain().unwrap(), 1);

        // While the shard is awake, wakes are free.
        w.awake();
        w.wake().unwrap();
        assert_eq!(w.wakes_written(), 2);
        assert_eq!(w.drain().unwrap(), 0);
    }

    #[test]
    fn waker_cross_thread_wakes_sleeper() {
        // A real sleeper: blocks in poll() on the eventfd, woken from another thread.
        let w = std::sync::Arc::new(Waker::new().unwrap());
        w.arm_sleep();
        let w2 = w.clone();
        let t = std::thread::spawn(move || w2.wake());
        let mut pfd = libc::pollfd {
            fd: w.fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, count 1; the fd is kept open by `w`.
        let rc = unsafe { libc::poll(&mut pfd, 1, 5_000) };
        assert_eq!(rc, 1, "sleeper was not woken");
        w.awake();
        t.join().unwrap().unwrap();
        assert_eq!(w.drain().unwrap(), 1);
    }

    #[test]
    fn pin_current_thread_restricts_affinity() {
        // CPU 0 on an unrestricted machine; the first allowed CPU under a cpuset.
        let cpu = allowed_cpus().unwrap()[0];
        let seen = std::thread::spawn(move || {
            pin_current_thread(cpu)?;
            allowed_cpus()
        })
        .join()
        .unwrap()
        .unwrap();
        assert_eq!(seen, vec![cpu]);
    }

    #[test]
    fn pin_out_of_range_is_an_error() {
        assert!(pin_current_thread(CPU_SETSIZE).is_err());
    }

    #[test]
    fn usable_cpus_matches_affinity() {
        assert!(usable_cpus() >= 1);
        assert_eq!(usable_cpus(), allowed_cpus().unwrap().len());
    }

    #[test]
    fn open_fd_count_goes_up_by_one() {
        // Other tests run in parallel threads and may open/close fds; retry a
        // few times until we observe a quiet window.
        for _ in 0..50 {
            let before = open_fd_count(None).unwrap();
            let f = fs::File::open("/proc/self/status").unwrap();
            let during = open_fd_count(None).unwrap();
            drop(f);
            let after = open_fd_count(None).unwrap();
            if during == before + 1 && after == before {
                return;
            }
        }
        panic!("open_fd_count never observed a +1 change");
    }

    #[test]
    fn open_fd_count_by_pid_works() {
        assert!(open_fd_count(Some(std::process::id())).unwrap() >= 3);
    }

    #[test]
    fn rss_is_positive() {
        assert!(rss_bytes(None).unwrap() > 0);
        assert!(rss_bytes(Some(std::process::id())).unwrap() > 0);
    }

    #[test]
    fn vmrss_parser() {
        let text = "Name:\tx\nVmPeak:\t  9 kB\nVmRSS:\t    1234 kB\nThreads:\t1\n";
        assert_eq!(parse_vmrss(text), Some(1234 * 1024));
        assert_eq!(parse_vmrss("Name:\tkthreadd\n"), None);
        assert_eq!(parse_vmrss("VmRSS:\tgarbage kB\n"), None);
    }

    #[test]
    fn raise_nofile_limit_never_lowers() {
        let (soft, hard) = nofile_limit().unwrap();
        assert!(soft <= hard);
        let new = raise_nofile_limit(None).unwrap();
        assert!(new >= soft);
        assert_eq!(new, hard.max(soft));
        // Asking for less than the current soft limit is a no-op.
        assert_eq!(raise_nofile_limit(Some(0)).unwrap(), new);
    }
}

/// Give the allocator's free pages back to the kernel: glibc keeps the freed small
/// chunks of a thread's arena resident, so the RSS a burst of traffic allocated would
/// otherwise stay after it. A no-op on other C libraries. Costs a walk over the
/// arenas: call it when traffic stops, never per operation.
pub fn return_freed_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only walks the allocator's own arenas; no pointer is passed.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Calls [`return_freed_memory`] once a shard's sends stop: checked at most once per
/// `period`, it trims when a period with sends is followed by one without.
#[derive(Debug)]
pub struct IdleTrim {
    period: std::time::Duration,
    last_check: std::time::Instant,
    sends: usize,
    busy: bool,
}

impl IdleTrim {
    /// A trimmer checking every `period`.
    pub fn new(period: std::time::Duration) -> Self {
        IdleTrim {
            period,
            last_check: std::time::Instant::now(),
            sends: 0,
            busy: false,
        }
    }

    /// Count one send.
    pub fn sent(&mut self) {
        self.sends += 1;
    }

    /// Call when the loop is about to wait: trims if the traffic just stopped.
    pub fn tick(&mut self) {
        let now = std::time::Instant::now();
        if now.duration_since(self.last_check) < self.period {
            return;
        }
        self.last_check = now;
        if self.busy && self.sends == 0 {
            return_freed_memory();
        }
        self.busy = self.sends > 0;
        self.sends = 0;
    }
}

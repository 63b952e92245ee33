//! Thin wrappers over the few Linux facilities the generator needs: the monotonic clock,
//! RLIMIT_NOFILE, getrusage and the thread CPU clock, CPU pinning, eventfd and a tiny PRNG.
//!
//! Kept in one place so the `unsafe` FFI calls are few, small and easy to audit.

use std::io;

/// Nanoseconds on CLOCK_MONOTONIC (the clock the wire protocol stamps messages with).
pub fn now_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// CPU nanoseconds of the calling thread on CLOCK_THREAD_CPUTIME_ID (user + system).
///
/// Unlike [`thread_cpu`] (getrusage), which only counts the running slice once the
/// scheduler next accounts it (at a tick or a switch), this includes the time up to the
/// call, so differences over spans shorter than a tick are exact.
pub fn thread_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; both clocks used here always exist on
    // Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Raises the soft RLIMIT_NOFILE to the hard limit and returns the new soft limit.
pub fn raise_nofile_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit to write into.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: `lim` is a valid rlimit; raising soft up to hard needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every libc
    Ok(lim.rlim_cur as u64)
}

/// File descriptors the process needs beyond its sockets (stdio, epoll, eventfds, files).
pub const FD_SLACK: u64 = 64;

/// Raises RLIMIT_NOFILE and fails with a clear message if `sockets` cannot fit.
pub fn ensure_fd_budget(sockets: u64, threads: usize) -> Result<u64, String> {
    let limit = raise_nofile_limit().map_err(|e| format!("cannot raise RLIMIT_NOFILE: {e}"))?;
    let need = sockets + FD_SLACK + 4 * threads as u64;
    if need > limit {
        return Err(format!(
            "{sockets} sockets need about {need} file descriptors but RLIMIT_NOFILE is \
             {limit} (hard limit); lower the connection count or raise the hard limit \
             (ulimit -Hn / LimitNOFILE) before running"
        ));
    }
    Ok(limit)
}

/// CPU time consumed, in nanoseconds (user, system).
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuTime {
    /// User-mode CPU nanoseconds.
    pub user_ns: u64,
    /// Kernel-mode CPU nanoseconds.
    pub sys_ns: u64,
}

impl CpuTime {
    /// User + system.
    pub fn total_ns(&self) -> u64 {
        self.user_ns + self.sys_ns
    }

    /// Difference `self - earlier`.
    pub fn since(&self, earlier: &CpuTime) -> CpuTime {
        CpuTime {
            user_ns: self.user_ns.saturating_sub(earlier.user_ns),
            sys_ns: self.sys_ns.saturating_sub(earlier.sys_ns),
        }
    }
}

fn rusage(who: libc::c_int) -> CpuTime {
    // SAFETY: all-zero is a valid `rusage`.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is valid and writable; `who` is RUSAGE_SELF or RUSAGE_THREAD.
    unsafe { libc::getrusage(who, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1_000;
    CpuTime {
        user_ns: tv(ru.ru_utime),
        sys_ns: tv(ru.ru_stime),
    }
}

/// CPU time of the whole process.
pub fn process_cpu() -> CpuTime {
    rusage(libc::RUSAGE_SELF)
}

/// CPU time of the calling thread.
pub fn thread_cpu() -> CpuTime {
    rusage(libc::RUSAGE_THREAD)
}

/// Pins the calling thread to one CPU.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    // SAFETY: all-zero is a valid (empty) cpu_set_t.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "cpu out of range",
        ));
    }
    // SAFETY: CPU_SET writes within `set`; `cpu` < CPU_SETSIZE was checked above.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size we pass; 0 means the calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A non-blocking eventfd used to wake a worker's epoll loop from another thread.
pub struct EventFd(pub std::os::fd::OwnedFd);

impl EventFd {
    /// Creates a non-blocking, close-on-exec eventfd.
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain syscall; the result is checked below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        Ok(EventFd(unsafe {
            <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd)
        }))
    }

    /// Raw descriptor.
    pub fn raw(&self) -> libc::c_int {
        std::os::fd::AsRawFd::as_raw_fd(&self.0)
    }

    /// Increments the counter (wakes a poller). Errors (counter full) are harmless.
    pub fn notify(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64 to our own eventfd.
        unsafe { libc::write(self.raw(), (&one as *const u64).cast(), 8) };
    }

    /// Resets the counter after a wake-up.
    pub fn drain(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a valid u64 from our own non-blocking eventfd.
        unsafe { libc::read(self.raw(), (&mut v as *mut u64).cast(), 8) };
    }
}

/// xorshift64* — masks and handshake keys only need to be unpredictable-ish, not secure.
pub struct Rng(u64);

impl Rng {
    /// Seeds from the clock, the thread id and a salt.
    pub fn new(salt: u64) -> Self {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() } as u64;
        let mut s = now_ns() ^ tid.rotate_left(32) ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        if s == 0 {
            s = 0x1234_5678_9abc_def1;
        }
        Rng(s)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Four random bytes (a frame mask).
    pub fn mask(&mut self) -> [u8; 4] {
        (self.next_u64() as u32).to_ne_bytes()
    }

    /// Sixteen random bytes (a handshake key).
    pub fn bytes16(&mut self) -> [u8; 16] {
        let a = self.next_u64().to_ne_bytes();
        let b = self.next_u64().to_ne_bytes();
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&a);
        out[8..].copy_from_slice(&b);
        out
    }
}

/// Whether stderr is a terminal (decides progress bar vs plain lines).
pub fn stderr_is_tty() -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(2) == 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_is_monotonic() {
        let a = now_ns();
        let b = now_ns();
        assert!(b >= a);
    }

    #[test]
    fn nofile_raise_is_idempotent() {
        let a = raise_nofile_limit().unwrap();
        let b = raise_nofile_limit().unwrap();
        assert_eq!(a, b);
        assert!(ensure_fd_budget(10, 1).is_ok());
        let err = ensure_fd_budget(u64::MAX / 2, 1).unwrap_err();
        assert!(err.contains("RLIMIT_NOFILE"), "{err}");
    }

    #[test]
    fn rng_varies() {
        let mut r = Rng::new(1);
        let a = r.next_u64();
        let b = r.next_u64();
        assert_ne!(a, b);
    }

    #[test]
    fn cpu_time_grows() {
        let a = thread_cpu();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        let b = thread_cpu();
        assert!(b.total_ns() >= a.total_ns());
    }

    #[test]
    fn thread_cpu_clock_counts_short_spans() {
        // 200 spans far shorter than a scheduler tick that make up most of the loop:
        // their sum must be most of the loop's CPU. A tick-granular clock (getrusage)
        // would see most spans as 0.
        let start = thread_cpu_ns();
        let mut spans = 0u64;
        let mut x = 0u64;
        for _ in 0..200 {
            let a = thread_cpu_ns();
            for i in 0..20_000u64 {
                x = x.wrapping_add(std::hint::black_box(i * i));
            }
            spans += thread_cpu_ns() - a;
        }
        std::hint::black_box(x);
        let whole = thread_cpu_ns() - start;
        assert!(
            whole > 0 && spans * 2 >= whole,
            "spans {spans} ns of {whole} ns"
        );
    }
}

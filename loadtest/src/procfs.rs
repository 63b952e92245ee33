//! Reads a server process's resource use from `/proc/PID`: open file descriptors
//! (`/proc/PID/fd`) and resident memory (`VmRSS` in `/proc/PID/status`).
//!
//! Used with `--server-pid` to report RSS per connection and to hunt fd leaks across
//! connect/close cycles.

use serde::Serialize;

/// One sample of a server's resource use.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct ServerSample {
    /// Resident set size in KiB (`VmRSS`).
    pub rss_kib: u64,
    /// Number of entries in `/proc/PID/fd`.
    pub fds: u64,
}

/// Samples `pid`; `None` if the process is gone or unreadable.
pub fn sample(pid: u32) -> Option<ServerSample> {
    Some(ServerSample {
        rss_kib: rss_kib(pid)?,
        fds: fd_count(pid)?,
    })
}

/// `VmRSS` of `pid` in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vmrss(&status)
}

/// Extracts `VmRSS` (KiB) from the text of `/proc/PID/status`.
pub fn parse_vmrss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Open descriptor count of `pid`.
pub fn fd_count(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vmrss() {
        let s = "Name:\tx\nVmPeak:\t  9000 kB\nVmRSS:\t    1234 kB\nThreads:\t1\n";
        assert_eq!(parse_vmrss(s), Some(1234));
        assert_eq!(parse_vmrss("Name: x\n"), None);
    }

    #[test]
    fn samples_self() {
        let s = sample(std::process::id()).unwrap();
        assert!(s.rss_kib > 0);
        assert!(s.fds >= 3);
        assert!(sample(u32::MAX - 1).is_none());
    }
}

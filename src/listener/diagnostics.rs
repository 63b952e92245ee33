//! The text of a failed bind's diagnostics: the failing socket's options read back, the
//! listeners on the port (`/proc/net/tcp{,6}`, marking this process's own sockets), the
//! open fd count and `RLIMIT_NOFILE`. Every piece degrades on its own to
//! `unavailable: <why>`.

use std::fmt;
use std::fs;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use socket2::Socket;

use super::proc_net::{own_socket_inodes, parse_proc_net_tcp, TCP_LISTEN};

fn unavailable(e: impl fmt::Display) -> String {
    format!("unavailable: {e}")
}

fn fmt_limit(v: u64) -> String {
    // crate::sys reports RLIM_INFINITY as u64::MAX.
    if v == u64::MAX {
        "unlimited".to_owned()
    } else {
        v.to_string()
    }
}

/// Build the diagnostics text. Every piece is independent and falls back to
/// an inline `unavailable: <why>`; nothing here can fail or panic.
pub(super) fn gather(addr: SocketAddr, sock: Option<&Socket>) -> String {
    let mut out = String::new();
    out.push_str(&format!("    address: {addr}\n"));

    match sock {
        Some(s) => {
            let ra = s
                .reuse_address()
                .map_or_else(unavailable, |v| v.to_string());
            let rp = s.reuse_port().map_or_else(unavailable, |v| v.to_string());
            out.push_str(&format!(
                "    failing fd {}: SO_REUSEADDR={ra} SO_REUSEPORT={rp}\n",
                s.as_raw_fd()
            ));
        }
        None => out.push_str(
            "    SO_REUSEADDR/SO_REUSEPORT: unavailable: no socket (socket() itself failed)\n",
        ),
    }

    out.push_str(&format!(
        "    listeners on port {} (/proc/net/tcp, /proc/net/tcp6, state 0A):\n",
        addr.port()
    ));
    let own = own_socket_inodes().unwrap_or_default();
    let mut found = 0usize;
    for path in ["/proc/net/tcp", "/proc/net/tcp6"] {
        match fs::read_to_string(path) {
            Ok(text) => {
                for row in parse_proc_net_tcp(&text)
                    .into_iter()
                    .filter(|r| r.state == TCP_LISTEN && r.local.port() == addr.port())
                {
                    found += 1;
                    let holder = match own.get(&row.inode) {
                        Some(fd) => format!(" (this process, fd {fd})"),
                        None => String::new(),
                    };
                    out.push_str(&format!(
                        "      {} uid={} inode={}{holder}\n",
                        row.local, row.uid, row.inode
                    ));
                }
            }
            Err(e) => out.push_str(&format!("      {path}: {}\n", unavailable(e))),
        }
    }
    if found == 0 {
        out.push_str("      none found\n");
    }

    let fds = crate::sys::open_fd_count(None).map_or_else(unavailable, |n| n.to_string());
    out.push_str(&format!("    open fds: {fds}\n"));
    let lim = crate::sys::nofile_limit().map_or_else(unavailable, |(soft, hard)| {
        format!("soft={} hard={}", fmt_limit(soft), fmt_limit(hard))
    });
    out.push_str(&format!("    RLIMIT_NOFILE: {lim}\n"));
    out
}

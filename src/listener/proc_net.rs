//! `/proc` readers for the bind diagnostics: rows of `/proc/net/tcp` and
//! `/proc/net/tcp6` (see the kernel's `Documentation/networking/proc_net_tcp.rst`), and
//! the inodes of this process's own sockets from `/proc/self/fd`.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::RawFd;

/// `st` value of a listening socket in `/proc/net/tcp`.
pub const TCP_LISTEN: u8 = 0x0A;

/// One parsed row of `/proc/net/tcp` or `/proc/net/tcp6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcTcpRow {
    pub local: SocketAddr,
    /// Kernel TCP state (`0x0A` = LISTEN).
    pub state: u8,
    pub uid: u32,
    pub inode: u64,
}

/// Parse the text of `/proc/net/tcp` or `/proc/net/tcp6`. The header and any
/// malformed row are skipped.
///
/// Addresses are printed by the kernel as the raw in-memory 32-bit words in
/// hex, i.e. little-endian per 32-bit word on the (little-endian) hosts
/// ringcast targets: IPv4 is one word, IPv6 four. Ports are plain hex in host
/// order.
pub fn parse_proc_net_tcp(text: &str) -> Vec<ProcTcpRow> {
    text.lines().filter_map(parse_row).collect()
}

fn parse_row(line: &str) -> Option<ProcTcpRow> {
    let f: Vec<&str> = line.split_whitespace().collect();
    // sl local rem st tx:rx tr:tm retrnsmt uid timeout inode ...
    if f.len() < 10 || !f[0].ends_with(':') {
        return None;
    }
    let local = parse_hex_addr(f[1])?;
    let state = u8::from_str_radix(f[3], 16).ok()?;
    let uid = f[7].parse().ok()?;
    let inode = f[9].parse().ok()?;
    Some(ProcTcpRow {
        local,
        state,
        uid,
        inode,
    })
}

fn parse_hex_addr(s: &str) -> Option<SocketAddr> {
    let (ip, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let w = ip.get(i * 8..i * 8 + 8)?;
        Some(u32::from_str_radix(w, 16).ok()?.to_le_bytes())
    };
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Inode of the socket behind `fd`, from the `/proc/self/fd/<fd>` link
/// (`socket:[INODE]`).
pub(super) fn socket_inode_of(fd: RawFd) -> io::Result<u64> {
    let link = fs::read_link(format!("/proc/self/fd/{fd}"))?;
    let link = link.to_string_lossy();
    link.strip_prefix("socket:[")
        .and_then(|s| s.strip_suffix(']'))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("not a socket: {link}")))
}

/// Map of socket inode → fd for every socket this process holds.
pub(super) fn own_socket_inodes() -> io::Result<HashMap<u64, RawFd>> {
    let mut map = HashMap::new();
    for entry in fs::read_dir("/proc/self/fd")? {
        let Ok(entry) = entry else { continue };
        let Some(fd) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        if let Ok(inode) = socket_inode_of(fd) {
            map.insert(inode, fd);
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP4: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:2329 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 123456 1 0000000000000000 100 0 0 10 0
   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 999 1 0000000000000000 100 0 0 10 0
   2: 0100007F:2329 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 777 1 0000000000000000 20 4 30 10 -1
   3: garbage
";

    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0000000000000000FFFF00000100007F:1F91 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000   33        0 4343 1 0000000000000000 100 0 0 10 0
   2: B80D0120000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5 1 0000000000000000 100 0 0 10 0
";

    #[test]
    fn parses_proc_net_tcp_v4() {
        let rows = parse_proc_net_tcp(TCP4);
        assert_eq!(rows.len(), 3, "header and garbage rows are skipped");
        assert_eq!(
            rows[0],
            ProcTcpRow {
                local: "127.0.0.1:9001".parse().unwrap(),
                state: TCP_LISTEN,
                uid: 1000,
                inode: 123456,
            }
        );
        assert_eq!(rows[1].local, "0.0.0.0:22".parse().unwrap());
        assert_eq!((rows[1].uid, rows[1].inode), (0, 999));
        assert_eq!(rows[2].state, 0x01, "ESTABLISHED row parsed, not LISTEN");
    }

    #[test]
    fn parses_proc_net_tcp_v6() {
        let rows = parse_proc_net_tcp(TCP6);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].local, "[::1]:8080".parse().unwrap());
        assert_eq!((rows[0].uid, rows[0].inode), (1000, 4242));
        assert_eq!(rows[1].local, "[::ffff:127.0.0.1]:8081".parse().unwrap());
        assert_eq!(rows[2].local, "[2001:db8::1]:80".parse().unwrap());
        assert!(rows.iter().all(|r| r.state == TCP_LISTEN));
    }

    #[test]
    fn parser_rejects_malformed_addresses() {
        assert_eq!(parse_hex_addr("0100007F"), None);
        assert_eq!(parse_hex_addr("0100007:2329"), None);
        assert_eq!(parse_hex_addr("0100007G:2329"), None);
        assert_eq!(parse_hex_addr("0100007F:FFFFF"), None);
        assert!(parse_proc_net_tcp("").is_empty());
    }

    #[test]
    fn parser_reads_this_machine() {
        // Real /proc text must parse without losing rows that look valid.
        let text = fs::read_to_string("/proc/net/tcp").unwrap();
        let data_lines = text.lines().skip(1).filter(|l| !l.trim().is_empty());
        assert_eq!(parse_proc_net_tcp(&text).len(), data_lines.count());
    }
}

//! [`DriverConfig`]: the I/O backends' own settings (socket buffers, io_uring sizes,
//! TLS), handed to [`super::run`] by the server.

use super::tls::TlsConfig;

/// Settings of the I/O drivers (both backends unless noted).
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// io_uring: submission queue entries per shard ring (power of two, >= 64).
    pub uring_entries: u32,
    /// io_uring: buffers in each shard's provided buffer ring (power of two, <= 32768).
    pub recv_buffers: u16,
    /// Size of each receive buffer in bytes (io_uring ring buffers; epoll's scratch
    /// buffer is at least 64 KiB), 512 B ..= 1 MiB.
    pub recv_buffer_size: usize,
    /// SO_SNDBUF of accepted sockets in bytes (None: kernel autotuning, up to
    /// `net.ipv4.tcp_wmem` max — about 4 MiB a slow socket can pin beyond the queue cap).
    pub socket_send_buffer: Option<usize>,
    /// Serve `wss://`: every accepted connection starts with a TLS handshake (cargo
    /// feature `tls`). None: plain `ws://`.
    pub tls: Option<TlsConfig>,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            uring_entries: 4096,
            recv_buffers: 1024,
            recv_buffer_size: 4096,
            socket_send_buffer: None,
            tls: None,
        }
    }
}

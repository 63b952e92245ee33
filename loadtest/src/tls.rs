//! TLS for `wss://` URLs (rustls, `ring` provider, buffered API).
//!
//! [`TlsClient`] is built once per run: one `Arc<ClientConfig>` that trusts only the
//! certificates in `--tls-ca`, plus the server name to verify (the URL's host: an IP
//! address matches an IP SAN, a name a DNS SAN). Each `wss://` connection gets a
//! [`Session`] that sits between the socket and the WebSocket codec: encoded frames go
//! in as plaintext ([`Session::queue`]) and leave as records ([`Session::flush`]);
//! ciphertext read from the socket is fed in ([`Session::decrypt`]) and the plaintext
//! is copied out into the event loop's scratch buffer ([`Session::take_plaintext`]),
//! where the usual in-place frame parser runs. Plain `ws://` connections have no
//! session and never touch this module.

use std::io::{self, IoSlice, Read, Write};
use std::os::fd::RawFd;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

use crate::cli::CommonArgs;

/// Most plaintext one TLS record carries (2^14 bytes, RFC 8446 §5.1).
pub const MAX_RECORD_PLAINTEXT: usize = 16 * 1024;

/// What every `wss://` connection of a run shares.
#[derive(Clone, Debug)]
pub struct TlsClient {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
}

impl TlsClient {
    /// The run's TLS set-up from `--url` and `--tls-ca`: `None` for `ws://`, an error
    /// (for the report) when `wss://` has no usable CA file, `--tls-ca` comes with
    /// `ws://`, or several URLs mix schemes or (wss://) host names.
    pub fn from_args(common: &CommonArgs) -> Result<Option<TlsClient>, String> {
        let url = &common.urls[0];
        if common.urls.iter().any(|u| u.tls != url.tls) {
            return Err("--url: mixed ws:// and wss:// URLs".into());
        }
        if url.tls && common.urls.iter().any(|u| u.server_name != url.server_name) {
            return Err("--url: several wss:// URLs must share one host name".into());
        }
        match (url.tls, &common.tls_ca) {
            (false, None) => Ok(None),
            (false, Some(_)) => Err("--tls-ca is only used with wss:// URLs".into()),
            (true, None) => Err(
                "wss:// needs --tls-ca FILE (PEM with the CA or the server's self-signed \
                 certificate; `ringcast-load cert` makes one)"
                    .into(),
            ),
            (true, Some(ca)) => TlsClient::new(ca, &url.server_name).map(Some),
        }
    }

    /// Trusts the certificates in the PEM file `ca` and verifies `server_name`.
    pub fn new(ca: &Path, server_name: &str) -> Result<TlsClient, String> {
        let roots = load_roots(ca)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS set-up: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let server_name = ServerName::try_from(server_name.to_string())
            .map_err(|e| format!("{server_name:?} is not a valid TLS server name: {e}"))?;
        Ok(TlsClient {
            config: Arc::new(config),
            server_name,
        })
    }

    /// A new client session (its ClientHello is queued at once).
    pub fn session(&self) -> Result<Session, rustls::Error> {
        let mut c = ClientConnection::new(self.config.clone(), self.server_name.clone())?;
        // The generator bounds what it has in flight itself (like the plain write
        // buffer, which has no cap either); a rustls cap would turn a full buffer into
        // a short write.
        c.set_buffer_limit(None);
        Ok(Session(c))
    }
}

/// Reads the trust anchors from a PEM file; every error names the file.
pub fn load_roots(path: &Path) -> Result<RootCertStore, String> {
    let p = path.display();
    let pem = std::fs::read(path).map_err(|e| format!("--tls-ca {p}: cannot read: {e}"))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("--tls-ca {p}: bad PEM: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("--tls-ca {p}: not a usable certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "--tls-ca {p}: no certificate found (expected PEM \"BEGIN CERTIFICATE\" blocks)"
        ));
    }
    Ok(roots)
}

/// One connection's TLS state.
pub struct Session(ClientConnection);

impl Session {
    /// Queues plaintext (encrypted at once after the handshake, held until then).
    pub fn queue(&mut self, plaintext: &[u8]) -> io::Result<()> {
        self.0.writer().write_all(plaintext)
    }

    /// Whether records are waiting to be written to the socket.
    pub fn wants_write(&self) -> bool {
        self.0.wants_write()
    }

    /// Writes queued records to `fd` until none is left (`Ok`) or the socket is full
    /// (`WouldBlock`); `calls` counts the send syscalls.
    pub fn flush(&mut self, fd: RawFd, calls: &mut u64) -> io::Result<()> {
        let mut sock = SockWriter { fd, calls };
        while self.0.wants_write() {
            match self.0.write_tls(&mut sock) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Feeds ciphertext from the front of `input` (advancing it) and processes the
    /// records it completes. The error is rustls' (a bad certificate, a bad record...).
    pub fn decrypt(&mut self, input: &mut &[u8]) -> Result<(), String> {
        let before = input.len();
        self.0.read_tls(input).map_err(|e| e.to_string())?;
        if input.len() == before {
            // After the peer's close_notify rustls takes nothing more: drop the rest.
            *input = &[];
        }
        self.0.process_new_packets().map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Copies decrypted plaintext into `out`; returns how much (0: none pending, or
    /// the peer sent close_notify — the TCP end follows and is handled as usual).
    pub fn take_plaintext(&mut self, out: &mut [u8]) -> usize {
        self.0.reader().read(out).unwrap_or(0)
    }
}

/// `io::Write` over a non-blocking socket for rustls' `write_tls` (vectored: all queued
/// records in one `sendmsg`).
struct SockWriter<'a> {
    fd: RawFd,
    calls: &'a mut u64,
}

impl Write for SockWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        *self.calls += 1;
        // SAFETY: all-zero is a valid msghdr (no name, no control data).
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = bufs.len() as _;
        // SAFETY: `IoSlice` is ABI-compatible with `iovec` on Unix (std documents it), so
        // `msg` points at `bufs.len()` valid iovecs, which outlive the call and which
        // sendmsg only reads; the fd is a live socket owned by the connection.
        let n = unsafe { libc::sendmsg(self.fd, &msg, libc::MSG_NOSIGNAL) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn common(urls: &str, ca: Option<&str>) -> CommonArgs {
        let mut v = vec!["ringcast-load", "echo", "--url", urls];
        if let Some(ca) = ca {
            v.extend(["--tls-ca", ca]);
        }
        match Cli::try_parse_from(v).unwrap().cmd {
            Command::Echo(e) => e.common,
            _ => unreachable!(),
        }
    }

    #[test]
    fn several_urls_share_scheme_and_tls_name() {
        let ws = common("ws://127.0.0.1:1/a,ws://127.0.0.1:2/a", None);
        assert!(TlsClient::from_args(&ws).unwrap().is_none());
        let mixed = common(
            "ws://127.0.0.1:1/a,wss://127.0.0.1:2/a",
            Some("/nonexistent"),
        );
        assert!(TlsClient::from_args(&mixed).unwrap_err().contains("mixed"));
        let names = common(
            "wss://127.0.0.1:1/a,wss://localhost:2/a",
            Some("/nonexistent"),
        );
        assert!(TlsClient::from_args(&names)
            .unwrap_err()
            .contains("one host name"));
    }
}

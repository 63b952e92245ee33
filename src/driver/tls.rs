//! TLS between a socket and its connection (cargo feature `tls`): one rustls server
//! session per connection, shared by both drivers so a `wss://` comparison still
//! measures I/O alone.
//!
//! Like `proto`, this code makes no syscalls: ciphertext in, plaintext out; queued
//! frames in, ciphertext out. The driver moves the bytes:
//! * receive: [`TlsSession::receive`] decrypts what the socket delivered; the plaintext
//!   goes to the shard exactly as a plain connection's bytes would.
//! * send: [`TlsSession::next_send`] returns the ciphertext to write. When none is
//!   pending it first encrypts the front of the connection's queue (the same shared
//!   prepared frames every subscriber gets: the WebSocket frame is still encoded once
//!   per publish; only the encryption is per connection), gathered into as few TLS
//!   records as fit (one `write_vectored`), and reports how many plaintext bytes it
//!   took so the driver advances the queue. The ciphertext stays in the session, not
//!   moved or grown, until the driver reports it written ([`TlsSession::advance`]):
//!   io_uring points a send at it. So at most one batch (≤ [`MAX_BATCH_BYTES`] plus
//!   record overhead) is encrypted ahead of the socket; the rest waits as shared
//!   frames in the queue, under the slow-consumer cap.
//! * errors: a TLS failure (bad handshake, plain HTTP to a TLS port, a corrupt record,
//!   the peer's alert) ends the connection at once with
//!   [`DisconnectReason::Tls`](crate::conn::DisconnectReason::Tls); rustls's alert, when
//!   it queued one, is the pending ciphertext the driver sends as it closes.
//! * close: before shutting down its write side or closing the socket the driver
//!   queues `close_notify` ([`TlsSession::close_notify`]), as TLS requires, writes it
//!   like any other ciphertext (so it is not lost to a full socket), and only then
//!   shuts down or closes ([`TlsSession::take_after_notify`]).
//! * memory: what a peer can make a session hold is bounded. Ciphertext in: rustls
//!   takes at most one record beyond its buffer, and its received-plaintext buffer has a
//!   fixed limit (16 KiB) which [`TlsSession::receive`] drains on every call. Plaintext
//!   out: one batch at a time (above). TLS messages rustls answers by itself are
//!   bounded by rustls: one queued KeyUpdate at most, one renegotiation refusal then a
//!   fatal error, four warning alerts. The pending ciphertext counts toward the
//!   connection's read-side backpressure ([`TlsSession::pending`]).
//!
//! Built without the feature, [`TlsConfig`] and [`TlsSession`] are uninhabited types:
//! the drivers' TLS branches compile but can never run, and there is no cost.

use crate::conn::OutQueue;
#[cfg(feature = "tls")]
use crate::driver::batch::{MAX_BATCH_BYTES, MAX_IOV};

/// The server's certificate chain and key, ready to hand to every new connection.
#[derive(Clone)]
pub struct TlsConfig {
    #[cfg(feature = "tls")]
    inner: std::sync::Arc<rustls::ServerConfig>,
    #[cfg(not(feature = "tls"))]
    never: std::convert::Infallible,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsConfig { .. }")
    }
}

/// What [`TlsSession::receive`] found besides plaintext.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Received {
    /// The peer sent `close_notify`: treat as end of stream.
    pub peer_closed: bool,
    /// A fatal TLS error ([`TlsSession::error`] says which): close the connection;
    /// rustls's alert, when it queued one, is the pending ciphertext.
    pub failed: bool,
}

/// What follows a `close_notify` once it is written ([`TlsSession::close_notify`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterNotify {
    /// Shut down the socket's write side (we started the close; keep reading).
    Shutdown,
    /// Close the socket (the close handshake is complete, or the peer's EOF came).
    Close,
}

/// One connection's TLS state.
pub struct TlsSession {
    #[cfg(feature = "tls")]
    conn: rustls::ServerConnection,
    /// Ciphertext being written; `out[sent..]` is still to go.
    #[cfg(feature = "tls")]
    out: Vec<u8>,
    #[cfg(feature = "tls")]
    sent: usize,
    /// Why the session failed; rustls's alert, if it queued one, is the pending output.
    #[cfg(feature = "tls")]
    failure: Option<rustls::Error>,
    /// `close_notify` is queued: what to do once it is out.
    #[cfg(feature = "tls")]
    after_notify: Option<AfterNotify>,
    #[cfg(not(feature = "tls"))]
    never: std::convert::Infallible,
}

#[cfg(feature = "tls")]
impl TlsConfig {
    /// Load a PEM certificate chain (leaf first) and its private key (PKCS#8, PKCS#1 or
    /// SEC1). TLS 1.2 and 1.3, ALPN `http/1.1`, rustls's safe defaults otherwise.
    pub fn from_pem_files(
        cert_path: &std::path::Path,
        key_path: &std::path::Path,
    ) -> Result<TlsConfig, String> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
            .map_err(|e| format!("--tls-cert {}: {e}", cert_path.display()))?
            .collect::<Result<_, _>>()
            .map_err(|e| format!("--tls-cert {}: {e}", cert_path.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "--tls-cert {}: no PEM certificate (-----BEGIN CERTIFICATE-----) in the file",
                cert_path.display()
            ));
        }
        let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| {
            format!(
                "--tls-key {}: no usable PEM private key ({e})",
                key_path.display()
            )
        })?;
        Self::from_der(certs, key)
    }

    /// Build from DER certificate chain and key (for embedders holding them in memory).
    pub fn from_der(
        certs: Vec<rustls::pki_types::CertificateDer<'static>>,
        key: rustls::pki_types::PrivateKeyDer<'static>,
    ) -> Result<TlsConfig, String> {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS protocol versions: {e}"))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| format!("TLS certificate and key do not work together: {e}"))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsConfig {
            inner: std::sync::Arc::new(config),
        })
    }
}

#[cfg(not(feature = "tls"))]
impl TlsConfig {
    /// Without the `tls` feature there is no TLS: say how to get it.
    pub fn from_pem_files(
        _cert_path: &std::path::Path,
        _key_path: &std::path::Path,
    ) -> Result<TlsConfig, String> {
        Err("this ringcast was built without TLS support: rebuild with \
             `cargo build --release --features tls` (make run and make release do)"
            .into())
    }
}

#[cfg(feature = "tls")]
impl TlsSession {
    /// A fresh server session for a just-accepted connection.
    pub fn new(config: &TlsConfig) -> Result<TlsSession, String> {
        let mut conn = rustls::ServerConnection::new(config.inner.clone())
            .map_err(|e| format!("TLS session setup failed: {e}"))?;
        // Encrypt up to one send batch per call (rustls's default is 64 KiB).
        conn.set_buffer_limit(Some(MAX_BATCH_BYTES));
        Ok(TlsSession {
            conn,
            out: Vec::new(),
            sent: 0,
            failure: None,
            after_notify: None,
        })
    }

    /// Decrypt `ciphertext`, appending the plaintext to `plain` (cleared first).
    pub fn receive(&mut self, mut ciphertext: &[u8], plain: &mut Vec<u8>) -> Received {
        use std::io::Read;
        plain.clear();
        let mut seen = Received::default();
        if self.failure.is_some() {
            seen.failed = true;
            return seen;
        }
        let mut stalled = false;
        while !ciphertext.is_empty() {
            // Reading from a slice fails only with rustls's "buffer full", which the
            // processing below relieves; twice in a row means the peer's records can
            // never be processed.
            match self.conn.read_tls(&mut ciphertext) {
                Ok(_) => stalled = false,
                Err(e) if !stalled => {
                    tracing::trace!(error = %e, "TLS input buffer full; processing first");
                    stalled = true;
                }
                Err(e) => {
                    self.failure = Some(rustls::Error::General(e.to_string()));
                    seen.failed = true;
                    return seen;
                }
            }
            let state = match self.conn.process_new_packets() {
                Ok(state) => state,
                Err(e) => {
                    // rustls has queued the matching alert; it leaves with the next send.
                    self.failure = Some(e);
                    seen.failed = true;
                    return seen;
                }
            };
            let n = state.plaintext_bytes_to_read();
            if n > 0 {
                let start = plain.len();
                plain.resize(start + n, 0);
                let got = self.conn.reader().read(&mut plain[start..]).unwrap_or(0);
                plain.truncate(start + got);
            }
            if state.peer_has_closed() {
                seen.peer_closed = true;
                break;
            }
        }
        seen
    }

    /// Is there ciphertext to send (handshake messages, an alert, or encrypted frames)?
    pub fn wants_write(&self) -> bool {
        self.sent < self.out.len() || self.conn.wants_write()
    }

    /// The ciphertext to write next, encrypting from the front of `queue` when nothing
    /// is pending. Returns (plaintext bytes taken from `queue`, ciphertext): the caller
    /// advances the queue by the first and writes the second, then calls
    /// [`advance`](Self::advance). Empty ciphertext: nothing to send.
    pub fn next_send(&mut self, queue: &OutQueue) -> (usize, &[u8]) {
        let mut taken = 0;
        if self.sent == self.out.len() {
            self.out.clear();
            self.sent = 0;
            if self.failure.is_none() && self.after_notify.is_none() && !queue.is_empty() {
                taken = self.encrypt(queue);
            }
            while self.conn.wants_write() {
                // Writing into a Vec cannot fail.
                let _ = self.conn.write_tls(&mut self.out);
            }
        }
        (taken, &self.out[self.sent..])
    }

    fn encrypt(&mut self, queue: &OutQueue) -> usize {
        use std::io::Write;
        let mut slices: [std::io::IoSlice<'_>; MAX_IOV] = [std::io::IoSlice::new(&[]); MAX_IOV];
        let mut count = 0;
        let mut bytes = 0;
        for piece in queue.pending() {
            if count == MAX_IOV || (bytes > 0 && bytes + piece.len() > MAX_BATCH_BYTES) {
                break;
            }
            slices[count] = std::io::IoSlice::new(piece);
            count += 1;
            bytes += piece.len();
        }
        self.conn
            .writer()
            .write_vectored(&slices[..count])
            .unwrap_or(0)
    }

    /// `n` bytes of the ciphertext from [`next_send`](Self::next_send) were written.
    /// Once all of it is, the buffer is freed, not kept for the next batch: an idle
    /// `wss://` connection then holds no send buffer (measured: 0.65 KiB less RSS per
    /// idle connection, the handshake flight's buffer), and one allocation per batch
    /// is noise next to the batch's encryption and send.
    pub fn advance(&mut self, n: usize) {
        self.sent = (self.sent + n).min(self.out.len());
        if self.sent == self.out.len() {
            self.out = Vec::new();
            self.sent = 0;
        }
    }

    /// Ciphertext bytes encrypted and not yet written (what the session holds for the
    /// socket beyond the connection's queue).
    pub fn pending(&self) -> usize {
        self.out.len() - self.sent
    }

    /// Queue `close_notify` (nothing more is encrypted after it);
    /// [`take_after_notify`](Self::take_after_notify) reports `then` once it is written.
    pub fn close_notify(&mut self, then: AfterNotify) {
        self.conn.send_close_notify();
        self.after_notify = Some(then);
    }

    /// `close_notify` is out: what to do now (reported once).
    pub fn take_after_notify(&mut self) -> Option<AfterNotify> {
        if self.wants_write() {
            return None;
        }
        self.after_notify.take()
    }

    /// Why the session failed, once it has.
    pub fn error(&self) -> Option<&rustls::Error> {
        self.failure.as_ref()
    }
}

#[cfg(not(feature = "tls"))]
impl TlsSession {
    pub fn new(config: &TlsConfig) -> Result<TlsSession, String> {
        match config.never {}
    }
    pub fn receive(&mut self, _ciphertext: &[u8], _plain: &mut Vec<u8>) -> Received {
        match self.never {}
    }
    pub fn wants_write(&self) -> bool {
        match self.never {}
    }
    pub fn next_send(&mut self, _queue: &OutQueue) -> (usize, &[u8]) {
        match self.never {}
    }
    pub fn advance(&mut self, _n: usize) {
        match self.never {}
    }
    pub fn pending(&self) -> usize {
        match self.never {}
    }
    pub fn close_notify(&mut self, _then: AfterNotify) {
        match self.never {}
    }
    pub fn take_after_notify(&mut self) -> Option<AfterNotify> {
        match self.never {}
    }
    pub fn error(&self) -> Option<&std::convert::Infallible> {
        match self.never {}
    }
}

#[cfg(all(test, feature = "tls"))]
mod tests {
    use super::*;
    use crate::hub::PreparedFrame;
    use rustls::pki_types::{PrivateKeyDer, ServerName};
    use std::io::Read;
    use std::sync::Arc;

    /// A server session and a rustls client that trusts it, handshake done in memory.
    fn pair() -> (TlsSession, rustls::ClientConnection) {
        let key = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert = key.cert.der().clone();
        let private = PrivateKeyDer::Pkcs8(key.signing_key.serialize_der().into());
        let config = TlsConfig::from_der(vec![cert.clone()], private).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client_config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from("localhost").unwrap();
        let mut client = rustls::ClientConnection::new(Arc::new(client_config), name).unwrap();
        let mut server = TlsSession::new(&config).unwrap();
        let empty = OutQueue::default();
        let mut plain = Vec::new();
        for _ in 0..10 {
            let mut to_server = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut to_server).unwrap();
            }
            assert_eq!(server.receive(&to_server, &mut plain), Received::default());
            assert!(plain.is_empty());
            let (taken, bytes) = server.next_send(&empty);
            assert_eq!(taken, 0);
            let bytes = bytes.to_vec();
            let n = bytes.len();
            server.advance(n);
            if !bytes.is_empty() {
                client.read_tls(&mut bytes.as_slice()).unwrap();
                client.process_new_packets().unwrap();
            }
            if !client.is_handshaking() && !client.wants_write() && !server.wants_write() {
                return (server, client);
            }
        }
        panic!("handshake did not finish");
    }

    /// Feed ciphertext to the client; return the plaintext it yields.
    fn client_reads(client: &mut rustls::ClientConnection, mut ciphertext: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        while !ciphertext.is_empty() {
            client.read_tls(&mut ciphertext).unwrap();
            client.process_new_packets().unwrap();
            let mut buf = [0u8; 4096];
            while let Ok(n) = client.reader().read(&mut buf) {
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
            }
        }
        out
    }

    #[test]
    fn queued_frames_leave_as_one_batch_of_ciphertext_and_decrypt_intact() {
        let (mut server, mut client) = pair();
        let mut queue = OutQueue::default();
        for i in 0..16u8 {
            queue.push_data(PreparedFrame::from_wire(vec![i; 66]));
        }
        let expected: Vec<u8> = queue.pending().flatten().copied().collect();
        let (taken, bytes) = server.next_send(&queue);
        assert_eq!(taken, 16 * 66, "every queued frame taken in one go");
        // One TLS record for the 16 frames: header 5 + tag 16 + content type 1.
        assert_eq!(bytes.len(), 16 * 66 + 22);
        let ciphertext = bytes.to_vec();
        server.advance(ciphertext.len());
        assert_eq!(client_reads(&mut client, &ciphertext), expected);
    }

    #[test]
    fn pending_ciphertext_is_not_replaced_until_written_and_batches_are_bounded() {
        let (mut server, mut client) = pair();
        let mut queue = OutQueue::default();
        for i in 0..8u8 {
            queue.push_data(PreparedFrame::from_wire(vec![i; 100_000]));
        }
        let mut received = Vec::new();
        let mut rounds = 0;
        while !queue.is_empty() || server.wants_write() {
            rounds += 1;
            let (taken, bytes) = server.next_send(&queue);
            assert!(
                bytes.len() <= MAX_BATCH_BYTES + 64 * 22,
                "{} bytes",
                bytes.len()
            );
            // Write only half: the rest must come back unchanged, with nothing new taken.
            let half = bytes.len() / 2;
            let first = bytes[..half].to_vec();
            server.advance(half);
            queue.advance(taken);
            let (again, rest) = server.next_send(&queue);
            assert_eq!(again, 0, "nothing encrypted while ciphertext is pending");
            let rest = rest.to_vec();
            server.advance(rest.len());
            received.extend(client_reads(&mut client, &[first, rest].concat()));
            assert!(rounds < 100);
        }
        assert_eq!(received.len(), 8 * 100_000);
        assert!(
            rounds >= 4,
            "800 KB cannot leave in fewer than 4 batches: {rounds}"
        );
    }

    #[test]
    fn garbage_fails_the_session_with_an_alert_pending() {
        let (mut server, mut client) = pair();
        let mut plain = Vec::new();
        let seen = server.receive(b"GET / HTTP/1.1\r\n\r\n", &mut plain);
        assert!(seen.failed && server.error().is_some());
        let mut queue = OutQueue::default();
        queue.push_data(PreparedFrame::from_wire(vec![1; 10]));
        let (taken, alert) = server.next_send(&queue);
        assert_eq!(taken, 0, "a failed session encrypts nothing more");
        // TLS 1.3 encrypts the alert after the handshake: the client decrypts it.
        let alert = alert.to_vec();
        client.read_tls(&mut alert.as_slice()).unwrap();
        let err = client.process_new_packets().unwrap_err();
        assert!(
            matches!(err, rustls::Error::AlertReceived(_)),
            "the client saw an alert: {err}"
        );
    }

    #[test]
    fn close_notify_then_shutdown_and_the_peers_close_notify_ends_the_stream() {
        let (mut server, mut client) = pair();
        let empty = OutQueue::default();
        server.close_notify(AfterNotify::Shutdown);
        assert_eq!(server.take_after_notify(), None, "not before it is written");
        let (_, bytes) = server.next_send(&empty);
        let bytes = bytes.to_vec();
        assert_eq!(server.pending(), bytes.len());
        server.advance(bytes.len());
        assert_eq!(server.take_after_notify(), Some(AfterNotify::Shutdown));
        assert_eq!(server.take_after_notify(), None, "reported once");
        client.read_tls(&mut bytes.as_slice()).unwrap();
        assert!(client.process_new_packets().unwrap().peer_has_closed());
        client.send_close_notify();
        let mut out = Vec::new();
        client.write_tls(&mut out).unwrap();
        let mut plain = Vec::new();
        assert!(server.receive(&out, &mut plain).peer_closed);
    }
}

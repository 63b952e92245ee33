//! TLS clients for the `wss://` tests (cargo feature `tls`): a self-signed certificate
//! made here (rcgen), a rustls client that trusts only it, tungstenite on top.

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;

use ringcast::TlsConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tungstenite::protocol::WebSocket;

use super::tcp_from;

pub type TlsClient = WebSocket<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>;

/// A fresh self-signed certificate for 127.0.0.1: the server's config and the
/// certificate a client must trust.
pub fn self_signed() -> (TlsConfig, CertificateDer<'static>) {
    let key = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("generate a certificate");
    let cert = key.cert.der().clone();
    let private = PrivateKeyDer::Pkcs8(key.signing_key.serialize_der().into());
    let config = TlsConfig::from_der(vec![cert.clone()], private).expect("server TLS config");
    (config, cert)
}

pub fn client_config(trusted: &CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

pub fn tls_stream(
    addr: SocketAddr,
    src: IpAddr,
    config: &Arc<rustls::ClientConfig>,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let server_name = ServerName::IpAddress(addr.ip().into());
    let conn = rustls::ClientConnection::new(config.clone(), server_name).unwrap();
    rustls::StreamOwned::new(conn, tcp_from(addr, src))
}

pub fn wss_connect(
    addr: SocketAddr,
    path: &str,
    src: IpAddr,
    config: &Arc<rustls::ClientConfig>,
) -> TlsClient {
    let url = format!("wss://{addr}{path}");
    tungstenite::client::client(url, tls_stream(addr, src, config))
        .expect("websocket handshake over TLS")
        .0
}

/// A fresh self-signed certificate and key for 127.0.0.1 written as PEM files into a
/// new directory under the system temp dir: (dir, cert path, key path).
pub fn self_signed_files(
    tag: &str,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("ringcast-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, key.cert.pem()).unwrap();
    std::fs::write(&key_path, key.signing_key.serialize_pem()).unwrap();
    (dir, cert_path, key_path)
}

/// The certificate in a PEM file, for a client to trust.
pub fn cert_from_pem(path: &std::path::Path) -> CertificateDer<'static> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_file(path).unwrap()
}

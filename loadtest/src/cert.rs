//! `ringcast-load cert`: writes a fresh self-signed certificate (`cert.pem`) and its
//! private key (`key.pem`, mode 0600) for a `wss://` test server. The same `cert.pem`
//! is what the generator then trusts with `--tls-ca`. ECDSA P-256 (rcgen's default),
//! one subject alternative name per `--san` (IP addresses become IP SANs).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rcgen::{CertificateParams, DnType, KeyPair};
use sha1::{Digest, Sha1};

use crate::cli::CertArgs;

/// SANs used when no `--san` is given.
pub const DEFAULT_SANS: [&str; 2] = ["127.0.0.1", "localhost"];

/// Where the files went.
#[derive(Debug)]
pub struct Written {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// The private key (PEM, PKCS#8, mode 0600).
    pub key: PathBuf,
    /// The subject alternative names in the certificate.
    pub sans: Vec<String>,
}

/// Generates the pair and writes it to `args.out_dir` (created if missing).
pub fn run(args: &CertArgs) -> Result<Written, String> {
    let sans: Vec<String> = if args.sans.is_empty() {
        DEFAULT_SANS.iter().map(|s| s.to_string()).collect()
    } else {
        args.sans.clone()
    };
    let mut params =
        CertificateParams::new(sans.clone()).map_err(|e| format!("--san {sans:?}: {e}"))?;
    let key = KeyPair::generate().map_err(|e| format!("key generation: {e}"))?;
    // A subject of its own per certificate: trusting another `cert` output then fails
    // as "unknown issuer", not as a bad signature under a look-alike name.
    let id = Sha1::digest(key.public_key_raw());
    let id: String = id[..8].iter().map(|b| format!("{b:02x}")).collect();
    params.distinguished_name.push(
        DnType::CommonName,
        format!("ringcast-load self-signed {id}"),
    );
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("certificate: {e}"))?;
    let dir = &args.out_dir;
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    write_file(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_file(&cert_path, cert.pem().as_bytes(), 0o644)?;
    Ok(Written {
        cert: cert_path,
        key: key_path,
        sans,
    })
}

/// Replaces `path` with `data`, mode `mode` (also when the file existed with another).
fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<(), String> {
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(err)?;
    // The mode above applies only to a new file: narrow an existing one before writing.
    f.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(err)?;
    f.write_all(data).map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::TlsClient;

    #[test]
    fn writes_a_pair_the_client_trusts() {
        let dir = std::env::temp_dir().join(format!("rl-cert-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        // A key file left world-readable by someone else is narrowed on rewrite.
        fs::write(dir.join("key.pem"), "old").unwrap();
        fs::set_permissions(dir.join("key.pem"), fs::Permissions::from_mode(0o644)).unwrap();
        let w = run(&CertArgs {
            out_dir: dir.clone(),
            sans: vec![],
        })
        .unwrap();
        assert_eq!(w.sans, ["127.0.0.1", "localhost"]);
        let mode = fs::metadata(&w.key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let key = fs::read_to_string(&w.key).unwrap();
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
        let cert = fs::read_to_string(&w.cert).unwrap();
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"), "{cert}");
        // Loadable as a trust anchor, for an IP and a DNS server name.
        TlsClient::new(&w.cert, "127.0.0.1").unwrap();
        TlsClient::new(&w.cert, "localhost").unwrap();
        // A key is not a certificate.
        let e = TlsClient::new(&w.key, "127.0.0.1").unwrap_err();
        assert!(e.contains("no certificate found"), "{e}");
        fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn bad_san_is_an_error() {
        let e = run(&CertArgs {
            out_dir: std::env::temp_dir(),
            sans: vec!["caf\u{e9}.example".into()],
        })
        .unwrap_err();
        assert!(e.contains("--san"), "{e}");
    }
}

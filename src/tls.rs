//! TLS on the public listener (rustls, no OpenSSL): the certificate and key from
//! `http.tls.cert` / `http.tls.key`, ALPN offering `h2` then `http/1.1`, and reloading the pair
//! without a restart.
//!
//! Why a resolver of our own rather than a fixed `ServerConfig`: a renewed certificate (from
//! certbot, cert-manager, a secret mount) must reach new connections without dropping the
//! open streams, so the config asks [`CertificateStore`] for the current pair on every
//! handshake, and a reload swaps the pair behind it. A pair that does not load leaves the old
//! one serving, and says why in the log ([`crate::reload`]).

use crate::reload::{FileStamps, Reloadable};
use rustls::crypto::ring::sign::any_supported_type;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// A certificate or key that cannot be used, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS certificate {path}: {why}")]
    Certificate { path: PathBuf, why: String },
    #[error("TLS key {path}: {why}")]
    Key { path: PathBuf, why: String },
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The certificate chain and key the listener presents, reloadable.
#[derive(Debug)]
pub struct CertificateStore {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    /// The files' modification times at the last load, to notice a change.
    stamps: FileStamps,
}

impl CertificateStore {
    /// Loads the pair once; a file that is missing or does not parse fails here.
    pub fn open(cert_path: &Path, key_path: &Path) -> Result<Arc<Self>, TlsError> {
        let stamps = FileStamps::new(&[cert_path, key_path]);
        let pair = load(cert_path, key_path)?;
        Ok(Arc::new(CertificateStore {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            current: RwLock::new(Arc::new(pair)),
            stamps,
        }))
    }

    /// Loads the pair again and serves it from the next handshake on; on failure the previous
    /// pair stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        self.stamps.mark();
        let pair = load(&self.cert_path, &self.key_path)?;
        if let Ok(mut current) = self.current.write() {
            *current = Arc::new(pair);
        }
        Ok(())
    }

    /// The rustls configuration over this store: TLS 1.2 and 1.3, ALPN `h2` before `http/1.1`.
    // ring rather than aws-lc-rs, rustls' default: it builds with the C compiler alone (no
    // cmake), which keeps `cargo run` working on a machine with only the Rust toolchain. The
    // price is no post-quantum key exchange, which rustls marks by deprecating the constructor.
    #[allow(deprecated)]
    pub fn server_config(self: &Arc<Self>) -> Result<ServerConfig, TlsError> {
        let mut config =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()?
                .with_no_client_auth()
                .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}

impl Reloadable for CertificateStore {
    fn describe(&self) -> String {
        format!("TLS certificate {}", self.cert_path.display())
    }

    fn stamps(&self) -> &FileStamps {
        &self.stamps
    }

    fn reload(&self) -> Result<(), String> {
        CertificateStore::reload(self).map_err(|e| e.to_string())
    }
}

impl ResolvesServerCert for CertificateStore {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| c.clone())
    }
}

/// Reads a PEM chain and key into a pair rustls can present.
fn load(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, TlsError> {
    let cert_error = |why: String| TlsError::Certificate {
        path: cert_path.to_owned(),
        why,
    };
    let key_error = |why: String| TlsError::Key {
        path: key_path.to_owned(),
        why,
    };
    let pem = std::fs::read(cert_path).map_err(|e| cert_error(e.to_string()))?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_error(format!("not a PEM certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(cert_error("holds no certificate".to_owned()));
    }
    let pem = std::fs::read(key_path).map_err(|e| key_error(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| key_error(format!("not a PEM private key: {e}")))?;
    let signer = any_supported_type(&key).map_err(|e| key_error(e.to_string()))?;
    let pair = CertifiedKey::new(chain, signer);
    pair.keys_match()
        .map_err(|e| key_error(format!("does not match the certificate: {e}")))?;
    Ok(pair)
}

/// A self-signed certificate for `names` (the `dev-cert` subcommand): PEM certificate and key.
pub fn self_signed(names: Vec<String>) -> Result<(String, String), rcgen::Error> {
    let rcgen::CertifiedKey { cert, signing_key } = rcgen::generate_simple_self_signed(names)?;
    Ok((cert.pem(), signing_key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, names: &[&str]) -> (PathBuf, PathBuf) {
        let (cert, key) =
            self_signed(names.iter().map(|n| n.to_string()).collect()).expect("a pair");
        let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&c, cert).expect("cert written");
        std::fs::write(&k, key).expect("key written");
        (c, k)
    }

    #[test]
    fn a_self_signed_pair_loads_and_bad_files_are_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (cert, key) = write_pair(dir.path(), &["localhost"]);
        let store = CertificateStore::open(&cert, &key).expect("loads");
        assert!(!store.stamps.changed());
        assert_eq!(
            store.server_config().expect("a config").alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );

        let missing = dir.path().join("missing.pem");
        let e = CertificateStore::open(&missing, &key).unwrap_err();
        assert!(e.to_string().contains("missing.pem"), "{e}");
        let e = CertificateStore::open(&cert, &cert).unwrap_err();
        assert!(e.to_string().starts_with("TLS key"), "{e}");

        // A key of another certificate does not match.
        let other = tempfile::tempdir().expect("temp dir");
        let (_, other_key) = write_pair(other.path(), &["localhost"]);
        let e = CertificateStore::open(&cert, &other_key).unwrap_err();
        assert!(e.to_string().contains("does not match"), "{e}");
    }

    #[test]
    fn a_failed_reload_keeps_the_previous_pair() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (cert, key) = write_pair(dir.path(), &["localhost"]);
        let store = CertificateStore::open(&cert, &key).expect("loads");
        let before = store.current.read().expect("not poisoned").cert[0].clone();
        std::fs::write(&cert, "garbage").expect("overwritten");
        assert!(store.reload().is_err());
        assert_eq!(store.current.read().expect("not poisoned").cert[0], before);
        write_pair(dir.path(), &["localhost"]);
        store.reload().expect("reloads");
        assert_ne!(store.current.read().expect("not poisoned").cert[0], before);
    }
}

//! TLS for the STOMP and HTTP listeners (`stomps`, `https`): rustls on the ring provider, the
//! certificate chain and private key read from PEM files, reloadable while the server runs.
//!
//! The certificate in force sits behind a resolver that every handshake asks: a reload swaps it
//! for new handshakes, and sessions already established keep the keys they agreed, so nothing
//! is dropped. A reload that fails (a file missing, bad PEM, a key that does not match the
//! certificate) leaves the old certificate in force.
//!
//! The handshake runs in the connection's own task, never in the accept loop, and is bounded by
//! `tls-handshake-timeout-ms`: a client that connects and says nothing holds a descriptor for
//! that long and no more.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use super::stream::Stream;

/// Largest certificate or key file read (a chain of a few certificates is a few KiB).
const MAX_PEM_FILE: u64 = 1024 * 1024;

/// Why a certificate or key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("TLS {what} file {path}: {source}")]
    Read {
        /// "certificate" or "key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file was read but holds no usable PEM.
    #[error("TLS {what} file {path}: {reason}")]
    Pem {
        /// "certificate" or "key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The key is not one rustls can sign with, or does not match the certificate.
    #[error("TLS key file {key} does not go with certificate file {cert}: {reason}")]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The certificate in force, handed to every new handshake.
#[derive(Debug)]
struct CurrentCertificate {
    // A std RwLock: read (an `Arc` clone) once per handshake, written on a reload; never held
    // across an await.
    key: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for CurrentCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.key.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

/// rustls's ring provider, for the listeners and the command-line client alike.
///
/// rustls 0.23.48 deprecates it for lacking post-quantum key exchange (X25519MLKEM768, offered
/// by its aws-lc-rs provider only): the project builds on ring (reqwest already does, and
/// aws-lc-rs needs a C toolchain and CMake), so TLS here negotiates X25519 or the NIST curves.
#[allow(deprecated)]
pub fn ring_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The listeners' TLS: the acceptor, the files the certificate comes from, and how long a
/// handshake may take.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    current: Arc<CurrentCertificate>,
    provider: Arc<CryptoProvider>,
    cert_file: PathBuf,
    key_file: PathBuf,
    handshake_timeout: Duration,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Loads `cert_file` (the chain, leaf first) and `key_file` (PKCS#8, PKCS#1 or SEC1), PEM.
    pub fn load(
        cert_file: &Path,
        key_file: &Path,
        handshake_timeout: Duration,
    ) -> Result<Tls, TlsError> {
        let provider = ring_provider();
        let key = load_certified_key(cert_file, key_file, &provider)?;
        let current = Arc::new(CurrentCertificate {
            key: RwLock::new(Arc::new(key)),
        });
        let config = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            current,
            provider,
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            handshake_timeout,
        })
    }

    /// Reads the certificate and key files again: new handshakes get what they hold now,
    /// established connections keep theirs. On failure the certificate in force stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = load_certified_key(&self.cert_file, &self.key_file, &self.provider)?;
        *self.current.key.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
        Ok(())
    }

    /// The TLS handshake on an accepted connection, bounded by the handshake timeout. A
    /// failure is logged at debug level and counted (`tls_handshakes_failed`): a port scanner,
    /// a plain-text client on the TLS port or a client that does not trust the certificate
    /// is the client's problem, not the server's.
    pub(crate) async fn accept(
        &self,
        tcp: TcpStream,
        peer: std::net::SocketAddr,
        metrics: &crate::broker::metrics::Metrics,
    ) -> Option<Stream> {
        let failed = |reason: &dyn std::fmt::Display| {
            crate::broker::metrics::Metrics::incr(&metrics.tls_handshakes_failed);
            tracing::debug!(%peer, %reason, "TLS handshake failed");
            None
        };
        match tokio::time::timeout(self.handshake_timeout, self.acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => Some(Stream::Tls(Box::new(tls))),
            Ok(Err(error)) => failed(&error),
            Err(_) => failed(&"timed out"),
        }
    }
}

/// An accepted connection as its listener serves it: as it is, or after the TLS handshake
/// (`None` when that fails or the server shuts down meanwhile). Both listeners call this, so
/// the plain and the TLS paths differ in this one place.
pub(crate) async fn establish(
    tcp: TcpStream,
    peer: std::net::SocketAddr,
    tls: Option<Arc<Tls>>,
    ctx: &crate::context::ServerContext,
) -> Option<Stream> {
    let Some(tls) = tls else {
        return Some(Stream::Tcp(tcp));
    };
    tokio::select! {
        stream = tls.accept(tcp, peer, ctx.broker.metrics()) => stream,
        () = ctx.shutdown.cancelled() => None,
    }
}

/// Reads a PEM file, bounded.
fn read_pem(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    let read = |source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    };
    let len = std::fs::metadata(path).map_err(read)?.len();
    if len > MAX_PEM_FILE {
        return Err(TlsError::Pem {
            what,
            path: path.to_owned(),
            reason: format!("{len} bytes, more than a PEM file holds ({MAX_PEM_FILE} at most)"),
        });
    }
    std::fs::read(path).map_err(read)
}

/// The certificate chain and its key, checked to go together.
fn load_certified_key(
    cert_file: &Path,
    key_file: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let pem = read_pem("certificate", cert_file)?;
    let bad_cert = |reason: String| TlsError::Pem {
        what: "certificate",
        path: cert_file.to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad_cert(e.to_string()))?;
    if chain.is_empty() {
        return Err(bad_cert("no CERTIFICATE block".into()));
    }
    let pem = read_pem("key", key_file)?;
    let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::Pem {
        what: "key",
        path: key_file.to_owned(),
        reason: match e {
            rustls_pki_types::pem::Error::NoItemsFound => {
                "no PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block".into()
            }
            other => other.to_string(),
        },
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| TlsError::Mismatch {
        cert: cert_file.to_owned(),
        key: key_file.to_owned(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn missing_empty_and_foreign_files_are_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let timeout = Duration::from_secs(1);
        let error = Tls::load(&missing, &empty, timeout)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("certificate file") && error.contains("missing.pem"),
            "{error}"
        );
        let error = Tls::load(&empty, &missing, timeout)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("no CERTIFICATE block") && error.contains("empty.pem"),
            "{error}"
        );
        let not_pem = dir.path().join("not.pem");
        std::fs::write(&not_pem, "-----BEGIN CERTIFICATE-----\n!!!\n").unwrap();
        let error = Tls::load(&not_pem, &empty, timeout)
            .unwrap_err()
            .to_string();
        assert!(error.contains("not.pem"), "{error}");
    }
}

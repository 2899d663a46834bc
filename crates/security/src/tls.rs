//! The rustls server configuration: a certificate chain and key from PEM files, and, with a
//! client CA, client certificates required and verified in the handshake (mTLS).
//!
//! The ring provider is chosen explicitly: the build may hold rustls with more than one
//! provider (reqwest brings aws-lc-rs), and then rustls has no process-wide default.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use crate::{Error, Result};

/// The PEM files of a TLS port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first (`--tls-cert`).
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1; `--tls-key`).
    pub key: PathBuf,
    /// When set, clients must present a certificate this CA issued (`--tls-client-ca`).
    pub client_ca: Option<PathBuf>,
}

/// The crypto provider every oxserve TLS config uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server config for `files`, with ALPN `h2` then `http/1.1`.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>> {
    let provider = provider();
    let certs = certificates(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| pem_error(&files.key, e))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in certificates(ca)? {
                roots.add(c).map_err(|e| invalid(ca, format!("not a usable CA: {e}")))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| invalid(ca, e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| invalid(&files.cert, format!("certificate and key do not fit: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Every `CERTIFICATE` block of a PEM file; none is an error.
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(invalid(path, "no CERTIFICATE block in the PEM file".into()));
    }
    Ok(certs)
}

fn invalid(path: &Path, reason: String) -> Error {
    Error::Invalid { path: path.to_owned(), reason }
}

fn pem_error(path: &Path, e: pem::Error) -> Error {
    match e {
        pem::Error::Io(source) => Error::Read { path: path.to_owned(), source },
        pem::Error::NoItemsFound => invalid(path, "no PEM block of the expected kind".into()),
        other => invalid(path, format!("not a valid PEM file: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_empty_files_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").expect("write");
        let files = TlsFiles { cert: empty.clone(), key: empty.clone(), client_ca: None };
        let e = server_config(&files).expect_err("an empty file has no certificate");
        assert!(e.to_string().contains("empty.pem"), "{e}");
        let missing = dir.path().join("missing.pem");
        let e = certificates(&missing).expect_err("missing");
        assert!(matches!(e, Error::Read { .. }), "{e}");
        assert!(e.to_string().contains("missing.pem"), "{e}");
    }
}

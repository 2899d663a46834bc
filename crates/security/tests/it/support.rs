//! A small axum app behind an [`Acceptor`] and a raw HTTP/1.1 client over TLS or TCP.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::get;
use oxserve_security::{Acceptor, AuthLayer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::certs::Pair;

/// Serves `/v2/health/live` and `/hello` on 127.0.0.1, TLS with `tls`, behind `auth`.
pub async fn serve(tls: Option<Arc<rustls::ServerConfig>>, auth: Option<AuthLayer>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let acceptor = Acceptor::new(listener, tls).expect("acceptor");
    let addr = acceptor.local_addr().expect("addr");
    let mut app = axum::Router::new()
        .route("/v2/health/live", get(|| async { "live" }))
        .route("/hello", get(|| async { "hello" }).post(|| async { "posted" }));
    if let Some(auth) = auth {
        app = app.layer(auth);
    }
    tokio::spawn(async move { axum::serve(acceptor, app).await });
    addr
}

/// A client config trusting `ca`, presenting `identity` when given, offering `alpn`.
pub fn client_config(
    ca: &std::path::Path,
    identity: Option<&Pair>,
    alpn: &[&[u8]],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).expect("ca") {
        roots.add(c.expect("ca cert")).expect("add ca");
    }
    let builder = rustls::ClientConfig::builder_with_provider(oxserve_security::tls::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some(p) => {
            let certs = vec![CertificateDer::from_pem_slice(p.cert_pem.as_bytes()).expect("cert")];
            let key = PrivateKeyDer::from_pem_slice(p.key_pem.as_bytes()).expect("key");
            builder.with_client_auth_cert(certs, key).expect("client cert")
        }
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// A TLS connection to `addr` as `localhost`.
pub async fn connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").expect("name");
    tokio_rustls::TlsConnector::from(config).connect(name, tcp).await
}

/// Sends one HTTP/1.1 request (`Connection: close`) and reads the whole response.
pub async fn request<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<String> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("content-length: 0\r\n\r\n");
    io.write_all(req.as_bytes()).await?;
    let mut out = Vec::new();
    io.read_to_end(&mut out).await?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// A GET of `path` over TLS; the raw response or the error.
pub async fn tls_get(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<String> {
    let io = connect(addr, config).await?;
    request(io, "GET", path, headers).await
}

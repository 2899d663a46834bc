//! The TLS and token flags of the processes that listen (`serve`, `router`, `up`) and of the
//! clients of the api port (`apply`, `get`, `describe`, `delete`, `logs`), over
//! [`oxserve_security`].

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use oxserve_security::{AuthLayer, OpenPaths, ServerConfig, TlsFiles, TokenFile};

/// `--tls-cert`, `--tls-key` and `--tls-client-ca`.
#[derive(clap::Args, Debug, Clone)]
pub struct TlsArgs {
    /// PEM certificate chain (leaf first): the ports speak TLS (needs --tls-key).
    #[arg(long, env = "OXSERVE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "OXSERVE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificates: clients must present a certificate one of them issued (mTLS;
    /// a client without one is refused in the handshake).
    #[arg(long, env = "OXSERVE_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
}

impl TlsArgs {
    /// The server config, or `None` for plain TCP.
    pub fn config(&self) -> Result<Option<Arc<ServerConfig>>> {
        let TlsArgs { tls_cert, tls_key, tls_client_ca } = self.clone();
        let (Some(cert), Some(key)) = (tls_cert, tls_key) else { return Ok(None) };
        let files = TlsFiles { cert, key, client_ca: tls_client_ca };
        Ok(Some(oxserve_security::server_config(&files).context("--tls-cert/--tls-key")?))
    }
}

/// `--auth-token-file`.
#[derive(clap::Args, Debug, Clone)]
pub struct AuthArgs {
    /// Bearer tokens, one per line (`#` comments), re-read when the file changes: every
    /// request but the health checks needs `Authorization: Bearer TOKEN` (401 or gRPC
    /// UNAUTHENTICATED without).
    #[arg(long, env = "OXSERVE_AUTH_TOKEN_FILE")]
    pub auth_token_file: Option<PathBuf>,
}

impl AuthArgs {
    /// The token file, read once (a missing or empty file is an error).
    pub fn open(&self) -> Result<Option<TokenFile>> {
        open_tokens(self.auth_token_file.as_ref(), "--auth-token-file")
    }
}

/// Reads a token file given by `flag`.
pub fn open_tokens(path: Option<&PathBuf>, flag: &str) -> Result<Option<TokenFile>> {
    path.map(|p| TokenFile::open(p).with_context(|| flag.to_owned())).transpose()
}

/// The auth layer of `tokens`, its file watched for changes (call within the runtime).
pub fn layer(tokens: Option<TokenFile>, open: OpenPaths) -> AuthLayer {
    if let Some(t) = &tokens {
        t.watch(oxserve_security::token::POLL_INTERVAL);
    }
    AuthLayer::optional(tokens, open)
}

/// `http` or `https`.
pub fn scheme(tls: &Option<Arc<ServerConfig>>) -> &'static str {
    if tls.is_some() { "https" } else { "http" }
}

/// How a client of the api port authenticates and whom it trusts.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ClientArgs {
    /// Bearer token for the api port (`oxserve up --api-token-file`).
    #[arg(long, env = "OXSERVE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM CA certificate(s) to trust for an https:// api (`oxserve up --tls-cert`).
    #[arg(long, env = "OXSERVE_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// PEM client certificate for an api that requires one (`--tls-client-ca`; with
    /// --client-key).
    #[arg(long, env = "OXSERVE_CLIENT_CERT", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of --client-cert.
    #[arg(long, env = "OXSERVE_CLIENT_KEY", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
}

impl ClientArgs {
    /// An HTTP client that sends the token and trusts the CA.
    pub fn client(&self) -> Result<reqwest::Client> {
        let ClientArgs { token, ca_cert, client_cert, client_key } = self.clone();
        let mut builder = reqwest::Client::builder().no_proxy();
        if let Some(path) = ca_cert {
            let pem = std::fs::read(&path)
                .with_context(|| format!("--ca-cert: reading {}", path.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).with_context(|| {
                format!("--ca-cert: {} is not a PEM certificate", path.display())
            })?;
            anyhow::ensure!(
                !certs.is_empty(),
                "--ca-cert: {} holds no certificate",
                path.display()
            );
            builder = builder.tls_certs_merge(certs);
        }
        if let (Some(cert), Some(key)) = (client_cert, client_key) {
            let mut pem = std::fs::read(&cert)
                .with_context(|| format!("--client-cert: reading {}", cert.display()))?;
            pem.push(b'\n');
            pem.extend(
                std::fs::read(&key)
                    .with_context(|| format!("--client-key: reading {}", key.display()))?,
            );
            let identity = reqwest::Identity::from_pem(&pem)
                .context("--client-cert/--client-key: not a PEM certificate and key")?;
            builder = builder.identity(identity);
        }
        if let Some(token) = token {
            let mut value =
                reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.trim()))
                    .context("--token: a token is printable ASCII")?;
            value.set_sensitive(true);
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert(reqwest::header::AUTHORIZATION, value);
            builder = builder.default_headers(headers);
        }
        builder.build().context("building the HTTP client")
    }
}

/// What to add to an api error of `status`, so a refused client knows what to do.
pub fn hint(status: reqwest::StatusCode) -> &'static str {
    if status == reqwest::StatusCode::UNAUTHORIZED {
        "; pass --token or set OXSERVE_TOKEN"
    } else {
        ""
    }
}

//! TLS and bearer-token auth for every port oxserve listens on: the server's REST and gRPC
//! ports, the router's and the api port share this one implementation.
//!
//! - [`tls`]: a rustls `ServerConfig` from PEM files (`--tls-cert`, `--tls-key`), with
//!   client certificates required and verified when `--tls-client-ca` is given (mTLS); ALPN
//!   offers `h2` and `http/1.1` so gRPC and REST share it.
//! - [`listener`]: [`Acceptor`], a TCP listener that hands out connections after their TLS
//!   handshake (run off the accept loop, bounded in time and number), usable from hyper
//!   accept loops and `axum::serve`.
//! - [`token`]: token files (`--auth-token-file`), one token per line, re-read when they
//!   change; compared in constant time.
//! - [`auth`]: the tower layer that answers 401 + `WWW-Authenticate: Bearer` (or gRPC
//!   `UNAUTHENTICATED`) without a valid token, and lets health checks through.

pub mod auth;
pub mod listener;
pub mod tls;
pub mod token;

use std::path::PathBuf;

pub use auth::{AuthLayer, OpenPaths};
pub use listener::{Acceptor, Stream};
pub use rustls::ServerConfig;
pub use tls::{TlsFiles, server_config};
pub use token::{TokenFile, Tokens};

/// What can go wrong reading the TLS and token files.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("reading {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    /// A file was read but does not hold what it should.
    #[error("{}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
    /// rustls refused the certificates or key.
    #[error("tls: {0}")]
    Tls(#[from] rustls::Error),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in the agent.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A storage URI that cannot be used.
    #[error("storage uri {uri:?}: {reason}")]
    InvalidUri { uri: String, reason: String },
    /// The object store failed.
    #[error("{uri}: {source}")]
    Store {
        uri: String,
        #[source]
        source: object_store::Error,
    },
    /// Nothing exists at the URI.
    #[error("{uri}: no object or prefix found")]
    NotFound { uri: String },
    /// A downloaded object did not match what the store said about it.
    #[error("{uri}: {location}: {reason}")]
    Verify { uri: String, location: String, reason: String },
    /// An archive is malformed or unsafe.
    #[error("archive {archive:?}: {reason}")]
    Archive { archive: String, reason: String },
    /// A local file operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A config file is invalid.
    #[error("config {}: {reason}", path.display())]
    Config { path: PathBuf, reason: String },
    /// An HTTP exchange with a sink or a model server failed.
    #[error("{0}")]
    Http(String),
    /// Bad flags or options.
    #[error("{0}")]
    Invalid(String),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}

//! The server's error type; every variant maps to one [`ErrorCode`] and so to one HTTP
//! status and one gRPC code.

use oxserve_protocol::{ErrorCode, ProtocolError};

/// Everything that can go wrong while loading or running a model.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The request was malformed or does not fit the model.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// A model file could not be read or understood.
    #[error("model \"{model}\": {message}")]
    Load { model: String, message: String },
    /// The runtime failed while running a model.
    #[error("model \"{model}\": inference failed: {message}")]
    Runtime { model: String, message: String },
    /// The model's queue is full or it is not ready.
    #[error("{0}")]
    Unavailable(String),
    /// The request waited longer than its timeout.
    #[error("{0}")]
    Timeout(String),
}

impl Error {
    /// The transport-independent code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Protocol(p) => p.code,
            Error::Load { .. } | Error::Runtime { .. } => ErrorCode::Internal,
            Error::Unavailable(_) => ErrorCode::Unavailable,
            Error::Timeout(_) => ErrorCode::DeadlineExceeded,
        }
    }

    /// A 400 error with the given message.
    pub fn invalid(message: impl Into<String>) -> Error {
        Error::Protocol(ProtocolError::invalid(message))
    }

    /// A 404 error with the given message.
    pub fn not_found(message: impl Into<String>) -> Error {
        Error::Protocol(ProtocolError::not_found(message))
    }

    /// A load failure of `model`.
    pub fn load(model: impl Into<String>, message: impl std::fmt::Display) -> Error {
        Error::Load { model: model.into(), message: message.to_string() }
    }

    /// An inference failure of `model`.
    pub fn runtime(model: impl Into<String>, message: impl std::fmt::Display) -> Error {
        Error::Runtime { model: model.into(), message: message.to_string() }
    }

    /// As a protocol error (code + message), for the transports.
    pub fn to_protocol(&self) -> ProtocolError {
        match self {
            Error::Protocol(p) => p.clone(),
            other => ProtocolError::new(other.code(), other.to_string()),
        }
    }
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> tonic::Status {
        tonic::Status::new(e.code().grpc_code(), e.to_string())
    }
}

/// Result with the server [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

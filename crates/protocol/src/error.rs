//! The one error-code table shared by REST and gRPC, and the protocol crate's error type.
//!
//! Every failure anywhere in oxserve maps to an [`ErrorCode`]; the code alone decides the
//! HTTP status and the gRPC status code, so the two frontends can never disagree.

/// What kind of failure happened, independent of transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The request is malformed or does not fit the model (400 / INVALID_ARGUMENT).
    InvalidArgument,
    /// Unknown model, version or route (404 / NOT_FOUND).
    NotFound,
    /// The body exceeds the configured limit (413 / RESOURCE_EXHAUSTED).
    PayloadTooLarge,
    /// The server is overloaded or the model is not ready (503 / UNAVAILABLE).
    Unavailable,
    /// The feature exists in the protocol but not here (501 / UNIMPLEMENTED).
    Unimplemented,
    /// The model or server failed (500 / INTERNAL).
    Internal,
    /// The request's deadline passed before it ran (504 / DEADLINE_EXCEEDED).
    DeadlineExceeded,
    /// The client took longer than allowed to send the request body (408; gRPC clients
    /// get DEADLINE_EXCEEDED).
    RequestTimeout,
}

impl ErrorCode {
    /// HTTP status code for REST responses.
    pub const fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidArgument => 400,
            ErrorCode::NotFound => 404,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::Internal => 500,
            ErrorCode::Unimplemented => 501,
            ErrorCode::Unavailable => 503,
            ErrorCode::DeadlineExceeded => 504,
            ErrorCode::RequestTimeout => 408,
        }
    }

    /// gRPC status code for gRPC responses.
    pub const fn grpc_code(self) -> tonic::Code {
        match self {
            ErrorCode::InvalidArgument => tonic::Code::InvalidArgument,
            ErrorCode::NotFound => tonic::Code::NotFound,
            ErrorCode::PayloadTooLarge => tonic::Code::ResourceExhausted,
            ErrorCode::Internal => tonic::Code::Internal,
            ErrorCode::Unimplemented => tonic::Code::Unimplemented,
            ErrorCode::Unavailable => tonic::Code::Unavailable,
            ErrorCode::DeadlineExceeded | ErrorCode::RequestTimeout => {
                tonic::Code::DeadlineExceeded
            }
        }
    }

    /// Short label for metrics (`outcome="invalid_argument"`).
    pub const fn label(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::NotFound => "not_found",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::Internal => "internal",
            ErrorCode::Unimplemented => "unimplemented",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::DeadlineExceeded => "deadline_exceeded",
            ErrorCode::RequestTimeout => "request_timeout",
        }
    }
}

/// A protocol-level failure: a code plus a lowercase message that says what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ProtocolError {
    pub code: ErrorCode,
    pub message: String,
}

impl ProtocolError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ProtocolError {
        ProtocolError { code, message: message.into() }
    }

    /// A 400 / INVALID_ARGUMENT error.
    pub fn invalid(message: impl Into<String>) -> ProtocolError {
        ProtocolError::new(ErrorCode::InvalidArgument, message)
    }

    /// A 404 / NOT_FOUND error.
    pub fn not_found(message: impl Into<String>) -> ProtocolError {
        ProtocolError::new(ErrorCode::NotFound, message)
    }

    /// The `{"error": "…"}` body every REST error carries.
    pub fn to_json_body(&self) -> String {
        serde_json::json!({ "error": self.message }).to_string()
    }
}

impl From<ProtocolError> for tonic::Status {
    fn from(e: ProtocolError) -> tonic::Status {
        tonic::Status::new(e.code.grpc_code(), e.message)
    }
}

/// Result with [`ProtocolError`] as the default error.
pub type Result<T, E = ProtocolError> = std::result::Result<T, E>;

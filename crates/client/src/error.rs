//! The client's error type: what the server refused, what failed on the way, and what could
//! not be read back.

use std::fmt::Write as _;

/// Any failure of a [`crate::RestClient`] or [`crate::GrpcClient`] call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The server answered with an error: `status` is the HTTP status (REST) or the numeric
    /// gRPC status code (`tonic::Code as u16`, gRPC); `message` is the server's own message
    /// (the `{"error": …}` member, the gRPC status message, or the body text).
    #[error("server error {status}: {message}")]
    Server { status: u16, message: String },
    /// The request did not reach the server or its answer did not come back (connection
    /// refused, reset, timeout, malformed HTTP).
    #[error("transport error: {0}")]
    Transport(String),
    /// The server answered, but the answer is not a valid V2 message.
    #[error("cannot decode the server's answer: {0}")]
    Decode(String),
    /// The client was given something it cannot use (a malformed URL or address).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// Result with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The HTTP status or gRPC code when the server refused the request.
    pub fn server_status(&self) -> Option<u16> {
        match self {
            Error::Server { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// `err` and its sources, joined by `": "`, since transport errors often say little at the
/// top level ("error sending request") and the cause is further down.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        // Some layers repeat their source's message in their own; skip exact repeats.
        if !out.ends_with(&text) {
            let _ = write!(out, ": {text}");
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn error_chain_includes_sources() {
        let e = Outer(std::io::Error::other("connection refused"));
        assert_eq!(error_chain(&e), "outer: connection refused");
    }

    #[test]
    fn server_status_only_for_server_errors() {
        let e = Error::Server { status: 404, message: "model \"m\" not found".into() };
        assert_eq!(e.server_status(), Some(404));
        assert_eq!(e.to_string(), "server error 404: model \"m\" not found");
        assert_eq!(Error::Transport("reset".into()).server_status(), None);
    }
}

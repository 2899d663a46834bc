//! The router's one error type: every failure maps to an HTTP status, a gRPC code and a
//! metric label from the same table, so REST and gRPC clients can never be told different
//! things about the same failure.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::body::{Body, full};

/// What went wrong with a request, with a message that names what was looked up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// No service, component or revision matches the request.
    #[error("{0}")]
    NotFound(String),
    /// The request itself is malformed (e.g. a gRPC frame the router cannot read).
    #[error("{0}")]
    BadRequest(String),
    /// The body is over the configured limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The activator's queue for the revision is full.
    #[error("{0}")]
    QueueFull(String),
    /// The client did not send its request body within the body read timeout.
    #[error("{0}")]
    BodyTimeout(String),
    /// The request waited (and ran) longer than its revision's timeout.
    #[error("{0}")]
    Timeout(String),
    /// The replica refused the connection or went away before answering.
    #[error("{0}")]
    BadGateway(String),
}

/// `Result` with the router's error.
pub type Result<T, E = RouteError> = std::result::Result<T, E>;

/// Errors of the router's configuration and of routes files.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("{0}")]
    Invalid(String),
}

impl RouteError {
    /// The HTTP status a REST client gets.
    pub fn status(&self) -> StatusCode {
        match self {
            RouteError::NotFound(_) => StatusCode::NOT_FOUND,
            RouteError::BadRequest(_) => StatusCode::BAD_REQUEST,
            RouteError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            RouteError::QueueFull(_) => StatusCode::SERVICE_UNAVAILABLE,
            RouteError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            RouteError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            RouteError::BadGateway(_) => StatusCode::BAD_GATEWAY,
        }
    }

    /// The gRPC status code a gRPC client gets.
    pub fn grpc_code(&self) -> u8 {
        match self {
            RouteError::NotFound(_) => 5,        // NOT_FOUND
            RouteError::BadRequest(_) => 3,      // INVALID_ARGUMENT
            RouteError::PayloadTooLarge(_) => 8, // RESOURCE_EXHAUSTED
            RouteError::QueueFull(_) => 14,      // UNAVAILABLE
            RouteError::BodyTimeout(_) => 4,     // DEADLINE_EXCEEDED
            RouteError::Timeout(_) => 4,         // DEADLINE_EXCEEDED
            RouteError::BadGateway(_) => 14,     // UNAVAILABLE
        }
    }

    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            RouteError::NotFound(_) => "not_found",
            RouteError::BadRequest(_) => "bad_request",
            RouteError::PayloadTooLarge(_) => "too_large",
            RouteError::QueueFull(_) => "queue_full",
            RouteError::BodyTimeout(_) => "body_timeout",
            RouteError::Timeout(_) => "timeout",
            RouteError::BadGateway(_) => "bad_gateway",
        }
    }

    /// The response for a REST (`grpc == false`) or gRPC client.
    pub fn into_response(self, grpc: bool, revision: Option<&str>) -> Response<Body> {
        let mut response = if grpc {
            grpc_status(self.grpc_code(), &self.to_string())
        } else {
            let body = serde_json::to_vec(&serde_json::json!({ "error": self.to_string() }))
                .unwrap_or_default();
            let mut r = Response::new(full(Bytes::from(body)));
            *r.status_mut() = self.status();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        };
        if let Some(rev) = revision.and_then(|r| HeaderValue::from_str(r).ok()) {
            response.headers_mut().insert(crate::REVISION_HEADER, rev);
        }
        match self {
            // A full queue is transient: tell the client when to come back.
            RouteError::QueueFull(_) => {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            // The rest of a body that stopped arriving is never read, so the connection
            // cannot carry another request.
            RouteError::BodyTimeout(_) if !grpc => {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        response
    }
}

/// A trailers-only gRPC response carrying `code` and `message`.
pub fn grpc_status(code: u8, message: &str) -> Response<Body> {
    let mut r = Response::new(full(Bytes::new()));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    h.insert("grpc-status", HeaderValue::from(u16::from(code)));
    if let Ok(v) = HeaderValue::from_str(&percent_encode(message)) {
        h.insert("grpc-message", v);
    }
    r
}

/// gRPC's `grpc-message` encoding: printable ASCII except `%` as is, the rest `%XX`.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_and_grpc_agree_on_each_error() {
        let e = RouteError::NotFound("no service for host \"x\"".into());
        let rest = e.clone().into_response(false, None);
        assert_eq!(rest.status(), StatusCode::NOT_FOUND);
        let grpc = e.into_response(true, Some("iris-1"));
        assert_eq!(grpc.status(), StatusCode::OK);
        assert_eq!(grpc.headers()["grpc-status"], "5");
        assert_eq!(grpc.headers()["grpc-message"], "no service for host \"x\"");
        assert_eq!(grpc.headers()[crate::REVISION_HEADER], "iris-1");
    }

    #[test]
    fn a_full_queue_says_when_to_retry_and_a_body_timeout_closes() {
        let full = RouteError::QueueFull("queue is full".into()).into_response(false, None);
        assert_eq!(full.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(full.headers()[header::RETRY_AFTER], "1");
        let full = RouteError::QueueFull("queue is full".into()).into_response(true, None);
        assert_eq!(full.headers()["grpc-status"], "14");
        assert_eq!(full.headers()[header::RETRY_AFTER], "1");
        let slow = RouteError::BodyTimeout("too slow".into()).into_response(false, None);
        assert_eq!(slow.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(slow.headers()[header::CONNECTION], "close");
    }

    #[test]
    fn grpc_messages_are_percent_encoded() {
        assert_eq!(percent_encode("a%b\né"), "a%25b%0A%C3%A9");
    }
}

//! [`AuthLayer`]: requests must carry `Authorization: Bearer TOKEN` with a token of the
//! [`TokenFile`]; others are answered here and never reach the service.
//!
//! - HTTP: `401`, `WWW-Authenticate: Bearer realm="oxserve"` (with `error="invalid_token"`
//!   when a token was sent but is wrong, as RFC 6750 says) and `{"error": …}`.
//! - gRPC (`content-type: application/grpc…`): a trailers-only response with
//!   `grpc-status: 16` (`UNAUTHENTICATED`) and the reason in `grpc-message`.
//!
//! [`OpenPaths`] says what passes without a token: the health checks of the data plane
//! (probes carry no credentials), and on the api port, when configured, every read.

use std::task::{Context, Poll};

use bytes::Bytes;
use futures::TryFutureExt;
use futures::future::{Either as EitherFuture, MapOk, Ready, ready};
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{Either, Full};

use crate::token::TokenFile;

/// What passes without a token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenPaths {
    /// GET/HEAD of the V2 and V1 health endpoints (`/v2/health/live`, `/v2/health/ready`,
    /// `/v2/models/M[/versions/V]/ready`, V1's readiness `/v1/models/M`), and gRPC
    /// `ServerLive`, `ServerReady`, `ModelReady` and `grpc.health.v1.Health`.
    pub health: bool,
    /// Every GET and HEAD (the api port's `--api-read-open`).
    pub reads: bool,
}

impl OpenPaths {
    /// The data plane's: health checks open.
    pub const HEALTH: OpenPaths = OpenPaths { health: true, reads: false };
    /// Nothing open.
    pub const NONE: OpenPaths = OpenPaths { health: false, reads: false };

    /// Whether `method path` passes without a token.
    pub fn allows(&self, method: &Method, path: &str, grpc: bool) -> bool {
        if grpc {
            return self.health && is_grpc_health(path);
        }
        let read = method == Method::GET || method == Method::HEAD;
        read && (self.reads || (self.health && is_http_health(path)))
    }
}

fn is_http_health(path: &str) -> bool {
    if path == "/v2/health/live" || path == "/v2/health/ready" {
        return true;
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["v2", "models", m, "ready"] => !m.is_empty(),
        ["v2", "models", m, "versions", v, "ready"] => !m.is_empty() && !v.is_empty(),
        // V1's readiness is GET of the model itself (`:predict` and the rest are POSTs).
        ["v1", "models", m] => !m.is_empty() && !m.contains(':'),
        _ => false,
    }
}

fn is_grpc_health(path: &str) -> bool {
    matches!(
        path,
        "/inference.GRPCInferenceService/ServerLive"
            | "/inference.GRPCInferenceService/ServerReady"
            | "/inference.GRPCInferenceService/ModelReady"
            | "/grpc.health.v1.Health/Check"
            | "/grpc.health.v1.Health/Watch"
    )
}

/// Wraps a service so that requests need a token of `tokens`. Without tokens it lets
/// everything through (the service keeps one type either way).
#[derive(Debug, Clone, Default)]
pub struct AuthLayer {
    tokens: Option<TokenFile>,
    open: OpenPaths,
}

impl AuthLayer {
    /// Requests need a token of `tokens`, except what `open` lets through.
    pub fn new(tokens: TokenFile, open: OpenPaths) -> AuthLayer {
        AuthLayer { tokens: Some(tokens), open }
    }

    /// Requests need a token of `tokens` when there is a token file; else none does.
    pub fn optional(tokens: Option<TokenFile>, open: OpenPaths) -> AuthLayer {
        AuthLayer { tokens, open }
    }

    /// Lets every request through.
    pub fn off() -> AuthLayer {
        AuthLayer::default()
    }

    /// Whether requests need a token.
    pub fn is_on(&self) -> bool {
        self.tokens.is_some()
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Auth<S> {
        Auth { inner, tokens: self.tokens.clone(), open: self.open }
    }
}

/// The service [`AuthLayer`] makes.
#[derive(Debug, Clone)]
pub struct Auth<S> {
    inner: S,
    tokens: Option<TokenFile>,
    open: OpenPaths,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization` header.
    Missing,
    /// An `Authorization` header that is not `Bearer TOKEN`.
    NotBearer,
    /// A bearer token that is not one of the tokens.
    Invalid,
}

impl Refusal {
    /// What the client is told.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::Missing => "missing bearer token: send Authorization: Bearer TOKEN",
            Refusal::NotBearer => "the Authorization header must be Bearer TOKEN",
            Refusal::Invalid => "invalid bearer token",
        }
    }
}

/// Checks the request's `Authorization` header against `tokens`.
pub fn check<B>(request: &Request<B>, tokens: &TokenFile) -> Result<(), Refusal> {
    let Some(value) = request.headers().get(AUTHORIZATION) else {
        return Err(Refusal::Missing);
    };
    let value = value.to_str().map_err(|_| Refusal::NotBearer)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or(Refusal::NotBearer)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Refusal::NotBearer);
    }
    if tokens.accepts(token.trim()) { Ok(()) } else { Err(Refusal::Invalid) }
}

fn is_grpc<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// The answer to a refused request.
pub fn refusal_response(refusal: Refusal, grpc: bool) -> Response<Full<Bytes>> {
    let challenge = match refusal {
        Refusal::Invalid => r#"Bearer realm="oxserve", error="invalid_token""#,
        Refusal::Missing | Refusal::NotBearer => r#"Bearer realm="oxserve""#,
    };
    let mut builder =
        Response::builder().header(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    let body = if grpc {
        // Trailers-only: the status travels in the headers of an empty response.
        builder = builder
            .status(StatusCode::OK)
            .header(CONTENT_TYPE, "application/grpc")
            .header("grpc-status", "16")
            .header("grpc-message", refusal.message());
        Bytes::new()
    } else {
        builder = builder.status(StatusCode::UNAUTHORIZED).header(CONTENT_TYPE, "application/json");
        Bytes::from(format!("{{\"error\":\"{}\"}}", refusal.message()))
    };
    builder.body(Full::new(body)).unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// The response body: the service's, or the refusal's.
pub type AuthBody<B> = Either<B, Full<Bytes>>;

type Wrap<B> = fn(Response<B>) -> Response<AuthBody<B>>;

/// The response future of [`Auth`].
pub type AuthFuture<F, B, E> =
    EitherFuture<MapOk<F, Wrap<B>>, Ready<Result<Response<AuthBody<B>>, E>>>;

impl<S, ReqB, ResB> tower::Service<Request<ReqB>> for Auth<S>
where
    S: tower::Service<Request<ReqB>, Response = Response<ResB>>,
{
    type Response = Response<AuthBody<ResB>>;
    type Error = S::Error;
    type Future = AuthFuture<S::Future, ResB, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        let grpc = is_grpc(&request);
        let verdict = match &self.tokens {
            None => Ok(()),
            Some(_) if self.open.allows(request.method(), request.uri().path(), grpc) => Ok(()),
            Some(tokens) => check(&request, tokens),
        };
        let Err(refusal) = verdict else {
            let wrap: Wrap<ResB> = |r| r.map(Either::Left);
            return EitherFuture::Left(self.inner.call(request).map_ok(wrap));
        };
        tracing::debug!(path = request.uri().path(), ?refusal, "refused: no valid bearer token");
        EitherFuture::Right(ready(Ok(refusal_response(refusal, grpc).map(Either::Right))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_paths_are_open_and_nothing_else() {
        let open = OpenPaths::HEALTH;
        for p in [
            "/v2/health/live",
            "/v2/health/ready",
            "/v2/models/m/ready",
            "/v2/models/m/versions/1/ready",
            "/v1/models/m",
        ] {
            assert!(open.allows(&Method::GET, p, false), "{p}");
            assert!(!open.allows(&Method::POST, p, false), "POST {p}");
            assert!(!OpenPaths::NONE.allows(&Method::GET, p, false), "{p} with nothing open");
        }
        for p in [
            "/v2",
            "/v2/models/m",
            "/v2/models/m/infer",
            "/v2/models//ready",
            "/v1/models",
            "/v1/models/m:predict",
            "/metrics",
            "/v2/health/live/x",
            "/",
        ] {
            assert!(!open.allows(&Method::GET, p, false), "{p}");
        }
        assert!(open.allows(&Method::POST, "/inference.GRPCInferenceService/ServerReady", true));
        assert!(!open.allows(&Method::POST, "/inference.GRPCInferenceService/ModelInfer", true));
        assert!(!open.allows(&Method::GET, "/v2/health/live", true), "gRPC by gRPC paths");
    }

    #[test]
    fn read_open_lets_every_get_through_and_no_write() {
        let open = OpenPaths { health: false, reads: true };
        assert!(open.allows(
            &Method::GET,
            "/apis/serving.kserve.io/v1beta1/inferenceservices",
            false
        ));
        assert!(open.allows(&Method::HEAD, "/", false));
        assert!(!open.allows(&Method::PUT, "/apis/x", false));
        assert!(!open.allows(&Method::DELETE, "/apis/x", false));
    }

    #[test]
    fn refusals_say_why_in_http_and_grpc() {
        let r = refusal_response(Refusal::Invalid, false);
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            r.headers()[WWW_AUTHENTICATE],
            r#"Bearer realm="oxserve", error="invalid_token""#
        );
        assert_eq!(r.headers()[CONTENT_TYPE], "application/json");
        let g = refusal_response(Refusal::Missing, true);
        assert_eq!(g.status(), StatusCode::OK);
        assert_eq!(g.headers()["grpc-status"], "16");
        assert_eq!(g.headers()["grpc-message"], Refusal::Missing.message());
    }
}

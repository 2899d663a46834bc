//! The request path as one tower stack. Each layer does one thing and says why it is there
//! (see [`stack`]); requests and responses are one boxed body type so every layer composes.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use tower::{Service, ServiceBuilder};

use crate::activator::{InFlight, Permit, Refused, Revision};
use crate::body::{Body, BodyTimedOut, Deadline, Guarded, Prefixed, boxed, full};
use crate::error::RouteError;
use crate::grpc;
use crate::router::{Router, Shared};
use crate::table::{Compiled, Target, normalize_host};

type Req = Request<Body>;
type Resp = Response<Body>;
type Fut = BoxFuture<'static, Result<Resp, RouteError>>;

/// What the stack's services look like inside the outermost layer.
pub(crate) trait Inner:
    Service<Req, Response = Resp, Error = RouteError, Future = Fut> + Clone + Send + 'static
{
}
impl<T> Inner for T where
    T: Service<Req, Response = Resp, Error = RouteError, Future = Fut> + Clone + Send + 'static
{
}

/// The service one listener runs: `grpc_port` marks the gRPC listener, where every request
/// is gRPC; on the http port a request is gRPC when its content type says so.
pub fn stack(
    router: Router,
    grpc_port: bool,
) -> impl Service<
    Request<hyper::body::Incoming>,
    Response = Resp,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    stack_with(router, grpc_port, None)
}

/// [`stack`] for a listener whose every request is routed as if it carried `Host: pinned`
/// (a transformer's `--predictor_host` listener, see [`crate::serve::serve_pinned`]).
pub fn stack_with(
    router: Router,
    grpc_port: bool,
    pinned: Option<Arc<str>>,
) -> impl Service<
    Request<hyper::body::Incoming>,
    Response = Resp,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    let shared = router.shared.clone();
    ServiceBuilder::new()
        // One body type for every layer below (bodies stay streams, nothing is collected).
        .map_request(|req: Request<hyper::body::Incoming>| req.map(boxed))
        // Every failure becomes the client's error shape here: `{"error"}` or grpc-status.
        .layer_fn(|inner| Respond { inner, shared: shared.clone(), grpc_port })
        // A body over the limit is refused before any replica sees a byte, and one that
        // trickles in slower than the body read timeout is cut off (408).
        .layer_fn(|inner| LimitBody {
            inner,
            max: shared.config.max_body_bytes,
            timeout: shared.config.body_read_timeout,
        })
        // Which service: host, tag host, REST path or the first gRPC message's model name.
        .layer_fn(|inner| Resolve { inner, shared: shared.clone(), pinned: pinned.clone() })
        // The router's own endpoints (health, metadata, metrics) when no service is named.
        .layer_fn(|inner| Local { inner, router: router.clone() })
        // Split by weight, then wait in the activator for a ready replica with a free slot,
        // all within the revision's timeout; counts in-flight requests for the autoscaler.
        .layer_fn(|inner| Activate { inner, shared: shared.clone() })
        // Send to the replica over a pooled connection; idempotent GETs retried elsewhere.
        .service(Forward { shared: shared.clone() })
}

/// Whether the request is gRPC (set by [`Respond`]).
#[derive(Clone, Copy)]
struct Grpc(bool);

/// Where [`Resolve`] sent the request.
#[derive(Clone)]
enum Resolved {
    Target(Target, Lookup),
    Local,
}

/// What the request was routed by, kept so it can be routed again if its revision leaves
/// the table while it waits.
#[derive(Clone, Debug, Default)]
struct Lookup {
    host: Option<String>,
    model: Option<String>,
}

impl Lookup {
    fn find(&self, table: &Compiled) -> Option<Target> {
        if let Some(t) = self.host.as_ref().and_then(|h| table.hosts.get(h)) {
            return Some(t.clone());
        }
        self.model.as_ref().and_then(|m| table.models.get(m)).map(|c| Target::Component(c.clone()))
    }
}

/// The replica slot [`Activate`] took for the request.
#[derive(Clone)]
struct Assigned {
    revision: Arc<Revision>,
    permit: Arc<Permit>,
}

/// Calls a layer's inner service; every service of the stack is always ready.
fn call<S: Inner>(mut inner: S, req: Req) -> Fut {
    inner.call(req)
}

macro_rules! always_ready {
    () => {
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
    };
}

#[derive(Clone)]
struct Respond<S> {
    inner: S,
    shared: Arc<Shared>,
    grpc_port: bool,
}

impl<S: Inner> Service<Req> for Respond<S> {
    type Response = Resp;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<'static, Result<Resp, std::convert::Infallible>>;
    always_ready!();

    fn call(&mut self, mut req: Req) -> Self::Future {
        let grpc = self.grpc_port
            || req
                .headers()
                .get(header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        req.extensions_mut().insert(Grpc(grpc));
        let inner = self.inner.clone();
        let shared = self.shared.clone();
        Box::pin(async move {
            Ok(match call(inner, req).await {
                Ok(r) => r,
                Err(e) => {
                    shared.metrics.unrouted(e.label());
                    tracing::debug!(error = %e, "request not routed");
                    e.into_response(grpc, None)
                }
            })
        })
    }
}

#[derive(Clone)]
struct LimitBody<S> {
    inner: S,
    max: usize,
    timeout: std::time::Duration,
}

impl<S: Inner> Service<Req> for LimitBody<S> {
    type Response = Resp;
    type Error = RouteError;
    type Future = Fut;
    always_ready!();

    fn call(&mut self, req: Req) -> Fut {
        let max = self.max;
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(n) = declared.filter(|&n| n > max as u64) {
            return Box::pin(async move {
                Err(RouteError::PayloadTooLarge(format!(
                    "request body of {n} bytes is over the limit of {max} bytes"
                )))
            });
        }
        // REST bodies without a length are counted as they stream. A gRPC body is a stream
        // of messages (ModelStreamInfer may run for hours): the first message's length is
        // checked when its model name is read, each message's by the replica.
        let grpc = req.extensions().get::<Grpc>().is_some_and(|g| g.0);
        if grpc {
            return call(self.inner.clone(), req);
        }
        let timeout = self.timeout;
        let req = if declared.is_some() {
            req.map(|b| boxed(Deadline::new(b, timeout)))
        } else {
            req.map(|b| boxed(Deadline::new(boxed(http_body_util::Limited::new(b, max)), timeout)))
        };
        call(self.inner.clone(), req)
    }
}

#[derive(Clone)]
struct Resolve<S> {
    inner: S,
    shared: Arc<Shared>,
    /// The host every request is routed by, whatever it carries.
    pinned: Option<Arc<str>>,
}

impl<S: Inner> Service<Req> for Resolve<S> {
    type Response = Resp;
    type Error = RouteError;
    type Future = Fut;
    always_ready!();

    fn call(&mut self, mut req: Req) -> Fut {
        let inner = self.inner.clone();
        let shared = self.shared.clone();
        let pinned = self.pinned.clone();
        Box::pin(async move {
            let grpc = req.extensions().get::<Grpc>().is_some_and(|g| g.0);
            let host = match pinned {
                Some(h) => Some(normalize_host(&h)),
                None => req
                    .headers()
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .or_else(|| req.uri().authority().map(|a| a.as_str()))
                    .map(normalize_host),
            };
            let table = shared.table.load();
            let mut lookup = Lookup { host: None, model: None };
            if let Some(host) = host {
                if let Some(target) = table.hosts.get(&host) {
                    let target = target.clone();
                    lookup.host = Some(host);
                    req.extensions_mut().insert(Resolved::Target(target, lookup));
                    return call(inner, req).await;
                }
                let domain = &shared.config.domain;
                if host.len() > domain.len()
                    && host.ends_with(domain.as_str())
                    && host.as_bytes()[host.len() - domain.len() - 1] == b'.'
                {
                    return Err(RouteError::NotFound(format!("no service for host {host:?}")));
                }
            }
            let path = req.uri().path().to_owned();
            let model = if grpc {
                match grpc::method(&path) {
                    grpc::Method::Server(_) => None,
                    grpc::Method::Model => {
                        drop(table);
                        let (model, body) = peek_model(
                            std::mem::replace(req.body_mut(), full(Bytes::new())),
                            shared.config.max_body_bytes,
                        )
                        .await?;
                        *req.body_mut() = body;
                        Some(model)
                    }
                    grpc::Method::Other => {
                        return Err(RouteError::NotFound(format!(
                            "grpc method {path:?} names no model: reach it through a service host"
                        )));
                    }
                }
            } else {
                model_in_path(&path).map(str::to_owned)
            };
            let table = shared.table.load();
            match model {
                Some(model) => match table.models.get(&model) {
                    Some(component) => {
                        let target = Target::Component(component.clone());
                        lookup.model = Some(model);
                        req.extensions_mut().insert(Resolved::Target(target, lookup));
                    }
                    None => {
                        return Err(RouteError::NotFound(format!(
                            "no service for model {model:?} (looked up from {})",
                            if grpc { "the grpc request's model name" } else { "the request path" }
                        )));
                    }
                },
                None => {
                    req.extensions_mut().insert(Resolved::Local);
                }
            }
            call(inner, req).await
        })
    }
}

/// The model name in a V1 (`/v1/models/NAME[:verb]`) or V2 (`/v2/models/NAME[/…]`) path.
fn model_in_path(path: &str) -> Option<&str> {
    if let Some(rest) = path.strip_prefix("/v2/models/") {
        let name = rest.split('/').next().unwrap_or("");
        return (!name.is_empty() && name != "stats").then_some(name);
    }
    if let Some(rest) = path.strip_prefix("/v1/models/") {
        let name = rest.split(['/', ':']).next().unwrap_or("");
        return (!name.is_empty()).then_some(name);
    }
    None
}

/// Reads the body until field 1 of the first gRPC message is known; returns it and the body
/// with the bytes read put back in front.
async fn peek_model(mut body: Body, max: usize) -> Result<(String, Body), RouteError> {
    let mut buf = BytesMut::new();
    loop {
        if let grpc::Scan::Found(name) = grpc::scan(&buf, max)? {
            return Ok((name, boxed(Prefixed::new(buf.freeze(), body))));
        }
        match body.frame().await {
            None => {
                return Err(RouteError::BadRequest(format!(
                    "malformed grpc request: the body ends after {} bytes, inside the first message",
                    buf.len()
                )));
            }
            Some(Err(e)) => {
                return Err(body_error(e.as_ref(), "reading the grpc request"));
            }
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                }
            }
        }
    }
}

fn body_error(e: &(dyn std::error::Error + 'static), doing: &str) -> RouteError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return RouteError::PayloadTooLarge(format!("{doing}: request body is over the limit"));
        }
        source = err.source();
    }
    RouteError::BadRequest(format!("{doing}: {e}"))
}

#[derive(Clone)]
struct Local<S> {
    inner: S,
    router: Router,
}

impl<S: Inner> Service<Req> for Local<S> {
    type Response = Resp;
    type Error = RouteError;
    type Future = Fut;
    always_ready!();

    fn call(&mut self, req: Req) -> Fut {
        if !matches!(req.extensions().get::<Resolved>(), Some(Resolved::Local)) {
            return call(self.inner.clone(), req);
        }
        let grpc = req.extensions().get::<Grpc>().is_some_and(|g| g.0);
        let ready = self.router.is_ready();
        let path = req.uri().path().to_owned();
        let response = if grpc {
            match grpc::method(&path) {
                grpc::Method::Server(m) => Ok(grpc::server_response(m, ready)),
                _ => Err(RouteError::NotFound(format!("grpc method {path:?} names no model"))),
            }
        } else {
            let status =
                |ok: bool| if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
            match (req.method(), path.as_str()) {
                (&Method::GET, "/v2/health/live") => Ok(empty(StatusCode::OK)),
                (&Method::GET, "/v2/health/ready") => Ok(empty(status(ready))),
                (&Method::GET, "/v2") => {
                    let body = serde_json::json!({
                        "name": crate::SERVER_NAME,
                        "version": env!("CARGO_PKG_VERSION"),
                        "extensions": [],
                    });
                    let mut r = Response::new(full(Bytes::from(body.to_string())));
                    r.headers_mut()
                        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                    Ok(r)
                }
                (&Method::GET, "/metrics") => {
                    let mut r = Response::new(full(Bytes::from(self.router.metrics_text())));
                    r.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static(
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        ),
                    );
                    Ok(r)
                }
                _ => Err(RouteError::NotFound(format!(
                    "no service for {} {path:?}: no host names one and the path names no model",
                    req.method()
                ))),
            }
        };
        Box::pin(async move { response })
    }
}

fn empty(status: StatusCode) -> Resp {
    let mut r = Response::new(full(Bytes::new()));
    *r.status_mut() = status;
    r
}

#[derive(Clone)]
struct Activate<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// What the response body keeps alive: the request counts as in flight until it is sent.
struct Held(#[allow(dead_code)] InFlight);

impl<S: Inner> Service<Req> for Activate<S> {
    type Response = Resp;
    type Error = RouteError;
    type Future = Fut;
    always_ready!();

    fn call(&mut self, mut req: Req) -> Fut {
        let inner = self.inner.clone();
        let shared = self.shared.clone();
        Box::pin(async move {
            let started = Instant::now();
            let grpc = req.extensions().get::<Grpc>().is_some_and(|g| g.0);
            let Some(Resolved::Target(mut target, lookup)) =
                req.extensions_mut().remove::<Resolved>()
            else {
                return Err(RouteError::NotFound("request reached the activator unrouted".into()));
            };
            let waker = Router { shared: shared.clone() }.waker();
            let mut rerouted = 0;
            loop {
                let revision = match &target {
                    Target::Revision(r) => r.clone(),
                    Target::Component(c) => match c.pick() {
                        Some(r) => {
                            r.metrics.split.inc();
                            r.clone()
                        }
                        None => {
                            return Err(RouteError::NotFound(format!(
                                "service {:?} {}: no revision has traffic",
                                c.service, c.component
                            )));
                        }
                    },
                };
                let in_flight = revision.arrive();
                let timeout = revision.settings().timeout;
                let deadline = tokio::time::Instant::from_std(started + timeout);
                let fail = |e: RouteError| {
                    shared.metrics.request(&revision.name, e.status().as_u16());
                    Ok(e.into_response(grpc, Some(&revision.name)))
                };
                let permit = match tokio::time::timeout_at(deadline, revision.acquire(&waker, None))
                    .await
                {
                    Ok(Ok(permit)) => permit,
                    Ok(Err(Refused::Removed)) => {
                        drop(in_flight);
                        rerouted += 1;
                        match lookup.find(&shared.table.load()) {
                            Some(t) if rerouted < 10 => {
                                target = t;
                                continue;
                            }
                            _ => {
                                return Err(RouteError::NotFound(format!(
                                    "revision {:?} left the route table and nothing replaces it",
                                    revision.name
                                )));
                            }
                        }
                    }
                    Ok(Err(Refused::QueueFull(depth))) => {
                        return fail(RouteError::QueueFull(format!(
                            "revision {:?}: activator queue is full ({depth} requests waiting)",
                            revision.name
                        )));
                    }
                    Err(_) => {
                        return fail(RouteError::Timeout(format!(
                            "revision {:?}: no ready replica within the timeout of {} s",
                            revision.name,
                            timeout.as_secs()
                        )));
                    }
                };
                req.extensions_mut()
                    .insert(Assigned { revision: revision.clone(), permit: Arc::new(permit) });
                let result = tokio::time::timeout_at(deadline, call(inner.clone(), req)).await;
                let mut response = match result {
                    Ok(Ok(r)) => r,
                    Ok(Err(e)) => return fail(e),
                    Err(_) => {
                        return fail(RouteError::Timeout(format!(
                            "revision {:?}: the replica did not answer within the timeout of {} s",
                            revision.name,
                            timeout.as_secs()
                        )));
                    }
                };
                revision.metrics.latency.observe(started.elapsed().as_secs_f64());
                shared.metrics.request(&revision.name, response.status().as_u16());
                response.headers_mut().insert(crate::REVISION_HEADER, revision.header.clone());
                return Ok(response.map(|b| boxed(Guarded::new(b, Held(in_flight)))));
            }
        })
    }
}

#[derive(Clone)]
struct Forward {
    shared: Arc<Shared>,
}

impl Service<Req> for Forward {
    type Response = Resp;
    type Error = RouteError;
    type Future = Fut;
    always_ready!();

    fn call(&mut self, mut req: Req) -> Fut {
        let shared = self.shared.clone();
        Box::pin(async move {
            let grpc = req.extensions().get::<Grpc>().is_some_and(|g| g.0);
            let Some(Assigned { revision, mut permit }) = req.extensions_mut().remove::<Assigned>()
            else {
                return Err(RouteError::BadGateway(
                    "request reached the proxy without a replica".into(),
                ));
            };
            // A GET or HEAD carries no body, so it can be sent again to another replica.
            let retry = (req.method() == Method::GET || req.method() == Method::HEAD)
                .then(|| (req.method().clone(), req.uri().clone(), req.headers().clone()));
            let mut attempts = 0;
            loop {
                let replica = permit.replica.clone();
                let authority = if grpc {
                    match &replica.grpc {
                        Some(a) => a,
                        None => {
                            return Err(RouteError::BadGateway(format!(
                                "revision {:?} replica {:?} has no grpc port",
                                revision.name, replica.id
                            )));
                        }
                    }
                } else {
                    &replica.http
                };
                match shared.clients.send(grpc, authority, req).await {
                    Ok(response) => {
                        let mut response = response.map(|b| boxed(Guarded::new(b, permit)));
                        crate::proxy::strip_hop_by_hop(response.headers_mut());
                        return Ok(response);
                    }
                    Err(e) => {
                        // The client's body was too large or too slow: not the replica's fault.
                        if let Some(limit) = limit_error(&e) {
                            return Err(limit);
                        }
                        let refused = e.is_connect();
                        revision.replica_failed(&replica);
                        let what = if refused {
                            "refused the connection"
                        } else {
                            "closed the connection before answering"
                        };
                        tracing::warn!(revision = %revision.name, replica = %replica.id, error = %e, "{what}");
                        attempts += 1;
                        let Some((method, uri, headers)) = retry.as_ref().filter(|_| attempts < 3)
                        else {
                            return Err(RouteError::BadGateway(format!(
                                "revision {:?} replica {:?} ({}) {what}: {}",
                                revision.name,
                                replica.id,
                                replica.url,
                                source_chain(&e)
                            )));
                        };
                        let waker = Router { shared: shared.clone() }.waker();
                        permit = match revision.acquire(&waker, Some(&replica)).await {
                            Ok(p) => Arc::new(p),
                            Err(_) => {
                                return Err(RouteError::BadGateway(format!(
                                    "revision {:?} replica {:?} {what} and no other replica is left",
                                    revision.name, replica.id
                                )));
                            }
                        };
                        let mut again = Request::new(full(Bytes::new()));
                        *again.method_mut() = method.clone();
                        *again.uri_mut() = uri.clone();
                        *again.headers_mut() = headers.clone();
                        req = again;
                    }
                }
            }
        })
    }
}

fn limit_error(e: &hyper_util::client::legacy::Error) -> Option<RouteError> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return Some(RouteError::PayloadTooLarge("request body is over the limit".into()));
        }
        if let Some(slow) = err.downcast_ref::<BodyTimedOut>() {
            return Some(RouteError::BodyTimeout(slow.to_string()));
        }
        source = err.source();
    }
    None
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(err) = source {
        s.push_str(": ");
        s.push_str(&err.to_string());
        source = err.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_come_from_v1_and_v2_paths() {
        assert_eq!(model_in_path("/v2/models/iris/infer"), Some("iris"));
        assert_eq!(model_in_path("/v2/models/iris/versions/1/infer"), Some("iris"));
        assert_eq!(model_in_path("/v2/models/iris"), Some("iris"));
        assert_eq!(model_in_path("/v1/models/iris:predict"), Some("iris"));
        assert_eq!(model_in_path("/v1/models/iris"), Some("iris"));
        assert_eq!(model_in_path("/v2/models/stats"), None);
        assert_eq!(model_in_path("/v2/health/ready"), None);
        assert_eq!(model_in_path("/v2/models/"), None);
    }
}

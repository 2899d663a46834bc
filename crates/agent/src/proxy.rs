//! The agent's HTTP front: a reverse proxy to the model server that logs inference payloads
//! and batches inference requests when those are enabled.
//!
//! Every request is forwarded as it is, except inference requests (`/v1/models/{m}:predict`,
//! `/v2/models/{m}[/versions/{v}]/infer`), which are logged (request before, response after,
//! one `ce-id` for both, failures included) and, with the batcher on, merged with concurrent
//! ones. Bodies are read once into reference-counted buffers that the upstream call and the
//! logger share. `GET /oxserve/agent/models` reports the model watcher's state, and
//! `GET /metrics` is the server's metrics followed by the payload logger's counters.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};

use crate::batcher::{Batcher, BatcherConfig, Reply, Submitted, classify};
use crate::logger::{Event, EventKind, PayloadLogger};
use crate::watcher::ModelStates;
use crate::{Error, Result};

const INFERENCE_HEADER: &str = "inference-header-content-length";

/// What the proxy does besides forwarding.
#[derive(Clone)]
pub struct ProxyState {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    upstream: String,
    logger: Option<PayloadLogger>,
    batcher: Option<Batcher>,
    models: Option<ModelStates>,
    max_body_bytes: usize,
}

impl std::fmt::Debug for ProxyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyState").field("upstream", &self.inner.upstream).finish_non_exhaustive()
    }
}

impl ProxyState {
    /// A proxy to `upstream` (e.g. `http://127.0.0.1:8080`). Starts the batcher task when
    /// `batcher` is set (needs a Tokio runtime).
    pub fn new(
        upstream: &str,
        logger: Option<PayloadLogger>,
        batcher: Option<BatcherConfig>,
        models: Option<ModelStates>,
        max_body_bytes: usize,
    ) -> Result<ProxyState> {
        let upstream = upstream.trim_end_matches('/').to_owned();
        url::Url::parse(&upstream)
            .map_err(|e| Error::Invalid(format!("upstream {upstream:?}: {e}")))?;
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| Error::Http(format!("building the upstream client: {e}")))?;
        let batcher = match batcher {
            None => None,
            Some(cfg) => {
                let (client, base) = (client.clone(), upstream.clone());
                let send: crate::batcher::Upstream = Arc::new(move |path, ct, hl, body| {
                    let (client, url) = (client.clone(), format!("{base}{path}"));
                    Box::pin(async move {
                        let mut req = client.post(url).header(header::CONTENT_TYPE, ct);
                        if let Some(n) = hl {
                            req = req.header(INFERENCE_HEADER, n.to_string());
                        }
                        let resp =
                            req.body(body).send().await.map_err(|e| Error::Http(e.to_string()))?;
                        let status = resp.status().as_u16();
                        let content_type =
                            header_str(resp.headers(), header::CONTENT_TYPE.as_str()).to_owned();
                        let header_length =
                            header_str(resp.headers(), INFERENCE_HEADER).parse().ok();
                        let body = resp.bytes().await.map_err(|e| Error::Http(e.to_string()))?;
                        Ok(Reply { status, content_type, header_length, body })
                    })
                });
                Some(Batcher::start(cfg, send)?)
            }
        };
        Ok(ProxyState {
            inner: Arc::new(Inner { client, upstream, logger, batcher, models, max_body_bytes }),
        })
    }

    /// The payload logger, if any.
    pub fn logger(&self) -> Option<&PayloadLogger> {
        self.inner.logger.as_ref()
    }
}

/// The proxy's routes.
pub fn router(state: ProxyState) -> Router {
    Router::new()
        .route("/oxserve/agent/models", axum::routing::get(models))
        .route("/metrics", axum::routing::get(metrics))
        .fallback(proxy)
        .with_state(state)
}

/// Serves the proxy on `listener` until `shutdown`, drains in-flight requests, then delivers
/// (or spills) every queued payload log event.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ProxyState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let logger = state.inner.logger.clone();
    axum::serve(listener, router(state).into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| Error::Http(format!("serving: {e}")))?;
    if let Some(l) = logger {
        let c = l.shutdown().await;
        tracing::info!(
            sent = c.sent,
            failed = c.failed,
            dropped = c.dropped,
            spilled = c.spilled,
            "payload logger flushed"
        );
    }
    Ok(())
}

async fn models(State(state): State<ProxyState>) -> Response {
    match &state.inner.models {
        Some(m) => axum::Json(m.snapshot()).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({"error": "the model watcher is not enabled"})),
        )
            .into_response(),
    }
}

/// The server's `/metrics` (when it answers) with the logger's counters appended, so one
/// scrape of the agent's port sees both.
async fn metrics(State(state): State<ProxyState>) -> Response {
    let s = &state.inner;
    let mut text = match s.client.get(format!("{}/metrics", s.upstream)).send().await {
        Ok(r) if r.status().is_success() => r.text().await.unwrap_or_default(),
        Ok(r) => {
            tracing::debug!(status = %r.status(), "upstream /metrics failed");
            String::new()
        }
        Err(e) => {
            tracing::debug!(error = %e, "upstream /metrics failed");
            String::new()
        }
    };
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    if let Some(l) = &s.logger {
        text.push_str(&l.render_metrics());
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

fn new_id() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!(
        "{:012x}-{:06x}-{:08x}",
        nanos as u64 & 0xffff_ffff_ffff,
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn error(status: StatusCode, msg: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": msg }))).into_response()
}

/// Hop-by-hop headers, which a proxy must not forward.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "host"
            | "content-length"
    )
}

async fn proxy(State(state): State<ProxyState>, req: Request) -> Response {
    let s = &state.inner;
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, s.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("request body larger than {} bytes", s.max_body_bytes),
            );
        }
    };
    let path = parts.uri.path().to_owned();
    let inference = if parts.method == http::Method::POST { classify(&path) } else { None };
    let log = inference.is_some().then_some(s.logger.as_ref()).flatten();
    let id = header_str(&parts.headers, "ce-id").to_owned();
    let id = if id.is_empty() { new_id() } else { id };
    let model = inference.as_ref().map(|(_, m)| m.clone()).unwrap_or_default();
    if let Some(l) = log {
        l.log(Event {
            id: id.clone(),
            kind: EventKind::Request,
            model: model.clone(),
            content_type: header_str(&parts.headers, "content-type").to_owned(),
            body: body.clone(),
            status: None,
        })
        .await;
    }
    let header_length = header_str(&parts.headers, INFERENCE_HEADER).parse().ok();
    let batched = match (&s.batcher, &inference) {
        (Some(b), Some(_)) => match b.submit(&path, header_length, &body).await {
            Submitted::Reply(r) => Some(r),
            Submitted::PassThrough => None,
        },
        _ => None,
    };
    let (status, headers, resp_body) = match batched {
        Some(r) => {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&r.content_type) {
                h.insert(header::CONTENT_TYPE, v);
            }
            if let Some(n) = r.header_length {
                h.insert(INFERENCE_HEADER, HeaderValue::from(n));
            }
            (StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_GATEWAY), h, r.body)
        }
        None => match forward(s, &parts, body).await {
            Ok(x) => x,
            Err(e) => {
                let msg = format!("upstream {}: {e}", s.upstream);
                let b = Bytes::from(serde_json::json!({ "error": msg }).to_string());
                let mut h = HeaderMap::new();
                h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                (StatusCode::BAD_GATEWAY, h, b)
            }
        },
    };
    if let Some(l) = log {
        l.log(Event {
            id: id.clone(),
            kind: EventKind::Response,
            model,
            content_type: header_str(&headers, "content-type").to_owned(),
            body: resp_body.clone(),
            status: Some(status.as_u16()),
        })
        .await;
    }
    let mut resp = Response::new(Body::from(resp_body));
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}

async fn forward(
    s: &Inner,
    parts: &http::request::Parts,
    body: Bytes,
) -> Result<(StatusCode, HeaderMap, Bytes)> {
    let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut req = s.client.request(parts.method.clone(), format!("{}{pq}", s.upstream));
    for (k, v) in &parts.headers {
        if !hop_by_hop(k) {
            req = req.header(k, v);
        }
    }
    let resp = req.body(body).send().await.map_err(|e| Error::Http(e.to_string()))?;
    let status = resp.status();
    let mut headers = HeaderMap::new();
    for (k, v) in resp.headers() {
        if !hop_by_hop(k) {
            headers.append(k, v.clone());
        }
    }
    let body = resp.bytes().await.map_err(|e| Error::Http(e.to_string()))?;
    Ok((status, headers, body))
}

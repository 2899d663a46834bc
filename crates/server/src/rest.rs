//! The REST frontend: every V2 route (with and without `/versions/{v}`), the extensions
//! (binary tensor data, model repository, statistics, model configuration, explain), the V1
//! API (`:predict`, `:explain`), health and `/metrics`, as one `axum::Router` over the shared [`Core`], behind the
//! [`service`] that matches the inference routes ahead of it.
//!
//! The request path: the inference route is matched → the model version is looked up (404
//! before the body is read) → a slot of the model's admission gate is taken (503 +
//! `Retry-After` when its queue is full) → the body is read up to the configured limit (413
//! beyond it) within the body read timeout (408 and the connection closed beyond it) →
//! the codec decodes and validates tensors → [`ModelVersion::infer`] → the codec encodes
//! the response (JSON, or JSON + binary parts).
//!
//! [`ModelVersion::infer`]: crate::core::ModelVersion::infer

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::BytesMut;
use http_body_util::BodyExt;
use oxserve_protocol::rest::{self, EncodedBody, ResponseEncoding};
use oxserve_protocol::{ErrorCode, InferRequest, ProtocolError, v1};

pub use self::service::{RestService, service};
use crate::core::Core;
use crate::error::Error;
use crate::extensions;
use crate::metrics::Protocol;

mod service;

/// Default request body limit: 64 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Default time a request body may take to arrive in full: a 64 MiB body at 10 Mbit/s
/// takes about 54 s.
pub const DEFAULT_BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// `Inference-Header-Content-Length` as a ready header name: looking a header up by a
/// `&str` parses the name on every call.
static INFERENCE_HEADER: HeaderName =
    HeaderName::from_static(rest::INFERENCE_HEADER_CONTENT_LENGTH);

/// Shared state of the REST handlers.
#[derive(Clone)]
pub struct RestState {
    pub core: Arc<Core>,
    pub max_body_bytes: usize,
    /// How long a request body may take to arrive in full (408 beyond it).
    pub body_read_timeout: std::time::Duration,
}

impl RestState {
    /// State with the default body limit and read timeout.
    pub fn new(core: Arc<Core>) -> RestState {
        RestState {
            core,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
        }
    }

    /// Reads a request body within this server's size and time bounds.
    async fn read_body(&self, body: Body, headers: &HeaderMap) -> Result<Bytes, ApiError> {
        let timeout = self.body_read_timeout;
        tokio::time::timeout(timeout, read_body(body, headers, self.max_body_bytes))
            .await
            .unwrap_or_else(|_| {
                Err(ApiError(ProtocolError::new(
                    ErrorCode::RequestTimeout,
                    format!("the request body did not arrive within {} s", timeout.as_secs_f64()),
                )))
            })
    }
}

/// Builds the REST router; tests call it with `oneshot`, and [`service`] puts it behind the
/// inference fast path that `serve` binds to a listener.
pub fn router(state: RestState) -> Router {
    Router::new()
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/v2", get(server_metadata))
        .route("/v2/models/stats", get(all_stats))
        .route("/v2/models/{model}", get(model_metadata))
        .route("/v2/models/{model}/versions/{version}", get(model_metadata))
        .route("/v2/models/{model}/ready", get(model_ready))
        .route("/v2/models/{model}/versions/{version}/ready", get(model_ready))
        .route("/v2/models/{model}/infer", post(infer))
        .route("/v2/models/{model}/versions/{version}/infer", post(infer))
        .route("/v2/models/{model}/explain", post(explain))
        .route("/v2/models/{model}/versions/{version}/explain", post(explain))
        .route("/v2/models/{model}/config", get(model_config))
        .route("/v2/models/{model}/versions/{version}/config", get(model_config))
        .route("/v2/models/{model}/stats", get(model_stats))
        .route("/v2/models/{model}/versions/{version}/stats", get(model_stats))
        .route("/v2/repository/index", post(repository_index))
        .route("/v2/repository/models/{model}/{action}", post(repository_action))
        .route("/v1/models", get(v1_list))
        .route("/v1/models/{model}", get(v1_status).post(v1_action))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// An error as a REST response: status from the shared code table, `{"error": …}` body.
pub struct ApiError(pub ProtocolError);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e.to_protocol())
    }
}

impl From<ProtocolError> for ApiError {
    fn from(e: ProtocolError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut r = json_response(status, self.0.to_json_body().into_bytes());
        match self.0.code {
            // Overload and not-ready are transient: tell the client when to come back.
            ErrorCode::Unavailable => {
                r.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(crate::admission::RETRY_AFTER_SECS),
                );
            }
            // The rest of a body that stopped arriving is never read: the connection
            // cannot carry another request.
            ErrorCode::RequestTimeout => {
                r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        r
    }
}

type ApiResult = Result<Response, ApiError>;

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn json<T: serde::Serialize>(value: &T) -> ApiResult {
    let body = serde_json::to_vec(value)
        .map_err(|e| ProtocolError::new(ErrorCode::Internal, format!("encoding response: {e}")))?;
    Ok(json_response(StatusCode::OK, body))
}

fn status_only(ok: bool) -> Response {
    if ok {
        StatusCode::OK.into_response()
    } else {
        StatusCode::SERVICE_UNAVAILABLE.into_response()
    }
}

async fn not_found() -> ApiError {
    ApiError(ProtocolError::not_found("no such route"))
}

async fn method_not_allowed() -> Response {
    let body = ProtocolError::invalid("method not allowed on this route").to_json_body();
    json_response(StatusCode::METHOD_NOT_ALLOWED, body.into_bytes())
}

async fn live(State(s): State<RestState>) -> Response {
    status_only(s.core.is_live())
}

async fn ready(State(s): State<RestState>) -> Response {
    status_only(s.core.is_ready())
}

async fn server_metadata(State(s): State<RestState>) -> ApiResult {
    json(&s.core.server_metadata())
}

/// `{model}` and, on `/versions/{version}` routes, `{version}`.
#[derive(serde::Deserialize)]
struct ModelPath {
    model: String,
    #[serde(default)]
    version: Option<String>,
}

async fn model_metadata(State(s): State<RestState>, Path(p): Path<ModelPath>) -> ApiResult {
    json(&s.core.version(&p.model, p.version.as_deref())?.metadata)
}

async fn model_ready(State(s): State<RestState>, Path(p): Path<ModelPath>) -> ApiResult {
    Ok(status_only(s.core.model_ready(&p.model, p.version.as_deref())?))
}

async fn infer(
    State(s): State<RestState>,
    Path(ModelPath { model, version }): Path<ModelPath>,
    request: axum::extract::Request,
) -> ApiResult {
    // The headers are borrowed from the request rather than extracted (a `HeaderMap`
    // extractor clones the whole map on every call).
    let (parts, body) = request.into_parts();
    infer_model(&s, &model, version.as_deref(), &parts.headers, body).await
}

/// `POST /v2/models/{model}[/versions/{version}]/infer` once the route is matched: by the
/// router ([`infer`]) or ahead of it ([`service`]).
async fn infer_model(
    s: &RestState,
    model: &str,
    version: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult {
    // Unknown models answer 404, and an overloaded one 503, before the body is read.
    let served = s.core.version(model, version)?;
    let _admitted = served.admit().await?;
    let header_length = header_length(headers)?;
    let body = s.read_body(body, headers).await?;
    let request = if header_length == Some(0) {
        // Raw binary request: the body is the data of the model's only input.
        let [input] = served.metadata.inputs.as_slice() else {
            return Err(ProtocolError::invalid(format!(
                "a raw binary request (Inference-Header-Content-Length: 0) needs a model with exactly one input; \"{model}\" has {}",
                served.metadata.inputs.len()
            ))
            .into());
        };
        rest::decode_raw_single_input(&body, input)?
    } else {
        rest::decode_request(&body, header_length)?
    };
    drop(body);
    let encoding = ResponseEncoding::from_request(&request);
    let response = served.infer(request, Protocol::Rest).await?;
    Ok(encoded_response(rest::encode_response(&response, &encoding)))
}

/// `POST /v2/models/{model}[/versions/{version}]/explain`: a V2 inference request in; the
/// prediction plus the explanation's tensors out (see [`crate::explain`]). JSON or binary
/// tensor data, like `/infer`.
async fn explain(
    State(s): State<RestState>,
    Path(ModelPath { model, version }): Path<ModelPath>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let served = s.core.version(&model, version.as_deref())?;
    let _admitted = served.admit().await?;
    let header_length = header_length(&headers)?;
    let body = s.read_body(body, &headers).await?;
    let request = if header_length == Some(0) {
        let [input] = served.metadata.inputs.as_slice() else {
            return Err(ProtocolError::invalid(format!(
                "a raw binary request (Inference-Header-Content-Length: 0) needs a model with exactly one input; \"{model}\" has {}",
                served.metadata.inputs.len()
            ))
            .into());
        };
        rest::decode_raw_single_input(&body, input)?
    } else {
        rest::decode_request(&body, header_length)?
    };
    drop(body);
    let encoding = ResponseEncoding::from_request(&request);
    let explained = served.explain(request, Protocol::Rest).await?;
    Ok(encoded_response(rest::encode_response(&explained.response, &encoding)))
}

fn encoded_response(encoded: EncodedBody) -> Response {
    let EncodedBody { body, header_length } = encoded;
    let mut r = json_response(StatusCode::OK, body);
    if let Some(n) = header_length {
        let h = r.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
        h.insert(INFERENCE_HEADER.clone(), HeaderValue::from(n));
    }
    r
}

fn header_length(headers: &HeaderMap) -> Result<Option<usize>, ApiError> {
    // The few names of a request are compared in turn: cheaper than hashing this long one.
    let found =
        headers.iter().find_map(|(name, value)| (*name == INFERENCE_HEADER).then_some(value));
    let Some(v) = found else { return Ok(None) };
    let n = v.to_str().ok().and_then(|s| s.trim().parse::<usize>().ok()).ok_or_else(|| {
        ProtocolError::invalid("Inference-Header-Content-Length must be a non-negative integer")
    })?;
    Ok(Some(n))
}

/// Reads the whole body, refusing more than `limit` bytes with 413.
///
/// A request body nearly always arrives as one frame, which is returned as it is; more
/// frames are joined into one buffer, sized by `Content-Length` when the client sent one.
async fn read_body(mut body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError(ProtocolError::new(
            ErrorCode::PayloadTooLarge,
            format!("request body exceeds the limit of {limit} bytes"),
        ))
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut first = Bytes::new();
    let mut joined: Option<BytesMut> = None;
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| ApiError(ProtocolError::invalid(format!("reading request body: {e}"))))?;
        // Trailers carry no body bytes.
        let Ok(data) = frame.into_data() else { continue };
        total = total.saturating_add(data.len());
        if total > limit {
            return Err(too_large());
        }
        if let Some(buf) = joined.as_mut() {
            buf.extend_from_slice(&data);
        } else if first.is_empty() {
            first = data;
        } else {
            let mut buf = BytesMut::with_capacity(declared.unwrap_or(total).max(total));
            buf.extend_from_slice(&first);
            buf.extend_from_slice(&data);
            joined = Some(buf);
        }
    }
    Ok(joined.map_or(first, BytesMut::freeze))
}

async fn model_config(State(s): State<RestState>, Path(p): Path<ModelPath>) -> ApiResult {
    let served = s.core.version(&p.model, p.version.as_deref())?;
    json(&extensions::model_config(&served))
}

async fn all_stats(State(s): State<RestState>) -> ApiResult {
    json(&extensions::statistics(&s.core, None, None)?)
}

async fn model_stats(State(s): State<RestState>, Path(p): Path<ModelPath>) -> ApiResult {
    json(&extensions::statistics(&s.core, Some(&p.model), p.version.as_deref())?)
}

async fn repository_index(State(s): State<RestState>, headers: HeaderMap, body: Body) -> ApiResult {
    let body = s.read_body(body, &headers).await?;
    let ready_only = extensions::parse_index_request(&body)?;
    json(&extensions::repository_index(&s.core, ready_only))
}

/// `POST /v2/repository/models/{model}/load|unload`.
async fn repository_action(
    State(s): State<RestState>,
    Path((model, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let body = s.read_body(body, &headers).await?;
    extensions::parse_load_request(&body)?;
    match action.as_str() {
        "load" => s.core.load(&model).await?,
        "unload" => s.core.unload(&model).await?,
        other => {
            return Err(
                ProtocolError::not_found(format!("no repository action \"{other}\"")).into()
            );
        }
    }
    Ok(StatusCode::OK.into_response())
}

async fn v1_list(State(s): State<RestState>) -> ApiResult {
    let models = s
        .core
        .entries()
        .into_iter()
        .filter(|e| !e.versions.is_empty())
        .map(|e| e.name.clone())
        .collect();
    json(&v1::V1ModelList { models })
}

async fn v1_status(State(s): State<RestState>, Path(model): Path<String>) -> ApiResult {
    let ready = s.core.model_ready(&model, None)?;
    let body = v1::V1ModelStatus { name: model, ready };
    let mut r = json(&body)?;
    if !ready {
        *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    }
    Ok(r)
}

/// `POST /v1/models/{m}:predict` and `:explain` (one path segment, split on the colon).
async fn v1_action(
    State(s): State<RestState>,
    Path(model_action): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let Some((model, action)) = model_action.rsplit_once(':') else {
        return Err(ProtocolError::not_found(format!(
            "POST /v1/models/{model_action} needs an action: :predict or :explain"
        ))
        .into());
    };
    let explain = match action {
        "predict" => false,
        "explain" => true,
        other => {
            return Err(ProtocolError::not_found(format!(
                "unknown V1 action \":{other}\" (expected :predict or :explain)"
            ))
            .into());
        }
    };
    let served = s.core.version(model, None)?;
    let _admitted = served.admit().await?;
    let body = s.read_body(body, &headers).await?;
    let request: InferRequest = v1::decode_predict(&body, &served.metadata.inputs)?;
    if explain {
        let explained = served.explain(request, Protocol::V1).await?;
        let body = v1_explanation(&explained)?;
        return Ok(json_response(StatusCode::OK, body));
    }
    let response = served.infer(request, Protocol::V1).await?;
    Ok(json_response(StatusCode::OK, v1::encode_predict(&response)))
}

/// The V1 `:explain` body: the prediction's `predictions` and one explanation per
/// instance, `{"explainer", "output", "expected_value": [width], "output_value": [width],
/// "attributions": [[features] per output value]}`.
fn v1_explanation(explained: &crate::core::Explained) -> Result<Vec<u8>, ApiError> {
    let a = &explained.attributions;
    let mut prediction = explained.response.clone();
    let explanation_names: Vec<String> = a.tensors(true).into_iter().map(|t| t.name).collect();
    prediction.outputs.retain(|t| !explanation_names.contains(&t.name));
    let predictions: serde_json::Value = serde_json::from_slice(&v1::encode_predict(&prediction))
        .map_err(|e| {
        ProtocolError::new(ErrorCode::Internal, format!("encoding predictions: {e}"))
    })?;
    let number =
        |v: f64| serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, Into::into);
    let explanations: Vec<serde_json::Value> = (0..a.rows)
        .map(|r| {
            let attributions: Vec<Vec<serde_json::Value>> = (0..a.width)
                .map(|d| {
                    let at = (r * a.width + d) * a.features;
                    a.values[at..at + a.features].iter().map(|&v| number(v)).collect()
                })
                .collect();
            serde_json::json!({
                "explainer": a.method.label(),
                "output": a.output,
                "expected_value": a.expected_value.iter().map(|&v| number(v)).collect::<Vec<_>>(),
                "output_value": a.explained[r * a.width..(r + 1) * a.width]
                    .iter()
                    .map(|&v| number(v))
                    .collect::<Vec<_>>(),
                "attributions": attributions,
            })
        })
        .collect();
    let body = serde_json::json!({
        "predictions": predictions.get("predictions").cloned().unwrap_or_default(),
        "explanations": explanations,
    });
    serde_json::to_vec(&body).map_err(|e| {
        ApiError(ProtocolError::new(ErrorCode::Internal, format!("encoding explanations: {e}")))
    })
}

async fn metrics(State(s): State<RestState>) -> Response {
    let mut r = Response::new(Body::from(s.core.metrics().encode()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streamed(chunks: &[&'static str]) -> Body {
        let frames: Vec<Result<Bytes, std::io::Error>> =
            chunks.iter().map(|c| Ok(Bytes::from_static(c.as_bytes()))).collect();
        Body::from_stream(futures::stream::iter(frames))
    }

    fn code(result: Result<Bytes, ApiError>) -> ErrorCode {
        match result {
            Ok(bytes) => panic!("expected an error, read {bytes:?}"),
            Err(ApiError(e)) => e.code,
        }
    }

    #[tokio::test]
    async fn one_frame_is_returned_without_a_copy() {
        let data = Bytes::from(vec![7u8; 100]);
        let body = Body::from(data.clone());
        let read = read_body(body, &HeaderMap::new(), 100).await.ok().unwrap();
        assert_eq!(read, data);
        assert_eq!(read.as_ptr(), data.as_ptr());
    }

    #[tokio::test]
    async fn frames_are_joined_in_order() {
        let read = read_body(streamed(&["ab", "", "cd", "ef"]), &HeaderMap::new(), 6).await;
        assert_eq!(read.ok().unwrap(), "abcdef");
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("3"));
        let read = read_body(streamed(&["x", "yz"]), &headers, 3).await;
        assert_eq!(read.ok().unwrap(), "xyz");
        let read = read_body(streamed(&[]), &HeaderMap::new(), 0).await;
        assert_eq!(read.ok().unwrap(), "");
    }

    #[tokio::test]
    async fn more_than_the_limit_is_refused_with_or_without_a_declared_length() {
        let read = read_body(streamed(&["abc", "def"]), &HeaderMap::new(), 5).await;
        assert_eq!(code(read), ErrorCode::PayloadTooLarge);
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("6"));
        let read = read_body(streamed(&["abc", "def"]), &headers, 5).await;
        assert_eq!(code(read), ErrorCode::PayloadTooLarge);
    }

    #[tokio::test]
    async fn a_failing_body_is_a_bad_request() {
        let frames: Vec<Result<Bytes, std::io::Error>> =
            vec![Ok(Bytes::from_static(b"ab")), Err(std::io::Error::other("connection reset"))];
        let body = Body::from_stream(futures::stream::iter(frames));
        match read_body(body, &HeaderMap::new(), 100).await {
            Err(ApiError(e)) => {
                assert_eq!(e.code, ErrorCode::InvalidArgument);
                assert!(e.message.contains("reading request body"), "{}", e.message);
            }
            Ok(b) => panic!("read {b:?}"),
        }
    }

    #[test]
    fn the_json_header_length_is_found_among_the_headers() {
        let mut headers = HeaderMap::new();
        assert_eq!(header_length(&headers).ok().unwrap(), None);
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("120"));
        assert_eq!(header_length(&headers).ok().unwrap(), None);
        let name = HeaderName::from_bytes(b"Inference-Header-Content-Length").unwrap();
        headers.append(name.clone(), HeaderValue::from_static(" 42 "));
        headers.append(name.clone(), HeaderValue::from_static("7"));
        assert_eq!(header_length(&headers).ok().unwrap(), Some(42));
        headers.insert(name, HeaderValue::from_static("-1"));
        match header_length(&headers) {
            Err(ApiError(e)) => assert_eq!(e.code, ErrorCode::InvalidArgument),
            Ok(n) => panic!("read {n:?}"),
        }
    }
}

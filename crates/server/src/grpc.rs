//! The gRPC frontend: `inference.GRPCInferenceService` (Triton's numbering) over the shared
//! [`Core`], every RPC including streaming inference and the extensions; explanations are
//! `ModelInfer` requests with the parameter `explain: true` ([`EXPLAIN_PARAMETER`]).
//!
//! Limits: a message over the body limit is refused by tonic's decoder before it is
//! buffered, answered RESOURCE_EXHAUSTED ([`too_large_is_resource_exhausted`]); inference
//! takes a slot of the model's admission gate, and a full gate answers UNAVAILABLE.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use oxserve_protocol::grpc::{self as codec, inference as pb};
use pb::grpc_inference_service_server::GrpcInferenceService;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use crate::core::Core;
use crate::error::Error;
use crate::extensions;
use crate::metrics::Protocol;

/// The `ModelInfer` request parameter that turns an inference into an explanation: the
/// response then carries the explanation's tensors after the prediction, as REST's
/// `POST /v2/models/{m}/explain` (see `docs/explain.md`).
pub const EXPLAIN_PARAMETER: &str = "explain";

/// The gRPC service implementation.
#[derive(Clone)]
pub struct GrpcFrontend {
    core: Arc<Core>,
}

impl GrpcFrontend {
    pub fn new(core: Arc<Core>) -> GrpcFrontend {
        GrpcFrontend { core }
    }

    /// The tonic service, with message size limits matching the REST body limit.
    pub fn service(
        self,
        max_message_bytes: usize,
    ) -> pb::grpc_inference_service_server::GrpcInferenceServiceServer<Self> {
        pb::grpc_inference_service_server::GrpcInferenceServiceServer::new(self)
            .max_decoding_message_size(max_message_bytes)
            .max_encoding_message_size(usize::MAX)
    }

    async fn infer_one(
        &self,
        request: pb::ModelInferRequest,
    ) -> Result<pb::ModelInferResponse, Error> {
        let mut decoded = codec::decode_infer_request(request)?;
        let version = non_empty(&decoded.model_version);
        let served = self.core.version(&decoded.model_name, version)?;
        let _admitted = served.admit().await?;
        // `explain: true` asks for the explanation with the prediction (REST's `/explain`).
        if let Some(flag) = decoded.request.parameters.remove(EXPLAIN_PARAMETER) {
            let explain = flag.as_bool().ok_or_else(|| {
                Error::invalid(format!("parameter \"{EXPLAIN_PARAMETER}\" must be a bool"))
            })?;
            if explain {
                let explained = served.explain(decoded.request, Protocol::Grpc).await?;
                return Ok(codec::encode_infer_response(explained.response, decoded.raw));
            }
        }
        let response = served.infer(decoded.request, Protocol::Grpc).await?;
        Ok(codec::encode_infer_response(response, decoded.raw))
    }
}

/// A gRPC service whose answers went through [`too_large_is_resource_exhausted`].
pub type ResourceExhaustedOnTooLarge<S, B> =
    tower::util::MapResponse<S, fn(http::Response<B>) -> http::Response<TooLarge<B>>>;

/// tonic answers a message over `max_decoding_message_size` with OUT_OF_RANGE; gRPC's own
/// implementations (and its status code table: "message larger than configured max")
/// answer RESOURCE_EXHAUSTED, which is what clients check for, so the code is rewritten,
/// in the headers of a trailers-only answer and in the trailers of any other.
pub fn too_large_is_resource_exhausted<S, B>(service: S) -> ResourceExhaustedOnTooLarge<S, B>
where
    S: tower::Service<http::Request<hyper::body::Incoming>, Response = http::Response<B>>,
{
    fn rewrite<B>(response: http::Response<B>) -> http::Response<TooLarge<B>> {
        let (mut parts, body) = response.into_parts();
        too_large_status(&mut parts.headers);
        http::Response::from_parts(parts, TooLarge(body))
    }
    tower::ServiceExt::map_response(service, rewrite as fn(_) -> _)
}

/// Rewrites grpc-status 11 to 8 when the message says the message was too large.
fn too_large_status(headers: &mut http::HeaderMap) {
    // tonic percent-encodes the message's spaces.
    let says_too_large = |m: &http::HeaderValue| {
        let m = m.as_bytes();
        m.windows(9).any(|w| w == b"too large") || m.windows(11).any(|w| w == b"too%20large")
    };
    let too_large = headers.get("grpc-status").is_some_and(|v| v == "11")
        && headers.get("grpc-message").is_some_and(says_too_large);
    if too_large {
        headers.insert("grpc-status", http::HeaderValue::from_static("8"));
    }
}

/// A response body whose trailers get [`too_large_status`].
pub struct TooLarge<B>(B);

impl<B: hyper::body::Body + Unpin> hyper::body::Body for TooLarge<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<B::Data>, B::Error>>> {
        let polled = Pin::new(&mut self.0).poll_frame(cx);
        polled.map(|frame| {
            frame.map(|frame| {
                frame.map(|frame| match frame.into_trailers() {
                    Ok(mut trailers) => {
                        too_large_status(&mut trailers);
                        hyper::body::Frame::trailers(trailers)
                    }
                    Err(frame) => frame,
                })
            })
        })
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.0.size_hint()
    }
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

type InferStream = Pin<Box<dyn Stream<Item = Result<pb::ModelStreamInferResponse, Status>> + Send>>;

#[tonic::async_trait]
impl GrpcInferenceService for GrpcFrontend {
    async fn server_live(
        &self,
        _: Request<pb::ServerLiveRequest>,
    ) -> Result<Response<pb::ServerLiveResponse>, Status> {
        Ok(Response::new(pb::ServerLiveResponse { live: self.core.is_live() }))
    }

    async fn server_ready(
        &self,
        _: Request<pb::ServerReadyRequest>,
    ) -> Result<Response<pb::ServerReadyResponse>, Status> {
        Ok(Response::new(pb::ServerReadyResponse { ready: self.core.is_ready() }))
    }

    async fn model_ready(
        &self,
        request: Request<pb::ModelReadyRequest>,
    ) -> Result<Response<pb::ModelReadyResponse>, Status> {
        let r = request.into_inner();
        let ready = self.core.model_ready(&r.name, non_empty(&r.version))?;
        Ok(Response::new(pb::ModelReadyResponse { ready }))
    }

    async fn server_metadata(
        &self,
        _: Request<pb::ServerMetadataRequest>,
    ) -> Result<Response<pb::ServerMetadataResponse>, Status> {
        Ok(Response::new(self.core.server_metadata().into()))
    }

    async fn model_metadata(
        &self,
        request: Request<pb::ModelMetadataRequest>,
    ) -> Result<Response<pb::ModelMetadataResponse>, Status> {
        let r = request.into_inner();
        let served = self.core.version(&r.name, non_empty(&r.version))?;
        Ok(Response::new(served.metadata.clone().into()))
    }

    async fn model_infer(
        &self,
        request: Request<pb::ModelInferRequest>,
    ) -> Result<Response<pb::ModelInferResponse>, Status> {
        Ok(Response::new(self.infer_one(request.into_inner()).await.map_err(Status::from)?))
    }

    type ModelStreamInferStream = InferStream;

    async fn model_stream_infer(
        &self,
        request: Request<Streaming<pb::ModelInferRequest>>,
    ) -> Result<Response<Self::ModelStreamInferStream>, Status> {
        let mut inbound = request.into_inner();
        let this = self.clone();
        // Requests on one stream are answered in order; an error answers that request with
        // `error_message` and the stream goes on.
        let outbound = async_stream(move |tx| async move {
            while let Some(next) = inbound.next().await {
                let reply = match next {
                    Ok(request) => match this.infer_one(request).await {
                        Ok(r) => codec::stream_response(r),
                        Err(e) => codec::stream_error(&e.to_protocol()),
                    },
                    Err(status) => {
                        let _ = tx.send(Err(status)).await;
                        break;
                    }
                };
                if tx.send(Ok(reply)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(outbound))
    }

    async fn model_config(
        &self,
        request: Request<pb::ModelConfigRequest>,
    ) -> Result<Response<pb::ModelConfigResponse>, Status> {
        let r = request.into_inner();
        let served = self.core.version(&r.name, non_empty(&r.version))?;
        let config = extensions::model_config(&served);
        Ok(Response::new(pb::ModelConfigResponse { config: Some(config.into()) }))
    }

    async fn model_statistics(
        &self,
        request: Request<pb::ModelStatisticsRequest>,
    ) -> Result<Response<pb::ModelStatisticsResponse>, Status> {
        let r = request.into_inner();
        let stats = extensions::statistics(&self.core, non_empty(&r.name), non_empty(&r.version))?;
        Ok(Response::new(stats.into()))
    }

    async fn repository_index(
        &self,
        request: Request<pb::RepositoryIndexRequest>,
    ) -> Result<Response<pb::RepositoryIndexResponse>, Status> {
        let r = request.into_inner();
        let index = extensions::repository_index(&self.core, r.ready);
        Ok(Response::new(oxserve_protocol::extensions::repository::index_to_proto(index)))
    }

    async fn repository_model_load(
        &self,
        request: Request<pb::RepositoryModelLoadRequest>,
    ) -> Result<Response<pb::RepositoryModelLoadResponse>, Status> {
        let r = request.into_inner();
        self.core.load(&r.model_name).await.map_err(Status::from)?;
        Ok(Response::new(pb::RepositoryModelLoadResponse {}))
    }

    async fn repository_model_unload(
        &self,
        request: Request<pb::RepositoryModelUnloadRequest>,
    ) -> Result<Response<pb::RepositoryModelUnloadResponse>, Status> {
        let r = request.into_inner();
        self.core.unload(&r.model_name).await.map_err(|e: Error| Status::from(e))?;
        Ok(Response::new(pb::RepositoryModelUnloadResponse {}))
    }
}

/// A stream fed by a task through a bounded channel.
fn async_stream<F, Fut>(f: F) -> InferStream
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<pb::ModelStreamInferResponse, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(f(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

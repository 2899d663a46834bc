//! `oxserve-bare`: the ceiling a benchmark compares oxserve with.
//!
//! It answers `POST /v2/models/{m}[/versions/{v}]/infer` with fixed bytes (the JSON oxserve
//! returned for the benchmark request) over axum, and gRPC `ModelInfer` with a fixed
//! `ModelInferResponse` (the one oxserve returned) over tonic. It reads each request body in
//! full but does no decoding and no inference, and it is served the way oxserve serves
//! (axum with `TCP_NODELAY`, tonic's server, the same runtime size), so the difference in a
//! benchmark is oxserve's own work. Other RPCs answer `UNIMPLEMENTED`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::{Context, Result};

/// The same allocator as the `oxserve` binary, so the ceiling is served the way oxserve is.
#[global_allocator]
static ALLOCATOR: oxserve_alloc::Allocator = oxserve_alloc::Allocator;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::serve::ListenerExt;
use clap::Parser;
use oxserve_protocol::grpc::inference as pb;
use oxserve_protocol::grpc::inference::grpc_inference_service_server::{
    GrpcInferenceService, GrpcInferenceServiceServer,
};
use prost::Message;
use tonic::{Request, Response, Status, Streaming};

/// A bare V2 REST + gRPC server answering inference with fixed bytes.
#[derive(Parser)]
#[command(name = "oxserve-bare", version)]
struct Args {
    /// Address to bind.
    #[arg(long, env = "OXSERVE_BARE_HOST", default_value = "127.0.0.1")]
    host: IpAddr,
    /// REST port (0 picks a free port).
    #[arg(long, env = "OXSERVE_BARE_HTTP_PORT", default_value_t = 0)]
    http_port: u16,
    /// gRPC port (0 picks a free port).
    #[arg(long, env = "OXSERVE_BARE_GRPC_PORT", default_value_t = 0)]
    grpc_port: u16,
    /// Worker threads.
    #[arg(long, env = "OXSERVE_BARE_THREADS", default_value_t = 1)]
    threads: usize,
    /// File with the JSON body every REST infer call gets back.
    #[arg(long, env = "OXSERVE_BARE_REST_BODY")]
    rest_body: PathBuf,
    /// File with the protobuf-encoded `ModelInferResponse` every gRPC call gets back.
    #[arg(long, env = "OXSERVE_BARE_GRPC_RESPONSE")]
    grpc_response: PathBuf,
}

fn main() -> Result<()> {
    let Args { host, http_port, grpc_port, threads, rest_body, grpc_response } = Args::parse();
    let rest_body = Bytes::from(
        std::fs::read(&rest_body).with_context(|| format!("reading {}", rest_body.display()))?,
    );
    let grpc_bytes = std::fs::read(&grpc_response)
        .with_context(|| format!("reading {}", grpc_response.display()))?;
    let grpc_response = pb::ModelInferResponse::decode(grpc_bytes.as_slice())
        .with_context(|| format!("decoding {} as a ModelInferResponse", grpc_response.display()))?;

    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(async move {
            let http = tokio::net::TcpListener::bind(SocketAddr::new(host, http_port))
                .await
                .with_context(|| format!("binding {host}:{http_port}"))?;
            let grpc = tokio::net::TcpListener::bind(SocketAddr::new(host, grpc_port))
                .await
                .with_context(|| format!("binding {host}:{grpc_port}"))?;
            println!(
                "oxserve-bare listening rest=http://{} grpc={}",
                http.local_addr()?,
                grpc.local_addr()?
            );
            let app = Router::new()
                .route("/v2/models/{model}/infer", post(infer))
                .route("/v2/models/{model}/versions/{version}/infer", post(infer))
                .with_state(rest_body);
            // As oxserve does: small responses must not wait for Nagle's algorithm.
            let http = http.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let rest = tokio::spawn(async move { axum::serve(http, app).await });
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(grpc);
            let grpc = tokio::spawn(
                tonic::transport::Server::builder()
                    .tcp_nodelay(true)
                    .add_service(GrpcInferenceServiceServer::new(Fixed(grpc_response)))
                    .serve_with_incoming(incoming),
            );
            tokio::select! {
                r = rest => r.context("REST task")?.context("serving REST")?,
                r = grpc => r.context("gRPC task")?.context("serving gRPC")?,
                r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
            }
            Ok(())
        })
}

/// Reads the body (a real server must) and answers with the fixed JSON.
async fn infer(State(body): State<Bytes>, request: Bytes) -> impl IntoResponse {
    drop(request);
    ([(header::CONTENT_TYPE, "application/json")], body)
}

/// A gRPC service whose `ModelInfer` always returns the same response.
struct Fixed(pb::ModelInferResponse);

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("oxserve-bare answers ModelInfer only"))
}

#[tonic::async_trait]
impl GrpcInferenceService for Fixed {
    async fn model_infer(
        &self,
        _request: Request<pb::ModelInferRequest>,
    ) -> Result<Response<pb::ModelInferResponse>, Status> {
        Ok(Response::new(self.0.clone()))
    }

    type ModelStreamInferStream = tokio_stream::Empty<Result<pb::ModelStreamInferResponse, Status>>;

    async fn model_stream_infer(
        &self,
        _request: Request<Streaming<pb::ModelInferRequest>>,
    ) -> Result<Response<Self::ModelStreamInferStream>, Status> {
        unimplemented()
    }

    async fn server_live(
        &self,
        _request: Request<pb::ServerLiveRequest>,
    ) -> Result<Response<pb::ServerLiveResponse>, Status> {
        Ok(Response::new(pb::ServerLiveResponse { live: true }))
    }

    async fn server_ready(
        &self,
        _request: Request<pb::ServerReadyRequest>,
    ) -> Result<Response<pb::ServerReadyResponse>, Status> {
        Ok(Response::new(pb::ServerReadyResponse { ready: true }))
    }

    async fn model_ready(
        &self,
        _request: Request<pb::ModelReadyRequest>,
    ) -> Result<Response<pb::ModelReadyResponse>, Status> {
        Ok(Response::new(pb::ModelReadyResponse { ready: true }))
    }

    async fn server_metadata(
        &self,
        _request: Request<pb::ServerMetadataRequest>,
    ) -> Result<Response<pb::ServerMetadataResponse>, Status> {
        unimplemented()
    }

    async fn model_metadata(
        &self,
        _request: Request<pb::ModelMetadataRequest>,
    ) -> Result<Response<pb::ModelMetadataResponse>, Status> {
        unimplemented()
    }

    async fn model_config(
        &self,
        _request: Request<pb::ModelConfigRequest>,
    ) -> Result<Response<pb::ModelConfigResponse>, Status> {
        unimplemented()
    }

    async fn model_statistics(
        &self,
        _request: Request<pb::ModelStatisticsRequest>,
    ) -> Result<Response<pb::ModelStatisticsResponse>, Status> {
        unimplemented()
    }

    async fn repository_index(
        &self,
        _request: Request<pb::RepositoryIndexRequest>,
    ) -> Result<Response<pb::RepositoryIndexResponse>, Status> {
        unimplemented()
    }

    async fn repository_model_load(
        &self,
        _request: Request<pb::RepositoryModelLoadRequest>,
    ) -> Result<Response<pb::RepositoryModelLoadResponse>, Status> {
        unimplemented()
    }

    async fn repository_model_unload(
        &self,
        _request: Request<pb::RepositoryModelUnloadRequest>,
    ) -> Result<Response<pb::RepositoryModelUnloadResponse>, Status> {
        unimplemented()
    }
}

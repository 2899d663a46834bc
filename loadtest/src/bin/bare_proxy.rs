//! `oxserve-bare-proxy`: the ceiling `cargo xtask bench router` compares the router with.
//!
//! A bare hyper reverse proxy: every request on its REST port goes to one upstream over a
//! pooled HTTP/1.1 connection, every request on its gRPC port to one upstream over HTTP/2,
//! bodies streamed, hop-by-hop headers left to hyper. No routing, no split, no metrics, no
//! activator: what is left is the cost of proxying itself, served the way the router is
//! served (hyper-util's auto server, `TCP_NODELAY`, the same allocator and runtime size).

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::Parser;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// The same allocator as the `oxserve` binary.
#[global_allocator]
static ALLOCATOR: oxserve_alloc::Allocator = oxserve_alloc::Allocator;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A bare REST + gRPC reverse proxy to one upstream.
#[derive(Parser)]
#[command(name = "oxserve-bare-proxy", version)]
struct Args {
    /// Address to bind.
    #[arg(long, env = "OXSERVE_BARE_PROXY_HOST", default_value = "127.0.0.1")]
    host: IpAddr,
    /// REST port (0 picks a free port).
    #[arg(long, env = "OXSERVE_BARE_PROXY_HTTP_PORT", default_value_t = 0)]
    http_port: u16,
    /// gRPC port (0 picks a free port).
    #[arg(long, env = "OXSERVE_BARE_PROXY_GRPC_PORT", default_value_t = 0)]
    grpc_port: u16,
    /// Worker threads.
    #[arg(long, env = "OXSERVE_BARE_PROXY_THREADS", default_value_t = 1)]
    threads: usize,
    /// Upstream REST `host:port`.
    #[arg(long, env = "OXSERVE_BARE_PROXY_UPSTREAM")]
    upstream: String,
    /// Upstream gRPC `host:port`.
    #[arg(long, env = "OXSERVE_BARE_PROXY_GRPC_UPSTREAM")]
    grpc_upstream: String,
}

fn main() -> Result<()> {
    let Args { host, http_port, grpc_port, threads, upstream, grpc_upstream } = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let http = tokio::net::TcpListener::bind(SocketAddr::new(host, http_port)).await?;
        let grpc = tokio::net::TcpListener::bind(SocketAddr::new(host, grpc_port)).await?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let h1: Client<_, Body> = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(1024)
            .build(connector.clone());
        let h2: Client<_, Body> =
            Client::builder(TokioExecutor::new()).http2_only(true).build(connector);
        println!(
            "oxserve-bare-proxy listening rest=http://{} grpc={}",
            http.local_addr()?,
            grpc.local_addr()?
        );
        let a = tokio::spawn(accept(http, h1, upstream));
        let b = tokio::spawn(accept(grpc, h2, grpc_upstream));
        a.await.context("rest accept loop")??;
        b.await.context("grpc accept loop")??;
        Ok(())
    })
}

async fn accept(
    listener: tokio::net::TcpListener,
    client: Client<HttpConnector, Body>,
    upstream: String,
) -> Result<()> {
    let server = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let (client, upstream, server) = (client.clone(), upstream.clone(), server.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let (client, upstream) = (client.clone(), upstream.clone());
                async move { Ok::<_, Infallible>(forward(&client, &upstream, req).await) }
            });
            let _ = server.serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

async fn forward(
    client: &Client<HttpConnector, Body>,
    upstream: &str,
    req: Request<Incoming>,
) -> Response<Body> {
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = match format!("http://{upstream}{path}").parse() {
        Ok(u) => u,
        Err(_) => return status(400),
    };
    let req = Request::from_parts(parts, body.map_err(BoxError::from).boxed_unsync());
    match client.request(req).await {
        Ok(r) => r.map(|b| b.map_err(BoxError::from).boxed_unsync()),
        Err(_) => status(502),
    }
}

fn status(code: u16) -> Response<Body> {
    let mut r = Response::new(
        http_body_util::Empty::new().map_err(|never: Infallible| match never {}).boxed_unsync(),
    );
    *r.status_mut() = hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::BAD_GATEWAY);
    r
}

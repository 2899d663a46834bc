//! Runs the REST and gRPC frontends on already-bound listeners until a shutdown future
//! resolves, then drains: stop accepting, finish requests in flight, drain the batchers.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::ServiceExt;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;

use crate::core::Core;
use crate::grpc::GrpcFrontend;
use crate::rest::{self, RestState};

/// Bound sockets the server answers on. Only `main` binds ports.
pub struct Listeners {
    pub http: TcpListener,
    pub grpc: Option<TcpListener>,
}

/// How the frontends run.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Request body (REST) and message (gRPC) limit in bytes.
    pub max_body_bytes: usize,
    /// How long shutdown waits for requests in flight and open connections before closing
    /// them anyway.
    pub shutdown_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            max_body_bytes: rest::DEFAULT_MAX_BODY_BYTES,
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

/// Serves until `shutdown` resolves, then shuts down gracefully.
pub async fn serve(
    listeners: Listeners,
    core: Arc<Core>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let app =
        rest::service(RestState { core: core.clone(), max_body_bytes: options.max_body_bytes });
    // Small responses must not wait for Nagle's algorithm.
    let http_listener = listeners.http.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let http = tokio::spawn(
        axum::serve(http_listener, app.into_make_service())
            .with_graceful_shutdown(stopped())
            .into_future(),
    );
    let grpc = listeners.grpc.map(|listener| {
        let service = GrpcFrontend::new(core.clone()).service(options.max_body_bytes);
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        tokio::spawn(
            tonic::transport::Server::builder()
                .tcp_nodelay(true)
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, stopped()),
        )
    });
    shutdown.await;
    tracing::info!("shutting down: draining requests in flight");
    let _ = stop_tx.send(true);
    let drain = async {
        let http_result = http.await.map_err(std::io::Error::other)?;
        if let Some(grpc) = grpc {
            grpc.await.map_err(std::io::Error::other)?.map_err(std::io::Error::other)?;
        }
        core.shutdown().await;
        http_result
    };
    match tokio::time::timeout(options.shutdown_timeout, drain).await {
        Ok(result) => result,
        Err(_) => {
            // Clients that keep idle connections open must not hold the process forever.
            tracing::warn!(
                timeout = ?options.shutdown_timeout,
                "shutdown timeout: closing the connections still open"
            );
            Ok(())
        }
    }
}

//! Runs the REST and gRPC frontends on already-bound listeners until a shutdown future
//! resolves, then drains: stop accepting, finish requests in flight, drain the batchers.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::server::graceful::GracefulShutdown;
use oxserve_security::{Acceptor, AuthLayer, ServerConfig};
use tokio::net::TcpListener;
use tower::{Layer, ServiceExt};

use crate::accept::{ConnectionLimits, accept_loop};
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
    /// Time a REST request body may take to arrive in full (408 and the connection closed
    /// beyond it).
    pub body_read_timeout: Duration,
    /// Open connections, request head size and head read timeout.
    pub connections: ConnectionLimits,
    /// How long shutdown waits for requests in flight and open connections before closing
    /// them anyway.
    pub shutdown_timeout: Duration,
    /// TLS on both ports (`--tls-cert`, `--tls-key`, `--tls-client-ca`); plain without.
    pub tls: Option<Arc<ServerConfig>>,
    /// Bearer tokens on both ports (`--auth-token-file`); health checks stay open.
    pub auth: AuthLayer,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            max_body_bytes: rest::DEFAULT_MAX_BODY_BYTES,
            body_read_timeout: rest::DEFAULT_BODY_READ_TIMEOUT,
            connections: ConnectionLimits::default(),
            shutdown_timeout: Duration::from_secs(30),
            tls: None,
            auth: AuthLayer::off(),
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
    let graceful = Arc::new(GracefulShutdown::new());
    // One pool of connection slots for both ports.
    let slots = options.connections.slots();
    let app = rest::service(RestState {
        core: core.clone(),
        max_body_bytes: options.max_body_bytes,
        body_read_timeout: options.body_read_timeout,
    })
    .map_request(|r: http::Request<hyper::body::Incoming>| r.map(axum::body::Body::new));
    // Requests without a valid token are answered before they reach a frontend.
    let app = options.auth.layer(app);
    let mut accept = vec![accept_loop(
        Acceptor::new(listeners.http, options.tls.clone())?,
        app,
        false,
        &options.connections,
        slots.clone(),
        stop_rx.clone(),
        &graceful,
    )];
    if let Some(listener) = listeners.grpc {
        let service = tonic::service::Routes::new(
            GrpcFrontend::new(core.clone()).service(options.max_body_bytes),
        )
        .prepare();
        let service = options.auth.layer(crate::grpc::too_large_is_resource_exhausted(service));
        accept.push(accept_loop(
            Acceptor::new(listener, options.tls.clone())?,
            service,
            true,
            &options.connections,
            slots,
            stop_rx.clone(),
            &graceful,
        ));
    }
    shutdown.await;
    tracing::info!("shutting down: draining requests in flight");
    let _ = stop_tx.send(true);
    let drain = async {
        for a in accept {
            let _ = a.await;
        }
        // The accept loops have ended, so this is the last handle.
        if let Some(graceful) = Arc::into_inner(graceful) {
            graceful.shutdown().await;
        }
        core.shutdown().await;
        Ok(())
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

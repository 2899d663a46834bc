//! Runs the router on already-bound listeners until a shutdown future resolves, then
//! drains: stop accepting, let requests in flight finish (bounded), close.
//!
//! The accept loops share one pool of connection slots (`max_connections`): when it is
//! empty they stop accepting and new connections wait in the kernel's listen backlog
//! rather than being accepted and closed. A connection that sends nothing within the
//! header read timeout is closed before any protocol state is built for it, an HTTP/1 head
//! that trickles is cut by hyper's `header_read_timeout`, and a head over
//! `max_header_bytes` answers 431.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use oxserve_security::Acceptor;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::{Layer, ServiceExt};

use crate::body::Body;
use crate::config::RouterConfig;
use crate::router::Router;
use crate::service::{stack, stack_with};

/// Bound sockets the router answers on. Only `main` binds ports.
pub struct Listeners {
    /// REST (HTTP/1.1 and h2c; gRPC by content type too).
    pub http: TcpListener,
    /// gRPC (HTTP/2).
    pub grpc: Option<TcpListener>,
}

/// How long shutdown waits for requests in flight.
const DRAIN: Duration = Duration::from_secs(30);

/// Serves until `shutdown` resolves. Also runs the sampler that sends the autoscaler one
/// sample per revision every `sample_interval`.
pub async fn serve(
    listeners: Listeners,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let sampler = tokio::spawn(router.clone().run_sampler());
    let graceful = Arc::new(GracefulShutdown::new());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut accept = Vec::new();
    let slots = connection_slots(&router.shared.config);
    let (tls, auth) = (&router.shared.config.tls, &router.shared.config.auth);
    for (listener, grpc) in
        std::iter::once((listeners.http, false)).chain(listeners.grpc.map(|g| (g, true)))
    {
        // Requests without a valid token are answered before they are routed.
        let service = auth
            .layer(stack(router.clone(), grpc))
            .map_response(|r: http::Response<_>| r.map(crate::body::boxed));
        accept.push(accept_loop(
            Acceptor::new(listener, tls.clone())?,
            service,
            (&router.shared.config, slots.clone()),
            stop_rx.clone(),
            &graceful,
        ));
    }
    shutdown.await;
    drain(accept, stop_tx, graceful).await;
    sampler.abort();
    Ok(())
}

/// Serves `listener` until `shutdown` resolves, routing every request as if it carried
/// `Host: host` (then drains like [`serve`]). This is how a transformer reaches its
/// predictor locally: it is given this listener's address as `--predictor_host`, and
/// whatever Host it sends, its requests go to the component `host` names
/// (`NAME-predictor.NS.DOMAIN`) through the same split, activator and metrics. The sampler
/// runs with [`serve`], not here. The listener is plain and takes no token: it is bound on
/// loopback for the platform's own components.
pub async fn serve_pinned(
    listener: TcpListener,
    router: Router,
    host: String,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_plain(listener, router, Some(host.into()), shutdown).await
}

/// Serves `listener` like [`serve`]'s REST port, but plain and without tokens whatever the
/// config says: the address the platform gives its own components (explainers reach their
/// predictor through it) when the public ports need TLS or a token. Bind it on loopback.
pub async fn serve_internal(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_plain(listener, router, None, shutdown).await
}

/// One plain, token-free REST listener (pinned to a host or not) until `shutdown`.
async fn serve_plain(
    listener: TcpListener,
    router: Router,
    pinned: Option<Arc<str>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let graceful = Arc::new(GracefulShutdown::new());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let slots = connection_slots(&router.shared.config);
    let limits = (&router.shared.config, slots);
    let service = stack_with(router.clone(), false, pinned);
    let accept = accept_loop(Acceptor::Plain(listener), service, limits, stop_rx, &graceful);
    shutdown.await;
    drain(vec![accept], stop_tx, graceful).await;
    Ok(())
}

/// The connection slots of one set of listeners.
fn connection_slots(config: &RouterConfig) -> Arc<Semaphore> {
    Arc::new(Semaphore::new(config.max_connections.max(1)))
}

/// Accepts connections on `listener` (plain or TLS) and serves each with `service`
/// (HTTP/1.1 and HTTP/2, with upgrades) until `stop` changes; the connections are watched
/// by `graceful`, and each holds one of the slots while open.
fn accept_loop<S>(
    mut listener: Acceptor,
    service: S,
    (config, slots): (&RouterConfig, Arc<Semaphore>),
    mut stop: tokio::sync::watch::Receiver<bool>,
    graceful: &Arc<GracefulShutdown>,
) -> tokio::task::JoinHandle<()>
where
    S: tower::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<Body>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let graceful = graceful.clone();
    let (header_timeout, max_header_bytes) = (config.header_read_timeout, config.max_header_bytes);
    tokio::spawn(async move {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            // The head must fit in the read buffer; hyper's smallest is 8 KiB.
            .max_buf_size(max_header_bytes.max(8192));
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(max_header_bytes).unwrap_or(u32::MAX))
            .max_concurrent_streams(Some(10_000))
            .adaptive_window(true);
        let builder = Arc::new(builder);
        loop {
            let (stream, _) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                },
                _ = stop.changed() => break,
            };
            // The slot is taken after the accept: an accept loop waiting on an idle port
            // must not hold a slot another port's clients need. Beyond the cap this
            // loop holds one accepted connection and accepts no more until a slot frees.
            let slot = tokio::select! {
                slot = slots.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => break,
                },
                _ = stop.changed() => break,
            };
            let _ = stream.set_nodelay(true);
            let (builder, service) = (builder.clone(), service.clone());
            let (watcher, mut stopped) = (graceful.watcher(), stop.clone());
            tokio::spawn(async move {
                let _slot = slot;
                // Nothing sent at all: closed without building any protocol state (hyper's
                // header timeout starts with the first byte).
                // (A TLS connection has already sent its handshake, within its own timeout.)
                let mut first = [0u8; 1];
                if !stream.is_tls() {
                    tokio::select! {
                        peeked = tokio::time::timeout(header_timeout, stream.tcp().peek(&mut first)) => {
                            if !matches!(peeked, Ok(Ok(n)) if n > 0) {
                                return;
                            }
                        }
                        _ = stopped.changed() => return,
                    }
                }
                let conn = builder
                    .serve_connection_with_upgrades(
                        TokioIo::new(stream),
                        TowerToHyperService::new(service),
                    )
                    .into_owned();
                if let Err(e) = watcher.watch(conn).await {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            });
        }
    })
}

/// Stops the accept loops, then waits (bounded) for the connections they opened.
async fn drain(
    accept: Vec<tokio::task::JoinHandle<()>>,
    stop_tx: tokio::sync::watch::Sender<bool>,
    graceful: Arc<GracefulShutdown>,
) {
    tracing::info!("shutting down: draining requests in flight");
    let _ = stop_tx.send(true);
    for a in accept {
        let _ = a.await;
    }
    // The accept loops have ended, so this is the last handle.
    let graceful = Arc::into_inner(graceful).expect("accept loops have ended");
    if tokio::time::timeout(DRAIN, graceful.shutdown()).await.is_err() {
        tracing::warn!(timeout = ?DRAIN, "shutdown timeout: closing the connections still open");
    }
}

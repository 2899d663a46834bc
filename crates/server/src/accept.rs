//! The accept loop both frontends run on: HTTP/1.1 and HTTP/2 (or HTTP/2 only for gRPC)
//! through hyper-util, with the connection-level bounds that keep slow or greedy clients
//! from holding the server: a cap on open connections shared by every listener, a bound on
//! the size of a request head and a timeout on reading it.
//!
//! When every connection slot is taken the loop stops accepting until one frees up; new
//! connections wait in the kernel's listen backlog (and time out there on the client's
//! side) rather than being accepted and closed, so a burst is served late instead of
//! refused. A connection that sends nothing at all within the header timeout is closed
//! before any protocol state is built for it; HTTP/1 heads that trickle are cut by hyper's
//! `header_read_timeout`.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use oxserve_security::Acceptor;
use tokio::sync::Semaphore;

/// Default cap on open connections (REST and gRPC together).
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default bound on a request head (request line + headers), in bytes; beyond it HTTP/1
/// answers 431 and HTTP/2 refuses the stream.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;
/// Default time a client has to send a complete request head.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// hyper's smallest HTTP/1 read buffer; the head must fit in the buffer, so this is also
/// the smallest head bound that can be configured.
const MIN_HEADER_BYTES: usize = 8192;

/// Connection-level bounds of one server.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Open connections across every listener sharing [`ConnectionLimits::slots`].
    pub max_connections: usize,
    /// Largest request head in bytes (at least 8 KiB).
    pub max_header_bytes: usize,
    /// Time a client has to send its request head.
    pub header_read_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
        }
    }
}

impl ConnectionLimits {
    /// The connection slots the listeners of one server share.
    pub fn slots(&self) -> Arc<Semaphore> {
        Arc::new(Semaphore::new(self.max_connections.max(1)))
    }

    fn builder(&self, http2_only: bool) -> auto::Builder<TokioExecutor> {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout)
            .max_buf_size(self.max_header_bytes.max(MIN_HEADER_BYTES));
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(self.max_header_bytes).unwrap_or(u32::MAX));
        if http2_only { builder.http2_only() } else { builder }
    }
}

/// Accepts connections on `listener` (plain or TLS) and serves each with `service` until
/// `stop` changes; the connections are watched by `graceful`, and each holds one of `slots`
/// while open.
pub fn accept_loop<S, B>(
    mut listener: Acceptor,
    service: S,
    http2_only: bool,
    limits: &ConnectionLimits,
    slots: Arc<Semaphore>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    graceful: &Arc<GracefulShutdown>,
) -> tokio::task::JoinHandle<()>
where
    S: tower::Service<http::Request<hyper::body::Incoming>, Response = http::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let graceful = graceful.clone();
    let builder = Arc::new(limits.builder(http2_only));
    let first_byte_timeout = limits.header_read_timeout;
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
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
            // Small responses must not wait for Nagle's algorithm.
            let _ = stream.set_nodelay(true);
            let (builder, service) = (builder.clone(), service.clone());
            let (watcher, mut stopped) = (graceful.watcher(), stop.clone());
            tokio::spawn(async move {
                let _slot = slot;
                // A client that connects and sends nothing holds no protocol state: hyper's
                // header timeout starts with the first byte, the auto builder waits for it
                // to tell HTTP/1 from HTTP/2.
                // (A TLS connection has already sent its handshake, within its own timeout.)
                let mut first = [0u8; 1];
                if !stream.is_tls() {
                    tokio::select! {
                        peeked = tokio::time::timeout(first_byte_timeout, stream.tcp().peek(&mut first)) => {
                            if !matches!(peeked, Ok(Ok(n)) if n > 0) {
                                return;
                            }
                        }
                        // Shutdown does not wait for a connection that has not said anything.
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

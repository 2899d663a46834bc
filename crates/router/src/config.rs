//! How the router runs: the domain its hosts live under, the activator's bounds, the body
//! limit and the sampling period, and the connection bounds that keep slow or greedy
//! clients from holding it. What to route lives in the [`RouteTable`].
//!
//! [`RouteTable`]: oxserve_controller::routes::RouteTable

use std::sync::Arc;
use std::time::Duration;

use oxserve_security::{AuthLayer, ServerConfig};

/// The router's settings (platform.yaml's `domain` and `activator:` keys).
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// Hosts are `NAME.NS.{domain}`; a host under this domain that names no service is a
    /// 404, any other host falls back to the model name in the request.
    pub domain: String,
    /// `activator.queue-depth`: requests one revision may buffer while it has no free ready
    /// replica; beyond it requests get 503.
    pub queue_depth: usize,
    /// Largest request body (REST) / first gRPC message accepted, in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// How often the per-revision sample goes to the autoscaler.
    pub sample_interval: Duration,
    /// How often replicas not yet known ready are asked for model readiness while requests
    /// wait for them.
    pub readiness_poll_interval: Duration,
    /// Capacity of the event channel to the autoscaler (events beyond it are dropped and
    /// counted rather than blocking a request).
    pub event_capacity: usize,
    /// Open client connections at most (every listener together); beyond it the accept
    /// loops wait until one closes.
    pub max_connections: usize,
    /// Largest request head (request line + headers) in bytes; beyond it HTTP/1 answers 431.
    pub max_header_bytes: usize,
    /// Time a client has to send its request head before the connection is closed.
    pub header_read_timeout: Duration,
    /// Time a REST request body may take to arrive in full (408 and the connection closed
    /// beyond it). gRPC bodies are streams and are not bounded this way.
    pub body_read_timeout: Duration,
    /// TLS on the REST and gRPC ports (`--tls-cert`, `--tls-key`, `--tls-client-ca`).
    pub tls: Option<Arc<ServerConfig>>,
    /// Bearer tokens on the REST and gRPC ports (`--auth-token-file`); health checks stay
    /// open.
    pub auth: AuthLayer,
}

/// Knative's activator default.
pub const DEFAULT_QUEUE_DEPTH: usize = 10_000;

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            domain: "example.com".into(),
            queue_depth: DEFAULT_QUEUE_DEPTH,
            max_body_bytes: 64 * 1024 * 1024,
            sample_interval: Duration::from_secs(1),
            readiness_poll_interval: Duration::from_millis(15),
            event_capacity: 4096,
            max_connections: 10_000,
            max_header_bytes: 64 * 1024,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(60),
            tls: None,
            auth: AuthLayer::off(),
        }
    }
}

//! oxserve-router: the data-plane gateway and activator.
//!
//! One proxy for REST (HTTP/1.1, h2c) and gRPC (HTTP/2) that routes each request to an
//! InferenceService by host, tag host, V1/V2 path or the gRPC message's model name, splits it
//! across revisions by weight ([`oxserve_controller::split::Splitter`]), buffers it while the
//! revision has no ready replica (telling the autoscaler at once), and streams it to a
//! replica over a pooled connection. The route table ([`RouteTable`]) comes from the control
//! plane or a standalone routes file and is swapped in whole.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use oxserve_router::{Listeners, Router, RouterConfig, serve};
//! let (router, mut events) = Router::new(RouterConfig::default());
//! router.update(&oxserve_controller::routes::RouteTable::default()).unwrap();
//! let http = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! tokio::spawn(async move { while let Some(event) = events.recv().await { let _ = event; } });
//! serve(Listeners { http, grpc: None }, router, std::future::pending()).await
//! # }
//! ```
//!
//! [`RouteTable`]: oxserve_controller::routes::RouteTable

mod activator;
pub mod body;
pub mod config;
pub mod error;
pub mod grpc;
mod metrics;
mod proxy;
mod router;
pub mod serve;
mod service;
pub mod standalone;
mod table;

pub use config::RouterConfig;
pub use error::{ConfigError, RouteError};
pub use router::Router;
pub use serve::{Listeners, serve, serve_internal, serve_pinned};
pub use service::{stack, stack_with};

/// The response header naming the revision that answered.
pub const REVISION_HEADER: &str = "x-oxserve-revision";

/// What the router calls itself in server metadata.
pub const SERVER_NAME: &str = "oxserve-router";

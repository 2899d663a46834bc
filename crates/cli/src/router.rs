//! `oxserve router`: the gateway on its own, in front of any V2 servers, with its routes from
//! a file that is re-read when it changes or on SIGHUP (see docs/router.md).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use oxserve_router::{Listeners, Router, RouterConfig, serve, standalone};

#[derive(clap::Args)]
pub struct Args {
    /// The routes file: services and their weighted backends (YAML).
    #[arg(long, env = "OXSERVE_ROUTES")]
    routes: PathBuf,
    /// Address to bind (loopback by default).
    #[arg(long, env = "OXSERVE_HOST", default_value = "127.0.0.1")]
    host: IpAddr,
    /// REST port (HTTP/1.1 and h2c; 0 picks a free port).
    #[arg(long, env = "OXSERVE_HTTP_PORT", default_value_t = 8080)]
    http_port: u16,
    /// gRPC port (0 picks a free port).
    #[arg(long, env = "OXSERVE_GRPC_PORT", default_value_t = 8081)]
    grpc_port: u16,
    /// Hosts `NAME.NAMESPACE.DOMAIN` reach a service.
    #[arg(long, env = "OXSERVE_DOMAIN", default_value = "example.com")]
    domain: String,
    /// Requests one revision may buffer while no backend is free (503 beyond).
    #[arg(long, env = "OXSERVE_QUEUE_DEPTH", default_value_t = oxserve_router::config::DEFAULT_QUEUE_DEPTH)]
    queue_depth: usize,
    /// Largest accepted request body / first gRPC message in bytes (413 beyond).
    #[arg(long, env = "OXSERVE_MAX_BODY_BYTES", default_value_t = 64 * 1024 * 1024)]
    max_body_bytes: usize,
    /// Seconds between checks of the routes file for changes.
    #[arg(long, env = "OXSERVE_ROUTES_POLL_INTERVAL", default_value_t = 1.0)]
    routes_poll_interval: f64,
    /// Worker threads (default: one per core).
    #[arg(long, env = "OXSERVE_THREADS")]
    threads: Option<usize>,
    #[command(flatten)]
    connections: crate::limits::ConnectionArgs,
    #[command(flatten)]
    tls: crate::security::TlsArgs,
    #[command(flatten)]
    auth: crate::security::AuthArgs,
}

pub fn run(args: Args) -> Result<()> {
    let Args {
        routes,
        host,
        http_port,
        grpc_port,
        domain,
        queue_depth,
        max_body_bytes,
        routes_poll_interval,
        threads,
        connections,
        tls,
        auth,
    } = args;
    let tls = tls.config()?;
    let tokens = auth.open()?;
    let (connections, body_read_timeout) = connections.resolve()?;
    let poll = Duration::try_from_secs_f64(routes_poll_interval)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            anyhow::anyhow!("--routes-poll-interval must be a positive number of seconds")
        })?;
    let table = standalone::load(&routes)?;
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(n) = threads {
        runtime.worker_threads(n.max(1));
    }
    let runtime = runtime.build().context("starting the async runtime")?;
    runtime.block_on(async move {
        let config = RouterConfig {
            domain,
            queue_depth,
            max_body_bytes,
            max_connections: connections.max_connections,
            max_header_bytes: connections.max_header_bytes,
            header_read_timeout: connections.header_read_timeout,
            body_read_timeout,
            tls: tls.clone(),
            auth: crate::security::layer(tokens, oxserve_security::OpenPaths::HEALTH),
            ..RouterConfig::default()
        };
        let (router, mut events) = Router::new(config);
        router.update(&table)?;
        // Standalone mode has no autoscaler: the events are only logged.
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                tracing::trace!(?event, "router event");
            }
        });
        let http = tokio::net::TcpListener::bind(SocketAddr::new(host, http_port))
            .await
            .with_context(|| format!("binding REST port {host}:{http_port}"))?;
        let grpc = tokio::net::TcpListener::bind(SocketAddr::new(host, grpc_port))
            .await
            .with_context(|| format!("binding gRPC port {host}:{grpc_port}"))?;
        let reload = Arc::new(tokio::sync::Notify::new());
        spawn_sighup(reload.clone());
        tokio::spawn(standalone::watch(routes.clone(), router.clone(), poll, reload));
        // One machine-readable line on stdout so scripts and tests can find the ports.
        println!(
            "oxserve router listening rest={}://{} grpc={}",
            crate::security::scheme(&tls),
            http.local_addr()?,
            grpc.local_addr()?
        );
        tracing::info!(routes = %routes.display(), services = table.services.len(), "routing");
        serve(Listeners { http, grpc: Some(grpc) }, router, shutdown_signal())
            .await
            .context("serving")?;
        tracing::info!("stopped");
        Ok(())
    })
}

fn spawn_sighup(reload: Arc<tokio::sync::Notify>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::hangup()) {
            Ok(mut hup) => {
                tokio::spawn(async move {
                    while hup.recv().await.is_some() {
                        tracing::info!("SIGHUP: reloading the routes file");
                        reload.notify_one();
                    }
                });
            }
            Err(e) => tracing::warn!(error = %e, "no SIGHUP handler; the file is still polled"),
        }
    }
    #[cfg(not(unix))]
    let _ = reload;
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

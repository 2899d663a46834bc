//! `oxserve serve`: binds the ports, loads the repository and runs the server until
//! Ctrl-C or SIGTERM, then drains.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use oxserve_server::core::{Core, CoreConfig};
use oxserve_server::repository::Repository;
use oxserve_server::serve::{Listeners, ServeOptions, serve};

#[derive(clap::Args)]
pub struct Args {
    /// A model repository directory, a single model directory or a model file.
    #[arg(env = "OXSERVE_MODEL_REPOSITORY")]
    model_repository: PathBuf,
    /// Address to bind (loopback by default).
    #[arg(long, env = "OXSERVE_HOST", default_value = "127.0.0.1")]
    host: IpAddr,
    /// REST port (0 picks a free port).
    #[arg(long, env = "OXSERVE_HTTP_PORT", default_value_t = 8080)]
    http_port: u16,
    /// gRPC port (0 picks a free port).
    #[arg(long, env = "OXSERVE_GRPC_PORT", default_value_t = 8081)]
    grpc_port: u16,
    /// Serve REST only.
    #[arg(long, env = "OXSERVE_NO_GRPC")]
    no_grpc: bool,
    /// Largest accepted request body / gRPC message in bytes (413 beyond).
    #[arg(long, env = "OXSERVE_MAX_BODY_BYTES", default_value_t = oxserve_server::rest::DEFAULT_MAX_BODY_BYTES)]
    max_body_bytes: usize,
    /// Worker threads (default: one per core).
    #[arg(long, env = "OXSERVE_THREADS")]
    threads: Option<usize>,
    /// Seconds shutdown waits for requests in flight before closing connections anyway.
    #[arg(long, env = "OXSERVE_SHUTDOWN_TIMEOUT", default_value_t = 30.0)]
    shutdown_timeout: f64,
    #[command(flatten)]
    connections: crate::limits::ConnectionArgs,
    #[command(flatten)]
    admission: crate::limits::AdmissionArgs,
    #[command(flatten)]
    tls: crate::security::TlsArgs,
    #[command(flatten)]
    auth: crate::security::AuthArgs,
}

pub fn run(args: Args) -> Result<()> {
    let Args {
        model_repository,
        host,
        http_port,
        grpc_port,
        no_grpc,
        max_body_bytes,
        threads,
        shutdown_timeout,
        connections,
        admission,
        tls,
        auth,
    } = args;
    let tls = tls.config()?;
    let tokens = auth.open()?;
    let (connections, body_read_timeout) = connections.resolve()?;
    let admission = admission.resolve()?;
    let shutdown_timeout = Duration::try_from_secs_f64(shutdown_timeout).map_err(|_| {
        anyhow::anyhow!("--shutdown-timeout must be a non-negative number of seconds")
    })?;
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(n) = threads {
        runtime.worker_threads(n.max(1));
    }
    let runtime = runtime.build().context("starting the async runtime")?;
    runtime.block_on(async move {
        let repository = Repository::open(&model_repository)?;
        let http = tokio::net::TcpListener::bind(SocketAddr::new(host, http_port))
            .await
            .with_context(|| format!("binding REST port {host}:{http_port}"))?;
        let grpc = if no_grpc {
            None
        } else {
            Some(
                tokio::net::TcpListener::bind(SocketAddr::new(host, grpc_port))
                    .await
                    .with_context(|| format!("binding gRPC port {host}:{grpc_port}"))?,
            )
        };
        let core = Arc::new(Core::new(CoreConfig { admission, ..CoreConfig::default() }, Some(repository)));
        core.load_all().await;
        // One machine-readable line on stdout so scripts and tests can find the ports.
        let rest_addr = http.local_addr()?;
        let scheme = crate::security::scheme(&tls);
        match &grpc {
            Some(g) => println!("oxserve listening rest={scheme}://{rest_addr} grpc={}", g.local_addr()?),
            None => println!("oxserve listening rest={scheme}://{rest_addr}"),
        }
        let auth = crate::security::layer(tokens, oxserve_security::OpenPaths::HEALTH);
        for entry in core.entries() {
            match entry.state.reason() {
                None => tracing::info!(model = %entry.name, versions = ?entry.versions.keys().collect::<Vec<_>>(), "serving"),
                Some(reason) => tracing::warn!(model = %entry.name, %reason, "not serving"),
            }
        }
        serve(Listeners { http, grpc }, core, ServeOptions { max_body_bytes, body_read_timeout, connections, shutdown_timeout, tls, auth }, shutdown_signal())
            .await
            .context("serving")?;
        tracing::info!("stopped");
        Ok(())
    })
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

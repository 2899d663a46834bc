//! `oxserve agent`: the sidecar in front of a model server — payload logging, request
//! batching and the multi-model puller — with KServe's agent flags and defaults (except a
//! 5 ms rather than 5 s batching latency).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use oxserve_agent::batcher::BatcherConfig;
use oxserve_agent::logger::{LogMode, LoggerConfig, Overflow, PayloadLogger};
use oxserve_agent::proxy::{ProxyState, serve};

#[derive(clap::Args)]
pub struct Args {
    /// Address to bind.
    #[arg(long, env = "OXSERVE_AGENT_HOST", default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port the agent listens on (0 picks a free port).
    #[arg(long, env = "OXSERVE_AGENT_PORT", default_value_t = 9081)]
    port: u16,
    /// Host of the model server.
    #[arg(long, env = "OXSERVE_COMPONENT_HOST", default_value = "127.0.0.1")]
    component_host: String,
    /// REST port of the model server.
    #[arg(long, env = "OXSERVE_COMPONENT_PORT", default_value_t = 8080)]
    component_port: u16,
    /// Largest accepted request body in bytes.
    #[arg(long, env = "OXSERVE_MAX_BODY_BYTES", default_value_t = 64 * 1024 * 1024)]
    max_body_bytes: usize,

    /// CloudEvents sink for inference payloads (logging is off without it).
    #[arg(long, env = "OXSERVE_LOG_URL")]
    log_url: Option<String>,
    /// What to log: all, request or response.
    #[arg(long, env = "OXSERVE_LOG_MODE", default_value = "all")]
    log_mode: String,
    /// `ce-source` of logged events.
    #[arg(long, env = "OXSERVE_SOURCE_URI", default_value = "http://localhost/oxserve-agent")]
    source_uri: String,
    /// Extension `inferenceservicename`.
    #[arg(long, env = "OXSERVE_INFERENCE_SERVICE", default_value = "")]
    inference_service: String,
    /// Extension `namespace`.
    #[arg(long, env = "OXSERVE_NAMESPACE", default_value = "")]
    namespace: String,
    /// Extension `endpoint`.
    #[arg(long, env = "OXSERVE_ENDPOINT", default_value = "")]
    endpoint: String,
    /// Extension `component`.
    #[arg(long, env = "OXSERVE_COMPONENT", default_value = "predictor")]
    component: String,
    /// Events queued for the sink at most.
    #[arg(long, env = "OXSERVE_LOG_QUEUE_SIZE", default_value_t = 1024)]
    log_queue_size: usize,
    /// When the queue is full: drop (and count) or block (back-pressure to clients).
    #[arg(long, env = "OXSERVE_LOG_OVERFLOW", default_value = "drop")]
    log_overflow: String,
    /// Retries per event before it is spilled (the default rides out a sink outage of about
    /// a minute).
    #[arg(long, env = "OXSERVE_LOG_RETRIES", default_value_t = 16)]
    log_retries: u32,
    /// Where undeliverable events are appended as JSON lines.
    #[arg(long, env = "OXSERVE_LOG_SPILL_FILE", default_value = "oxserve-agent-spill.jsonl")]
    log_spill_file: PathBuf,

    /// Batch inference requests before they reach the server.
    #[arg(long, env = "OXSERVE_ENABLE_BATCHER")]
    enable_batcher: bool,
    /// Rows per batch at most.
    #[arg(long, env = "OXSERVE_MAX_BATCHSIZE", default_value_t = 32)]
    max_batchsize: usize,
    /// How long (ms) the first request of a batch waits for more.
    #[arg(long, env = "OXSERVE_MAX_LATENCY", default_value_t = 5)]
    max_latency: u64,
    /// How long (s) a request waits for its batch before a 504.
    #[arg(long, env = "OXSERVE_BATCH_TIMEOUT", default_value_t = 60)]
    timeout: u64,

    /// Watch the models config and pull/load/unload models on the server.
    #[arg(long, env = "OXSERVE_ENABLE_PULLER")]
    enable_puller: bool,
    /// Directory holding the models config (`models.json`).
    #[arg(long, env = "OXSERVE_CONFIG_DIR", default_value = "/mnt/configs")]
    config_dir: PathBuf,
    /// The server's model repository, where models are pulled.
    #[arg(long, env = "OXSERVE_MODEL_DIR", default_value = "/mnt/models")]
    model_dir: PathBuf,
    /// How often (ms) the models config is checked.
    #[arg(long, env = "OXSERVE_WATCH_INTERVAL", default_value_t = 1000)]
    watch_interval: u64,
    #[command(flatten)]
    cache: crate::pull::CacheArgs,
}

pub fn run(args: Args) -> Result<()> {
    let Args {
        host,
        port,
        component_host,
        component_port,
        max_body_bytes,
        log_url,
        log_mode,
        source_uri,
        inference_service,
        namespace,
        endpoint,
        component,
        log_queue_size,
        log_overflow,
        log_retries,
        log_spill_file,
        enable_batcher,
        max_batchsize,
        max_latency,
        timeout,
        enable_puller,
        config_dir,
        model_dir,
        watch_interval,
        cache,
    } = args;
    let log_mode: LogMode = log_mode.parse()?;
    let overflow: Overflow = log_overflow.parse()?;
    let puller_config = cache.config()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let upstream = format!("http://{component_host}:{component_port}");
        let logger = match log_url {
            None => None,
            Some(url) => {
                let mut c = LoggerConfig::new(url, log_spill_file);
                c.mode = log_mode;
                c.queue_capacity = log_queue_size;
                c.overflow = overflow;
                c.max_retries = log_retries;
                c.source = source_uri;
                c.inference_service_name = inference_service;
                c.namespace = namespace;
                c.endpoint = endpoint;
                c.component = component;
                Some(PayloadLogger::start(c)?)
            }
        };
        let batcher = enable_batcher.then_some(BatcherConfig {
            max_batch_size: max_batchsize,
            max_latency: Duration::from_millis(max_latency),
            timeout: Duration::from_secs(timeout),
        });
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let models = if enable_puller {
            let watcher = oxserve_agent::watcher::Watcher::new(
                oxserve_agent::watcher::WatcherConfig {
                    config_file: config_dir.join(oxserve_agent::watcher::CONFIG_FILE),
                    model_dir,
                    server: upstream.clone(),
                    interval: Duration::from_millis(watch_interval.max(10)),
                },
                oxserve_agent::puller::Puller::new(puller_config)
                    .context("opening the model cache")?,
            )?;
            let states = watcher.states();
            tokio::spawn(watcher.run(stop_rx));
            Some(states)
        } else {
            None
        };
        let state = ProxyState::new(&upstream, logger, batcher, models, max_body_bytes)?;
        let listener = tokio::net::TcpListener::bind(SocketAddr::new(host, port))
            .await
            .with_context(|| format!("binding {host}:{port}"))?;
        // One machine-readable line on stdout so scripts and tests can find the port.
        println!("oxserve agent listening http://{} upstream={upstream}", listener.local_addr()?);
        serve(listener, state, shutdown_signal()).await?;
        let _ = stop_tx.send(true);
        tracing::info!("stopped");
        Ok(())
    })
}

/// Ctrl-C or SIGTERM.
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

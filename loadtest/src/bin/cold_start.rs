//! `oxserve-cold-start`: the time from the first request at a revision with no replica to
//! its response, through the router's activator, with a real `oxserve serve` replica started
//! the moment the router asks for one (as the platform's local backend does).
//!
//! Each run: a fresh revision with no replica; one REST inference request sent to the
//! router; on the router's `Activation` event, `oxserve serve MODEL` is spawned, and once it
//! prints its ports the table lists it (not yet known ready); the router polls the model's
//! readiness and releases the request. The replica is stopped by PID after each run. Prints
//! one JSON line: every run's milliseconds and their p50/p99.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use oxserve_controller::metrics::RouterEvent;
use oxserve_controller::routes::{
    ComponentRoute, Replica, RevisionTarget, RouteTable, ServiceRoute,
};
use oxserve_router::{Listeners, Router, RouterConfig};

/// Cold starts through the router's activator.
#[derive(Parser)]
#[command(name = "oxserve-cold-start", version)]
struct Args {
    /// The `oxserve` binary that serves the replica.
    #[arg(long, env = "OXSERVE_COLD_START_OXSERVE")]
    oxserve: PathBuf,
    /// The model directory the replica serves.
    #[arg(long, env = "OXSERVE_COLD_START_MODEL_DIR")]
    model_dir: PathBuf,
    /// The model's name (the directory name when it is a model directory).
    #[arg(long, env = "OXSERVE_COLD_START_MODEL")]
    model: String,
    /// The JSON inference request body.
    #[arg(long, env = "OXSERVE_COLD_START_BODY")]
    body: PathBuf,
    /// Cold starts to measure.
    #[arg(long, env = "OXSERVE_COLD_START_RUNS", default_value_t = 20)]
    runs: usize,
    /// Extra arguments for `oxserve serve` (e.g. `--threads 1`), space-separated.
    #[arg(long, env = "OXSERVE_COLD_START_SERVE_ARGS", default_value = "--threads 1")]
    serve_args: String,
}

fn table(model: &str, revision: &str, replicas: Vec<Replica>) -> RouteTable {
    RouteTable {
        services: vec![ServiceRoute {
            name: model.into(),
            namespace: "default".into(),
            hosts: vec![],
            models: vec![model.into()],
            entry: ComponentRoute {
                component: "predictor".into(),
                host: String::new(),
                targets: vec![RevisionTarget {
                    revision: revision.into(),
                    weight: 100,
                    tag: None,
                    model: Some(model.into()),
                    container_concurrency: 0,
                    timeout_seconds: 60,
                    replicas,
                }],
            },
            predictor: None,
        }],
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let Args { oxserve, model_dir, model, body, runs, serve_args } = Args::parse();
    let body =
        Bytes::from(std::fs::read(&body).with_context(|| format!("reading {}", body.display()))?);
    let (router, mut events) = Router::new(RouterConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/v2/models/{model}/infer", listener.local_addr()?);
    tokio::spawn(oxserve_router::serve(
        Listeners { http: listener, grpc: None },
        router.clone(),
        std::future::pending(),
    ));
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut ms = Vec::with_capacity(runs);
    for run in 1..=runs {
        let revision = format!("{model}-predictor-{run:05}");
        router.update(&table(&model, &revision, vec![]))?;
        let request = hyper::Request::post(&url)
            .header("content-type", "application/json")
            .body(Full::new(body.clone()))?;
        let started = Instant::now();
        let response = tokio::spawn(client.request(request));
        // The backend: start a replica when the router asks for one.
        loop {
            match events.recv().await.context("router events ended")? {
                RouterEvent::Activation { revision: r, .. } if r == revision => break,
                _ => {}
            }
        }
        let mut child = Command::new(&oxserve)
            .arg("serve")
            .arg(&model_dir)
            .args(["--http-port", "0", "--grpc-port", "0"])
            .args(serve_args.split_whitespace())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", oxserve.display()))?;
        let stdout = child.stdout.take().context("replica stdout")?;
        let line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).map(|_| line)
        })
        .await??;
        let Some(rest) = line.split_whitespace().find_map(|p| p.strip_prefix("rest=")) else {
            bail!("replica did not start: {line:?}");
        };
        let replica = Replica { id: "r1".into(), http: rest.to_owned(), grpc: None, ready: false };
        router.update(&table(&model, &revision, vec![replica]))?;
        let response = response.await??;
        let status = response.status();
        let _ = response.into_body().collect().await;
        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let _ = child.wait();
        if status != 200 {
            bail!("cold start {run}: status {status}");
        }
        eprintln!("cold start {run}: {elapsed:.1} ms");
        ms.push(elapsed);
    }
    let mut sorted = ms.clone();
    sorted.sort_by(f64::total_cmp);
    let pick =
        |q: f64| sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
    println!("{}", serde_json::json!({ "runs_ms": ms, "p50_ms": pick(0.5), "p99_ms": pick(0.99) }));
    Ok(())
}

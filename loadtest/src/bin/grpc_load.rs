//! `oxserve-grpc-load`: a closed-loop load driver for the V2 gRPC `ModelInfer` RPC.
//!
//! `--concurrency` tasks share `--connections` HTTP/2 connections; each sends the one-row
//! iris request, waits for the answer and sends the next until `--duration` is over. Every
//! response is checked (OK status and the output count of a first probe response); the
//! latencies of the successful ones go into an hdrhistogram, and the run ends with one line
//! of JSON on stdout: `{requests, errors, rps, p50_us, p90_us, p99_us, max_us, elapsed_s}`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clap::Parser;
use hdrhistogram::Histogram;
use oxserve_loadtest::duration::parse_duration;
use oxserve_loadtest::request::iris_grpc_request;
use oxserve_loadtest::summary::{Summary, new_histogram};
use oxserve_protocol::grpc::inference::ModelInferRequest;
use oxserve_protocol::grpc::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use prost::Message;
use tonic::transport::{Channel, Endpoint};

/// Closed-loop gRPC load for V2 ModelInfer with one iris row per request.
#[derive(Parser)]
#[command(name = "oxserve-grpc-load", version)]
struct Args {
    /// gRPC server address, host:port.
    #[arg(long, env = "OXSERVE_LOAD_ADDR")]
    addr: String,
    /// Model to call.
    #[arg(long, env = "OXSERVE_LOAD_MODEL", default_value = "iris-lr")]
    model: String,
    /// Requests in flight (one task each).
    #[arg(long, env = "OXSERVE_LOAD_CONCURRENCY", default_value_t = 64)]
    concurrency: usize,
    /// How long to measure (e.g. 10s, 500ms, 1m).
    #[arg(long, env = "OXSERVE_LOAD_DURATION", default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Unmeasured load before the measurement.
    #[arg(long, env = "OXSERVE_LOAD_WARMUP", value_parser = parse_duration)]
    warmup: Option<Duration>,
    /// HTTP/2 connections the tasks share (capped at the concurrency).
    #[arg(long, env = "OXSERVE_LOAD_CONNECTIONS", default_value_t = 4)]
    connections: usize,
    /// Send the input as `raw_input_contents` instead of typed `fp32_contents`.
    #[arg(long, env = "OXSERVE_LOAD_RAW")]
    raw: bool,
    /// Worker threads of the driver.
    #[arg(long, env = "OXSERVE_LOAD_THREADS", default_value_t = 1)]
    threads: usize,
    /// Send one request, write its protobuf-encoded response to this file and exit.
    #[arg(long, env = "OXSERVE_LOAD_SAVE_RESPONSE")]
    save_response: Option<PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let Args {
        addr,
        model,
        concurrency,
        duration,
        warmup,
        connections,
        raw,
        threads: _,
        save_response,
    } = args;
    ensure!(concurrency > 0, "--concurrency must be at least 1");
    let request = iris_grpc_request(&model, raw);
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .with_context(|| format!("address {addr:?}"))?
        .tcp_nodelay(true);
    let mut channels = Vec::new();
    for _ in 0..connections.clamp(1, concurrency) {
        channels.push(endpoint.connect().await.with_context(|| format!("connecting to {addr}"))?);
    }

    // The probe: the server must answer, and its output count is what every answer must have.
    let probe = GrpcInferenceServiceClient::new(channels[0].clone())
        .model_infer(request.clone())
        .await
        .with_context(|| format!("probe request to model {model:?}"))?
        .into_inner();
    if let Some(path) = save_response {
        std::fs::write(&path, probe.encode_to_vec())
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!(
            "oxserve-grpc-load: response ({} outputs) saved to {}",
            probe.outputs.len(),
            path.display()
        );
        return Ok(());
    }
    let expected_outputs = probe.outputs.len();
    if expected_outputs == 0 {
        bail!("the probe response has no outputs");
    }

    if let Some(warmup) = warmup {
        drive(&channels, &request, concurrency, warmup, expected_outputs).await?;
    }
    let (latencies, errors, first_error, elapsed) =
        drive(&channels, &request, concurrency, duration, expected_outputs).await?;
    if let Some(e) = first_error {
        eprintln!("oxserve-grpc-load: {errors} errors, the first: {e}");
    }
    println!("{}", Summary::new(&latencies, errors, elapsed).to_json());
    Ok(())
}

/// What one run gives back: latencies of good calls, error count, first error, wall time.
type RunResult = (Histogram<u64>, u64, Option<String>, Duration);

/// Runs `concurrency` closed loops for `duration` and merges their results.
async fn drive(
    channels: &[Channel],
    request: &ModelInferRequest,
    concurrency: usize,
    duration: Duration,
    expected_outputs: usize,
) -> Result<RunResult> {
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = (0..concurrency)
        .map(|i| {
            let client = GrpcInferenceServiceClient::new(channels[i % channels.len()].clone())
                .max_decoding_message_size(usize::MAX);
            let request = request.clone();
            tokio::spawn(closed_loop(client, request, deadline, expected_outputs))
        })
        .collect();
    let mut latencies = new_histogram();
    let mut errors = 0;
    let mut first_error = None;
    for task in tasks {
        let (h, e, first) = task.await.context("a load task panicked")?;
        latencies.add(&h).context("merging histograms")?;
        errors += e;
        first_error = first_error.or(first);
    }
    Ok((latencies, errors, first_error, start.elapsed()))
}

/// One client sending back to back until `deadline`.
async fn closed_loop(
    mut client: GrpcInferenceServiceClient<Channel>,
    request: ModelInferRequest,
    deadline: Instant,
    expected_outputs: usize,
) -> (Histogram<u64>, u64, Option<String>) {
    let mut latencies = new_histogram();
    let mut errors = 0;
    let mut first_error = None;
    loop {
        let sent = Instant::now();
        if sent >= deadline {
            break;
        }
        let outcome = match client.model_infer(request.clone()).await {
            Ok(resp) if resp.get_ref().outputs.len() == expected_outputs => Ok(()),
            Ok(resp) => Err(format!(
                "response has {} outputs, expected {expected_outputs}",
                resp.get_ref().outputs.len()
            )),
            Err(status) => Err(format!("status {:?}: {}", status.code(), status.message())),
        };
        match outcome {
            Ok(()) => latencies.saturating_record(sent.elapsed().as_micros().max(1) as u64),
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    (latencies, errors, first_error)
}

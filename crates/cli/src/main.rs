//! The `oxserve` binary: one command line for serving and using models.

mod agent;
mod apply;
#[cfg(feature = "kubernetes")]
mod controller;
mod infer;
mod limits;
mod pull;
mod resources;
mod router;
mod security;
mod serve;
mod up;
mod wait;

use anyhow::Result;

/// mimalloc, for the many short-lived buffers of every request (see `oxserve_alloc`;
/// measured with callgrind in docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: oxserve_alloc::Allocator = oxserve_alloc::Allocator;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "oxserve",
    version,
    about = "Serve trained models over the Open Inference Protocol (V2) and V1"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, env = "OXSERVE_LOG_FORMAT", default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a model repository, a model directory or a single model file.
    Serve(serve::Args),
    /// Send one V2 inference request to a server and print the response.
    Infer(infer::Args),
    /// Run the sidecar agent: payload logging, request batching, multi-model puller.
    Agent(Box<agent::Args>),
    /// Fetch a model from a storage URI into a directory.
    Pull(pull::Args),
    /// Apply InferenceServices, TrainedModels and ServingRuntimes from a manifest
    /// (--dry-run: parse, default and validate only, no platform needed).
    Apply(apply::Args),
    /// Run the gateway alone: weighted routes to V2 servers from a routes file.
    Router(router::Args),
    /// Run the whole platform on this machine: controller, router, autoscaler, api.
    Up(up::Args),
    /// List InferenceServices, TrainedModels or revisions.
    Get(resources::GetArgs),
    /// Show an InferenceService in detail: conditions, traffic, revisions.
    Describe(resources::DescribeArgs),
    /// Delete an InferenceService or a TrainedModel.
    Delete(resources::DeleteArgs),
    /// Print the replica logs of an InferenceService's revision.
    Logs(resources::LogsArgs),
    /// Run the Kubernetes controller (InferenceServices → Deployments, Services, routes).
    #[cfg(feature = "kubernetes")]
    Controller(controller::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let result: Result<()> = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Infer(args) => infer::run(args),
        Command::Agent(args) => agent::run(*args),
        Command::Pull(args) => pull::run(args),
        Command::Apply(args) => apply::run(args),
        Command::Router(args) => router::run(args),
        Command::Up(args) => up::run(args),
        Command::Get(args) => resources::get(args),
        Command::Describe(args) => resources::describe(args),
        Command::Delete(args) => resources::delete(args),
        Command::Logs(args) => resources::logs(args),
        #[cfg(feature = "kubernetes")]
        Command::Controller(args) => controller::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("oxserve: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("OXSERVE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,ort=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

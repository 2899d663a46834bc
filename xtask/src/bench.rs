//! `cargo xtask bench`: criterion benches and whole-server measurements.
//!
//! - `cargo xtask bench criterion` runs the criterion benches of the hot paths (the REST
//!   codecs in `oxserve-protocol`, tree evaluation in `oxserve-server`) and summarises them.
//! - `cargo xtask bench server` measures V2 REST and gRPC serving of a one-row iris request
//!   with oxserve pinned to one core and the load generator on another, next to a bare
//!   axum/tonic ceiling answering the same bytes in the same run.
//! - `cargo xtask bench peers` serves the same iris model with oxserve, MLServer, KServe and
//!   the bare ceiling one after another on the same pinned core and tables them side by side.
//!
//! Both measure and report; neither asserts a figure. `docs/benchmarks.md` records results.

mod criterion;
mod peers;
mod server;

use anyhow::Result;
use xshell::Shell;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(clap::Subcommand)]
enum BenchCommand {
    /// Run the criterion benches (codecs, tree evaluation) and summarise them.
    Criterion(criterion::Args),
    /// Measure oxserve's V2 REST and gRPC throughput and latency against a bare ceiling.
    Server(server::Args),
    /// Measure oxserve next to MLServer, KServe and the bare ceiling on the same iris model.
    Peers(peers::Args),
}

pub fn run(sh: &Shell, args: Args) -> Result<()> {
    let Args { command } = args;
    match command {
        BenchCommand::Criterion(args) => criterion::run(sh, args),
        BenchCommand::Server(args) => server::run(sh, args),
        BenchCommand::Peers(args) => peers::run(sh, args),
    }
}

/// Where cargo puts build output (`CARGO_TARGET_DIR` or `target/`).
fn target_dir() -> std::path::PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => crate::project_root().join(dir),
        None => crate::project_root().join("target"),
    }
}

/// `nproc`, the CPU model and the load average, for the record next to any figure.
fn machine_description() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')))
        .map_or("unknown CPU", |(_, m)| m.trim())
        .to_owned();
    format!("{cpus} CPUs ({model}), load average {}", load_average())
}

/// The 1/5/15-minute load averages from `/proc/loadavg`.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

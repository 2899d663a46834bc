//! `cargo xtask bench`: criterion benches and whole-server measurements.
//!
//! - `cargo xtask bench criterion` runs the criterion benches of the hot paths (the REST
//!   codecs in `oxserve-protocol`, tree evaluation in `oxserve-server`) and summarises them.
//! - `cargo xtask bench server` measures V2 REST and gRPC serving of a one-row iris request
//!   with oxserve pinned to one core and the load generator on another, next to a bare
//!   axum/tonic ceiling answering the same bytes in the same run.
//! - `cargo xtask bench peers` serves the same iris model with oxserve, MLServer, KServe and
//!   the bare ceiling one after another on the same pinned core and tables them side by side.
//! - `cargo xtask bench batching` measures oxserve's dynamic batcher off and on, on an MLP.
//! - `cargo xtask bench trees` times oxserve's XGBoost/LightGBM evaluators against the
//!   frameworks' own predict, in-process on one thread.
//!
//! - `cargo xtask bench router` measures what the router adds to a request (direct, routed
//!   and through a bare hyper proxy) and its cold start through the activator.
//! - `cargo xtask bench instructions` counts the user-space instructions per REST request
//!   of oxserve and the bare ceiling with callgrind: stable figures on a busy machine.
//!
//! - `cargo xtask bench overload` offers 5× the server's measured capacity with tiny and
//!   1 MiB bodies mixed: peak RSS against a stated bound, the accepted requests' p99 against
//!   the unloaded p99, the share shed with 503, and whether the server survived.
//!
//! All measure and report; none asserts a figure. `docs/benchmarks.md` records results.

mod batching;
mod criterion;
mod explain;
mod instructions;
mod overload;
mod peers;
mod router;
mod server;
mod trees;

use std::path::Path;

use crate::target_dir;
use anyhow::{Context, Result, bail, ensure};
use xshell::{Shell, cmd};

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
    /// Measure oxserve's dynamic batcher off and on (several settings) on an MLP.
    Batching(batching::Args),
    /// Time oxserve's tree evaluators against XGBoost's and LightGBM's own predict.
    Trees(trees::Args),
    /// Count user-space instructions per REST request (callgrind), oxserve and the ceiling.
    Instructions(instructions::Args),
    /// Measure what the router adds (direct vs routed vs a bare proxy) and its cold start.
    Router(router::Args),
    /// Time TreeSHAP against XGBoost's and LightGBM's own contributions, and KernelSHAP.
    Explain(explain::Args),
    /// Offer 5× the measured capacity (tiny and 1 MiB bodies mixed): RSS, p99, shed share.
    Overload(overload::Args),
}

pub fn run(sh: &Shell, args: Args) -> Result<()> {
    let Args { command } = args;
    match command {
        BenchCommand::Criterion(args) => criterion::run(sh, args),
        BenchCommand::Server(args) => server::run(sh, args),
        BenchCommand::Peers(args) => peers::run(sh, args),
        BenchCommand::Batching(args) => batching::run(sh, args),
        BenchCommand::Trees(args) => trees::run(sh, args),
        BenchCommand::Instructions(args) => instructions::run(sh, args),
        BenchCommand::Router(args) => router::run(sh, args),
        BenchCommand::Explain(args) => explain::run(sh, args),
        BenchCommand::Overload(args) => overload::run(sh, args),
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

/// Renders `chart_json` to `chart` (relative to the project root) with `oxserve-chart` from
/// `bin`, and puts `report` between the markers of `cargo xtask bench <command>` in
/// `docs/benchmarks.md`.
fn publish(
    sh: &Shell,
    bin: &Path,
    command: &str,
    report: &str,
    chart_json: &Path,
    chart: &str,
) -> Result<()> {
    let root = crate::project_root();
    let chart = root.join(chart);
    let chart_bin = bin.join("oxserve-chart");
    cmd!(sh, "{chart_bin} --input {chart_json} --out {chart}")
        .run()
        .context("rendering the chart")?;
    let doc = root.join("docs/benchmarks.md");
    let text =
        std::fs::read_to_string(&doc).with_context(|| format!("reading {}", doc.display()))?;
    std::fs::write(&doc, splice(&text, command, report)?)?;
    println!("updated {} and {}", doc.display(), chart.display());
    Ok(())
}

/// `doc` with the text between the markers of `cargo xtask bench <command>` replaced.
fn splice(doc: &str, command: &str, report: &str) -> Result<String> {
    let begin_marker = format!("<!-- begin: generated by `cargo xtask bench {command}` -->");
    let end_marker = format!("<!-- end: generated by `cargo xtask bench {command}` -->");
    let (Some(begin), Some(end)) = (doc.find(&begin_marker), doc.find(&end_marker)) else {
        bail!("docs/benchmarks.md lacks the markers of `cargo xtask bench {command}`");
    };
    ensure!(begin < end, "docs/benchmarks.md: the `bench {command}` markers are out of order");
    Ok(format!("{}{begin_marker}\n{report}{}", &doc[..begin], &doc[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splices_between_markers() {
        let begin = "<!-- begin: generated by `cargo xtask bench peers` -->";
        let end = "<!-- end: generated by `cargo xtask bench peers` -->";
        let doc = format!("head\n{begin}\nold\n{end}\ntail\n");
        assert_eq!(
            splice(&doc, "peers", "new\n").unwrap(),
            format!("head\n{begin}\nnew\n{end}\ntail\n")
        );
        assert!(splice(&doc, "batching", "x").is_err());
        assert!(splice("no markers", "peers", "x").is_err());
    }
}

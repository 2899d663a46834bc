//! `oxserve-chart`: renders a latency-vs-throughput chart (SVG) from benchmark results.
//!
//! `--input` is the JSON `cargo xtask bench` writes (see `oxserve_loadtest::chart::Chart`).

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};
use clap::Parser;
use oxserve_loadtest::chart::{Chart, render};

/// Renders benchmark results as an SVG chart.
#[derive(Parser)]
#[command(name = "oxserve-chart", version)]
struct Args {
    /// The results (JSON: title, x_label, y_label, series of labelled points).
    #[arg(long, env = "OXSERVE_CHART_INPUT")]
    input: PathBuf,
    /// The SVG file to write.
    #[arg(long, env = "OXSERVE_CHART_OUT")]
    out: PathBuf,
}

fn main() -> Result<()> {
    let Args { input, out } = Args::parse();
    let text =
        std::fs::read_to_string(&input).with_context(|| format!("reading {}", input.display()))?;
    let chart: Chart =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", input.display()))?;
    render(&chart, &out).map_err(|e| anyhow!(e))?;
    Ok(())
}

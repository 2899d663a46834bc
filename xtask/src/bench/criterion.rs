//! `cargo xtask bench criterion`: runs the criterion benches and summarises their estimates.
//!
//! Criterion writes `target/criterion/<id>/new/{estimates,benchmark}.json` per benchmark;
//! after the run this reads the ones the run touched and prints median time and throughput.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result};
use serde_json::Value;
use xshell::{Shell, cmd};

#[derive(clap::Args)]
pub struct Args {
    /// Only benchmarks whose id contains this (passed to criterion as its filter).
    filter: Option<String>,
}

/// The benches to run: (package, bench target).
const BENCHES: [(&str, &str); 2] = [("oxserve-protocol", "codecs"), ("oxserve-server", "trees")];

pub fn run(sh: &Shell, args: Args) -> Result<()> {
    let Args { filter } = args;
    let started = SystemTime::now();
    for (package, bench) in BENCHES {
        let filter = filter.as_slice();
        cmd!(sh, "cargo bench -p {package} --bench {bench} -- {filter...}")
            .run()
            .with_context(|| format!("running the {bench} bench of {package}"))?;
    }
    let reports = super::target_dir().join("criterion");
    let mut rows = Vec::new();
    collect(&reports, started, &mut rows)?;
    rows.sort();
    let mut table = String::from("| benchmark | median | throughput |\n|---|---:|---:|\n");
    for (id, median, throughput) in &rows {
        table.push_str(&format!("| {id} | {median} | {throughput} |\n"));
    }
    println!("\n{table}");
    println!("machine: {}", super::machine_description());
    let out = crate::state_dir().join("bench").join("criterion.md");
    std::fs::create_dir_all(out.parent().expect("has a parent"))?;
    std::fs::write(&out, &table).with_context(|| format!("writing {}", out.display()))?;
    println!("criterion reports (estimates, raw samples): {}", reports.display());
    println!("this summary: {}", out.display());
    Ok(())
}

/// Finds `new/benchmark.json` files written since `since` and turns each into a row.
fn collect(dir: &Path, since: SystemTime, rows: &mut Vec<(String, String, String)>) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    for entry in entries {
        let path = entry?.path();
        if !path.is_dir() {
            continue;
        }
        let bench = path.join("new").join("benchmark.json");
        let fresh = std::fs::metadata(&bench)
            .and_then(|m| m.modified())
            .is_ok_and(|modified| modified >= since);
        if fresh {
            rows.push(row(&path.join("new"))?);
        }
        collect(&path, since, rows)?;
    }
    Ok(())
}

fn read_json(path: PathBuf) -> Result<Value> {
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// One benchmark: its id, median time per iteration, and elements or bytes per second.
fn row(dir: &Path) -> Result<(String, String, String)> {
    let bench = read_json(dir.join("benchmark.json"))?;
    let estimates = read_json(dir.join("estimates.json"))?;
    let id = bench["full_id"].as_str().unwrap_or("?").to_owned();
    let ns = estimates["median"]["point_estimate"].as_f64().unwrap_or(f64::NAN);
    let per_second = |n: f64| n / (ns * 1e-9);
    let throughput = match (&bench["throughput"]["Elements"], &bench["throughput"]["Bytes"]) {
        (Value::Number(n), _) => format!("{} elem/s", si(per_second(n.as_f64().unwrap_or(0.0)))),
        (_, Value::Number(n)) => format!("{}B/s", si(per_second(n.as_f64().unwrap_or(0.0)))),
        _ => String::new(),
    };
    Ok((id, format_ns(ns), throughput))
}

/// A duration in nanoseconds with a readable unit.
pub fn format_ns(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.1} ns")
    } else if ns < 1e6 {
        format!("{:.2} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

/// A rate with an SI prefix (`12.3 M`).
fn si(x: f64) -> String {
    if x >= 1e9 {
        format!("{:.2} G", x / 1e9)
    } else if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.2} K", x / 1e3)
    } else {
        format!("{x:.1} ")
    }
}

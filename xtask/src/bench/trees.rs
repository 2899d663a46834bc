//! `cargo xtask bench trees`: oxserve's XGBoost and LightGBM evaluators against the
//! frameworks' own predict, both timed in-process on one thread (no request overhead).
//!
//! One run:
//! 1. `fixtures/bench/make_models.py trees` (fixtures venv), pinned to one core, trains
//!    100-round binary and 3-class models with each framework on 20 features, writes them, a
//!    shared test set (10,000 rows, ~10 % NaN) and the frameworks' predictions, and times
//!    `xgboost.Booster.inplace_predict` / `lightgbm.Booster.predict(num_threads=1)`: one row
//!    per call, and all 10,000 rows per call;
//! 2. `oxserve-tree-time`, pinned to the same core, times oxserve's evaluator the same way on
//!    the same files and checks its predictions against the frameworks';
//! 3. writes the table to `.oxserve/bench/trees.md` and between the `bench trees` markers of
//!    `docs/benchmarks.md`.

use anyhow::{Context, Result, ensure};
use serde_json::Value;
use xshell::{Shell, cmd};

#[derive(clap::Args)]
pub struct Args {
    /// Core both sides are pinned to, one after the other.
    #[arg(long, default_value_t = 0)]
    cpu: u32,
    /// Leave `docs/benchmarks.md` alone; write only under `.oxserve/bench/`.
    #[arg(long)]
    no_docs: bool,
}

/// One model's timings, in nanoseconds per call.
#[derive(Debug, Clone, PartialEq)]
struct Timing {
    model: String,
    native: String,
    native_1: f64,
    native_full: f64,
    rust_1: f64,
    rust_full: f64,
    max_abs_diff: f64,
}

pub fn run(sh: &Shell, args: Args) -> Result<()> {
    let Args { cpu, no_docs } = args;
    let machine_before = super::machine_description();
    cmd!(sh, "cargo build --release -p oxserve-loadtest")
        .run()
        .context("building oxserve-tree-time")?;
    let timer = super::target_dir().join("release").join("oxserve-tree-time");
    let python =
        crate::venv::ensure(sh, "fixtures", include_str!("../../../fixtures/requirements.txt"))?;
    let dir = crate::state_dir().join("bench").join("trees");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let script = crate::project_root().join("fixtures/bench/make_models.py");
    let cpu = cpu.to_string();
    let native = cmd!(sh, "taskset -c {cpu} {python} {script} trees {dir}")
        .read()
        .context("training and timing the native models")?;
    let native: Value = serde_json::from_str(native.lines().last().unwrap_or_default())
        .context("parsing make_models.py's timings")?;
    let rows_file = dir.join("x.f32");
    let mut timings = Vec::new();
    for m in native["models"].as_array().context("timings: models")? {
        let field = |k: &str| m[k].as_str().with_context(|| format!("timings: {k}"));
        let number = |k: &str| m[k].as_f64().with_context(|| format!("timings: {k}"));
        let (model, kind) = (field("model")?, field("kind")?);
        let file = dir.join(field("file")?);
        let preds = dir.join(model).join("preds.f32");
        eprintln!("xtask: timing oxserve on {model}");
        let out = cmd!(
            sh,
            "taskset -c {cpu} {timer} --kind {kind} --model {file} --rows {rows_file} --preds {preds}"
        )
        .read()
        .with_context(|| format!("timing oxserve on {model}"))?;
        let ours: Value = serde_json::from_str(out.trim()).context("parsing oxserve-tree-time")?;
        let ours_number =
            |k: &str| ours[k].as_f64().with_context(|| format!("oxserve-tree-time: {k}"));
        timings.push(Timing {
            model: model.to_owned(),
            native: field("native")?.to_owned(),
            native_1: number("native_1_ns")?,
            native_full: number("native_full_ns")?,
            rust_1: ours_number("rust_1_ns")?,
            rust_full: ours_number("rust_full_ns")?,
            max_abs_diff: ours_number("max_abs_diff")?,
        });
    }
    ensure!(!timings.is_empty(), "no models were timed");

    let commit = cmd!(sh, "git rev-parse --short HEAD").read().unwrap_or_default();
    let mut report = format!(
        "Command: `cargo xtask bench trees`  \n\
         Machine: {machine_before} (at start; {} at the end)  \n\
         Pinning: Python and `oxserve-tree-time` one after the other on core {cpu}, one thread \
         each  \n\
         Commit: {commit}; 100 boosting rounds (multiclass: 3 classes, 100 trees each), \
         XGBoost depth 6, LightGBM 31 leaves; 20 features; test set 10,000 rows, ~10 % NaN; \
         batch 1 = mean of 5,000 one-row calls cycling through the rows, batch 10,000 = median \
         of 7 calls\n\n",
        super::load_average(),
    );
    report.push_str(&table(&timings));
    println!("\n{report}");
    let out = crate::state_dir().join("bench").join("trees.md");
    std::fs::write(&out, &report).with_context(|| format!("writing {}", out.display()))?;
    println!("written to {}", out.display());
    if !no_docs {
        let doc = crate::project_root().join("docs/benchmarks.md");
        let text = std::fs::read_to_string(&doc)?;
        std::fs::write(&doc, super::splice(&text, "trees", &report)?)?;
        println!("updated {}", doc.display());
    }
    Ok(())
}

/// Nanoseconds as µs or ms.
fn duration(ns: f64) -> String {
    if ns >= 1e6 { format!("{:.2} ms", ns / 1e6) } else { format!("{:.2} µs", ns / 1e3) }
}

fn table(timings: &[Timing]) -> String {
    let mut out = String::from(
        "| model | native predict | batch | native | oxserve | oxserve speed-up | max abs diff |\n\
         |---|---|---:|---:|---:|---:|---:|\n",
    );
    for t in timings {
        for (batch, native, ours) in
            [(1, t.native_1, t.rust_1), (10_000, t.native_full, t.rust_full)]
        {
            out.push_str(&format!(
                "| {} | {} | {batch} | {} | {} | {:.2}× | {:.1e} |\n",
                t.model,
                t.native,
                duration(native),
                duration(ours),
                native / ours.max(f64::MIN_POSITIVE),
                t.max_abs_diff,
            ));
        }
    }
    let verdict = |met: bool| if met { "met" } else { "missed" };
    let faster_1 = timings.iter().all(|t| t.rust_1 < t.native_1);
    let within_full = timings.iter().all(|t| t.rust_full <= t.native_full);
    let worst = |f: fn(&Timing) -> f64| timings.iter().map(f).fold(f64::INFINITY, f64::min);
    out.push_str(&format!(
        "\nTargets (reported, not asserted):\n\
         - batch 1: faster than native for every model: lowest speed-up {:.2}× → {}\n\
         - batch 10,000: within 1.0× of native (no slower) for every model: lowest speed-up \
         {:.2}× → {}\n",
        worst(|t| t.native_1 / t.rust_1),
        verdict(faster_1),
        worst(|t| t.native_full / t.rust_full),
        verdict(within_full),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_and_targets() {
        let t = Timing {
            model: "xgb-binary".into(),
            native: "xgboost Booster.inplace_predict".into(),
            native_1: 20_000.0,
            native_full: 4e6,
            rust_1: 2_000.0,
            rust_full: 5e6,
            max_abs_diff: 1e-7,
        };
        let s = table(&[t]);
        assert!(s.contains("| xgb-binary | xgboost Booster.inplace_predict | 1 | 20.00 µs | 2.00 µs | 10.00× | 1.0e-7 |"), "{s}");
        assert!(s.contains("| 10000 | 4.00 ms | 5.00 ms | 0.80× |"), "{s}");
        assert!(s.contains("lowest speed-up 10.00× → met"), "{s}");
        assert!(s.contains("lowest speed-up 0.80× → missed"), "{s}");
    }
}

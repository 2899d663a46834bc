//! `cargo xtask bench explain`: oxserve's TreeSHAP against XGBoost's and LightGBM's own
//! `pred_contribs`, and KernelSHAP per explanation, all in-process on one pinned core.
//!
//! 1. `fixtures/bench/explain_models.py` (fixtures venv), pinned to `--cpu`, trains
//!    100-tree depth-6 binary models with each framework on 20 features, writes them, 1,000
//!    test rows (~10 % NaN) and the frameworks' contributions, and times
//!    `predict(pred_contribs=True)` / `predict(pred_contrib=True)` on one thread (one row
//!    per call, and all rows in one call; thread CPU time);
//! 2. the `explain` bench binary of `oxserve-server`, pinned to the same core, times
//!    TreeSHAP the same way, checks it against the frameworks' contributions, and times a
//!    one-row KernelSHAP explanation (50 k-means background rows, `nsamples` auto);
//! 3. prints the table, writes it to `.oxserve/bench/explain.md` and, unless `--no-docs`,
//!    between the `bench explain` markers of `docs/benchmarks.md`.

use anyhow::{Context, Result};
use serde_json::Value;
use xshell::{Shell, cmd};

#[derive(clap::Args)]
pub struct Args {
    /// Core both sides are pinned to, one after the other.
    #[arg(long, env = "OXSERVE_BENCH_CPU", default_value_t = 0)]
    cpu: u32,
    /// Leave `docs/benchmarks.md` alone; write only under `.oxserve/bench/`.
    #[arg(long)]
    no_docs: bool,
}

pub fn run(sh: &Shell, args: Args) -> Result<()> {
    let Args { cpu, no_docs } = args;
    let machine = super::machine_description();
    let python =
        crate::venv::ensure(sh, "fixtures", include_str!("../../../fixtures/requirements.txt"))?;
    let dir = crate::state_dir().join("bench").join("explain");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let script = crate::project_root().join("fixtures/bench/explain_models.py");
    let cpu = cpu.to_string();
    let native = cmd!(sh, "taskset -c {cpu} {python} {script} {dir}")
        .read()
        .context("training and timing the frameworks' contributions")?;
    let native: Value = serde_json::from_str(native.lines().last().unwrap_or_default())
        .context("parsing explain_models.py's timings")?;
    let built =
        cmd!(sh, "cargo bench -p oxserve-server --bench explain --no-run --message-format=json")
            .read()
            .context("building the explain bench")?;
    let timer = built
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["target"]["name"] == "explain")
        .find_map(|m| m["executable"].as_str().map(str::to_owned))
        .context("no executable for the explain bench")?;
    let ours =
        cmd!(sh, "taskset -c {cpu} {timer} {dir}").read().context("timing oxserve's explainers")?;
    let ours: Value = serde_json::from_str(ours.lines().last().unwrap_or_default())
        .context("parsing the explain bench's output")?;

    let mut table = String::from(
        "| model | framework | native 1 row/call (µs/row) | native 1,000 rows/call (µs/row) | oxserve TreeSHAP 1 row/call (µs/row) | oxserve 1,000 rows/call (µs/row) | speed-up (1 row / batch) | max abs diff | oxserve KernelSHAP (ms/explanation) |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for n in native["models"].as_array().context("timings: models")? {
        let name = n["model"].as_str().context("timings: model")?;
        let o = ours["models"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["model"] == name))
            .with_context(|| format!("the explain bench has no {name}"))?;
        let num = |v: &Value, k: &str| v[k].as_f64().with_context(|| format!("{name}: {k}"));
        let (n1, nf, o1, of) =
            (num(n, "native_1")?, num(n, "native_full")?, num(o, "rust_1")?, num(o, "rust_full")?);
        table.push_str(&format!(
            "| {name} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2}× / {:.2}× | {:.1e} | {:.1} |\n",
            n["framework"].as_str().unwrap_or("?"),
            n1 / 1e3,
            nf / 1e3,
            o1 / 1e3,
            of / 1e3,
            n1 / o1,
            nf / of,
            num(o, "max_abs_diff")?,
            num(o, "kernel_ms")?,
        ));
    }
    let commit = cmd!(sh, "git rev-parse --short HEAD").read().unwrap_or_default();
    let report = format!(
        "Command: `cargo xtask bench explain`  \n\
         Machine: {machine}  \n\
         Pinning: Python and the `explain` bench one after the other on core {cpu}, one \
         thread each, thread CPU time  \n\
         Commit: {commit}; 100 trees of depth 6, 20 features, binary; 1,000 test rows, ~10 % \
         NaN; 1 row/call = best of 3 rounds of 2,000 one-row calls cycling through 200 rows, \
         1,000 rows/call = best of 3 rounds of 5 calls; KernelSHAP: one row, 50 k-means \
         background rows, `nsamples` auto (2 × 20 + 2,048)\n\n\
         {table}"
    );
    println!("{report}");
    let out = crate::state_dir().join("bench").join("explain.md");
    std::fs::write(&out, &report).with_context(|| format!("writing {}", out.display()))?;
    eprintln!("xtask: wrote {}", out.display());
    if !no_docs {
        let doc = crate::project_root().join("docs/benchmarks.md");
        let text =
            std::fs::read_to_string(&doc).with_context(|| format!("reading {}", doc.display()))?;
        std::fs::write(&doc, super::splice(&text, "explain", &report)?)?;
        eprintln!("xtask: updated {}", doc.display());
    }
    Ok(())
}

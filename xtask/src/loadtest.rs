//! `cargo xtask loadtest <scenario>|all`: builds `oxserve` and the scenario driver
//! (`oxserve-loadtest`, the `goose` feature of `oxserve-loadtest`) and runs the scenario
//! against a local `oxserve up` (`--target local`, started and stopped by the driver) or a
//! running platform (`--target ROUTER_URL --api API_URL [--grpc HOST:PORT]`). The driver
//! writes `report.json`, `summary.md` and `timeline.svg` to `--report DIR/<scenario>` and
//! exits non-zero when a criterion fails; so does this command. `all` runs every scenario
//! and fails when any did; `gate` runs the quick form `cargo xtask test` ends with.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

/// The scenarios, in the order `all` runs them.
const SCENARIOS: [&str; 6] =
    ["autoscale", "scale-from-zero", "canary", "batching", "multi-model", "soak"];

#[derive(clap::Args)]
pub struct Args {
    /// autoscale, scale-from-zero, canary, batching, multi-model, soak, all, or gate (the
    /// quick canary, scale-from-zero and autoscale `cargo xtask test` ends with).
    scenario: String,
    /// `local`, or the router's REST URL of a running platform.
    #[arg(long, default_value = "local")]
    target: String,
    /// The api URL of a running platform (with a URL target).
    #[arg(long)]
    api: Option<String>,
    /// The router's gRPC address of a running platform (with a URL target).
    #[arg(long)]
    grpc: Option<String>,
    /// The scenario's main duration: per step (autoscale), per phase (canary), per setting
    /// (batching), the loading window (multi-model) or the whole run (soak).
    #[arg(long)]
    duration: Option<String>,
    /// Where reports go (one folder per scenario).
    #[arg(long, default_value = "target/loadtest")]
    report: PathBuf,
    /// Open-loop request rate, req/s.
    #[arg(long)]
    rate: Option<f64>,
    /// TrainedModels for multi-model (default 1000).
    #[arg(long)]
    models: Option<usize>,
    /// Concurrent requests for scale-from-zero (default 1000).
    #[arg(long)]
    requests: Option<usize>,
    /// Seconds-long runs with small counts (the test gate's form).
    #[arg(long)]
    quick: bool,
    /// Build and run debug binaries (faster to build, slower to run).
    #[arg(long)]
    debug: bool,
}

pub fn run(sh: &Shell, args: Args) -> Result<()> {
    let Args {
        scenario,
        target,
        api,
        grpc,
        duration,
        report,
        rate,
        models,
        requests,
        quick,
        debug,
    } = args;
    if scenario == "gate" {
        return gate(sh);
    }
    let scenarios: Vec<&str> = if scenario == "all" {
        SCENARIOS.to_vec()
    } else if let Some(s) = SCENARIOS.iter().find(|s| **s == scenario) {
        vec![*s]
    } else {
        bail!("unknown scenario {scenario:?} (one of {}, or all)", SCENARIOS.join(", "));
    };
    // The batching scenario serves an ONNX model.
    let lib = crate::onnxruntime::ensure(sh)?;
    let _lib = sh.push_env("OXSERVE_ONNXRUNTIME_LIB", &lib);
    let profile: &[&str] = if debug { &[] } else { &["--release"] };
    cmd!(
        sh,
        "cargo build {profile...} -p oxserve-cli -p oxserve-loadtest --features oxserve-loadtest/goose --bin oxserve --bin oxserve-loadtest --bin oxserve-sleep"
    )
    .run()
    .context("building oxserve, oxserve-loadtest and oxserve-sleep")?;
    let bin = crate::target_dir().join(if debug { "debug" } else { "release" });
    drive(
        &scenarios,
        &target,
        &report,
        &bin,
        extra_args(api, grpc, duration, rate, models, requests, quick),
    )
}

/// The driver's flags beyond the scenario, target, report and binary.
fn extra_args(
    api: Option<String>,
    grpc: Option<String>,
    duration: Option<String>,
    rate: Option<f64>,
    models: Option<usize>,
    requests: Option<usize>,
    quick: bool,
) -> Vec<String> {
    let mut extra: Vec<String> = Vec::new();
    for (flag, value) in [
        ("--api", api),
        ("--grpc", grpc),
        ("--duration", duration),
        ("--rate", rate.map(|r| r.to_string())),
        ("--models", models.map(|m| m.to_string())),
        ("--requests", requests.map(|r| r.to_string())),
    ] {
        if let Some(v) = value {
            extra.extend([flag.to_owned(), v]);
        }
    }
    if quick {
        extra.push("--quick".into());
    }
    extra
}

/// Runs `scenarios` one after the other with the driver and `oxserve` in `bin`; fails when
/// any failed.
fn drive(
    scenarios: &[&str],
    target: &str,
    report: &std::path::Path,
    bin: &std::path::Path,
    extra: Vec<String>,
) -> Result<()> {
    let (oxserve, driver) = (bin.join("oxserve"), bin.join("oxserve-loadtest"));
    let mut failed = Vec::new();
    for s in scenarios {
        eprintln!("xtask: loadtest {s}");
        let status = std::process::Command::new(&driver)
            .arg(s)
            .arg("--target")
            .arg(target)
            .arg("--report")
            .arg(report)
            .arg("--oxserve")
            .arg(&oxserve)
            .args(&extra)
            .current_dir(crate::project_root())
            .status()
            .with_context(|| format!("running {}", driver.display()))?;
        if !status.success() {
            failed.push(format!("{s} ({status})"));
        }
    }
    if !failed.is_empty() {
        bail!("load test failed: {} (reports in {})", failed.join(", "), report.display());
    }
    eprintln!("xtask: loadtest passed; reports in {}", report.display());
    Ok(())
}

/// The scenarios of the gate, in its order.
pub const GATE: [&str; 3] = ["canary", "scale-from-zero", "autoscale"];

/// The short form `cargo xtask test` runs as its last tier: `canary`, `scale-from-zero` and
/// `autoscale` with `--quick` (seconds each, small counts) on the debug binaries of the
/// workspace build (`oxserve`, `oxserve-loadtest`, `oxserve-sleep`). The build is the one
/// `cargo xtask test` already made (`--workspace --all-targets`; goose is a default feature
/// of `oxserve-loadtest`), so it costs no second feature set; run again here it is a no-op.
/// Reports in `target/loadtest-gate/<scenario>/`.
pub fn gate(sh: &Shell) -> Result<()> {
    cmd!(sh, "cargo build --workspace --all-targets")
        .run()
        .context("building the workspace (the gate's binaries)")?;
    drive(
        &GATE,
        "local",
        std::path::Path::new("target/loadtest-gate"),
        &crate::target_dir().join("debug"),
        vec!["--quick".into()],
    )
}

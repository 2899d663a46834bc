//! `cargo xtask loadtest <scenario>|all`: builds `oxserve` and the scenario driver
//! (`oxserve-loadtest`, the `goose` feature of `oxserve-loadtest`) and runs the scenario
//! against a local `oxserve up` (`--target local`, started and stopped by the driver) or a
//! running platform (`--target ROUTER_URL --api API_URL [--grpc HOST:PORT]`). The driver
//! writes `report.json`, `summary.md` and `timeline.svg` to `--report DIR/<scenario>` and
//! exits non-zero when a criterion fails; so does this command. `all` runs every scenario
//! and fails when any did.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

/// The scenarios, in the order `all` runs them.
const SCENARIOS: [&str; 6] =
    ["autoscale", "scale-from-zero", "canary", "batching", "multi-model", "soak"];

#[derive(clap::Args)]
pub struct Args {
    /// autoscale, scale-from-zero, canary, batching, multi-model, soak, or all.
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
        "cargo build {profile...} -p oxserve-cli -p oxserve-loadtest --features oxserve-loadtest/goose --bin oxserve --bin oxserve-loadtest"
    )
    .run()
    .context("building oxserve and oxserve-loadtest")?;
    let bin = target_dir().join(if debug { "debug" } else { "release" });
    let (oxserve, driver) = (bin.join("oxserve"), bin.join("oxserve-loadtest"));
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
    let mut failed = Vec::new();
    for s in &scenarios {
        eprintln!("xtask: loadtest {s}");
        let status = std::process::Command::new(&driver)
            .arg(s)
            .arg("--target")
            .arg(&target)
            .arg("--report")
            .arg(&report)
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

/// The short form `cargo xtask test` can run as a gate: `canary`, `scale-from-zero` and
/// `autoscale` with `--quick` on debug binaries (seconds each, small counts).
#[allow(dead_code)] // called from `test.rs` once the gate is wired in
pub fn gate(sh: &Shell) -> Result<()> {
    for scenario in ["canary", "scale-from-zero", "autoscale"] {
        run(
            sh,
            Args {
                scenario: scenario.into(),
                target: "local".into(),
                api: None,
                grpc: None,
                duration: None,
                report: PathBuf::from("target/loadtest-gate"),
                rate: None,
                models: None,
                requests: None,
                quick: true,
                debug: true,
            },
        )?;
    }
    Ok(())
}

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => crate::project_root().join(dir),
        None => crate::project_root().join("target"),
    }
}

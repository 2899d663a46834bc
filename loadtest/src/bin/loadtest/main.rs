//! `oxserve-loadtest`: runs one load-test scenario against a platform and judges it
//! (`cargo xtask loadtest <scenario>` builds and runs it; needs the `goose` feature).
//!
//! `--target local` starts `oxserve up` on a temporary state dir with the scenario's
//! platform.yaml and stops it by PID at the end; `--target URL` (the router) with `--api URL`
//! (and `--grpc HOST:PORT` for gRPC) drives a platform that is already running. The report
//! (`report.json`, `summary.md`, `timeline.svg`) goes to `--report DIR`; the exit status is
//! 1 when a criterion failed, 2 when the scenario could not run.

mod drive;
mod platform;
mod scenarios;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use oxserve_loadtest::duration::parse_duration;
use oxserve_loadtest::record::Recorder;
use oxserve_loadtest::report::Report;
use oxserve_loadtest::scenario::Kind;

use crate::platform::Platform;
use crate::scenarios::Run;

/// Load tests that judge autoscaling, batching and canary behaviour.
#[derive(Parser)]
#[command(name = "oxserve-loadtest", version)]
struct Args {
    /// autoscale, scale-from-zero, canary, batching, multi-model or soak.
    scenario: Kind,
    /// `local`, or the router's REST URL of a running platform.
    #[arg(long, env = "OXSERVE_LOADTEST_TARGET", default_value = "local")]
    target: String,
    /// The api URL of a running platform (with a URL target).
    #[arg(long, env = "OXSERVE_LOADTEST_API")]
    api: Option<String>,
    /// The router's gRPC address of a running platform (with a URL target).
    #[arg(long, env = "OXSERVE_LOADTEST_GRPC")]
    grpc: Option<String>,
    /// The scenario's main duration (per step, phase or the whole soak).
    #[arg(long, env = "OXSERVE_LOADTEST_DURATION", value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Open-loop request rate (req/s) where the scenario has one.
    #[arg(long, env = "OXSERVE_LOADTEST_RATE")]
    rate: Option<f64>,
    /// TrainedModels for multi-model.
    #[arg(long, env = "OXSERVE_LOADTEST_MODELS")]
    models: Option<usize>,
    /// Concurrent requests for scale-from-zero.
    #[arg(long, env = "OXSERVE_LOADTEST_REQUESTS")]
    requests: Option<usize>,
    /// Short steps and small counts (seconds; the test gate).
    #[arg(long, env = "OXSERVE_LOADTEST_QUICK")]
    quick: bool,
    /// Where the report goes.
    #[arg(long, env = "OXSERVE_LOADTEST_REPORT", default_value = "target/loadtest")]
    report: PathBuf,
    /// The `oxserve` binary a local target runs.
    #[arg(long, env = "OXSERVE_LOADTEST_OXSERVE", default_value = "target/release/oxserve")]
    oxserve: PathBuf,
    /// The model directory base the manifests' storageUri point at.
    #[arg(long, env = "OXSERVE_LOADTEST_MODEL_BASE")]
    model_base: Option<String>,
    /// The `oxserve-sleep` binary the autoscale scenario's predictor runs (default: the one
    /// beside this binary). The platform runs it, so with a URL target it must be a path
    /// the platform's machine has.
    #[arg(long, env = "OXSERVE_LOADTEST_SLEEP_SERVER")]
    sleep_server: Option<PathBuf>,
    /// How long each inference of the autoscale scenario's predictor takes, ms.
    #[arg(long, env = "OXSERVE_LOADTEST_DELAY_MS", default_value_t = 200)]
    delay_ms: u64,
}

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build();
    let code =
        match runtime.context("starting the async runtime").and_then(|rt| rt.block_on(run(args))) {
            Ok(true) => 0,
            Ok(false) => 1,
            Err(e) => {
                eprintln!("oxserve-loadtest: {e:#}");
                2
            }
        };
    std::process::exit(code);
}

/// Runs the scenario; whether every criterion passed.
async fn run(args: Args) -> Result<bool> {
    let Args {
        scenario,
        target,
        api,
        grpc,
        duration,
        rate,
        models,
        requests,
        quick,
        report,
        oxserve,
        model_base,
        sleep_server,
        delay_ms,
    } = args;
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let model_base = match model_base {
        Some(b) => b,
        None => {
            let dir = std::fs::canonicalize("fixtures/models")
                .context("fixtures/models (run from the project root, or pass --model-base)")?;
            format!("file://{}", dir.display())
        }
    };
    let sleep_server = match sleep_server {
        Some(p) => p,
        None => {
            std::env::current_exe().context("locating this binary")?.with_file_name("oxserve-sleep")
        }
    };
    let sleep_server = if scenario == Kind::Autoscale {
        std::fs::canonicalize(&sleep_server).with_context(|| {
            format!(
                "{} (build it: cargo build -p oxserve-loadtest --bin oxserve-sleep)",
                sleep_server.display()
            )
        })?
    } else {
        sleep_server
    };
    let mut platform = if target == "local" {
        Platform::start_local(&oxserve, scenario.platform_yaml())?
    } else {
        let api = api.context("a URL target needs --api URL")?;
        Platform::remote(
            target.trim_end_matches('/').to_owned(),
            grpc,
            api.trim_end_matches('/').to_owned(),
        )?
    };
    let dir = report.join(scenario.name());
    let run = Run {
        platform: &platform,
        recorder: Recorder::new(),
        model_base,
        quick,
        duration,
        rate,
        models,
        requests,
        goose_dir: dir.join("goose"),
        sleep_server,
        delay_ms,
    };
    eprintln!(
        "loadtest: {scenario} against {}",
        if platform.is_local() { "a local oxserve up" } else { &target }
    );
    let outcome = match scenario {
        Kind::Autoscale => scenarios::autoscale(&run).await,
        Kind::ScaleFromZero => scenarios::scale_from_zero(&run).await,
        Kind::Canary => scenarios::canary(&run).await,
        Kind::Batching => scenarios::batching(&run).await,
        Kind::MultiModel => scenarios::multi_model(&run).await,
        Kind::Soak => scenarios::soak(&run).await,
    };
    let recorded = run.recorder.snapshot();
    drop(run);
    platform.stop();
    let outcome = outcome?;
    let target_name = if target == "local" { "local oxserve up".to_owned() } else { target };
    let report = Report::new(
        scenario.name(),
        &target_name,
        &command,
        outcome.figures,
        outcome.criteria,
        recorded,
    );
    report.write(&dir).map_err(anyhow::Error::msg)?;
    println!("{}", report.markdown());
    println!("report: {}", dir.display());
    Ok(report.passed)
}

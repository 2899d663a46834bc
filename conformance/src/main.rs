//! `oxserve-conformance`: runs the V2 conformance suite against any Open Inference Protocol
//! server and prints a report; exits non-zero when a MUST case or a case of an advertised
//! extension fails. `oxserve-conformance models --out DIR` writes the reference models.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use oxserve_conformance::{Ctx, Format, LevelFilter, Target, cases, reference, run};

#[derive(Parser)]
#[command(
    name = "oxserve-conformance",
    version,
    about = "Open Inference Protocol (V2) conformance suite"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Write the reference models (ONNX) as a model repository: `<out>/<name>/1/model.onnx`.
    Models {
        /// Directory to write to.
        #[arg(long)]
        out: PathBuf,
    },
    /// List every case with its level, transport and clause.
    List,
}

/// Flags of a run (the same as `cargo xtask conformance`).
#[derive(clap::Args, Debug)]
struct RunArgs {
    /// REST base URL of the server, e.g. http://127.0.0.1:8000.
    #[arg(long, env = "OXSERVE_CONFORMANCE_URL")]
    url: Option<String>,
    /// gRPC address HOST:PORT; gRPC cases are skipped without it.
    #[arg(long, env = "OXSERVE_CONFORMANCE_GRPC")]
    grpc: Option<String>,
    /// Model under test (default: the first ready model of the repository index).
    #[arg(long, env = "OXSERVE_CONFORMANCE_MODEL")]
    model: Option<String>,
    /// Model the explain extension's cases explain (default: the first that answers
    /// /explain: the model under test, then the repository index).
    #[arg(long, env = "OXSERVE_CONFORMANCE_EXPLAIN_MODEL")]
    explain_model: Option<String>,
    /// Report format: text, json, junit or markdown.
    #[arg(long, env = "OXSERVE_CONFORMANCE_FORMAT", default_value = "text")]
    format: Format,
    /// Write the report here instead of stdout.
    #[arg(long, env = "OXSERVE_CONFORMANCE_OUT")]
    out: Option<PathBuf>,
    /// Levels to run: must (MUST and advertised extensions), should, or all.
    #[arg(long, env = "OXSERVE_CONFORMANCE_LEVEL", default_value = "all")]
    level: LevelFilter,
    /// Run only cases whose ID starts with this prefix (e.g. rest.infer).
    #[arg(long, env = "OXSERVE_CONFORMANCE_ONLY")]
    only: Option<String>,
    /// Per-request timeout in seconds.
    #[arg(long, env = "OXSERVE_CONFORMANCE_TIMEOUT", default_value_t = 10)]
    timeout: u64,
}

fn main() -> Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Models { out }) => {
            reference::write_models(&out)?;
            eprintln!("wrote {} reference models to {}", reference::names().len(), out.display());
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::List) => {
            for c in cases::catalog() {
                println!(
                    "{:<44} {:<26} {:<4} {} ({})",
                    c.id,
                    c.level.to_string(),
                    c.transport.to_string(),
                    c.clause,
                    c.section
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        None => run_suite(cli.run),
    }
}

fn run_suite(args: RunArgs) -> Result<ExitCode> {
    let RunArgs { url, grpc, model, explain_model, format, out, level, only, timeout } = args;
    let url = url.context("--url is required (the server's REST base URL)")?;
    let target = Target {
        rest: url,
        grpc,
        model,
        explain_model,
        request_timeout: Duration::from_secs(timeout),
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let report = runtime.block_on(async {
        let ctx = Ctx::discover(target).await?;
        let mut catalog = cases::catalog();
        if let Some(prefix) = &only {
            catalog.retain(|c| c.id.starts_with(prefix.as_str()));
        }
        anyhow::Ok(run(&ctx, &catalog, level).await)
    })?;
    let rendered = report.render(format);
    match &out {
        Some(path) => {
            std::fs::write(path, &rendered)
                .with_context(|| format!("writing {}", path.display()))?;
            // Keep the summary visible when the report goes to a file.
            for line in report.summary_lines() {
                eprintln!("{line}");
            }
            eprintln!("{}", report.verdict());
        }
        None => print!("{rendered}"),
    }
    Ok(if report.conforms() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

//! `cargo xtask <command>`: every developer and CI workflow of oxserve as one command.

mod agent_env;
mod bench;
mod codegen;
mod conformance;
mod demo;
mod deny;
mod fixtures;
mod fuzz;
mod gpu;
mod kind;
mod loadtest;
mod onnxruntime;
mod python_clients;
mod setup;
mod test;
mod tidy;
mod venv;

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "oxserve developer and CI workflows")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fetch what the build and tests need that a fresh machine lacks (idempotent).
    Setup,
    /// Run the whole test suite.
    Test(test::Args),
    /// Bring up the platform on the bundled models: apply, infer, canary, scale to zero.
    Demo(demo::Args),
    /// Retrain the model fixtures with the real Python frameworks.
    Fixtures,
    /// Run benchmarks.
    Bench(bench::Args),
    /// Run the V2 conformance suite against a server (--url) or a local peer (--peer).
    Conformance(conformance::Args),
    /// Write the generated files (CRDs under kind/crds/); --check fails when one is stale.
    Codegen(codegen::Args),
    /// The Kubernetes workflow on a kind cluster: up, load (the image), e2e, down.
    Kind(kind::Args),
    /// Load-test scenarios that judge autoscaling, batching and canaries (reports, verdicts).
    Loadtest(loadtest::Args),
    /// Run the cargo-fuzz targets under fuzz/ (--target T, --time S seconds each).
    Fuzz(fuzz::Args),
    /// The GPU tier (self-hosted GPU runner): ONNX Runtime's CUDA build, the `gpu` feature
    /// build and the CUDA tests.
    Gpu,
    /// Audit the dependency graph offline against deny.toml: licences, duplicate major
    /// versions, sources (advisories: cargo-deny in CI).
    Deny,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let sh = xshell::Shell::new()?;
    sh.change_dir(project_root());
    match cli.command {
        Command::Setup => setup::run(&sh),
        Command::Test(args) => test::run(&sh, args),
        Command::Demo(args) => demo::run(&sh, args),
        Command::Fixtures => fixtures::run(&sh),
        Command::Bench(args) => bench::run(&sh, args),
        Command::Conformance(args) => conformance::run(&sh, args),
        Command::Codegen(args) => codegen::run(args),
        Command::Kind(args) => kind::run(&sh, args),
        Command::Loadtest(args) => loadtest::run(&sh, args),
        Command::Fuzz(args) => fuzz::run(&sh, args),
        Command::Gpu => gpu::run(&sh),
        Command::Deny => deny::run(&sh),
    }
}

/// The workspace root (the parent of `xtask/`).
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_owned()
}

/// Where cargo puts build output (`CARGO_TARGET_DIR`, relative to the project root, or
/// `target/`).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => project_root().join(dir),
        None => project_root().join("target"),
    }
}

/// Where xtask keeps downloaded and generated artifacts (ignored by git).
pub fn state_dir() -> PathBuf {
    project_root().join(".oxserve")
}

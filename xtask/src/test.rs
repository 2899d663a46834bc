//! `cargo xtask test`: the whole suite — setup, the offline dependency audit, every crate's
//! unit, integration and doc tests, then the tests that need the Python client environment.

use anyhow::{Context, Result};
use xshell::{Shell, cmd};

#[derive(clap::Args)]
pub struct Args {
    /// Skip the tests that drive the server with Python clients (tritonclient).
    #[arg(long)]
    no_python: bool,
}

pub fn run(sh: &Shell, args: Args) -> Result<()> {
    let Args { no_python } = args;
    let lib = crate::onnxruntime::ensure(sh)?;
    let _lib_env = sh.push_env("OXSERVE_ONNXRUNTIME_LIB", &lib);
    crate::deny::run(sh).context("dependency audit (cargo xtask deny)")?;
    cmd!(sh, "cargo build --workspace --all-targets").run().context("building the workspace")?;
    cmd!(sh, "cargo test --workspace --all-targets --no-fail-fast")
        .run()
        .context("workspace tests failed")?;
    cmd!(sh, "cargo test --workspace --doc").run().context("doc tests failed")?;
    crate::conformance::gate(sh)?;
    if !no_python {
        let python = crate::python_clients::ensure(sh)?;
        let _py_env = sh.push_env("OXSERVE_TEST_PYTHON", &python);
        cmd!(sh, "cargo test --workspace --test it -- --ignored python::")
            .run()
            .context("Python client tests failed")?;
        crate::agent_env::run_tests(sh)?;
    }
    // Last: the quick load tests (canary, scale-from-zero, autoscale) on the debug build.
    crate::loadtest::gate(sh).context("load-test gate failed")?;
    eprintln!("xtask: all tests passed");
    Ok(())
}

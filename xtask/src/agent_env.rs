//! The S3-compatible test server (moto, from PyPI) for the agent's puller tests and the
//! platform's S3 pull (`oxserve-cli`'s `up_apply::s3`), and the step of `cargo xtask test`
//! that runs those tests (every `it` test under a `s3::` path).

use std::path::PathBuf;

use anyhow::{Context, Result};
use xshell::{Shell, cmd};

/// Pinned server package.
pub const REQUIREMENTS: &str = "moto[server]==5.2.5\n";

/// The variable the agent's tests read the venv's python from.
pub const PYTHON_ENV: &str = "OXSERVE_TEST_S3_PYTHON";

/// Ensures the venv exists; returns its python.
pub fn ensure(sh: &Shell) -> Result<PathBuf> {
    crate::venv::ensure(sh, "s3-server", REQUIREMENTS)
}

/// Runs the tests that need the S3-compatible server, the agent's and `oxserve up`'s (they
/// are `#[ignore]`d otherwise).
pub fn run_tests(sh: &Shell) -> Result<()> {
    let python = ensure(sh)?;
    let _env = sh.push_env(PYTHON_ENV, &python);
    cmd!(sh, "cargo test --workspace --test it -- --ignored s3::")
        .run()
        .context("tests with the S3-compatible server failed")
}

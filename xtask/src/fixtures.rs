//! `cargo xtask fixtures`: retrains the model fixtures with the real Python frameworks.
//!
//! `fixtures/generate.py` runs in a pinned virtual environment (`fixtures/requirements.txt`)
//! and rewrites `fixtures/models/` (a model repository) and `fixtures/expected/` (each
//! framework's own predictions on a few test rows). The runtimes' tests compare against those.

use anyhow::{Context, Result};
use xshell::{Shell, cmd};

/// Creates (or reuses) the `fixtures` venv and runs the generator from the project root.
pub fn run(sh: &Shell) -> Result<()> {
    let python =
        crate::venv::ensure(sh, "fixtures", include_str!("../../fixtures/requirements.txt"))?;
    let root = crate::project_root();
    let _dir = sh.push_dir(&root);
    cmd!(sh, "{python} fixtures/generate.py").run().context("running fixtures/generate.py")?;
    Ok(())
}

//! `cargo xtask fixtures`: retrains the model fixtures with the real Python frameworks.

use anyhow::Result;
use xshell::Shell;

pub fn run(_sh: &Shell) -> Result<()> {
    anyhow::bail!("not yet implemented")
}

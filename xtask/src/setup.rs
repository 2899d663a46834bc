//! `cargo xtask setup`: fetches what a fresh machine lacks, idempotently.

use anyhow::Result;
use xshell::Shell;

pub fn run(sh: &Shell) -> Result<()> {
    crate::onnxruntime::ensure(sh)?;
    Ok(())
}

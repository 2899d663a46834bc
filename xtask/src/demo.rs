//! `cargo xtask demo`: serves the bundled models and shows real inferences.

use anyhow::Result;
use xshell::Shell;

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_sh: &Shell, _args: Args) -> Result<()> {
    anyhow::bail!("not yet implemented")
}

//! `cargo xtask codegen [--check]`: writes the generated files (the CRDs under `kind/crds/`,
//! from crates/api's types); `--check` fails instead when a committed file is stale.

use anyhow::{Result, bail};

#[derive(clap::Args)]
pub struct Args {
    /// Fail if a generated file differs from the committed one instead of writing it.
    #[arg(long, env = "OXSERVE_CODEGEN_CHECK")]
    check: bool,
}

pub fn run(args: Args) -> Result<()> {
    let Args { check } = args;
    let dir = crate::project_root().join("kind/crds");
    std::fs::create_dir_all(&dir)?;
    let mut stale = Vec::new();
    for (name, contents) in oxserve_api::crd::files() {
        let path = dir.join(&name);
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current == contents {
            continue;
        }
        if check {
            stale.push(path.display().to_string());
        } else {
            std::fs::write(&path, contents)?;
            println!("wrote {}", path.display());
        }
    }
    if !stale.is_empty() {
        bail!("stale generated files (run `cargo xtask codegen`): {}", stale.join(", "));
    }
    Ok(())
}

//! Throwaway Python virtual environments under `.oxserve/venvs/<name>`, created from a pinned
//! requirements file and recreated only when that file changes.

use std::path::PathBuf;

use anyhow::{Context, Result};
use xshell::{Shell, cmd};

/// Ensures the venv `name` exists with exactly `requirements` installed; returns the path of
/// its `python` executable.
pub fn ensure(sh: &Shell, name: &str, requirements: &str) -> Result<PathBuf> {
    let dir = crate::state_dir().join("venvs").join(name);
    let stamp = dir.join(".oxserve-requirements");
    let python = dir.join("bin").join("python");
    if python.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(requirements) {
        return Ok(python);
    }
    eprintln!("xtask: creating Python environment {}", dir.display());
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let host_python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
    cmd!(sh, "{host_python} -m venv {dir}")
        .run()
        .context("creating a venv (is python3-venv installed?)")?;
    let req_file = dir.join("requirements.txt");
    std::fs::write(&req_file, requirements)?;
    cmd!(sh, "{python} -m pip install --quiet --disable-pip-version-check -r {req_file}")
        .run()
        .with_context(|| format!("installing the packages of venv {name}"))?;
    std::fs::write(&stamp, requirements)?;
    Ok(python)
}

//! The Python environment with real V2 clients (NVIDIA's `tritonclient`) that the
//! integration tests drive the server with, and `shap`, which the explanations are checked
//! against.

use std::path::PathBuf;

use anyhow::Result;
use xshell::Shell;

/// Pinned client packages.
pub const REQUIREMENTS: &str = "\
tritonclient[http,grpc]==2.73.0
numpy==2.2.6
shap==0.51.0
";

/// Ensures the venv exists; returns its python.
pub fn ensure(sh: &Shell) -> Result<PathBuf> {
    crate::venv::ensure(sh, "python-clients", REQUIREMENTS)
}

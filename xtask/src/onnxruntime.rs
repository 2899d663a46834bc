//! The ONNX Runtime shared library, extracted from the pinned PyPI `onnxruntime` wheel.

use std::path::PathBuf;

use anyhow::Result;
use xshell::Shell;

/// Ensures the library is present and returns its path.
pub fn ensure(_sh: &Shell) -> Result<PathBuf> {
    anyhow::bail!("not yet implemented")
}

//! `cargo xtask gpu`: the GPU tier, what `.github/workflows/gpu.yml` runs on a self-hosted
//! runner labelled `gpu` (an NVIDIA GPU with its driver, CUDA 12 and cuDNN 9 installed).
//!
//! 1. checks a GPU is visible (`nvidia-smi -L`);
//! 2. installs ONNX Runtime's GPU build from the pinned PyPI `onnxruntime-gpu` wheel (the
//!    same [`crate::onnxruntime::VERSION`] as `cargo xtask setup`): the main library and
//!    its `_providers_*` plugins (ONNX Runtime loads the CUDA provider from beside the main
//!    library) into `.oxserve/lib/gpu/`;
//! 3. builds the `gpu` feature: the server library and the `oxserve` binary with
//!    `oxserve-server/gpu`;
//! 4. runs the CUDA tests (`crates/server/tests/gpu.rs`, ignored elsewhere) against that
//!    library.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

use crate::onnxruntime::VERSION;

/// Where the GPU build of ONNX Runtime goes.
fn lib_dir() -> PathBuf {
    crate::state_dir().join("lib").join("gpu")
}

pub fn run(sh: &Shell) -> Result<()> {
    cmd!(sh, "nvidia-smi -L")
        .run()
        .context("no NVIDIA GPU visible (nvidia-smi -L failed); the GPU tier needs one")?;
    let lib = ensure_library(sh)?;
    cmd!(sh, "cargo build -p oxserve-server --features gpu")
        .run()
        .context("the gpu feature build")?;
    cmd!(sh, "cargo build -p oxserve-cli --features oxserve-server/gpu")
        .run()
        .context("the oxserve binary with the gpu feature")?;
    let _lib = sh.push_env("OXSERVE_ONNXRUNTIME_LIB", &lib);
    cmd!(sh, "cargo test -p oxserve-server --features gpu --test gpu -- --ignored")
        .run()
        .context("the CUDA tests failed")?;
    Ok(())
}

/// Installs the GPU build's libraries (idempotent: a version stamp beside them) and returns
/// the main library's path.
fn ensure_library(sh: &Shell) -> Result<PathBuf> {
    let dir = lib_dir();
    let lib = dir.join("libonnxruntime.so");
    let stamp = dir.join("libonnxruntime.so.version");
    if lib.is_file() && std::fs::read_to_string(&stamp).is_ok_and(|v| v.trim() == VERSION) {
        return Ok(lib);
    }
    eprintln!("xtask: installing ONNX Runtime {VERSION} (GPU) into {}", dir.display());
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let wheels = crate::state_dir().join("cache").join("wheels-gpu");
    std::fs::create_dir_all(&wheels).with_context(|| format!("creating {}", wheels.display()))?;
    let requirement = format!("onnxruntime-gpu=={VERSION}");
    cmd!(
        sh,
        "{python} -m pip download --quiet --disable-pip-version-check {requirement} --no-deps --only-binary=:all: -d {wheels}"
    )
    .run()
    .with_context(|| format!("downloading the {requirement} wheel with pip"))?;
    let prefix = format!("onnxruntime_gpu-{VERSION}-");
    let wheel = std::fs::read_dir(&wheels)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name.starts_with(&prefix) && name.ends_with(".whl")
        })
        .max();
    let Some(wheel) = wheel else {
        bail!("pip reported success but no {prefix}*.whl is in {}", wheels.display());
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    cmd!(sh, "{python} -c {EXTRACT_PY} {wheel} {dir}")
        .quiet()
        .run()
        .with_context(|| format!("extracting the libraries from {}", wheel.display()))?;
    std::fs::write(&stamp, VERSION).context("writing the version stamp")?;
    Ok(lib)
}

/// Copies `onnxruntime/capi/libonnxruntime.so.*` (as `libonnxruntime.so`) and the
/// `libonnxruntime_providers_*.so` plugins out of the wheel into a directory. Args: wheel,
/// directory.
const EXTRACT_PY: &str = r#"
import os, re, shutil, sys, zipfile
wheel, dest = sys.argv[1:3]
main = re.compile(r"onnxruntime/capi/libonnxruntime\.so[.0-9]*")
plugin = re.compile(r"onnxruntime/capi/(libonnxruntime_providers_[a-z_]+\.so)")
with zipfile.ZipFile(wheel) as z:
    names = z.namelist()
    mains = sorted((n for n in names if main.fullmatch(n)), key=len, reverse=True)
    if not mains:
        sys.exit(f"no onnxruntime/capi/libonnxruntime library in {wheel}")
    copies = [(mains[0], "libonnxruntime.so")]
    copies += [(n, plugin.fullmatch(n).group(1)) for n in names if plugin.fullmatch(n)]
    if not any("cuda" in target for _, target in copies):
        sys.exit(f"no CUDA provider in {wheel}")
    for name, target in copies:
        tmp = os.path.join(dest, f".{target}.tmp")
        with z.open(name) as src, open(tmp, "wb") as out:
            shutil.copyfileobj(src, out)
        os.replace(tmp, os.path.join(dest, target))
"#;

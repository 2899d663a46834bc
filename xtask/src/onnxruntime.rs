//! The ONNX Runtime shared library, extracted from the pinned PyPI `onnxruntime` wheel.
//!
//! The server loads ONNX Runtime at run time (`ort`'s `load-dynamic`), so a fresh machine
//! needs the shared library somewhere. `cargo xtask setup` downloads the official
//! `onnxruntime` wheel for this machine's Python and platform with `pip download` (PyPI is
//! the only place it comes from), takes `onnxruntime/capi/libonnxruntime.so.*` out of the
//! wheel (a zip file, read with Python's `zipfile`) and installs it as
//! `.oxserve/lib/libonnxruntime.so`. A stamp file next to it records the version, so the
//! step is a no-op once done and redone when [`VERSION`] changes.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

/// The pinned ONNX Runtime release; must provide the C API version `ort` was built for.
pub const VERSION: &str = "1.31.1";

/// File name of the shared library on this platform.
#[cfg(target_os = "macos")]
const LIB_NAME: &str = "libonnxruntime.dylib";
#[cfg(not(target_os = "macos"))]
const LIB_NAME: &str = "libonnxruntime.so";

/// Where the library lives: `.oxserve/lib/libonnxruntime.so` (`.dylib` on macOS). Other
/// commands pass it to the processes they start as `OXSERVE_ONNXRUNTIME_LIB`.
pub fn library_path() -> PathBuf {
    lib_dir().join(LIB_NAME)
}

fn lib_dir() -> PathBuf {
    crate::state_dir().join("lib")
}

fn stamp_path() -> PathBuf {
    lib_dir().join(format!("{LIB_NAME}.version"))
}

/// Ensures the pinned library is installed and returns its path (idempotent).
pub fn ensure(sh: &Shell) -> Result<PathBuf> {
    let lib = library_path();
    if is_current(&lib, &stamp_path()) {
        return Ok(lib);
    }
    eprintln!("xtask: installing ONNX Runtime {VERSION} into {}", lib.display());

    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let wheels = crate::state_dir().join("cache").join("wheels");
    std::fs::create_dir_all(&wheels).with_context(|| format!("creating {}", wheels.display()))?;
    let requirement = format!("onnxruntime=={VERSION}");
    cmd!(
        sh,
        "{python} -m pip download --quiet --disable-pip-version-check {requirement} --no-deps --only-binary=:all: -d {wheels}"
    )
    .run()
    .with_context(|| format!("downloading the {requirement} wheel with pip (is python3 with pip installed?)"))?;
    let wheel = find_wheel(&wheels)?;

    let dir = lib_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // Extract to a temporary name first and rename into place, so a crash or a concurrent
    // reader never sees a half-written library.
    let tmp = dir.join(format!(".{LIB_NAME}.{}.tmp", std::process::id()));
    cmd!(sh, "{python} -c {EXTRACT_PY} {wheel} {tmp}")
        .quiet()
        .run()
        .with_context(|| format!("extracting {LIB_NAME} from {}", wheel.display()))?;
    std::fs::rename(&tmp, &lib).with_context(|| format!("moving {} into place", lib.display()))?;
    std::fs::write(stamp_path(), VERSION).context("writing the version stamp")?;
    Ok(lib)
}

/// The library is present and was installed from [`VERSION`].
fn is_current(lib: &Path, stamp: &Path) -> bool {
    lib.is_file() && std::fs::read_to_string(stamp).is_ok_and(|v| v.trim() == VERSION)
}

/// The downloaded wheel of [`VERSION`] (pip picks the one tag that fits this machine).
fn find_wheel(dir: &Path) -> Result<PathBuf> {
    let prefix = format!("onnxruntime-{VERSION}-");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.starts_with(&prefix) && name.ends_with(".whl") {
            found.push(path);
        }
    }
    found.sort();
    match found.pop() {
        Some(wheel) => Ok(wheel),
        None => bail!("pip reported success but no {prefix}*.whl is in {}", dir.display()),
    }
}

/// Copies the main library out of the wheel (`onnxruntime/capi/libonnxruntime.so.1.31.1`
/// on Linux, `libonnxruntime.1.31.1.dylib` on macOS; not the `_providers_*` plugins) to
/// `dest`. Args: wheel, dest.
const EXTRACT_PY: &str = r#"
import re, shutil, sys, zipfile
wheel, dest = sys.argv[1:3]
pattern = re.compile(r"onnxruntime/capi/libonnxruntime(\.so[.0-9]*|[.0-9]*\.dylib)")
with zipfile.ZipFile(wheel) as z:
    names = sorted((n for n in z.namelist() if pattern.fullmatch(n)), key=len, reverse=True)
    if not names:
        sys.exit(f"no onnxruntime/capi/libonnxruntime library in {wheel}")
    with z.open(names[0]) as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out)
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_must_match_the_pinned_version() {
        let dir = std::env::temp_dir().join(format!("xtask-ort-stamp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let lib = dir.join(LIB_NAME);
        let stamp = dir.join("stamp");
        assert!(!is_current(&lib, &stamp), "nothing installed yet");
        std::fs::write(&lib, b"not really a library").unwrap();
        std::fs::write(&stamp, "1.0.0").unwrap();
        assert!(!is_current(&lib, &stamp), "an old version must be replaced");
        std::fs::write(&stamp, format!("{VERSION}\n")).unwrap();
        assert!(is_current(&lib, &stamp));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

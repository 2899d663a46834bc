//! Finding and loading the ONNX Runtime shared library, once per process.
//!
//! `ort` is built with `load-dynamic`: nothing links against ONNX Runtime, the library is
//! `dlopen`ed when the first ONNX model loads. The search order is
//! 1. env `OXSERVE_ONNXRUNTIME_LIB`,
//! 2. env `ORT_DYLIB_PATH` (`ort`'s own variable),
//! 3. `libonnxruntime.so` next to the running executable,
//! 4. `.oxserve/lib/libonnxruntime.so` (what `cargo xtask setup` installs) in the current
//!    directory or any of its ancestors.
//!
//! A variable that is set is taken as the user's choice even when the file is missing, so a
//! typo is reported instead of silently falling through to another library. The outcome,
//! success or failure, is kept for the life of the process: an ONNX model that loads after
//! a failure gets the same error, while models in other formats are unaffected.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;

/// Environment variable naming the library explicitly (takes precedence).
pub const LIB_ENV: &str = "OXSERVE_ONNXRUNTIME_LIB";
/// `ort`'s own variable, honoured second.
pub const ORT_ENV: &str = "ORT_DYLIB_PATH";

/// File name of the library on this platform.
#[cfg(target_os = "macos")]
pub const LIB_NAME: &str = "libonnxruntime.dylib";
/// File name of the library on this platform.
#[cfg(not(target_os = "macos"))]
pub const LIB_NAME: &str = "libonnxruntime.so";

/// What to do when nothing is found or the library does not load.
const FIX: &str =
    "set OXSERVE_ONNXRUNTIME_LIB to the path of libonnxruntime or run `cargo xtask setup`";

/// The inputs of the library search, gathered from the process so that [`resolve`] is a pure
/// function of them.
#[derive(Debug, Clone, Default)]
pub struct SearchInputs {
    /// Value of `OXSERVE_ONNXRUNTIME_LIB`.
    pub oxserve_env: Option<OsString>,
    /// Value of `ORT_DYLIB_PATH`.
    pub ort_env: Option<OsString>,
    /// Directory of the running executable.
    pub exe_dir: Option<PathBuf>,
    /// Current working directory.
    pub cwd: Option<PathBuf>,
}

impl SearchInputs {
    /// The inputs of this process.
    pub fn from_process() -> SearchInputs {
        SearchInputs {
            oxserve_env: std::env::var_os(LIB_ENV),
            ort_env: std::env::var_os(ORT_ENV),
            exe_dir: std::env::current_exe().ok().and_then(|p| p.parent().map(Path::to_owned)),
            cwd: std::env::current_dir().ok(),
        }
    }
}

/// Picks the library path from `inputs`; `is_file` says whether a candidate exists (the real
/// file system in production, a fixed set in tests). The error lists what was tried and how
/// to fix it.
pub fn resolve(inputs: &SearchInputs, is_file: impl Fn(&Path) -> bool) -> Result<PathBuf, String> {
    for (var, value) in [(LIB_ENV, &inputs.oxserve_env), (ORT_ENV, &inputs.ort_env)] {
        if let Some(value) = value.as_ref().filter(|v| !v.is_empty()) {
            let path = PathBuf::from(value);
            // Made absolute here: `ort` resolves relative paths against the executable.
            return match (&inputs.cwd, path.is_absolute()) {
                (_, true) => Ok(path),
                (Some(cwd), false) => Ok(cwd.join(path)),
                (None, false) => Err(format!(
                    "{var}={} is a relative path and the current directory is unknown; use an absolute path",
                    path.display()
                )),
            };
        }
    }
    let mut tried = Vec::new();
    if let Some(dir) = &inputs.exe_dir {
        let path = dir.join(LIB_NAME);
        if is_file(&path) {
            return Ok(path);
        }
        tried.push(path);
    }
    if let Some(cwd) = &inputs.cwd {
        for dir in cwd.ancestors() {
            let path = dir.join(".oxserve").join("lib").join(LIB_NAME);
            if is_file(&path) {
                return Ok(path);
            }
            tried.push(path);
        }
    }
    let tried: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
    Err(format!(
        "onnx runtime library not found: {LIB_ENV} and {ORT_ENV} are unset and none of [{}] exists; {FIX}",
        tried.join(", ")
    ))
}

/// The loaded library and the `ort` environment every session is created in.
#[derive(Debug)]
pub struct Runtime {
    /// Where the library was loaded from.
    pub library: PathBuf,
    /// The process-wide `ort` environment.
    pub environment: Environment,
}

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

/// The process-wide runtime, loading the library on first use (see the module docs for the
/// search order). Safe to call from many threads; only the first call does any work.
pub fn runtime() -> Result<&'static Runtime, String> {
    RUNTIME
        .get_or_init(|| {
            let path = resolve(&SearchInputs::from_process(), Path::is_file)?;
            let runtime = load(&path)?;
            tracing::info!(library = %runtime.library.display(), "loaded onnx runtime");
            Ok(runtime)
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Loads the library at `path` and creates the `ort` environment.
///
/// Kept apart from [`runtime`] so that a failing path can be probed without fixing the
/// process-wide outcome. Once a library has been loaded into the process `ort` keeps it, and
/// a later call with another path reuses it (then fails to create a second environment).
pub fn load(path: &Path) -> Result<Runtime, String> {
    if !path.is_file() {
        return Err(format!(
            "onnx runtime library {} does not exist or is not a file; {FIX}",
            path.display()
        ));
    }
    // `ort` turns a few impossible-in-practice states of a foreign library into panics (e.g.
    // `OrtGetApiBase` returning null); a bad library file must not take the server down, so
    // those become an error here. `ort`'s state stays consistent: its globals are only set
    // on success.
    let built = std::panic::catch_unwind(|| {
        let builder = ort::init_from(path).map_err(|e| e.to_string())?;
        builder.with_name("oxserve").with_telemetry(false).build().map_err(|e| e.to_string())
    });
    match built {
        Ok(Ok(environment)) => Ok(Runtime { library: path.to_owned(), environment }),
        Ok(Err(e)) => Err(format!("loading onnx runtime from {}: {e}; {FIX}", path.display())),
        Err(_) => Err(format!(
            "loading onnx runtime from {}: the library is not a usable onnx runtime; {FIX}",
            path.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn inputs() -> SearchInputs {
        SearchInputs {
            oxserve_env: None,
            ort_env: None,
            exe_dir: Some(PathBuf::from("/opt/bin")),
            cwd: Some(PathBuf::from("/work/repo/crates/server")),
        }
    }

    fn files(paths: &[&str]) -> impl Fn(&Path) -> bool {
        let set: HashSet<PathBuf> = paths.iter().map(PathBuf::from).collect();
        move |p| set.contains(p)
    }

    #[test]
    fn explicit_variables_win_in_order() {
        let all = [
            "/opt/bin/libonnxruntime.so",
            "/work/repo/.oxserve/lib/libonnxruntime.so",
            "/custom/libonnxruntime.so",
        ];
        let mut i = inputs();
        i.oxserve_env = Some("/custom/libonnxruntime.so".into());
        i.ort_env = Some("/ort/libonnxruntime.so".into());
        assert_eq!(resolve(&i, files(&all)).unwrap(), PathBuf::from("/custom/libonnxruntime.so"));

        i.oxserve_env = None;
        // Taken even though it does not exist: the user asked for it.
        assert_eq!(resolve(&i, files(&all)).unwrap(), PathBuf::from("/ort/libonnxruntime.so"));

        // An empty variable counts as unset; relative values are made absolute.
        i.oxserve_env = Some("".into());
        i.ort_env = Some("lib/libonnxruntime.so".into());
        assert_eq!(
            resolve(&i, files(&all)).unwrap(),
            PathBuf::from("/work/repo/crates/server/lib/libonnxruntime.so")
        );
        i.cwd = None;
        assert!(resolve(&i, files(&all)).unwrap_err().contains("relative path"));
    }

    #[test]
    fn executable_directory_before_state_directories() {
        let both = ["/opt/bin/libonnxruntime.so", "/work/repo/.oxserve/lib/libonnxruntime.so"];
        assert_eq!(resolve(&inputs(), files(&both)).unwrap(), PathBuf::from(both[0]));
        assert_eq!(resolve(&inputs(), files(&both[1..])).unwrap(), PathBuf::from(both[1]));
    }

    #[test]
    fn nearest_ancestor_state_directory_wins() {
        let found = [
            "/work/.oxserve/lib/libonnxruntime.so",
            "/work/repo/crates/.oxserve/lib/libonnxruntime.so",
        ];
        assert_eq!(resolve(&inputs(), files(&found)).unwrap(), PathBuf::from(found[1]));
        assert_eq!(resolve(&inputs(), files(&found[..1])).unwrap(), PathBuf::from(found[0]));
    }

    #[test]
    fn nothing_found_names_what_was_tried_and_the_fix() {
        let err = resolve(&inputs(), files(&[])).unwrap_err();
        assert!(err.starts_with("onnx runtime library not found"), "{err}");
        assert!(err.contains("/opt/bin/libonnxruntime.so"), "{err}");
        assert!(err.contains("/work/repo/crates/server/.oxserve/lib/libonnxruntime.so"), "{err}");
        assert!(err.contains("/.oxserve/lib/libonnxruntime.so"), "{err}");
        assert!(err.contains("OXSERVE_ONNXRUNTIME_LIB"), "{err}");
        assert!(err.contains("cargo xtask setup"), "{err}");
    }

    #[test]
    fn loading_a_missing_library_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        for path in [dir.path().join("libonnxruntime.so"), dir.path().to_owned()] {
            let err = load(&path).unwrap_err();
            assert!(err.contains(&path.display().to_string()), "{err}");
            assert!(err.contains("does not exist or is not a file"), "{err}");
            assert!(err.contains("cargo xtask setup"), "{err}");
        }
    }
}

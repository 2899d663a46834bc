//! What the tests share: the `oxserve` binary, the fixture models, process checks.

use std::path::{Path, PathBuf};

/// The `oxserve` binary replicas run: `$OXSERVE_BIN`, else `debug/oxserve` in
/// `$CARGO_TARGET_DIR` or the workspace's `target/` (build it first with
/// `cargo build -p oxserve-cli`).
pub fn oxserve_bin() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let bin = match std::env::var_os("OXSERVE_BIN") {
        Some(b) => PathBuf::from(b),
        None => match std::env::var_os("CARGO_TARGET_DIR") {
            Some(dir) => workspace.join(dir).join("debug/oxserve"),
            None => workspace.join("target/debug/oxserve"),
        },
    };
    assert!(
        bin.is_file(),
        "{} not found: run `cargo build -p oxserve-cli` first or set OXSERVE_BIN",
        bin.display()
    );
    bin
}

/// The bundled fixtures.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// Whether `pid` is a live process (a zombie counts as dead).
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the first field after the parenthesised command name.
        Ok(stat) => {
            stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
        }
        Err(_) => false,
    }
}

//! Model archives (`.tar.gz`, `.tar`, `.zip`; the first byte picks the kind) unpacked by the
//! puller's `archive::extract`, which refuses absolute paths, `..` and links.
//!
//! Asserts: extraction never writes outside the destination directory and never leaves a
//! link in it, whether it succeeds or fails; it writes at most as many files as it reports;
//! a refusal is an archive or file error.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use oxserve_agent::Error;
use oxserve_agent::archive::extract;
use oxserve_agent::storage::ArchiveKind;
use oxserve_fuzz::split_byte;

/// A scratch directory of this process, removed and recreated for every input.
fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        std::env::temp_dir().join(format!("oxserve-fuzz-archive-{}", std::process::id()))
    })
}

/// Regular files under `dir`, failing on any link.
fn count_files(dir: &Path) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(dir).expect("readable") {
        let entry = entry.expect("readable entry");
        let ty = entry.file_type().expect("file type");
        assert!(!ty.is_symlink(), "extraction left a link: {}", entry.path().display());
        if ty.is_dir() {
            n += count_files(&entry.path());
        } else {
            n += 1;
        }
    }
    n
}

fuzz_target!(|data: &[u8]| {
    let (b, bytes) = split_byte(data);
    let kind = [ArchiveKind::TarGz, ArchiveKind::Tar, ArchiveKind::Zip][usize::from(b) % 3];
    let root = scratch();
    let _ = std::fs::remove_dir_all(root);
    // The destination sits two levels down, so `..` escapes land in `root` where they show.
    let dest = root.join("outer").join("dest");
    std::fs::create_dir_all(&dest).expect("scratch directory");
    let archive = root.join("archive");
    std::fs::write(&archive, bytes).expect("scratch archive");
    let result = extract(&archive, kind, &dest);
    let mut top: Vec<_> =
        std::fs::read_dir(root).expect("readable").map(|e| e.expect("entry").file_name()).collect();
    top.sort();
    assert_eq!(top, ["archive", "outer"], "extraction wrote beside the destination");
    let outer: Vec<_> = std::fs::read_dir(root.join("outer"))
        .expect("readable")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(outer, ["dest"], "extraction wrote beside the destination");
    let written = count_files(&dest);
    match result {
        Ok(files) => assert!(written <= files, "{written} files on disk, {files} reported"),
        Err(Error::Archive { reason, .. }) => assert!(!reason.is_empty()),
        Err(Error::Io { .. }) => {}
        Err(other) => panic!("an archive error must be an archive or file error: {other:?}"),
    }
});

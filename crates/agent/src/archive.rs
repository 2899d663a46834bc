//! Archive extraction (`.tar.gz`, `.tar`, `.zip`) that refuses unsafe entries.
//!
//! An entry whose path is absolute or climbs out with `..`, and any link entry, fails the
//! whole extraction: a model archive has no reason to contain them, and skipping them
//! silently would hide a tampered archive.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use crate::storage::{ArchiveKind, safe_relative};
use crate::{Error, Result};

/// Unpacks `archive` of the given kind into the existing directory `dest`. Returns the
/// number of files written.
pub fn extract(archive: &Path, kind: ArchiveKind, dest: &Path) -> Result<usize> {
    let file = File::open(archive).map_err(Error::io(archive))?;
    let reader = BufReader::new(file);
    match kind {
        ArchiveKind::TarGz => extract_tar(flate2::read::GzDecoder::new(reader), archive, dest),
        ArchiveKind::Tar => extract_tar(reader, archive, dest),
        ArchiveKind::Zip => extract_zip(archive, dest),
    }
}

fn archive_err(archive: &Path, reason: impl Into<String>) -> Error {
    Error::Archive { archive: archive.display().to_string(), reason: reason.into() }
}

fn checked(archive: &Path, name: &str) -> Result<PathBuf> {
    match safe_relative(name) {
        Some(p) if !p.as_os_str().is_empty() && !Path::new(name).is_absolute() => Ok(p),
        Some(_) if name.trim_matches('/').is_empty() || name == "." || name == "./" => {
            Ok(PathBuf::new())
        }
        _ => Err(archive_err(archive, format!("entry {name:?} escapes the destination"))),
    }
}

fn extract_tar(reader: impl Read, archive: &Path, dest: &Path) -> Result<usize> {
    let mut tar = tar::Archive::new(reader);
    let mut files = 0;
    let entries = tar.entries().map_err(|e| archive_err(archive, e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| archive_err(archive, e.to_string()))?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let rel = checked(archive, &name)?;
        let target = dest.join(&rel);
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                std::fs::create_dir_all(&target).map_err(Error::io(&target))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if rel.as_os_str().is_empty() {
                    return Err(archive_err(archive, format!("file entry {name:?} has no name")));
                }
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(Error::io(parent))?;
                }
                let mut out = File::create(&target).map_err(Error::io(&target))?;
                std::io::copy(&mut entry, &mut out)
                    .map_err(|e| archive_err(archive, format!("{name}: {e}")))?;
                files += 1;
            }
            // PAX/GNU metadata records are consumed by the tar reader itself.
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => {}
            other => {
                return Err(archive_err(
                    archive,
                    format!("entry {name:?}: unsupported entry type {other:?}"),
                ));
            }
        }
    }
    Ok(files)
}

fn extract_zip(archive: &Path, dest: &Path) -> Result<usize> {
    let file = File::open(archive).map_err(Error::io(archive))?;
    let mut zip = zip::ZipArchive::new(BufReader::new(file))
        .map_err(|e| archive_err(archive, e.to_string()))?;
    let mut files = 0;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| archive_err(archive, e.to_string()))?;
        let name = entry.name().map_err(|e| archive_err(archive, e.to_string()))?.into_owned();
        if entry.is_symlink() {
            return Err(archive_err(archive, format!("entry {name:?}: links are not allowed")));
        }
        let rel = checked(archive, &name)?;
        let target = dest.join(&rel);
        if entry.is_dir() {
            std::fs::create_dir_all(&target).map_err(Error::io(&target))?;
            continue;
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(Error::io(parent))?;
        }
        let mut out = File::create(&target).map_err(Error::io(&target))?;
        std::io::copy(&mut entry, &mut out)
            .map_err(|e| archive_err(archive, format!("{name}: {e}")))?;
        files += 1;
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar with one entry whose raw header name is `name` (bypassing the builder's checks).
    fn tar_with(name: &str, data: &[u8]) -> Vec<u8> {
        let mut header = tar::Header::new_gnu();
        let bytes = header.as_old_mut();
        bytes.name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_size(data.len() as u64);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_cksum();
        let mut b = tar::Builder::new(Vec::new());
        b.append(&header, data).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn tar_extracts_nested_files() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("m.tar");
        std::fs::write(&archive, tar_with("sub/model.onnx", b"abc")).unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        assert_eq!(extract(&archive, ArchiveKind::Tar, &out).unwrap(), 1);
        assert_eq!(std::fs::read(out.join("sub/model.onnx")).unwrap(), b"abc");
    }

    #[test]
    fn tar_rejects_traversal_and_absolute() {
        for name in ["../evil", "a/../../evil", "/etc/evil"] {
            let dir = tempfile::tempdir().unwrap();
            let archive = dir.path().join("m.tar");
            std::fs::write(&archive, tar_with(name, b"x")).unwrap();
            let out = dir.path().join("out");
            std::fs::create_dir(&out).unwrap();
            let err = extract(&archive, ArchiveKind::Tar, &out).unwrap_err();
            assert!(err.to_string().contains("escapes"), "{name}: {err}");
            assert!(!dir.path().join("evil").exists());
        }
    }

    #[test]
    fn zip_rejects_traversal() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("m.zip");
        let mut w = zip::ZipWriter::new(File::create(&archive).unwrap());
        let opts = zip::write::SimpleFileOptions::default();
        w.start_file("ok.txt", opts).unwrap();
        w.write_all(b"fine").unwrap();
        w.start_file("../evil.txt", opts).unwrap();
        w.write_all(b"bad").unwrap();
        w.finish().unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let err = extract(&archive, ArchiveKind::Zip, &out).unwrap_err();
        assert!(err.to_string().contains("escapes"), "{err}");
        assert!(!dir.path().join("evil.txt").exists());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("m.tar.gz");
        std::fs::write(&archive, b"not an archive at all").unwrap();
        for kind in [ArchiveKind::TarGz, ArchiveKind::Zip] {
            assert!(extract(&archive, kind, dir.path()).is_err());
        }
    }
}

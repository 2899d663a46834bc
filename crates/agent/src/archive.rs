//! Archive extraction (`.tar.gz`, `.tar`, `.zip`) that refuses unsafe entries.
//!
//! An entry whose path is absolute or climbs out with `..`, and any link entry, fails the
//! whole extraction: a model archive has no reason to contain them, and skipping them
//! silently would hide a tampered archive.
//!
//! Extraction is also bounded, so a decompression bomb fails with a clear error instead of
//! filling the disk: the bytes written may not exceed [`ExtractLimits::ratio`] times the
//! archive's size (with a floor for small archives and an absolute ceiling), and the
//! number of entries is capped.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use crate::storage::{ArchiveKind, safe_relative};
use crate::{Error, Result};

/// Bounds on what one archive may expand to.
#[derive(Debug, Clone, Copy)]
pub struct ExtractLimits {
    /// Bytes written may be this many times the archive's size…
    pub ratio: u64,
    /// …but at least this many (small archives of well-compressing text)…
    pub floor: u64,
    /// …and never more than this.
    pub ceiling: u64,
    /// Entries (files and directories) at most.
    pub max_entries: usize,
}

impl Default for ExtractLimits {
    fn default() -> Self {
        // Model weights compress 1–3×, tree-model JSON 10–20×; bombs reach 1000× and more.
        ExtractLimits { ratio: 100, floor: 256 << 20, ceiling: 64 << 30, max_entries: 100_000 }
    }
}

/// What is left of the limits while one archive is extracted.
struct Budget<'a> {
    archive: &'a Path,
    limit: u64,
    written: u64,
    entries: usize,
    max_entries: usize,
    archive_len: u64,
}

impl Budget<'_> {
    fn entry(&mut self) -> Result<()> {
        self.entries += 1;
        if self.entries > self.max_entries {
            return Err(archive_err(
                self.archive,
                format!(
                    "more than {} entries: refused as a possible archive bomb",
                    self.max_entries
                ),
            ));
        }
        Ok(())
    }

    /// Copies one entry, failing as soon as the total would pass the limit.
    fn copy(&mut self, name: &str, entry: &mut impl Read, out: &mut File) -> Result<()> {
        let left = self.limit - self.written;
        let copied = std::io::copy(&mut entry.take(left + 1), out)
            .map_err(|e| archive_err(self.archive, format!("{name}: {e}")))?;
        if copied > left {
            return Err(archive_err(
                self.archive,
                format!(
                    "expands to more than {} bytes from {} ({name} passed the limit): refused as a possible archive bomb",
                    self.limit, self.archive_len
                ),
            ));
        }
        self.written += copied;
        Ok(())
    }
}

/// Unpacks `archive` of the given kind into the existing directory `dest`, within the
/// default [`ExtractLimits`]. Returns the number of files written.
pub fn extract(archive: &Path, kind: ArchiveKind, dest: &Path) -> Result<usize> {
    extract_limited(archive, kind, dest, ExtractLimits::default())
}

/// [`extract`] within `limits`.
pub fn extract_limited(
    archive: &Path,
    kind: ArchiveKind,
    dest: &Path,
    limits: ExtractLimits,
) -> Result<usize> {
    let file = File::open(archive).map_err(Error::io(archive))?;
    let archive_len = file.metadata().map_err(Error::io(archive))?.len();
    let mut budget = Budget {
        archive,
        limit: archive_len.saturating_mul(limits.ratio).max(limits.floor).min(limits.ceiling),
        written: 0,
        entries: 0,
        max_entries: limits.max_entries,
        archive_len,
    };
    let reader = BufReader::new(file);
    match kind {
        ArchiveKind::TarGz => {
            extract_tar(flate2::read::GzDecoder::new(reader), archive, dest, &mut budget)
        }
        ArchiveKind::Tar => extract_tar(reader, archive, dest, &mut budget),
        ArchiveKind::Zip => extract_zip(archive, dest, &mut budget),
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

fn extract_tar(
    reader: impl Read,
    archive: &Path,
    dest: &Path,
    budget: &mut Budget<'_>,
) -> Result<usize> {
    let mut tar = tar::Archive::new(reader);
    let mut files = 0;
    let entries = tar.entries().map_err(|e| archive_err(archive, e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| archive_err(archive, e.to_string()))?;
        budget.entry()?;
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
                budget.copy(&name, &mut entry, &mut out)?;
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

fn extract_zip(archive: &Path, dest: &Path, budget: &mut Budget<'_>) -> Result<usize> {
    let file = File::open(archive).map_err(Error::io(archive))?;
    let mut zip = zip::ZipArchive::new(BufReader::new(file))
        .map_err(|e| archive_err(archive, e.to_string()))?;
    let mut files = 0;
    for i in 0..zip.len() {
        budget.entry()?;
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
        budget.copy(&name, &mut entry, &mut out)?;
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

    /// Small limits so the bombs stay small: 1 MiB floor, 10× ratio.
    const TIGHT: ExtractLimits =
        ExtractLimits { ratio: 10, floor: 1 << 20, ceiling: 1 << 30, max_entries: 5 };

    #[test]
    fn a_gzip_bomb_is_refused_and_a_normal_archive_is_not() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let tar = tar_with("zeros.bin", &vec![0u8; 4 << 20]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&tar).unwrap();
        let archive = dir.path().join("bomb.tar.gz");
        std::fs::write(&archive, gz.finish().unwrap()).unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let err = extract_limited(&archive, ArchiveKind::TarGz, &out, TIGHT).unwrap_err();
        assert!(err.to_string().contains("possible archive bomb"), "{err}");
        let written = std::fs::metadata(out.join("zeros.bin")).map(|m| m.len()).unwrap_or(0);
        assert!(written <= (1 << 20) + 1, "stopped at the limit, wrote {written}");
        // The same bytes are fine under the defaults (a 256 MiB floor).
        let out = dir.path().join("ok");
        std::fs::create_dir(&out).unwrap();
        assert_eq!(extract(&archive, ArchiveKind::TarGz, &out).unwrap(), 1);
    }

    #[test]
    fn a_zip_bomb_and_too_many_entries_are_refused() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("bomb.zip");
        let mut w = zip::ZipWriter::new(File::create(&archive).unwrap());
        let opts = zip::write::SimpleFileOptions::default();
        w.start_file("zeros.bin", opts).unwrap();
        w.write_all(&vec![0u8; 4 << 20]).unwrap();
        w.finish().unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let err = extract_limited(&archive, ArchiveKind::Zip, &out, TIGHT).unwrap_err();
        assert!(err.to_string().contains("possible archive bomb"), "{err}");

        let archive = dir.path().join("many.zip");
        let mut w = zip::ZipWriter::new(File::create(&archive).unwrap());
        for i in 0..6 {
            w.start_file(format!("f{i}"), opts).unwrap();
            w.write_all(b"x").unwrap();
        }
        w.finish().unwrap();
        let err = extract_limited(&archive, ArchiveKind::Zip, &out, TIGHT).unwrap_err();
        assert!(err.to_string().contains("more than 5 entries"), "{err}");
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

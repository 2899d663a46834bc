//! Repository rules that are cheap to check, run as tests of xtask: every Rust module opens
//! with a `//!` doc, no test relies on a should-panic attribute, and every ignore attribute
//! says why.

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if path.is_dir() {
                if !matches!(name.as_ref(), "target" | ".oxserve" | ".git" | "fixtures") {
                    rust_files(&path, out);
                }
            } else if name.ends_with(".rs") {
                out.push(path);
            }
        }
    }

    fn sources() -> Vec<(PathBuf, String)> {
        let root = crate::project_root();
        let mut files = Vec::new();
        for dir in ["crates", "conformance", "loadtest", "xtask"] {
            rust_files(&root.join(dir), &mut files);
        }
        assert!(files.len() > 20, "found only {} Rust files", files.len());
        files
            .into_iter()
            .map(|p| {
                let text = std::fs::read_to_string(&p).unwrap();
                (p.strip_prefix(&root).unwrap().to_owned(), text)
            })
            .collect()
    }

    #[test]
    fn every_module_has_a_doc_comment() {
        let missing: Vec<String> = sources()
            .into_iter()
            .filter(|(path, _)| !path.ends_with("build.rs"))
            .filter(|(_, text)| {
                let first = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
                !first.starts_with("//!")
            })
            .map(|(path, _)| path.display().to_string())
            .collect();
        assert!(missing.is_empty(), "modules without a //! doc: {missing:?}");
    }

    #[test]
    fn no_should_panic_and_no_bare_ignore() {
        // Built from pieces so this file does not match itself.
        let should_panic = ["#[should", "_panic"].concat();
        let bare_ignore = ["#[ignore", "]"].concat();
        let offends = |line: &str| {
            let line = line.trim();
            line.starts_with(&should_panic) || line.starts_with(&bare_ignore)
        };
        let offenders: Vec<String> = sources()
            .into_iter()
            .filter(|(_, text)| text.lines().any(offends))
            .map(|(path, _)| path.display().to_string())
            .collect();
        assert!(
            offenders.is_empty(),
            "should_panic or #[ignore] without a reason in {offenders:?}"
        );
    }
}

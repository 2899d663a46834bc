//! Every manifest under `tests/samples/` parses (snapshot of the normalized JSON); every one
//! under `tests/samples/retired/` is refused with its reason (snapshot of the errors).

use std::path::{Path, PathBuf};

fn samples(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/samples").join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "json"))
        .collect();
    files.sort();
    files
}

fn name(path: &Path) -> String {
    path.file_name().expect("file name").to_string_lossy().into_owned()
}

#[test]
fn every_sample_parses() {
    let files = samples("");
    assert!(files.len() >= 20, "samples missing: {}", files.len());
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read sample");
        let resources = oxserve_api::parse(&text, &name(&path)).unwrap_or_else(|e| panic!("{e}"));
        let normalized: Vec<serde_json::Value> = resources.iter().map(|r| r.to_value()).collect();
        insta::with_settings!({ snapshot_suffix => name(&path), omit_expression => true }, {
            insta::assert_json_snapshot!("normalized", normalized);
        });
    }
}

#[test]
fn retired_samples_are_refused_with_their_reason() {
    let files = samples("retired");
    assert!(files.len() >= 2);
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read sample");
        let errors =
            oxserve_api::parse(&text, &name(&path)).expect_err("a retired shape must be refused");
        insta::with_settings!({ snapshot_suffix => name(&path), omit_expression => true }, {
            insta::assert_snapshot!("refused", errors.to_string());
        });
    }
}

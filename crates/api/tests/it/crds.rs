//! The committed CRDs under `kind/crds/` are what the types generate, and they parse as
//! Kubernetes CustomResourceDefinitions with KServe's printer columns and a status
//! subresource.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use std::path::Path;

fn crd_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../kind/crds")
}

/// Like rust-analyzer's `ensure_file_contents`: a stale file is rewritten (outside CI) and the
/// test fails, so the fix is to commit the new file.
#[test]
fn committed_crds_are_fresh() {
    let mut stale = Vec::new();
    for (name, contents) in oxserve_api::crd::files() {
        let path = crd_dir().join(&name);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed != contents {
            if std::env::var_os("CI").is_none() {
                std::fs::create_dir_all(crd_dir()).expect("create kind/crds");
                std::fs::write(&path, &contents).expect("rewrite the CRD");
            }
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "stale (rewritten; commit them, or run `cargo xtask codegen`): {stale:?}"
    );
}

#[test]
fn crds_parse_with_kserve_columns_and_status() {
    for (name, contents) in oxserve_api::crd::files() {
        let crd: CustomResourceDefinition =
            serde_yaml_ng::from_str(&contents).unwrap_or_else(|e| panic!("{name}: {e}"));
        let v = &crd.spec.versions[0];
        if matches!(crd.spec.names.kind.as_str(), "InferenceService" | "TrainedModel") {
            assert!(
                v.subresources.as_ref().and_then(|s| s.status.as_ref()).is_some(),
                "{name}: status subresource"
            );
        }
        if crd.spec.names.kind == "InferenceService" {
            let columns: Vec<&str> =
                v.additional_printer_columns.iter().flatten().map(|c| c.name.as_str()).collect();
            assert_eq!(
                columns,
                [
                    "URL",
                    "Ready",
                    "Prev",
                    "Latest",
                    "PrevRolledoutRevision",
                    "LatestReadyRevision",
                    "Age"
                ],
                "{name}"
            );
            assert_eq!(crd.spec.names.short_names.as_deref(), Some(&["isvc".to_owned()][..]));
        }
        assert!(name.starts_with(&crd.spec.group), "{name}");
    }
}

//! Model files for a revision: each `storageUri` pulled with the agent's
//! [`Puller`](oxserve_agent::puller::Puller) through the content-addressed cache under the
//! state directory, then one model directory assembled from them.
//!
//! ```text
//! STATE/cache/entries/KEY/…                 the puller's cache (shared by every revision)
//! STATE/revisions/REV/sources/N/…           source N, hard-linked out of the cache
//! STATE/revisions/REV/model/                what replicas serve: symlinks to the sources'
//!                                           entries, plus the revision's model-settings.json
//! ```
//! Local sources (a path, `file://`, `pvc://` under the configured PVC root) are used in
//! place rather than copied. Remote sources report progress (bytes done and total) as they
//! download. A failure is a one-line reason naming the URI (a bad scheme, a missing
//! object, missing credentials), never a panic.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use oxserve_agent::progress::ProgressMode;
use oxserve_agent::puller::{Puller, PullerConfig};
use oxserve_agent::storage::StorageUri;
use serde_json::{Map, Value};

use crate::backend::{BatcherSpec, ModelSource};

/// KServe's mount point, replaced by the real model directory in container arguments.
pub const KSERVE_MODEL_DIR: &str = "/mnt/models";

/// The server's per-model settings file.
const SETTINGS_FILE: &str = "model-settings.json";

/// Where and how pulls happen.
#[derive(Clone, Debug)]
pub struct PullContext {
    /// The shared cache (`STATE/cache`).
    pub cache_dir: PathBuf,
    /// Where `pvc://CLAIM/PATH` resolves: `PVC_ROOT/PATH`.
    pub pvc_root: PathBuf,
}

/// Bytes done and total across a revision's sources, as they change.
pub type OnProgress = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// Pulls `sources` for revision files under `rev_dir` and assembles `rev_dir/model`.
/// Returns the model directory. The error is the reason to show.
pub async fn prepare(
    ctx: &PullContext,
    rev_dir: &Path,
    sources: &[ModelSource],
    on_progress: OnProgress,
) -> Result<PathBuf, String> {
    let mut roots: Vec<(PathBuf, String)> = Vec::new();
    // Totals of finished sources, added to the one in progress.
    let mut done_before = 0u64;
    let mut total_before = 0u64;
    for (i, source) in sources.iter().enumerate() {
        let rel = relative_mount(&source.path).ok_or_else(|| {
            format!("storage path {:?}: must stay inside the model directory", source.path)
        })?;
        let parsed = StorageUri::parse(&source.uri, &ctx.pvc_root)
            .map_err(|e| format!("pulling {}: {e}", source.uri))?;
        if let StorageUri::Local { path } = parsed {
            if !path.exists() {
                return Err(format!("pulling {}: {} does not exist", source.uri, path.display()));
            }
            let path = std::fs::canonicalize(&path)
                .map_err(|e| format!("pulling {}: {}: {e}", source.uri, path.display()))?;
            roots.push((path, rel));
            continue;
        }
        let progress = on_progress.clone();
        let (db, tb) = (done_before, total_before);
        let mut config = PullerConfig::new(&ctx.cache_dir);
        config.pvc_root = ctx.pvc_root.clone();
        config.progress = ProgressMode::Log;
        config.on_progress = Some(Arc::new(move |done, total| progress(db + done, tb + total)));
        let puller = Puller::new(config).map_err(|e| format!("opening the model cache: {e}"))?;
        let dest = rev_dir.join("sources").join(i.to_string());
        let outcome = puller
            .pull(&source.uri, &dest)
            .await
            .map_err(|e| format!("pulling {}: {e}", source.uri))?;
        done_before += outcome.bytes;
        total_before += outcome.bytes;
        on_progress(done_before, total_before);
        roots.push((dest, rel));
    }
    let model_dir = rev_dir.join("model");
    let (roots2, model_dir2) = (roots, model_dir.clone());
    tokio::task::spawn_blocking(move || assemble(&roots2, &model_dir2))
        .await
        .map_err(|e| format!("assembling the model directory: {e}"))??;
    Ok(model_dir)
}

/// A `storageUris[].mountPath` as a path relative to the model directory.
fn relative_mount(path: &str) -> Option<String> {
    let p = path.strip_prefix(KSERVE_MODEL_DIR).unwrap_or(path).trim_matches('/');
    let ok = Path::new(p).components().all(|c| matches!(c, std::path::Component::Normal(_)));
    ok.then(|| p.to_owned())
}

/// Builds `model_dir` afresh: a symlink per entry of each root (or to the root itself when
/// it is a file), at the root's relative path.
fn assemble(roots: &[(PathBuf, String)], model_dir: &Path) -> Result<(), String> {
    let io = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    if model_dir.exists() {
        std::fs::remove_dir_all(model_dir).map_err(|e| io(model_dir, e))?;
    }
    std::fs::create_dir_all(model_dir).map_err(|e| io(model_dir, e))?;
    for (root, rel) in roots {
        let into = model_dir.join(rel);
        std::fs::create_dir_all(&into).map_err(|e| io(&into, e))?;
        let entries: Vec<PathBuf> = if root.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(root)
                .map_err(|e| io(root, e))?
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.file_name().is_some_and(|n| !n.to_string_lossy().starts_with('.')))
                .collect();
            v.sort();
            v
        } else {
            vec![root.clone()]
        };
        for entry in entries {
            let Some(name) = entry.file_name() else { continue };
            let link = into.join(name);
            if link.symlink_metadata().is_ok() {
                return Err(format!(
                    "storage sources overlap: {} is provided twice",
                    link.strip_prefix(model_dir).unwrap_or(&link).display()
                ));
            }
            std::os::unix::fs::symlink(&entry, &link).map_err(|e| io(&link, e))?;
        }
    }
    Ok(())
}

/// Writes the revision's `model-settings.json` into `model_dir` for the built-in server:
/// the source's own settings (if any) with the served `name`, the batcher's fields and the
/// explainer's block set.
pub fn write_server_settings(
    model_dir: &Path,
    model_name: &str,
    batcher: Option<&BatcherSpec>,
    explainer: Option<&Value>,
) -> Result<(), String> {
    let path = model_dir.join(SETTINGS_FILE);
    let mut settings: Map<String, Value> = match std::fs::read(&path) {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(Value::Object(m)) => m,
            Ok(_) => return Err(format!("{SETTINGS_FILE}: not a JSON object")),
            Err(e) => return Err(format!("{SETTINGS_FILE}: {e}")),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    settings.insert("name".into(), Value::from(model_name));
    if let Some(b) = batcher {
        let size = b.max_batch_size.unwrap_or(BatcherSpec::DEFAULT_MAX_BATCH_SIZE);
        let latency_ms = b.max_latency.unwrap_or(BatcherSpec::DEFAULT_MAX_LATENCY_MS);
        settings.insert("max_batch_size".into(), Value::from(size));
        settings.insert("max_batch_time".into(), Value::from(f64::from(latency_ms) / 1000.0));
        if let Some(t) = b.timeout {
            settings.insert("timeout".into(), Value::from(t));
        }
    }
    if let Some(e) = explainer {
        settings.insert("explainer".into(), e.clone());
    }
    // The symlink (if the source had a settings file) is replaced by a real file.
    if path.symlink_metadata().is_ok() {
        std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let bytes = serde_json::to_vec_pretty(&Value::Object(settings))
        .map_err(|e| format!("{SETTINGS_FILE}: {e}"))?;
    crate::local::state::write_atomic(&path, &bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn ctx(dir: &Path) -> PullContext {
        PullContext { cache_dir: dir.join("cache"), pvc_root: dir.join("pvc") }
    }

    fn source(uri: &str, path: &str) -> ModelSource {
        ModelSource { uri: uri.to_owned(), path: path.to_owned() }
    }

    fn no_progress() -> OnProgress {
        Arc::new(|_, _| {})
    }

    #[tokio::test]
    async fn local_sources_are_linked_in_place_at_their_mount_paths() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("iris");
        std::fs::create_dir_all(&model).unwrap();
        std::fs::write(model.join("model.onnx"), b"onnx").unwrap();
        let extra = dir.path().join("pvc/extra");
        std::fs::create_dir_all(&extra).unwrap();
        std::fs::write(extra.join("vocab.txt"), b"v").unwrap();
        let sources = [
            source(&format!("file://{}", model.display()), ""),
            source("pvc://claim/extra", "/mnt/models/assets"),
        ];
        let rev = dir.path().join("rev");
        let out = prepare(&ctx(dir.path()), &rev, &sources, no_progress()).await.unwrap();
        assert_eq!(out, rev.join("model"));
        assert_eq!(std::fs::read(out.join("model.onnx")).unwrap(), b"onnx");
        assert_eq!(std::fs::read(out.join("assets/vocab.txt")).unwrap(), b"v");
        assert!(out.join("model.onnx").symlink_metadata().unwrap().file_type().is_symlink());
    }

    #[tokio::test]
    async fn bad_uris_are_reasons_naming_the_uri() {
        let dir = tempfile::tempdir().unwrap();
        let rev = dir.path().join("rev");
        for (uri, expect) in [
            ("ftp://host/model", "unsupported scheme"),
            ("s3://", "missing bucket"),
            ("/does/not/exist", "does not exist"),
        ] {
            let e = prepare(&ctx(dir.path()), &rev, &[source(uri, "")], no_progress())
                .await
                .unwrap_err();
            assert!(e.contains(uri) && e.contains(expect), "{uri}: {e}");
        }
        let e = prepare(&ctx(dir.path()), &rev, &[source("/tmp", "../up")], no_progress())
            .await
            .unwrap_err();
        assert!(e.contains("inside the model directory"), "{e}");
    }

    #[tokio::test]
    async fn an_unreachable_http_source_fails_with_its_uri() {
        // A port that was free a moment ago: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let uri = format!("http://127.0.0.1:{port}/model.onnx");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        let e = prepare(
            &ctx(dir.path()),
            &dir.path().join("rev"),
            &[source(&uri, "")],
            Arc::new(move |d, t| seen2.lock().unwrap().push((d, t))),
        )
        .await
        .unwrap_err();
        assert!(e.starts_with(&format!("pulling {uri}: ")), "{e}");
    }

    #[test]
    fn server_settings_keep_the_sources_fields_and_set_name_and_batcher() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join(SETTINGS_FILE), br#"{"name":"old","max_queue_size":7}"#).unwrap();
        let model = dir.path().join("model");
        assemble(&[(src.clone(), String::new())], &model).unwrap();
        let batcher =
            BatcherSpec { max_batch_size: Some(8), max_latency: Some(250), timeout: None };
        let explainer = serde_json::json!({"type": "treeshap"});
        write_server_settings(&model, "iris", Some(&batcher), Some(&explainer)).unwrap();
        let v: Value =
            serde_json::from_slice(&std::fs::read(model.join(SETTINGS_FILE)).unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"name":"iris","max_queue_size":7,"max_batch_size":8,"max_batch_time":0.25,"explainer":{"type":"treeshap"}})
        );
        // The source's own file is left alone.
        let orig = std::fs::read_to_string(src.join(SETTINGS_FILE)).unwrap();
        assert!(orig.contains("old"), "{orig}");
        let plain = dir.path().join("plain");
        assemble(&[(src.join(SETTINGS_FILE), "x".into())], &plain).unwrap();
        write_server_settings(&plain, "m", None, None).unwrap();
        let v: Value =
            serde_json::from_slice(&std::fs::read(plain.join(SETTINGS_FILE)).unwrap()).unwrap();
        assert_eq!(v, serde_json::json!({"name":"m"}));
    }

    #[test]
    fn overlapping_sources_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::write(a.join("model.onnx"), b"1").unwrap();
        let e = assemble(&[(a.clone(), String::new()), (a, String::new())], &dir.path().join("m"))
            .unwrap_err();
        assert!(e.contains("model.onnx is provided twice"), "{e}");
    }
}

//! A model repository of fixtures with explainer settings, and a server over it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use oxserve_server::core::{Core, CoreConfig};
use oxserve_server::repository::Repository;
use oxserve_server::rest::RestState;
use oxserve_server::serve::{Listeners, ServeOptions, serve};

/// `fixtures/` of the workspace.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// Ten seeded background rows of 8 features for the `mlp` fixture.
pub fn background_rows() -> Vec<Vec<f64>> {
    (0..10).map(|i| (0..8).map(|j| (((i * 7 + j * 3) % 11) as f64 - 5.0) / 4.0).collect()).collect()
}

fn copy_model(repo: &Path, fixture: &str, name: &str, settings: Option<&str>) {
    let dir = repo.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(fixtures().join("models").join(fixture)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    if let Some(s) = settings {
        std::fs::write(dir.join("model-settings.json"), s).unwrap();
    }
}

/// A repository: `xgb-binary`, `lgbm-multiclass` (TreeSHAP without settings), `mlp` with
/// KernelSHAP over `background.json`, `mlp-kmeans` (the same summarised by k-means to 3
/// rows, batches of at most 64 rows), `mlp-wide` (a background of 5 features for an
/// 8-feature input), `iris-lr` (no explainer), and misconfigured explainers that load but
/// cannot explain: `mlp-treeshap` (TreeSHAP asked of an ONNX model), `mlp-no-output`
/// (`explainer.output` names no output of the model) and `mlp-no-background` (the
/// background file is missing).
pub fn repository() -> tempfile::TempDir {
    let repo = tempfile::tempdir().unwrap();
    let p = repo.path();
    copy_model(p, "xgb-binary", "xgb-binary", None);
    copy_model(p, "lgbm-multiclass", "lgbm-multiclass", None);
    copy_model(p, "iris-lr", "iris-lr", None);
    let kernel = r#"{"explainer": {"type": "kernelshap", "background": {"file": "background.json"}, "seed": 1}}"#;
    copy_model(p, "mlp", "mlp", Some(kernel));
    let kmeans = r#"{"max_batch_size": 64, "explainer": {"type": "kernelshap",
        "background": {"file": "background.csv", "summary": "kmeans", "size": 3}, "nsamples": 40}}"#;
    copy_model(p, "mlp", "mlp-kmeans", Some(kmeans));
    copy_model(p, "mlp", "mlp-wide", Some(kernel));
    copy_model(p, "mlp", "mlp-treeshap", Some(r#"{"explainer": {"type": "treeshap"}}"#));
    let no_output = r#"{"explainer": {"type": "kernelshap", "background": {"file": "background.json"}, "output": "probabilities"}}"#;
    copy_model(p, "mlp", "mlp-no-output", Some(no_output));
    copy_model(p, "mlp", "mlp-no-background", Some(kernel));
    let rows = background_rows();
    std::fs::write(p.join("mlp-no-output/background.json"), serde_json::to_string(&rows).unwrap())
        .unwrap();
    std::fs::write(p.join("mlp/background.json"), serde_json::to_string(&rows).unwrap()).unwrap();
    let csv: Vec<String> = std::iter::once("a,b,c,d,e,f,g,h".to_owned())
        .chain(rows.iter().map(|r| r.iter().map(f64::to_string).collect::<Vec<_>>().join(",")))
        .collect();
    std::fs::write(p.join("mlp-kmeans/background.csv"), csv.join("\n")).unwrap();
    let wide: Vec<Vec<f64>> = rows.iter().map(|r| r[..5].to_vec()).collect();
    std::fs::write(p.join("mlp-wide/background.json"), serde_json::to_string(&wide).unwrap())
        .unwrap();
    repo
}

/// A loaded core over [`repository`] and the REST state over it.
pub async fn core(repo: &Path) -> (Arc<Core>, RestState) {
    let core = Arc::new(Core::new(CoreConfig::default(), Some(Repository::open(repo).unwrap())));
    core.load_all().await;
    let state = RestState::new(core.clone());
    (core, state)
}

/// A server on loopback ports over `core`, stopped when the returned sender is dropped or
/// sent to.
pub async fn start(core: Arc<Core>) -> (SocketAddr, SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (http_addr, grpc_addr) = (http.local_addr().unwrap(), grpc.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(
        Listeners { http, grpc: Some(grpc) },
        core,
        ServeOptions::default(),
        async move {
            let _ = rx.await;
        },
    ));
    (http_addr, grpc_addr, tx)
}

//! Starts oxserve in-process on loopback, serving the suite's reference models from
//! `conformance/models` and the `xgb-binary` fixture (a tree model, explained with TreeSHAP
//! for the explain extension's cases) from a copy of both in the target's temporary
//! directory (ONNX Runtime is found as the server finds it: the environment or the
//! workspace's `.oxserve/lib`), and runs the suite against a URL.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use oxserve_conformance::cases::catalog;
use oxserve_conformance::{Ctx, LevelFilter, Report, Target, reference, run};
use oxserve_server::core::{Core, CoreConfig};
use oxserve_server::repository::Repository;
use oxserve_server::serve::{Listeners, ServeOptions, serve};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A running in-process oxserve.
pub struct Oxserve {
    pub rest: String,
    pub grpc: String,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    repository: PathBuf,
}

/// The fixture the explain cases explain.
pub const EXPLAIN_MODEL: &str = "xgb-binary";

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the repository copy");
    for entry in std::fs::read_dir(from).expect("read a model directory") {
        let entry = entry.expect("a directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a model file");
        }
    }
}

/// A fresh repository: the reference models and the explain fixture.
fn repository() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "conformance-repo-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&root.join("models"), &dir);
    copy_dir(&root.join("../fixtures/models").join(EXPLAIN_MODEL), &dir.join(EXPLAIN_MODEL));
    dir
}

impl Oxserve {
    /// Serves the reference models and the explain fixture on ephemeral loopback ports.
    pub async fn start() -> Oxserve {
        let models = repository();
        let repository = Repository::open(&models).expect("the repository copy opens");
        let core = Arc::new(Core::new(CoreConfig::default(), Some(repository)));
        core.load_all().await;
        for name in reference::names() {
            assert!(
                core.model_ready(&name, None).unwrap_or(false),
                "reference model {name} did not load (is ONNX Runtime installed? run `cargo xtask setup`)"
            );
        }
        assert!(
            core.model_ready(EXPLAIN_MODEL, None).unwrap_or(false),
            "{EXPLAIN_MODEL} did not load"
        );
        let http = TcpListener::bind("127.0.0.1:0").await.expect("bind REST");
        let grpc = TcpListener::bind("127.0.0.1:0").await.expect("bind gRPC");
        let rest = format!("http://{}", http.local_addr().expect("REST address"));
        let grpc_addr = grpc.local_addr().expect("gRPC address").to_string();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(serve(
            Listeners { http, grpc: Some(grpc) },
            core,
            ServeOptions::default(),
            async move {
                let _ = stopped.await;
            },
        ));
        Oxserve { rest, grpc: grpc_addr, stop, task, repository: models }
    }

    /// Shuts down gracefully and removes the repository copy.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
        let _ = std::fs::remove_dir_all(&self.repository);
    }
}

/// Runs the whole catalog with the add-sub reference model under test (it cannot be
/// explained, so the explain cases find `xgb-binary` in the index).
pub async fn run_suite(rest: &str, grpc: Option<&str>) -> Report {
    let mut target = Target::new(rest);
    target.grpc = grpc.map(str::to_owned);
    target.model = Some(reference::ADD_SUB.to_owned());
    let ctx = Ctx::discover(target).await.expect("discovery");
    run(&ctx, &catalog(), LevelFilter::All).await
}

//! Starts oxserve in-process on loopback, serving the suite's reference models from
//! `conformance/models` (ONNX Runtime is found as the server finds it: the environment or the
//! workspace's `.oxserve/lib`), and runs the suite against a URL.

use std::path::Path;
use std::sync::Arc;

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
}

impl Oxserve {
    /// Serves the reference models on ephemeral loopback ports.
    pub async fn start() -> Oxserve {
        let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
        let repository = Repository::open(&models).expect("the reference models directory opens");
        let core = Arc::new(Core::new(CoreConfig::default(), Some(repository)));
        core.load_all().await;
        for name in reference::names() {
            assert!(
                core.model_ready(&name, None).unwrap_or(false),
                "reference model {name} did not load (is ONNX Runtime installed? run `cargo xtask setup`)"
            );
        }
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
        Oxserve { rest, grpc: grpc_addr, stop, task }
    }

    /// Shuts down gracefully.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Runs the whole catalog with the add-sub reference model under test.
pub async fn run_suite(rest: &str, grpc: Option<&str>) -> Report {
    let mut target = Target::new(rest);
    target.grpc = grpc.map(str::to_owned);
    target.model = Some(reference::ADD_SUB.to_owned());
    let ctx = Ctx::discover(target).await.expect("discovery");
    run(&ctx, &catalog(), LevelFilter::All).await
}

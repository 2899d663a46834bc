//! Starts the real oxserve server in-process on 127.0.0.1:0 (REST and gRPC) serving
//! [`SumModel`] as `sum` version `1`, and stops it through its shutdown future.

use std::sync::Arc;

use oxserve_protocol::{DataType, InferRequest, ModelMetadata, Tensor, TensorData, TensorMetadata};
use oxserve_server::core::{Core, CoreConfig};
use oxserve_server::serve::{Listeners, ServeOptions, serve};
use oxserve_server::settings::ModelSettings;
use oxserve_server::{Model, Result};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// FP32 `x: [-1, 2]` → `sum: [-1]` (the row sums) and `max: [-1]` (the row maxima).
pub struct SumModel(ModelMetadata);

impl SumModel {
    pub fn new() -> SumModel {
        let tensor = |name: &str, shape: Vec<i64>| TensorMetadata {
            name: name.into(),
            datatype: DataType::Fp32,
            shape,
            parameters: None,
        };
        SumModel(ModelMetadata {
            name: "sum".into(),
            versions: vec!["1".into()],
            platform: "rust".into(),
            inputs: vec![tensor("x", vec![-1, 2])],
            outputs: vec![tensor("sum", vec![-1]), tensor("max", vec![-1])],
            parameters: None,
        })
    }
}

impl Model for SumModel {
    fn metadata(&self) -> &ModelMetadata {
        &self.0
    }

    fn infer(&self, request: InferRequest) -> Result<Vec<Tensor>> {
        let x = &request.inputs[0];
        let TensorData::Fp32(v) = &x.data else {
            unreachable!("the server validates the datatype")
        };
        let rows = v.chunks_exact(2);
        let n = i64::try_from(rows.len()).unwrap_or(i64::MAX);
        let sums = rows.clone().map(|r| r[0] + r[1]).collect();
        let maxes = rows.map(|r| r[0].max(r[1])).collect();
        Ok(vec![
            Tensor::new("sum", vec![n], TensorData::Fp32(sums)),
            Tensor::new("max", vec![n], TensorData::Fp32(maxes)),
        ])
    }
}

/// A running server; [`TestServer::stop`] shuts it down and checks it stopped cleanly.
pub struct TestServer {
    http: std::net::SocketAddr,
    grpc: std::net::SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        let http_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let grpc_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = http_listener.local_addr().unwrap();
        let grpc = grpc_listener.local_addr().unwrap();
        let core = Arc::new(Core::new(CoreConfig::default(), None));
        core.add_model("sum", "1", Arc::new(SumModel::new()), ModelSettings::default())
            .await
            .unwrap();
        // Marks start-up loading as finished (there is no repository), so the server is ready.
        core.load_all().await;
        let (stop, stopped) = oneshot::channel::<()>();
        let listeners = Listeners { http: http_listener, grpc: Some(grpc_listener) };
        let shutdown = async move {
            let _ = stopped.await;
        };
        let task = tokio::spawn(serve(listeners, core, ServeOptions::default(), shutdown));
        TestServer { http, grpc, stop, task }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.http)
    }

    /// `127.0.0.1:<port>` (no scheme, to exercise the default).
    pub fn grpc_addr(&self) -> String {
        self.grpc.to_string()
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

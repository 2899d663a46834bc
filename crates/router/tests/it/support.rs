//! Replicas, a router and a plain HTTP client for the tests.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use oxserve_controller::metrics::RouterEvent;
use oxserve_controller::routes::{
    ComponentRoute, Replica as ReplicaRoute, RevisionTarget, RouteTable, ServiceRoute,
};
use oxserve_router::{Listeners, Router, RouterConfig};
use oxserve_server::core::{Core, CoreConfig};
use oxserve_server::repository::Repository;
use oxserve_server::serve::{ServeOptions, serve};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

/// A row the xgb-binary fixture accepts.
pub const ROW: [f32; 10] = [0.5, 1.5, -2.0, 3.25, 0.0, 1.0, 2.0, -1.0, 0.25, 4.0];

pub fn infer_body() -> String {
    format!(
        r#"{{"inputs":[{{"name":"input-0","shape":[1,10],"datatype":"FP32","data":{:?}}}]}}"#,
        ROW
    )
}

/// A model repository holding the xgb-binary fixture under the name `model`.
pub fn repository(model: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join(model);
    std::fs::create_dir(&m).unwrap();
    let fixture =
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/models/xgb-binary/model.json");
    std::fs::copy(fixture, m.join("model.json")).unwrap();
    dir
}

/// An `oxserve serve` replica in this process.
pub struct Replica {
    pub rest: String,
    pub grpc: String,
    pub core: Arc<Core>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _repo: tempfile::TempDir,
}

impl Replica {
    /// Serving `model` (loaded before the ports answer).
    pub async fn start(model: &str) -> Replica {
        let r = Replica::start_unloaded(model).await;
        r.core.load_all().await;
        r
    }

    /// Serving on its ports with `model` not loaded yet: the process is up, the model is not
    /// ready until `core.load_all()`.
    pub async fn start_unloaded(model: &str) -> Replica {
        let repo = repository(model);
        let core = Arc::new(Core::new(
            CoreConfig::default(),
            Some(Repository::open(repo.path()).unwrap()),
        ));
        let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let rest = format!("http://{}", http.local_addr().unwrap());
        let grpc_addr = grpc.local_addr().unwrap().to_string();
        let (tx, rx) = oneshot::channel();
        let c = core.clone();
        let task = tokio::spawn(async move {
            let listeners = oxserve_server::serve::Listeners { http, grpc: Some(grpc) };
            let options = ServeOptions {
                shutdown_timeout: std::time::Duration::from_secs(5),
                ..ServeOptions::default()
            };
            serve(listeners, c, options, async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Replica { rest, grpc: grpc_addr, core, stop: Some(tx), task: Some(task), _repo: repo }
    }

    pub fn route(&self, id: &str, ready: bool) -> ReplicaRoute {
        ReplicaRoute {
            id: id.into(),
            http: self.rest.clone(),
            grpc: Some(self.grpc.clone()),
            ready,
        }
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

pub fn target(revision: &str, weight: u32, replicas: Vec<ReplicaRoute>) -> RevisionTarget {
    RevisionTarget {
        revision: revision.into(),
        weight,
        tag: None,
        model: None,
        container_concurrency: 0,
        timeout_seconds: 300,
        replicas,
    }
}

pub fn service(name: &str, targets: Vec<RevisionTarget>) -> ServiceRoute {
    ServiceRoute {
        name: name.into(),
        namespace: "default".into(),
        hosts: vec![],
        models: vec![name.into()],
        entry: ComponentRoute { component: "predictor".into(), host: String::new(), targets },
        predictor: None,
    }
}

pub fn table(services: Vec<ServiceRoute>) -> RouteTable {
    RouteTable { services }
}

/// A router serving on loopback ports.
pub struct Gateway {
    pub http: SocketAddr,
    pub grpc: SocketAddr,
    pub router: Router,
    pub events: mpsc::Receiver<RouterEvent>,
    stop: Option<oneshot::Sender<()>>,
}

impl Gateway {
    pub async fn start(config: RouterConfig, routes: &RouteTable) -> Gateway {
        let (router, events) = Router::new(config);
        router.update(routes).unwrap();
        let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (http_addr, grpc_addr) = (http.local_addr().unwrap(), grpc.local_addr().unwrap());
        let (tx, rx) = oneshot::channel();
        let r = router.clone();
        tokio::spawn(async move {
            oxserve_router::serve(Listeners { http, grpc: Some(grpc) }, r, async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Gateway { http: http_addr, grpc: grpc_addr, router, events, stop: Some(tx) }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.http)
    }

    /// The next activation event (samples skipped).
    pub async fn activation(&mut self) -> (String, usize) {
        loop {
            match self.events.recv().await.expect("router events channel open") {
                RouterEvent::Activation { revision, queued, .. } => return (revision, queued),
                RouterEvent::Sample(_) => {}
            }
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// A plain pooled HTTP/1.1 client.
#[derive(Clone)]
pub struct Http(Client<HttpConnector, Full<Bytes>>);

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn revision(&self) -> &str {
        self.headers.get("x-oxserve-revision").map_or("", |v| v.to_str().unwrap())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn error(&self) -> String {
        let v: serde_json::Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("error body is not JSON ({e}): {}", self.text()));
        v["error"].as_str().unwrap_or_else(|| panic!("no error field: {v}")).to_owned()
    }
}

impl Default for Http {
    fn default() -> Self {
        Http(Client::builder(TokioExecutor::new()).pool_max_idle_per_host(2048).build_http())
    }
}

impl Http {
    pub async fn send(&self, method: &str, url: &str, host: Option<&str>, body: &str) -> Answer {
        let mut b = Request::builder().method(method).uri(url);
        if let Some(h) = host {
            b = b.header("host", h);
        }
        if !body.is_empty() {
            b = b.header("content-type", "application/json");
        }
        let response =
            self.0.request(b.body(Full::new(Bytes::from(body.to_owned()))).unwrap()).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Answer { status, headers, body }
    }

    pub async fn get(&self, url: &str, host: Option<&str>) -> Answer {
        self.send("GET", url, host, "").await
    }

    pub async fn post(&self, url: &str, host: Option<&str>, body: &str) -> Answer {
        self.send("POST", url, host, body).await
    }
}

/// Polls `cond` until it holds (the servers under test change state asynchronously).
pub async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..20_000 {
        if cond() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    panic!("gave up waiting for {what}");
}

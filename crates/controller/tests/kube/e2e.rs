//! The kind e2e suite (`cargo xtask kind e2e`, run by `.github/workflows/kind-e2e.yml`):
//! against the cluster of `OXSERVE_KUBE_CONTEXT` (default `kind-oxserve`) with
//! `kind/install` applied and the `oxserve:dev` image loaded. Each test works in its own
//! temporary namespace and deletes it; inference goes through the router's Service by a
//! `kubectl port-forward` this suite starts and stops by PID.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use oxserve_controller::kubernetes::reconcile::isvc_resource;
use serde_json::{Value, json};

fn context() -> String {
    std::env::var("OXSERVE_KUBE_CONTEXT").unwrap_or_else(|_| "kind-oxserve".into())
}

async fn client() -> Client {
    let options = KubeConfigOptions { context: Some(context()), ..KubeConfigOptions::default() };
    let config =
        Config::from_custom_kubeconfig(Kubeconfig::read().expect("a kubeconfig"), &options)
            .await
            .expect("the kind context");
    Client::try_from(config).expect("a client")
}

/// A temporary namespace, deleted on drop (in the background: deletion takes a while).
struct TempNamespace {
    name: String,
}

impl TempNamespace {
    async fn new(client: &Client, prefix: &str) -> TempNamespace {
        let name = format!("{prefix}-{}", std::process::id());
        let ns = Namespace {
            metadata: kube::api::ObjectMeta { name: Some(name.clone()), ..Default::default() },
            ..Namespace::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("namespace");
        TempNamespace { name }
    }
}

impl Drop for TempNamespace {
    fn drop(&mut self) {
        let _ = Command::new("kubectl")
            .args(["--context", &context(), "delete", "namespace", &self.name, "--wait=false"])
            .status();
    }
}

/// `kubectl port-forward` to the router's Service on a free local port, stopped on drop.
struct PortForward {
    child: Child,
    port: u16,
}

impl PortForward {
    fn router() -> PortForward {
        let mut child = Command::new("kubectl")
            .args([
                "--context",
                &context(),
                "-n",
                "oxserve-system",
                "port-forward",
                "svc/oxserve-router",
                ":80",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("kubectl port-forward");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // "Forwarding from 127.0.0.1:PORT -> 8080"
        let port = lines
            .find_map(|l| {
                let l = l.ok()?;
                l.strip_prefix("Forwarding from 127.0.0.1:")?.split(' ').next()?.parse().ok()
            })
            .expect("port-forward prints its port");
        std::thread::spawn(move || lines.for_each(drop));
        PortForward { child, port }
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn isvc(name: &str, ns: &str, predictor: Value) -> Value {
    json!({
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"predictor": predictor},
    })
}

fn onnx(model: &str) -> Value {
    json!({"model": {"modelFormat": {"name": "onnx"}, "storageUri": format!("file:///opt/oxserve/models/{model}")}})
}

async fn apply(client: &Client, ns: &str, object: &Value) {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), ns, &isvc_resource("serving.kserve.io"));
    let name = object["metadata"]["name"].as_str().unwrap();
    api.patch(name, &PatchParams::apply("oxserve-e2e").force(), &Patch::Apply(object))
        .await
        .expect("apply");
}

/// Waits until `check` holds for the InferenceService's status, or panics with the last one.
async fn wait_status(
    client: &Client,
    ns: &str,
    name: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), ns, &isvc_resource("serving.kserve.io"));
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut last = Value::Null;
    while Instant::now() < deadline {
        if let Ok(o) = api.get(name).await {
            last = o.data.get("status").cloned().unwrap_or(Value::Null);
            if check(&last) {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    panic!("{ns}/{name}: not {what} within 240 s; status: {last:#}");
}

fn ready(status: &Value) -> bool {
    status["conditions"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// One V2 inference through the router; the revision that answered.
async fn infer(http: &reqwest::Client, port: u16, name: &str, ns: &str) -> Result<String, String> {
    let body = json!({"inputs": [{"name": "float_input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]});
    let resp = http
        .post(format!("http://127.0.0.1:{port}/v2/models/{name}/infer"))
        .header("host", format!("{name}.{ns}.example.com"))
        .json(&body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let revision = resp
        .headers()
        .get("x-oxserve-revision")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(format!("{status}: {text}"));
    }
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
    assert!(v["outputs"].as_array().is_some_and(|o| !o.is_empty()), "{text}");
    Ok(revision)
}

/// Retries `infer` until it answers (the route reaches the router with the kubelet's sync).
async fn infer_eventually(http: &reqwest::Client, port: u16, name: &str, ns: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match infer(http, port, name, ns).await {
            Ok(r) => return r,
            Err(e) if Instant::now() > deadline => {
                panic!("{ns}/{name}: no inference within 120 s: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

#[tokio::test]
#[ignore = "needs a kind cluster"]
async fn sample_ready_inference_and_canary_split() {
    let client = client().await;
    let ns = TempNamespace::new(&client, "oxserve-e2e-canary").await;
    apply(&client, &ns.name, &isvc("iris", &ns.name, onnx("iris-lr"))).await;
    let status = wait_status(&client, &ns.name, "iris", "Ready", ready).await;
    assert_eq!(status["url"], format!("http://iris.{}.example.com", ns.name));
    let forward = PortForward::router();
    let http = reqwest::Client::new();
    let first = infer_eventually(&http, forward.port, "iris", &ns.name).await;
    assert_eq!(first, "iris-predictor-00001");

    let mut canary = onnx("iris-rf");
    canary["canaryTrafficPercent"] = json!(20);
    apply(&client, &ns.name, &isvc("iris", &ns.name, canary)).await;
    wait_status(&client, &ns.name, "iris", "split 80/20", |s| {
        let traffic = s.pointer("/components/predictor/traffic").and_then(Value::as_array);
        ready(s)
            && traffic.is_some_and(|t| {
                t.iter().any(|t| t["percent"] == 20 && t["latestRevision"] == true)
            })
    })
    .await;
    // The route table reaches the router with the kubelet's ConfigMap sync: wait for the
    // canary to answer once, then count a whole number of splitter cycles.
    let deadline = Instant::now() + Duration::from_secs(120);
    while infer_eventually(&http, forward.port, "iris", &ns.name).await != "iris-predictor-00002" {
        assert!(Instant::now() < deadline, "the canary never answered");
    }
    let mut canary_count = 0;
    for _ in 0..50 {
        if infer(&http, forward.port, "iris", &ns.name).await.unwrap() == "iris-predictor-00002" {
            canary_count += 1;
        }
    }
    assert!((5..=15).contains(&canary_count), "20 % of 50 requests, got {canary_count}");
}

#[tokio::test]
#[ignore = "needs a kind cluster"]
async fn scale_to_zero_and_back_through_the_activator() {
    let client = client().await;
    let ns = TempNamespace::new(&client, "oxserve-e2e-zero").await;
    let mut predictor = onnx("iris-lr");
    predictor["minReplicas"] = json!(0);
    let mut object = isvc("zero", &ns.name, predictor);
    object["metadata"]["annotations"] = json!({"autoscaling.knative.dev/window": "6s"});
    apply(&client, &ns.name, &object).await;
    wait_status(&client, &ns.name, "zero", "Ready", ready).await;
    let forward = PortForward::router();
    let http = reqwest::Client::new();
    infer_eventually(&http, forward.port, "zero", &ns.name).await;

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let replicas = |d: &Deployment| d.spec.replicas.unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let d = deployments.get("zero-predictor-00001").await.expect("the revision's Deployment");
        if replicas(&d) == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "never scaled to zero: {} replicas", replicas(&d));
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    // Scaled to zero the service stays Ready: the router holds requests and wakes it.
    let status = wait_status(&client, &ns.name, "zero", "Ready at zero", ready).await;
    assert!(ready(&status));
    let revision = infer_eventually(&http, forward.port, "zero", &ns.name).await;
    assert_eq!(revision, "zero-predictor-00001");
    let d = deployments.get("zero-predictor-00001").await.unwrap();
    assert!(replicas(&d) >= 1, "woken by the activator");
}

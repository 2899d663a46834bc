//! `oxserve up` with many models and components, end to end through the real binary:
//! TrainedModels loaded into the parent's replicas and routed by their own names (REST by
//! path and by the parent's host, gRPC by the request's model name), unloaded on delete,
//! refused and evicted (least recently used) within the predictor's memory budget; a
//! ServingRuntime whose container command runs the predictor; a transformer that reaches
//! its predictor through `--predictor_host` with both hops in the router's metrics; and
//! oxserve's explainer served by the predictor's replicas.

use std::path::{Path, PathBuf};
use std::time::Duration;

use oxserve_client::GrpcClient;
use oxserve_protocol::{InferRequest, Tensor, TensorData};
use serde_json::{Value, json};

use crate::support::{Up, fixtures};

const TM: &str = "serving.kserve.io/v1alpha1";
const ISVC: &str = "serving.kserve.io/v1beta1";
/// Ten features, as xgb-binary and xgb-regression take.
const ROW10: &str = r#"{"inputs":[{"name":"input-0","shape":[1,10],"datatype":"FP32","data":[1,2,3,4,5,6,7,8,9,0]}]}"#;

fn components_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/components.py")
}

/// The Python the component scripts run with: the test venv's when given, else `python3`.
fn python() -> String {
    std::env::var("OXSERVE_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

async fn put(http: &reqwest::Client, url: &str, body: String) -> Value {
    let r = http.put(url).body(body).send().await.unwrap();
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    assert!(status == 200 || status == 201, "PUT {url}: {status} {v}");
    v
}

/// Polls `url` until `cond` holds on its JSON (bounded, so a broken platform fails).
async fn wait_json(
    http: &reqwest::Client,
    url: &str,
    what: &str,
    cond: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let v: Value = match http.get(url).send().await {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        if cond(&v) {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "gave up waiting for {what}: {v:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Polls a request until its status is `want`; returns the last response's body.
async fn wait_status(what: &str, want: u16, send: impl Fn() -> reqwest::RequestBuilder) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let r = send().send().await.unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        if status == want {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting for {what} to answer {want}: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn condition<'a>(object: &'a Value, kind: &str) -> Option<&'a Value> {
    object.pointer("/status/conditions")?.as_array()?.iter().find(|c| c["type"] == kind)
}

fn is_true(object: &Value, kind: &str) -> bool {
    condition(object, kind).is_some_and(|c| c["status"] == "True")
}

fn ready(v: &Value) -> bool {
    is_true(v, "Ready")
}

fn trained_model(name: &str, dir: &Path, framework: &str, memory: &str) -> String {
    format!(
        "apiVersion: {TM}\nkind: TrainedModel\nmetadata:\n  name: {name}\nspec:\n  inferenceService: parent\n  model:\n    framework: {framework}\n    storageUri: file://{}\n    memory: {memory}\n",
        dir.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trained_models_load_route_by_name_unload_on_delete_and_fit_the_memory_budget() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(&dir.path().join("state"), None);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let models = fixtures().join("models");
    let parent = format!(
        "apiVersion: {ISVC}\nkind: InferenceService\nmetadata:\n  name: parent\nspec:\n  predictor:\n    model:\n      modelFormat:\n        name: xgboost\n      storageUri: file://{}\n      resources:\n        limits:\n          memory: 100Mi\n",
        models.join("xgb-binary").display()
    );
    put(&http, &up.object_url(ISVC, "inferenceservices", "parent"), parent).await;
    let tm_url = |n: &str| up.object_url(TM, "trainedmodels", n);
    put(
        &http,
        &tm_url("reg"),
        trained_model("reg", &models.join("xgb-regression"), "xgboost", "40Mi"),
    )
    .await;
    let tm = wait_json(&http, &tm_url("reg"), "TrainedModel reg ready", ready).await;
    assert_eq!(tm["status"]["url"], "http://parent.default.example.com/v1/models/reg", "{tm:#}");
    for c in ["InferenceServiceReady", "FrameworkSupported", "MemoryResourceAvailable"] {
        assert!(is_true(&tm, c), "{c}: {tm:#}");
    }

    // Routed by its own name: by path, through the parent's host, and over gRPC.
    let by_path = format!("{}/v2/models/reg/infer", up.rest);
    let r = http.post(&by_path).body(ROW10).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["x-oxserve-revision"], "parent-predictor-00001");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["model_name"], "reg", "{v}");
    let r = http
        .post(format!("{}/v2/models/reg/infer", up.rest))
        .header("host", "parent.default.example.com")
        .body(ROW10)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let grpc = GrpcClient::connect(&up.grpc).await.unwrap();
    let request = InferRequest {
        inputs: vec![Tensor::new("input-0", vec![1, 10], TensorData::Fp32(vec![0.5; 10]))],
        ..Default::default()
    };
    let answer = grpc.infer("reg", None, &request, false).await.unwrap();
    assert_eq!(answer.model_name, "reg");
    // The parent's own model still answers beside it.
    let r =
        http.post(format!("{}/v2/models/parent/infer", up.rest)).body(ROW10).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);

    // A model over the whole budget never loads.
    put(
        &http,
        &tm_url("huge"),
        trained_model("huge", &models.join("xgb-binary"), "xgboost", "200Mi"),
    )
    .await;
    let huge = wait_json(&http, &tm_url("huge"), "huge refused", |v| {
        condition(v, "MemoryResourceAvailable").is_some_and(|c| c["status"] == "False")
    })
    .await;
    let c = condition(&huge, "MemoryResourceAvailable").unwrap();
    assert_eq!(c["reason"], "MemoryResourceUnavailable", "{huge:#}");
    assert!(!ready(&huge), "{huge:#}");
    // A framework the server does not serve.
    put(&http, &tm_url("tf"), trained_model("tf", &models.join("xgb-binary"), "tensorflow", "1Mi"))
        .await;
    let tf = wait_json(&http, &tm_url("tf"), "tf unsupported", |v| {
        condition(v, "FrameworkSupported").is_some_and(|c| c["status"] == "False")
    })
    .await;
    assert!(!ready(&tf), "{tf:#}");

    // Budget 100Mi: reg (used) + bin (applied later) fit; a third evicts the least recently
    // used, which is bin once reg serves another request.
    put(&http, &tm_url("bin"), trained_model("bin", &models.join("xgb-binary"), "xgboost", "40Mi"))
        .await;
    wait_json(&http, &tm_url("bin"), "bin ready", ready).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let r = http.post(&by_path).body(ROW10).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    tokio::time::sleep(Duration::from_millis(20)).await;
    put(
        &http,
        &tm_url("third"),
        trained_model("third", &models.join("xgb-binary"), "xgboost", "40Mi"),
    )
    .await;
    wait_json(&http, &tm_url("third"), "third ready", ready).await;
    let bin = wait_json(&http, &tm_url("bin"), "bin evicted", |v| {
        condition(v, "MemoryResourceAvailable").is_some_and(|c| c["reason"] == "Evicted")
    })
    .await;
    assert!(!ready(&bin), "{bin:#}");
    let reg = wait_json(&http, &tm_url("reg"), "reg still ready", ready).await;
    assert!(is_true(&reg, "MemoryResourceAvailable"), "{reg:#}");
    // Evicted means unloaded from the replica: it answers 503 (unloaded) for it.
    wait_status("evicted bin", 503, || {
        http.post(format!("{}/v2/models/bin/infer", up.rest)).body(ROW10)
    })
    .await;

    // `oxserve get tm` lists them with their state.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_oxserve"))
        .args(["get", "tm", "--server", &up.api])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let line = text.lines().find(|l| l.starts_with("reg ")).unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains("parent") && line.contains("/v1/models/reg") && line.contains("True"),
        "{text}"
    );

    // The status page lists them.
    let page = http.get(format!("{}/", up.api)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("<h2>TrainedModels</h2>") && page.contains("default/reg"), "{page}");

    // Deleted: unloaded from the replica (503 through the parent's host) and no longer
    // routed by its name (404).
    let r = http.delete(tm_url("reg")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    wait_status("deleted reg by host", 503, || {
        http.post(format!("{}/v2/models/reg/infer", up.rest))
            .header("host", "parent.default.example.com")
            .body(ROW10)
    })
    .await;
    let body = wait_status("deleted reg by path", 404, || http.post(&by_path).body(ROW10)).await;
    assert!(body["error"].as_str().unwrap_or_default().contains("reg"), "{body}");
    let r = http.get(tm_url("reg")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert!(up.stop(), "oxserve up did not exit 0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serving_runtime_command_a_transformer_chain_and_the_explainer_component() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(&dir.path().join("state"), None);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let script = components_script();
    let py = python();

    // A ServingRuntime whose container command runs the predictor locally.
    let model_dir = dir.path().join("echo-model");
    std::fs::create_dir_all(&model_dir).unwrap();
    std::fs::write(model_dir.join("factor.txt"), "3").unwrap();
    let runtime = json!({
        "apiVersion": "serving.kserve.io/v1alpha1", "kind": "ServingRuntime",
        "metadata": {"name": "py-echo"},
        "spec": {
            "supportedModelFormats": [{"name": "echo", "autoSelect": true}],
            "containers": [{"name": "kserve-container", "image": "example/echo:1",
                "command": [py, script.display().to_string(), "predictor"],
                "args": ["/mnt/models", "--model_name={{.Name}}"]}]
        }
    });
    put(&http, &up.object_url(TM, "servingruntimes", "py-echo"), runtime.to_string()).await;
    let listed: Value = http
        .get(format!(
            "{}/apis/serving.kserve.io/v1alpha1/namespaces/default/servingruntimes",
            up.api
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["kind"], "ServingRuntimeList");
    assert_eq!(listed["items"][0]["metadata"]["name"], "py-echo", "{listed:#}");
    // Cluster-scoped runtimes at their own path.
    let cluster =
        format!("{}/apis/serving.kserve.io/v1alpha1/clusterservingruntimes/other", up.api);
    let mut crt = runtime.clone();
    crt["kind"] = "ClusterServingRuntime".into();
    crt["metadata"]["name"] = "other".into();
    crt["spec"]["supportedModelFormats"][0]["name"] = "other".into();
    put(&http, &cluster, crt.to_string()).await;
    let got: Value = http.get(&cluster).send().await.unwrap().json().await.unwrap();
    assert_eq!(got["kind"], "ClusterServingRuntime", "{got:#}");
    assert!(got["metadata"].get("namespace").is_none(), "{got:#}");
    let r = http
        .get(format!(
            "{}/apis/serving.kserve.io/v1alpha1/namespaces/default/clusterservingruntimes/other",
            up.api
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(http.delete(&cluster).send().await.unwrap().status().as_u16(), 200);

    let custom = format!(
        "apiVersion: {ISVC}\nkind: InferenceService\nmetadata:\n  name: custom\nspec:\n  predictor:\n    model:\n      modelFormat:\n        name: echo\n      storageUri: file://{}\n",
        model_dir.display()
    );
    put(&http, &up.object_url(ISVC, "inferenceservices", "custom"), custom).await;

    // A transformer in front of the built-in server.
    let chain = json!({
        "apiVersion": ISVC, "kind": "InferenceService", "metadata": {"name": "chain"},
        "spec": {
            "predictor": {"model": {"modelFormat": {"name": "xgboost"},
                "storageUri": format!("file://{}", fixtures().join("models/xgb-binary").display())}},
            "transformer": {"containers": [{"name": "kserve-container", "image": "example/t:1",
                "command": [py, script.display().to_string(), "transformer"],
                "args": ["--model_name", "chain"]}]}
        }
    });
    put(&http, &up.object_url(ISVC, "inferenceservices", "chain"), chain.to_string()).await;

    // oxserve's own explainer, served by the predictor's replicas.
    let bg = dir.path().join("background");
    std::fs::create_dir_all(&bg).unwrap();
    std::fs::write(bg.join("rows.json"), "[[0,0,0,0,0,0,0,0,0,0],[1,1,1,1,1,1,1,1,1,1]]").unwrap();
    let explained = json!({
        "apiVersion": "serving.oxserve.dev/v1beta1", "kind": "InferenceService",
        "metadata": {"name": "explained"},
        "spec": {
            "predictor": {"model": {"modelFormat": {"name": "xgboost"},
                "storageUri": format!("file://{}", fixtures().join("models/xgb-binary").display())}},
            "explainer": {"type": "kernelshap",
                "config": {"background": "/mnt/models/bg/rows.json", "nsamples": "64", "seed": "1"},
                "storageUris": [{"uri": format!("file://{}", bg.display()), "mountPath": "/mnt/models/bg"}]}
        }
    });
    let explained_url = format!(
        "{}/apis/serving.oxserve.dev/v1beta1/namespaces/default/inferenceservices/explained",
        up.api
    );
    put(&http, &explained_url, explained.to_string()).await;

    for name in ["custom", "chain"] {
        wait_json(&http, &up.object_url(ISVC, "inferenceservices", name), name, ready).await;
    }
    wait_json(&http, &explained_url, "explained", ready).await;

    // The runtime's process got the model directory for /mnt/models and the name.
    let r = http
        .post(format!("{}/v2/models/custom/infer", up.rest))
        .body(r#"{"inputs":[{"name":"x","shape":[2],"datatype":"FP64","data":[1,2]}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["x-oxserve-revision"], "custom-predictor-00001");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["outputs"][0]["data"], json!([3.0, 6.0]), "{v}");

    // The chain: the transformer renames the input and calls its predictor host; both hops
    // go through the router.
    let r = http
        .post(format!("{}/v2/models/chain/infer", up.rest))
        .header("host", "chain.default.example.com")
        .body(ROW10.replace("input-0", "raw"))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let revision = r.headers().get("x-oxserve-revision").cloned();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{v}");
    assert_eq!(revision.unwrap(), "chain-transformer-00001");
    assert_eq!(v["parameters"]["transformed"], true, "{v}");
    assert_eq!(v["model_name"], "chain", "{v}");
    let metrics =
        http.get(format!("{}/metrics", up.rest)).send().await.unwrap().text().await.unwrap();
    for hop in ["chain-transformer-00001", "chain-predictor-00001"] {
        let counted = metrics.lines().any(|l| {
            l.starts_with("oxserve_router_requests_total")
                && l.contains(&format!("revision=\"{hop}\""))
                && l.rsplit(' ')
                    .next()
                    .and_then(|n| n.parse::<f64>().ok())
                    .is_some_and(|n| n >= 1.0)
        });
        assert!(counted, "{hop} not counted in:\n{metrics}");
    }

    // The explainer: no component of its own; the predictor's settings carry it and its
    // replicas answer :explain through the service host.
    let revs: Vec<Value> =
        http.get(format!("{explained_url}/revisions")).send().await.unwrap().json().await.unwrap();
    let names: Vec<&str> = revs.iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(names, ["explained-predictor-00001"], "{revs:#?}");
    let settings: Value = serde_json::from_slice(
        &std::fs::read(
            dir.path().join("state/revisions/explained-predictor-00001/model/model-settings.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        settings["explainer"],
        json!({"type": "kernelshap", "background": {"file": "bg/rows.json"}, "nsamples": 64, "seed": 1})
    );
    let r = http
        .post(format!("{}/v1/models/explained:explain", up.rest))
        .header("host", "explained.default.example.com")
        .body(r#"{"instances":[[1,2,3,4,5,6,7,8,9,0]]}"#)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    assert_eq!(r.headers()["x-oxserve-revision"], "explained-predictor-00001");
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{v}");
    // An XGBoost model explains itself with TreeSHAP unless its settings say otherwise.
    assert_eq!(v["explanations"][0]["explainer"], "kernelshap", "{v}");
    assert_eq!(v["explanations"][0]["attributions"][0].as_array().map(Vec::len), Some(10), "{v}");
    assert!(up.stop(), "oxserve up did not exit 0");
}

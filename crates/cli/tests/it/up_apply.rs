//! `oxserve apply` against a real `oxserve up`: kubectl's created/configured/unchanged,
//! `--wait` to Ready, to a failed revision's reason and to its timeout; both API groups
//! inferred over REST V1 and V2 and gRPC by Host header; the logger's CloudEvents received by
//! a real HTTP sink with the `inferenceservicename`, `namespace`, `component` and `endpoint`
//! extensions; a replica killed with `kill -9` under load; ServingRuntimes namespaced and
//! cluster-wide; a pull from the S3-compatible test server (ignored unless `cargo xtask
//! test` provides it).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oxserve_client::GrpcClient;
use oxserve_protocol::InferRequest;
use serde_json::Value;

use crate::support::fixtures;

/// A running `oxserve up` on ephemeral ports, stopped with SIGTERM when dropped.
struct Up {
    child: Child,
    state: PathBuf,
    rest: String,
    grpc: String,
}

impl Up {
    fn start(state: &Path, env: &[(&str, &str)]) -> Up {
        Up::start_in(None, state, env)
    }

    /// `oxserve up` run in `cwd` (where a relative `state` is resolved).
    fn start_in(cwd: Option<&Path>, state: &Path, env: &[(&str, &str)]) -> Up {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_oxserve"));
        if let Some(cwd) = cwd {
            cmd.current_dir(cwd);
        }
        cmd.arg("up")
            .arg("--state-dir")
            .arg(state)
            .args(["--http-port", "0", "--grpc-port", "0", "--api-port", "0"])
            .env("OXSERVE_LOG", "warn")
            .stdout(Stdio::piped());
        let ort = fixtures().join("../.oxserve/lib/libonnxruntime.so");
        if std::env::var_os("OXSERVE_ONNXRUNTIME_LIB").is_none() && ort.exists() {
            cmd.env("OXSERVE_ONNXRUNTIME_LIB", ort);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn oxserve up");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = lines.next().expect("oxserve up exited before its line").unwrap();
        let field = |k: &str| {
            line.split_whitespace()
                .find_map(|f| f.strip_prefix(k))
                .unwrap_or_else(|| panic!("no {k} in {line:?}"))
                .to_owned()
        };
        let (rest, grpc) = (field("rest="), field("grpc="));
        assert!(field("api=").starts_with("http://127.0.0.1:"), "{line}");
        std::thread::spawn(move || for _ in lines {});
        Up { child, state: state.to_owned(), rest, grpc }
    }

    /// `oxserve ARGS` finding the api through the state dir (`STATE/api`), `stdin` piped in.
    fn oxserve(&self, args: &[&str], stdin: &str) -> Outcome {
        self.oxserve_in(None, args, stdin)
    }

    /// [`Up::oxserve`] run in `cwd` (where a relative state dir is resolved).
    fn oxserve_in(&self, cwd: Option<&Path>, args: &[&str], stdin: &str) -> Outcome {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_oxserve"));
        if let Some(cwd) = cwd {
            cmd.current_dir(cwd);
        }
        let mut child = cmd
            .args(args)
            .arg("--state-dir")
            .arg(&self.state)
            .env_remove("OXSERVE_SERVER")
            .env_remove("OXSERVE_NAMESPACE")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn oxserve");
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        Outcome::from(child.wait_with_output().unwrap())
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            signal(self.child.id(), "-TERM");
            let _ = self.child.wait();
        }
    }
}

/// Exit code, stdout and stderr of one command.
struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl From<Output> for Outcome {
    fn from(o: Output) -> Outcome {
        Outcome {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {:?}\n--- stdout\n{}--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
}

/// The live replica processes (`oxserve serve` of `revision`) among the children of `pid`.
fn replicas(pid: u32, revision: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else { continue };
        let Some((_, rest)) = stat.rsplit_once(')') else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.first() == Some(&"Z") || fields.get(1) != Some(&pid.to_string().as_str()) {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{child}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(" serve ") && cmdline.contains(&format!("/{revision}/")) {
            out.push(child);
        }
    }
    out
}

/// An InferenceService manifest: `group` `serving.kserve.io` uses `model.modelFormat`,
/// `serving.kubeflow.org` the KFServing-style framework key.
fn isvc(group: &str, name: &str, format: &str, uri: &str, extra: &str) -> String {
    let model = if group == "serving.kubeflow.org" {
        format!("    {format}:\n      storageUri: {uri}\n")
    } else {
        format!("    model:\n      modelFormat:\n        name: {format}\n      storageUri: {uri}\n")
    };
    format!(
        "apiVersion: {group}/v1beta1\nkind: InferenceService\nmetadata:\n  name: {name}\nspec:\n  predictor:\n{extra}{model}"
    )
}

fn file_uri(dir: &Path) -> String {
    format!("file://{}", dir.display())
}

const XGB_V2: &str = r#"{"inputs":[{"name":"input-0","shape":[1,10],"datatype":"FP32","data":[1,2,3,4,5,6,7,8,9,0]}]}"#;
const XGB_V1: &str = r#"{"instances":[[1,2,3,4,5,6,7,8,9,0]]}"#;
const IRIS_V2: &str = r#"{"inputs":[{"name":"float_input","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}"#;
const IRIS_V1: &str = r#"{"instances":[[5.1,3.5,1.4,0.2]]}"#;

fn host(name: &str) -> String {
    format!("{name}.default.example.com")
}

/// POSTs `body` to the router by Host header; status, revision header, JSON body.
async fn infer(
    http: &reqwest::Client,
    up: &Up,
    name: &str,
    path: &str,
    body: &str,
) -> (u16, String, Value) {
    let r = http
        .post(format!("{}{path}", up.rest))
        .header("host", host(name))
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let revision = r
        .headers()
        .get("x-oxserve-revision")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, revision, r.json().await.unwrap_or(Value::Null))
}

/// V2 gRPC through the router with `:authority` set to the service's host.
async fn grpc_by_host(up: &Up, name: &str, body: &str) -> oxserve_protocol::InferResponse {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{}", up.grpc))
        .unwrap()
        .origin(format!("http://{}", host(name)).parse().unwrap());
    let client = GrpcClient::from_channel(endpoint.connect().await.unwrap());
    let request: InferRequest =
        oxserve_protocol::rest::decode_request(body.as_bytes(), None).unwrap();
    client.infer(name, None, &request, false).await.unwrap_or_else(|e| panic!("gRPC {name}: {e}"))
}

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_both_groups_wait_and_infer_by_host_then_configured_unchanged_and_failures() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(&dir.path().join("state"), &[]);
    let http = reqwest::Client::new();
    let models = fixtures().join("models");
    let manifest = format!(
        "{}---\n{}",
        isvc("serving.kserve.io", "iris", "onnx", &file_uri(&models.join("iris-lr")), ""),
        isvc("serving.kubeflow.org", "xgb", "xgboost", &file_uri(&models.join("xgb-binary")), "")
    );
    let file = dir.path().join("services.yaml");
    std::fs::write(&file, &manifest).unwrap();
    let file = file.to_str().unwrap();

    let out = up.oxserve(&["apply", "-f", file, "--wait"], "");
    assert_eq!(out.code, Some(0), "{out:?}");
    let printed = lines(&out.stdout);
    assert_eq!(
        printed[..2],
        [
            "inferenceservice.serving.kserve.io/iris created",
            "inferenceservice.serving.kubeflow.org/xgb created"
        ],
        "{out:?}"
    );
    for name in ["iris", "xgb"] {
        assert!(
            printed.iter().any(|l| l.starts_with(&format!("{name}: ready in "))),
            "a ready line for {name}: {out:?}"
        );
    }

    // Both groups over REST V2 and V1 and over gRPC, picked by the Host header.
    for (name, v2, v1) in [("iris", IRIS_V2, IRIS_V1), ("xgb", XGB_V2, XGB_V1)] {
        let (status, revision, body) =
            infer(&http, &up, name, &format!("/v2/models/{name}/infer"), v2).await;
        assert_eq!(status, 200, "{name} V2: {body}");
        assert_eq!(revision, format!("{name}-predictor-00001"));
        assert_eq!(body["model_name"], name);
        assert!(!body["outputs"].as_array().unwrap().is_empty(), "{body}");
        let (status, _, body) =
            infer(&http, &up, name, &format!("/v1/models/{name}:predict"), v1).await;
        assert_eq!(status, 200, "{name} V1: {body}");
        assert_eq!(body["predictions"].as_array().map(Vec::len), Some(1), "{body}");
        let response = grpc_by_host(&up, name, v2).await;
        assert_eq!(response.model_name, name);
        assert!(!response.outputs.is_empty());
    }
    // The host decides: iris's path sent with xgb's host reaches xgb, which has no iris.
    let (status, revision, _) = infer(&http, &up, "xgb", "/v2/models/iris/infer", IRIS_V2).await;
    assert_eq!((status, revision.as_str()), (404, "xgb-predictor-00001"));

    // The same manifest again, from stdin: nothing changes.
    let out = up.oxserve(&["apply", "-f", "-"], &manifest);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(
        out.stdout,
        "inferenceservice.serving.kserve.io/iris unchanged\ninferenceservice.serving.kubeflow.org/xgb unchanged\n"
    );

    // A new model for iris: configured, a second revision that takes the traffic.
    let changed = manifest.replace("iris-lr", "iris-rf");
    let out = up.oxserve(&["apply", "-f", "-", "--wait"], &changed);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(
        lines(&out.stdout)[..2],
        [
            "inferenceservice.serving.kserve.io/iris configured",
            "inferenceservice.serving.kubeflow.org/xgb unchanged"
        ],
        "{out:?}"
    );
    let (status, revision, _) = infer(&http, &up, "iris", "/v2/models/iris/infer", IRIS_V2).await;
    assert_eq!((status, revision.as_str()), (200, "iris-predictor-00002"));

    // A URI with nothing behind it: --wait exits 1 with the revision's reason.
    let broken = isvc("serving.kserve.io", "broken", "xgboost", "file:///nonexistent/model", "");
    let out = up.oxserve(&["apply", "-f", "-", "--wait"], &broken);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stdout.starts_with("inferenceservice.serving.kserve.io/broken created\n"),
        "{out:?}"
    );
    assert!(
        out.stderr.contains("error: broken: revision broken-predictor-00001 failed: ")
            && out.stderr.contains("/nonexistent/model does not exist"),
        "{out:?}"
    );

    // A timeout shorter than any load: exit 1 with what it was doing.
    let slow =
        isvc("serving.kserve.io", "slow", "xgboost", &file_uri(&models.join("xgb-regression")), "");
    let out = up.oxserve(&["apply", "-f", "-", "--wait", "--timeout", "1ms"], &slow);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("error: slow: not ready after 1ms (last: "), "{out:?}");

    // An invalid document sends nothing, not even the valid one before it.
    let bad = format!(
        "{}---\n{}",
        isvc("serving.kserve.io", "first", "xgboost", &file_uri(&models.join("xgb-binary")), ""),
        isvc(
            "serving.kserve.io",
            "second",
            "xgboost",
            "file:///m",
            "    canaryTrafficPercent: 150\n"
        )
    );
    let out = up.oxserve(&["apply", "-f", "-"], &bad);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(
        out.stderr,
        "<stdin>:doc 2: spec.predictor.canaryTrafficPercent: must be between 0 and 100, got 150\n"
    );
    let out = up.oxserve(&["get", "isvc", "first"], "");
    assert_ne!(out.code, Some(0), "first was not applied: {out:?}");
    assert!(out.stderr.contains("not found"), "{out:?}");
}

/// The CloudEvents headers of every event the sink received.
type Events = Arc<Mutex<Vec<axum::http::HeaderMap>>>;

/// A CloudEvents sink on an ephemeral loopback port; every POST is recorded.
async fn sink() -> (String, Events) {
    let events: Events = Arc::default();
    let recorded = events.clone();
    let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
        let recorded = recorded.clone();
        async move {
            recorded.lock().unwrap().push(headers);
            axum::http::StatusCode::ACCEPTED
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, events)
}

fn ce<'a>(h: &'a axum::http::HeaderMap, key: &str) -> &'a str {
    h.get(key).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// Waits (bounded) until `cond` holds over the recorded events.
async fn until_events(
    events: &Events,
    what: &str,
    cond: impl Fn(&[axum::http::HeaderMap]) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if cond(&events.lock().unwrap()) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "no {what}: {:#?}", events.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logger_events_reach_a_real_sink_with_the_service_component_and_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(&dir.path().join("state"), &[]);
    let http = reqwest::Client::new();
    let (url, events) = sink().await;
    let v1 = fixtures().join("models/xgb-binary");
    let v2 = dir.path().join("v2");
    std::fs::create_dir_all(&v2).unwrap();
    std::fs::copy(v1.join("model.json"), v2.join("model.json")).unwrap();
    let logger = format!("    logger:\n      url: {url}\n      mode: all\n");
    let out = up.oxserve(
        &["apply", "-f", "-", "--wait"],
        &isvc("serving.kserve.io", "logged", "xgboost", &file_uri(&v1), &logger),
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    let (status, _, body) = infer(&http, &up, "logged", "/v2/models/logged/infer", XGB_V2).await;
    assert_eq!(status, 200, "{body}");
    until_events(&events, "request and response event", |e| e.len() >= 2).await;
    {
        let seen = events.lock().unwrap();
        let mut types: Vec<&str> = seen.iter().map(|h| ce(h, "ce-type")).collect();
        types.sort();
        assert_eq!(
            types,
            ["org.kubeflow.serving.inference.request", "org.kubeflow.serving.inference.response"]
        );
        for h in seen.iter() {
            assert_eq!(ce(h, "ce-specversion"), "1.0");
            assert_eq!(ce(h, "ce-inferenceservicename"), "logged");
            assert_eq!(ce(h, "ce-namespace"), "default");
            assert_eq!(ce(h, "ce-component"), "predictor");
            assert_eq!(ce(h, "ce-endpoint"), "default");
        }
        assert_eq!(
            ce(&seen[0], "ce-id"),
            ce(&seen[1], "ce-id"),
            "one id per request/response pair"
        );
    }

    // A canary's replicas log as the canary endpoint.
    let canary = format!("{logger}    canaryTrafficPercent: 50\n");
    let out = up.oxserve(
        &["apply", "-f", "-", "--wait"],
        &isvc("serving.kserve.io", "logged", "xgboost", &file_uri(&v2), &canary),
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    let mut canary_answers = 0;
    for _ in 0..40 {
        let (status, revision, _) =
            infer(&http, &up, "logged", "/v2/models/logged/infer", XGB_V2).await;
        assert_eq!(status, 200);
        canary_answers += usize::from(revision == "logged-predictor-00002");
    }
    assert!(canary_answers > 0, "the canary answered some of 40 requests at 50 %");
    until_events(&events, "a canary event", |e| e.iter().any(|h| ce(h, "ce-endpoint") == "canary"))
        .await;
    let seen = events.lock().unwrap();
    assert!(seen.iter().all(|h| ce(h, "ce-inferenceservicename") == "logged"));
    assert!(seen.iter().filter(|h| ce(h, "ce-endpoint") == "default").count() > 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_under_load_fails_at_most_the_requests_in_flight() {
    const WORKERS: usize = 4;
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(&dir.path().join("state"), &[]);
    let model = fixtures().join("models/xgb-binary");
    let out = up.oxserve(
        &["apply", "-f", "-", "--wait"],
        &isvc("serving.kserve.io", "steady", "xgboost", &file_uri(&model), ""),
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    let revision = "steady-predictor-00001";
    let before = replicas(up.child.id(), revision);
    assert_eq!(before.len(), 1, "one replica: {before:?}");

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let results: Arc<Mutex<Vec<bool>>> = Arc::default();
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let (stop, results) = (stop.clone(), results.clone());
        let url = format!("{}/v2/models/steady/infer", up.rest);
        workers.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let ok = match http
                    .post(&url)
                    .header("host", host("steady"))
                    .body(XGB_V2)
                    .send()
                    .await
                {
                    Ok(r) => r.status().is_success(),
                    Err(_) => false,
                };
                results.lock().unwrap().push(ok);
            }
        }));
    }
    let count = |results: &Arc<Mutex<Vec<bool>>>| results.lock().unwrap().len();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while count(&results) < 50 {
        assert!(tokio::time::Instant::now() < deadline, "no load got through");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let killed_at = count(&results);
    signal(before[0], "-KILL");
    // The replica comes back as a new process and the load keeps being answered.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let now = replicas(up.child.id(), revision);
        let answered_since =
            results.lock().unwrap()[killed_at..].iter().rev().take(50).all(|ok| *ok);
        if now.len() == 1
            && now[0] != before[0]
            && count(&results) > killed_at + 100
            && answered_since
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no recovery: replicas {now:?}, {} requests since the kill",
            count(&results) - killed_at
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let results = results.lock().unwrap();
    let failed = results.iter().filter(|ok| !**ok).count();
    assert!(
        failed <= WORKERS,
        "at most the {WORKERS} requests in flight fail, {failed} of {} failed",
        results.len()
    );
    assert!(
        results[..killed_at].iter().all(|ok| *ok),
        "every request before the kill was answered"
    );
}

/// The S3-compatible server the agent's tests use (moto, from `cargo xtask test`'s venv);
/// the module is named so that step's `s3::` filter runs it.
mod s3 {
    use super::*;

    /// moto's threaded server on an ephemeral port; it prints the port and stops when its
    /// stdin closes.
    const MOTO: &str = r#"
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()
server.stop()
"#;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs the S3 test server venv; run by cargo xtask test"]
    async fn a_model_pulled_from_s3_serves_after_wait() {
        let python = std::env::var("OXSERVE_TEST_S3_PYTHON")
            .expect("OXSERVE_TEST_S3_PYTHON is not set: run with `cargo xtask test`");
        let mut moto = Command::new(python)
            .args(["-c", MOTO])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting the S3 test server");
        let mut port = String::new();
        BufReader::new(moto.stdout.take().unwrap()).read_line(&mut port).unwrap();
        let endpoint = format!("http://127.0.0.1:{}", port.trim());
        let http = reqwest::Client::new();
        // moto takes unsigned requests.
        let r = http.put(format!("{endpoint}/models")).send().await.unwrap();
        assert!(r.status().is_success(), "creating the bucket: {}", r.status());
        let model = std::fs::read(fixtures().join("models/xgb-binary/model.json")).unwrap();
        let r = http
            .put(format!("{endpoint}/models/xgb/v1/model.json"))
            .body(model)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "uploading: {}", r.status());

        let dir = tempfile::tempdir().unwrap();
        let up = Up::start(
            &dir.path().join("state"),
            &[
                ("AWS_ENDPOINT_URL", endpoint.as_str()),
                ("AWS_ACCESS_KEY_ID", "testing"),
                ("AWS_SECRET_ACCESS_KEY", "testing"),
                ("AWS_REGION", "us-east-1"),
            ],
        );
        let out = up.oxserve(
            &["apply", "-f", "-", "--wait", "--timeout", "120s"],
            &isvc("serving.kserve.io", "pulled", "xgboost", "s3://models/xgb/v1", ""),
        );
        assert_eq!(out.code, Some(0), "{out:?}");
        assert!(out.stdout.contains("pulled: ready in "), "{out:?}");
        let cached =
            std::fs::read_dir(dir.path().join("state/cache")).map(|d| d.count()).unwrap_or(0);
        assert!(cached > 0, "the model is in the state dir's cache");
        let (status, revision, body) =
            infer(&http, &up, "pulled", "/v2/models/pulled/infer", XGB_V2).await;
        assert_eq!((status, revision.as_str()), (200, "pulled-predictor-00001"), "{body}");

        // A key with nothing under it fails the revision with the URI, once.
        let out = up.oxserve(
            &["apply", "-f", "-", "--wait", "--timeout", "120s"],
            &isvc("serving.kserve.io", "missing", "xgboost", "s3://models/nothing-here", ""),
        );
        assert_eq!(out.code, Some(1), "{out:?}");
        assert!(out.stderr.contains("s3://models/nothing-here"), "{out:?}");
        drop(moto.stdin.take());
        let _ = moto.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serving_runtimes_are_applied_namespaced_and_cluster_wide() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(&dir.path().join("state"), &[]);
    let runtime = |kind: &str, name: &str, format: &str| {
        format!(
            "apiVersion: serving.kserve.io/v1alpha1\nkind: {kind}\nmetadata:\n  name: {name}\nspec:\n  supportedModelFormats:\n    - name: {format}\n  containers:\n    - name: kserve-container\n      image: example/server:latest\n      command: [python3, -m, my_server]\n"
        )
    };
    let manifest = format!(
        "{}---\n{}",
        runtime("ServingRuntime", "mine", "custom"),
        runtime("ClusterServingRuntime", "shared", "custom2")
    );
    let out = up.oxserve(&["apply", "-f", "-", "--wait"], &manifest);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(
        out.stdout,
        "servingruntime.serving.kserve.io/mine created\nclusterservingruntime.serving.kserve.io/shared created\n"
    );
    let out = up.oxserve(&["apply", "-f", "-"], &manifest.replace("my_server", "other_server"));
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(
        out.stdout,
        "servingruntime.serving.kserve.io/mine configured\nclusterservingruntime.serving.kserve.io/shared configured\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relative_state_dir_serves_like_an_absolute_one() {
    let dir = tempfile::tempdir().unwrap();
    let relative = Path::new(".oxserve/state");
    let up = Up::start_in(Some(dir.path()), relative, &[]);
    let manifest = isvc(
        "serving.kserve.io",
        "xgb",
        "xgboost",
        &file_uri(&fixtures().join("models/xgb-binary")),
        "",
    );
    let out = up.oxserve_in(Some(dir.path()), &["apply", "-f", "-", "--wait"], &manifest);
    assert_eq!(out.code, Some(0), "{out:?}");
    let http = reqwest::Client::new();
    let (status, revision, body) = infer(&http, &up, "xgb", "/v2/models/xgb/infer", XGB_V2).await;
    assert_eq!((status, revision.as_str()), (200, "xgb-predictor-00001"), "{body}");
    assert!(dir.path().join(".oxserve/state/api").exists(), "the state dir is under the cwd");
}

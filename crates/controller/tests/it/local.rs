//! The local backend with real `oxserve serve` replicas: readiness, inference on each
//! replica, restarts after `kill -9`, failures with their reasons, scale to zero, pulls over
//! HTTP through the cache, custom containers, TrainedModels loaded into every replica (one
//! started later too) and unloaded, and replicas dying with their parent.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use oxserve_controller::backend::{
    Backend, BatcherSpec, ModelAssignment, ModelSource, RevisionPhase, RevisionSpec,
    RevisionStatus, Runner,
};
use oxserve_controller::local::state::StateStore;
use oxserve_controller::local::{LocalBackend, LocalConfig};
use serde_json::{Value, json};

use crate::support::{fixtures, oxserve_bin, pid_alive};

/// A backend over a fresh state dir, with quick restarts.
fn backend(state: &Path) -> (StateStore, LocalBackend) {
    let store = StateStore::open(state).unwrap();
    let mut config = LocalConfig::new(oxserve_bin());
    config.supervisor.backoff_initial = Duration::from_millis(50);
    config.supervisor.stop_grace = Duration::from_secs(5);
    config.supervisor.ready_timeout = Duration::from_secs(60);
    let backend = LocalBackend::new(&store, config);
    (store, backend)
}

fn server_spec(revision: &str, model_name: &str, uri: &str, args: &[&str]) -> RevisionSpec {
    RevisionSpec {
        revision: revision.to_owned(),
        service: model_name.to_owned(),
        namespace: "default".to_owned(),
        component: "predictor".to_owned(),
        model_name: model_name.to_owned(),
        runner: Runner::Server { args: args.iter().map(|a| a.to_string()).collect() },
        sources: vec![ModelSource { uri: uri.to_owned(), path: String::new() }],
        env: Vec::new(),
        batcher: None,
        logger: None,
        explainer: None,
    }
}

/// Waits (on the backend's change feed, polling as a fallback) until `cond` holds.
async fn wait_for(
    backend: &LocalBackend,
    revision: &str,
    what: &str,
    cond: impl Fn(&RevisionStatus) -> bool,
) -> RevisionStatus {
    let mut changes = backend.changes();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let status = backend.revision_status(revision).await.unwrap();
        if cond(&status) {
            return status;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("{revision}: gave up waiting for {what}; status: {status:#?}");
        }
        tokio::select! {
            _ = changes.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

const XGB_ROW: &str = r#"{"inputs":[{"name":"input-0","shape":[1,10],"datatype":"FP32","data":[1,2,3,4,5,6,7,8,9,0]}]}"#;

async fn infer(http: &str, model: &str) -> Value {
    let r = reqwest::Client::new()
        .post(format!("{http}/v2/models/{model}/infer"))
        .header("content-type", "application/json")
        .body(XGB_ROW)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{http}");
    r.json().await.unwrap()
}

fn kill9(pid: u32) {
    // SAFETY: kill(2) on a PID the test read from a live replica's status.
    let rc = unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    assert_eq!(rc, 0, "kill -9 {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_serve_recover_from_kill_9_and_scale_to_zero() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, backend) = backend(dir.path());
    let model = fixtures().join("models/xgb-binary");
    let spec =
        server_spec("iris-predictor-00001", "iris", &format!("file://{}", model.display()), &[]);
    backend.ensure_revision(&spec).await.unwrap();
    // Idempotent with the same spec, refused with another.
    backend.ensure_revision(&spec).await.unwrap();
    let mut changed = spec.clone();
    changed.model_name = "other".into();
    let e = backend.ensure_revision(&changed).await.unwrap_err().to_string();
    assert!(e.contains("iris-predictor-00001 already exists with a different spec"), "{e}");

    backend.scale(&spec.revision, 2).await.unwrap();
    let status =
        wait_for(&backend, &spec.revision, "2 ready replicas", |s| s.ready_replicas() == 2).await;
    assert_eq!(status.phase, RevisionPhase::Ready);
    assert_eq!(status.desired, 2);
    let mut pids = Vec::new();
    for r in &status.replicas {
        let http = r.http.as_deref().unwrap();
        let v = infer(http, "iris").await;
        assert_eq!(v["model_name"], "iris", "{v}");
        assert!(r.grpc.is_some(), "{r:?}");
        pids.push(r.pid.unwrap());
    }
    assert_ne!(pids[0], pids[1]);
    assert_eq!(backend.replica_status(&spec.revision).await.unwrap(), status.replicas);

    // kill -9 one replica: it is restarted, and the reason is kept.
    let victim = status.replicas[1].clone();
    kill9(victim.pid.unwrap());
    let status = wait_for(&backend, &spec.revision, "the killed replica back", |s| {
        s.replicas.iter().any(|r| r.id == victim.id && r.restarts == 1 && r.ready)
    })
    .await;
    let back = status.replicas.iter().find(|r| r.id == victim.id).unwrap();
    assert_ne!(back.pid, victim.pid);
    let reason = back.last_exit.as_deref().unwrap();
    assert!(reason.starts_with("killed by signal 9"), "{reason}");
    infer(back.http.as_deref().unwrap(), "iris").await;
    assert_eq!(status.phase, RevisionPhase::Ready);

    // Each replica's output is in its own log.
    let log = std::fs::read_to_string(backend.log_path(&spec.revision, 1)).unwrap();
    assert_eq!(log.matches("starting replica 1").count(), 2, "{log}");
    assert!(log.contains("oxserve listening"), "{log}");

    // Scale to zero: every process is stopped; the revision stays ready to start again.
    let live: Vec<u32> = status.replicas.iter().filter_map(|r| r.pid).collect();
    backend.scale(&spec.revision, 0).await.unwrap();
    let status = wait_for(&backend, &spec.revision, "no replicas", |s| s.replicas.is_empty()).await;
    assert_eq!(status.phase, RevisionPhase::Ready);
    for pid in live {
        assert!(!pid_alive(pid), "replica {pid} still runs after scale to 0");
    }

    backend.scale(&spec.revision, 1).await.unwrap();
    let status =
        wait_for(&backend, &spec.revision, "1 ready replica", |s| s.ready_replicas() == 1).await;
    let pid = status.replicas[0].pid.unwrap();
    backend.delete_revision(&spec.revision).await.unwrap();
    assert!(!pid_alive(pid), "replica {pid} still runs after delete");
    assert!(!dir.path().join("revisions").join(&spec.revision).exists());
    let e = backend.revision_status(&spec.revision).await.unwrap_err().to_string();
    assert!(e.contains("is not known"), "{e}");
    backend.delete_revision(&spec.revision).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_does_not_load_fails_the_revision_with_the_servers_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, backend) = backend(&dir.path().join("state"));
    let model = dir.path().join("broken");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::write(model.join("model.json"), b"{\"learner\": 42").unwrap();
    let spec = server_spec("broken-predictor-00001", "broken", model.to_str().unwrap(), &[]);
    backend.ensure_revision(&spec).await.unwrap();
    backend.scale(&spec.revision, 2).await.unwrap();
    let status = wait_for(&backend, &spec.revision, "failed", |s| {
        matches!(s.phase, RevisionPhase::Failed { .. })
    })
    .await;
    let RevisionPhase::Failed { reason } = &status.phase else { unreachable!() };
    assert!(reason.starts_with("model broken failed to load"), "{reason}");
    let status =
        wait_for(&backend, &spec.revision, "replicas stopped", |s| s.replicas.is_empty()).await;
    assert_eq!(status.desired, 2, "what was asked for is still reported");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_keeps_exiting_fails_the_revision_with_its_exit_and_log() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, backend) = backend(dir.path());
    let model = fixtures().join("models/lgbm-regression");
    let spec =
        server_spec("reg-predictor-00001", "reg", model.to_str().unwrap(), &["--threads", "many"]);
    backend.ensure_revision(&spec).await.unwrap();
    backend.scale(&spec.revision, 1).await.unwrap();
    let status = wait_for(&backend, &spec.revision, "failed", |s| {
        matches!(s.phase, RevisionPhase::Failed { .. })
    })
    .await;
    let RevisionPhase::Failed { reason } = &status.phase else { unreachable!() };
    assert!(
        reason.starts_with("replica 0 exited 3 times without becoming ready; last: exit code 2"),
        "{reason}"
    );
    assert!(reason.contains("invalid value 'many'"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_sources_and_imageonly_containers_fail_with_a_reason_and_start_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, backend) = backend(dir.path());
    let spec = server_spec("a-predictor-00001", "a", "ftp://models/a", &[]);
    backend.ensure_revision(&spec).await.unwrap();
    backend.scale(&spec.revision, 1).await.unwrap();
    let status = wait_for(&backend, &spec.revision, "failed", |s| {
        matches!(s.phase, RevisionPhase::Failed { .. })
    })
    .await;
    let RevisionPhase::Failed { reason } = &status.phase else { unreachable!() };
    assert!(
        reason.contains("pulling ftp://models/a") && reason.contains("unsupported scheme"),
        "{reason}"
    );
    assert!(status.replicas.is_empty());

    let mut image = server_spec("b-predictor-00001", "b", "/nonexistent", &[]);
    image.runner = Runner::Container {
        image: Some("kserve/sklearnserver:latest".into()),
        command: Vec::new(),
        args: vec!["--model_name=b".into()],
        predictor_host: None,
    };
    backend.ensure_revision(&image).await.unwrap();
    backend.scale(&image.revision, 1).await.unwrap();
    let status = backend.revision_status(&image.revision).await.unwrap();
    let RevisionPhase::Failed { reason } = &status.phase else { panic!("{status:?}") };
    assert!(
        reason.contains("container image kserve/sklearnserver:latest has no command"),
        "{reason}"
    );
    assert!(status.replicas.is_empty());
    let e = backend.scale("nope", 1).await.unwrap_err().to_string();
    assert_eq!(e, "revision nope is not known");
}

/// A custom "container": a Python process that answers V2 readiness on the port it is given
/// and reports what it was started with.
const CONTAINER: &str = r#"
import http.server, json, os, sys
args = sys.argv[1:]
port = int([a.split("=", 1)[1] for a in args if a.startswith("--http_port=")][0])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"argv": args, "port_env": os.environ.get("PORT"),
                           "model_dir": os.environ.get("MY_DIR"),
                           "files": sorted(os.listdir(os.environ["MY_DIR"]))}).encode()
        self.send_response(200 if self.path in ("/v2/models/custom/ready", "/info") else 404)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        sys.stderr.write("request %s\n" % self.path)
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_container_runs_its_command_with_kserves_port_contract() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, backend) = backend(dir.path());
    let model = fixtures().join("models/xgb-binary");
    let mut spec = server_spec("custom-transformer-00001", "custom", model.to_str().unwrap(), &[]);
    spec.component = "transformer".into();
    spec.runner = Runner::Container {
        image: Some("example/transformer".into()),
        command: vec!["python3".into(), "-c".into(), CONTAINER.into()],
        args: vec!["--model_dir=/mnt/models".into()],
        predictor_host: Some("127.0.0.1:9999".into()),
    };
    spec.env = vec![oxserve_controller::backend::EnvVar {
        name: "MY_DIR".into(),
        value: "/mnt/models".into(),
    }];
    backend.ensure_revision(&spec).await.unwrap();
    backend.scale(&spec.revision, 1).await.unwrap();
    let status = wait_for(&backend, &spec.revision, "ready", |s| s.ready_replicas() == 1).await;
    let http = status.replicas[0].http.clone().unwrap();
    let port = http.rsplit(':').next().unwrap().to_owned();
    let info: Value = reqwest::get(format!("{http}/info")).await.unwrap().json().await.unwrap();
    let model_dir = dir.path().join("revisions/custom-transformer-00001/model");
    assert_eq!(
        info,
        json!({
            "argv": [format!("--model_dir={}", model_dir.display()), "--predictor_host=127.0.0.1:9999",
                     format!("--http_port={port}")],
            "port_env": port,
            "model_dir": model_dir.display().to_string(),
            "files": ["model.json"],
        })
    );
    assert!(status.replicas[0].grpc.is_none());
    backend.delete_revision(&spec.revision).await.unwrap();
}

/// Serves one file over HTTP/1.1 (each connection answers one GET) and counts the requests.
async fn file_server(body: Vec<u8>) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            let body = body.clone();
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&seen).into_owned();
                let is_get = head.starts_with("GET ");
                if is_get {
                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                let header = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\ncontent-type: application/octet-stream\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(header.as_bytes()).await;
                if is_get {
                    let _ = sock.write_all(&body).await;
                }
                let _ = sock.shutdown().await;
            });
        }
    });
    (format!("http://{addr}"), count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_model_is_pulled_once_into_the_shared_cache_and_served_with_the_batcher() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, backend) = backend(dir.path());
    let bytes = std::fs::read(fixtures().join("models/xgb-binary/model.json")).unwrap();
    let (base, downloads) = file_server(bytes.clone()).await;
    let uri = format!("{base}/model.json");
    let mut first = server_spec("web-predictor-00001", "web", &uri, &[]);
    first.batcher =
        Some(BatcherSpec { max_batch_size: Some(4), max_latency: Some(5), timeout: None });
    backend.ensure_revision(&first).await.unwrap();
    backend.scale(&first.revision, 1).await.unwrap();
    let status = wait_for(&backend, &first.revision, "ready", |s| s.ready_replicas() == 1).await;
    let http = status.replicas[0].http.clone().unwrap();
    infer(&http, "web").await;
    let config: Value =
        reqwest::get(format!("{http}/v2/models/web/config")).await.unwrap().json().await.unwrap();
    assert_eq!(config["max_batch_size"], 4, "the batcher's size reaches the server: {config}");
    let settings: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("revisions/web-predictor-00001/model/model-settings.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(settings, json!({"name": "web", "max_batch_size": 4, "max_batch_time": 0.005}));

    // A second revision of the same URI comes from the cache.
    let second = server_spec("web-predictor-00002", "web", &uri, &[]);
    backend.ensure_revision(&second).await.unwrap();
    backend.scale(&second.revision, 1).await.unwrap();
    wait_for(&backend, &second.revision, "ready", |s| s.ready_replicas() == 1).await;
    assert_eq!(
        downloads.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one download for two revisions"
    );
    let entries = std::fs::read_dir(dir.path().join("cache/entries")).unwrap().count();
    assert_eq!(entries, 1);
    backend.shutdown().await;
}

/// Run by [`replicas_die_with_the_process_that_started_them`] in a child process: starts one
/// replica, prints its PID, and waits to be killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a helper the pdeathsig test runs in a child process"]
async fn helper_holding_a_replica() {
    let state =
        PathBuf::from(std::env::var("OXSERVE_TEST_STATE_DIR").expect("run by the parent test"));
    let (_store, backend) = backend(&state);
    let model = fixtures().join("models/xgb-regression");
    let spec = server_spec("held-predictor-00001", "held", model.to_str().unwrap(), &[]);
    backend.ensure_revision(&spec).await.unwrap();
    backend.scale(&spec.revision, 1).await.unwrap();
    let status = wait_for(&backend, &spec.revision, "ready", |s| s.ready_replicas() == 1).await;
    println!("replica pid {}", status.replicas[0].pid.unwrap());
    std::future::pending::<()>().await;
}

#[test]
fn replicas_die_with_the_process_that_started_them() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut helper = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["local::helper_holding_a_replica", "--exact", "--ignored", "--nocapture"])
        .env("OXSERVE_TEST_STATE_DIR", dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = helper.stdout.take().unwrap();
    let pid: u32 = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("replica pid ").map(|p| p.parse().unwrap()))
        .expect("the helper printed its replica's pid");
    assert!(pid_alive(pid));
    // A second backend on the same state dir is refused while the helper holds it.
    let e = StateStore::open(dir.path()).unwrap_err().to_string();
    assert!(e.contains(&format!("in use by process {}", helper.id())), "{e}");
    kill9(helper.id());
    helper.wait().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while pid_alive(pid) {
        assert!(std::time::Instant::now() < deadline, "replica {pid} outlived its parent");
        std::thread::sleep(Duration::from_millis(20));
    }
    // And the state dir is free again.
    StateStore::open(dir.path()).unwrap();
}

/// A CloudEvents sink: answers 200 to every POST and hands each request's head over.
async fn sink() -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let mut seen = Vec::new();
                loop {
                    // One request per connection is enough for the logger's deliveries: read
                    // the head, then the body its content-length names.
                    if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&seen[..end]).to_ascii_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if seen.len() >= end + 4 + len {
                            let _ = tx.send(head);
                            let _ = sock
                                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                                .await;
                            return;
                        }
                    }
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_logger_sends_each_request_and_response_with_the_service_extensions() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, backend) = backend(dir.path());
    let (sink_url, mut events) = sink().await;
    let model = fixtures().join("models/xgb-binary");
    let mut spec = server_spec("logged-predictor-00002", "logged", model.to_str().unwrap(), &[]);
    spec.logger = Some(oxserve_controller::backend::LoggerSpec {
        url: sink_url,
        mode: "all".into(),
        endpoint: "canary".into(),
    });
    backend.ensure_revision(&spec).await.unwrap();
    backend.scale(&spec.revision, 1).await.unwrap();
    let status = wait_for(&backend, &spec.revision, "ready", |s| s.ready_replicas() == 1).await;
    let http = status.replicas[0].http.clone().unwrap();
    infer(&http, "logged").await;
    let mut types = Vec::new();
    for _ in 0..2 {
        let head = tokio::time::timeout(Duration::from_secs(60), events.recv())
            .await
            .expect("an event reaches the sink")
            .unwrap();
        for header in [
            "ce-inferenceservicename: logged",
            "ce-namespace: default",
            "ce-component: predictor",
            "ce-endpoint: canary",
            "ce-modelid: logged",
        ] {
            assert!(head.contains(header), "{header} missing in {head}");
        }
        let ty = head.lines().find_map(|l| l.strip_prefix("ce-type: ")).unwrap().to_owned();
        types.push(ty);
    }
    types.sort();
    assert_eq!(
        types,
        ["org.kubeflow.serving.inference.request", "org.kubeflow.serving.inference.response"]
    );
    backend.shutdown().await;
}

async fn status_of(http: &str, model: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{http}/v2/models/{model}/infer"))
        .header("content-type", "application/json")
        .body(XGB_ROW)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trained_models_load_into_every_replica_and_unload_when_removed() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, backend) = backend(dir.path());
    let model = fixtures().join("models/xgb-binary");
    let spec =
        server_spec("iris-predictor-00001", "iris", &format!("file://{}", model.display()), &[]);
    backend.ensure_revision(&spec).await.unwrap();
    let tm = ModelAssignment {
        name: "reg".into(),
        storage_uri: format!("file://{}", fixtures().join("models/xgb-regression").display()),
        framework: Some("xgboost".into()),
        memory: Some("1Mi".into()),
    };
    backend.set_models(&spec.revision, std::slice::from_ref(&tm)).await.unwrap();
    backend.scale(&spec.revision, 1).await.unwrap();
    let status = wait_for(&backend, &spec.revision, "1 ready", |s| s.ready_replicas() == 1).await;
    // Loaded before the replica was reported ready.
    let first = status.replicas[0].http.clone().unwrap();
    assert_eq!(status_of(&first, "reg").await, 200);
    assert_eq!(status_of(&first, "iris").await, 200);
    let loads = backend.model_status(&spec.revision).await.unwrap();
    assert_eq!((loads[0].name.as_str(), loads[0].loaded, loads[0].replicas), ("reg", 1, 1));
    assert!(loads[0].last_used_ms > 0, "{loads:?}");

    // A replica started later loads it too.
    backend.scale(&spec.revision, 2).await.unwrap();
    let status = wait_for(&backend, &spec.revision, "2 ready", |s| s.ready_replicas() == 2).await;
    for r in &status.replicas {
        assert_eq!(status_of(r.http.as_deref().unwrap(), "reg").await, 200);
    }

    // Removed: unloaded from both (503: the model is unloaded), the own model still serves.
    backend.set_models(&spec.revision, &[]).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for r in &status.replicas {
        let http = r.http.as_deref().unwrap();
        while status_of(http, "reg").await != 503 {
            assert!(tokio::time::Instant::now() < deadline, "reg still served on {http}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(status_of(http, "iris").await, 200);
    }
    assert!(backend.model_status(&spec.revision).await.unwrap().is_empty());

    // A container revision takes no TrainedModels.
    let mut container = spec.clone();
    container.revision = "c-predictor-00001".into();
    container.runner = Runner::Container {
        image: None,
        command: vec!["true".into()],
        args: vec![],
        predictor_host: None,
    };
    backend.ensure_revision(&container).await.unwrap();
    let e = backend.set_models(&container.revision, &[tm]).await.unwrap_err().to_string();
    assert!(e.contains("only predictors of the built-in server"), "{e}");
    backend.shutdown().await;
}

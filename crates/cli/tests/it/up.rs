//! `oxserve up` end to end: the real binary as the platform, objects PUT at the api port,
//! inference through the router by host and by path, a canary's split counted, promotion, a
//! failed canary that keeps traffic where it was, a rollback, `kill -9` of `up` and recovery of the same
//! revisions and split, the lock refusing a second `up`, scale to zero and the cold start
//! through the activator, and the `get`/`describe`/`delete`/`logs` commands.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::{Up, fixtures};

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
}

/// The processes whose parent is `pid`.
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else { continue };
        let Some((_, rest)) = stat.rsplit_once(')') else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.first() != Some(&"Z") && fields.get(1) == Some(&pid.to_string().as_str()) {
            out.push(child);
        }
    }
    out
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, r)| !r.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

fn manifest(name: &str, dir: &Path, canary: Option<u32>, min_replicas: Option<u32>) -> String {
    let mut s = format!(
        "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: {name}\nspec:\n  predictor:\n"
    );
    if let Some(p) = canary {
        s.push_str(&format!("    canaryTrafficPercent: {p}\n"));
    }
    if let Some(m) = min_replicas {
        s.push_str(&format!("    minReplicas: {m}\n"));
    }
    s.push_str(&format!(
        "    model:\n      modelFormat:\n        name: xgboost\n      storageUri: file://{}\n",
        dir.display()
    ));
    s
}

async fn put(http: &reqwest::Client, url: &str, body: String) -> (u16, String, Value) {
    let r = http.put(url).body(body).send().await.unwrap();
    let status = r.status().as_u16();
    let applied = r
        .headers()
        .get("x-oxserve-apply")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, applied, r.json().await.unwrap())
}

/// Polls the service's revisions until `cond` holds (a generous bound so a broken platform
/// fails rather than hangs).
async fn wait_revisions(
    http: &reqwest::Client,
    up: &Up,
    name: &str,
    what: &str,
    cond: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let r = http.get(format!("{}/revisions", up.isvc_url(name))).send().await.unwrap();
        let revs: Vec<Value> = r.json().await.unwrap();
        if cond(&revs) {
            return revs;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name}: gave up waiting for {what}: {revs:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn rev<'a>(revs: &'a [Value], name: &str) -> &'a Value {
    revs.iter().find(|r| r["name"] == name).unwrap_or_else(|| panic!("no {name} in {revs:#?}"))
}

const ROW: &str = r#"{"inputs":[{"name":"input-0","shape":[1,10],"datatype":"FP32","data":[1,2,3,4,5,6,7,8,9,0]}]}"#;

/// Sends `n` requests to the service by path; counts the answering revisions.
async fn split(
    http: &reqwest::Client,
    rest: &str,
    model: &str,
    n: usize,
) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for _ in 0..n {
        let r =
            http.post(format!("{rest}/v2/models/{model}/infer")).body(ROW).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let revision = r.headers()["x-oxserve-revision"].to_str().unwrap().to_owned();
        *counts.entry(revision).or_default() += 1;
    }
    counts
}

fn cli(args: &[&str], up: &Up) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_oxserve"))
        .args(args)
        .args(["--server", &up.api])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_canary_promote_failed_canary_and_recovery_after_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let v1 = fixtures().join("models/xgb-binary");
    let v2 = dir.path().join("v2");
    std::fs::create_dir_all(&v2).unwrap();
    std::fs::copy(v1.join("model.json"), v2.join("model.json")).unwrap();
    let http = reqwest::Client::new();
    let up = Up::start(&state, None);

    // Create, then the same again: unchanged.
    let (status, applied, body) =
        put(&http, &up.isvc_url("iris"), manifest("iris", &v1, None, None)).await;
    assert_eq!((status, applied.as_str()), (201, "created"), "{body}");
    let (status, applied, _) =
        put(&http, &up.isvc_url("iris"), manifest("iris", &v1, None, None)).await;
    assert_eq!((status, applied.as_str()), (200, "unchanged"));
    wait_revisions(&http, &up, "iris", "ready", |r| r.len() == 1 && r[0]["readyReplicas"] == 1)
        .await;

    // By host and by path, V2 and V1.
    let r = http
        .post(format!("{}/v2/models/iris/infer", up.rest))
        .header("host", "iris.default.example.com")
        .body(ROW)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["x-oxserve-revision"], "iris-predictor-00001");
    let r = http
        .post(format!("{}/v1/models/iris:predict", up.rest))
        .body(r#"{"instances":[[1,2,3,4,5,6,7,8,9,0]]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    // A canary at 20 %.
    let (_, applied, _) =
        put(&http, &up.isvc_url("iris"), manifest("iris", &v2, Some(20), None)).await;
    assert_eq!(applied, "configured");
    wait_revisions(&http, &up, "iris", "the canary ready", |r| {
        r.len() == 2 && r[1]["readyReplicas"] == 1 && r[1]["traffic"] == 20
    })
    .await;
    let counts = split(&http, &up.rest, "iris", 2_000).await;
    let canary = counts.get("iris-predictor-00002").copied().unwrap_or(0);
    assert!((380..=420).contains(&canary), "20 % of 2,000 within ±1 point: {counts:?}");
    let (ok, table, _) = cli(&["get", "isvc"], &up);
    assert!(ok);
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        row[..7],
        [
            "iris",
            "http://iris.default.example.com",
            "True",
            "80",
            "20",
            "iris-predictor-00001",
            "iris-predictor-00002"
        ],
        "{table}"
    );

    // kill -9 of up takes the replicas with it; the next up recovers names and split.
    let replicas = children(up.pid());
    assert_eq!(replicas.len(), 2, "one replica per revision: {replicas:?}");
    signal(up.pid(), "-KILL");
    let mut up = up;
    up.wait_exited();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while replicas.iter().any(|p| alive(*p)) {
        assert!(std::time::Instant::now() < deadline, "replicas outlived up: {replicas:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let up = Up::start(&state, None);
    let refused = Command::new(env!("CARGO_BIN_EXE_oxserve"))
        .args(["up", "--state-dir"])
        .arg(&state)
        .args(["--http-port", "0", "--grpc-port", "0", "--api-port", "0"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains(&format!("is in use by process {}", up.pid())), "{err}");
    wait_revisions(&http, &up, "iris", "both ready again", |r| {
        r.len() == 2 && r.iter().all(|r| r["readyReplicas"] == 1)
    })
    .await;
    let counts = split(&http, &up.rest, "iris", 500).await;
    let canary = counts.get("iris-predictor-00002").copied().unwrap_or(0);
    assert!((75..=125).contains(&canary), "the same split after the restart: {counts:?}");

    // Promote: all traffic to the new revision, the old one scaled to zero.
    put(&http, &up.isvc_url("iris"), manifest("iris", &v2, None, None)).await;
    let revs = wait_revisions(&http, &up, "iris", "promotion", |r| {
        r.len() == 2 && r[1]["traffic"] == 100 && r[0]["desiredReplicas"] == 0
    })
    .await;
    assert_eq!(rev(&revs, "iris-predictor-00001")["state"], "Ready");
    assert_eq!(
        split(&http, &up.rest, "iris", 20).await.keys().collect::<Vec<_>>(),
        ["iris-predictor-00002"]
    );

    // A canary whose model does not load fails; traffic stays on the rolled-out revision.
    let broken = dir.path().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("model.json"), b"{\"learner\": 1").unwrap();
    put(&http, &up.isvc_url("iris"), manifest("iris", &broken, Some(50), None)).await;
    let revs = wait_revisions(&http, &up, "iris", "the canary failed", |r| {
        r.len() == 3 && r[2]["state"] == "Failed"
    })
    .await;
    let reason = rev(&revs, "iris-predictor-00003")["reason"].as_str().unwrap();
    assert!(reason.contains("model iris failed to load"), "{reason}");
    assert_eq!(
        split(&http, &up.rest, "iris", 20).await.keys().collect::<Vec<_>>(),
        ["iris-predictor-00002"]
    );
    let (ok, described, _) = cli(&["describe", "isvc", "iris"], &up);
    assert!(ok);
    assert!(described.contains("iris-predictor-00003  Failed"), "{described}");
    assert!(described.contains("Reason: model iris failed to load"), "{described}");

    // Roll back to the first spec: as in Knative, a new revision, which takes all traffic.
    put(&http, &up.isvc_url("iris"), manifest("iris", &v1, None, None)).await;
    let revs = wait_revisions(&http, &up, "iris", "the rollback", |r| {
        r.len() == 4 && r[3]["traffic"] == 100 && r[3]["readyReplicas"] == 1
    })
    .await;
    assert_eq!(rev(&revs, "iris-predictor-00004")["state"], "Ready");
    let old_share = rev(&revs, "iris-predictor-00002")["traffic"].as_u64().unwrap_or(0);
    assert_eq!(old_share, 0, "{revs:#?}");
    assert_eq!(
        split(&http, &up.rest, "iris", 20).await.keys().collect::<Vec<_>>(),
        ["iris-predictor-00004"]
    );

    // Logs, revisions, delete.
    let (ok, logs, _) = cli(&["logs", "isvc", "iris", "--revision", "iris-predictor-00002"], &up);
    assert!(ok);
    assert!(logs.contains("==> replica 0 <==") && logs.contains("oxserve listening"), "{logs}");
    let (ok, table, _) = cli(&["get", "revisions", "iris"], &up);
    assert!(ok);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "SERVICE", "COMPONENT", "READY", "REPLICAS", "TRAFFIC", "AGE"]);
    assert!(table.contains("iris-predictor-00003") && table.contains("False"), "{table}");
    let (ok, out, _) = cli(&["delete", "isvc", "iris"], &up);
    assert!(ok);
    assert_eq!(out, "inferenceservice.serving.kserve.io \"iris\" deleted\n");
    let (ok, _, err) = cli(&["get", "isvc", "iris"], &up);
    assert!(!ok);
    assert!(err.contains("inferenceservice default/iris not found"), "{err}");
    let live = children(up.pid());
    assert!(up.stop(), "SIGTERM exits 0");
    assert!(live.iter().all(|p| !alive(*p)), "no replica left: {live:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_to_zero_and_a_cold_start_answers_every_request() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("platform.yaml");
    std::fs::write(&config, "autoscaler:\n  stable-window: 6s\n  scale-to-zero-grace-period: 1s\n")
        .unwrap();
    let up = Up::start(&dir.path().join("state"), Some(&config));
    let http = reqwest::Client::new();
    let model = fixtures().join("models/xgb-binary");
    put(&http, &up.isvc_url("zero"), manifest("zero", &model, None, Some(0))).await;
    wait_revisions(&http, &up, "zero", "ready", |r| r.len() == 1 && r[0]["readyReplicas"] == 1)
        .await;
    wait_revisions(&http, &up, "zero", "scaled to zero", |r| {
        r[0]["desiredReplicas"] == 0 && r[0]["readyReplicas"] == 0
    })
    .await;
    // The replica's process is stopped once the revision reports zero: it may take a moment
    // to exit.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !children(up.pid()).is_empty() {
        let left = children(up.pid());
        assert!(std::time::Instant::now() < deadline, "a replica still runs at zero: {left:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let (http, url) = (http.clone(), format!("{}/v2/models/zero/infer", up.rest));
        tasks.push(tokio::spawn(async move {
            http.post(url).body(ROW).send().await.unwrap().status().as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200, "every request of the cold start is answered");
    }
    assert!(up.stop());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_manifests_and_paths_get_precise_errors_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(&dir.path().join("state"), None);
    let http = reqwest::Client::new();
    let cases = [
        (up.isvc_url("a"), "kind: [".to_owned(), 422, "request:doc 1"),
        (
            up.isvc_url("a"),
            "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata: {name: a}\nspec:\n  predictor:\n    model: {modelFormat: {name: xgboost}, storageUri: file:///m, bogus: 1}\n".to_owned(),
            422,
            "bogus",
        ),
        (up.isvc_url("b"), manifest("a", Path::new("/m"), None, None), 400, "does not match the path"),
        (
            format!("{}/apis/serving.kserve.io/v1beta1/namespaces/default/widgets/a", up.api),
            "{}".to_owned(),
            404,
            "resource \"widgets\" is not served here",
        ),
    ];
    for (url, body, status, message) in cases {
        let r = http.put(&url).body(body).send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{url}");
        let v: Value = r.json().await.unwrap();
        let e = v["error"].as_str().unwrap_or_default();
        assert!(e.contains(message), "{url}: {e}");
    }
    let list: Value = http
        .get(format!(
            "{}/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices",
            up.api
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"], serde_json::json!([]), "nothing was applied");
    let page = http.get(format!("{}/", up.api)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("No InferenceServices"), "{page}");
    assert!(up.stop());
}

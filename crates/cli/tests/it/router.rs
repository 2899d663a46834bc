//! `oxserve router` standalone mode over real processes: a routes file re-read on change and
//! on SIGHUP, a bad file refused while the previous routes keep serving, and a backend
//! killed under load.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::{Server, fixtures};

/// A running `oxserve router`, stopped (SIGTERM by PID) when dropped.
struct RouterProcess {
    child: Child,
    rest: String,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl RouterProcess {
    fn start(routes: &Path, extra: &[&str]) -> RouterProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_oxserve"))
            .arg("router")
            .arg("--routes")
            .arg(routes)
            .args(["--http-port", "0", "--grpc-port", "0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("OXSERVE_LOG", "info")
            .spawn()
            .expect("spawn oxserve router");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let s = stderr.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                s.lock().unwrap().push(line);
            }
        });
        let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = out.next().expect("router exited before listening").unwrap();
        let rest = line
            .strip_prefix("oxserve router listening rest=")
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected line {line:?}"))
            .to_owned();
        std::thread::spawn(move || for _ in out {});
        RouterProcess { child, rest, stderr }
    }

    fn signal(&self, sig: &str) {
        let status =
            Command::new("kill").args([sig, &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    fn logged(&self, needle: &str) -> bool {
        self.stderr.lock().unwrap().iter().any(|l| l.contains(needle))
    }
}

impl Drop for RouterProcess {
    fn drop(&mut self) {
        self.signal("-TERM");
        let _ = self.child.wait();
    }
}

fn routes(backends: &[(&Server, &str, u32)]) -> String {
    let mut s = String::from("services:\n  - name: xgb-binary\n    backends:\n");
    for (server, revision, weight) in backends {
        s.push_str(&format!(
            "      - {{url: '{}', grpc: '{}', weight: {weight}, revision: {revision}}}\n",
            server.rest.trim_end_matches('/'),
            server.grpc
        ));
    }
    s
}

async fn revision_of(http: &reqwest::Client, router: &str) -> String {
    let r = http.get(format!("{router}/v2/models/xgb-binary/ready")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.headers()["x-oxserve-revision"].to_str().unwrap().to_owned()
}

/// Polls until `cond` holds.
async fn until<F: std::future::Future<Output = bool>>(what: &str, mut cond: impl FnMut() -> F) {
    for _ in 0..2_000 {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("gave up waiting for {what}");
}

/// Replaces the routes file the way a deployment tool (or a ConfigMap update) does: a new
/// file renamed over the old one, so the polling router never reads a half-written file.
fn replace(file: &Path, text: impl AsRef<[u8]>) -> std::io::Result<()> {
    let tmp = file.with_extension("yaml.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, file)
}

#[tokio::test]
async fn routes_file_reloads_and_a_bad_file_keeps_the_old_routes() {
    let model = fixtures().join("models/xgb-binary");
    let a = Server::start(&model, &[]);
    let b = Server::start(&model, &[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("routes.yaml");
    std::fs::write(&file, routes(&[(&a, "xgb-a", 100), (&b, "xgb-b", 0)])).unwrap();
    let router = RouterProcess::start(&file, &["--routes-poll-interval", "0.02"]);
    let http = reqwest::Client::new();
    assert_eq!(revision_of(&http, &router.rest).await, "xgb-a");

    // Changed on disk: picked up by the poll.
    replace(&file, routes(&[(&a, "xgb-a", 0), (&b, "xgb-b", 100)])).unwrap();
    until("the new routes", || async { revision_of(&http, &router.rest).await == "xgb-b" }).await;

    // A bad file is refused with its reason; the routes before it keep serving.
    replace(&file, "services:\n  - name: xgb-binary\n    backends:\n      - {url: 'http://127.0.0.1:1', wieght: 5}\n").unwrap();
    until("the refusal in the log", || async { router.logged("routes refused") }).await;
    assert!(router.logged("unknown field `wieght`"), "{:?}", router.stderr.lock().unwrap());
    assert!(router.logged("services[0].backends[0]"), "{:?}", router.stderr.lock().unwrap());
    for _ in 0..20 {
        assert_eq!(revision_of(&http, &router.rest).await, "xgb-b");
    }
    drop(router);

    // SIGHUP reloads at once, whatever the poll interval.
    replace(&file, routes(&[(&a, "xgb-a", 100)])).unwrap();
    let router = RouterProcess::start(&file, &["--routes-poll-interval", "3600"]);
    assert_eq!(revision_of(&http, &router.rest).await, "xgb-a");
    replace(&file, routes(&[(&b, "xgb-b", 100)])).unwrap();
    router.signal("-HUP");
    until("the reload on SIGHUP", || async { revision_of(&http, &router.rest).await == "xgb-b" })
        .await;
}

#[tokio::test]
async fn a_bad_routes_file_at_start_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("routes.yaml");
    std::fs::write(&file, "services:\n  - name: x\n    backends: []\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_oxserve"))
        .arg("router")
        .arg("--routes")
        .arg(&file)
        .args(["--http-port", "0", "--grpc-port", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("services[0].backends: a service needs at least one backend"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_killed_under_load_fails_only_requests_in_flight() {
    let model = fixtures().join("models/xgb-binary");
    let a = Server::start(&model, &[]);
    let b = Server::start(&model, &[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("routes.yaml");
    // Both are replicas of one revision.
    std::fs::write(&file, routes(&[(&a, "xgb-1", 50), (&b, "xgb-1", 50)])).unwrap();
    let router = RouterProcess::start(&file, &[]);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let url = format!("{}/v2/models/xgb-binary/infer", router.rest);
    let body = r#"{"inputs":[{"name":"input-0","shape":[1,10],"datatype":"FP32","data":[0.5,1.5,-2.0,3.25,0.0,1.0,2.0,-1.0,0.25,4.0]}]}"#;
    const WORKERS: usize = 8;
    let results = Arc::new(Mutex::new(Vec::<(u16, String)>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (http, url, results, stop) =
                (http.clone(), url.clone(), results.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let r = http
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                        .expect("the router answers, never hangs");
                    let status = r.status().as_u16();
                    let text = r.text().await.unwrap_or_default();
                    results.lock().unwrap().push((status, text));
                }
            })
        })
        .collect();
    until("load before the kill", || async { results.lock().unwrap().len() > 300 }).await;
    let killed = Command::new("kill").args(["-KILL", &a.pid().to_string()]).status().unwrap();
    assert!(killed.success());
    let at_kill = results.lock().unwrap().len();
    until("load after the kill", || async { results.lock().unwrap().len() > at_kill + 500 }).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let results = results.lock().unwrap();
    let failed: Vec<_> = results.iter().filter(|(s, _)| *s != 200).collect();
    for (status, text) in &failed {
        assert_eq!(*status, 502, "{text}");
        assert!(
            text.contains("replica") && text.contains("xgb-1"),
            "a reason naming the replica: {text}"
        );
    }
    println!("{} requests, {} failed after the kill", results.len(), failed.len());
    // Each worker has one request in flight, and the replica leaves the rotation at its first
    // failure: only requests in flight at the kill can fail.
    assert!(failed.len() <= WORKERS, "{} failed: {failed:?}", failed.len());
    assert!(
        results[results.len() - 200..].iter().all(|(s, _)| *s == 200),
        "the other replica serves everything after"
    );
    drop(b);
}

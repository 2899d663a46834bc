//! `oxserve agent` and `oxserve pull` as real processes: the agent in front of
//! `oxserve serve`, logging to a real HTTP sink, shut down with SIGTERM while every logged
//! event is still held by the sink — none may be lost. Standard library only.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};

const BIN: &str = env!("CARGO_BIN_EXE_oxserve");

/// Kills the child on drop (by its own handle) so a failing test leaves no process behind.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns `oxserve args…` and returns it with the first stdout line that contains `marker`.
fn spawn(args: &[&str], marker: &str) -> (Proc, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "oxserve {args:?} exited before printing {marker:?}"
        );
        if line.contains(marker) {
            break;
        }
    }
    (Proc(child), line.trim().to_owned())
}

/// Reads one HTTP/1.1 message (headers + content-length body) from `r`.
fn read_message(
    r: &mut BufReader<TcpStream>,
) -> Option<(String, BTreeMap<String, String>, Vec<u8>)> {
    let mut start = String::new();
    if r.read_line(&mut start).ok()? == 0 {
        return None;
    }
    let mut headers = BTreeMap::new();
    loop {
        let mut l = String::new();
        r.read_line(&mut l).ok()?;
        let l = l.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':')?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
    }
    let n: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0; n];
    r.read_exact(&mut body).ok()?;
    Some((start.trim().to_owned(), headers, body))
}

/// One HTTP request with `Connection: close`; returns (status, body).
fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let (start, _, body) = read_message(&mut r).unwrap();
    (start.split(' ').nth(1).unwrap().parse().unwrap(), String::from_utf8_lossy(&body).into_owned())
}

/// A CloudEvents sink that records `(ce-id, ce-type)` and answers nothing until released.
struct Sink {
    addr: String,
    events: Arc<Mutex<Vec<(String, String)>>>,
    release: Arc<(Mutex<bool>, Condvar)>,
}

impl Sink {
    fn start() -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let events: Arc<Mutex<Vec<(String, String)>>> = Default::default();
        let release: Arc<(Mutex<bool>, Condvar)> = Default::default();
        let (ev, rel) = (events.clone(), release.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let (ev, rel) = (ev.clone(), rel.clone());
                std::thread::spawn(move || {
                    let mut w = conn.try_clone().unwrap();
                    let mut r = BufReader::new(conn);
                    while let Some((_, h, _)) = read_message(&mut r) {
                        let (lock, cv) = &*rel;
                        let mut open = lock.lock().unwrap();
                        while !*open {
                            open = cv.wait(open).unwrap();
                        }
                        drop(open);
                        ev.lock().unwrap().push((h["ce-id"].clone(), h["ce-type"].clone()));
                        if w.write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n")
                            .is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        Sink { addr, events, release }
    }

    fn open(&self) {
        let (lock, cv) = &*self.release;
        *lock.lock().unwrap() = true;
        cv.notify_all();
    }
}

fn fixture_repo(dir: &Path) -> String {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/models/xgb-binary");
    let dst = dir.join("repo/xgb-binary");
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(src).unwrap().flatten() {
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
    dir.join("repo").display().to_string()
}

#[test]
fn agent_batches_logs_and_loses_no_event_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("oxserve-agent-it-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let repo = fixture_repo(&dir);
    let (_server, line) =
        spawn(&["serve", &repo, "--http-port", "0", "--no-grpc"], "oxserve listening");
    let server = line.split("rest=http://").nth(1).unwrap().split(' ').next().unwrap().to_owned();
    let port = server.rsplit(':').next().unwrap().to_owned();
    let sink = Sink::start();
    let spill = dir.join("spill.jsonl");
    let (mut agent, line) = spawn(
        &[
            "agent",
            "--port",
            "0",
            "--component-port",
            &port,
            "--log-url",
            &format!("http://{}/", sink.addr),
            "--log-mode",
            "all",
            "--enable-batcher",
            "--max-batchsize",
            "4",
            "--log-spill-file",
            spill.to_str().unwrap(),
        ],
        "oxserve agent listening",
    );
    let agent_addr = line.split("http://").nth(1).unwrap().split(' ').next().unwrap().to_owned();

    let n = 12;
    let row: Vec<String> = (0..10).map(|i| format!("{}.5", i)).collect();
    let body = format!(
        r#"{{"inputs":[{{"name":"input-0","datatype":"FP32","shape":[1,10],"data":[{}]}}]}}"#,
        row.join(",")
    );
    let direct = http(&server, "POST", "/v2/models/xgb-binary/infer", &body);
    assert_eq!(direct.0, 200, "{}", direct.1);
    for _ in 0..n {
        let (status, resp) = http(&agent_addr, "POST", "/v2/models/xgb-binary/infer", &body);
        assert_eq!(status, 200, "{resp}");
        assert_eq!(resp, direct.1);
    }
    // Every event is still inside the agent (queued or in flight) when SIGTERM arrives.
    assert!(sink.events.lock().unwrap().is_empty());
    let pid = agent.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    sink.open();
    let status = agent.0.wait().unwrap();
    assert!(status.success(), "agent exited with {status}");

    let events = sink.events.lock().unwrap().clone();
    assert_eq!(events.len(), 2 * n, "every request and response event delivered");
    let mut by_id: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (id, ty) in events {
        by_id.entry(id).or_default().push(ty);
    }
    assert_eq!(by_id.len(), n);
    assert!(by_id.values().all(|t| t.len() == 2 && t[0] != t[1]));
    assert!(!spill.exists(), "nothing needed spilling");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn pull_copies_a_local_model_and_rejects_bad_uris() {
    let dir = std::env::temp_dir().join(format!("oxserve-pull-it-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/models/xgb-binary");
    let dest = dir.join("out/m");
    let cache = dir.join("cache");
    let out = Command::new(BIN)
        .args([
            "pull",
            &format!("file://{}", src.display()),
            dest.to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("pulled file://"));
    assert_eq!(
        std::fs::read(dest.join("model.json")).unwrap(),
        std::fs::read(src.join("model.json")).unwrap()
    );
    let bad = Command::new(BIN)
        .args([
            "pull",
            "ftp://host/m",
            dir.join("x").to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unsupported scheme"));
    assert!(!dir.join("x").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

//! Shared helpers: the S3-compatible server process and small HTTP servers.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

/// The env var naming the python of the venv with `moto[server]`.
pub const S3_PYTHON_ENV: &str = "OXSERVE_TEST_S3_PYTHON";

/// Starts moto's threaded server on an ephemeral port and prints that port; stops when its
/// stdin closes.
const MOTO_SCRIPT: &str = r#"
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()
server.stop()
"#;

/// A running S3-compatible server; killed on drop.
pub struct S3Server {
    pub child: Option<Child>,
    _stdin: Option<ChildStdin>,
    pub endpoint: String,
}

impl S3Server {
    /// Starts the server (panics with a clear message when the venv is not there: these tests
    /// are `#[ignore]`d unless `cargo xtask test` provides it).
    pub fn start() -> S3Server {
        let python = std::env::var(S3_PYTHON_ENV).unwrap_or_else(|_| {
            panic!("{S3_PYTHON_ENV} is not set: run these tests with `cargo xtask test`")
        });
        let mut child = Command::new(python)
            .args(["-c", MOTO_SCRIPT])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting the S3 test server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("reading the port");
        let port: u16 =
            line.trim().parse().unwrap_or_else(|_| panic!("S3 test server said {line:?}"));
        let stdin = child.stdin.take();
        S3Server { child: Some(child), _stdin: stdin, endpoint: format!("http://127.0.0.1:{port}") }
    }

    /// `object_store` options that point at this server.
    pub fn options(&self) -> Vec<(String, String)> {
        [
            ("aws_endpoint", self.endpoint.as_str()),
            ("aws_access_key_id", "testing"),
            ("aws_secret_access_key", "testing"),
            ("aws_region", "us-east-1"),
            ("aws_allow_http", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// Creates a bucket (moto accepts unsigned requests).
    pub async fn create_bucket(&self, bucket: &str) {
        let resp =
            reqwest::Client::new().put(format!("{}/{bucket}", self.endpoint)).send().await.unwrap();
        assert!(resp.status().is_success(), "creating bucket: {}", resp.status());
    }

    /// Uploads one object (signed, through `object_store`).
    pub async fn put(&self, bucket: &str, key: &str, data: Vec<u8>) {
        use object_store::ObjectStoreExt;
        let mut b = object_store::aws::AmazonS3Builder::new().with_bucket_name(bucket);
        for (k, v) in self.options() {
            b = b.with_config(k.parse().unwrap(), v);
        }
        let store = b.build().unwrap();
        store
            .put(&object_store::path::Path::from(key), data.into())
            .await
            .unwrap_or_else(|e| panic!("uploading {key}: {e}"));
    }

    /// Kills the server process now.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Serves `router` on an ephemeral loopback port until the returned sender is dropped.
pub async fn serve_http(router: axum::Router) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    (addr, tx)
}

/// Every file under `dir` (relative paths, sorted), hidden ones included.
pub fn tree(dir: &Path) -> Vec<String> {
    fn go(root: &Path, d: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.push(format!("{}/", p.strip_prefix(root).unwrap().display()));
                go(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    go(dir, dir, &mut out);
    out.sort();
    out
}

/// Deterministic pseudo-random bytes.
pub fn bytes(n: usize, seed: u8) -> Vec<u8> {
    let mut x = u32::from(seed) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// A `.tar.gz` with the given (path, contents) files, names written raw so tests can build
/// malicious archives.
pub fn tar_gz(files: &[(&str, &[u8])]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(data.len() as u64);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    let mut gz = b.into_inner().unwrap();
    gz.flush().unwrap();
    gz.finish().unwrap()
}

/// A temp dir holding the cache and model dirs of one test.
pub struct Dirs {
    pub tmp: tempfile::TempDir,
}

impl Dirs {
    pub fn new() -> Dirs {
        Dirs { tmp: tempfile::tempdir().unwrap() }
    }
    pub fn cache(&self) -> PathBuf {
        self.tmp.path().join("cache")
    }
    pub fn models(&self) -> PathBuf {
        self.tmp.path().join("models")
    }
    /// Cache entries (one per downloaded model version).
    pub fn entries(&self) -> Vec<String> {
        tree(&self.cache().join("entries"))
            .into_iter()
            .filter(|p| p.ends_with('/') && p.matches('/').count() == 1)
            .collect()
    }
}

/// A real `oxserve-server` on an ephemeral loopback port serving the model repository
/// `repo`; stops when the returned sender is dropped.
pub async fn start_server(repo: &Path) -> (String, tokio::sync::oneshot::Sender<()>) {
    use oxserve_server::core::{Core, CoreConfig};
    use oxserve_server::serve::{Listeners, ServeOptions, serve};
    let repository = oxserve_server::repository::Repository::open(repo).unwrap();
    let core = std::sync::Arc::new(Core::new(CoreConfig::default(), Some(repository)));
    core.load_all().await;
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = http.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let stop = async move {
            let _ = rx.await;
        };
        serve(Listeners { http, grpc: None }, core, ServeOptions::default(), stop).await.unwrap();
    });
    (format!("http://{addr}"), tx)
}

/// The workspace's model fixtures.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/models").join(name)
}

/// A repository directory holding copies of the named fixture models.
pub fn repo_with(dir: &Path, models: &[&str]) -> PathBuf {
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    for m in models {
        let dst = repo.join(m);
        std::fs::create_dir_all(&dst).unwrap();
        for e in std::fs::read_dir(fixture(m)).unwrap().flatten() {
            std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
        }
    }
    repo
}

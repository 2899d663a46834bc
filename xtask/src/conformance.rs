//! `cargo xtask conformance`: runs the V2 conformance suite (`oxserve-conformance`) against a
//! server given by URL, against `oxserve serve` on the fixtures plus the suite's reference
//! models (the CI gate, [`gate`]), or against a real peer (`--peer mlserver|kserve`) that it
//! installs into a throwaway venv, starts on loopback, tests and stops.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

/// Python servers the suite can be run against as independent references.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Peer {
    /// Seldon's MLServer 1.7 with the scikit-learn runtime.
    Mlserver,
    /// KServe's Python model server (`kserve` package) with a small `kserve.Model`.
    Kserve,
    /// `oxserve serve` on the fixtures plus the reference models (what `cargo xtask test` runs).
    Oxserve,
}

#[derive(clap::Args)]
pub struct Args {
    /// REST base URL of a running server (omit with --peer).
    #[arg(long)]
    url: Option<String>,
    /// gRPC address HOST:PORT.
    #[arg(long)]
    grpc: Option<String>,
    /// Model under test.
    #[arg(long)]
    model: Option<String>,
    /// text, json, junit or markdown.
    #[arg(long, default_value = "text")]
    format: String,
    /// Write the report to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// must, should or all.
    #[arg(long, default_value = "all")]
    level: String,
    /// Start this server locally and test it instead of --url.
    #[arg(long, value_enum)]
    peer: Option<Peer>,
}

pub fn run(sh: &Shell, args: Args) -> Result<()> {
    let Args { url, grpc, model, format, out, level, peer } = args;
    let mut flags = vec!["--format".to_owned(), format, "--level".to_owned(), level];
    if let Some(out) = out {
        flags.extend(["--out".to_owned(), out.display().to_string()]);
    }
    let suite = build_suite(sh)?;
    let (server, url, grpc, model) = match (peer, url) {
        (Some(_), Some(_)) => bail!("give either --url or --peer, not both"),
        (None, None) => bail!("give --url http://HOST:PORT (or --peer mlserver|kserve|oxserve)"),
        (None, Some(url)) => (None, url, grpc, model),
        (Some(peer), None) => {
            let started = start_peer(sh, peer)?;
            let url = started.rest.clone();
            let grpc = started.grpc.clone();
            let model = model.or_else(|| started.model.clone());
            (Some(started), url, grpc, model)
        }
    };
    flags.extend(["--url".to_owned(), url]);
    if let Some(g) = grpc {
        flags.extend(["--grpc".to_owned(), g]);
    }
    if let Some(m) = model {
        flags.extend(["--model".to_owned(), m]);
    }
    let result = cmd!(sh, "{suite} {flags...}").run();
    drop(server);
    result.context("the server does not conform (a MUST or advertised-extension case failed)")
}

/// The CI gate: the whole suite against `oxserve serve` on the fixtures and the reference
/// models; fails on any MUST or advertised-extension failure.
pub fn gate(sh: &Shell) -> Result<()> {
    let suite = build_suite(sh)?;
    let server = start_peer(sh, Peer::Oxserve)?;
    let (url, grpc) = (server.rest.clone(), server.grpc.clone().unwrap_or_default());
    let junit = crate::state_dir().join("conformance").join("oxserve.junit.xml");
    let result = cmd!(sh, "{suite} --url {url} --grpc {grpc} --model iris-lr --level all")
        .run()
        .and_then(|()| {
            cmd!(
                sh,
                "{suite} --url {url} --grpc {grpc} --model iris-lr --format junit --out {junit}"
            )
            .run()
        });
    drop(server);
    result.context("oxserve failed the V2 conformance suite")
}

fn build_suite(sh: &Shell) -> Result<PathBuf> {
    cmd!(sh, "cargo build --quiet -p oxserve-conformance -p oxserve-cli")
        .run()
        .context("building the conformance suite and oxserve")?;
    Ok(crate::target_dir().join("debug/oxserve-conformance"))
}

/// A server the task started; stopped (SIGTERM by PID, then reaped) when dropped.
pub(crate) struct Started {
    pub(crate) child: Child,
    pub(crate) rest: String,
    pub(crate) grpc: Option<String>,
    pub(crate) model: Option<String>,
}

impl Drop for Started {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let _ = self.child.wait();
    }
}

fn start_peer(sh: &Shell, peer: Peer) -> Result<Started> {
    match peer {
        Peer::Oxserve => start_oxserve(sh),
        Peer::Mlserver => start_mlserver(sh),
        Peer::Kserve => start_kserve(sh),
    }
}

/// `oxserve serve` on a repository of the fixtures plus the reference models.
fn start_oxserve(sh: &Shell) -> Result<Started> {
    let lib = crate::onnxruntime::ensure(sh)?;
    let root = crate::project_root();
    let repo = crate::state_dir().join("conformance").join("repo");
    if repo.exists() {
        std::fs::remove_dir_all(&repo).with_context(|| format!("removing {}", repo.display()))?;
    }
    for source in [root.join("fixtures/models"), root.join("conformance/models")] {
        copy_dir(&source, &repo)?;
    }
    let mut child = Command::new(crate::target_dir().join("debug/oxserve"))
        .arg("serve")
        .arg(&repo)
        .args(["--http-port", "0", "--grpc-port", "0"])
        .env("OXSERVE_ONNXRUNTIME_LIB", &lib)
        .stdout(Stdio::piped())
        .spawn()
        .context("starting oxserve")?;
    let stdout = child.stdout.take().context("oxserve stdout")?;
    let mut started = Started { child, rest: String::new(), grpc: None, model: None };
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let Some(addrs) = line.trim().strip_prefix("oxserve listening ") else {
        bail!("oxserve did not start (see its log above)");
    };
    for part in addrs.split_whitespace() {
        if let Some(v) = part.strip_prefix("rest=") {
            started.rest = v.to_owned();
        } else if let Some(v) = part.strip_prefix("grpc=") {
            started.grpc = Some(v.to_owned());
        }
    }
    started.model = Some("iris-lr".into());
    Ok(started)
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Trains the shared peer model: scikit-learn LogisticRegression on iris, saved with joblib.
const TRAIN: &str = r#"
import sys, joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
X, y = load_iris(return_X_y=True)
joblib.dump(LogisticRegression(max_iter=1000).fit(X.astype("float32"), y), sys.argv[1])
"#;

pub(crate) const MLSERVER_REQUIREMENTS: &str = "\
mlserver==1.7.1
mlserver-sklearn==1.7.1
scikit-learn==1.6.1
joblib==1.5.1
";

fn start_mlserver(sh: &Shell) -> Result<Started> {
    let python = crate::venv::ensure(sh, "conformance-mlserver", MLSERVER_REQUIREMENTS)?;
    let dir = fresh_dir("mlserver")?;
    let model_dir = dir.join("iris-sklearn");
    std::fs::create_dir_all(&model_dir)?;
    let joblib_file = model_dir.join("model.joblib");
    cmd!(sh, "{python} -c {TRAIN} {joblib_file}").run().context("training the iris model")?;
    let (http, grpc, metrics) = (free_port()?, free_port()?, free_port()?);
    std::fs::write(
        dir.join("settings.json"),
        format!(
            r#"{{"host": "127.0.0.1", "http_port": {http}, "grpc_port": {grpc}, "metrics_port": {metrics}, "parallel_workers": 0, "load_models_at_startup": true}}"#
        ),
    )?;
    std::fs::write(
        model_dir.join("model-settings.json"),
        r#"{"name": "iris-sklearn", "implementation": "mlserver_sklearn.SKLearnModel",
            "inputs": [{"name": "input-0", "datatype": "FP32", "shape": [-1, 4]}],
            "outputs": [{"name": "predict", "datatype": "INT64", "shape": [-1, 1]}],
            "parameters": {"uri": "./model.joblib", "version": "v1"}}"#,
    )?;
    let bin = python.parent().context("venv bin dir")?.join("mlserver");
    let child = Command::new(bin)
        .arg("start")
        .arg(&dir)
        .current_dir(&dir)
        .spawn()
        .context("starting mlserver")?;
    let mut started = Started {
        child,
        rest: format!("http://127.0.0.1:{http}"),
        grpc: Some(format!("127.0.0.1:{grpc}")),
        model: Some("iris-sklearn".into()),
    };
    wait_ready(&mut started, http, "/v2/models/iris-sklearn/ready")?;
    Ok(started)
}

pub(crate) const KSERVE_REQUIREMENTS: &str = "\
kserve==0.21.0
scikit-learn==1.6.1
joblib==1.5.1
";

/// A small `kserve.Model` serving the joblib model over V2 (REST and gRPC).
pub(crate) const KSERVE_SERVER: &str = r#"
import sys, joblib, numpy as np, kserve
from kserve import InferRequest, InferResponse, InferOutput
from kserve.utils.utils import generate_uuid

class Iris(kserve.Model):
    def __init__(self, name, path):
        super().__init__(name)
        self.path = path
        self.load()

    def load(self):
        self.model = joblib.load(self.path)
        self.ready = True
        return True

    async def get_input_types(self):
        return [{"name": "input-0", "datatype": "FP32", "shape": [-1, 4]}]

    async def get_output_types(self):
        return [{"name": "predict", "datatype": "INT64", "shape": [-1]}]

    def predict(self, payload: InferRequest, headers=None, response_headers=None):
        x = payload.inputs[0].as_numpy()
        y = self.model.predict(x).astype(np.int64)
        out = InferOutput(name="predict", shape=list(y.shape), datatype="INT64")
        out.set_data_from_numpy(y)
        # KServe's REST response needs a string id: echo the request's or make one.
        return InferResponse(model_name=self.name, infer_outputs=[out],
                             response_id=payload.id or generate_uuid())

if __name__ == "__main__":
    model = Iris("iris-sklearn", sys.argv[1])
    kserve.ModelServer(http_port=int(sys.argv[2]), grpc_port=int(sys.argv[3]), workers=1).start([model])
"#;

fn start_kserve(sh: &Shell) -> Result<Started> {
    let python = crate::venv::ensure(sh, "conformance-kserve", KSERVE_REQUIREMENTS)?;
    let dir = fresh_dir("kserve")?;
    let joblib_file = dir.join("model.joblib");
    cmd!(sh, "{python} -c {TRAIN} {joblib_file}").run().context("training the iris model")?;
    let script = dir.join("server.py");
    std::fs::write(&script, KSERVE_SERVER)?;
    let (http, grpc) = (free_port()?, free_port()?);
    let child = Command::new(&python)
        .arg(&script)
        .arg(&joblib_file)
        .args([http.to_string(), grpc.to_string()])
        .current_dir(&dir)
        .spawn()
        .context("starting the KServe model server")?;
    let mut started = Started {
        child,
        rest: format!("http://127.0.0.1:{http}"),
        grpc: Some(format!("127.0.0.1:{grpc}")),
        model: Some("iris-sklearn".into()),
    };
    wait_ready(&mut started, http, "/v2/models/iris-sklearn/ready")?;
    Ok(started)
}

fn fresh_dir(name: &str) -> Result<PathBuf> {
    let dir = crate::state_dir().join("conformance").join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A port that was free a moment ago (the peer binds it itself).
pub(crate) fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Polls `GET path` until it answers 200 (the peers print no machine-readable line).
pub(crate) fn wait_ready(server: &mut Started, port: u16, path: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if let Some(status) = server.child.try_wait()? {
            bail!("{} exited before becoming ready ({status})", server.rest);
        }
        if http_status(port, path).is_ok_and(|s| s == 200) {
            return Ok(());
        }
        std::thread::park_timeout(Duration::from_millis(200));
    }
    bail!("{} did not become ready within 120 s", server.rest)
}

fn http_status(port: u16, path: &str) -> Result<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head)?;
    let text = String::from_utf8_lossy(&head);
    Ok(text.get(9..12).context("short status line")?.parse()?)
}

//! `cargo xtask bench peers`: oxserve next to the serving systems users would pick instead.
//!
//! One run, on loopback, every server pinned to the same core and the load generators to
//! the other:
//! 1. builds `oxserve` and the load tools in release mode; creates (or reuses) venvs with
//!    the MLServer and KServe requirements of `cargo xtask conformance` (plus xgboost) and
//!    runs `fixtures/bench/make_models.py peer` there: it trains the iris LogisticRegression
//!    with the same call, data and seed as `fixtures/generate.py` uses for the ONNX
//!    `fixtures/models/iris-lr` that oxserve serves, and an XGBClassifier on 20 features
//!    saved both pickled (for the peers) and as XGBoost JSON (for oxserve); for each it
//!    writes the 1-row and 100-row requests and the labels they must get;
//! 2. starts, one after another, and then keeps running side by side (all pinned to the
//!    server core, idle unless measured): oxserve (`--threads 1`), the bare axum/tonic
//!    ceiling (`oxserve-bare`, one server per answer of oxserve, replaying its bytes),
//!    MLServer 1.7 in its fastest documented configuration (`parallel_workers: 0`,
//!    `debug: false`, i.e. inference in the server process and no access log) and in its
//!    default one, and KServe's Python model server (latency and access logging off), each
//!    serving both models;
//! 3. checks each system's answers to both requests (HTTP 200 and the expected labels), then
//!    measures V2 REST with `oha` (non-2xx answers and connection errors counted as errors)
//!    at each concurrency with 1 row and at one concurrency with 100 rows, and V2 gRPC with
//!    `oxserve-grpc-load` (status and output count of every answer checked): every point in
//!    `--repeat` rounds over all the systems, keeping each system's median run (by
//!    throughput, with the errors of all runs), so that other work on a shared machine weighs
//!    on every system alike and the ratios between them hold still;
//! 4. writes the tables to `.oxserve/bench/peers.md`, between the `bench peers` markers of
//!    `docs/benchmarks.md`, and renders the latency-vs-throughput chart with `oxserve-chart`.
//!
//! Processes it starts are stopped by PID when the run ends, however it ends.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use xshell::{Shell, cmd};

use super::server::{
    Guard, Measurement, OhaLoad, ensure_oha, http_post, median, ms, oha_post, start,
};
use crate::conformance::{
    KSERVE_REQUIREMENTS, KSERVE_SERVER, MLSERVER_REQUIREMENTS, Started, free_port, wait_ready,
};

#[derive(clap::Args)]
pub struct Args {
    /// Measured time of each run, e.g. 5s.
    #[arg(long, default_value = "5s")]
    duration: String,
    /// Unmeasured warm-up before each measurement.
    #[arg(long, default_value = "1s")]
    warmup: String,
    /// Concurrency levels of the 1-row runs (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
    concurrency: Vec<u32>,
    /// Concurrency of the 100-row REST run.
    #[arg(long, default_value_t = 8)]
    batch_concurrency: u32,
    /// Measure each (model, protocol, request size, concurrency) this many times, in rounds
    /// over all the systems, and report each system's median run: on a shared machine, other
    /// work then weighs on every system alike.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Core the servers are pinned to.
    #[arg(long, default_value_t = 0)]
    server_cpu: u32,
    /// Core the load generators are pinned to.
    #[arg(long, default_value_t = 1)]
    load_cpu: u32,
    /// Leave `docs/benchmarks.md` and the chart alone; write only under `.oxserve/bench/`.
    #[arg(long)]
    no_docs: bool,
}

/// The iris model's name in every system.
const MODEL: &str = "iris-lr";

/// The pin added to the peers' requirements for the XGBoost model.
const XGBOOST: &str = "xgboost==3.2.0\n";

/// The XGBoost model's name in every system.
const XGB_MODEL: &str = "xgb-20";

/// Where the chart goes, relative to the project root (linked from `docs/benchmarks.md`).
const CHART: &str = "docs/benchmarks-peers.svg";

/// Issue targets at c=64, reported against (never asserted).
const REST_PEER_TARGET: f64 = 40.0;
const REST_CEILING_TARGET: f64 = 0.7;
const REST_P99_TARGET_US: u64 = 3_000;
const GRPC_PEER_TARGET: f64 = 20.0;

/// The systems, in the order of the tables.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum System {
    Oxserve,
    Bare,
    MlserverFast,
    MlserverDefault,
    Kserve,
}

impl System {
    const ALL: [System; 5] = [
        System::Oxserve,
        System::Bare,
        System::MlserverFast,
        System::MlserverDefault,
        System::Kserve,
    ];

    fn name(self) -> &'static str {
        match self {
            System::Oxserve => "oxserve",
            System::Bare => "bare ceiling",
            System::MlserverFast => "MLServer (fastest)",
            System::MlserverDefault => "MLServer (default)",
            System::Kserve => "KServe",
        }
    }
}

/// One measured configuration.
#[derive(Clone, Debug)]
struct Row {
    model: &'static str,
    system: System,
    grpc: bool,
    rows: u32,
    concurrency: u32,
    m: Measurement,
}

impl Row {
    fn new(w: &Workload, system: System, p: Point, m: Measurement) -> Row {
        let Point { grpc, rows, concurrency } = p;
        Row { model: w.model, system, grpc, rows, concurrency, m }
    }
}

/// One model every system serves, with its requests and the labels they must get.
struct Workload {
    model: &'static str,
    request_1: PathBuf,
    request_100: PathBuf,
    body_1: String,
    body_100: String,
    labels_1: Vec<i64>,
    labels_100: Vec<i64>,
    /// Measured over gRPC too (`oxserve-grpc-load` sends the iris row only).
    grpc: bool,
}

impl Workload {
    /// Reads what `make_models.py peer` wrote for `model` under `data`.
    fn read(data: &Path, model: &'static str, grpc: bool) -> Result<Workload> {
        let dir = data.join(model);
        let labels = |n: u32| -> Result<Vec<i64>> {
            let path = dir.join(format!("labels-{n}.json"));
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)
                .with_context(|| format!("parsing {}", path.display()))?;
            let labels: Vec<i64> =
                v.as_array().context("labels: a list")?.iter().filter_map(Value::as_i64).collect();
            ensure!(labels.len() == n as usize, "{}: expected {n} labels", path.display());
            Ok(labels)
        };
        let (request_1, request_100) = (dir.join("request-1.json"), dir.join("request-100.json"));
        Ok(Workload {
            model,
            body_1: std::fs::read_to_string(&request_1)?,
            body_100: std::fs::read_to_string(&request_100)?,
            request_1,
            request_100,
            labels_1: labels(1)?,
            labels_100: labels(100)?,
            grpc,
        })
    }

    fn path(&self) -> String {
        format!("/v2/models/{}/infer", self.model)
    }

    /// The request file with `rows` rows (1 or 100).
    fn request(&self, rows: u32) -> &Path {
        if rows == 1 { &self.request_1 } else { &self.request_100 }
    }
}

/// The models of the run: the iris LogisticRegression (ONNX in oxserve) and an XGBoost
/// classifier on 20 features (oxserve's native tree runtime).
const MODELS: [&str; 2] = [MODEL, XGB_MODEL];

pub fn run(sh: &Shell, args: Args) -> Result<()> {
    let Args {
        duration,
        warmup,
        concurrency,
        batch_concurrency,
        server_cpu,
        load_cpu,
        repeat,
        no_docs,
    } = args;
    ensure!(repeat > 0, "--repeat must be at least 1");
    ensure!(!concurrency.is_empty(), "--concurrency needs at least one level");
    let machine_before = super::machine_description();
    let lib = crate::onnxruntime::ensure(sh)?;
    let oha = ensure_oha(sh)?;
    cmd!(sh, "cargo build --release -p oxserve-cli -p oxserve-loadtest")
        .run()
        .context("building oxserve and the load tools")?;
    let bin = super::target_dir().join("release");
    // uvloop 0.22 broke MLServer 1.7.1's parallel inference workers (SeldonIO/MLServer
    // issue 2286: they exit at start), which its default configuration uses; pin the last
    // release that works so the default can be measured at all.
    // Both peers also get xgboost (the version of the fixtures venv) to unpickle the
    // XGBClassifier of the second model.
    let mlserver_requirements = format!("{MLSERVER_REQUIREMENTS}uvloop==0.21.0\n{XGBOOST}");
    let mlserver_python = crate::venv::ensure(sh, "bench-mlserver", &mlserver_requirements)?;
    let kserve_requirements = format!("{KSERVE_REQUIREMENTS}{XGBOOST}");
    let kserve_python = crate::venv::ensure(sh, "bench-kserve", &kserve_requirements)?;

    let dir = crate::state_dir().join("bench").join("peers");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let data = dir.join("model");
    let script = crate::project_root().join("fixtures/bench/make_models.py");
    cmd!(sh, "{mlserver_python} {script} peer {data}")
        .run()
        .context("training the peers' models")?;
    let cpu = server_cpu.to_string();
    let bench = Bench {
        bin: &bin,
        dir: &dir,
        data: &data,
        cpu: &cpu,
        load: Load {
            sh,
            oha: &oha,
            grpc_load: &bin.join("oxserve-grpc-load"),
            load_cpu,
            warmup: &warmup,
            duration: &duration,
        },
        workloads: [Workload::read(&data, MODEL, true)?, Workload::read(&data, XGB_MODEL, false)?],
        concurrency: &concurrency,
        batch_concurrency,
    };

    let rows = bench.measure(&lib, &mlserver_python, &kserve_python, repeat)?;

    let commit = cmd!(sh, "git rev-parse --short HEAD").read().unwrap_or_default();
    let levels = concurrency.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
    let mut report = format!(
        "Command: `cargo xtask bench peers --duration {duration} --warmup {warmup} \
         --concurrency {levels} --batch-concurrency {batch_concurrency} --repeat {repeat}`  \n\
         Machine: {machine_before} (at start; {} at the end)  \n\
         Pinning: every server on core {server_cpu}, all running side by side; each row the \
         median of {repeat} runs, measured in rounds over all the systems (errors: all runs); \
         load generators on core {load_cpu}; {warmup} warm-up before each {duration} run  \n\
         Commit: {commit}; models: `iris-lr`, the iris LogisticRegression (ONNX in oxserve, \
         joblib in the peers, same training call and seed) and `xgb-20`, an XGBClassifier \
         with 100 trees on 20 features (XGBoost JSON in oxserve, the pickled classifier in \
         the peers, the same trees); REST: JSON, 1 row or 100 rows; gRPC (iris only): \
         1 row, typed `fp32_contents`\n\n",
        super::load_average(),
    );
    report.push_str(&table(&rows));
    println!("\n{report}");
    let out = crate::state_dir().join("bench").join("peers.md");
    std::fs::write(&out, &report).with_context(|| format!("writing {}", out.display()))?;
    let chart_json = dir.join("chart.json");
    std::fs::write(&chart_json, serde_json::to_string_pretty(&chart_data(&rows))?)?;
    println!("written to {}", out.display());
    if !no_docs {
        super::publish(sh, &bin, "peers", &report, &chart_json, CHART)?;
    }
    Ok(())
}

/// What both phases of the run share: where things are, the server core, how load is driven
/// and what is measured.
struct Bench<'a> {
    bin: &'a Path,
    /// The run's directory: configurations, answers and logs.
    dir: &'a Path,
    /// What `make_models.py peer` wrote.
    data: &'a Path,
    cpu: &'a str,
    load: Load<'a>,
    workloads: [Workload; 2],
    concurrency: &'a [u32],
    batch_concurrency: u32,
}

impl Bench<'_> {
    /// Every system, started one after another and then running side by side (all pinned
    /// to the server core, idle unless measured): each point is measured in `repeat` rounds
    /// over all of them, so that whatever else the machine does weighs on every system alike.
    /// Rows come out by system, then workload and point.
    fn measure(
        &self,
        lib: &Path,
        mlserver_python: &Path,
        kserve_python: &Path,
        repeat: usize,
    ) -> Result<Vec<Row>> {
        eprintln!("xtask: starting oxserve");
        let (_oxserve, ox) = self.start_oxserve(lib)?;
        self.check_answers(System::Oxserve, &ox)?;
        let answers = self.capture_answers(&ox)?;
        eprintln!("xtask: starting the bare ceilings");
        let (_ceilings, bare) = self.start_ceilings(&answers)?;
        self.check_answers(System::Bare, &bare)?;
        let mut peers = Vec::new();
        for system in [System::MlserverFast, System::MlserverDefault, System::Kserve] {
            eprintln!("xtask: starting {}", system.name());
            let (cpu, dir, data) = (self.cpu, self.dir, self.data);
            let started = match system {
                System::MlserverFast => start_mlserver(cpu, mlserver_python, dir, data, true)?,
                System::MlserverDefault => start_mlserver(cpu, mlserver_python, dir, data, false)?,
                System::Kserve => start_kserve(cpu, kserve_python, dir, data)?,
                System::Oxserve | System::Bare => bail!("{} is not a peer", system.name()),
            };
            let grpc =
                started.grpc.clone().with_context(|| format!("{}: no gRPC", system.name()))?;
            let at = Endpoints::one_server(&started.rest, grpc);
            self.check_answers(system, &at)?;
            // The started peer is kept (and stopped by PID when dropped) with its endpoints.
            peers.push((system, at, started));
        }
        let mut systems = vec![(System::Oxserve, &ox), (System::Bare, &bare)];
        systems.extend(peers.iter().map(|(system, at, _)| (*system, at)));
        let mut rows = Vec::new();
        for w in &self.workloads {
            for p in self.points(w) {
                let medians = rounds(&systems, repeat, |(system, at), round| {
                    eprintln!("xtask: {} {} ({round}/{repeat})", system.name(), w.model);
                    self.load.point(at, w, p)
                })?;
                for ((system, _), m) in systems.iter().zip(medians) {
                    rows.push(Row::new(w, *system, p, m));
                }
            }
        }
        // Stable: within a system, workloads and points keep their order.
        rows.sort_by_key(|r| System::ALL.iter().position(|s| *s == r.system));
        Ok(rows)
    }

    /// `oxserve serve` (`--threads 1`) on a repository of both models.
    fn start_oxserve(&self, lib: &Path) -> Result<(Guard, Endpoints)> {
        let repo = self.dir.join("oxserve");
        std::fs::create_dir_all(repo.join(MODEL))?;
        std::fs::copy(
            crate::project_root().join("fixtures/models").join(MODEL).join("model.onnx"),
            repo.join(MODEL).join("model.onnx"),
        )?;
        std::fs::create_dir_all(repo.join(XGB_MODEL))?;
        std::fs::copy(
            self.data.join(XGB_MODEL).join("model.json"),
            repo.join(XGB_MODEL).join("model.json"),
        )?;
        let mut serve = taskset(self.cpu, &self.bin.join("oxserve"));
        serve
            .arg("serve")
            .arg(&repo)
            .args(["--http-port", "0", "--grpc-port", "0", "--threads", "1"])
            .env("OXSERVE_ONNXRUNTIME_LIB", lib);
        let (guard, rest, grpc) =
            start(serve, &self.dir.join("oxserve.log"), "oxserve listening ")?;
        Ok((guard, Endpoints::one_server(&rest, grpc)))
    }

    /// Saves oxserve's answers to both requests of every workload, and to the gRPC iris row.
    fn capture_answers(&self, ox: &Endpoints) -> Result<Answers> {
        let mut rest = Vec::new();
        for w in &self.workloads {
            for (n, body) in [(1, &w.body_1), (100, &w.body_100)] {
                let file = self.dir.join(format!("answer-{}-{n}.json", w.model));
                std::fs::write(&file, http_post(ox.rest(w.model, n)?, &w.path(), body)?)?;
                rest.push((w.model, n, file));
            }
        }
        let Load { sh, grpc_load, .. } = self.load;
        let (addr, grpc) = (&ox.grpc, self.dir.join("answer.pb"));
        cmd!(sh, "{grpc_load} --addr {addr} --model {MODEL} --save-response {grpc}")
            .run()
            .context("capturing oxserve's gRPC answer")?;
        Ok(Answers { rest, grpc })
    }

    /// One ceiling per REST answer of oxserve, replaying it (and the gRPC answer).
    fn start_ceilings(&self, answers: &Answers) -> Result<(Vec<Guard>, Endpoints)> {
        let mut guards = Vec::new();
        let mut rest = Vec::new();
        let mut grpc = None;
        for (model, n, answer) in &answers.rest {
            let tag = format!("{model}-{n}");
            let (guard, url, g) =
                start_bare(self.cpu, self.bin, self.dir, answer, &answers.grpc, &tag)?;
            guards.push(guard);
            if (*model, *n) == (MODEL, 1) {
                grpc = Some(g);
            }
            rest.push((*model, *n, url));
        }
        let grpc = grpc.context("no ceiling for the 1-row iris answer")?;
        Ok((guards, Endpoints { rest, grpc }))
    }

    /// `system`'s answers to both requests of every workload: HTTP 200, the expected labels.
    fn check_answers(&self, system: System, at: &Endpoints) -> Result<()> {
        for w in &self.workloads {
            for (n, body, labels) in
                [(1, &w.body_1, &w.labels_1), (100, &w.body_100, &w.labels_100)]
            {
                check_answer(&http_post(at.rest(w.model, n)?, &w.path(), body)?, labels)
                    .with_context(|| {
                        format!("{}: the {n}-row {} answer", system.name(), w.model)
                    })?;
            }
        }
        Ok(())
    }

    fn points(&self, w: &Workload) -> Vec<Point> {
        points(w.grpc, self.concurrency, self.batch_concurrency)
    }
}

/// One measurement of a workload: protocol, rows per request, concurrency.
#[derive(Clone, Copy, PartialEq, Debug)]
struct Point {
    grpc: bool,
    rows: u32,
    concurrency: u32,
}

/// A workload's points in the order of the tables: REST with 1 row at each concurrency, REST
/// with 100 rows at `batch_concurrency`, then (`grpc`) gRPC with 1 row at each concurrency.
fn points(grpc: bool, concurrency: &[u32], batch_concurrency: u32) -> Vec<Point> {
    let one_row = |grpc| concurrency.iter().map(move |&c| Point { grpc, rows: 1, concurrency: c });
    let mut points: Vec<Point> = one_row(false).collect();
    points.push(Point { grpc: false, rows: 100, concurrency: batch_concurrency });
    if grpc {
        points.extend(one_row(true));
    }
    points
}

/// Measures every system `repeat` times in rounds (first, second, …, first, second, …) and
/// returns each one's median run, with the errors of all its runs, in the order given.
fn rounds<S: Copy>(
    systems: &[S],
    repeat: usize,
    mut measure: impl FnMut(S, usize) -> Result<Measurement>,
) -> Result<Vec<Measurement>> {
    let mut runs: Vec<Vec<Measurement>> = systems.iter().map(|_| Vec::new()).collect();
    for round in 1..=repeat {
        for (&system, runs) in systems.iter().zip(&mut runs) {
            runs.push(measure(system, round)?);
        }
    }
    Ok(runs.into_iter().map(median).collect())
}

/// Where a started system answers: a REST base URL per (model, rows per request), since the
/// ceiling runs one server per answer, and a gRPC address.
struct Endpoints {
    rest: Vec<(&'static str, u32, String)>,
    grpc: String,
}

impl Endpoints {
    /// One server answering every model and request size.
    fn one_server(rest: &str, grpc: String) -> Endpoints {
        let rest = MODELS.iter().flat_map(|&m| [1, 100].map(|n| (m, n, rest.to_owned()))).collect();
        Endpoints { rest, grpc }
    }

    fn rest(&self, model: &str, rows: u32) -> Result<&str> {
        self.rest
            .iter()
            .find(|(m, n, _)| *m == model && *n == rows)
            .map(|(_, _, url)| url.as_str())
            .with_context(|| format!("no server for {rows}-row {model} requests"))
    }
}

/// oxserve's answers, which the ceilings replay: REST per (model, rows per request), gRPC for
/// the iris row.
struct Answers {
    rest: Vec<(&'static str, u32, PathBuf)>,
    grpc: PathBuf,
}

/// `taskset -c <cpu> <program>`: the program execs in place, so its PID is the server's.
fn taskset(cpu: &str, program: &Path) -> Command {
    let mut command = Command::new("taskset");
    command.args(["-c", cpu]).arg(program);
    command
}

fn start_bare(
    cpu: &str,
    bin: &Path,
    dir: &Path,
    rest_body: &Path,
    grpc_response: &Path,
    tag: &str,
) -> Result<(Guard, String, String)> {
    let mut bare = taskset(cpu, &bin.join("oxserve-bare"));
    bare.args(["--threads", "1", "--rest-body"])
        .arg(rest_body)
        .arg("--grpc-response")
        .arg(grpc_response);
    start(bare, &dir.join(format!("bare-{tag}.log")), "oxserve-bare listening ")
}

/// MLServer with the scikit-learn runtime; `fast`: in-process inference, no access log.
fn start_mlserver(
    cpu: &str,
    python: &Path,
    dir: &Path,
    data: &Path,
    fast: bool,
) -> Result<Started> {
    let name = if fast { "mlserver-fast" } else { "mlserver-default" };
    let root = dir.join(name);
    for (model, input, features) in [(MODEL, "float_input", 4), (XGB_MODEL, "input-0", 20)] {
        let model_dir = root.join(model);
        std::fs::create_dir_all(&model_dir)?;
        std::fs::copy(data.join(model).join("model.joblib"), model_dir.join("model.joblib"))?;
        std::fs::write(
            model_dir.join("model-settings.json"),
            format!(
                r#"{{"name": "{model}", "implementation": "mlserver_sklearn.SKLearnModel",
            "inputs": [{{"name": "{input}", "datatype": "FP32", "shape": [-1, {features}]}}],
            "outputs": [{{"name": "predict", "datatype": "INT64", "shape": [-1, 1]}}],
            "parameters": {{"uri": "./model.joblib", "version": "v1"}}}}"#
            ),
        )?;
    }
    let (http, grpc, metrics) = (free_port()?, free_port()?, free_port()?);
    let tuning = if fast { r#", "parallel_workers": 0, "debug": false"# } else { "" };
    std::fs::write(
        root.join("settings.json"),
        format!(
            r#"{{"host": "127.0.0.1", "http_port": {http}, "grpc_port": {grpc}, "metrics_port": {metrics}, "load_models_at_startup": true{tuning}}}"#
        ),
    )?;
    let mut command = taskset(cpu, &python.parent().context("venv bin dir")?.join("mlserver"));
    command.arg("start").arg(&root).current_dir(&root);
    let child = spawn_logged(command, &dir.join(format!("{name}.log")))?;
    let mut started = Started {
        child,
        rest: format!("http://127.0.0.1:{http}"),
        grpc: Some(format!("127.0.0.1:{grpc}")),
        model: Some(MODEL.into()),
    };
    for model in MODELS {
        wait_ready(&mut started, http, &format!("/v2/models/{model}/ready"))?;
    }
    Ok(started)
}

/// Runs the conformance `kserve.Model` (imported from its script, not copied) with
/// KServe's latency logging and uvicorn's access log off.
const KSERVE_BENCH: &str = r#"
import logging, os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kserve
from server import Iris
# argv: data dir, HTTP port, gRPC port, model names (each served from <data>/<name>/model.joblib)
models = [Iris(name, os.path.join(sys.argv[1], name, "model.joblib")) for name in sys.argv[4:]]
server = kserve.ModelServer(http_port=int(sys.argv[2]), grpc_port=int(sys.argv[3]), workers=1,
                            enable_latency_logging=False)
logging.getLogger("uvicorn.access").disabled = True
server.start(models)
"#;

fn start_kserve(cpu: &str, python: &Path, dir: &Path, data: &Path) -> Result<Started> {
    let root = dir.join("kserve");
    std::fs::create_dir_all(&root)?;
    std::fs::write(root.join("server.py"), KSERVE_SERVER)?;
    let script = root.join("bench_server.py");
    std::fs::write(&script, KSERVE_BENCH)?;
    let (http, grpc) = (free_port()?, free_port()?);
    let mut command = taskset(cpu, python);
    command
        .arg(&script)
        .arg(data)
        .args([http.to_string(), grpc.to_string()])
        .args(MODELS)
        .current_dir(&root);
    let child = spawn_logged(command, &dir.join("kserve.log"))?;
    let mut started = Started {
        child,
        rest: format!("http://127.0.0.1:{http}"),
        grpc: Some(format!("127.0.0.1:{grpc}")),
        model: Some(MODEL.into()),
    };
    for model in MODELS {
        wait_ready(&mut started, http, &format!("/v2/models/{model}/ready"))?;
    }
    Ok(started)
}

fn spawn_logged(mut command: Command, log: &Path) -> Result<std::process::Child> {
    let out = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    command
        .stdout(out.try_clone()?)
        .stderr(out)
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {command:?}"))
}

/// The labels of a V2 answer (output `label` for oxserve, `predict` for the sklearn peers)
/// must be `expected`.
fn check_answer(body: &[u8], expected: &[i64]) -> Result<()> {
    let v: Value = serde_json::from_slice(body).context("the answer is not JSON")?;
    let outputs = v["outputs"].as_array().context("the answer has no outputs")?;
    let Some(labels) =
        outputs.iter().find(|o| matches!(o["name"].as_str(), Some("label" | "predict")))
    else {
        bail!("the answer has no `label` or `predict` output");
    };
    let got: Vec<i64> = labels["data"]
        .as_array()
        .context("labels: data is not a list")?
        .iter()
        .map(|x| x.as_i64().context("labels: not an integer"))
        .collect::<Result<_>>()?;
    ensure!(got == expected, "labels {got:?}, expected {expected:?}");
    Ok(())
}

/// How load is driven: one tool per protocol, pinned to the load core.
struct Load<'a> {
    sh: &'a Shell,
    oha: &'a Path,
    grpc_load: &'a Path,
    load_cpu: u32,
    warmup: &'a str,
    duration: &'a str,
}

impl Load<'_> {
    /// One measurement of `w` at `p` on the system answering at `at`.
    fn point(&self, at: &Endpoints, w: &Workload, p: Point) -> Result<Measurement> {
        if p.grpc {
            self.grpc(&at.grpc, p.concurrency)
        } else {
            self.rest(at.rest(w.model, p.rows)?, w, w.request(p.rows), p.concurrency)
        }
    }

    fn rest(&self, base: &str, w: &Workload, body: &Path, c: u32) -> Result<Measurement> {
        let Load { sh, oha, load_cpu, .. } = *self;
        let load_cpu = load_cpu.to_string();
        let url = format!("{base}{}", w.path());
        let c = c.to_string();
        let once = |time: &str| {
            oha_post(sh, oha, &load_cpu, OhaLoad { time, concurrency: &c, rate: None }, body, &url)
        };
        eprintln!("xtask:   REST c={c} {}", body.display());
        once(self.warmup)?;
        let m = once(self.duration)?;
        report(&m);
        Ok(m)
    }

    fn grpc(&self, addr: &str, c: u32) -> Result<Measurement> {
        let Load { sh, grpc_load, load_cpu, warmup, duration, .. } = *self;
        let load_cpu = load_cpu.to_string();
        let c = c.to_string();
        eprintln!("xtask:   gRPC c={c}");
        let out = cmd!(
            sh,
            "taskset -c {load_cpu} {grpc_load} --addr {addr} --model {MODEL} --concurrency {c} --warmup {warmup} --duration {duration}"
        )
        .read()
        .context("running oxserve-grpc-load")?;
        let m = Measurement::from_grpc_load(&out)?;
        report(&m);
        Ok(m)
    }
}

fn report(m: &Measurement) {
    eprintln!(
        "xtask:     {:.0} req/s, p50 {} µs, p99 {} µs, {} errors",
        m.rps, m.p50_us, m.p99_us, m.errors
    );
}

fn protocol(grpc: bool) -> &'static str {
    if grpc { "gRPC" } else { "REST" }
}

fn find<'a>(
    rows: &'a [Row],
    model: &str,
    system: System,
    grpc: bool,
    n: u32,
    c: u32,
) -> Option<&'a Row> {
    rows.iter().find(|r| {
        r.model == model
            && r.system == system
            && r.grpc == grpc
            && r.rows == n
            && r.concurrency == c
    })
}

/// `a / b` as `12.3×`, or `–` when either is missing or zero.
fn ratio(a: Option<&Row>, b: Option<&Row>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b.m.rps > 0.0 => format!("{:.2}×", a.m.rps / b.m.rps),
        _ => "–".to_owned(),
    }
}

/// The results table, the ratio table (oxserve's throughput over each other system's) and the
/// targets of the issue.
/// The tables of every model, in order.
fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    for model in MODELS {
        if rows.iter().any(|r| r.model == model) {
            out.push_str(&format!("**{model}**\n\n"));
            out.push_str(&model_table(rows, model));
            out.push('\n');
        }
    }
    out
}

fn model_table(rows: &[Row], model: &str) -> String {
    let mut out = String::from(
        "| system | protocol | rows | concurrency | req/s | p50 | p99 | errors | ÷ ceiling |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows.iter().filter(|r| r.model == model) {
        let ceiling = find(rows, model, System::Bare, r.grpc, r.rows, r.concurrency);
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.0} | {} | {} | {} | {} |\n",
            r.system.name(),
            protocol(r.grpc),
            r.rows,
            r.concurrency,
            r.m.rps,
            ms(r.m.p50_us),
            ms(r.m.p99_us),
            r.m.errors,
            ratio(Some(r), ceiling),
        ));
    }
    out.push_str(
        "\noxserve's throughput divided by each other system's:\n\n\
         | protocol | rows | concurrency | ÷ MLServer (fastest) | ÷ MLServer (default) | ÷ KServe | ÷ ceiling |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows.iter().filter(|r| r.model == model && r.system == System::Oxserve) {
        let other = |s| find(rows, model, s, r.grpc, r.rows, r.concurrency);
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            protocol(r.grpc),
            r.rows,
            r.concurrency,
            ratio(Some(r), other(System::MlserverFast)),
            ratio(Some(r), other(System::MlserverDefault)),
            ratio(Some(r), other(System::Kserve)),
            ratio(Some(r), other(System::Bare)),
        ));
    }
    out.push_str("\nTargets (1 row, concurrency 64; reported, not asserted):\n");
    let at = |s, grpc| find(rows, model, s, grpc, 1, 64);
    let best_mlserver = |grpc| {
        [at(System::MlserverFast, grpc), at(System::MlserverDefault, grpc)]
            .into_iter()
            .flatten()
            .max_by(|a, b| a.m.rps.total_cmp(&b.m.rps))
    };
    let verdict = |met: bool| if met { "met" } else { "missed" };
    let times = |a: &Row, b: &Row| a.m.rps / b.m.rps.max(f64::MIN_POSITIVE);
    if let Some(ox) = at(System::Oxserve, false) {
        if let Some(ml) = best_mlserver(false) {
            let x = times(ox, ml);
            out.push_str(&format!(
                "- REST ≥ {REST_PEER_TARGET}× MLServer's best ({}): {x:.1}× → {}\n",
                ml.system.name(),
                verdict(x >= REST_PEER_TARGET)
            ));
        }
        if let Some(ks) = at(System::Kserve, false) {
            let x = times(ox, ks);
            out.push_str(&format!(
                "- REST ≥ {REST_PEER_TARGET}× KServe: {x:.1}× → {}\n",
                verdict(x >= REST_PEER_TARGET)
            ));
        }
        if let Some(bare) = at(System::Bare, false) {
            let x = times(ox, bare);
            out.push_str(&format!(
                "- REST ≥ {REST_CEILING_TARGET}× the ceiling: {x:.2}× → {}\n",
                verdict(x >= REST_CEILING_TARGET)
            ));
        }
        out.push_str(&format!(
            "- REST p99 ≤ {}: {} → {}\n",
            ms(REST_P99_TARGET_US),
            ms(ox.m.p99_us),
            verdict(ox.m.p99_us <= REST_P99_TARGET_US)
        ));
        let errors: u64 = rows
            .iter()
            .filter(|r| r.model == model && r.system == System::Oxserve)
            .map(|r| r.m.errors)
            .sum();
        out.push_str(&format!(
            "- zero errors (oxserve, all runs): {errors} → {}\n",
            verdict(errors == 0)
        ));
    }
    if let (Some(ox), Some(ml)) = (at(System::Oxserve, true), best_mlserver(true)) {
        let x = times(ox, ml);
        out.push_str(&format!(
            "- gRPC ≥ {GRPC_PEER_TARGET}× MLServer's best gRPC ({}): {x:.1}× → {}\n",
            ml.system.name(),
            verdict(x >= GRPC_PEER_TARGET)
        ));
    }
    out
}

/// The chart's input for `oxserve-chart`: one series per system and protocol (1-row
/// requests), one point per concurrency, throughput against median latency.
fn chart_data(rows: &[Row]) -> Value {
    let mut series = Vec::new();
    for system in System::ALL {
        for grpc in [false, true] {
            let mut points: Vec<&Row> = rows
                .iter()
                .filter(|r| r.model == MODEL && r.system == system && r.grpc == grpc && r.rows == 1)
                .collect();
            if points.is_empty() {
                continue;
            }
            points.sort_by_key(|r| r.concurrency);
            series.push(json!({
                "name": format!("{} {}", system.name(), protocol(grpc)),
                "points": points.iter().map(|r| json!({
                    "label": format!("c={}", r.concurrency),
                    "x": r.m.rps,
                    "y": r.m.p50_us as f64 / 1000.0,
                })).collect::<Vec<_>>(),
            }));
        }
    }
    json!({
        "title": "iris LogisticRegression, 1 row per request, server on one core",
        "x_label": "throughput (req/s, log scale)",
        "y_label": "median latency (ms, log scale)",
        "series": series,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(system: System, grpc: bool, rps: f64, p99_us: u64) -> Row {
        Row {
            model: MODEL,
            system,
            grpc,
            rows: 1,
            concurrency: 64,
            m: Measurement { rps, p50_us: 500, p99_us, errors: 0 },
        }
    }

    #[test]
    fn ratios_and_targets() {
        let rows = [
            row(System::Oxserve, false, 20000.0, 2500),
            row(System::Bare, false, 25000.0, 900),
            row(System::MlserverFast, false, 400.0, 90000),
            row(System::MlserverDefault, false, 250.0, 90000),
            row(System::Kserve, false, 1000.0, 50000),
            row(System::Oxserve, true, 10000.0, 4000),
            row(System::MlserverFast, true, 1000.0, 4000),
        ];
        let t = table(&rows);
        assert!(
            t.contains("| oxserve | REST | 1 | 64 | 20000 | 0.50 ms | 2.50 ms | 0 | 0.80× |"),
            "{t}"
        );
        assert!(t.contains("| REST | 1 | 64 | 50.00× | 80.00× | 20.00× | 0.80× |"), "{t}");
        assert!(t.contains("MLServer's best (MLServer (fastest)): 50.0× → met"), "{t}");
        assert!(t.contains("KServe: 20.0× → missed"), "{t}");
        assert!(t.contains("the ceiling: 0.80× → met"), "{t}");
        assert!(t.contains("best gRPC (MLServer (fastest)): 10.0× → missed"), "{t}");
    }

    #[test]
    fn points_in_table_order() {
        let p = |grpc, rows, concurrency| Point { grpc, rows, concurrency };
        assert_eq!(
            points(true, &[1, 64], 8),
            [p(false, 1, 1), p(false, 1, 64), p(false, 100, 8), p(true, 1, 1), p(true, 1, 64)]
        );
        assert_eq!(points(false, &[1, 64], 8), [p(false, 1, 1), p(false, 1, 64), p(false, 100, 8)]);
    }

    #[test]
    fn measures_in_rounds_and_keeps_medians() {
        let mut order = Vec::new();
        let mut rps = [10.0, 200.0, 1.0, 30.0, 100.0, 3.0, 20.0, 300.0, 2.0].into_iter();
        let medians = rounds(&["ox", "bare", "peer"], 3, |system, round| {
            order.push((system, round));
            Ok(Measurement { rps: rps.next().unwrap(), p50_us: 0, p99_us: 0, errors: 1 })
        })
        .unwrap();
        assert_eq!(
            order,
            [
                ("ox", 1),
                ("bare", 1),
                ("peer", 1),
                ("ox", 2),
                ("bare", 2),
                ("peer", 2),
                ("ox", 3),
                ("bare", 3),
                ("peer", 3)
            ]
        );
        let got: Vec<(f64, u64)> = medians.iter().map(|m| (m.rps, m.errors)).collect();
        assert_eq!(got, [(20.0, 3), (200.0, 3), (2.0, 3)]);
    }

    #[test]
    fn checks_labels() {
        let ok =
            br#"{"outputs":[{"name":"predict","datatype":"INT64","shape":[2,1],"data":[1,2]}]}"#;
        assert!(check_answer(ok, &[1, 2]).is_ok());
        assert!(check_answer(ok, &[1, 1]).is_err());
        let other = br#"{"outputs":[{"name":"probabilities","data":[0.5]}]}"#;
        assert!(check_answer(other, &[1]).is_err());
    }
}

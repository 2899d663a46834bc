//! `cargo xtask bench instructions`: user-space instructions per REST request, counted by
//! valgrind's callgrind, for oxserve and for the bare ceiling.
//!
//! Instruction counts do not depend on what else the machine is doing, so they compare
//! builds (before/after a change, `--oxserve PATH`) where throughput on a shared machine
//! cannot. They leave out the kernel (socket reads and writes), which both servers pay
//! alike. One run per (model, server):
//! 1. start the server under `valgrind --tool=callgrind` on loopback, one worker thread;
//! 2. send `--warmup` requests with `oha`, then zero the counters (`callgrind_control -z`);
//! 3. send `--requests` requests (all must answer 2xx), dump the counters
//!    (`callgrind_control -d`) and divide the total by the number of requests.
//!
//! The bare ceiling (`oxserve-bare`) answers with the bytes oxserve answered, so the two
//! rows of a model differ by oxserve's own work: decoding, the model, encoding, bookkeeping.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use xshell::{Shell, cmd};

use super::server::{Guard, Measurement, ensure_oha, http_post, start};

#[derive(clap::Args)]
pub struct Args {
    /// Requests counted per (model, server).
    #[arg(long, default_value_t = 2000)]
    requests: u32,
    /// Requests sent before the counters are zeroed.
    #[arg(long, default_value_t = 200)]
    warmup: u32,
    /// Concurrent connections of the load.
    #[arg(long, default_value_t = 8)]
    concurrency: u32,
    /// The `oxserve` binary to measure (default: this tree's release build).
    #[arg(long)]
    oxserve: Option<PathBuf>,
    /// The `oxserve-bare` binary to measure (default: this tree's release build).
    #[arg(long)]
    bare: Option<PathBuf>,
    /// Models from `fixtures/models` (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "iris-lr,xgb-binary")]
    models: Vec<String>,
}

/// One measured (model, server) pair.
struct Row {
    model: String,
    system: &'static str,
    per_request: f64,
}

pub fn run(sh: &Shell, args: Args) -> Result<()> {
    let Args { requests, warmup, concurrency, oxserve, bare, models } = args;
    ensure!(requests > 0, "--requests must be at least 1");
    for tool in ["valgrind", "callgrind_control"] {
        ensure!(
            cmd!(sh, "which {tool}").quiet().ignore_stdout().run().is_ok(),
            "{tool} is not installed (Debian: apt-get install valgrind)"
        );
    }
    let lib = crate::onnxruntime::ensure(sh)?;
    let oha = ensure_oha(sh)?;
    let bin = super::target_dir().join("release");
    if oxserve.is_none() || bare.is_none() {
        cmd!(sh, "cargo build --release -p oxserve-cli -p oxserve-loadtest")
            .run()
            .context("building oxserve and the load tools")?;
    }
    let oxserve = oxserve.unwrap_or_else(|| bin.join("oxserve"));
    let bare = bare.unwrap_or_else(|| bin.join("oxserve-bare"));
    let dir = crate::state_dir().join("bench").join("instructions");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let load = Load { oha: &oha, requests, warmup, concurrency };

    let mut rows = Vec::new();
    for model in &models {
        let fixture = crate::project_root().join("fixtures/models").join(model);
        ensure!(fixture.is_dir(), "no fixture model {}", fixture.display());
        let body = request_body(model)?;
        let body_file = dir.join(format!("{model}-request.json"));
        std::fs::write(&body_file, &body)?;
        let path = format!("/v2/models/{model}/infer");

        let mut serve = callgrind(&dir.join(format!("{model}-oxserve.cg")));
        serve
            .arg(&oxserve)
            .arg("serve")
            .arg(&fixture)
            .args(["--http-port", "0", "--grpc-port", "0", "--threads", "1"])
            .env("OXSERVE_ONNXRUNTIME_LIB", &lib);
        let (guard, rest, _) =
            start(serve, &dir.join(format!("{model}-oxserve.log")), "oxserve listening ")?;
        let answer = http_post(&rest, &path, &body)?;
        let answer_file = dir.join(format!("{model}-answer.json"));
        std::fs::write(&answer_file, &answer)?;
        let per_request = load.count(sh, guard, &format!("{rest}{path}"), &body_file)?;
        rows.push(Row { model: model.clone(), system: "oxserve", per_request });

        let mut serve = callgrind(&dir.join(format!("{model}-bare.cg")));
        serve
            .arg(&bare)
            .args(["--http-port", "0", "--grpc-port", "0", "--threads", "1"])
            .arg("--rest-body")
            .arg(&answer_file)
            .arg("--grpc-response")
            .arg(write_empty(&dir)?);
        let (guard, rest, _) =
            start(serve, &dir.join(format!("{model}-bare.log")), "oxserve-bare listening ")?;
        let per_request = load.count(sh, guard, &format!("{rest}{path}"), &body_file)?;
        rows.push(Row { model: model.clone(), system: "bare ceiling", per_request });
    }

    let report = format!(
        "Command: `cargo xtask bench instructions --requests {requests} --concurrency {concurrency}`  \n\
         oxserve: `{}`; bare: `{}`; commit: {}  \n\
         Counted: user-space instructions of the server process (valgrind callgrind, all \
         threads) over {requests} one-row REST requests after {warmup} unmeasured ones\n\n{}",
        oxserve.display(),
        bare.display(),
        cmd!(sh, "git rev-parse --short HEAD").read().unwrap_or_default(),
        table(&rows)
    );
    let out = crate::state_dir().join("bench").join("instructions.md");
    std::fs::write(&out, &report)?;
    println!("{report}\n(written to {})", out.display());
    Ok(())
}

/// The load sent to one server under callgrind.
struct Load<'a> {
    oha: &'a Path,
    requests: u32,
    warmup: u32,
    concurrency: u32,
}

impl Load<'_> {
    /// Warms up, zeroes the counters, sends the counted requests and returns the server's
    /// instructions per request; the server is stopped when `guard` drops.
    fn count(&self, sh: &Shell, guard: Guard, url: &str, body_file: &Path) -> Result<f64> {
        let pid = guard.0.id().to_string();
        self.send(sh, self.warmup, url, body_file)?;
        cmd!(sh, "callgrind_control -z {pid}").quiet().ignore_stdout().run()?;
        self.send(sh, self.requests, url, body_file)?;
        let dump = cmd!(sh, "callgrind_control -d {pid}").quiet().ignore_stdout();
        dump.run()?;
        let out_file = out_file_of(&guard)?;
        drop(guard);
        let text = std::fs::read_to_string(&out_file)
            .with_context(|| format!("reading {}", out_file.display()))?;
        Ok(total_instructions(&text)? as f64 / f64::from(self.requests))
    }

    fn send(&self, sh: &Shell, n: u32, url: &str, body_file: &Path) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        let (oha, n, c) = (self.oha, n.to_string(), self.concurrency.to_string());
        let out = cmd!(
            sh,
            "{oha} --no-tui --output-format json -n {n} -c {c} -m POST -T application/json -D {body_file} {url}"
        )
        .read()
        .context("running oha")?;
        let m = Measurement::from_oha(&out)?;
        ensure!(m.errors == 0, "{} of the requests to {url} failed", m.errors);
        Ok(())
    }
}

/// `valgrind --tool=callgrind` writing its dumps next to `out` (`out.1` is the first dump).
fn callgrind(out: &Path) -> Command {
    let _ = std::fs::remove_file(out.with_extension("cg.1"));
    let mut command = Command::new("valgrind");
    command.arg("--tool=callgrind").arg(format!("--callgrind-out-file={}", out.display()));
    command
}

/// The first dump file of the callgrind run behind `guard`, from its command line.
fn out_file_of(guard: &Guard) -> Result<PathBuf> {
    let pid = guard.0.id();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
        .with_context(|| format!("reading the command line of {pid}"))?;
    let out = cmdline
        .split(|&b| b == 0)
        .filter_map(|a| std::str::from_utf8(a).ok())
        .find_map(|a| a.strip_prefix("--callgrind-out-file="))
        .context("no --callgrind-out-file on the command line")?;
    Ok(PathBuf::from(format!("{out}.1")))
}

/// The `totals:` (or `summary:`) line of a callgrind dump: instructions executed.
fn total_instructions(dump: &str) -> Result<u64> {
    for line in dump.lines() {
        if let Some(v) = line.strip_prefix("totals:").or_else(|| line.strip_prefix("summary:")) {
            let first = v.split_whitespace().next().unwrap_or("");
            return first.parse().with_context(|| format!("callgrind total {first:?}"));
        }
    }
    bail!("no totals in the callgrind dump")
}

/// An empty gRPC answer file for `oxserve-bare` (gRPC is not measured here).
fn write_empty(dir: &Path) -> Result<PathBuf> {
    let file = dir.join("empty.pb");
    std::fs::write(&file, b"")?;
    Ok(file)
}

/// A one-row request for a fixture model: the first row of its recorded inputs, missing
/// values (JSON `null`) replaced by 0.
fn request_body(model: &str) -> Result<String> {
    let expected = crate::project_root().join("fixtures/expected").join(format!("{model}.json"));
    let text = std::fs::read_to_string(&expected)
        .with_context(|| format!("reading {}", expected.display()))?;
    let v: Value = serde_json::from_str(&text)?;
    let input = &v["input"];
    let name = input["name"].as_str().context("expected input name")?;
    let datatype = input["datatype"].as_str().context("expected input datatype")?;
    let width = input["shape"][1].as_u64().context("expected input shape [rows, width]")?;
    let data = input["data"].as_array().context("expected input data")?;
    let row: Vec<Value> = data
        .iter()
        .take(usize::try_from(width)?)
        .map(|x| if x.is_null() { json!(0.0) } else { x.clone() })
        .collect();
    // Members in the order clients write them (name, shape, datatype, data); `json!` would
    // sort them.
    Ok(format!(
        r#"{{"inputs":[{{"name":{},"shape":[1,{width}],"datatype":{},"data":{}}}]}}"#,
        Value::from(name),
        Value::from(datatype),
        Value::Array(row)
    ))
}

fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| model | server | instructions per request | ÷ bare ceiling |\n|---|---|---:|---:|\n",
    );
    for r in rows {
        let bare = rows.iter().find(|b| b.model == r.model && b.system == "bare ceiling");
        let ratio =
            bare.map_or("–".to_owned(), |b| format!("{:.2}×", r.per_request / b.per_request));
        out.push_str(&format!("| {} | {} | {:.0} | {ratio} |\n", r.model, r.system, r.per_request));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_callgrind_totals() {
        let dump = "version: 1\ncreator: callgrind-3.19.0\nevents: Ir\nfl=x\n0 1\ntotals: 123456\n";
        assert_eq!(total_instructions(dump).unwrap(), 123_456);
        assert_eq!(total_instructions("summary: 42\n").unwrap(), 42);
        assert!(total_instructions("events: Ir\n").is_err());
    }

    #[test]
    fn builds_one_row_requests_from_the_fixtures() {
        let body = request_body("xgb-binary").unwrap();
        assert!(body.starts_with(r#"{"inputs":[{"name":"#), "{body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        let input = &body["inputs"][0];
        let width = input["shape"][1].as_u64().unwrap();
        assert_eq!(input["data"].as_array().unwrap().len() as u64, width);
        assert!(input["data"].as_array().unwrap().iter().all(Value::is_number));
    }
}

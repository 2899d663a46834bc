//! `cargo xtask bench server`: oxserve's V2 REST and gRPC serving against a bare ceiling.
//!
//! One run, on loopback:
//! 1. builds `oxserve` and the load tools (`oxserve-loadtest`) in release mode and installs
//!    `oha` into `.oxserve/tools` when it is missing;
//! 2. starts `oxserve serve fixtures/models/iris-lr --threads 1` pinned to one core
//!    (`taskset`; with `--max-batch-size N`, a copy of the model with that batching setting),
//!    sends it the one-row iris request once over REST and once over gRPC and keeps the
//!    answers' bytes;
//! 3. starts `oxserve-bare` (bare axum + bare tonic, one thread, same core) answering every
//!    infer call with exactly those bytes;
//! 4. for each concurrency, protocol and system, drives load from the other core — `oha`
//!    for REST, `oxserve-grpc-load` for gRPC — after a short unmeasured warm-up, `--repeat`
//!    times alternating oxserve and the ceiling, and keeps each system's median run;
//!    with `--rate N`, REST only, at a fixed N req/s (latency below saturation);
//! 5. prints a Markdown table (and writes it under `.oxserve/bench/`) with each
//!    system's throughput as a ratio of the ceiling and the targets of the issue beside it.
//!
//! Processes it starts are stopped by PID when the run ends, however it ends.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use xshell::{Shell, cmd};

#[derive(clap::Args)]
pub struct Args {
    /// Measured time per (system, protocol, concurrency), e.g. 10s.
    #[arg(long, default_value = "10s")]
    duration: String,
    /// Unmeasured warm-up before each measurement.
    #[arg(long, default_value = "1s")]
    warmup: String,
    /// Concurrency levels (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "64,1")]
    concurrency: Vec<u32>,
    /// Core the servers are pinned to.
    #[arg(long, default_value_t = 0)]
    server_cpu: u32,
    /// Core the load generators are pinned to.
    #[arg(long, default_value_t = 1)]
    load_cpu: u32,
    /// Serve iris-lr with this `max_batch_size` in its `model-settings.json` (oxserve's
    /// dynamic batcher, no added delay) instead of the fixture as committed (no batcher).
    #[arg(long)]
    max_batch_size: Option<usize>,
    /// Measure each (protocol, concurrency) this many times, alternating oxserve and the
    /// ceiling, and report each system's median run: on a shared machine, other work
    /// then weighs on both systems alike.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Send the REST requests at this fixed total rate (req/s, `oha -q`) instead of as fast
    /// as the closed loop allows: the latency of both servers below saturation, where the
    /// closed loop's queueing does not dominate the tail. gRPC is not measured then.
    #[arg(long)]
    rate: Option<u32>,
}

/// The model every request goes to, from `fixtures/models`.
const MODEL: &str = "iris-lr";

/// The REST request body: one iris row, the same as `oxserve_loadtest::request::IRIS_ROW`
/// that `oxserve-grpc-load` sends over gRPC.
const REST_BODY: &str = r#"{"inputs":[{"name":"float_input","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}"#;

/// The oha release installed when none is found.
const OHA_VERSION: &str = "1.16.0";

/// Issue targets, reported against (never asserted).
const REST_RATIO_TARGET: f64 = 0.7;
const REST_P99_TARGET_US: u64 = 3_000;
const GRPC_RATIO_TARGET: f64 = 0.6;

pub fn run(sh: &Shell, args: Args) -> Result<()> {
    let Args { duration, warmup, concurrency, server_cpu, load_cpu, max_batch_size, repeat, rate } =
        args;
    ensure!(repeat > 0, "--repeat must be at least 1");
    ensure!(!concurrency.is_empty(), "--concurrency needs at least one level");
    let machine_before = super::machine_description();
    let lib = crate::onnxruntime::ensure(sh)?;
    let oha = ensure_oha(sh)?;
    cmd!(sh, "cargo build --release -p oxserve-cli -p oxserve-loadtest")
        .run()
        .context("building oxserve and the load tools")?;
    let bin = super::target_dir().join("release");
    let (oxserve, bare, grpc_load) =
        (bin.join("oxserve"), bin.join("oxserve-bare"), bin.join("oxserve-grpc-load"));
    let dir = crate::state_dir().join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let request_file = dir.join("request.json");
    std::fs::write(&request_file, REST_BODY)?;
    let (server_cpu, load_cpu) = (server_cpu.to_string(), load_cpu.to_string());

    // oxserve, and the bytes it answers with.
    let fixture = crate::project_root().join("fixtures/models").join(MODEL);
    let model_dir = match max_batch_size {
        None => fixture,
        Some(n) => {
            // A one-model repository: the fixture plus the batching settings.
            let repo = dir.join("batched").join(MODEL);
            std::fs::create_dir_all(&repo)?;
            std::fs::copy(fixture.join("model.onnx"), repo.join("model.onnx"))?;
            std::fs::write(
                repo.join("model-settings.json"),
                format!("{{\"max_batch_size\": {n}}}"),
            )?;
            repo
        }
    };
    let mut serve = Command::new("taskset");
    serve
        .args(["-c", &server_cpu])
        .arg(&oxserve)
        .arg("serve")
        .arg(&model_dir)
        .args(["--http-port", "0", "--grpc-port", "0", "--threads", "1"])
        .env("OXSERVE_ONNXRUNTIME_LIB", &lib);
    let (ox_guard, ox_rest, ox_grpc) =
        start(serve, &dir.join("oxserve.log"), "oxserve listening ")?;
    let rest_body = dir.join("rest-response.json");
    let answer = http_post(&ox_rest, &format!("/v2/models/{MODEL}/infer"), REST_BODY)?;
    std::fs::write(&rest_body, &answer)?;
    let grpc_response = dir.join("grpc-response.bin");
    cmd!(sh, "{grpc_load} --addr {ox_grpc} --model {MODEL} --save-response {grpc_response}")
        .run()
        .context("capturing oxserve's gRPC response")?;
    println!("oxserve answers {}", String::from_utf8_lossy(&answer));

    // The ceiling, on the same core.
    let mut ceiling = Command::new("taskset");
    ceiling
        .args(["-c", &server_cpu])
        .arg(&bare)
        .args(["--threads", "1", "--rest-body"])
        .arg(&rest_body)
        .arg("--grpc-response")
        .arg(&grpc_response);
    let (bare_guard, bare_rest, bare_grpc) =
        start(ceiling, &dir.join("oxserve-bare.log"), "oxserve-bare listening ")?;
    ensure!(
        http_post(&bare_rest, &format!("/v2/models/{MODEL}/infer"), REST_BODY)? == answer,
        "the bare server must answer with oxserve's bytes"
    );

    let systems = [("oxserve", &ox_rest, &ox_grpc), ("bare", &bare_rest, &bare_grpc)];
    let mut results = Vec::new();
    for &c in &concurrency {
        let c_text = c.to_string();
        let protocols: &[Protocol] =
            if rate.is_some() { &[Protocol::Rest] } else { &[Protocol::Rest, Protocol::Grpc] };
        for &protocol in protocols {
            let mut runs: [Vec<Measurement>; 2] = [Vec::new(), Vec::new()];
            for round in 1..=repeat {
                for (i, (system, rest, grpc)) in systems.into_iter().enumerate() {
                    eprintln!(
                        "xtask: {system} {} c={c} for {duration} ({round}/{repeat})",
                        protocol.name()
                    );
                    let measure = |time: &str| -> Result<Measurement> {
                        match protocol {
                            Protocol::Rest => {
                                let url = format!("{rest}/v2/models/{MODEL}/infer");
                                let load = OhaLoad { time, concurrency: &c_text, rate };
                                oha_post(sh, &oha, &load_cpu, load, &request_file, &url)
                            }
                            Protocol::Grpc => {
                                let out = cmd!(
                                sh,
                                "taskset -c {load_cpu} {grpc_load} --addr {grpc} --model {MODEL} --concurrency {c_text} --duration {time}"
                            )
                            .read()
                            .context("running oxserve-grpc-load")?;
                                Measurement::from_grpc_load(&out)
                            }
                        }
                    };
                    measure(&warmup)?;
                    let m = measure(&duration)?;
                    eprintln!(
                        "xtask:   {:.0} req/s, p50 {} µs, p99 {} µs, {} errors",
                        m.rps, m.p50_us, m.p99_us, m.errors
                    );
                    runs[i].push(m);
                }
            }
            for ((system, _, _), runs) in systems.into_iter().zip(runs) {
                let m = if rate.is_some() { median_by_p99(runs) } else { median(runs) };
                results.push(Row { system, protocol, concurrency: c, m });
            }
        }
    }
    drop(bare_guard);
    drop(ox_guard);

    let commit = cmd!(sh, "git rev-parse --short HEAD").read().unwrap_or_default();
    let mut report = format!(
        "Command: `cargo xtask bench server --duration {duration} --concurrency {} --repeat {repeat}{}{}`  \n\
         Machine: {machine_before} (at start; {} at the end)  \n\
         Pinning: servers on core {server_cpu} (`--threads 1`), load generators on core {load_cpu}; \
         {warmup} warm-up before each run; each row is the median of {repeat} runs alternating \
         oxserve and the ceiling (errors: all runs)  \n\
         Commit: {commit}; request: 1 iris row, FP32 [1,4] (JSON over REST, typed fp32_contents over gRPC)\n\n",
        concurrency.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
        max_batch_size.map_or(String::new(), |n| format!(" --max-batch-size {n}")),
        rate.map_or(String::new(), |r| format!(" --rate {r}")),
        super::load_average(),
    );
    if let Some(r) = rate {
        report.push_str(&format!(
            "REST requests sent at a fixed {r} req/s: throughput is the rate, compare \
             latencies; each row is the run with the median p99.\n\n"
        ));
    }
    report.push_str(&table(&results, rate));
    println!("\n{report}");
    let out = match (max_batch_size, rate) {
        (_, Some(r)) => dir.join(format!("server-rate-{r}.md")),
        (None, None) => dir.join("server.md"),
        (Some(n), None) => dir.join(format!("server-max-batch-{n}.md")),
    };
    std::fs::write(&out, &report).with_context(|| format!("writing {}", out.display()))?;
    println!("written to {}", out.display());
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
enum Protocol {
    Rest,
    Grpc,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::Rest => "REST",
            Protocol::Grpc => "gRPC",
        }
    }
}

/// How long and how hard one `oha` run loads a server.
#[derive(Clone, Copy)]
pub(super) struct OhaLoad<'a> {
    /// Duration, e.g. `5s`.
    pub(super) time: &'a str,
    /// Connections, each with one request in flight.
    pub(super) concurrency: &'a str,
    /// A fixed total rate in req/s; `None`: as fast as the answers come (closed loop).
    pub(super) rate: Option<u32>,
}

/// One HTTP/1.1 run of `oha` from core `load_cpu`: POSTs the JSON in `body_file` to `url`
/// as `load` says, and reads its JSON report.
pub(super) fn oha_post(
    sh: &Shell,
    oha: &Path,
    load_cpu: &str,
    load: OhaLoad<'_>,
    body_file: &Path,
    url: &str,
) -> Result<Measurement> {
    let OhaLoad { time, concurrency, rate } = load;
    let rate: Vec<String> = rate.map(|r| vec!["-q".to_owned(), r.to_string()]).unwrap_or_default();
    let out = cmd!(
        sh,
        "taskset -c {load_cpu} {oha} --no-tui --output-format json -z {time} -c {concurrency} {rate...} -w -m POST -T application/json -D {body_file} {url}"
    )
    .read()
    .context("running oha")?;
    Measurement::from_oha(&out)
}

/// The figures of one load run.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Measurement {
    pub(super) rps: f64,
    pub(super) p50_us: u64,
    pub(super) p99_us: u64,
    pub(super) errors: u64,
}

impl Measurement {
    /// From oha's `--output-format json`: successes are 2xx answers; errors are other status
    /// codes plus connection errors. Latencies there are in seconds.
    pub(super) fn from_oha(json: &str) -> Result<Measurement> {
        let v: Value = serde_json::from_str(json).context("parsing oha's JSON output")?;
        let total_s = v["summary"]["total"].as_f64().context("oha JSON: summary.total")?;
        let mut ok = 0;
        let mut errors = 0;
        if let Some(codes) = v["statusCodeDistribution"].as_object() {
            for (code, n) in codes {
                let n = n.as_u64().unwrap_or(0);
                if code.starts_with('2') {
                    ok += n;
                } else {
                    errors += n;
                }
            }
        }
        if let Some(errs) = v["errorDistribution"].as_object() {
            errors += errs.values().filter_map(Value::as_u64).sum::<u64>();
        }
        let us = |p: &str| -> u64 {
            (v["latencyPercentiles"][p].as_f64().unwrap_or(f64::NAN) * 1e6).round() as u64
        };
        Ok(Measurement {
            rps: if total_s > 0.0 { ok as f64 / total_s } else { 0.0 },
            p50_us: us("p50"),
            p99_us: us("p99"),
            errors,
        })
    }

    /// From `oxserve-grpc-load`'s JSON line.
    pub(super) fn from_grpc_load(json: &str) -> Result<Measurement> {
        let v: Value =
            serde_json::from_str(json.trim()).context("parsing oxserve-grpc-load's JSON output")?;
        let field = |k: &str| v[k].as_u64().with_context(|| format!("grpc-load JSON: {k}"));
        Ok(Measurement {
            rps: v["rps"].as_f64().context("grpc-load JSON: rps")?,
            p50_us: field("p50_us")?,
            p99_us: field("p99_us")?,
            errors: field("errors")?,
        })
    }
}

struct Row {
    system: &'static str,
    protocol: Protocol,
    concurrency: u32,
    m: Measurement,
}

/// The run with the median throughput, with the errors of all runs.
pub(super) fn median(runs: Vec<Measurement>) -> Measurement {
    median_by(runs, |a, b| a.rps.total_cmp(&b.rps))
}

/// The run with the median p99, with the errors of all runs: at a fixed rate every run has
/// the same throughput, and the tail is what differs.
fn median_by_p99(runs: Vec<Measurement>) -> Measurement {
    median_by(runs, |a, b| a.p99_us.cmp(&b.p99_us))
}

/// The middle run in `order`, with the errors of all runs.
fn median_by(
    mut runs: Vec<Measurement>,
    order: impl FnMut(&Measurement, &Measurement) -> std::cmp::Ordering,
) -> Measurement {
    let errors = runs.iter().map(|m| m.errors).sum();
    runs.sort_by(order);
    Measurement { errors, ..runs.swap_remove(runs.len() / 2) }
}

/// The Markdown results table: every row with its ratio to the ceiling of the same protocol
/// and concurrency, then the targets.
fn table(rows: &[Row], rate: Option<u32>) -> String {
    let ceiling = |p: Protocol, c: u32| {
        rows.iter()
            .find(|r| r.system == "bare" && r.protocol == p && r.concurrency == c)
            .map(|r| r.m.rps)
    };
    let mut out = String::from(
        "| system | protocol | concurrency | req/s | p50 | p99 | errors | ratio to ceiling |\n\
         |---|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let ratio = ceiling(r.protocol, r.concurrency)
            .filter(|c| *c > 0.0)
            .map_or("n/a".to_owned(), |c| format!("{:.2}", r.m.rps / c));
        let system = if r.system == "bare" {
            match r.protocol {
                Protocol::Rest => "bare axum",
                Protocol::Grpc => "bare tonic",
            }
        } else {
            r.system
        };
        out.push_str(&format!(
            "| {system} | {} | {} | {:.0} | {} | {} | {} | {ratio} |\n",
            r.protocol.name(),
            r.concurrency,
            r.m.rps,
            ms(r.m.p50_us),
            ms(r.m.p99_us),
            r.m.errors,
        ));
    }
    let find = |p: Protocol| {
        rows.iter().find(|r| r.system == "oxserve" && r.protocol == p && r.concurrency == 64)
    };
    out.push_str("\nTargets (c=64, reported, not asserted):\n");
    if let (Some(rate), Some(r)) = (rate, find(Protocol::Rest)) {
        // At a fixed rate both servers do the rate: only the latency target applies.
        let met = r.m.p99_us <= REST_P99_TARGET_US;
        out.push_str(&format!(
            "- REST p99 ≤ {} ms at {rate} req/s: p99 {} → {} (the throughput ratio needs the \
             closed loop)\n",
            REST_P99_TARGET_US / 1000,
            ms(r.m.p99_us),
            if met { "met" } else { "missed" }
        ));
        return out;
    }
    if let (Some(r), Some(c)) = (find(Protocol::Rest), ceiling(Protocol::Rest, 64)) {
        let ratio = r.m.rps / c;
        let met = ratio >= REST_RATIO_TARGET && r.m.p99_us <= REST_P99_TARGET_US;
        out.push_str(&format!(
            "- REST ≥ {REST_RATIO_TARGET} × bare axum with p99 ≤ {} ms: {ratio:.2} ×, p99 {} → {}\n",
            REST_P99_TARGET_US / 1000,
            ms(r.m.p99_us),
            if met { "met" } else { "missed" }
        ));
    }
    if let (Some(r), Some(c)) = (find(Protocol::Grpc), ceiling(Protocol::Grpc, 64)) {
        let ratio = r.m.rps / c;
        out.push_str(&format!(
            "- gRPC ≥ {GRPC_RATIO_TARGET} × bare tonic: {ratio:.2} × → {}\n",
            if ratio >= GRPC_RATIO_TARGET { "met" } else { "missed" }
        ));
    }
    out
}

/// Microseconds as milliseconds with two decimals.
pub(super) fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

/// `oha` from `.oxserve/tools/bin`, installed there with `cargo install` when missing.
pub(super) fn ensure_oha(sh: &Shell) -> Result<PathBuf> {
    let root = crate::state_dir().join("tools");
    let oha = root.join("bin").join("oha");
    if !oha.exists() {
        eprintln!("xtask: installing oha {OHA_VERSION} into {}", root.display());
        cmd!(sh, "cargo install oha --version {OHA_VERSION} --locked --root {root}")
            .run()
            .context("installing oha")?;
    }
    Ok(oha)
}

/// Stops a started server by PID (SIGTERM, then reaps it) when dropped.
pub(super) struct Guard(pub(super) Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let pid = self.0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let _ = self.0.wait();
    }
}

/// Starts a server whose first stdout line is `<prefix>rest=http://… grpc=…`; returns it with
/// its REST base URL and gRPC `host:port`. Its stderr goes to `log`.
pub(super) fn start(
    mut command: Command,
    log: &Path,
    prefix: &str,
) -> Result<(Guard, String, String)> {
    let log_file =
        std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(log_file)
        .spawn()
        .with_context(|| format!("starting {command:?}"))?;
    let stdout = child.stdout.take().context("server stdout")?;
    let guard = Guard(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let Some(addrs) = line.trim().strip_prefix(prefix) else {
        bail!("server did not start: {command:?} (see {})", log.display());
    };
    let mut rest = None;
    let mut grpc = None;
    for part in addrs.split_whitespace() {
        if let Some(v) = part.strip_prefix("rest=") {
            rest = Some(v.to_owned());
        } else if let Some(v) = part.strip_prefix("grpc=") {
            grpc = Some(v.to_owned());
        }
    }
    let (Some(rest), Some(grpc)) = (rest, grpc) else {
        bail!("unexpected startup line {line:?}");
    };
    Ok((guard, rest, grpc))
}

/// One HTTP/1.1 POST of a JSON body; returns the response body of a 200 answer.
pub(super) fn http_post(base: &str, path: &str, body: &str) -> Result<Vec<u8>> {
    let authority = base.strip_prefix("http://").context("REST URL must be http://")?;
    let mut stream =
        TcpStream::connect(authority).with_context(|| format!("connecting to {authority}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nhost: {authority}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no end of headers in the HTTP response")?;
    let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
    ensure!(head.starts_with("http/1.1 200"), "POST {path}: {head}");
    ensure!(!head.contains("transfer-encoding: chunked"), "POST {path}: chunked answer");
    Ok(response[split + 4..].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_oha_json() {
        let json = r#"{"summary":{"successRate":1.0,"total":2.0,"requestsPerSec":101.0},
            "latencyPercentiles":{"p50":0.0012,"p99":0.0031},
            "statusCodeDistribution":{"200":200,"503":2},"errorDistribution":{"reset":1}}"#;
        let m = Measurement::from_oha(json).unwrap();
        assert_eq!(m, Measurement { rps: 100.0, p50_us: 1200, p99_us: 3100, errors: 3 });
    }

    #[test]
    fn median_run_keeps_all_errors() {
        let m = |rps, errors| Measurement { rps, p50_us: rps as u64, p99_us: 0, errors };
        let got = median(vec![m(30.0, 1), m(10.0, 0), m(20.0, 2)]);
        assert_eq!(got, Measurement { rps: 20.0, p50_us: 20, p99_us: 0, errors: 3 });
    }

    #[test]
    fn median_tail_run_keeps_all_errors() {
        let m = |p99_us, errors| Measurement { rps: 100.0, p50_us: 1, p99_us, errors };
        let got = median_by_p99(vec![m(900, 1), m(3000, 0), m(1200, 2)]);
        assert_eq!(got, Measurement { rps: 100.0, p50_us: 1, p99_us: 1200, errors: 3 });
    }

    #[test]
    fn table_ratios_and_targets() {
        let m = |rps, p99_us| Measurement { rps, p50_us: 500, p99_us, errors: 0 };
        let rows = [
            Row {
                system: "oxserve",
                protocol: Protocol::Rest,
                concurrency: 64,
                m: m(8000.0, 2500),
            },
            Row { system: "bare", protocol: Protocol::Rest, concurrency: 64, m: m(10000.0, 900) },
            Row {
                system: "oxserve",
                protocol: Protocol::Grpc,
                concurrency: 64,
                m: m(5000.0, 4000),
            },
            Row { system: "bare", protocol: Protocol::Grpc, concurrency: 64, m: m(10000.0, 2000) },
        ];
        let t = table(&rows, None);
        assert!(t.contains("| oxserve | REST | 64 | 8000 | 0.50 ms | 2.50 ms | 0 | 0.80 |"), "{t}");
        assert!(
            t.contains("| bare tonic | gRPC | 64 | 10000 | 0.50 ms | 2.00 ms | 0 | 1.00 |"),
            "{t}"
        );
        assert!(t.contains("0.80 ×, p99 2.50 ms → met"), "{t}");
        assert!(t.contains("0.50 × → missed"), "{t}");
        // At a fixed rate only the latency target is judged.
        let t = table(&rows, Some(8000));
        assert!(t.contains("- REST p99 ≤ 3 ms at 8000 req/s: p99 2.50 ms → met"), "{t}");
        assert!(!t.contains("bare tonic: "), "{t}");
    }
}

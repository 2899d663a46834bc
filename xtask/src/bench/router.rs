//! `cargo xtask bench router`: what the router adds to a request, next to a bare hyper
//! proxy, plus the cold-start time through its activator.
//!
//! One run, on loopback:
//! 1. builds `oxserve` and the load tools in release mode (`oha` installed when missing);
//! 2. starts `oxserve serve fixtures/models/iris-lr --threads 1` pinned to `--server-cpu`,
//!    `oxserve router --threads 1` in front of it (a routes file with the one backend) and
//!    `oxserve-bare-proxy --threads 1` (the ceiling: a bare hyper proxy to the same replica),
//!    both pinned to `--router-cpu`;
//! 3. for each concurrency and protocol (`oha` for REST, `oxserve-grpc-load` for gRPC, from
//!    `--load-cpu`) measures the replica directly, through the router and through the bare
//!    proxy, `--repeat` rounds alternating the three, and keeps each one's median run;
//! 4. reports the router's added p50/p99 over the direct path and its throughput as a ratio
//!    of the bare proxy's, and the cold start (`oxserve-cold-start`: first request at a
//!    revision with no replica → response, a real replica started on the activation) as
//!    p50/p99 over `--cold-starts` runs.
//!
//! Servers it starts are stopped by PID when the run ends, however it ends.

use std::process::Command;

use anyhow::{Context, Result, ensure};
use serde_json::Value;
use xshell::{Shell, cmd};

use super::server::{Measurement, OhaLoad, ensure_oha, http_post, median, ms, oha_post, start};

#[derive(clap::Args)]
pub struct Args {
    /// Measured time per (path, protocol, concurrency), e.g. 5s.
    #[arg(long, default_value = "5s")]
    duration: String,
    /// Unmeasured warm-up before each measurement.
    #[arg(long, default_value = "1s")]
    warmup: String,
    /// Concurrency levels (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "64,1")]
    concurrency: Vec<u32>,
    /// Core the replica is pinned to.
    #[arg(long, default_value_t = 0)]
    server_cpu: u32,
    /// Core the router and the bare proxy are pinned to.
    #[arg(long, default_value_t = 0)]
    router_cpu: u32,
    /// Core the load generators are pinned to.
    #[arg(long, default_value_t = 1)]
    load_cpu: u32,
    /// Rounds per (protocol, concurrency), alternating the three paths; medians reported.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Cold starts to measure.
    #[arg(long, default_value_t = 20)]
    cold_starts: usize,
}

const MODEL: &str = "iris-lr";
const REST_BODY: &str = r#"{"inputs":[{"name":"float_input","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}"#;

/// Issue targets, reported against (never asserted).
const ADDED_P50_TARGET_US: i64 = 50;
const ADDED_P99_TARGET_US: i64 = 300;
const RATIO_TARGET: f64 = 0.8;
const COLD_P99_TARGET_MS: f64 = 300.0;

const PATHS: [&str; 3] = ["direct", "router", "bare proxy"];

pub fn run(sh: &Shell, args: Args) -> Result<()> {
    let Args {
        duration,
        warmup,
        concurrency,
        server_cpu,
        router_cpu,
        load_cpu,
        repeat,
        cold_starts,
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
    let (oxserve, bare_proxy, grpc_load, cold_start) = (
        bin.join("oxserve"),
        bin.join("oxserve-bare-proxy"),
        bin.join("oxserve-grpc-load"),
        bin.join("oxserve-cold-start"),
    );
    let dir = crate::state_dir().join("bench").join("router");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let request_file = dir.join("request.json");
    std::fs::write(&request_file, REST_BODY)?;
    let (server_cpu, router_cpu, load_cpu) =
        (server_cpu.to_string(), router_cpu.to_string(), load_cpu.to_string());
    let model_dir = crate::project_root().join("fixtures/models").join(MODEL);

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

    let routes = dir.join("routes.yaml");
    std::fs::write(
        &routes,
        format!(
            "services:\n  - name: {MODEL}\n    backends:\n      - {{url: '{ox_rest}', grpc: '{ox_grpc}', weight: 100, revision: {MODEL}-predictor-00001}}\n"
        ),
    )?;
    let mut router = Command::new("taskset");
    router
        .args(["-c", &router_cpu])
        .arg(&oxserve)
        .arg("router")
        .arg("--routes")
        .arg(&routes)
        .args(["--http-port", "0", "--grpc-port", "0", "--threads", "1"])
        .env("OXSERVE_LOG", "warn");
    let (router_guard, router_rest, router_grpc) =
        start(router, &dir.join("router.log"), "oxserve router listening ")?;

    let upstream = ox_rest.trim_start_matches("http://").to_owned();
    let mut proxy = Command::new("taskset");
    proxy.args(["-c", &router_cpu]).arg(&bare_proxy).args([
        "--threads",
        "1",
        "--upstream",
        &upstream,
        "--grpc-upstream",
        &ox_grpc,
    ]);
    let (proxy_guard, proxy_rest, proxy_grpc) =
        start(proxy, &dir.join("bare-proxy.log"), "oxserve-bare-proxy listening ")?;

    let infer = format!("/v2/models/{MODEL}/infer");
    let direct_answer = http_post(&ox_rest, &infer, REST_BODY)?;
    ensure!(
        http_post(&router_rest, &infer, REST_BODY)? == direct_answer,
        "the router must pass the answer through unchanged"
    );
    ensure!(
        http_post(&proxy_rest, &infer, REST_BODY)? == direct_answer,
        "the bare proxy must pass the answer through unchanged"
    );

    let targets = [(&ox_rest, &ox_grpc), (&router_rest, &router_grpc), (&proxy_rest, &proxy_grpc)];
    let mut rows: Vec<(u32, &str, [Measurement; 3])> = Vec::new();
    for &c in &concurrency {
        let c_text = c.to_string();
        for protocol in ["REST", "gRPC"] {
            let mut runs: [Vec<Measurement>; 3] = Default::default();
            for round in 1..=repeat {
                for (i, (rest, grpc)) in targets.iter().enumerate() {
                    eprintln!(
                        "xtask: {} {protocol} c={c} for {duration} ({round}/{repeat})",
                        PATHS[i]
                    );
                    let measure = |time: &str| -> Result<Measurement> {
                        if protocol == "REST" {
                            let load = OhaLoad { time, concurrency: &c_text, rate: None };
                            oha_post(
                                sh,
                                &oha,
                                &load_cpu,
                                load,
                                &request_file,
                                &format!("{rest}{infer}"),
                            )
                        } else {
                            let out = cmd!(
                                sh,
                                "taskset -c {load_cpu} {grpc_load} --addr {grpc} --model {MODEL} --concurrency {c_text} --duration {time}"
                            )
                            .read()
                            .context("running oxserve-grpc-load")?;
                            Measurement::from_grpc_load(&out)
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
            let [a, b, p] = runs.map(median);
            rows.push((c, protocol, [a, b, p]));
        }
    }
    drop(proxy_guard);
    drop(router_guard);
    drop(ox_guard);

    eprintln!("xtask: {cold_starts} cold starts");
    let runs = cold_starts.to_string();
    let cold = cmd!(
        sh,
        "{cold_start} --oxserve {oxserve} --model-dir {model_dir} --model {MODEL} --body {request_file} --runs {runs}"
    )
    .env("OXSERVE_ONNXRUNTIME_LIB", &lib)
    .read()
    .context("running oxserve-cold-start")?;
    let cold: Value =
        serde_json::from_str(cold.trim()).context("parsing oxserve-cold-start's output")?;
    let (cold_p50, cold_p99) = (
        cold["p50_ms"].as_f64().context("cold start p50")?,
        cold["p99_ms"].as_f64().context("cold start p99")?,
    );

    let commit = cmd!(sh, "git rev-parse --short HEAD").read().unwrap_or_default();
    let mut report = format!(
        "Command: `cargo xtask bench router --duration {duration} --concurrency {} --repeat {repeat} --server-cpu {server_cpu} --router-cpu {router_cpu} --load-cpu {load_cpu} --cold-starts {cold_starts}`  \n\
         Machine: {machine_before} (at start; {} at the end)  \n\
         Pinning: replica on core {server_cpu}, router and bare proxy on core {router_cpu} (each `--threads 1`), \
         load generators on core {load_cpu}; {warmup} warm-up before each run; each figure is the median of \
         {repeat} runs alternating the three paths  \n\
         Commit: {commit}; request: 1 iris row to `{MODEL}` (JSON over REST, typed fp32 over gRPC)\n\n",
        concurrency.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
        super::load_average(),
    );
    report.push_str(&table(&rows));
    report.push_str(&format!(
        "\nCold start (first request at a revision with no replica → its response, a real \
         `oxserve serve` replica started on the activation event), {cold_starts} runs: \
         p50 {cold_p50:.1} ms, p99 {cold_p99:.1} ms (target p99 ≤ {COLD_P99_TARGET_MS} ms → {})\n",
        if cold_p99 <= COLD_P99_TARGET_MS { "met" } else { "missed" }
    ));
    println!("\n{report}");
    let out = dir.join("router.md");
    std::fs::write(&out, &report).with_context(|| format!("writing {}", out.display()))?;
    println!("written to {}", out.display());
    Ok(())
}

/// The Markdown table: each path's figures, the router's added latency over the direct path
/// and its throughput over the bare proxy's, then the targets.
fn table(rows: &[(u32, &str, [Measurement; 3])]) -> String {
    let mut out = String::from(
        "| protocol | concurrency | path | req/s | p50 | p99 | errors |\n|---|---:|---|---:|---:|---:|---:|\n",
    );
    for (c, protocol, m) in rows {
        for (path, m) in PATHS.iter().zip(m) {
            out.push_str(&format!(
                "| {protocol} | {c} | {path} | {:.0} | {} | {} | {} |\n",
                m.rps,
                ms(m.p50_us),
                ms(m.p99_us),
                m.errors
            ));
        }
    }
    out.push_str(
        "\n| protocol | concurrency | router added p50 | added p99 | router / bare proxy req/s | router / direct req/s | bare proxy added p50 | added p99 |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (c, protocol, [direct, router, proxy]) in rows {
        let added = |m: &Measurement, d: &Measurement| {
            (m.p50_us as i64 - d.p50_us as i64, m.p99_us as i64 - d.p99_us as i64)
        };
        let (rp50, rp99) = added(router, direct);
        let (pp50, pp99) = added(proxy, direct);
        let ratio = |a: f64, b: f64| if b > 0.0 { format!("{:.2}", a / b) } else { "n/a".into() };
        out.push_str(&format!(
            "| {protocol} | {c} | {rp50} µs | {rp99} µs | {} | {} | {pp50} µs | {pp99} µs |\n",
            ratio(router.rps, proxy.rps),
            ratio(router.rps, direct.rps),
        ));
    }
    out.push_str(&format!(
        "\nTargets (reported, not asserted): added p50 ≤ {ADDED_P50_TARGET_US} µs and p99 ≤ \
         {ADDED_P99_TARGET_US} µs; router throughput ≥ {RATIO_TARGET} × the bare proxy's on the same core.\n"
    ));
    for (c, protocol, [direct, router, proxy]) in rows {
        let p50 = router.p50_us as i64 - direct.p50_us as i64;
        let p99 = router.p99_us as i64 - direct.p99_us as i64;
        let ratio = if proxy.rps > 0.0 { router.rps / proxy.rps } else { 0.0 };
        out.push_str(&format!(
            "- {protocol} c={c}: added p50 {p50} µs → {}, p99 {p99} µs → {}, {ratio:.2} × the bare proxy → {}\n",
            met(p50 <= ADDED_P50_TARGET_US),
            met(p99 <= ADDED_P99_TARGET_US),
            met(ratio >= RATIO_TARGET),
        ));
    }
    out
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "missed" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_latency_and_ratios() {
        let m = |rps, p50_us, p99_us| Measurement { rps, p50_us, p99_us, errors: 0 };
        let rows =
            [(64, "REST", [m(10000.0, 1000, 2000), m(8500.0, 1040, 2500), m(10000.0, 1020, 2100)])];
        let t = table(&rows);
        assert!(t.contains("| REST | 64 | 40 µs | 500 µs | 0.85 | 0.85 | 20 µs | 100 µs |"), "{t}");
        assert!(t.contains("- REST c=64: added p50 40 µs → met, p99 500 µs → missed, 0.85 × the bare proxy → met"), "{t}");
    }
}
